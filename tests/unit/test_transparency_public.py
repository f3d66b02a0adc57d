"""The public transparency report's small-count suppression and month ranges (pure)."""

from __future__ import annotations

from covey.moderation.transparency import (
    TransparencyRow,
    month_range_ms,
    suppress_small_counts,
    transparency_counts,
)

_AT = 1_760_000_000_000  # 2025-10-09


def _rows(*spec: tuple[str, str, int]) -> list[TransparencyRow]:
    return [TransparencyRow(_AT, category, "dismissed", "safeguarded", band)
            for category, band, n in spec for _ in range(n)]


def test_counts_under_the_threshold_are_hidden_and_exact_ones_kept() -> None:
    counts = transparency_counts(_rows(("grooming_or_enticement", "16+", 12),
                                       ("harassment", "16+", 11), ("spam", "under-16", 3)))
    public = suppress_small_counts(counts, 10)
    assert public["total"] == 26
    assert public["by_category"]["spam"] is None
    # One hidden cell could be had by subtraction: the next smallest is hidden as well.
    assert public["by_category"]["harassment"] is None
    assert public["by_category"]["grooming_or_enticement"] == 12
    assert public["by_reporter_band"] == {"16+": None, "under-16": None}
    assert public["by_action"] == {"dismissed": 26}
    assert public["reported_message_verified"] == 26


def test_two_hidden_cells_need_no_more_hiding_and_nothing_small_survives() -> None:
    counts = transparency_counts(_rows(("grooming_or_enticement", "16+", 20),
                                       ("spam", "under-16", 2), ("other", "under-16", 4)))
    public = suppress_small_counts(counts, 5)
    assert public["by_category"] == {"grooming_or_enticement": 20, "other": None,
                                     "spam": None}
    for key, cells in public.items():
        if key.startswith("by_"):
            assert all(n is None or n >= 5 for n in cells.values()), (key, cells)


def test_a_small_total_hides_everything() -> None:
    public = suppress_small_counts(transparency_counts(_rows(("spam", "under-16", 3))), 10)
    assert public["total"] is None and public["by_category"] == {"spam": None}


def test_a_small_unverified_rest_hides_the_verified_count() -> None:
    rows = _rows(("spam", "16+", 30))
    rows.append(TransparencyRow(_AT, "spam", "pending", "safeguarded", "16+", False))
    assert suppress_small_counts(transparency_counts(rows), 10)[
        "reported_message_verified"] is None


def test_month_ranges_cover_whole_months_across_a_year_end() -> None:
    start, end = month_range_ms("2025-11", "2025-12")
    assert (start, end) == (1_761_955_200_000, 1_767_225_600_000)  # Nov 1 .. Jan 1 2026
