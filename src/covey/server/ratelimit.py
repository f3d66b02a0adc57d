"""Token-bucket rate limits per account and per IP (registration, login, sending,
reports, ...).

Buckets live in memory, one per (action, key); a request that finds its bucket empty
gets 429 `rate_limited` with the seconds to wait (the API turns it into Retry-After).
In a cluster, `SharedRateLimiter` holds them in the database for all nodes at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from covey.errors import RateLimited
from covey.settings import Settings

log = logging.getLogger(__name__)
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


@dataclass(slots=True)
class _Share:
    tokens: float  # what this node may spend now
    backed: bool = False  # settled at least once (else: this node's first-touch share)
    spent: float = 0.0  # spent since the last settlement
    used: float = 0.0  # monotonic time of the last check
    settled: float = 0.0  # monotonic time of the last settlement


# (action, key, credit, want, limit) -> granted: `credit` (the unspent share) goes back
# into the shared bucket, then up to `want` is taken out for this node.
SettleShares = Callable[[list[tuple[str, str, float, float, Limit]]],
                        Awaitable[dict[tuple[str, str], float]]]


class SharedRateLimiter(RateLimiter):
    """The same limits, held for a whole cluster in the database's buckets.

    `check` stays synchronous (no database round trip per request): each node spends a
    share of the bucket, and every `interval_s` gives back what it did not spend and
    withdraws a fresh share (up to burst/N for N live nodes). A new bucket starts shared
    out: burst/N on each node (a node's first touch), none in the database, which then
    holds what nodes give back plus the refill. Spent tokens are never in two places and
    the refill happens once, in the database, so spreading requests over nodes gives no
    extra sustained allowance; a client that stays on one node gets burst/N at once and
    the full sustained rate. After a long idle the bucket (up to a burst) and the shares
    nodes still hold add up: a burst spread over all nodes can then reach twice the
    configured one, never more."""

    def __init__(self, limits: dict[str, Limit], settle: SettleShares,
                 nodes: Callable[[], int], *, interval_s: float = 0.05,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(limits, clock)
        self._settle = settle
        self._nodes = nodes
        self._interval_s = interval_s
        self._shares: dict[tuple[str, str], _Share] = {}
        self._task: asyncio.Task[None] | None = None

    @classmethod
    def shared_from_settings(cls, settings: Settings, settle: SettleShares,
                             nodes: Callable[[], int]) -> SharedRateLimiter:
        return cls(RateLimiter.from_settings(settings)._limits, settle, nodes)

    def _want(self, limit: Limit) -> float:
        return limit.burst / max(1, self._nodes())

    def check(self, action: str, *keys: str, cost: float = 1.0) -> None:
        limit = self._limits[action]
        now = self._clock()
        shares = []
        for key in keys:
            share = self._shares.get((action, key))
            if share is None:
                if len(self._shares) >= _MAX_BUCKETS:
                    self._evict_shares(now)
                share = _Share(tokens=self._want(limit))
                self._shares[(action, key)] = share
            share.used = now
            shares.append(share)
        short = [s for s in shares if s.tokens < cost]
        if short:
            if self.on_refused is not None:
                self.on_refused(action)
            missing = max(cost - s.tokens for s in short)
            wait = missing / limit.per_second if limit.per_second > 0 else 3600
            retry = max(1, math.ceil(min(wait, 3600)))
            raise RateLimited(f"too many {action} requests, retry in {retry} s",
                              details={"retry_after_s": retry})
        for share in shares:
            share.tokens -= cost
            share.spent += cost

    def _evict_shares(self, now: float) -> None:
        # A share idle for ten minutes is dropped with what it held (the bucket refills).
        for key in [k for k, s in self._shares.items()
                    if s.spent == 0 and now - s.used > 600]:
            del self._shares[key]

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._settle_loop(),
                                                            name="covey-rate-limits")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        with contextlib.suppress(Exception):
            await self.settle_now(closing=True)

    async def settle_now(self, *, closing: bool = False) -> None:
        now = self._clock()
        batch: list[tuple[tuple[str, str], _Share, float, float, float]] = []
        for k, share in list(self._shares.items()):
            if closing and share.tokens <= 0 and share.spent == 0:
                continue
            want = 0.0 if closing else self._want(self._limits[k[0]])
            if share.backed and not closing and not (share.spent > 0
                                                     or share.tokens < want / 2):
                continue
            batch.append((k, share, share.tokens, want, share.spent))
        if not batch:
            return
        # On failure nothing changed on either side: the next tick tries again.
        granted = await self._settle([(k[0], k[1], credit, want, self._limits[k[0]])
                                      for k, _s, credit, want, _spent in batch])
        for k, share, _credit, _want, spent_before in batch:
            # What was spent while the settlement was on its way came out of the share
            # given back: it comes out of the new grant (a small debt refuses until paid).
            share.tokens = granted.get(k, 0.0) - (share.spent - spent_before)
            share.spent = 0.0
            share.backed = True
            share.settled = now

    async def _settle_loop(self) -> None:
        while True:
            await asyncio.sleep(self._interval_s)
            try:
                await self.settle_now()
            except Exception as exc:
                # The database is away: keep spending the shares in hand, settle later.
                log.warning("rate limits not settled: %s", type(exc).__name__)
