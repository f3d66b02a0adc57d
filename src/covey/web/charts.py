"""Charts for the transparency page: matplotlib (Agg backend) bar charts as SVG.

matplotlib is imported on the first chart, not with the console: it takes seconds to
load and every server start would pay it."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

_TITLES = {"by_month": "Reports by month", "by_category": "By category",
           "by_action": "By action", "by_policy_mode": "By policy mode",
           "by_reporter_band": "By reporter age band"}


def transparency_svg(counts: Mapping[str, Mapping[str, int]]) -> str:
    """One SVG with a horizontal bar chart per dimension."""
    plt = _pyplot()
    dimensions = [d for d in _TITLES if d in counts]
    figure, axes = plt.subplots(len(dimensions), 1, figsize=(7, 2.0 * len(dimensions)),
                                squeeze=False)
    try:
        for axis, dimension in zip(axes[:, 0], dimensions, strict=True):
            data = counts[dimension]
            labels = list(data) or ["(none)"]
            values = list(data.values()) or [0]
            axis.barh(labels, values, color="#3d6b8f")
            axis.set_title(_TITLES[dimension], fontsize=10, loc="left")
            axis.invert_yaxis()
            axis.xaxis.get_major_locator().set_params(integer=True)
            for spine in ("top", "right"):
                axis.spines[spine].set_visible(False)
        figure.tight_layout()
        out = io.StringIO()
        figure.savefig(out, format="svg")
        return out.getvalue()
    finally:
        plt.close(figure)


def _pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend (no display is needed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
