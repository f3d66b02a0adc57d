"""Moved to `tests.support.raw`; re-exported here so tests that import this old path keep
working. New code imports `tests.support.raw`."""

from tests.support.raw import (
    RawDevice,
    dm_envelope,
    frames_until,
    group_envelope,
    new_handle,
    register,
)

__all__ = [
    "RawDevice", "dm_envelope", "frames_until", "group_envelope", "new_handle",
    "register",
]
