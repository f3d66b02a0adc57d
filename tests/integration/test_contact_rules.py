"""Contact rules on a real server, real clients and real age proofs (every mode): an
unverified and a 16+ account try every path to an under-16 (direct message, group add,
handle search, invite link) and are refused with clear errors that do not say why; an
accepted contact request opens the way; per-sender request limits; the bar after several
children block or report someone, and the child's safety notice; blocks and mutes for
everyone."""

from __future__ import annotations

import asyncio
import functools
import re
import subprocess
import sys
from typing import Any

import pytest

from covey.client import Client, ServerError
from tests.support.age import PASSPHRASE
from tests.support.devices import join_group
from tests.support.safety import People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

# What the actor may be told: never "this is a child" or "you are unverified".
PUBLIC_CODES = {"not_found", "contact_not_permitted", "contact_request_required"}


async def _refused(call: Any, *codes: str) -> ServerError:
    with pytest.raises(ServerError) as caught:
        await call
    error = caught.value
    assert 400 <= error.status < 500, error
    assert error.code in (codes or PUBLIC_CODES), (error.code, error.message)
    text = f"{error.code} {error.message} {error.details}".lower()
    leak = re.search(r"\b(16|ages?|child|children|minor|under|unverified|verified|limit)\b",
                     text)
    assert leak is None, f"refusal leaks {leak.group(0)!r}: {text}"
    return error


async def _every_path_refused(stranger: Client, kid: Client) -> None:
    # Handle search: exactly like an unknown handle.
    unknown = await _refused(stranger.find_user("nobody-here"), "not_found")
    found = await _refused(stranger.find_user(kid.user_id), "not_found")
    assert found.message == unknown.message
    # A conversation's policy would tell the child's band: refused the same way.
    policy = await _refused(stranger.conversation_policy(kid.user_id), "not_found")
    assert policy.message == unknown.message
    assert (await stranger.find_user(stranger.user_id)).user_id == stranger.user_id
    # Direct message.
    await _refused(stranger.send_text(kid.user_id, "hi there"))
    # Group add, at creation and later: the child is an unknown user to the stranger.
    await _refused(stranger.create_group("club", [kid.user_id]), "unknown_user")
    group = await stranger.create_group("club", [])
    await _refused(stranger.add_member(group.group_id, kid.user_id), "unknown_user")
    # Invite link: the child redeeming the stranger's link is refused too.
    invite = await stranger.create_invite(group.group_id)
    await _refused(kid.join_invite(invite.token))
    assert [m.user_id for m in (await stranger._api.group(group.group_id)).members] == [
        stranger.user_id]


@pytest.mark.shared_server
async def test_unverified_and_adult_strangers_cannot_reach_a_child(people: People) -> None:
    kid = await people.child("kid")
    adult, anon = await people.adult("adam"), await people.unverified("anon")
    await _every_path_refused(adult, kid)
    await _every_path_refused(anon, kid)
    # An unverified account's request is answered like any (so it tells nothing) and
    # withheld: the child never sees it.
    await anon.request_contact(kid.user_id)
    assert [r.requester for r in (await kid.contact_requests()).incoming] == []
    # Nothing reached the child.
    with pytest.raises(TimeoutError):
        await kid.next_message(within_s=0.5)


async def test_an_accepted_request_opens_the_way(people: People) -> None:
    kid, adult = await people.child("kid"), await people.adult("aunt")
    request_id = await adult.request_contact(kid.user_id)
    await _refused(adult.send_text(kid.user_id, "before accepting"))
    incoming = (await kid.contact_requests()).incoming
    assert [(r.request_id, r.requester) for r in incoming] == [(request_id, "aunt")]
    accepted = await kid.accept_contact(request_id)
    assert accepted.status == "accepted"
    assert (await adult.find_user(kid.user_id)).contact
    await adult.send_text(kid.user_id, "hello!")
    assert (await kid.next_message(within_s=15)).text == "hello!"
    group = await adult.create_group("family", [kid.user_id])
    assert group.invited == [kid.user_id]  # invited, not added: the child accepts
    await join_group(group.group_id, kid)
    await adult.send_text(group.group_id, "family news")
    assert (await kid.next_message(within_s=15)).text == "family news"
    # Another adult still can't bring the child into a group of strangers via that group.
    other = await people.adult("stranger")
    await _refused(other.join_invite((await adult.create_invite(group.group_id)).token))


