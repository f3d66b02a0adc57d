"""Running the app: bind 127.0.0.1, print the one-time address, unlock the store from
$COVEY_PASSPHRASE when it is set, serve until interrupted, close the client."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import sys
import webbrowser
from pathlib import Path

import uvicorn

from covey.app._pages import page_routes
from covey.app._security import Gate
from covey.app._server import AppService, create_app
from covey.errors import CoveyError

log = logging.getLogger(__name__)


def _bind(port: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def run_app(server_url: str, store: Path, *, port: int = 0, open_browser: bool = True,
                  passphrase: str | None = None, scrypt_n: int | None = None) -> None:
    sock = _bind(port)
    gate = Gate(sock.getsockname()[1])
    service = AppService(gate, server_url, store, scrypt_n=scrypt_n)
    exists: bool = await asyncio.to_thread(store.exists)
    if passphrase and exists:
        try:
            await service.sign_in(passphrase)
        except CoveyError as exc:
            print(f"could not open {store} with $COVEY_PASSPHRASE ({exc.code}): "
                  "sign in in the page", file=sys.stderr)
    config = uvicorn.Config(create_app(service, page_routes()), log_level="warning",
                            access_log=False, timeout_graceful_shutdown=2, lifespan="off",
                            ws="none")
    server = uvicorn.Server(config)
    print(f"Covey app: {gate.launch_url()}", flush=True)
    if open_browser:
        with contextlib.suppress(Exception):
            await asyncio.to_thread(webbrowser.open, gate.launch_url())
    try:
        await server.serve(sockets=[sock])
    finally:
        await service.close()
        sock.close()
