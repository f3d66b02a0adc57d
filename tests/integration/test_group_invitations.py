"""Group invitations (issue 9, item 15), against a real `covey server` with real SDK
clients: nobody makes an unverified or under-16 account a group member; it is invited,
told so live, and joins only by accepting (the contact rules asked again then). A
verified 16+ account is still added directly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.client import Client, GroupInvited, ServerError
from tests.support.devices import nothing_more
from tests.support.raw import new_handle
from tests.support.safety import People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(300)]


async def _invited(client: Client, within_s: float = 15) -> GroupInvited:
    async def first() -> GroupInvited:
        async for event in client.events():
            if isinstance(event, GroupInvited):
                return event
        raise AssertionError("events ended")

    return await asyncio.wait_for(first(), within_s)


async def _befriend(a: Client, b: Client) -> None:
    await b.accept_contact(await a.request_contact(b.user_id))


async def test_an_unverified_account_is_invited_never_added(
        people: People, covey_server: Any) -> None:
    ada, cal = await people.adult("ada"), await people.adult("cal")
    una = await people.unverified("una")
    told = asyncio.create_task(_invited(una))
    await asyncio.sleep(0.2)
    group = await ada.create_group("climbing", [una.user_id, cal.user_id])
    # The adult is a member at once; the unverified account only invited.
    assert sorted(m.user_id for m in group.members) == ["ada", "cal"]
    assert group.invited == ["una"] and group.epoch == 0
    # Only admins see who is invited (an invitation says "unverified or under 16").
    (seen_by_cal,) = [g for g in await cal.groups() if g.group_id == group.group_id]
    assert seen_by_cal.invited == []
    event = await told
    assert (event.group_id, event.group_name, event.invited_by) == (
        group.group_id, "climbing", "ada")
    assert await una.groups() == []
    # Not a member: nothing sent to the group reaches it, and it cannot send.
    await ada.send_text(group.group_id, "welcome, cal")
    assert (await cal.next_message(within_s=15)).text == "welcome, cal"
    await nothing_more(una, 0.5)
    with pytest.raises(ServerError) as refused:
        await una.send_text(group.group_id, "let me in")
    assert refused.value.status in (403, 404)
    # Someone else cannot answer it for her.
    with pytest.raises(ServerError) as stolen:
        await cal.accept_group_invitation(event.invitation_id)
    assert (stolen.value.status, stolen.value.code) == (404, "unknown_invitation")

    (listed,) = await una.group_invitations()
    assert listed.invitation_id == event.invitation_id
    joined = await una.accept_group_invitation(event.invitation_id)
    assert "una" in [m.user_id for m in joined.members] and joined.epoch == 1
    assert await una.group_invitations() == []
    await ada.send_text(group.group_id, "hello una")
    assert (await una.next_message(within_s=15)).text == "hello una"


async def test_adding_asks_and_a_declined_invitation_adds_nobody(
        people: People, covey_server: Any) -> None:
    ada = await people.adult("ada")
    await people.adult("cal")
    una = await people.unverified("una")
    group = await ada.create_group("book club", [])
    token = ada._api.token
    async with httpx.AsyncClient(base_url=covey_server.url, timeout=30) as http:
        headers = {"Authorization": f"Bearer {token}"}
        direct = await http.post(f"/v1/groups/{group.group_id}/members", headers=headers,
                           json={"user_id": "cal"})
        assert direct.status_code == 200 and direct.json()["epoch"] == 1
        asked = await http.post(f"/v1/groups/{group.group_id}/members", headers=headers,
                          json={"user_id": "una"})
        assert asked.status_code == 202, asked.text
        assert asked.json()["epoch"] == 1 and asked.json()["invited"] == ["una"]
        assert "una" not in [m["user_id"] for m in asked.json()["members"]]
        again = await http.post(f"/v1/groups/{group.group_id}/members", headers=headers,
                          json={"user_id": "una"})
        assert again.status_code == 202  # still the one pending invitation
    (invitation,) = await una.group_invitations()
    await una.decline_group_invitation(invitation.invitation_id)
    assert await una.group_invitations() == []
    with pytest.raises(ServerError) as late:
        await una.accept_group_invitation(invitation.invitation_id)
    assert (late.value.status, late.value.code) == (404, "unknown_invitation")
    info = next(g for g in await ada.groups() if g.group_id == group.group_id)
    assert sorted(m.user_id for m in info.members) == ["ada", "cal"] and info.invited == []


async def test_a_child_is_invited_and_the_rules_are_asked_again_on_accepting(
        people: People, covey_server: Any) -> None:
    ada, kid = await people.adult("ada"), await people.child("kid")
    bob = await people.adult("bob")
    await _befriend(ada, kid)
    group = await ada.create_group("family", [kid.user_id])
    assert group.invited == ["kid"] and [m.user_id for m in group.members] == ["ada"]
    (invitation,) = await kid.group_invitations()
    assert invitation.invited_by == "ada"
    joined = await kid.accept_group_invitation(invitation.invitation_id)
    assert sorted(m.user_id for m in joined.members) == ["ada", "kid"]
    await ada.send_text(group.group_id, "family news")
    assert (await kid.next_message(within_s=15)).text == "family news"

    # A second group: the child removes ada as a contact before answering; the contact
    # rules, asked again on accepting, no longer let her in with ada.
    await _befriend(bob, kid)
    other = await bob.create_group("chess", [kid.user_id])
    await bob.add_member(other.group_id, "ada")
    (pending,) = await kid.group_invitations()
    assert pending.group_id == other.group_id
    await kid.remove_contact("ada")
    with pytest.raises(ServerError) as refused:
        await kid.accept_group_invitation(pending.invitation_id)
    assert refused.value.status == 403
    info = next(g for g in await bob.groups() if g.group_id == other.group_id)
    assert "kid" not in [m.user_id for m in info.members]


@pytest.mark.shared_server
async def test_covey_chat_shows_an_invitation_and_joins(covey_server: Any,
                                                        tmp_path: Path) -> None:
    from tests.integration.test_client_chat import _chat, _read_until, _type

    ada = await Client.register(covey_server.url, new_handle("ada"), tmp_path / "ada.db",
                                "pw", scrypt_n=2**12)
    try:
        await ada.wait_connected()
        handle = new_handle("una")
        chat = await _chat("--server", covey_server.url, "--store", str(tmp_path / "una.db"),
                           "--register", handle, "--to", ada.user_id)
        await _read_until(chat, "safeguarded")
        group = await ada.create_group("climbing", [handle])
        assert group.invited == [handle]
        output = await _read_until(chat, "/join gi_")
        assert f"{ada.user_id} invites you to the group climbing" in output
        invitation_id = output[output.index("/join gi_") + len("/join "):].split()[0]
        await _type(chat, "/invitations")
        await _read_until(chat, f"{invitation_id}  climbing (from {ada.user_id})")
        await _type(chat, f"/join {invitation_id}")
        await _read_until(chat, "joined climbing; now talking to it")
        await _type(chat, "hello club")
        message = await ada.next_message(20)
        assert (message.text, message.conversation_id) == ("hello club", group.group_id)
        await _type(chat, "/quit")
        assert await asyncio.wait_for(chat.wait(), 20) == 0
    finally:
        await ada.close()
