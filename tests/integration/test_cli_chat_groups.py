"""Groups in `covey chat`: names instead of ids, "you were added", /groups, /members,
/add, /remove, /leave, /to by name, and names with spaces in quotes; unverified accounts
are invited and join with /join (or the SDK's accept)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from tests.integration._covey_cli import quit_chat, read_until, start, type_line

pytestmark = pytest.mark.timeout(240)


async def _accept(client: Client, group_id: str) -> None:
    """The invited account accepts (unverified accounts join a group only so)."""
    for _ in range(100):
        for invitation in await client.group_invitations():
            if invitation.group_id == group_id:
                await client.accept_group_invitation(invitation.invitation_id)
                return
        await asyncio.sleep(0.1)
    raise AssertionError(f"no invitation to {group_id}")


async def _invited_group_id(client: Client, name: str) -> str:
    """The id of the group named `name` that `client` is invited to."""
    for _ in range(100):
        for invitation in await client.group_invitations():
            if invitation.group_name == name:
                return invitation.group_id
        await asyncio.sleep(0.1)
    raise AssertionError(f"no invitation to {name}")


async def test_groups_by_name_in_chat(covey_server: Any, tmp_path: Path) -> None:
    bob = await Client.register(covey_server.url, "bob", tmp_path / "bob.db", "pw")
    carol = await Client.register(covey_server.url, "carol", tmp_path / "carol.db", "pw")
    try:
        await bob.wait_connected()
        await carol.wait_connected()
        chat = await start("chat", "--server", covey_server.url,
                           "--store", str(tmp_path / "alice.db"),
                           "--register", "alice", "--to", "bob")
        await read_until(chat, "/help for commands")

        club = await bob.create_group("Book club", ["alice", "carol"])
        invited = await read_until(chat, "invites you to the group Book club: /join ")
        invitation = invited.split("/join ")[1].split()[0]
        await _accept(carol, club.group_id)
        await type_line(chat, f"/join {invitation}")
        await read_until(chat, "joined Book club; now talking to it")
        await type_line(chat, "/groups")
        listing = await read_until(chat, "Book club: 3 members")
        assert club.group_id in listing

        await type_line(chat, '/to "book club"')  # by name, in quotes, any case
        await read_until(chat, "now talking to group Book club")
        await type_line(chat, "/members")
        members = await read_until(chat, "carol")
        assert "bob (admin)" in members and "alice (you)" in members

        await bob.send_text(club.group_id, "hello [bold]club[/]")
        line = await read_until(chat, "hello [bold]club[/]")
        assert "grp_" not in line and "#1 " in line

        await type_line(chat, "hi all")
        echo = await read_until(chat, "✓ sent")
        assert "you → group Book club: hi all" in echo
        texts = [(await carol.next_message(30)).text for _ in range(2)]
        assert texts == ["hello [bold]club[/]", "hi all"]

        # Not the admin here: a clear line, and the session goes on.
        await type_line(chat, "/remove carol")
        await read_until(chat, "only an admin can remove other members")

        await type_line(chat, '/group "Night owls" bob')
        created = await read_until(chat, "they join when they accept")
        assert "created group Night owls with alice;" in created and "invited bob" in created
        await _accept(bob, await _invited_group_id(bob, "Night owls"))
        await type_line(chat, "/add carol")
        await read_until(chat, "invited carol to group Night owls")
        await _accept(carol, await _invited_group_id(carol, "Night owls"))
        owls = next(g for g in await carol.groups() if g.name == "Night owls")
        assert {m.user_id for m in owls.members} == {"alice", "bob", "carol"}
        await type_line(chat, "/remove carol")
        await read_until(chat, "removed carol from group Night owls")

        await bob.remove_member(club.group_id, "carol")
        await read_until(chat, "group Book club: carol left")
        await type_line(chat, '/leave "Book club"')
        await read_until(chat, "you left group Book club")
        assert all(g.name != "Book club" for g in await bob.groups()
                   if "alice" in {m.user_id for m in g.members})

        await type_line(chat, '/to "No such group')
        await read_until(chat, "could not read that")
        await type_line(chat, "/members Nothing")
        await read_until(chat, "you are in no group named 'Nothing'")
        await quit_chat(chat)
    finally:
        await bob.close()
        await carol.close()
