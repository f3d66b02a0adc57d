"""The pure parts of server-side reporting: sealing at rest, priority, blocks and
suspensions, the client's report window, and the transparency counts and chart."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from covey.client._reporting import build_report
from covey.errors import CoveyError, Forbidden, InvalidInput
from covey.moderation import ReportCategory
from covey.moderation.simulate import FrankedConversation
from covey.moderation.transparency import TransparencyRow, transparency_counts
from covey.protocol.secrets import ServerFrankingKey
from covey.server.services.reports import EvidenceVault, SafetyGate, report_priority
from covey.web.charts import transparency_svg


def test_vault_seals_and_binds_to_the_report(tmp_path: Path) -> None:
    vault = EvidenceVault(tmp_path / "reports.key")
    sealed = vault.seal("rep_1", {"text": "a generated secret sentence"})
    assert b"generated secret" not in sealed
    assert vault.open("rep_1", sealed) == {"text": "a generated secret sentence"}
    with pytest.raises(CoveyError):
        vault.open("rep_2", sealed)  # moved to another report
    with pytest.raises(CoveyError):
        vault.open("rep_1", sealed[:-1] + bytes([sealed[-1] ^ 1]))
    assert (tmp_path / "reports.key").stat().st_mode & 0o777 == 0o600
    assert EvidenceVault(tmp_path / "reports.key").open("rep_1", sealed)  # same key file


def test_priority_puts_child_safety_and_under_16_first() -> None:
    ranked = sorted([(False, "16+"), (True, "unverified"), (False, "under-16"),
                     (True, "under-16")], key=lambda x: -report_priority(*x))
    assert ranked == [(True, "under-16"), (True, "unverified"), (False, "under-16"),
                      (False, "16+")]


def test_gate_blocks_direct_messages_one_way_and_suspends() -> None:
    gate = SafetyGate()
    gate.blocked.add(("bob", "alice"))
    # alice's send is not refused (she is not told): bob is named, to get nothing of it.
    assert gate.check_send("alice", "dm:alice:bob", ["alice", "bob"]) == {"bob"}
    assert gate.check_send("bob", "dm:alice:bob", ["alice", "bob"]) == frozenset()
    assert gate.check_send("alice", "grp_abcdefghijklmnop", ["alice", "bob"]) == frozenset()
    gate.suspended.add("alice")
    with pytest.raises(Forbidden):
        gate.check_login("alice")
    with pytest.raises(Forbidden):
        gate.check_send("alice", "grp_abcdefghijklmnop", ["alice", "bob"])


def _history(chat: FrankedConversation, holder: str) -> list[dict[str, object]]:
    records: list[dict[str, object]] = []
    for message in chat.messages:
        item = chat.evidence(message, holder, tagged=message.sender_user != holder)
        data = item.model_dump(mode="json")
        records.append({"direction": "out" if message.sender_user == holder else "in",
                        "content": data["content"], "commitment": data["commitment"],
                        "tag": data["tag"], "context": data["context"],
                        "recipient_user": data["context"]["recipient_user"],
                        "server_ts_ms": data["context"]["server_ts_ms"]})
    return records


def test_client_report_window_is_ten_preceding_messages_both_ways() -> None:
    chat = FrankedConversation(ServerFrankingKey(os.urandom(32)), "dm:alice:bob",
                               ("alice", "bob"))
    for i in range(14):
        chat.send("alice" if i % 2 else "bob", "DEVICE01", f"generated line {i}")
    reported = chat.messages[-1]  # from alice
    history = _history(chat, "bob")
    report = build_report(history, "bob", reported.content.message_id,
                          ReportCategory.HARASSMENT, "comment")
    assert len(report.messages) == 11
    assert report.messages[-1].message_id == reported.content.message_id
    assert {m.context.sender_user for m in report.messages} == {"alice", "bob"}
    with pytest.raises(InvalidInput):  # one's own message is not reportable
        build_report(history, "bob", chat.messages[-2].content.message_id, "spam")
    with pytest.raises(InvalidInput):
        build_report(history, "bob", "nosuchmessageid00000", "spam")


@pytest.mark.slow
def test_transparency_counts_and_chart() -> None:
    rows = [TransparencyRow(1_767_225_600_000, "grooming_or_enticement", "escalated",
                            "safeguarded", "under-16"),
            TransparencyRow(1_767_225_600_000 + 40 * 86_400_000, "spam", "dismissed",
                            "e2ee-only", "16+", reported_verified=False),
            TransparencyRow(1_767_225_600_000, "spam", "pending", "safeguarded",
                            "unverified")]
    counts = transparency_counts(rows)
    assert counts["total"] == 3 and counts["reported_message_verified"] == 2
    assert counts["by_month"] == {"2026-01": 2, "2026-02": 1}
    assert counts["by_category"] == {"grooming_or_enticement": 1, "spam": 2}
    assert counts["by_action"] == {"dismissed": 1, "escalated": 1, "pending": 1}
    assert counts["by_policy_mode"] == {"e2ee-only": 1, "safeguarded": 2}
    assert counts["by_reporter_band"] == {"16+": 1, "under-16": 1, "unverified": 1}
    svg = transparency_svg(counts)
    assert svg.lstrip().startswith("<?xml") and "<svg" in svg
    assert "<svg" in transparency_svg(transparency_counts([]))
