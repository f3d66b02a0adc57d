"""Threshold dates, predicates and band expiry: pure date arithmetic."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from covey.age import (
    UNDER_16_HORIZONS,
    AgeBand,
    Predicate,
    band_expires_at,
    band_predicate,
    cutoff_dateint,
    from_dateint,
    is_band_predicate,
    to_dateint,
    years_before,
)
from covey.age.bands import earliest_calendar_day, latest_calendar_day


def sixteenth_birthday(born: date, years: int = 16) -> date:
    """The stricter convention: a 29 February baby comes of age on 1 March."""
    try:
        return born.replace(year=born.year + years)
    except ValueError:
        return date(born.year + years, 3, 1)


def test_dateint_round_trip() -> None:
    assert to_dateint(date(2009, 2, 28)) == 20090228
    assert from_dateint(20090228) == date(2009, 2, 28)
    for bad in (2009228, 20091301, 20090230, True):
        with pytest.raises(ValueError):
            from_dateint(bad)  # type: ignore[arg-type]


def test_years_before_clamps_29_february() -> None:
    assert years_before(date(2028, 2, 29), 16) == date(2012, 2, 29)  # leap to leap
    assert years_before(date(2024, 2, 29), 18) == date(2006, 2, 28)
    assert years_before(date(2026, 3, 1), 16) == date(2010, 3, 1)


def test_29_february_baby_is_sixteen_on_1_march_in_a_common_year() -> None:
    born = to_dateint(date(2008, 2, 29))
    assert not born <= cutoff_dateint(date(2024, 2, 28))  # 2024 is leap: birthday 29 Feb
    assert born <= cutoff_dateint(date(2024, 2, 29))
    assert not born <= cutoff_dateint(date(2025, 2, 28), 17)  # common year: not yet 17
    assert born <= cutoff_dateint(date(2025, 3, 1), 17)


def test_predicates_use_the_extreme_time_zones() -> None:
    now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)  # 22 Nov in UTC-12, 23 Nov in UTC+14
    assert band_predicate(AgeBand.SIXTEEN_PLUS, now) == Predicate("<=", 20101122)
    # under 16 on 23 Nov + 90 days = 21 Feb 2027 in the latest zone
    assert band_predicate(AgeBand.UNDER_16, now) == Predicate(">", 20110221)
    assert band_predicate(AgeBand.UNDER_16, now, horizon_days=1) == Predicate(">", 20101124)
    assert band_predicate(AgeBand.SIXTEEN_PLUS, now, threshold_years=18).p_value == 20081122
    with pytest.raises(ValueError):
        band_predicate(AgeBand.UNVERIFIED, now)
    with pytest.raises(ValueError):
        band_predicate(AgeBand.UNDER_16, now, horizon_days=0)


def test_predicate_checks_and_forms() -> None:
    p = Predicate(">", 20100101)
    assert p.holds_for(20100102) and not p.holds_for(20100101)
    assert p.proof_form() == {"attr_name": "birthdate_dateint", "p_type": "GT",
                              "value": 20100101}
    with pytest.raises(ValueError):
        Predicate("==", 1)


def test_sixteen_plus_lasts_the_validity_period() -> None:
    now = datetime(2026, 11, 23, 16, 0, tzinfo=UTC)
    assert band_expires_at(AgeBand.SIXTEEN_PLUS, now) == now + timedelta(days=90)


instants = st.datetimes(min_value=datetime(2001, 1, 1), max_value=datetime(2090, 12, 31),
                        timezones=st.just(UTC))
birth_dates = st.dates(min_value=date(1980, 1, 1), max_value=date(2090, 12, 31))


@given(now=instants, born=birth_dates, horizon=st.integers(1, 90))
def test_under_16_band_never_outlives_the_16th_birthday(now: datetime, born: date,
                                                        horizon: int) -> None:
    predicate = band_predicate(AgeBand.UNDER_16, now, horizon_days=horizon)
    if not predicate.holds_for(to_dateint(born)):
        return
    expires = band_expires_at(AgeBand.UNDER_16, now, horizon_days=horizon)
    assert expires <= now + timedelta(days=90)
    # Until the band expires, the holder's calendar — whichever zone they live in —
    # shows a day before their 16th birthday.
    assert latest_calendar_day(expires - timedelta(microseconds=1)) < sixteenth_birthday(born)
    # ...and today they are under 16 everywhere too.
    assert latest_calendar_day(now) < sixteenth_birthday(born)


@given(now=instants, born=birth_dates)
def test_sixteen_plus_only_after_the_16th_birthday_everywhere(now: datetime,
                                                              born: date) -> None:
    if band_predicate(AgeBand.SIXTEEN_PLUS, now).holds_for(to_dateint(born)):
        assert earliest_calendar_day(now) >= sixteenth_birthday(born)


@given(now=instants)
def test_under_16_horizon_of_90_days_lasts_close_to_90_days(now: datetime) -> None:
    expires = band_expires_at(AgeBand.UNDER_16, now)
    assert now + timedelta(days=88) < expires <= now + timedelta(days=90)


def test_expiry_is_the_start_of_the_last_proven_day_in_the_latest_zone() -> None:
    now = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)
    expires = band_expires_at(AgeBand.UNDER_16, now, horizon_days=1)
    assert expires == datetime.combine(date(2026, 11, 24), time(0), tzinfo=UTC) - timedelta(
        hours=14)


@given(now=instants, skew_hours=st.integers(-20, 20), band=st.sampled_from(
    [AgeBand.SIXTEEN_PLUS, AgeBand.UNDER_16]), horizon=st.sampled_from(UNDER_16_HORIZONS))
def test_wallet_accepts_honest_band_predicates_despite_clock_skew(
        now: datetime, skew_hours: int, band: AgeBand, horizon: int) -> None:
    predicate = band_predicate(band, now, horizon_days=horizon)
    wallet_now = now + timedelta(hours=skew_hours)
    assert is_band_predicate(band, predicate, wallet_now, horizon_days=horizon)


def test_wallet_rejects_other_predicates() -> None:
    now = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
    honest = band_predicate(AgeBand.SIXTEEN_PLUS, now)
    assert not is_band_predicate(AgeBand.SIXTEEN_PLUS, Predicate("<=", honest.p_value - 7), now,
                                 horizon_days=90)
    assert not is_band_predicate(AgeBand.SIXTEEN_PLUS, Predicate("<", honest.p_value), now,
                                 horizon_days=90)
    assert not is_band_predicate(AgeBand.SIXTEEN_PLUS, honest, now, horizon_days=90,
                                 threshold_years=18)
    odd = band_predicate(AgeBand.UNDER_16, now, horizon_days=45)
    assert not is_band_predicate(AgeBand.UNDER_16, odd, now, horizon_days=45)
