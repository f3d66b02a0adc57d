"""Login: a single-use challenge signed by the device key buys a short-lived bearer token,
stored only as its SHA-256. Tokens are cached in memory until they expire. Every
authenticated request passes the account gate (suspensions); suspending an account
revokes its tokens and ends its open WebSockets."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from contextlib import suppress

from covey.errors import NotFound, Unauthorized
from covey.protocol._encoding import b64encode
from covey.protocol.wire import (
    ChallengeRequest,
    ChallengeResponse,
    TokenRequest,
    TokenResponse,
    login_signing_bytes,
)
from covey.server.services._common import (
    Principal,
    now_ms,
    reject_nul,
    secret_hash,
    verify_ed25519,
)
from covey.server.storage.repository import Repository
from covey.settings import Settings


class AuthService:
    def __init__(self, settings: Settings, repo: Repository) -> None:
        self._settings = settings
        self._repo = repo
        # token hash -> (principal, expiry ms); a hit saves a SELECT per request.
        self._tokens: dict[bytes, tuple[Principal, int]] = {}
        # Refuses suspended accounts, at login and on every request (set by reporting).
        self.account_gate: Callable[[str], None] | None = None
        # user id -> callbacks of its open WebSockets, called when the account is revoked.
        self._revoke_watchers: dict[str, set[Callable[[], None]]] = {}

    async def challenge(self, request: ChallengeRequest) -> ChallengeResponse:
        device = await self._repo.get_device(request.user_id, request.device_id)
        if device is None:
            raise NotFound("no such device", code="unknown_device",
                           details={"user_id": request.user_id,
                                    "device_id": request.device_id})
        challenge_id = secrets.token_urlsafe(24)
        challenge = b64encode(secrets.token_bytes(32))
        expires = now_ms() + self._settings.challenge_ttl_s * 1000
        await self._repo.create_challenge(challenge_id, device.pk, challenge, expires)
        return ChallengeResponse(challenge_id=challenge_id, challenge=challenge,
                                 expires_at_ms=expires)

    async def token(self, request: TokenRequest) -> TokenResponse:
        reject_nul(request.challenge_id, field="challenge_id")
        found = await self._repo.use_challenge(request.challenge_id)
        if found is None:
            raise Unauthorized("unknown challenge", code="unknown_challenge")
        if found.was_used:
            raise Unauthorized("this challenge was already used", code="challenge_used")
        if found.expires_ms <= now_ms():
            raise Unauthorized("this challenge has expired", code="challenge_expired")
        device = found.device
        # The signature first: only the device itself may learn that it is suspended.
        verify_ed25519(device.signing_key,
                       login_signing_bytes(device.user_id, device.device_id, found.challenge),
                       request.signature, what="login")
        if self.account_gate is not None:
            self.account_gate(device.user_id)
        token = secrets.token_urlsafe(32)
        expires = now_ms() + self._settings.token_ttl_s * 1000
        await self._repo.create_token(secret_hash(token), device.pk, expires)
        count, _ = await self._repo.key_count(device.pk)
        return TokenResponse(token=token, expires_at_ms=expires, one_time_key_count=count)

    async def authenticate(self, token: str) -> Principal:
        """The device behind a bearer token; 401 `bad_token` / `token_expired` otherwise."""
        token_hash = secret_hash(token)
        cached = self._tokens.get(token_hash)
        now = now_ms()
        if cached is None:
            row = await self._repo.get_token(token_hash)
            if row is None:
                raise Unauthorized("unknown bearer token", code="bad_token")
            cached = (Principal(row.user_id, row.device_id, row.device_pk, row.expires_ms),
                      row.expires_ms)
            if len(self._tokens) > 100_000:
                self._tokens.clear()
            self._tokens[token_hash] = cached
        principal, expires = cached
        if expires <= now:
            self._tokens.pop(token_hash, None)
            raise Unauthorized("the bearer token has expired", code="token_expired")
        if self.account_gate is not None:
            self.account_gate(principal.user_id)
        return principal

    def watch_revocation(self, user_id: str, callback: Callable[[], None]) -> Callable[[], None]:
        """Call `callback` when `user_id` is revoked; returns the function that unwatches."""
        self._revoke_watchers.setdefault(user_id, set()).add(callback)

        def unwatch() -> None:
            watchers = self._revoke_watchers.get(user_id)
            if watchers is not None:
                watchers.discard(callback)
                if not watchers:
                    del self._revoke_watchers[user_id]

        return unwatch

    def forget_account(self, user_id: str) -> None:
        """Drop this process's cached tokens of `user_id` and end its open WebSockets."""
        for token_hash in [h for h, (p, _) in self._tokens.items() if p.user_id == user_id]:
            del self._tokens[token_hash]
        for callback in list(self._revoke_watchers.get(user_id, ())):
            with suppress(Exception):  # one broken socket must not keep the others open
                callback()

    async def revoke_account(self, user_id: str) -> None:
        """Delete every token of `user_id` and end its sessions here (suspension)."""
        await self._repo.revoke_user_tokens(user_id)
        self.forget_account(user_id)
