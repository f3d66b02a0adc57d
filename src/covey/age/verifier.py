"""The verifier: single-use age challenges, and checks of the presentations answering them.

`Verifier.verify` returns a `VerifiedAge` (band, expiry, issuer, time) and nothing
else; the presentation itself is dropped. Every failure is an `AgeError` with a code.
"""

from __future__ import annotations

import base64
import json
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

import anoncreds

from covey.age.bands import (
    DEFAULT_BAND_VALIDITY,
    DEFAULT_THRESHOLD_YEARS,
    UNDER_16_HORIZONS,
    AgeBand,
    band_expires_at,
    band_predicate,
)
from covey.age.challenge import (
    PREDICATE_REFERENT,
    AgeChallenge,
    derive_nonce,
    new_nonce_seed,
    normalize_origin,
)
from covey.age.errors import (
    IssuerUntrusted,
    MalformedPresentation,
    NonceExpired,
    NonceUnknown,
    NonceUsed,
    PredicateMismatch,
    ProofInvalid,
    RevocationStale,
)
from covey.age.registry import TrustedIssuer, TrustRegistry
from covey.errors import InvalidInput

__all__ = ["ChallengeStore", "Claim", "MemoryChallengeStore", "TrustRegistry", "VerifiedAge",
           "Verifier"]

DEFAULT_CHALLENGE_TTL = timedelta(minutes=5)
MAX_PRESENTATION_BYTES = 256 * 1024


@dataclass(frozen=True)
class VerifiedAge:
    """The only thing a verification leaves behind."""

    band: AgeBand
    expires_at: datetime
    issuer_id: str
    verified_at: datetime


@dataclass(frozen=True)
class Claim:
    """A challenge looked up for answering; `first` is False if it was answered before."""

    challenge: AgeChallenge
    first: bool


class ChallengeStore(Protocol):
    """Where outstanding challenges wait. `claim` must be atomic (one winner per nonce)."""

    def add(self, challenge: AgeChallenge, subject: str | None) -> None: ...

    def claim(self, nonce: str, subject: str | None, now: datetime) -> Claim | None:
        """Mark the nonce used and return it; None if unknown or issued to another subject."""
        ...


class MemoryChallengeStore:
    """In-process store. Used nonces are remembered until `retention` after expiry."""

    def __init__(self, retention: timedelta = timedelta(hours=1)) -> None:
        self._retention = retention
        self._lock = threading.Lock()
        self._records: dict[str, tuple[AgeChallenge, str | None, bool]] = {}

    def add(self, challenge: AgeChallenge, subject: str | None) -> None:
        with self._lock:
            horizon = challenge.issued_at - self._retention
            for nonce in [n for n, r in self._records.items() if r[0].expires_at < horizon]:
                del self._records[nonce]
            self._records[challenge.nonce] = (challenge, subject, False)

    def claim(self, nonce: str, subject: str | None, now: datetime) -> Claim | None:
        with self._lock:
            record = self._records.get(nonce)
            if record is None or record[1] != subject:
                return None
            challenge, _, used = record
            self._records[nonce] = (challenge, subject, True)
            return Claim(challenge, first=not used)

    def __len__(self) -> int:
        return len(self._records)


