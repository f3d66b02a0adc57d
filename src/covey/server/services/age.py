"""Age assurance on the relay: trust registry, single-use challenges, verification, bands.

`AgeService.band_of(user_id)` is the one question the rest of the server (the safety
policy) asks; it answers `unverified` when no band was proven, when it expired, or when
the issuer that vouched for it is no longer trusted.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from covey.age import AgeBand, AgeChallenge, Claim, TrustRegistry, Verifier
from covey.age.signed import RegistryUnsigned, open_signed, parse_public_key
from covey.errors import CoveyError
from covey.protocol.wire import AgeChallengeRequest, AgeProofNeededFrame, AgeStatus
from covey.server.fanout import DeviceAddress, Fanout, PushFrame
from covey.server.services._common import Principal
from covey.server.services.accounts import DeviceDirectory
from covey.server.storage.age import AgeBandRow, AgeStorage
from covey.settings import Settings

log = logging.getLogger(__name__)

_FILE_CHECK_INTERVAL_S = 0.5
# Used challenges are remembered this long after they expire, so a late replay is told
# `nonce_used` rather than `nonce_unknown`; then the row is purged.
_CHALLENGE_RETENTION = timedelta(hours=1)


class AgeVerificationUnavailable(CoveyError):
    """No trust registry is configured (or it is empty): nobody can prove an age band.

    409 rather than 503: the request is fine, the server's configuration refuses it."""

    code = "age_verification_unavailable"
    status = 409


