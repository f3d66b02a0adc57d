"""Durability: SIGKILL the server in the middle of a burst of sends. Every message that got
a `sent` receipt must reach the recipient exactly once (after dedupe by message id) once
the server is back and the sender has resent what was not receipted, with the same ids."""

from __future__ import annotations

import json
import threading

import httpx
import pytest
from websockets.exceptions import ConnectionClosed

from tests.support.raw import dm_envelope, frames_until, register

pytestmark = pytest.mark.opaque_envelopes

BURST = 1500


@pytest.mark.slow
def test_sigkill_mid_burst_loses_no_receipted_message(covey_server):
    covey_server.restart(env={"COVEY_RATE_SEND_BURST": "100000"})
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    envelopes = [dm_envelope(alice, [bob], peer=bob.user_id, body_size=300)
                 for _ in range(BURST)]
    receipted: set[str] = set()
    enough = threading.Event()

    with alice.ws(covey_server.ws_url) as sock:
        def read_receipts() -> None:
            try:
                while True:
                    frame = json.loads(sock.recv())
                    if frame["type"] == "sent":
                        receipted.add(frame["receipt"]["message_id"])
                        if len(receipted) >= 200:
                            enough.set()
                    assert frame["type"] != "error", frame
            except (ConnectionClosed, OSError):
                enough.set()

        def send_all() -> None:
            try:
                for env in envelopes:
                    sock.send(json.dumps({"type": "send", "envelope": env}))
            except (ConnectionClosed, OSError):
                pass

        reader = threading.Thread(target=read_receipts, daemon=True)
        writer = threading.Thread(target=send_all, daemon=True)
        reader.start()
        writer.start()
        assert enough.wait(30), "no receipts arrived"
        covey_server.kill()
        reader.join(10)
        writer.join(10)
    killed_with = len(receipted)
    assert 0 < killed_with < BURST, f"the kill did not land mid-burst ({killed_with})"

    covey_server.start()
    # The sender resends everything it has no receipt for, with the same ids.
    missing = [e for e in envelopes if e["message_id"] not in receipted]
    with httpx.Client(base_url=covey_server.url, timeout=30) as c:
        for env in missing:
            r = c.post("/v1/messages", headers=alice.headers, json=env)
            assert r.status_code in (200, 201), r.text

    with bob.ws(covey_server.ws_url) as sock:
        frames = frames_until(sock, lambda fs: sum(f["type"] == "delivery"
                                                   for f in fs) >= BURST, timeout=60)
        with pytest.raises(TimeoutError):
            sock.recv(timeout=0.5)
    ids = [f["delivery"]["message_id"] for f in frames if f["type"] == "delivery"]
    assert len(ids) == len(set(ids)) == BURST  # the server never delivers twice
    assert receipted <= set(ids)
    sent_order = [e["message_id"] for e in envelopes]
    receipted_order = [i for i in ids if i in receipted]
    assert receipted_order == [i for i in sent_order if i in receipted]
