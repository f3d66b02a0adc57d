"""The visibility catalog: every column of every table is classified (a new one fails
here until someone says what the server can read of it), and its arithmetic."""

from __future__ import annotations

import importlib
import pkgutil

import pytest
from sqlalchemy import Column, MetaData, String, Table

import covey.server.storage as storage
from covey.safety.policy import PolicyMode
from covey.safety.visibility import (
    CATALOG,
    HPKE_OVERHEAD_BYTES,
    Audience,
    Retention,
    Visibility,
    audience_of,
    catalog_json,
    coverage_problems,
    parse_participants,
    per_thousand,
    plaintext_size,
    retention_settings,
)
from covey.server.audit import load_schema
from covey.settings import Settings


def test_every_column_of_every_table_is_classified() -> None:
    problems = coverage_problems(load_schema().sorted_tables)
    assert problems == [], ("classify these in covey/safety/visibility.py (what can the "
                            "server read of them, and how long are they kept?):\n"
                            + "\n".join(problems))


def test_load_schema_registers_every_table_of_every_schema_module() -> None:
    metadata = load_schema()
    for module in pkgutil.iter_modules(storage.__path__):
        if not module.name.startswith("schema"):
            continue
        mod = importlib.import_module(f"covey.server.storage.{module.name}")
        for value in vars(mod).values():
            if isinstance(value, Table):
                assert metadata.tables.get(value.name) is value, (module.name, value.name)


def _copy_of_schema() -> MetaData:
    copy = MetaData()
    for table in load_schema().sorted_tables:
        table.to_metadata(copy)
    return copy


def test_a_new_column_or_table_without_a_class_is_reported() -> None:
    metadata = _copy_of_schema()
    metadata.tables["messages"].append_column(Column("preview_text", String(200)))
    Table("message_previews", metadata, Column("id", String(32), primary_key=True))
    problems = coverage_problems(metadata.sorted_tables)
    assert "column messages.preview_text is not classified" in problems
    assert "table message_previews is not classified" in problems


def test_a_stale_entry_is_reported() -> None:
    metadata = _copy_of_schema()
    metadata.remove(metadata.tables["mutes"])
    assert coverage_problems(metadata.sorted_tables) == [
        "table mutes is classified but does not exist"]


def test_every_retention_setting_is_a_setting() -> None:
    assert retention_settings() <= set(Settings.model_fields)
    assert {"mailbox_ttl_s", "safety_copy_retention_s", "evidence_retention_s"} <= (
        retention_settings())


def test_message_bodies_are_ciphertext_and_copies_are_readable() -> None:
    assert CATALOG["mailbox"].columns["body"].visibility is Visibility.CIPHERTEXT
    assert CATALOG["messages"].columns["group_body"].visibility is Visibility.CIPHERTEXT
    sealed = CATALOG["safety_copies"].columns["sealed"]
    assert sealed.visibility is Visibility.PLAINTEXT_READABLE
    assert sealed.sealed_overhead == HPKE_OVERHEAD_BYTES == 48
    assert CATALOG["safety_copies"].retention.setting == "safety_copy_retention_s"
    evidence = CATALOG["reports"]
    assert evidence.columns["sealed_evidence"].visibility is Visibility.PLAINTEXT_READABLE
    assert evidence.field_retention("sealed_evidence").setting == "evidence_retention_s"


def test_every_readable_field_names_its_reader() -> None:
    for name, table in CATALOG.items():
        for column in table.of(Visibility.PLAINTEXT_READABLE):
            assert table.columns[column].reader, f"{name}.{column}"


@pytest.mark.parametrize("mode", list(PolicyMode))
def test_safety_copies_hold_data_only_when_safeguarded(mode: PolicyMode) -> None:
    tables = {t["table"]: t for t in catalog_json(mode, {"safety_copy_retention_s": 86400})}
    safeguarded = mode is PolicyMode.SAFEGUARDED
    for name in ("safety_copies", "safety_copy_reads"):
        assert tables[name]["holds_data"] is safeguarded
        assert all(c["holds_data"] is safeguarded for c in tables[name]["columns"])
    assert tables["mailbox"]["holds_data"]
    assert tables["reports"]["holds_data"]  # reported evidence, in every mode
    sealed = next(c for c in tables["safety_copies"]["columns"] if c["column"] == "sealed")
    assert sealed["class"] == "plaintext-readable"
    assert "safety_copy_retention_s = 1 day" in sealed["retention"]


def test_retention_describes_its_setting() -> None:
    rule = Retention("until expiry", "mailbox_ttl_s")
    assert rule.describe({"mailbox_ttl_s": 30 * 86400}) == (
        "until expiry (mailbox_ttl_s = 30 days)")
    assert rule.describe({"mailbox_ttl_s": 90}) == "until expiry (mailbox_ttl_s = 90 s)"
    assert rule.describe(None) == "until expiry (mailbox_ttl_s)"
    days = Retention("valid", "age_band_validity_days")
    assert days.describe({"age_band_validity_days": 1}) == "valid (age_band_validity_days = 1 day)"
    assert Retention("kept").describe({}) == "kept"


NOW = 1_800_000_000_000
BANDS = {"ann": ("16+", NOW + 1), "bo": ("16+", NOW + 10**9), "kit": ("under-16", NOW + 10**9),
         "old": ("16+", NOW)}


@pytest.mark.parametrize(("participants", "audience"), [
    (["ann", "bo"], Audience.ADULTS),
    (["ann"], Audience.ADULTS),
    (["ann", "kit"], Audience.CHILDREN),     # under-16
    (["ann", "nobody"], Audience.CHILDREN),  # no band: unverified
    (["ann", "old"], Audience.CHILDREN),     # 16+ band expired at NOW: unverified
])
def test_audience_follows_current_bands(participants: list[str], audience: Audience) -> None:
    assert audience_of(participants, BANDS, NOW) is audience


def test_participants_must_be_a_list_of_ids() -> None:
    assert parse_participants('["a", "b"]') == ["a", "b"]
    with pytest.raises(ValueError, match="JSON list"):
        parse_participants('{"a": 1}')


def test_arithmetic() -> None:
    assert plaintext_size(48 * 3 + 700, 3) == 700
    assert plaintext_size(0, 0) == 0
    assert per_thousand(350, 4) == 87_500
    assert per_thousand(1, 3) == 333
    assert per_thousand(0, 5) == 0
    assert per_thousand(10, 0) is None


def test_the_audit_states_what_detection_reveals_in_each_mode() -> None:
    from covey.safety.policy import PolicyMode
    from covey.safety.visibility import CATALOG, DETECTION

    assert set(DETECTION) == set(PolicyMode)
    assert "detector_states" in DETECTION[PolicyMode.SAFEGUARDED]
    assert CATALOG["detector_states"].modes == {PolicyMode.SAFEGUARDED}
    assert "learns nothing" in DETECTION[PolicyMode.ON_DEVICE]
    assert "no detection" in DETECTION[PolicyMode.E2EE_ONLY]
