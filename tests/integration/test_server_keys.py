"""One-time and fallback keys: signed uploads, atomic claims, fallback, keys_low."""

from __future__ import annotations

import concurrent.futures

import httpx
import pytest

from tests.support.raw import RawDevice, frames_until, new_handle, register


@pytest.mark.shared_server
def test_upload_with_a_bad_signature_is_rejected_and_stores_nothing(covey_server):
    bob = RawDevice(covey_server.url, new_handle("bob")).register().login()
    good = bob.make_one_time_keys(3)
    forged = dict(good[1], key=good[0]["key"])  # signature no longer matches the key
    with bob.http() as c:
        r = c.post("/v1/keys/upload", json={"one_time_keys": [good[0], forged, good[2]]},
                   headers=bob.headers)
        assert r.status_code == 400
        assert r.json()["error"]["code"] == "bad_signature"
        # A one-time-key signature does not pass for a fallback key (domain separation).
        r = c.post("/v1/keys/upload", json={"fallback_key": good[0]}, headers=bob.headers)
        assert r.status_code == 400
        count = c.get("/v1/keys/count", headers=bob.headers).json()
        assert count == {"one_time_key_count": 0, "has_fallback_key": False}
        ok = c.post("/v1/keys/upload", json={"one_time_keys": good}, headers=bob.headers)
        assert ok.json()["one_time_key_count"] == 3


@pytest.mark.shared_server
def test_concurrent_claims_never_return_the_same_key_then_fallback(covey_server):
    bob = RawDevice(covey_server.url, new_handle("bob")).register().login()
    bob.upload_keys(20, fallback=True)
    claimers = [register(covey_server.url, "c") for _ in range(3)]

    def claim(i: int) -> dict:
        who = claimers[i % len(claimers)]
        with httpx.Client(base_url=covey_server.url, timeout=30) as c:
            r = c.post("/v1/keys/claim", json={"devices": [bob.ref]}, headers=who.headers)
            assert r.status_code == 200, r.text
            return r.json()

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        results = list(pool.map(claim, range(30)))
    bundles = [r["bundles"][0] for r in results]
    one_time = [b["one_time_key"]["key_id"] for b in bundles if not b["fallback"]]
    fallback = [b for b in bundles if b["fallback"]]
    assert len(one_time) == 20 and len(set(one_time)) == 20
    assert len(fallback) == 10
    assert len({b["one_time_key"]["key_id"] for b in fallback}) == 1
    assert all(b["device"]["signing_key"] == bob.signing_key for b in bundles)
    with bob.http() as c:
        count = c.get("/v1/keys/count", headers=bob.headers).json()
    assert count == {"one_time_key_count": 0, "has_fallback_key": True}


@pytest.mark.shared_server
def test_claim_reports_missing_devices_and_sends_keys_low(covey_server):
    bob = RawDevice(covey_server.url, new_handle("bob")).register().login()
    bob.upload_keys(2, fallback=False)
    alice = register(covey_server.url, "alice")
    with bob.ws(covey_server.ws_url) as sock:
        first = frames_until(sock, lambda fs: any(f["type"] == "keys_low" for f in fs))
        assert next(f for f in first if f["type"] == "keys_low")["one_time_key_count"] == 2
        with httpx.Client(base_url=covey_server.url) as c:
            r = c.post("/v1/keys/claim", headers=alice.headers, json={"devices": [
                bob.ref, {"user_id": bob.user_id, "device_id": "nosuchdevice"}]})
            body = r.json()
            assert [b["device"]["device_id"] for b in body["bundles"]] == [bob.device_id]
            assert body["missing"] == [{"user_id": bob.user_id, "device_id": "nosuchdevice"}]
        low = frames_until(sock, lambda fs: any(f["type"] == "keys_low" for f in fs))
        assert next(f for f in low if f["type"] == "keys_low")["one_time_key_count"] == 1
    with httpx.Client(base_url=covey_server.url) as c:
        c.post("/v1/keys/claim", headers=alice.headers, json={"devices": [bob.ref]})
        empty = c.post("/v1/keys/claim", headers=alice.headers, json={"devices": [bob.ref]})
        assert empty.json() == {"bundles": [], "missing": [bob.ref]}