def _dict(value: Any, what: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise MalformedPresentation(f"{what} must be an object")
    return value


class Verifier:
    """Makes age challenges and verifies the presentations that answer them."""

    def __init__(self, registry: TrustRegistry, *, store: ChallengeStore | None = None,
                 threshold_years: int = DEFAULT_THRESHOLD_YEARS,
                 challenge_ttl: timedelta = DEFAULT_CHALLENGE_TTL,
                 band_validity: timedelta = DEFAULT_BAND_VALIDITY,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        if threshold_years < 1:
            raise ValueError("threshold_years must be positive")
        self.registry = registry
        self._store: ChallengeStore = store if store is not None else MemoryChallengeStore()
        self._threshold = threshold_years
        self._ttl = challenge_ttl
        self._validity = band_validity
        self._clock = clock

    def challenge(self, band: AgeBand, *, subject: str | None = None,
                  horizon_days: int | None = None) -> AgeChallenge:
        """A fresh single-use challenge for `band`, optionally bound to `subject`, kept in
        this verifier's store.

        For under-16, `horizon_days` (one of `UNDER_16_HORIZONS`, default the longest
        within the band validity) is how long the holder must stay under the threshold;
        a holder whose birthday is closer cannot answer, and the client asks again with
        the next shorter horizon (see docs/age-assurance.md).
        """
        challenge = self.make_challenge(band, horizon_days=horizon_days)
        self._store.add(challenge, subject)
        return challenge

    def make_challenge(self, band: AgeBand, *, horizon_days: int | None = None,
                       origin: str | None = None, account: str | None = None,
                       ) -> AgeChallenge:
        """A fresh challenge, not stored: for callers that keep challenges elsewhere (the
        relay's database) and answer them with `check`.

        With `origin` (this verifier) and `account`, the nonce is derived from both and a
        fresh seed, so the holder's wallet can tell a challenge made for someone else."""
        if band is AgeBand.UNVERIFIED:
            raise InvalidInput("'unverified' is not something to prove")
        allowed = [h for h in UNDER_16_HORIZONS if h <= self._validity.days]
        horizon = max(allowed) if horizon_days is None else horizon_days
        if horizon not in allowed:
            raise InvalidInput(f"horizon_days must be one of {allowed}")
        cred_def_ids = tuple(self.registry.cred_def_ids())
        if not cred_def_ids:
            raise InvalidInput("the trust registry is empty")
        now = self._clock()
        nonce, seed, bound_origin = str(anoncreds.generate_nonce()), "", ""
        if origin is not None and account is not None:
            bound_origin = normalize_origin(origin)
            raw_seed = new_nonce_seed()
            nonce = derive_nonce(bound_origin, account, raw_seed)
            seed = base64.b64encode(raw_seed).decode("ascii")
        return AgeChallenge(
            nonce=nonce,
            origin=bound_origin,
            account=(account or "") if seed else "",
            nonce_seed=seed,
            band=band,
            predicate=band_predicate(band, now, threshold_years=self._threshold,
                                     horizon_days=horizon),
            cred_def_ids=cred_def_ids,
            issued_at=now,
            expires_at=now + self._ttl,
            horizon_days=horizon,
        )

    def verify(self, submission: bytes | str | Mapping[str, Any], *,
               subject: str | None = None) -> VerifiedAge:
        """Check a wallet's answer; return the band or raise an `AgeError`.

        The first answer naming a challenge consumes it, whatever the outcome.
        """
        nonce, presentation = self.parse(submission)
        now = self._clock()
        return self.check(self._store.claim(nonce, subject, now), presentation, now)

    def check(self, claim: Claim | None, presentation: dict[str, Any],
              now: datetime | None = None) -> VerifiedAge:
        """Check a presentation against the challenge its nonce claimed (None: unknown).

        `verify` is `parse`, a store's `claim`, then this; a caller whose store is
        asynchronous (a database) claims itself and runs only this in a thread.
        """
        now = self._clock() if now is None else now
        if claim is None:
            raise NonceUnknown("no challenge with this nonce was issued to you")
        if not claim.first:
            raise NonceUsed("this challenge was already answered")
        challenge = claim.challenge
        if now >= challenge.expires_at:
            raise NonceExpired("the challenge has expired; ask for a new one")
        issuer = self._check_structure(presentation, challenge)
        self._check_proof(presentation, challenge, issuer)
        return VerifiedAge(
            band=challenge.band,
            expires_at=band_expires_at(challenge.band, challenge.issued_at,
                                       horizon_days=challenge.horizon_days,
                                       validity=self._validity),
            issuer_id=issuer.issuer_id,
            verified_at=now,
        )

    @staticmethod
    def parse(submission: bytes | str | Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
        """`(nonce, presentation)` from a submission; `MalformedPresentation` if it is not
        one. Cheap: no cryptography, no store."""
        if isinstance(submission, bytes | str):
            if len(submission) > MAX_PRESENTATION_BYTES:
                raise MalformedPresentation("presentation is too large")
            try:
                submission = json.loads(submission)
            except ValueError as exc:
                raise MalformedPresentation("presentation is not JSON") from exc
        body = _dict(submission, "submission")
        nonce = body.get("nonce")
        if (not isinstance(nonce, str) or not (nonce.isascii() and nonce.isdigit())
                or len(nonce) > 100):
            raise MalformedPresentation("nonce must be a decimal string")
        return nonce, _dict(body.get("presentation"), "presentation")

    def _check_structure(self, presentation: dict[str, Any], challenge: AgeChallenge,
                         ) -> TrustedIssuer:
        """Everything that can be checked before the (slow) cryptography."""
        try:
            proofs = _dict(presentation["proof"], "proof")["proofs"]
            requested = _dict(presentation["requested_proof"], "requested_proof")
            identifiers = presentation["identifiers"]
            if not (isinstance(proofs, list) and isinstance(identifiers, list)):
                raise MalformedPresentation("proofs and identifiers must be lists")
            if len(proofs) != 1 or len(identifiers) != 1:
                raise PredicateMismatch("exactly one credential must be presented")
            ge_proofs = _dict(_dict(proofs[0], "proof")["primary_proof"],
                              "primary_proof").get("ge_proofs")
            predicates = [_dict(g, "ge_proof").get("predicate") for g in ge_proofs or []]
            identifier = _dict(identifiers[0], "identifier")
        except (KeyError, TypeError) as exc:
            raise MalformedPresentation(f"not an AnonCreds presentation: {exc}") from exc
        # anoncreds 0.2.3 verifies whatever predicate the proof carries, not the one in the
        # request: a proof of "birthdate < 2030" passes a request for "<= 2010". So the
        # predicate must be compared here, exactly.
        if predicates != [challenge.predicate.proof_form()]:
            raise PredicateMismatch("the proof does not prove the requested predicate")
        if (set(requested.get("predicates") or {}) != {PREDICATE_REFERENT}
                or any(requested.get(k) for k in ("revealed_attrs", "revealed_attr_groups",
                                                  "unrevealed_attrs", "self_attested_attrs"))):
            raise PredicateMismatch("the presentation answers other questions than asked")
        cred_def_id = identifier.get("cred_def_id")
        issuer = self.registry.get(cred_def_id) if isinstance(cred_def_id, str) else None
        if issuer is None or cred_def_id not in challenge.cred_def_ids:
            raise IssuerUntrusted("the credential's issuer is not trusted")
        if identifier.get("schema_id") != issuer.schema_id:
            raise IssuerUntrusted("the credential is not over the trusted schema")
        timestamp = identifier.get("timestamp")
        if issuer.revocations:
            registry = issuer.registry(identifier.get("rev_reg_id"))
            if (registry is None or not isinstance(timestamp, int)
                    or not _dict(proofs[0], "proof").get("non_revoc_proof")):
                raise ProofInvalid("a non-revocation proof against one of the issuer's "
                                   "registries is required")
            if timestamp != registry.timestamp:
                raise RevocationStale("the non-revocation proof is not against the current "
                                      "status list; fetch it and answer a new challenge")
        return issuer

    @staticmethod
    def _check_proof(presentation: dict[str, Any], challenge: AgeChallenge,
                     issuer: TrustedIssuer) -> None:
        rev_reg_defs = None
        status_lists = None
        if issuer.revocations:
            # `_check_structure` made sure the registry is one of the issuer's.
            registry = issuer.registry(presentation["identifiers"][0].get("rev_reg_id"))
            assert registry is not None
            rev_reg_defs = {registry.rev_reg_def_id: registry.rev_reg_def_object}
            status_lists = [registry.status_list_object]
        try:
            loaded = anoncreds.Presentation.load(presentation)
        except anoncreds.AnoncredsError as exc:
            raise MalformedPresentation(f"not an AnonCreds presentation: {exc}") from exc
        try:
            valid = loaded.verify(
                challenge.presentation_request(),
                {issuer.schema_id: issuer.schema_object},
                {issuer.cred_def_id: issuer.cred_def_object},
                rev_reg_defs, status_lists)
        except anoncreds.AnoncredsError as exc:
            raise ProofInvalid(f"the proof does not verify: {exc}") from exc
        if not valid:
            raise ProofInvalid("the proof does not verify (forged, altered, made for another "
                               "challenge, or with a revoked credential)")
