"""Guards of the console login: exponential backoff per username and per client address
after repeated failures, and a cap on concurrent argon2 password checks (each holds
64 MiB), so password guessing is slow and cannot exhaust the server's memory."""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

from covey.errors import RateLimited

_MAX_TRACKED = 100_000  # failure records kept before the oldest are forgotten


@dataclass
class _Failures:
    count: int
    locked_until: float


class LoginBackoff:
    """After `free` failures for one key, each further failure locks the key for
    `base_s * 2**(n - free)` seconds (at most `max_s`). A locked key is refused before
    any password is checked."""

    def __init__(self, free: int, base_s: float, max_s: float) -> None:
        self._free = free
        self._base_s = base_s
        self._max_s = max_s
        self._failures: dict[str, _Failures] = {}

    def retry_after(self, key: str, now: float | None = None) -> float:
        """Seconds until `key` may try again (0: now)."""
        found = self._failures.get(key)
        if found is None:
            return 0.0
        return max(0.0, found.locked_until - (time.monotonic() if now is None else now))

    def failed(self, key: str) -> None:
        now = time.monotonic()
        found = self._failures.pop(key, None) or _Failures(0, now)
        found.count += 1
        over = found.count - self._free
        if over > 0:
            found.locked_until = now + min(self._max_s, self._base_s * 2 ** (over - 1))
        if len(self._failures) >= _MAX_TRACKED:
            self._failures.pop(next(iter(self._failures)))
        self._failures[key] = found  # re-inserted: the dict stays oldest first

    def succeeded(self, key: str) -> None:
        self._failures.pop(key, None)


class PasswordSlots:
    """At most `slots` password checks at once and as many waiting; more get 429."""

    def __init__(self, slots: int) -> None:
        self._slots = max(1, slots)
        self._semaphore = asyncio.Semaphore(self._slots)
        self._queued = 0

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        if self._queued >= 2 * self._slots:
            raise RateLimited("too many console logins at once: try again in a moment",
                              code="login_busy", details={"retry_after_s": 1})
        self._queued += 1
        try:
            async with self._semaphore:
                yield
        finally:
            self._queued -= 1


def throttled(retry_after_s: float) -> RateLimited:
    return RateLimited("too many failed logins: wait before trying again",
                       code="login_throttled",
                       details={"retry_after_s": max(1, math.ceil(retry_after_s))})
