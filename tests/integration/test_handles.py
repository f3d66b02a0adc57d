"""Look-alike handles against a real `covey server`: a handle that looks like one already
registered is refused exactly like a taken one, names the server uses are reserved in
every variant, handles carrying a phrase from the operator's list are refused, and a
refused registration stores nothing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from tests.integration._raw import RawDevice


def _register(url: str, handle: str) -> httpx.Response:
    with httpx.Client(base_url=url, timeout=30, trust_env=False) as http:
        return http.post("/v1/accounts",
                         json={"device": RawDevice(url, handle).device_keys()})


def _shape(answer: httpx.Response, handle: str) -> tuple[int, str, dict[str, str], str]:
    """Everything about a refusal except the handle named in its message."""
    error = answer.json()["error"]
    headers = {k: v for k, v in answer.headers.items()
               if k not in {"date", "content-length", "x-request-id"}}
    return answer.status_code, error["code"], headers, error["message"].replace(handle, "H")


def test_look_alikes_of_a_handle_are_refused_exactly_like_a_taken_one(covey_server: Any):
    assert _register(covey_server.url, "mia_x").status_code == 201
    taken = _register(covey_server.url, "mia_x")
    assert taken.status_code == 409 and taken.json()["error"]["code"] == "handle_taken"
    before = covey_server.counts()
    for look_alike in ("mia.x", "mia-x", "rnia_x", "rnia.x", "m-i-a-x", "mia__x"):
        answer = _register(covey_server.url, look_alike)
        assert _shape(answer, look_alike) == _shape(taken, "mia_x"), (look_alike, answer.text)
    assert covey_server.counts() == before  # nothing stored for a refusal
    # Handles that merely resemble it in other ways stay free.
    for different in ("mia_y", "mla_x", "miax1"):
        assert _register(covey_server.url, different).status_code == 201, different
    rows = covey_server.rows("SELECT user_id FROM users WHERE handle_skeleton = 'miax'")
    assert rows == [("mia_x",)]


def test_reserved_names_are_reserved_in_every_variant(covey_server: Any):
    for variant in ("covey-safety", "covey_safety", "covey.safety", "c0vey-safety",
                    "covey-safety-", "coveysafety", "covey-admin"):
        answer = _register(covey_server.url, variant)
        assert answer.status_code == 409, (variant, answer.text)
        assert answer.json()["error"]["code"] == "handle_reserved", variant
    assert _register(covey_server.url, "covey-fan").status_code == 201


def test_handles_with_a_listed_phrase_are_refused(covey_server: Any, tmp_path: Path):
    phrases = tmp_path / "phrases.txt"
    phrases.write_text("# operator list\n[high] meet me tonight\nsecret chat\n", "utf-8")
    covey_server.restart(env={"COVEY_SAFETY_PHRASE_LIST": str(phrases)})
    for handle in ("meet-me-tonight", "meet.me.t0night", "rneetmetonight99",
                   "my_secret.chat", "secretchat"):
        answer = _register(covey_server.url, handle)
        assert answer.status_code == 400, (handle, answer.text)
        assert answer.json()["error"]["code"] == "handle_not_allowed", handle
    assert _register(covey_server.url, "meet_up_club").status_code == 201
    assert _register(covey_server.url, "secret_garden").status_code == 201
