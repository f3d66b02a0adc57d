"""Where hash lists come from: one small interface after python-threatexchange's
`SignalExchangeAPI` (fetch updates since a checkpoint), and the file source.

A source yields `SourceDelta`s: hashes to add or update (a record) or to drop (None),
with the checkpoint to pass next time. An exchange API (ThreatExchange, NCMEC, StopNCII)
is a new class here; a bank is filled from any of them the same way."""

from __future__ import annotations

import hashlib
import io
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from covey.safety.images.formats import HashListError, HashListFormat, HashRecord, parse


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """Where a fetch got to; opaque to callers, stored between fetches."""

    value: str


@dataclass(frozen=True, slots=True)
class SourceDelta:
    """Hex hash -> record (add or update) or None (remove). `complete`: the delta is the
    whole list, so hashes absent from it are gone."""

    updates: dict[str, HashRecord | None]
    checkpoint: Checkpoint
    complete: bool = False


class HashListSource(ABC):
    """A list of PDQ hashes that can be fetched, fully or since a checkpoint."""

    name: str

    @abstractmethod
    def fetch(self, checkpoint: Checkpoint | None = None) -> Iterator[SourceDelta]:
        """Updates since `checkpoint` (None: everything), in order, batch by batch."""


class FileSource(HashListSource):
    """A hash-list file in one of `HashListFormat`; the checkpoint is its SHA-256, so an
    unchanged file yields nothing and a changed one is read again whole."""

    def __init__(self, path: Path, fmt: HashListFormat = HashListFormat.TEXT) -> None:
        self.path, self.format, self.name = path, fmt, f"file:{path.name}"

    def fetch(self, checkpoint: Checkpoint | None = None) -> Iterator[SourceDelta]:
        try:
            data = self.path.read_bytes()
        except OSError as exc:
            raise HashListError(f"cannot read {self.path}: {exc.strerror or exc}") from exc
        digest = Checkpoint(hashlib.sha256(data).hexdigest())
        if checkpoint == digest:
            return
        try:
            text = data.decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            raise HashListError(f"{self.path} is not UTF-8 text") from exc

        updates: dict[str, HashRecord | None] = {}
        for record in parse(io.StringIO(text, newline=""), self.format):
            updates[record.pdq.hex] = record
        yield SourceDelta(updates, digest, complete=True)