async def test_a_child_declining_keeps_the_door_shut(people: People) -> None:
    kid, adult = await people.child("kid"), await people.adult("adam")
    request_id = await adult.request_contact(kid.user_id)
    assert (await kid.decline_contact(request_id)).status == "declined"
    await _refused(adult.send_text(kid.user_id, "hello?"))


@pytest.fixture
def _low_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_MINOR_CONTACT_REQUEST_LIMIT", "2")


@pytest.fixture
def _low_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_MINOR_BLOCK_REPORT_THRESHOLD", "2")


async def test_requests_to_children_are_rate_limited_per_sender(_low_limits: None,
                                                                people: People) -> None:
    adult = await people.adult("adam")
    kids = [await people.child(f"kid{i}") for i in range(3)]
    await adult.request_contact(kids[0].user_id)
    await adult.request_contact(kids[1].user_id)
    # Over the limit: answered as sent (a refusal would tell a child's handle), withheld.
    await adult.request_contact(kids[2].user_id)
    assert (await kids[2].contact_requests()).incoming == []
    assert len((await kids[1].contact_requests()).incoming) == 1
    # Requests to adults are not counted against it.
    await adult.request_contact((await people.adult("bea")).user_id)


@pytest.fixture
def _low_lookup_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_RATE_LOOKUP_BURST", "3")
    monkeypatch.setenv("COVEY_RATE_LOOKUP_PER_MIN", "1")
    monkeypatch.setenv("COVEY_RATE_CONTACT_BURST", "2")
    monkeypatch.setenv("COVEY_RATE_CONTACT_PER_MIN", "1")


async def test_probing_for_accounts_is_rate_limited(_low_lookup_limits: None,
                                                    people: People) -> None:
    """Each answer says something about an account: searches, a DM's policy and contact
    requests (to anyone) are limited per account, with a clear 429."""
    prober = await people.adult("adam")
    await _refused(prober.find_user("nobody0"), "not_found")
    await _refused(prober.find_user("nobody1"), "not_found")
    await _refused(prober.conversation_policy("nobody2"), "not_found")
    limited = await _refused(prober.find_user("nobody3"), "rate_limited")
    assert limited.status == 429 and limited.details["retry_after_s"] >= 1
    await _refused(prober._api.conversation_policy("dm:adam:nobody4"), "rate_limited")
    # Looking oneself up (and one's contacts and fellow members) costs nothing.
    assert (await prober.find_user("adam")).user_id == "adam"
    bea, cal = await people.adult("bea"), await people.adult("cal")
    await prober.request_contact(bea.user_id)
    await prober.request_contact(cal.user_id)
    await _refused(prober.request_contact("dan"), "rate_limited")


async def test_children_blocking_bars_an_adult_and_warns_the_rest(_low_threshold: None,
                                                                  people: People) -> None:
    adult = await people.adult("adam")
    friend, kid1, kid2, kid3 = [await people.child(h) for h in ("pal", "kid1", "kid2", "kid3")]
    # `pal` accepted adam earlier: adam stays reachable for pal, with a notice.
    await friend.accept_contact(await adult.request_contact(friend.user_id))
    # A request adam sent kid3 before the bar ...
    early = await adult.request_contact(kid3.user_id)
    assert [r.request_id for r in (await kid3.contact_requests()).incoming] == [early]
    for kid in (kid1, kid2):
        await kid.accept_contact(await adult.request_contact(kid.user_id))
        await kid.block(adult.user_id)
    # ... is void once he is barred: gone from kid3's inbox, and accepting it is refused
    # (adam is not told: to him it still waits).
    assert (await kid3.contact_requests()).incoming == []
    await _refused(kid3.accept_contact(early), "unknown_contact_request")
    assert [r.request_id for r in (await adult.contact_requests()).outgoing] == [early]
    await _refused(adult.send_text(kid3.user_id, "hi"), "not_found",
                   "contact_request_required")
    # New requests to children are withheld the same way.
    kid4 = await people.child("kid4")
    await adult.request_contact(kid4.user_id)
    assert (await kid4.contact_requests()).incoming == []
    (contact,) = await friend.contacts()
    assert contact.user_id == "adam" and contact.safety_notice is not None
    assert "blocked or reported" in contact.safety_notice.text
    # Adults see no notice about adults, and the notice says nothing to adam himself.
    assert all(c.safety_notice is None for c in await adult.contacts())
    await adult.send_text(friend.user_id, "still reachable")
    assert (await friend.next_message(within_s=15)).text == "still reachable"


