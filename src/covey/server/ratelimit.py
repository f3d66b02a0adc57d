"""Token-bucket rate limits per account and per IP (registration, login, sending,
reports, ...).

Buckets live in memory, one per (action, key); a request that finds its bucket empty
gets 429 `rate_limited` with the seconds to wait (the API turns it into Retry-After).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

from covey.errors import RateLimited
from covey.settings import Settings

_MAX_BUCKETS = 100_000


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated: float


@dataclass(frozen=True, slots=True)
class Limit:
    per_second: float
    burst: int


class RateLimiter:
    def __init__(self, limits: dict[str, Limit],
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._limits = limits
        self._clock = clock
        self._buckets: dict[tuple[str, str], _Bucket] = {}
        self.on_refused: Callable[[str], None] | None = None  # metrics: the action

    @classmethod
    def from_settings(cls, settings: Settings) -> RateLimiter:
        return cls({
            "register": Limit(settings.rate_register_per_min / 60, settings.rate_register_burst),
            "login": Limit(settings.rate_login_per_min / 60, settings.rate_login_burst),
            "send": Limit(settings.rate_send_per_min / 60, settings.rate_send_burst),
            "age": Limit(settings.rate_age_per_min / 60, settings.rate_age_burst),
            "guardian": Limit(settings.rate_guardian_per_min / 60,
                              settings.rate_guardian_burst),
            "lookup": Limit(settings.rate_lookup_per_min / 60, settings.rate_lookup_burst),
            "contact": Limit(settings.rate_contact_per_min / 60, settings.rate_contact_burst),
            "report": Limit(settings.rate_report_per_min / 60, settings.rate_report_burst),
            "blob": Limit(settings.rate_blob_per_min / 60, settings.rate_blob_burst),
        })

    def check(self, action: str, *keys: str, cost: float = 1.0) -> None:
        """Take `cost` tokens from every bucket of `action` named by `keys`, or raise."""
        limit = self._limits[action]
        now = self._clock()
        buckets = []
        wait = 0.0
        for key in keys:
            bucket = self._buckets.get((action, key))
            if bucket is None:
                if len(self._buckets) >= _MAX_BUCKETS:
                    self._evict(now)
                bucket = _Bucket(float(limit.burst), now)
                self._buckets[(action, key)] = bucket
            else:
                bucket.tokens = min(float(limit.burst),
                                    bucket.tokens + (now - bucket.updated) * limit.per_second)
                bucket.updated = now
            if bucket.tokens < cost:
                missing = cost - bucket.tokens
                wait = max(wait, missing / limit.per_second if limit.per_second > 0 else 3600)
            buckets.append(bucket)
        if wait > 0:
            if self.on_refused is not None:
                self.on_refused(action)
            retry = max(1, math.ceil(wait))
            raise RateLimited(f"too many {action} requests, retry in {retry} s",
                              details={"retry_after_s": retry})
        for bucket in buckets:
            bucket.tokens -= cost

    def _evict(self, now: float) -> None:
        # Full buckets carry no state worth keeping: drop them first, then the oldest.
        for key in [k for k, b in self._buckets.items()
                    if now - b.updated > 3600]:
            del self._buckets[key]
        if len(self._buckets) >= _MAX_BUCKETS:
            for key in sorted(self._buckets, key=lambda k: self._buckets[k].updated)[
                    : _MAX_BUCKETS // 10]:
                del self._buckets[key]
