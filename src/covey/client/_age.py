"""The client's age wallet: link secret and credentials in the encrypted store, credential
requests to an issuer, and proofs answering the server's single-use challenges.

The wallet bytes (link secret included) only ever live in the store's encrypted records;
tails files are public and sit next to the store.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

from covey.age import (
    UNDER_16_HORIZONS,
    AgeBand,
    HeldCredential,
    LinkSecret,
    TrustedIssuer,
    Wallet,
    band_predicate,
)
from covey.age.tails import check_tails_url, tails_digest, tails_path
from covey.client._core import ClientError
from covey.client._store import Store
from covey.client._transport import Api
from covey.errors import CoveyError
from covey.protocol.wire import AgeStatus

log = logging.getLogger(__name__)

WALLET_KIND = "age"
WALLET_KEY = "wallet"
ISSUER_TIMEOUT_S = 30.0
_FRESH_MARGIN_MS = 60_000
# A tails file holds 256 bytes per credential its registry can hold (~2.5 MB per 10k).
MAX_TAILS_BYTES = 256 * 1024 * 1024


PENDING_KIND = "age_pending"  # issuer tickets not decided yet


class IssuerError(ClientError):
    """The issuer refused or failed a credential request."""

    code = "issuer_error"


def _issuer_error(response: httpx.Response) -> IssuerError:
    try:
        body = response.json()["error"]
        code, message = str(body["code"]), str(body["message"])
    except (ValueError, KeyError, TypeError):
        code, message = f"http_{response.status_code}", response.text[:200]
    return IssuerError(message, code=code, status=response.status_code)


class AgeWallet:
    """One device's age wallet, persisted in its encrypted store."""

    def __init__(self, store: Store, api: Api, tails_dir: Path | None,
                 clock: Callable[[], datetime] | None = None) -> None:
        self._store = store
        self._api = api
        self._tails_dir = tails_dir
        self._clock = clock or _utcnow
        self.lock = asyncio.Lock()
        self._wallet: Wallet | None = None

    @property
    def wallet(self) -> Wallet:
        """Loaded from the store on first use; a link secret is made when there is none."""
        if self._wallet is None:
            record = self._store.get(WALLET_KIND, WALLET_KEY)
            if record is None:
                self._wallet = Wallet(LinkSecret.generate(), clock=self._clock)
                self.save()
            else:
                self._wallet = Wallet.from_bytes(str(record["wallet"]).encode(),
                                                 clock=self._clock)
        return self._wallet

    def save(self) -> None:
        self._store.put(WALLET_KIND, WALLET_KEY, {"wallet": self.wallet.to_bytes().decode()})

    def adopt(self, wallet: Wallet | bytes) -> None:
        """Replace this device's wallet (e.g. one filled before registering)."""
        data = wallet.to_bytes() if isinstance(wallet, Wallet) else wallet
        self._wallet = Wallet.from_bytes(data, clock=self._clock)
        self.save()

    def keep(self, wallet: Wallet) -> None:
        """Make `wallet` (loaded with this device's clock) this device's wallet: the
        object itself, as a proof may still be running with it (registration)."""
        self._wallet = wallet
        self.save()

    def credentials(self) -> list[HeldCredential]:
        if self._wallet is None and not self._store.has(WALLET_KIND, WALLET_KEY):
            return []
        return self.wallet.credentials()

    # --- issuance -------------------------------------------------------------------------

    async def request_credential(self, issuer_url: str, evidence: Mapping[str, Any], *,
                                 within_s: float = 600.0, poll_s: float = 0.25,
                                 on_pending: Callable[[str], None] | None = None,
                                 ) -> HeldCredential:
        """Offer → request → (pending until the issuer decides) → credential, stored."""
        async with httpx.AsyncClient(base_url=issuer_url.rstrip("/"), trust_env=False,
                                     timeout=ISSUER_TIMEOUT_S) as http:
            offer = await self._issuer(http, "POST", "/v1/offers")
            request = self.wallet.request_credential(offer)
            self.save()  # the request's secret metadata must survive a restart
            answer = await self._issuer(http, "POST", "/v1/requests",
                                        json={"request": request, "evidence": dict(evidence)})
            ticket = str(answer["ticket_id"])
            if answer["status"] == "pending" and on_pending is not None:
                on_pending(ticket)
            deadline = asyncio.get_running_loop().time() + within_s
            while answer["status"] == "pending":
                if asyncio.get_running_loop().time() > deadline:
                    raise IssuerError(f"ticket {ticket} still pending after {within_s:.0f} s",
                                      code="issuance_pending")
                await asyncio.sleep(poll_s)
                answer = await self._issuer(http, "GET", f"/v1/requests/{ticket}")
            held = self.wallet.store_credential(answer["message"])
            self.save()
            await self._fetch_tails(held, http, "/v1/tails/")
        return held

    async def start_request(self, issuer_url: str, evidence: Mapping[str, Any]
                            ) -> tuple[str, HeldCredential | None]:
        """Offer → request, without waiting: the ticket and, if the issuer decided at
        once, the stored credential. A pending ticket is kept in the store, so
        `check_request` can collect it later (after a restart too)."""
        async with httpx.AsyncClient(base_url=issuer_url.rstrip("/"), trust_env=False,
                                     timeout=ISSUER_TIMEOUT_S) as http:
            offer = await self._issuer(http, "POST", "/v1/offers")
            request = self.wallet.request_credential(offer)
            self.save()
            answer = await self._issuer(http, "POST", "/v1/requests",
                                        json={"request": request, "evidence": dict(evidence)})
            ticket = str(answer["ticket_id"])
            if answer["status"] == "pending":
                self._store.put(PENDING_KIND, ticket, {
                    "ticket_id": ticket, "issuer_url": issuer_url.rstrip("/"),
                    "requested_ms": int(_utcnow().timestamp() * 1000)})
                return ticket, None
            held = self.wallet.store_credential(answer["message"])
            self.save()
            await self._fetch_tails(held, http, "/v1/tails/")
            return ticket, held

    def pending_requests(self) -> list[dict[str, Any]]:
        """Requests an issuer has not decided yet: ticket, issuer URL, when asked."""
        return self._store.items(PENDING_KIND)

    async def check_request(self, ticket: str) -> HeldCredential | None:
        """Collect a pending request: the credential once issued (stored, and the
        ticket forgotten), None while still pending; `IssuerError` if refused."""
        record = self._store.get(PENDING_KIND, ticket)
        if record is None:
            raise ClientError(f"no pending age request {ticket} on this device",
                              code="unknown_ticket", status=404)
        async with httpx.AsyncClient(base_url=str(record["issuer_url"]), trust_env=False,
                                     timeout=ISSUER_TIMEOUT_S) as http:
            try:
                answer = await self._issuer(http, "GET", f"/v1/requests/{ticket}")
            except IssuerError as exc:
                if 400 <= exc.status < 500 and exc.status != 429:
                    self._store.delete(PENDING_KIND, ticket)  # refused or unknown: gone
                raise
            if answer["status"] == "pending":
                return None
            held = self.wallet.store_credential(answer["message"])
            self.save()
            self._store.delete(PENDING_KIND, ticket)
            await self._fetch_tails(held, http, "/v1/tails/")
            return held

    async def _fetch_tails(self, held: HeldCredential, http: httpx.AsyncClient | None = None,
                           base: str | None = None) -> None:
        await fetch_tails(held, self._tails_dir, http, base)

    @staticmethod
    async def _issuer(http: httpx.AsyncClient, method: str, path: str,
                      json: Any = None) -> dict[str, Any]:
        try:
            response = await http.request(method, path, json=json)
        except httpx.TransportError as exc:
            raise IssuerError(f"cannot reach the issuer: {type(exc).__name__}",
                              code="issuer_offline") from exc
        if response.status_code >= 400:
            raise _issuer_error(response)
        body: dict[str, Any] = response.json()
        return body

    # --- proving --------------------------------------------------------------------------

    def provable_band(self) -> tuple[AgeBand, int | None] | None:
        """The band this wallet can prove now (and the under-16 horizon), if any."""
        return provable_band(self.wallet, self._clock())

    async def prove(self) -> AgeStatus:
        """Ask the server for a challenge for our band and answer it."""
        async with self.lock:
            return await self._prove()

    async def _prove(self) -> AgeStatus:
        return await prove_band(self.wallet, self._api, self._tails_dir, self._clock)

    async def answer_server(self) -> None:
        """The server asked for a fresh proof: give one unless it is already fresh."""
        if not self.wallet.credentials():
            return
        async with self.lock:
            try:
                status = (await self._api.me()).age
                now_ms = int(self._clock().timestamp() * 1000)
                if (status.band != "unverified" and status.expires_at_ms is not None
                        and status.expires_at_ms - now_ms > _FRESH_MARGIN_MS
                        and (status.verified_at_ms or 0) > now_ms - _FRESH_MARGIN_MS):
                    return  # proven a moment ago (at registration, or by another device)
                result = await self._prove()
            except ClientError as exc:  # offline, revoked, refused: the server asks again
                log.warning("could not answer the server's age challenge: %s", exc.code)
                return
            log.info("age band %s proven", result.band)


