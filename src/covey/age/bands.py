"""Age bands, threshold date arithmetic and how long a proven band stays valid.

Pure functions over dates: the verifier turns "16 or over" / "under 16" into an
AnonCreds predicate on `birthdate_dateint` (YYYYMMDD) and an expiry for the band.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta

BIRTHDATE_ATTRIBUTE = "birthdate_dateint"
DEFAULT_THRESHOLD_YEARS = 16
DEFAULT_BAND_VALIDITY = timedelta(days=90)
# The only horizons an under-16 challenge may use (see `band_predicate`). A fixed, coarse
# ladder: letting a verifier pick any horizon would let it bisect a birthday to the day.
UNDER_16_HORIZONS = (90, 30, 7, 1)
# Local calendars run from UTC-12 to UTC+14. "16 or over" must hold in the earliest
# calendar on Earth and "under 16" in the latest, so neither band starts early anywhere.
_EARLIEST_ZONE = timedelta(hours=-12)
_LATEST_ZONE = timedelta(hours=14)


class AgeBand(enum.StrEnum):
    """What the platform learns about a user's age: the band, nothing else."""

    SIXTEEN_PLUS = "16+"
    UNDER_16 = "under-16"
    UNVERIFIED = "unverified"


# AnonCreds' request syntax and the operator names it writes into its proofs.
P_TYPES = {">=": "GE", ">": "GT", "<=": "LE", "<": "LT"}


@dataclass(frozen=True)
class Predicate:
    """One AnonCreds predicate: `attribute p_type p_value`."""

    p_type: str
    p_value: int
    attribute: str = BIRTHDATE_ATTRIBUTE

    def __post_init__(self) -> None:
        if self.p_type not in P_TYPES:
            raise ValueError(f"p_type must be one of {sorted(P_TYPES)}, got {self.p_type!r}")

    def holds_for(self, value: int) -> bool:
        """Whether `value` satisfies the predicate (the wallet checks before proving)."""
        if self.p_type == ">=":
            return value >= self.p_value
        if self.p_type == ">":
            return value > self.p_value
        if self.p_type == "<=":
            return value <= self.p_value
        return value < self.p_value

    def to_request(self) -> dict[str, object]:
        return {"name": self.attribute, "p_type": self.p_type, "p_value": self.p_value}

    def proof_form(self) -> dict[str, object]:
        """The predicate as AnonCreds writes it into a proof's `ge_proofs`."""
        return {"attr_name": self.attribute, "p_type": P_TYPES[self.p_type],
                "value": self.p_value}


def to_dateint(day: date) -> int:
    """`date(2009, 2, 28)` -> `20090228`."""
    return day.year * 10000 + day.month * 100 + day.day


def from_dateint(value: int) -> date:
    """Inverse of `to_dateint`; raises `ValueError` for a number that is not a date."""
    if isinstance(value, bool) or not isinstance(value, int) or not 10000101 <= value <= 99991231:
        raise ValueError(f"not a YYYYMMDD date: {value!r}")
    return date(value // 10000, value // 100 % 100, value % 100)


def years_before(day: date, years: int) -> date:
    """`day` minus whole calendar years; 29 February becomes 28 February when needed.

    Someone born on 29 February then reaches an age on 1 March in common years (the
    stricter of the two legal conventions): on 28 February the cutoff is 28 February,
    which they are after; on 1 March it is 1 March, which they are before.
    """
    if years < 0:
        raise ValueError("years must not be negative")
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February into a common year
        return day.replace(year=day.year - years, day=28)


def cutoff_dateint(on: date, threshold_years: int = DEFAULT_THRESHOLD_YEARS) -> int:
    """Born on or before this dateint means at least `threshold_years` old on `on`."""
    return to_dateint(years_before(on, threshold_years))


def earliest_calendar_day(now: datetime) -> date:
    """The date in the calendar furthest behind UTC (UTC-12) at instant `now`."""
    return (now.astimezone(UTC) + _EARLIEST_ZONE).date()


def latest_calendar_day(now: datetime) -> date:
    """The date in the calendar furthest ahead of UTC (UTC+14) at instant `now`."""
    return (now.astimezone(UTC) + _LATEST_ZONE).date()


def band_predicate(band: AgeBand, now: datetime, *,
                   threshold_years: int = DEFAULT_THRESHOLD_YEARS,
                   horizon_days: int = DEFAULT_BAND_VALIDITY.days) -> Predicate:
    """The predicate a holder must prove for `band` at instant `now`.

    - 16+: `birthdate <= cutoff(today)`, with today the earliest calendar date on
      Earth, so nobody is 16+ before their 16th birthday in any time zone. Ageing only
      moves people into this band, so it stays true.
    - under-16: `birthdate > cutoff(today + horizon_days)`, with today the latest
      calendar date on Earth: the holder is still under 16 on that whole day, so the
      band can last `horizon_days` without outliving the 16th birthday (see
      `band_expires_at`). Proving plain `> cutoff(today)` would only be good for a day.
    """
    if band is AgeBand.SIXTEEN_PLUS:
        return Predicate("<=", cutoff_dateint(earliest_calendar_day(now), threshold_years))
    if band is AgeBand.UNDER_16:
        if horizon_days < 1:
            raise ValueError("horizon_days must be at least 1")
        day = latest_calendar_day(now) + timedelta(days=horizon_days)
        return Predicate(">", cutoff_dateint(day, threshold_years))
    raise ValueError(f"{band} cannot be proven")


def band_expires_at(band: AgeBand, now: datetime, *,
                    horizon_days: int = DEFAULT_BAND_VALIDITY.days,
                    validity: timedelta = DEFAULT_BAND_VALIDITY) -> datetime:
    """When a band proven at `now` must be proven again.

    16+ is permanent in principle; it expires after `validity` so that revocation (a
    fraudulent credential, a lost wallet) takes effect. Under-16 was proven for the
    whole calendar day `latest_today + horizon_days`; the band ends when that day
    *starts* in the latest time zone, i.e. `horizon_days` days from the start of the
    holder's possible "today" — never after a 16th birthday, wherever they live.
    """
    now = now.astimezone(UTC)
    cap = now + validity
    if band is AgeBand.SIXTEEN_PLUS:
        return cap
    if band is AgeBand.UNDER_16:
        last_day = latest_calendar_day(now) + timedelta(days=horizon_days)
        starts = datetime.combine(last_day, time(0), tzinfo=UTC) - _LATEST_ZONE
        return min(cap, starts)
    raise ValueError(f"{band} has no expiry")


def is_band_predicate(band: AgeBand, predicate: Predicate, now: datetime, *,
                      threshold_years: int = DEFAULT_THRESHOLD_YEARS, horizon_days: int,
                      clock_skew: timedelta = timedelta(days=1)) -> bool:
    """Whether `predicate` is what an honest verifier asks for `band` around `now`.

    The wallet checks this before proving: a dishonest verifier could otherwise ask
    "born on or before 2010-06-15?", then "...2010-06-08?", and learn the birth date
    by bisection, one harmless-looking proof at a time.
    """
    if band is AgeBand.UNDER_16 and horizon_days not in UNDER_16_HORIZONS:
        return False
    if band not in (AgeBand.SIXTEEN_PLUS, AgeBand.UNDER_16):
        return False
    return any(
        predicate == band_predicate(band, now + offset, threshold_years=threshold_years,
                                    horizon_days=horizon_days)
        for offset in (-clock_skew, timedelta(0), clock_skew)
    )
