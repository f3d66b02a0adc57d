"""The local security rules of `covey app` (docs/app.md): a one-time launch token, an
HttpOnly SameSite=Strict session cookie named per instance, a CSRF token and a same-origin
Origin on every state change, this instance's Host only, strict headers everywhere.
In-process through the real ASGI app (no network, no device client needed)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from covey.app import Gate, LaunchToken
from covey.app._pages import page_routes
from covey.app._server import AppService, create_app

PORT = 47001
ORIGIN = f"http://127.0.0.1:{PORT}"
_CSRF = re.compile(r'name="csrf" value="([^"]+)"')


@pytest.fixture
def service(tmp_path: Path) -> AppService:
    return AppService(Gate(PORT), "http://127.0.0.1:8470", tmp_path / "me.db")


def _http(service: AppService) -> TestClient:
    return TestClient(create_app(service, page_routes()), base_url=ORIGIN)


def _signed_in(service: AppService) -> tuple[TestClient, str]:
    http = _http(service)
    answer = http.post("/session", json={"token": service.gate.token.value},
                       headers={"Origin": ORIGIN})
    assert answer.status_code == 200
    page = http.get("/")
    found = _CSRF.search(page.text)
    assert found is not None, page.text
    return http, found.group(1)


def test_the_launch_token_opens_once_and_hides_in_repr() -> None:
    token = LaunchToken()
    assert token.value not in repr(token)
    assert not token.redeem("wrong")
    assert not token.used
    assert token.redeem(token.value)
    assert not token.redeem(token.value)  # a second browser (or a replay) is refused


def test_each_instance_has_its_own_cookie_name_and_launch_address() -> None:
    one, two = Gate(PORT), Gate(PORT + 1)
    assert one.cookie_name != two.cookie_name
    assert one.cookie_name.startswith("covey_app_")
    assert re.fullmatch(rf"http://127\.0\.0\.1:{PORT}/#token=[A-Za-z0-9_-]{{43}}",
                        one.launch_url())


def test_redeeming_sets_an_httponly_strict_cookie_once(service: AppService) -> None:
    http = _http(service)
    first = http.post("/session", json={"token": service.gate.token.value},
                      headers={"Origin": ORIGIN})
    cookie = first.headers["set-cookie"]
    assert cookie.startswith(service.gate.cookie_name + "=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    again = _http(service).post("/session", json={"token": service.gate.token.value},
                                headers={"Origin": ORIGIN})
    assert again.status_code == 403
    assert "already used" in again.text


def test_redeeming_from_another_origin_is_refused(service: AppService) -> None:
    answer = _http(service).post("/session", json={"token": service.gate.token.value},
                                 headers={"Origin": "http://evil.example"})
    assert answer.status_code == 403
    assert not service.gate.token.used  # the token still works from the app's own page


def test_without_a_session_only_the_launch_page_is_shown(service: AppService) -> None:
    http = _http(service)
    page = http.get("/")
    assert page.status_code == 200
    assert "launch.js" in page.text and "csrf" not in page.text
    assert http.get("/contacts", follow_redirects=False).status_code == 303
    refused = http.post("/account", data={"handle": "mallory", "passphrase": "x" * 10,
                                          "passphrase2": "x" * 10},
                        headers={"Origin": ORIGIN})
    assert refused.status_code == 403
    assert not service.store.exists()


def test_a_cookie_from_another_instance_does_not_work(service: AppService,
                                                      tmp_path: Path) -> None:
    other = AppService(Gate(PORT), "http://127.0.0.1:8470", tmp_path / "other.db")
    http, _ = _signed_in(other)
    cookie = http.cookies.get(other.gate.cookie_name)
    assert cookie is not None
    stranger = _http(service)
    stranger.cookies.set(service.gate.cookie_name, cookie)
    assert "launch.js" in stranger.get("/").text


def test_a_post_needs_the_csrf_token_and_our_origin(service: AppService) -> None:
    http, csrf = _signed_in(service)
    form = {"handle": "Bad Handle", "passphrase": "x" * 10, "passphrase2": "x" * 10}
    no_token = http.post("/account", data=form, headers={"Origin": ORIGIN})
    assert no_token.status_code == 403 and "CSRF" in no_token.text
    wrong = http.post("/account", data={**form, "csrf": csrf[:-2] + "xx"},
                      headers={"Origin": ORIGIN})
    assert wrong.status_code == 403
    elsewhere = http.post("/account", data={**form, "csrf": csrf},
                          headers={"Origin": "http://127.0.0.1:1"})
    assert elsewhere.status_code == 403 and "did not come from" in elsewhere.text
    cross_site = http.post("/account", data={**form, "csrf": csrf},
                           headers={"Origin": "null", "Sec-Fetch-Site": "cross-site"})
    assert cross_site.status_code == 403
    # With both, the form is handled: here it refuses the handle, in words.
    handled = http.post("/account", data={**form, "csrf": csrf}, headers={"Origin": ORIGIN})
    assert handled.status_code == 400
    assert "3 to 32 characters" in handled.text
    same_origin = http.post("/account", data={**form, "csrf": csrf},
                            headers={"Origin": "null", "Sec-Fetch-Site": "same-origin"})
    assert same_origin.status_code == 400
    assert not service.store.exists()


def test_a_request_for_another_host_is_refused(service: AppService) -> None:
    # DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host.
    answer = _http(service).get("/", headers={"Host": f"evil.example:{PORT}"})
    assert answer.status_code == 421


def test_every_answer_carries_strict_headers(service: AppService) -> None:
    http = _http(service)
    for path in ("/", "/static/app.css", "/nowhere"):
        headers = http.get(path).headers
        policy = headers["content-security-policy"]
        assert "default-src 'none'" in policy and "script-src 'self'" in policy
        assert "unsafe-inline" not in policy and "frame-ancestors 'none'" in policy
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["cache-control"] == "no-store"
        assert headers["x-frame-options"] == "DENY"


def test_passphrases_must_match_and_be_long_enough(service: AppService) -> None:
    http, csrf = _signed_in(service)
    short = http.post("/account", data={"csrf": csrf, "handle": "alice", "passphrase": "abc",
                                        "passphrase2": "abc"}, headers={"Origin": ORIGIN})
    assert short.status_code == 400 and "at least 8" in short.text
    differ = http.post("/account", data={"csrf": csrf, "handle": "alice",
                                         "passphrase": "a" * 10, "passphrase2": "b" * 10},
                       headers={"Origin": ORIGIN})
    assert differ.status_code == 400 and "differ" in differ.text
    assert not service.store.exists()


def test_safety_warnings_and_later_sdk_notices_are_kept_and_shown(service: AppService,
                                                                   tmp_path: Path) -> None:
    """Events become notices in the device's encrypted store: the conversation's safety
    warning (with whom it is about, for one-tap block and report), and an SDK event added
    later that carries only a text (e.g. a moderator's warning) on the Chats page."""
    from dataclasses import dataclass
    from types import SimpleNamespace

    from covey.app import _views as views
    from covey.client import ClientCore, SafetyWarning
    from covey.client._store import Store

    store = Store.create(tmp_path / "device.db", "pass phrase 1", scrypt_n=2**12)
    core = ClientCore.create(store, "mia", "DEVICE01")
    device: Any = SimpleNamespace(core=core, user_id="mia")
    warning = SafetyWarning("dm:mia:rex", "m" * 16, "rex", "phrase_list.secrecy", "high")
    service._on_event(device, warning)

    @dataclass(frozen=True)
    class ModeratorWarning:  # the shape a later SDK event may have
        text: str

    service._on_event(device, ModeratorWarning("A moderator warned you: be kind."))
    items, _ = views.conversation_items(device, "dm:mia:rex")
    assert [(i.notice_kind, i.about) for i in items] == [("safety", "rex")]
    assert "block and report this person with one tap" in items[0].text
    assert [n["text"] for n in views.notices(device, views.ACCOUNT_NOTICES)] == [
        "A moderator warned you: be kind."]
    store.close()