# --- the steps, on a wallet and a connection (also used before a device has a store) ------


def _utcnow() -> datetime:
    return datetime.now(UTC)


async def prove_at_registration(wallet: Wallet, api: Api, tails_dir: Path | None,
                                clock: Callable[[], datetime] | None) -> None:
    """A new device's first proof, begun before its store is ready; a failure leaves the
    account registered and unverified (the server asks again when it connects)."""
    try:
        status = await prove_band(wallet, api, tails_dir, clock or _utcnow)
    except ClientError as exc:
        log.warning("age proof at registration failed: %s", exc.code)
        return
    log.info("age band %s proven at registration", status.band)


def provable_band(wallet: Wallet, now: datetime) -> tuple[AgeBand, int | None] | None:
    """The band `wallet` can prove at `now` (and the under-16 horizon), if any."""
    births = [c.birthdate_dateint for c in wallet.credentials()]
    if not births:
        return None
    adult = band_predicate(AgeBand.SIXTEEN_PLUS, now)
    if any(adult.holds_for(b) for b in births):
        return AgeBand.SIXTEEN_PLUS, None
    for horizon in UNDER_16_HORIZONS:
        predicate = band_predicate(AgeBand.UNDER_16, now, horizon_days=horizon)
        if any(predicate.holds_for(b) for b in births):
            return AgeBand.UNDER_16, horizon
    return None  # within a day of the 16th birthday: wait and prove 16+


