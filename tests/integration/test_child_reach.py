"""Who may reach a child, on a real server with real clients and real age proofs: a child
whose under-16 band lapsed stays protected; only accepted contacts message a child,
another child included; a child is shown the requester's band as the server knows it;
a declined sender waits out a cooldown; and once an account proves 16+ the rows that
said it was a child are gone."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

import pytest

from covey.client import Client, ContactRequestReceived, GroupMembersWithheld, ServerError
from tests.integration._age import PASSPHRASE
from tests.integration._safety import People, band_issuer, people, trust_band_issuer
from tests.support.devices import join_group

__all__ = ["band_issuer", "people", "trust_band_issuer"]

pytestmark = [pytest.mark.timeout(240), pytest.mark.slow]

DAY_S = 24 * 3600


async def _status(call: Any) -> ServerError:
    with pytest.raises(ServerError) as caught:
        await call
    return caught.value


E = TypeVar("E")


async def _next_event(client: Client, kind: type[E], within_s: float = 15) -> E:
    async def wait() -> E:
        async for event in client.events():
            if isinstance(event, kind):
                return event
        raise AssertionError("event stream ended")

    return await asyncio.wait_for(wait(), within_s)


async def _next_request(client: Client, within_s: float = 15) -> ContactRequestReceived:
    return await _next_event(client, ContactRequestReceived, within_s)


async def _reopen(people: People, client: Client, days: int, *,
                  connect: bool = True) -> Client:
    """The same device again, its wallet's clock `days` ahead like the server's."""
    await client.close()
    later = datetime.now(UTC) + timedelta(days=days)
    again = await Client.open(people.tmp / f"{client.user_id}.db", PASSPHRASE,
                              connect=connect, age_clock=lambda: later)
    people.clients.append(again)
    return again


def _days_later(people: People, days: int) -> None:
    people.server.restart({"COVEY_AGE_CLOCK_OFFSET_S": str(days * DAY_S)})


async def test_a_lapsed_child_stays_hidden_and_unreachable(people: People) -> None:
    kid = await people.child("kidaa")
    adult, anon = await people.adult("adam"), await people.unverified("anon")
    await kid.close()  # offline: nothing proves the band again
    # 91 days on: the child's under-16 band has lapsed; the adult proves 16+ again.
    _days_later(people, 91)
    adult = await _reopen(people, adult, 91)
    assert (await adult.prove_age()).band == "16+"
    rows = await asyncio.to_thread(people.server.rows,
                                   "SELECT band, expires_ms FROM age_bands "
                                   "WHERE user_id = 'kidaa'")
    assert rows and rows[0][0] == "under-16"
    for stranger in (adult, anon):
        assert (await _status(stranger.find_user("kidaa"))).code == "not_found"
        assert (await _status(stranger.send_text("kidaa", "hi"))).code == "not_found"
        assert (await _status(stranger.create_group("club", ["kidaa"]))).code == "unknown_user"
        await stranger.request_contact("kidaa")
    # Back online, the child finds only the 16+ stranger's request (it decides), and
    # the unverified one's withheld.
    kid = await Client.open(people.tmp / "kidaa.db", PASSPHRASE, connect=False)
    people.clients.append(kid)
    assert [r.requester for r in (await kid.contact_requests()).incoming] == ["adam"]


async def test_only_accepted_contacts_message_a_child_even_another_child(
        people: People) -> None:
    kid, pal = await people.child("kidaa"), await people.child("palaa")
    adult, anon = await people.adult("adam"), await people.unverified("anon")
    # Children find each other, but a message needs an accepted request first.
    assert (await kid.find_user("palaa")).user_id == "palaa"
    refused = await _status(kid.send_text("palaa", "hi"))
    assert (refused.status, refused.code) == (403, "contact_request_required")
    assert (await _status(kid.create_group("pals", ["palaa"]))).code == \
        "contact_request_required"
    # Each request shows the child who asks, as the server knows them.
    await kid.request_contact("palaa")
    assert (await _next_request(pal)).requester_band == "under-16"
    await adult.request_contact("palaa")
    shown = await _next_request(pal)
    assert (shown.requester, shown.requester_band, shown.band_words) == (
        "adam", "16+", "16 or over")
    await anon.request_contact("palaa")  # withheld: no event, not listed
    incoming = {r.requester: r.requester_band
                for r in (await pal.contact_requests()).incoming}
    assert incoming == {"kidaa": "under-16", "adam": "16+"}
    # An adult is not told the band of who asks them.
    bea = await people.adult("beaaa")
    await pal.request_contact("beaaa")
    assert (await _next_request(bea)).requester_band is None
    kid_request = next(r.request_id for r in (await pal.contact_requests()).incoming
                       if r.requester == "kidaa")
    await pal.accept_contact(kid_request)
    await kid.send_text("palaa", "now we can talk")
    assert (await pal.next_message(within_s=15)).text == "now we can talk"


@pytest.fixture
def _short_cooldown(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COVEY_CONTACT_REQUEST_COOLDOWN_S", "4")


async def test_a_declined_sender_waits_before_asking_again(_short_cooldown: None,
                                                           people: People) -> None:
    kid, adult = await people.child("kidaa"), await people.adult("adam")
    bea = await people.adult("beaaa")
    await kid.decline_contact(await adult.request_contact("kidaa"))
    await bea.decline_contact(await adult.request_contact("beaaa"))
    for target in ("kidaa", "beaaa"):  # the same answer for a child and an adult
        again = await _status(adult.request_contact(target))
        assert (again.status, again.code) == (409, "ask_again_later")
        assert "later" in again.message
    assert (await kid.contact_requests()).incoming == []
    await asyncio.sleep(4.5)
    await adult.request_contact("kidaa")
    assert [r.requester for r in (await kid.contact_requests()).incoming] == ["adam"]


async def test_proving_16_plus_erases_the_band_history(people: People) -> None:
    kid, adult = await people.child("kidaa"), await people.adult("adam")
    await adult.request_contact("kidaa")
    await kid.block("adam")

    def history() -> tuple[int, int]:
        flags = people.server.rows(
            "SELECT COUNT(*) FROM under_age_flags WHERE flagger = 'kidaa'")[0][0]
        marked = people.server.rows("SELECT COUNT(*) FROM contact_requests "
                                    "WHERE target = 'kidaa' AND to_under_age = 1")[0][0]
        return int(flags), int(marked)

    assert await asyncio.to_thread(history) == (1, 1)
    # Five years on, the same credential proves 16+.
    _days_later(people, 5 * 366)
    kid = await _reopen(people, kid, 5 * 366, connect=False)
    assert (await kid.prove_age()).band == "16+"
    assert await asyncio.to_thread(history) == (0, 0)


async def test_a_lapsed_adult_no_longer_reaches_the_child_in_their_group(
        people: People) -> None:
    """Contact rules per recipient on every group message: once a member's 16+ band
    lapses, neither its messages nor its group key reach the child, the child's don't
    reach it, and both are told why; the others talk on."""
    adam, kid, lapsa = (await people.adult("adam"), await people.child("kidaa"),
                        await people.adult("lapsa"))
    for adult in (adam, lapsa):
        await kid.accept_contact(await adult.request_contact("kidaa"))
    group = await adam.create_group("family", ["kidaa", "lapsa"])
    await join_group(group.group_id, kid)  # a child is invited, and accepts
    await lapsa.send_text(group.group_id, "before")
    assert (await kid.next_message(within_s=15)).text == "before"
    assert (await adam.next_message(within_s=15)).text == "before"
    # 91 days on: adam and the child prove again, lapsa (offline) does not.
    _days_later(people, 91)
    adam, kid = await _reopen(people, adam, 91), await _reopen(people, kid, 91)
    assert (await adam.prove_age()).band == "16+"
    assert (await kid.prove_age()).band == "under-16"
    lapsa = await _reopen(people, lapsa, 91, connect=False)
    await lapsa.send_text(group.group_id, "still here?")
    told = await _next_event(lapsa, GroupMembersWithheld)
    assert (told.group_id, told.users) == (group.group_id, ("kidaa",))
    assert (await adam.next_message(within_s=15)).text == "still here?"
    # The child gets nothing from lapsa, and is told why.
    told = await _next_event(kid, GroupMembersWithheld)
    assert (told.group_id, told.users) == (group.group_id, ("lapsa",))
    with pytest.raises(TimeoutError):
        await kid.next_message(within_s=1)
    # The child's own messages reach adam, not lapsa (no key, no delivery).
    await kid.send_text(group.group_id, "hi adam")
    assert (await adam.next_message(within_s=15)).text == "hi adam"
    rows = await asyncio.to_thread(
        people.server.rows, "SELECT COUNT(*) FROM mailbox m JOIN devices d "
        "ON d.id = m.device_pk WHERE d.user_id = 'lapsa'")
    assert rows[0][0] == 0