@pytest.mark.shared_server
async def test_block_and_mute_work_for_everyone(people: People) -> None:
    alice, bob, carol = [await people.adult(h) for h in ("alice", "bob", "carol")]
    await alice.send_text("bob", "hi bob")
    assert (await bob.next_message(within_s=15)).text == "hi bob"
    group = await alice.create_group("book club", ["bob", "carol"])
    await bob.block("alice")
    assert await bob.blocked() == ["alice"]
    # Direct: alice can no longer reach bob, nor ask to be his contact. Her message is
    # accepted as sent (she is not told) and never reaches bob (his next is carol's).
    await alice.send_text("bob", "are you there?")
    assert alice.pending_sends() == 0
    # Her request is answered as sent, but bob never sees it (nor is she told).
    await alice.request_contact("bob")
    assert (await bob.contact_requests()).incoming == []
    # In the group they share, bob's client hides alice; carol still reads her.
    await alice.send_text(group.group_id, "chapter 3 tonight")
    assert (await carol.next_message(within_s=15)).text == "chapter 3 tonight"
    await carol.send_text(group.group_id, "see you there")
    assert (await bob.next_message(within_s=15)).text == "see you there"
    # Mute: carol's messages still arrive for bob, marked muted, on every device.
    await bob.mute("carol")
    assert await bob.muted() == ["carol"]
    await carol.send_text("bob", "psst")
    message = await bob.next_message(within_s=15)
    assert message.text == "psst" and message.muted
    await bob.mute("carol", False)
    await bob.unblock("alice")
    await alice.send_text("bob", "friends again?")
    assert (await bob.next_message(within_s=15)).text == "friends again?"


# --- the command line --------------------------------------------------------------------


def _contacts(*args: str, ok: bool = True) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "covey", "contacts", *args], capture_output=True, text=True,
        timeout=120, env={"COVEY_PASSPHRASE": PASSPHRASE, "COLUMNS": "200",
                          "PATH": "/usr/bin:/bin"})
    assert (result.returncode == 0) is ok, result.stdout + result.stderr
    return result.stdout


async def test_covey_contacts_requests_accepts_and_blocks(people: People) -> None:
    adam, kid, anon = (await people.adult("adam"), await people.child("kid"),
                       await people.unverified("anon"))
    for client in (adam, kid, anon):
        await client.close()  # the command opens the same stores
    run = functools.partial(asyncio.to_thread, _contacts)
    adam_store, kid_store, anon_store = (str(people.tmp / f"{h}.db")
                                         for h in ("adam", "kid", "anon"))

    assert "not_found" in await run("find", "kid", "--store", anon_store, ok=False)
    # anon's request is withheld (kid never sees it); adam's shows his checked band.
    await run("request", "kid", "--store", anon_store)
    sent = await run("request", "kid", "--store", adam_store)
    (request_id,) = re.findall(r"cr_[0-9a-f]{24}", sent)
    waiting = await run("requests", "--store", kid_store)
    assert "waiting for you" in waiting and "adam (age: 16 or over)" in waiting
    assert "anon" not in waiting
    assert "adam is now your contact" in await run("accept", request_id, "--store", kid_store)
    assert "adam" in await run("list", "--store", kid_store)
    assert "kid (a contact)" in await run("find", "kid", "--store", adam_store)
    await run("block", "anon", "--store", kid_store)
    await run("mute", "adam", "--store", kid_store)
    shown = await run("blocked", "--store", kid_store)
    assert "blocked: anon" in shown and "muted: adam" in shown
    await run("unblock", "anon", "--store", kid_store)
    assert "blocked: —" in await run("blocked", "--store", kid_store)