class RegistrySource:
    """The configured trust registry: a file re-read when it changes, or an HTTPS URL
    fetched every `refresh_s`, accepted only when signed by the pinned operator key.

    Anything unsigned, badly signed or malformed leaves the last good registry in place;
    `fresh()` then lets it age out: a registry signed longer ago than `max_age_s`, or an
    issuer whose status lists are older than `status_max_age_s`, vouches for nobody."""

    def __init__(self, spec: str | None, refresh_s: float, *,
                 key: Ed25519PublicKey | None = None,
                 max_age_s: float = 7 * 24 * 3600, status_max_age_s: float = 7 * 24 * 3600,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        if spec is not None and "://" in spec and not spec.startswith("https://"):
            raise ValueError("the trust registry must be a local file or an https:// URL")
        if spec is not None and key is None:
            raise ValueError("a trust registry needs the operator's public key")
        self.spec = spec
        self._refresh_s = refresh_s
        self._is_url = bool(spec) and spec.startswith("https://")  # type: ignore[union-attr]
        self._key = key
        self._max_age_s = max_age_s
        self._status_max_age_s = status_max_age_s
        self._transport = transport
        self.registry = TrustRegistry()
        self.signed_at_ms: int | None = None
        self.last_error: str | None = None
        self._stamp: tuple[int, int] | None = None
        self._fetched: bytes | None = None
        self._checked = 0.0
        self._alerted: frozenset[str] = frozenset()
        self._fresh: tuple[tuple[int, int, int], TrustRegistry, tuple[str, ...]] | None = None

    async def current(self) -> TrustRegistry:
        """Every issuer of the last good signed registry (reloaded when due)."""
        if self.spec is None:
            return self.registry
        now = time.monotonic()
        interval = self._refresh_s if self._is_url else _FILE_CHECK_INTERVAL_S
        if self._checked and now - self._checked < interval:
            return self.registry
        self._checked = now
        try:
            if self._is_url:
                await self._fetch()
            else:
                await asyncio.to_thread(self._reload_file)
            self.last_error = None
        except (CoveyError, OSError, ValueError, httpx.HTTPError) as exc:
            reason = exc.message if isinstance(exc, CoveyError) else str(exc)
            if reason != self.last_error:
                log.warning("trust registry %s not reloaded (the last good one stays, "
                            "until it is too old): %s", self.spec, reason)
            self.last_error = reason
        return self.registry

    async def fresh(self) -> TrustRegistry:
        """The issuers that may vouch for a band now: the registry is recent enough and so
        are the issuer's revocation status lists. Stale ones are left out (fail closed)."""
        registry = await self.current()
        if self.spec is None:
            return registry
        now_ms = int(time.time() * 1000)
        # Recomputed once a second at most: staleness is measured in seconds or more.
        key = (id(registry), self.signed_at_ms or 0, now_ms // 1000)
        if self._fresh is not None and self._fresh[0] == key:
            return self._fresh[1]
        problems = self._problems(registry, now_ms)
        stale = {scope for scope, _ in problems}
        if None in stale:
            fresh = TrustRegistry()
        else:
            fresh = TrustRegistry(i for i in registry.issuers() if i.issuer_id not in stale)
        reasons = [reason for _, reason in problems]
        self._alert(problems)
        self._fresh = (key, fresh, tuple(reasons))
        return fresh

    def health(self) -> dict[str, Any]:
        """What an operator can query (`/healthz`): is the registry current, and why not."""
        if self.spec is None:
            return {"state": "not_configured"}
        problems = list(self._fresh[2]) if self._fresh is not None else []
        state = "stale" if problems else "current"
        if self.last_error is not None:
            problems.append(f"last reload failed: {self.last_error}")
            state = "stale" if state == "stale" else "reload_failing"
        return {"state": state, "signed_at_ms": self.signed_at_ms, "problems": problems}

    def _problems(self, registry: TrustRegistry, now_ms: int,
                  ) -> list[tuple[str | None, str]]:
        """Why bands cannot count now, as (issuer id, reason); None: the whole registry."""
        if self.signed_at_ms is None:
            return [(None, "no validly signed registry has been loaded")]
        age_s = (now_ms - self.signed_at_ms) / 1000
        if age_s > self._max_age_s:
            return [(None, f"the registry was signed {age_s:.0f} s ago (maximum "
                           f"{self._max_age_s:.0f} s)")]
        problems: list[tuple[str | None, str]] = []
        for issuer in registry.issuers():
            oldest = min((r.timestamp for r in issuer.revocations), default=None)
            if oldest is not None and now_ms / 1000 - oldest > self._status_max_age_s:
                problems.append((issuer.issuer_id, (
                    f"{issuer.issuer_id}'s revocation status list is "
                    f"{now_ms / 1000 - oldest:.0f} s old (maximum "
                    f"{self._status_max_age_s:.0f} s)")))
        return problems

    def _alert(self, problems: list[tuple[str | None, str]]) -> None:
        """One WARNING when a registry or an issuer goes stale (not one per request)."""
        scopes = frozenset(scope or "" for scope, _ in problems)
        for scope, reason in problems:
            if (scope or "") not in self._alerted:
                log.warning("trust registry %s is stale, failing closed (bands it vouches "
                            "for read as unverified): %s", self.spec, reason)
        if self._alerted and not scopes:
            log.info("trust registry %s is current again", self.spec)
        self._alerted = scopes

    def reload_now(self) -> None:
        """Forget when we last looked: the next `current()` reloads (SIGHUP)."""
        self._checked = 0.0
        self._stamp = None
        self._fetched = None

    def _accept(self, data: bytes) -> None:
        assert self._key is not None
        signed = open_signed(data, self._key)
        if self.signed_at_ms is not None and signed.signed_at_ms < self.signed_at_ms:
            raise RegistryUnsigned("trust registry: older than the one already trusted "
                                   "(a replay?)")
        self.registry = TrustRegistry.from_entries(signed.issuers)
        self.signed_at_ms = signed.signed_at_ms

    def _reload_file(self) -> None:
        assert self.spec is not None
        path = Path(self.spec)
        stat = path.stat()
        stamp = (stat.st_mtime_ns, stat.st_size)
        if stamp == self._stamp:
            return
        self._accept(path.read_bytes())
        self._stamp = stamp
        log.info("trust registry %s loaded: %d issuers", path, len(self.registry.issuers()))

    async def _fetch(self) -> None:
        assert self.spec is not None
        async with httpx.AsyncClient(timeout=10, trust_env=False,
                                     transport=self._transport) as http:
            response = await http.get(self.spec)
            response.raise_for_status()
        digest = hashlib.sha256(response.content).digest()
        if digest == self._fetched:
            return  # unchanged: keep the parsed issuers (credential definitions are big)
        self._accept(response.content)
        self._fetched = digest


def _ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


class SharedChallenges:
    """The verifier's single-use challenges, in the database every relay process shares:
    one process can issue a challenge and another verify its answer, once.

    A challenge is stored under the SHA-256 of its nonce, without the nonce: nothing on
    disk matches a presentation (the nonce is 80 random bits, so its hash reveals it to
    nobody)."""

    def __init__(self, storage: AgeStorage, retention: timedelta = _CHALLENGE_RETENTION,
                 ) -> None:
        self._storage = storage
        self._retention = retention

    @staticmethod
    def _key(nonce: str) -> bytes:
        return hashlib.sha256(nonce.encode("ascii")).digest()

    async def add(self, challenge: AgeChallenge, subject: str) -> None:
        # Neither the nonce nor the seed it was derived from.
        body = {k: v for k, v in challenge.to_json().items()
                if k not in ("nonce", "nonce_seed", "presentation_request")}
        await self._storage.add_challenge(
            self._key(challenge.nonce), subject, json.dumps(body, separators=(",", ":")),
            _ms(challenge.expires_at),
            purge_before_ms=_ms(challenge.issued_at - self._retention))

    async def claim(self, nonce: str, subject: str) -> Claim | None:
        """Mark the nonce used (atomically, across processes) and return its challenge;
        None if it was never issued, or issued to another subject."""
        found = await self._storage.claim_challenge(self._key(nonce), subject)
        if found is None:
            return None
        challenge = AgeChallenge.from_json({**json.loads(found.challenge), "nonce": nonce})
        return Claim(challenge, first=found.first)


@dataclass(frozen=True)
class _Status:
    status: AgeStatus
    row: AgeBandRow | None


class AgeService:
    def __init__(self, settings: Settings, storage: AgeStorage, directory: DeviceDirectory,
                 fanout: Fanout) -> None:
        self._settings = settings
        self._storage = storage
        self._directory = directory
        self._fanout = fanout
        self._offset = timedelta(seconds=settings.age_clock_offset_s)
        self.source = RegistrySource(
            settings.trust_registry, settings.trust_registry_refresh_s,
            key=(None if settings.trust_registry_key is None
                 else parse_public_key(settings.trust_registry_key)),
            max_age_s=settings.trust_registry_max_age_s,
            status_max_age_s=settings.revocation_status_max_age_s)
        self._challenges = SharedChallenges(storage)
        # The verifier only makes and checks challenges; they live in `_challenges`.
        self._verifier = Verifier(
            self.source.registry,
            threshold_years=settings.age_threshold_years,
            challenge_ttl=timedelta(seconds=settings.age_challenge_ttl_s),
            band_validity=timedelta(days=settings.age_band_validity_days),
            clock=self.now)
        self._task: asyncio.Task[None] | None = None
        # Called after a band is stored (the policy forgets band history on 16+).
        self._on_proven: list[Callable[[str, AgeBand], Awaitable[None]]] = []

    def on_proven(self, listener: Callable[[str, AgeBand], Awaitable[None]]) -> None:
        self._on_proven.append(listener)

    def now(self) -> datetime:
        """The verifier's clock (shifted by `age_clock_offset_s` in tests)."""
        return datetime.now(UTC) + self._offset

    def _now_ms(self) -> int:
        return int(self.now().timestamp() * 1000)

    async def start(self) -> None:
        await self._registry()
        self._task = asyncio.create_task(self._notify_loop(), name="covey-age-notify")

    async def close(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _registry(self) -> TrustRegistry:
        """The issuers that may vouch for a band now (stale ones left out)."""
        registry = await self.source.fresh()
        self._verifier.registry = registry
        return registry

    # --- the policy layer's question ---------------------------------------------------

    async def band_of(self, user_id: str) -> AgeBand:
        """The account's band as the safety policy decides on it: the proven band, except
        that an account last proven under 16 stays under 16 when that band lapses (or its
        issuer stops being trusted) until it proves 16+: a lapse is no proof of growing up,
        and must not make a child reachable as "unverified"."""
        await self._registry()  # for every account alike, so timing tells no band
        found = await self._status(user_id)
        if found.row is not None and found.row.band == AgeBand.UNDER_16.value:
            return AgeBand.UNDER_16
        return AgeBand(found.status.band)

    async def verified_band(self, user_id: str) -> AgeBand:
        """The band the account holds a valid proof for now (unexpired, from an issuer
        still trusted), else unverified: what a report may claim about its reporter. The
        contact rules ask `band_of`, which keeps a lapsed child protected."""
        return AgeBand((await self._status(user_id)).status.band)

    async def status(self, user_id: str) -> AgeStatus:
        return (await self._status(user_id)).status

    async def _status(self, user_id: str) -> _Status:
        row = await self._storage.get(user_id)
        if row is None or row.expires_ms <= self._now_ms():
            return _Status(AgeStatus(band="unverified"), row)
        trusted = {i.issuer_id for i in (await self._registry()).issuers()}
        if row.issuer_id not in trusted:
            return _Status(AgeStatus(band="unverified"), row)
        return _Status(AgeStatus(band=row.band,
                                 expires_at_ms=row.expires_ms, issuer_id=row.issuer_id,
                                 verified_at_ms=row.verified_ms), row)

    # --- challenge and presentation ------------------------------------------------------

    async def challenge(self, principal: Principal, request: AgeChallengeRequest,
                        origin: str) -> dict[str, Any]:
        """A fresh single-use challenge bound to the account and to this server's `origin`
        (the nonce is derived from both), plus the status lists the wallet must prove
        non-revocation against."""
        registry = await self._registry()
        if not registry.cred_def_ids():
            stale = " (its trust registry is out of date)" if (
                self.source.health().get("state") == "stale") else ""
            raise AgeVerificationUnavailable(
                f"this server trusts no age-credential issuer{stale}")
        challenge = self._verifier.make_challenge(
            AgeBand(request.band), horizon_days=request.horizon_days,
            origin=self._settings.public_origin or origin, account=principal.user_id)
        await self._challenges.add(challenge, principal.user_id)
        body = challenge.to_json()
        body["status_lists"] = registry.status_lists()
        body["threshold_years"] = self._settings.age_threshold_years
        return body

    async def present(self, principal: Principal, submission: bytes) -> AgeStatus:
        """Verify a presentation; on success keep band, expiry, issuer and time only."""
        await self._registry()
        nonce, presentation = Verifier.parse(submission)
        now = self.now()
        # The claim consumes the challenge whatever the outcome, before any cryptography.
        claim = await self._challenges.claim(nonce, principal.user_id)
        # CL verification is ~80-130 ms of CPU in native code that releases the GIL: in a
        # thread, so the event loop goes on serving everyone else meanwhile.
        verified = await asyncio.to_thread(self._verifier.check, claim, presentation, now)
        row = AgeBandRow(user_id=principal.user_id, band=verified.band.value,
                         expires_ms=int(verified.expires_at.timestamp() * 1000),
                         issuer_id=verified.issuer_id,
                         verified_ms=int(verified.verified_at.timestamp() * 1000))
        await self._storage.put(row)
        log.info("age band %s proven for an account", row.band)
        for listener in self._on_proven:
            await listener(principal.user_id, verified.band)
        return AgeStatus(band=row.band,
                         expires_at_ms=row.expires_ms, issuer_id=row.issuer_id,
                         verified_at_ms=row.verified_ms)

    # --- telling devices to prove again ----------------------------------------------------

    async def proof_needed(self, user_id: str) -> AgeProofNeededFrame | None:
        """The frame a connecting device gets when its account needs a (fresh) proof."""
        if not (await self._registry()).cred_def_ids():
            return None
        found = await self._status(user_id)
        if found.status.band == "unverified":
            reason = "expired" if found.row is not None else "unverified"
            return AgeProofNeededFrame(band="unverified", reason=reason)
        expires = found.status.expires_at_ms or 0
        if expires - self._now_ms() <= self._settings.age_reproof_before_s * 1000:
            return AgeProofNeededFrame(band=found.status.band, expires_at_ms=expires,
                                       reason="expiring")
        return None

    async def _notify_loop(self) -> None:
        """Tell connected devices whose band is about to expire (or just has)."""
        last = self._now_ms()
        while True:
            await asyncio.sleep(self._settings.age_notify_interval_s)
            try:
                until = self._now_ms() + self._settings.age_reproof_before_s * 1000
                for user_id in await self._storage.expiring(last, until):
                    frame = await self.proof_needed(user_id)
                    if frame is None:
                        continue
                    devices = await self._directory.devices(user_id)
                    items: list[tuple[DeviceAddress, PushFrame]] = [
                        (DeviceAddress(user_id, d), frame) for d in devices]
                    self._fanout.publish(items)
                last = until
            except Exception:  # keep notifying after a transient database error
                log.exception("age expiry notification failed")
