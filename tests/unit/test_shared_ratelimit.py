"""SharedRateLimiter: nodes spend local shares of one shared bucket and settle; spreading
requests over nodes gives no extra allowance, and one node alone still gets it all."""

from __future__ import annotations

import pytest

from covey.errors import RateLimited
from covey.server.ratelimit import Limit, SharedRateLimiter


class Shared:
    """The database's buckets, in memory: no refill (rate 0) to count exactly."""

    def __init__(self) -> None:
        self.tokens: dict[tuple[str, str], float] = {}

    async def settle(self, items: list[tuple[str, str, float, float, Limit]]
                     ) -> dict[tuple[str, str], float]:
        granted = {}
        for action, key, credit, want, limit in items:
            tokens = min(float(limit.burst), self.tokens.get((action, key), 0.0) + credit)
            grant = max(0.0, min(want, tokens))
            self.tokens[(action, key)] = tokens - grant
            granted[(action, key)] = grant
        return granted

    def total(self, key: tuple[str, str], limiters: list[SharedRateLimiter]) -> float:
        """Tokens in the bucket plus every node's share: never more than a burst."""
        return self.tokens.get(key, 0.0) + sum(
            s.tokens for lim in limiters for k, s in lim._shares.items() if k == key)


def _allowed(limiter: SharedRateLimiter) -> bool:
    try:
        limiter.check("login", "ip:1.2.3.4")
        return True
    except RateLimited:
        return False


async def test_spreading_over_nodes_gives_no_extra_allowance() -> None:
    shared = Shared()
    limits = {"login": Limit(per_second=0.0, burst=10)}
    nodes = [SharedRateLimiter(limits, shared.settle, lambda: 3) for _ in range(3)]
    allowed = 0
    for _round in range(10):
        for node in nodes:
            allowed += sum(_allowed(node) for _ in range(3))
        for node in nodes:
            await node.settle_now()
    assert allowed <= 10
    assert allowed >= 7  # shares rounded down may leave a token or two unspent
    assert shared.total(("login", "ip:1.2.3.4"), nodes) <= 10 - allowed + 1e-9


async def test_one_node_alone_gets_its_share_at_once_and_the_refill() -> None:
    shared = Shared()
    clock = [0.0]
    limiter = SharedRateLimiter({"login": Limit(per_second=10.0, burst=10)},
                                shared.settle, lambda: 2, clock=lambda: clock[0])
    assert sum(_allowed(limiter) for _ in range(10)) == 5  # burst/N at once
    await limiter.settle_now()
    assert shared.total(("login", "ip:1.2.3.4"), [limiter]) == 0
    shared.tokens[("login", "ip:1.2.3.4")] += 10.0  # a second's refill in the database
    clock[0] += 0.1
    await limiter.settle_now()
    assert sum(_allowed(limiter) for _ in range(10)) == 5  # a fresh share of the refill


async def test_a_failed_settlement_is_retried_with_what_was_spent() -> None:
    shared = Shared()
    calls = 0

    async def flaky(items: list[tuple[str, str, float, float, Limit]]
                    ) -> dict[tuple[str, str], float]:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise OSError("database unreachable")
        return await shared.settle(items)

    limiter = SharedRateLimiter({"login": Limit(0.0, 10)}, flaky, lambda: 1)
    assert all(_allowed(limiter) for _ in range(4))
    with pytest.raises(OSError):
        await limiter.settle_now()
    await limiter.settle_now()
    # The four spent were taken once; the rest is granted or left in the bucket.
    assert shared.total(("login", "ip:1.2.3.4"), [limiter]) == 6
