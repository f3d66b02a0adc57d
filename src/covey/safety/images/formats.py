"""Hash-list file formats: plain text, and ThreatExchange's and HMA's CSV (`.te`) records.

- `text`: one 64-hex PDQ hash per line, optional metadata after a comma or whitespace,
  `#` comments and blank lines ignored. Metadata is kept as `{"text": ...}`. Lines of
  threatexchange's local file exchange (`pdq HASH`) read as well.
- `te`: python-threatexchange's `CliIndicatorSerialization` rows (the CLI's
  `simple.HASH_PDQ.te` files): hash, first descriptor id, added on, labels.
- `hma`: its `HMASerialization` rows (what HMA 1.0 reads from ThreatExchange datasets):
  hash, indicator id, first descriptor id, added on, labels.

The `te` and `hma` rows are parsed and written by the `threatexchange` package itself
(`pip install 'covey[exchange]'`), never re-implemented here."""

from __future__ import annotations

import csv
import enum
import io
import json
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

from covey.errors import InvalidInput
from covey.safety.images._hash import InvalidHash, PdqHash

# An optional leading "pdq " is the signal type that threatexchange's local file exchange
# (`LocalFileSignalExchangeAPI`) writes before each hash.
_TEXT_LINE = re.compile(r"(?:pdq\s+)?([0-9a-fA-F]{64})(?:(?:\s*,\s*|\s+)(.*))?")
TE_INDICATOR_TYPE = "HASH_PDQ"  # PdqSignal.INDICATOR_TYPE


class HashListFormat(enum.StrEnum):
    TEXT = "text"
    TE = "te"
    HMA = "hma"


class HashListError(InvalidInput):
    code = "invalid_hash_list"


@dataclass(frozen=True, slots=True)
class HashRecord:
    """One hash of a list with its metadata (a JSON object) and the time it was added."""

    pdq: PdqHash
    meta: Mapping[str, Any] = field(default_factory=dict)
    added_ms: int | None = None


def parse(stream: TextIO, fmt: HashListFormat) -> Iterator[HashRecord]:
    """Records of a hash list, in file order; a bad line raises `HashListError` naming it."""
    if fmt is HashListFormat.TEXT:
        yield from _parse_text(stream)
    else:
        yield from _parse_te(stream, fmt)


def write(out: TextIO, records: Iterable[HashRecord], fmt: HashListFormat) -> int:
    """Write records in `fmt`; how many were written."""
    if fmt is HashListFormat.TEXT:
        return _write_text(out, records)
    return _write_te(out, records, fmt)


# --- plain text ----------------------------------------------------------------------------


def _parse_text(stream: TextIO) -> Iterator[HashRecord]:
    for number, raw in enumerate(stream, start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        found = _TEXT_LINE.fullmatch(line)
        if found is None:
            raise HashListError(f"line {number}: not a 64-hex PDQ hash: {line[:80]!r}")
        rest = (found.group(2) or "").strip()
        yield HashRecord(PdqHash.from_hex(found.group(1).lower()),
                         {"text": rest} if rest else {})


def _text_meta(meta: Mapping[str, Any]) -> str:
    if not meta:
        return ""
    if set(meta) == {"text"}:
        text = str(meta["text"])
    else:
        text = json.dumps(dict(meta), sort_keys=True, separators=(",", ":"))
    return " ".join(text.split())  # one line


def _write_text(out: TextIO, records: Iterable[HashRecord]) -> int:
    count = 0
    for record in records:
        meta = _text_meta(record.meta)
        out.write(f"{record.pdq.hex},{meta}\n" if meta else f"{record.pdq.hex}\n")
        count += 1
    return count


# --- ThreatExchange and HMA (via the threatexchange package) --------------------------------


def _threatexchange() -> Any:
    try:
        from threatexchange.cli.dataset import simple_serialization
        from threatexchange.signal_type.pdq.signal import PdqSignal
    except ImportError as exc:  # pragma: no cover - depends on the install
        raise HashListError("the te and hma formats need the threatexchange package: "
                            "pip install 'covey[exchange]'") from exc
    return simple_serialization, PdqSignal


def _parse_te(stream: TextIO, fmt: HashListFormat) -> Iterator[HashRecord]:
    serialization, pdq_signal = _threatexchange()
    from threatexchange.exchanges.clients.fb_threatexchange.descriptor import (
        SimpleDescriptorRollup,
    )

    for number, row in enumerate(csv.reader(stream), start=1):
        if not row or (len(row) == 1 and not row[0].strip()):
            continue
        try:
            if fmt is HashListFormat.HMA:
                item = serialization.HMASerialization.from_csv_row(row, TE_INDICATOR_TYPE)
                meta: dict[str, Any] = {"indicator_id": item.indicator_id}
            else:
                item = serialization.CliIndicatorSerialization(
                    TE_INDICATOR_TYPE, row[0], SimpleDescriptorRollup.from_row(row[1:]))
                meta = {}
            pdq = PdqHash.from_hex(pdq_signal.validate_signal_str(item.indicator))
        except (IndexError, ValueError, InvalidHash) as exc:
            raise HashListError(f"row {number}: not a {fmt.value} PDQ record: "
                                f"{','.join(row)[:80]!r} ({exc})") from exc
        rollup = item.rollup
        meta |= {"descriptor_id": rollup.first_descriptor_id, "added_on": rollup.added_on,
                 "labels": sorted(rollup.labels)}
        yield HashRecord(pdq, meta)


def _added_on(record: HashRecord) -> str:
    if record.added_ms is None:
        return ""
    return datetime.fromtimestamp(record.added_ms / 1000, UTC).isoformat(timespec="seconds")


def _labels(meta: Mapping[str, Any]) -> set[str]:
    labels = meta.get("labels")
    if isinstance(labels, list):
        return {str(label) for label in labels if str(label).strip()}
    text = meta.get("text")
    return set(str(text).split()) if text else set()


def _write_te(out: TextIO, records: Iterable[HashRecord], fmt: HashListFormat) -> int:
    serialization, _ = _threatexchange()
    from threatexchange.exchanges.clients.fb_threatexchange.descriptor import (
        SimpleDescriptorRollup,
    )

    writer = csv.writer(out)
    count = 0
    for record in records:
        meta = record.meta
        try:
            descriptor_id = int(meta.get("descriptor_id", 0))
        except (TypeError, ValueError):
            descriptor_id = 0
        rollup = SimpleDescriptorRollup(descriptor_id, str(meta.get("added_on") or
                                                           _added_on(record)), _labels(meta))
        item: Any
        if fmt is HashListFormat.HMA:
            item = serialization.HMASerialization(
                record.pdq.hex, TE_INDICATOR_TYPE, str(meta.get("indicator_id", "")), rollup)
        else:
            item = serialization.CliIndicatorSerialization(TE_INDICATOR_TYPE, record.pdq.hex,
                                                           rollup)
        writer.writerow(item.as_csv_row())
        count += 1
    return count


def dumps(records: Iterable[HashRecord], fmt: HashListFormat) -> str:
    out = io.StringIO()
    write(out, records, fmt)
    return out.getvalue()
