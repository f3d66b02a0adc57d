"""The detector set the operator enabled, built from settings and hot-reloaded: each
detector is built again when a file its options name changes; a bad edit (or a missing
file) keeps the last detector that built, so a typo never stops messaging or scanning.
The same set gives the rules on-device clients build their own copies from."""

from __future__ import annotations

import hashlib
import json
import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from covey.errors import CoveyError, InvalidInput
from covey.safety.detectors._base import Detector
from covey.safety.detectors._registry import available_detectors

log = logging.getLogger(__name__)

Stamp = tuple[tuple[str, int, int], ...]


def _stamp(paths: list[Path]) -> Stamp:
    out = []
    for path in paths:
        try:
            stat = path.stat()
            out.append((str(path), stat.st_mtime_ns, stat.st_size))
        except OSError:
            out.append((str(path), -1, -1))
    # A directory's own mtime changes when a file is added; its files' when edited.
    for path in paths:
        if path.is_dir():
            for child in sorted(path.iterdir()):
                try:
                    stat = child.stat()
                except OSError:
                    continue
                out.append((str(child), stat.st_mtime_ns, stat.st_size))
    return tuple(out)


@dataclass
class _Entry:
    name: str
    options: Mapping[str, Any]
    paths: list[Path]
    stamp: Stamp
    detector: Detector | None


@dataclass(frozen=True)
class DetectorRules:
    """What on-device clients build their detectors from: `{name: rules text}` and a
    version (the SHA-256 of the canonical JSON of the rules, the same on every node)."""

    version: str
    rules: Mapping[str, str]


def rules_version(rules: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(rules), sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


class DetectorSet:
    """`{name: options}` from settings, each built through the registry."""

    def __init__(self, config: Mapping[str, Mapping[str, Any]]) -> None:
        registry = available_detectors()
        unknown = sorted(set(config) - set(registry))
        if unknown:
            raise InvalidInput(f"unknown detectors {unknown}; available: {sorted(registry)}",
                               code="detector_unknown")
        self._config = {name: dict(options) for name, options in sorted(config.items())}
        self._entries: list[_Entry] | None = None
        # Built on first use (a relay in mode e2ee-only never pays for the lexicons); the
        # scan queue warms it up in a thread, so the lock keeps one build at a time.
        self._lock = threading.Lock()

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._config)

    def _build(self) -> list[_Entry]:
        registry = available_detectors()
        entries = []
        for name, options in self._config.items():
            cls = registry[name]
            paths = [Path(p) for p in cls.watched_paths(options)]
            entry = _Entry(name, options, paths, _stamp(paths), None)
            try:
                entry.detector = cls.from_options(options)
            except (CoveyError, OSError, ValueError) as exc:
                # Messaging goes on; a detector with a file is built when the file is fixed.
                log.warning("detector %s not built: %s", name, getattr(exc, "message", exc))
            entries.append(entry)
        return entries

    def current(self) -> list[Detector]:
        """The detectors now, rebuilding any whose files changed since the last call."""
        with self._lock:
            return self._current()

    def _current(self) -> list[Detector]:
        registry = available_detectors()
        if self._entries is None:
            self._entries = self._build()
            return [e.detector for e in self._entries if e.detector is not None]
        for entry in self._entries:
            if not entry.paths:
                continue
            stamp = _stamp(entry.paths)
            if stamp == entry.stamp:
                continue
            entry.stamp = stamp
            try:
                entry.detector = registry[entry.name].from_options(entry.options)
            except (CoveyError, OSError, ValueError) as exc:
                log.warning("detector %s not reloaded (keeping the last good one): %s",
                            entry.name, getattr(exc, "message", exc))
            else:
                log.info("detector %s reloaded", entry.name)
        return [entry.detector for entry in self._entries if entry.detector is not None]

    def get(self, name: str) -> Detector | None:
        return next((d for d in self.current() if d.name == name), None)

    def rules(self) -> DetectorRules:
        """The on-device rules of every detector that runs on the device."""
        rules = {}
        for detector in self.current():
            text = detector.to_rules()
            if text is not None:
                rules[detector.name] = text
        return DetectorRules(rules_version(rules), rules)


def detectors_from_rules(rules: Mapping[str, str]) -> list[Detector]:
    """On the device: build each detector from its rules text (unknown names skipped, so
    an older client keeps working when the server adds a detector)."""
    registry = available_detectors()
    built = []
    for name, text in sorted(rules.items()):
        cls = registry.get(name)
        if cls is None:
            log.info("on-device rules name detector %s, which this client lacks", name)
            continue
        built.append(cls.from_rules(text))
    return built
