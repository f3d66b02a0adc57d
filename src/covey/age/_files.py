"""Atomic JSON files with explicit permissions, for the issuer's state directory."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644


def write_json(path: Path, value: Any, *, mode: int) -> None:
    """Write `value` to `path` atomically (temp file, fsync, rename) with `mode`."""
    write_bytes(path, json.dumps(value, sort_keys=True, separators=(",", ":")).encode(),
                mode=mode)


def write_bytes(path: Path, data: bytes, *, mode: int) -> None:
    """Write `data` to `path` atomically (temp file, fsync, rename) with `mode`.

    The temporary file is created 0600 and only then widened, so a private file is
    never readable by others, not even for a moment.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_json(path: Path) -> Any:
    with path.open(encoding="utf-8") as handle:
        return json.load(handle)
