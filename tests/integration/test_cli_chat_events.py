"""Events shown in `covey chat` as they arrive: contact requests, device additions,
moderator warnings (live, and on reconnect for a device that was offline, once), guardian
link proposals and guardian alerts."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import httpx
import pytest

from covey.client import Client
from covey.moderation import ReportCategory
from tests.integration._covey_cli import (
    PASSPHRASE,
    cli_env,
    quit_chat,
    read_until,
    start,
    type_line,
)
from tests.support import safety as _safety
from tests.support.age import PASSPHRASE as AGE_PASSPHRASE
from tests.support.console import console_login, create_console_user
from tests.support.safety import People

band_issuer = _safety.band_issuer
trust_band_issuer = _safety.trust_band_issuer
people = _safety.people

pytestmark = pytest.mark.timeout(300)

WARNED = "moderator warning: A moderator reviewed a report about a message you sent"


def _warn(http: httpx.Client, csrf: str, report_id: str) -> None:
    """Press "Warn sender" on the console's report page."""
    answer = http.post(f"/console/reports/{report_id}/action",
                       data={"action": "warn", "csrf": csrf})
    assert answer.status_code == 303, answer.text
    assert "notice=warned" in answer.headers["location"], answer.headers


async def test_requests_devices_and_moderator_warnings_show_in_chat(
        covey_server: Any, tmp_path: Path) -> None:
    alice = await Client.register(covey_server.url, "alice", tmp_path / "alice.db", "pw")
    carol = await Client.register(covey_server.url, "carol", tmp_path / "carol.db", "pw")
    store = str(tmp_path / "bob.db")
    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    http, csrf = await asyncio.to_thread(console_login, covey_server, "mod")
    try:
        chat = await start("chat", "--server", covey_server.url, "--store", store,
                           "--register", "bob", "--to", "alice")
        await read_until(chat, "/help for commands")

        request_id = await carol.request_contact("bob")
        await read_until(chat, f"carol asks to be your contact: /accept {request_id} or "
                               f"/decline {request_id}")
        await type_line(chat, f"/accept {request_id}")
        await read_until(chat, "carol is now your contact")

        await type_line(chat, "you are [bold]useless[/]")
        await read_until(chat, "✓ sent")

        await type_line(chat, "/link")
        token = re.search(r"link token \(single use\): (\S+)",
                          await read_until(chat, "link token")).group(1)  # type: ignore[union-attr]
        second = await Client.link_device(covey_server.url, "bob", token,
                                          tmp_path / "bob2.db", "pw")
        await read_until(chat, f"you added a new device ({second.device_id})")
        await second.close()

        receipt = await alice.report(await alice.next_message(30), ReportCategory.HARASSMENT)
        await asyncio.to_thread(_warn, http, csrf, receipt.report_id)
        line = await read_until(chat, WARNED)
        assert "(harassment)" in line and "alice" not in line.split(WARNED, 1)[1]
        await quit_chat(chat)

        # Warned again while offline: shown when the device is back, and only once.
        bob = await Client.open(store, PASSPHRASE)
        await bob.send_text("alice", "still useless")
        await bob.flush(20)
        await bob.close()
        second_receipt = await alice.report(await alice.next_message(30), ReportCategory.SPAM)
        await asyncio.to_thread(_warn, http, csrf, second_receipt.report_id)
        chat = await start("chat", "--store", store, "--to", "alice")
        seen = await read_until(chat, WARNED)
        assert "(spam)" in seen and "(harassment)" not in seen
        await quit_chat(chat)

        chat = await start("chat", "--store", store, "--to", "alice")
        await read_until(chat, "■")
        await asyncio.sleep(3)  # past the login's fetch of warnings
        await type_line(chat, "/quit")
        out, _ = await asyncio.wait_for(chat.communicate(), 20)
        assert "moderator warning" not in out.decode()
    finally:
        http.close()
        await alice.close()
        await carol.close()


@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
async def test_guardian_proposals_and_alerts_show_in_chat(people: People,
                                                          covey_server: Any) -> None:
    dad = await people.adult("dad")
    store = str(people.tmp / "dad.db")
    people.clients.remove(dad)
    await dad.close()
    kid = await people.child("kid")
    stranger = await people.adult("stranger")  # dad talks to an adult: a child is hidden

    env = cli_env(COVEY_PASSPHRASE=AGE_PASSPHRASE)
    chat = await start("chat", "--store", store, "--to", "stranger", env=env)
    await read_until(chat, "■")
    link = await kid.propose_guardian_link("dad", role="guardian")
    await read_until(chat, f"kid asks you to be their guardian: /accept {link.link_id}")
    await type_line(chat, f"/accept {link.link_id}")
    await read_until(chat, "linked: dad is now a guardian of kid")

    request_id = await stranger.request_contact("kid")
    await kid.accept_contact(request_id)
    line = await read_until(chat, "guardian alert: kid accepted a contact: stranger")
    assert "covey guardian alerts" in line
    await quit_chat(chat)
