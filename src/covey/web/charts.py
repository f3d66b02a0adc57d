"""Charts for the transparency pages: matplotlib (Agg backend) bar charts as SVG.

matplotlib is imported on the first chart, not with the console: it takes seconds to
load and every server start would pay it."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

_TITLES = {"by_month": "Reports by month", "by_category": "By category",
           "by_action": "By action", "by_policy_mode": "By policy mode",
           "by_reporter_band": "By reporter age band"}


def transparency_svg(counts: Mapping[str, Any], *, suppressed_below: int | None = None) -> str:
    """One SVG with a horizontal bar chart per dimension (for export and the tests)."""
    dimensions = [d for d in _TITLES if d in counts]
    return _svg(counts, dimensions, suppressed_below, width_in=9.0, titles=True)


def dimension_svg(counts: Mapping[str, Any], dimension: str, *,
                  suppressed_below: int | None = None, wide: bool = False) -> str:
    """The bar chart of one dimension, names in words. Sized to be read at half a wide
    page or the whole width of a phone; `wide` for a chart across a wide page."""
    return _svg(counts, [dimension], suppressed_below, width_in=12.0 if wide else 6.0,
                titles=False)


def _svg(counts: Mapping[str, Any], dimensions: list[str], suppressed_below: int | None,
         *, width_in: float, titles: bool) -> str:
    """A count hidden on the public page (None) is drawn as an empty bar labelled
    "hidden"."""
    from covey.web.labels import dimension_label

    plt = _pyplot()
    heights = [max(1, len(counts[d])) for d in dimensions]
    figure, axes = plt.subplots(
        len(dimensions), 1, squeeze=False,
        figsize=(width_in, 0.5 + 0.45 * sum(heights) + (0.6 if titles else 0.25)
                 * len(dimensions)),
        gridspec_kw={"height_ratios": heights})
    try:
        for axis, dimension in zip(axes[:, 0], dimensions, strict=True):
            data = counts[dimension]
            labels = [dimension_label(dimension, k) for k in data] or ["(none)"]
            values = [v or 0 for v in data.values()] or [0]
            bars = axis.barh(labels, values, color="#3d6b8f", height=0.6)
            for bar, value in zip(bars, data.values(), strict=False):
                text = "hidden" if value is None else str(value)
                axis.annotate(text, (bar.get_width(), bar.get_y() + bar.get_height() / 2),
                              xytext=(4, 0), textcoords="offset points", va="center",
                              fontsize=11, color="#1d2530")
            if titles:
                axis.set_title(_TITLES[dimension], fontsize=12, loc="left")
            axis.invert_yaxis()
            axis.tick_params(labelsize=11)
            if max(values) == 0:
                axis.set_xlim(0, 1)
                axis.set_xticks([])
            else:
                axis.set_xlim(0, max(values) * 1.25)
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
