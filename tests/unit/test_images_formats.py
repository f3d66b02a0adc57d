"""Hash-list formats: plain text, and ThreatExchange's and HMA's CSV records, which the
threatexchange package itself reads and writes (round trips both ways)."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from covey.safety.images import PdqHash
from covey.safety.images.formats import (
    HashListError,
    HashListFormat,
    HashRecord,
    dumps,
    parse,
)
from covey.safety.images.sources import FileSource

A = "f8f8f0cee0f4a84f06370a22038f63f0b36e2ed596621e1d33e6b39c4e9c9b22"
B = "e64cc9d91c623882f8d1f1d9a398e78c9f199b3bd83924f2b7e11e0bf861b064"
C = "6227401f601ff4ccafcc9fad4b0d95d371a2eb7265a3285234d228ca94deeb2d"


def _parse(text: str, fmt: HashListFormat) -> list[HashRecord]:
    return list(parse(io.StringIO(text, newline=""), fmt))


def test_text_hashes_metadata_and_comments() -> None:
    records = _parse(f"# a list\n\n{A}\n{B.upper()}, case 12 (a,b)\n{C}\tseen twice\n",
                     HashListFormat.TEXT)
    assert [(r.pdq.hex, dict(r.meta)) for r in records] == [
        (A, {}), (B, {"text": "case 12 (a,b)"}), (C, {"text": "seen twice"})]


def test_text_reads_threatexchange_local_file_exchange_lines() -> None:
    # LocalFileSignalExchangeAPI.report_opinion appends f"{PdqSignal.get_name()} {hash}".
    from threatexchange.signal_type.pdq.signal import PdqSignal

    records = _parse(f"{PdqSignal.get_name()} {A}\n", HashListFormat.TEXT)
    assert [(r.pdq.hex, dict(r.meta)) for r in records] == [(A, {})]


def test_text_bad_line_names_its_number() -> None:
    with pytest.raises(HashListError, match="line 3: not a 64-hex PDQ hash"):
        _parse(f"{A}\n# fine\n{A[:-1]}\n", HashListFormat.TEXT)


@pytest.mark.parametrize("fmt", list(HashListFormat))
def test_round_trip(fmt: HashListFormat) -> None:
    originals = [HashRecord(PdqHash.from_hex(A), {"text": "first"}, 1_700_000_000_000),
                 HashRecord(PdqHash.from_hex(B), {}, 1_700_000_000_000)]
    once = _parse(dumps(originals, fmt), fmt)
    assert [r.pdq for r in once] == [r.pdq for r in originals]
    twice = _parse(dumps(once, fmt), fmt)
    assert [(r.pdq, dict(r.meta)) for r in twice] == [(r.pdq, dict(r.meta)) for r in once]
    if fmt is HashListFormat.TEXT:
        assert [dict(r.meta) for r in once] == [{"text": "first"}, {}]
    else:
        assert once[0].meta["labels"] == ["first"]
        assert once[0].meta["added_on"] == "2023-11-14T22:13:20+00:00"


def test_te_file_written_by_threatexchange_is_read(tmp_path: Path) -> None:
    from threatexchange.cli.dataset.simple_serialization import CliIndicatorSerialization
    from threatexchange.exchanges.clients.fb_threatexchange.descriptor import (
        SimpleDescriptorRollup,
    )

    rows = [CliIndicatorSerialization("HASH_PDQ", A, SimpleDescriptorRollup(
                1234, "2024-01-02T03:04:05+0000", {"csam", "verified"})),
            CliIndicatorSerialization("HASH_PDQ", B, SimpleDescriptorRollup(99, "x", set()))]
    [path] = CliIndicatorSerialization.store(tmp_path, rows)
    records = [r for d in FileSource(path, HashListFormat.TE).fetch() for r in
               d.updates.values() if r is not None]
    assert [(r.pdq.hex, dict(r.meta)) for r in records] == [
        (A, {"descriptor_id": 1234, "added_on": "2024-01-02T03:04:05+0000",
             "labels": ["csam", "verified"]}),
        (B, {"descriptor_id": 99, "added_on": "x", "labels": []})]


@pytest.mark.parametrize("fmt", [HashListFormat.TE, HashListFormat.HMA])
def test_our_export_is_read_by_threatexchange(tmp_path: Path, fmt: HashListFormat) -> None:
    from threatexchange.cli.dataset.simple_serialization import (
        CliIndicatorSerialization,
        HMASerialization,
    )

    records = [HashRecord(PdqHash.from_hex(A), {"indicator_id": "555", "descriptor_id": 7,
                                                "added_on": "2024", "labels": ["a", "b"]})]
    (tmp_path / "simple.HASH_PDQ.te").write_text(dumps(records, fmt), encoding="utf-8")
    loader = HMASerialization if fmt is HashListFormat.HMA else CliIndicatorSerialization
    [item] = list(loader.load(tmp_path))
    assert item.indicator == A
    assert (item.rollup.first_descriptor_id, item.rollup.added_on) == (7, "2024")
    assert item.rollup.labels == {"a", "b"}
    if fmt is HashListFormat.HMA:
        assert item.indicator_id == "555"


@pytest.mark.parametrize("fmt", [HashListFormat.TE, HashListFormat.HMA])
def test_te_bad_row_is_named(fmt: HashListFormat) -> None:
    with pytest.raises(HashListError, match="row 2"):
        _parse(f"{A},1,x,\nnot-a-hash,1,x,\n" if fmt is HashListFormat.TE
               else f"{A},5,1,x,\n{A.upper()},5,1,x,\n", fmt)


def test_file_source_checkpoint_skips_an_unchanged_file(tmp_path: Path) -> None:
    path = tmp_path / "list.txt"
    path.write_text(f"{A}\n", encoding="utf-8")
    source = FileSource(path)
    [delta] = list(source.fetch())
    assert delta.complete and list(delta.updates) == [A]
    assert list(source.fetch(delta.checkpoint)) == []
    path.write_text(f"{A}\n{B}\n", encoding="utf-8")
    [changed] = list(source.fetch(delta.checkpoint))
    assert list(changed.updates) == [A, B]