async def prove_band(wallet: Wallet, api: Api, tails_dir: Path | None,
                     clock: Callable[[], datetime]) -> AgeStatus:
    """Ask the server for a challenge for the band `wallet` can prove, and answer it."""
    chosen = provable_band(wallet, clock())
    if chosen is None:
        raise ClientError("the wallet holds no credential that can prove a band now",
                          code="no_age_credential")
    band, horizon = chosen
    for held in wallet.credentials():
        await fetch_tails(held, tails_dir)
    # The witness does not depend on the challenge: computed while the challenge travels.
    challenge, _ = await asyncio.gather(api.age_challenge(band.value, horizon),
                                        asyncio.to_thread(wallet.warm_up, tails_dir))
    submission = await answer_challenge(wallet, challenge, api.server_url, api.user_id,
                                        tails_dir)
    return await api.age_presentation(submission)


async def answer_challenge(wallet: Wallet, challenge: Mapping[str, Any], server_url: str,
                           account: str, tails_dir: Path | None) -> dict[str, Any]:
    """The wallet's answer to `challenge`, only if it names the server this account is
    registered with (`server_url`) and this account, with a nonce derived from both: a
    challenge relayed from someone else's account or from another verifier is refused."""
    log.info("answering an age challenge from %s", challenge.get("origin") or "?")
    try:
        # ~0.1 s of CPU in anoncreds, which lets go of the GIL.
        return await asyncio.to_thread(
            wallet.present, challenge, status_lists=challenge.get("status_lists"),
            tails_dir=tails_dir, origin=server_url, account=account)
    except CoveyError as exc:  # revoked, no trusted credential, refused challenge
        raise ClientError(exc.message, code=exc.code, status=exc.status) from exc


async def fetch_tails(held: HeldCredential, tails_dir: Path | None,
                      http: httpx.AsyncClient | None = None, base: str | None = None) -> None:
    """Download the issuer's (public) tails file for `held` once, from the issuer we
    talked to or from the published `tails_location`.

    The issuer names the file: the name is checked (`covey.age.tails`), the download must
    be HTTPS (or loopback HTTP), and its bytes must hash to the name before they are saved."""
    registry = TrustedIssuer.from_entry(held.issuer).registry(held.rev_reg_id)
    if registry is None or tails_dir is None:
        return
    try:
        path = tails_path(tails_dir, registry.tails_hash)
        if path.exists():
            return
        if http is not None and base is not None:
            url = str(http.base_url.join(f"{base}{registry.tails_hash}"))
        elif registry.tails_location.startswith(("http://", "https://")):
            url = registry.tails_location
        else:
            return  # the wallet's present() names the missing file
        check_tails_url(url)
    except CoveyError as exc:
        raise IssuerError(f"refusing the issuer's tails file: {exc.message}",
                          code="tails_refused") from exc
    try:
        if http is not None:
            content = await _download(http, url)
        else:
            async with httpx.AsyncClient(trust_env=False, timeout=ISSUER_TIMEOUT_S) as h:
                content = await _download(h, url)
    except httpx.TransportError as exc:
        raise IssuerError(f"cannot fetch the tails file: {type(exc).__name__}",
                          code="issuer_offline") from exc
    if not hmac.compare_digest(tails_digest(content), registry.tails_hash):
        raise IssuerError("the downloaded tails file does not match its hash",
                          code="tails_refused")
    _save(path, content)


async def _download(http: httpx.AsyncClient, url: str) -> bytes:
    """The body at `url`, at most MAX_TAILS_BYTES; an issuer error for 4xx/5xx."""
    async with http.stream("GET", url) as response:
        if response.status_code >= 400:
            await response.aread()
            raise _issuer_error(response)
        chunks: list[bytes] = []
        size = 0
        async for chunk in response.aiter_bytes():
            size += len(chunk)
            if size > MAX_TAILS_BYTES:
                raise IssuerError("the tails file is too large", code="tails_refused")
            chunks.append(chunk)
    return b"".join(chunks)


def _save(path: Path, content: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".part")
    tmp.write_bytes(content)
    tmp.replace(path)
