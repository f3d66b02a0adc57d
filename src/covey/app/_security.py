"""The local security model of `covey app`: who may drive this device's client.

The app listens on 127.0.0.1 only. A browser proves it was handed the printed link by
redeeming its one-time launch token for an HttpOnly, SameSite=Strict session cookie whose
name is this instance's own (cookies on 127.0.0.1 are shared across ports); every
state-changing request also carries the session's CSRF token and a same-origin `Origin`;
every request must name this instance's `Host` (no DNS rebinding)."""

from __future__ import annotations

import hmac
import secrets
from dataclasses import dataclass, field

CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
SECURITY_HEADERS = {
    "Content-Security-Policy": CONTENT_SECURITY_POLICY,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",  # forms then carry our Origin, not "null"
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
    "Cross-Origin-Resource-Policy": "same-origin",
}
SAFE_METHODS = frozenset({"GET", "HEAD"})


class LaunchToken:
    """A secret that opens the app once; its `repr` never shows it."""

    def __init__(self, value: str | None = None) -> None:
        self._value = value or secrets.token_urlsafe(32)
        self._used = False

    @property
    def value(self) -> str:
        return self._value

    @property
    def used(self) -> bool:
        return self._used

    def redeem(self, offered: str) -> bool:
        """True once, for the right token; every later offer (right or wrong) fails."""
        if self._used:
            return False
        if not hmac.compare_digest(offered.encode(), self._value.encode()):
            return False
        self._used = True
        return True

    def __repr__(self) -> str:
        return f"LaunchToken(used={self._used})"


@dataclass(frozen=True)
class Session:
    session_id: str = field(repr=False)
    csrf: str = field(repr=False)


class Gate:
    """One app instance's checks: host, launch token, session cookie, CSRF, origin."""

    def __init__(self, port: int, *, instance_id: str | None = None,
                 token: LaunchToken | None = None) -> None:
        self.port = port
        self.instance_id = instance_id or secrets.token_hex(6)
        self.token = token or LaunchToken()
        self._sessions: dict[str, Session] = {}

    @property
    def cookie_name(self) -> str:
        return f"covey_app_{self.instance_id}"

    @property
    def origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def launch_url(self) -> str:
        # In the fragment: the browser never sends it to a server, logs or a Referer.
        return f"{self.origin}/#token={self.token.value}"

    def host_ok(self, host: str | None) -> bool:
        return host == f"127.0.0.1:{self.port}"

    def origin_ok(self, origin: str | None, fetch_site: str | None) -> bool:
        """A state-changing request must come from this instance's own pages."""
        if origin is not None and origin != "null":
            return origin == self.origin
        # "null" (a privacy setting) or none at all: the browser's own word on where the
        # request comes from, which a page on another origin cannot forge.
        return fetch_site == "same-origin"

    def redeem(self, offered: str) -> Session | None:
        if not self.token.redeem(offered):
            return None
        session = Session(secrets.token_urlsafe(32), secrets.token_urlsafe(32))
        self._sessions[session.session_id] = session
        return session

    def session(self, cookie: str | None) -> Session | None:
        if not cookie:
            return None
        for session_id, session in self._sessions.items():
            if hmac.compare_digest(session_id.encode(), cookie.encode()):
                return session
        return None

    def csrf_ok(self, session: Session, offered: str | None) -> bool:
        return offered is not None and hmac.compare_digest(session.csrf.encode(),
                                                           offered.encode())

    def cookie_header(self, session: Session) -> str:
        return (f"{self.cookie_name}={session.session_id}; HttpOnly; SameSite=Strict; "
                "Path=/")
