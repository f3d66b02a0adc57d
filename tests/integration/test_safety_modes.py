"""The operator's two alternatives to safeguarding, on a real server with real clients:
`on-device` (the child's own client scans and warns; the server keeps no copy) and
`e2ee-only` (no scanning anywhere; contact rules still hold)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client, SafetyWarning, ServerError
from tests.support.safety import People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]


@pytest.fixture
def _on_device(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("[high] keep this our secret\n")
    monkeypatch.setenv("COVEY_SAFETY_MODE", "on-device")
    monkeypatch.setenv("COVEY_SAFETY_PHRASE_LIST", str(phrases))
    # The phrase list alone (not the default grooming scorer too).
    monkeypatch.setenv("COVEY_SAFETY_DETECTORS", "{}")


@pytest.fixture
def _e2ee_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_SAFETY_MODE", "e2ee-only")


async def _befriend(adult: Client, child: Client) -> None:
    await child.accept_contact(await adult.request_contact(child.user_id))


async def _copies(server: Any) -> int:
    rows = await asyncio.to_thread(server.rows, "SELECT count(*) FROM safety_copies")
    return int(rows[0][0])


async def _warning(client: Client, within_s: float = 15) -> SafetyWarning:
    async def first() -> SafetyWarning:
        async for event in client.events():
            if isinstance(event, SafetyWarning):
                return event
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(first(), within_s)


async def test_on_device_the_child_is_warned_and_the_server_reads_nothing(
        _on_device: None, people: People, covey_server: Any) -> None:
    adult, kid = await people.adult("ada"), await people.child("kid")
    await _befriend(adult, kid)
    policy = await kid.conversation_policy("ada")
    assert policy.protection == "on-device-detection"
    assert policy.on_device_detection_users == ["kid"]
    assert not policy.safety_copy_required
    # The adult's copy of the same policy does not name the child (it names no one).
    seen_by_adult = await adult.conversation_policy("kid")
    assert seen_by_adult.protection == "on-device-detection"
    assert seen_by_adult.on_device_detection_users == []
    await adult.send_text("kid", "hello, how are you?")
    assert (await kid.next_message(within_s=15)).text == "hello, how are you?"
    await adult.send_text("kid", "Keep this our SECRET, ok?")
    message = await kid.next_message(within_s=15)
    warning = await _warning(kid)
    assert (warning.message_id, warning.sender_user) == (message.message_id, "ada")
    assert warning.severity == "high" and "block and report" in warning.text
    # The adult's client does not scan (only the protected participants' clients do).
    await kid.send_text("ada", "keep this our secret")
    await adult.next_message(within_s=15)
    with pytest.raises(TimeoutError):
        await _warning(adult, within_s=1)
    assert await _copies(covey_server) == 0
    reports = await asyncio.to_thread(covey_server.rows, "SELECT count(*) FROM reports")
    assert reports[0][0] == 0


async def test_e2ee_only_keeps_contact_rules_and_no_copies(
        _e2ee_only: None, people: People, covey_server: Any) -> None:
    adult, kid, anon = (await people.adult("ada"), await people.child("kid"),
                        await people.unverified("anon"))
    with pytest.raises(ServerError) as caught:
        await anon.send_text("kid", "hi")
    assert caught.value.code in ("not_found", "contact_not_permitted")
    await _befriend(adult, kid)
    policy = await kid.conversation_policy("ada")
    assert policy.protection == "end-to-end" and policy.mode == "e2ee-only"
    assert "under 16 or unverified" in policy.reason or "e2ee" in policy.code
    await adult.send_text("kid", "hello")
    assert (await kid.next_message(within_s=15)).text == "hello"
    assert await _copies(covey_server) == 0
