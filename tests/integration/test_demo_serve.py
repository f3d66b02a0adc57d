"""`covey demo --serve`'s last step (`covey.cli._demo_serve.serve`) against a real server:
a moderator login for the console, and one `covey app` per person, signed in on their
store, with the addresses printed; cancelling (Ctrl-C) stops the apps."""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from rich.console import Console

from covey.cli._demo_serve import serve
from covey.client import Client
from tests.support.console import csrf_of

pytestmark = [pytest.mark.shared_server, pytest.mark.timeout(300)]


@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
async def test_serve_leaves_the_console_and_two_signed_in_apps(covey_server: Any,
                                                               tmp_path: Path) -> None:
    people = []
    for handle in ("alva", "bram"):
        store, passphrase = tmp_path / f"{handle}.db", f"demo passphrase for {handle}"
        client = await Client.register(covey_server.url, handle, store, passphrase,
                                       scrypt_n=2**12, connect=False)
        await client.close()
        people.append((handle, store, passphrase))
    out = io.StringIO()
    running = asyncio.create_task(serve(Console(file=out, width=250), covey_server, people))
    try:
        for _ in range(1200):
            if "Ctrl-C stops everything" in out.getvalue() or running.done():
                break
            await asyncio.sleep(0.1)
        text = out.getvalue()
        login = re.search(r"login: moderator / (\S+)\)", text)
        apps = dict(re.findall(r"(alva|bram)'s app: (http://127\.0\.0\.1:\d+/#token=\S+)",
                               text))
        assert login and set(apps) == {"alva", "bram"}, text
        for handle, url in apps.items():
            origin, token = url.split("/#token=")
            async with httpx.AsyncClient(base_url=origin, trust_env=False, timeout=30) as http:
                assert (await http.post("/session", json={"token": token},
                                        headers={"Origin": origin})).status_code == 200
                home = await http.get("/")
                assert f"Signed in as <strong>{handle}</strong>" in home.text, home.text[:500]
        async with httpx.AsyncClient(base_url=covey_server.url, trust_env=False,
                                     timeout=30) as http:
            page = await http.get("/console/login")
            answer = await http.post("/console/login", data={
                "csrf": csrf_of(page.text), "username": "moderator",
                "password": login.group(1)})
            assert answer.status_code == 303, answer.text
    finally:
        running.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await running
    for url in apps.values():
        with pytest.raises(httpx.TransportError):
            async with httpx.AsyncClient(trust_env=False, timeout=5) as http:
                await http.get(url.split("/#")[0] + "/")
