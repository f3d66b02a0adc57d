"""Blobs: streamed upload with SHA-256, download, and the size limit (413, nothing left)."""

from __future__ import annotations

import hashlib
import os

import httpx
import pytest

from tests.support.raw import register


def _files(root) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.shared_server
def test_upload_and_download_round_trip(covey_server):
    alice, bob = register(covey_server.url, "alice"), register(covey_server.url, "bob")
    data = os.urandom(300_000)

    def chunks():
        for i in range(0, len(data), 65536):
            yield data[i:i + 65536]

    with httpx.Client(base_url=covey_server.url, timeout=30) as c:
        r = c.post("/v1/blobs", headers=alice.headers, content=chunks())  # chunked
        assert r.status_code == 201, r.text
        body = r.json()
        assert body["sha256"] == hashlib.sha256(data).hexdigest()
        assert body["size"] == len(data) and body["blob_id"].startswith("blob_")
        got = c.get(f"/v1/blobs/{body['blob_id']}", headers=bob.headers)
        assert got.status_code == 200 and got.content == data
        missing = c.get("/v1/blobs/blob_" + "x" * 24, headers=bob.headers)
        assert missing.status_code == 404
        assert missing.json()["error"]["code"] == "unknown_blob"
        assert c.get(f"/v1/blobs/{body['blob_id']}").status_code == 401


def test_oversized_blob_is_refused_and_leaves_nothing(covey_server):
    covey_server.restart(env={"COVEY_MAX_BLOB_BYTES": "100000"})
    alice = register(covey_server.url, "alice")
    blobs = covey_server.data_dir / "blobs"
    before_files, before_rows = _files(blobs), covey_server.counts()["blobs"]
    big = os.urandom(100_001)
    with httpx.Client(base_url=covey_server.url, timeout=30) as c:
        declared = c.post("/v1/blobs", headers=alice.headers, content=big)
        assert declared.status_code == 413
        assert declared.json()["error"]["code"] == "too_large"

        def chunks():
            for i in range(0, len(big), 10_000):
                yield big[i:i + 10_000]

        streamed = c.post("/v1/blobs", headers=alice.headers, content=chunks())
        assert streamed.status_code == 413
        assert streamed.json()["error"]["code"] == "too_large"
        exact = c.post("/v1/blobs", headers=alice.headers, content=big[:100_000])
        assert exact.status_code == 201
    assert covey_server.counts()["blobs"] == before_rows + 1
    assert len(_files(blobs)) == len(before_files) + 1
    assert _files(blobs / "tmp") == []
