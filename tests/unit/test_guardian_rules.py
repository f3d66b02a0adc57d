"""Guardian rules as tables: who may remove a link alone, which events alert which
guardians, and that an alert has no room for content."""

from __future__ import annotations

import pydantic
import pytest

from covey.age import AgeBand
from covey.protocol.wire import GuardianAlert, GuardianAlertFrame
from covey.server.services.guardians import (
    AlertDraft,
    alert_candidates,
    alert_drafts,
    removal_outcome,
    still_protected,
)
from covey.server.services.safety_events import (
    ContactAccepted,
    DetectionRaised,
    ReportFiled,
    UserBlocked,
)

U16, ADULT, UNVERIFIED = AgeBand.UNDER_16, AgeBand.SIXTEEN_PLUS, AgeBand.UNVERIFIED


@pytest.mark.parametrize(("by_guardian", "status", "band", "outcome"), [
    # A proposal is withdrawn or declined by either side, whatever the bands.
    (False, "pending", U16, "removed"),
    (True, "pending", U16, "removed"),
    # The guardian may always step down.
    (True, "active", U16, "removed"),
    (True, "removal_requested", U16, "removed"),
    # The child needs the guardian's consent until it proves 16+...
    (False, "active", U16, "removal_requested"),
    (False, "removal_requested", U16, "removal_requested"),
    # ...and a band that lapsed to unverified is no proof of having grown up.
    (False, "active", UNVERIFIED, "removal_requested"),
    (False, "active", ADULT, "removed"),
    (False, "removal_requested", ADULT, "removed"),
])
def test_removal_outcome(by_guardian: bool, status: str, band: AgeBand, outcome: str) -> None:
    assert removal_outcome(by_guardian=by_guardian, status=status, child_band=band) == outcome


def test_protection_lasts_until_the_child_proves_16_plus() -> None:
    assert still_protected(U16) and still_protected(UNVERIFIED)
    assert not still_protected(ADULT)


def _detection(severity: str = "high", *, participants: tuple[str, ...] = ("kid", "mallory"),
               sender: str = "mallory", code: str = "phrase_list.meeting",
               conversation: str = "dm:kid:mallory") -> DetectionRaised:
    # The scan queue asks for guardian alerts on high phrase-list signals (`Signal.asks`).
    return DetectionRaised(conversation, sender, participants, "phrase_list", code, severity, 1,
                           alert_guardians=severity == "high")


def test_a_report_alerts_the_reporters_guardians_with_its_category_only() -> None:
    event = ReportFiled("kid", "mallory", "grooming_or_enticement", 1)
    assert alert_candidates(event) == ("kid",)
    assert alert_drafts(event, {"kid": ["gina", "gus"]}) == [
        AlertDraft("gina", "kid", "report_filed", category="grooming_or_enticement"),
        AlertDraft("gus", "kid", "report_filed", category="grooming_or_enticement")]


def test_a_guardian_is_never_told_about_itself() -> None:
    """A guardian who is the threat must not learn it was reported, flagged or met."""
    report = ReportFiled("kid", "gina", "grooming_or_enticement", 1)
    assert alert_drafts(report, {"kid": ["gina", "gus"]}) == [
        AlertDraft("gus", "kid", "report_filed", category="grooming_or_enticement")]
    contact = ContactAccepted("gina", "kid", 1)
    assert alert_drafts(contact, {"kid": ["gina"]}) == []
    flagged = _detection(participants=("kid", "gina"), sender="gina",
                         conversation="dm:gina:kid")
    assert alert_drafts(flagged, {"kid": ["gina", "gus"]}) == [
        AlertDraft("gus", "kid", "high_risk_detection", conversation_id="dm:gina:kid",
                   detector="phrase_list", code="phrase_list.meeting", severity="high")]


def test_a_contact_alerts_either_sides_guardians_with_the_other_account() -> None:
    event = ContactAccepted("kid", "pal", 1)
    assert alert_candidates(event) == ("kid", "pal")
    assert alert_drafts(event, {"kid": ["gina"], "pal": ["pam"]}) == [
        AlertDraft("gina", "kid", "contact_accepted", other_user="pal"),
        AlertDraft("pam", "pal", "contact_accepted", other_user="kid")]
    assert alert_drafts(event, {}) == []


def test_only_high_severity_detections_alert() -> None:
    assert alert_candidates(_detection("medium")) == ()
    assert alert_drafts(_detection("medium"), {"kid": ["gina"]}) == []
    assert alert_drafts(_detection("low"), {"kid": ["gina"]}) == []
    group = _detection(participants=("kid", "pal", "mallory"),
                       conversation="grp_abcdefghijkl")
    assert alert_candidates(group) == ("kid", "pal", "mallory")
    assert [(d.guardian, d.child) for d in alert_drafts(
        group, {"kid": ["gina"], "pal": ["pam"]})] == [("gina", "kid"), ("pam", "pal")]


def test_blocks_alert_nobody() -> None:
    assert alert_candidates(UserBlocked("kid", "mallory", 1)) == ()
    assert alert_drafts(UserBlocked("kid", "mallory", 1), {"kid": ["gina"]}) == []


def test_codes_outside_the_servers_vocabulary_are_not_passed_on() -> None:
    odd = _detection(code="phrase_list.Meet Me Alone", conversation="not a conversation")
    (draft,) = alert_drafts(odd, {"kid": ["gina"]})
    assert (draft.code, draft.conversation_id) == ("unknown", None)
    (report,) = alert_drafts(ReportFiled("kid", "m", "send me a photo", 1), {"kid": ["gina"]})
    assert report.category == "unknown"


def test_an_alert_has_no_room_for_content() -> None:
    base = {"alert_id": "ga_abcdefghij", "guardian": "gina", "child": "kid",
            "kind": "report_filed", "created_at_ms": 1, "category": "harassment"}
    GuardianAlert.model_validate(base)
    for extra in ({"text": "hi"}, {"message_id": "a" * 22}, {"attachments": []},
                  {"details": {"text": "hi"}}):
        with pytest.raises(pydantic.ValidationError):
            GuardianAlert.model_validate({**base, **extra})
    for field, value in (("category", "meet me alone"), ("code", "x" * 65),
                         ("kind", "message"), ("severity", "critical")):
        with pytest.raises(pydantic.ValidationError):
            GuardianAlert.model_validate({**base, field: value})
    frame = GuardianAlertFrame(alert=GuardianAlert.model_validate(base))
    assert frame.model_dump()["type"] == "guardian_alert"
