"""The holder's wallet: link secret, age credentials, and automatic answers to challenges.

The wallet is plain state in and out (`to_bytes` / `from_bytes`); the client's
encrypted local store keeps those bytes. It holds the link secret, so the bytes are
secret: never log them, never send them anywhere.
"""

from __future__ import annotations

import contextlib
import json
import re
import secrets
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anoncreds

from covey.age.bands import BIRTHDATE_ATTRIBUTE, DEFAULT_THRESHOLD_YEARS, is_band_predicate
from covey.age.challenge import PREDICATE_REFERENT, AgeChallenge, normalize_origin
from covey.age.errors import (
    ChallengeRefused,
    CredentialRevoked,
    NoMatchingCredential,
    PredicateUnsatisfiable,
    WalletCorrupt,
)
from covey.age.registry import Revocation, TrustedIssuer
from covey.age.tails import tails_path
from covey.errors import InvalidInput

_FORMAT = 1

_CREDENTIAL_ID = re.compile(r"[0-9a-f]{32}")


@dataclass(frozen=True, eq=False)
class LinkSecret:
    """The holder's AnonCreds link secret (a big decimal integer). Redacted `repr`."""

    value: str = field(repr=False)

    @classmethod
    def generate(cls) -> LinkSecret:
        return cls(str(anoncreds.create_link_secret()))

    def __repr__(self) -> str:
        return "LinkSecret(<redacted>)"

    __str__ = __repr__


def check_binding(challenge: AgeChallenge, origin: str | None, account: str | None) -> None:
    """Refuse a challenge not made by `origin` for `account` (`ChallengeRefused`)."""
    if origin is not None and challenge.origin != normalize_origin(origin):
        named = challenge.origin or "an unnamed verifier"
        raise ChallengeRefused(f"the challenge is from {named}, not from "
                               f"{normalize_origin(origin)}, the server this account is "
                               f"registered with")
    if account is not None and challenge.account != account:
        raise ChallengeRefused("the challenge was made for another account (a relayed "
                               "challenge?)")
    if not challenge.binding_holds():
        raise ChallengeRefused("the challenge's nonce is not bound to its verifier and "
                               "account")


@dataclass(frozen=True)
class HeldCredential:
    """One stored credential and the issuer material it was issued under."""

    credential_id: str
    issuer: dict[str, Any]  # trust-registry entry, as the issuer published it
    credential: dict[str, Any]

    @property
    def cred_def_id(self) -> str:
        return str(self.credential["cred_def_id"])

    @property
    def issuer_id(self) -> str:
        return str(self.issuer["issuer_id"])

    @property
    def rev_reg_id(self) -> str | None:
        value = self.credential.get("rev_reg_id")
        return None if value is None else str(value)

    @property
    def rev_reg_index(self) -> int | None:
        rev_reg = self.credential.get("signature", {}).get("r_credential")
        if not rev_reg:
            return None
        return int(rev_reg["i"])

    @property
    def birthdate_dateint(self) -> int:
        return int(self.credential["values"][BIRTHDATE_ATTRIBUTE]["raw"])

    def __repr__(self) -> str:  # the birth date is personal data: keep it out of logs
        return f"HeldCredential({self.credential_id}, {self.cred_def_id})"


class Wallet:
    """A holder of age credentials. Not thread-safe: one wallet per client."""

    def __init__(self, link_secret: LinkSecret, *,
                 link_secret_id: str = "covey",  # noqa: S107 (a label, not a secret)
                 credentials: list[HeldCredential] | None = None,
                 pending: dict[str, dict[str, Any]] | None = None,
                 threshold_years: int = DEFAULT_THRESHOLD_YEARS,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        """`threshold_years` is the only age threshold the wallet will prove against."""
        self._link_secret = link_secret
        self._threshold = threshold_years
        self._clock = clock
        self._link_secret_id = link_secret_id
        self._credentials = list(credentials or [])
        self._pending = dict(pending or {})
        # Witnesses are costly to compute from a tails file; reuse them per status list.
        self._rev_states: dict[tuple[str, int, int], Any] = {}

    @classmethod
    def create(cls, *, threshold_years: int = DEFAULT_THRESHOLD_YEARS) -> Wallet:
        return cls(LinkSecret.generate(), threshold_years=threshold_years)

    def __repr__(self) -> str:
        return f"Wallet(<{len(self._credentials)} credentials>)"

    # -- persistence -------------------------------------------------------------------

    def to_bytes(self) -> bytes:
        """Everything the wallet knows, as JSON bytes. Secret: store them encrypted."""
        return json.dumps({
            "format": _FORMAT,
            "link_secret": self._link_secret.value,
            "link_secret_id": self._link_secret_id,
            "credentials": [{"credential_id": c.credential_id, "issuer": c.issuer,
                             "credential": c.credential} for c in self._credentials],
            "pending": self._pending,
        }, separators=(",", ":")).encode()

    @classmethod
    def from_bytes(cls, data: bytes, *,
                   threshold_years: int = DEFAULT_THRESHOLD_YEARS,
                   clock: Callable[[], datetime] | None = None) -> Wallet:
        try:
            state = json.loads(data)
            if state.get("format") != _FORMAT:
                raise WalletCorrupt(f"unknown wallet format {state.get('format')!r}")
            return cls(
                LinkSecret(str(state["link_secret"])),
                link_secret_id=str(state["link_secret_id"]),
                credentials=[HeldCredential(str(c["credential_id"]), dict(c["issuer"]),
                                            dict(c["credential"]))
                             for c in state["credentials"]],
                pending={str(k): dict(v) for k, v in state["pending"].items()},
                threshold_years=threshold_years,
                **({} if clock is None else {"clock": clock}),
            )
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise WalletCorrupt(f"wallet bytes cannot be read: {exc}") from exc

    # -- issuance ----------------------------------------------------------------------

    def request_credential(self, offer_bundle: Mapping[str, Any]) -> dict[str, Any]:
        """Answer an issuer's offer with a credential request (blinded link secret)."""
        try:
            offer = dict(offer_bundle["offer"])
            issuer = TrustedIssuer.from_entry(offer_bundle["issuer"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not a credential offer: {exc}") from exc
        if offer.get("cred_def_id") != issuer.cred_def_id:
            raise InvalidInput("the offer is for another credential definition")
        try:
            request, metadata = anoncreds.CredentialRequest.create(
                secrets.token_hex(16), None, issuer.cred_def_object, self._link_secret.value,
                self._link_secret_id, offer)
        except anoncreds.AnoncredsError as exc:
            raise InvalidInput(f"cannot answer the offer: {exc}") from exc
        body = request.to_dict()
        self._pending[str(body["nonce"])] = {"metadata": metadata.to_dict(),
                                             "issuer": issuer.to_entry()}
        return {"offer_nonce": offer["nonce"], "request": body}

    def store_credential(self, message: Mapping[str, Any]) -> HeldCredential:
        """Check and keep the credential the issuer sent for one of our requests."""
        try:
            request_nonce = str(message["request_nonce"])
            raw = dict(message["credential"])
        except (KeyError, TypeError, ValueError) as exc:
            raise InvalidInput(f"not an issued credential: {exc}") from exc
        pending = self._pending.get(request_nonce)
        if pending is None:
            raise InvalidInput("this credential answers no request of ours")
        issuer = TrustedIssuer.from_entry(pending["issuer"])
        if message.get("issuer") is not None:
            # The issuer's material as of issuance: it may have opened a new revocation
            # registry since its offer. Only registries may differ, never the keys.
            newer = TrustedIssuer.from_entry(message["issuer"])
            if (newer.cred_def != issuer.cred_def or newer.schema != issuer.schema
                    or newer.issuer_id != issuer.issuer_id):
                raise InvalidInput("the credential comes with another issuer's material")
            issuer = newer
        registry = issuer.registry(raw.get("rev_reg_id"))
        if raw.get("rev_reg_id") is not None and registry is None:
            raise InvalidInput("the credential names a revocation registry the issuer did "
                               "not publish")
        try:
            credential = anoncreds.Credential.load(raw).process(
                pending["metadata"], self._link_secret.value, issuer.cred_def_object,
                None if registry is None else registry.rev_reg_def_object)
        except anoncreds.AnoncredsError as exc:
            raise InvalidInput(f"the issued credential does not check out: {exc}") from exc
        body = credential.to_dict()
        if BIRTHDATE_ATTRIBUTE not in body.get("values", {}):
            raise InvalidInput(f"the credential carries no {BIRTHDATE_ATTRIBUTE}")
        # The issuer's id for it (one id for one credential), or a fresh one from an
        # issuer that sends none.
        given = message.get("credential_id")
        credential_id = (given if isinstance(given, str) and _CREDENTIAL_ID.fullmatch(given)
                         and all(c.credential_id != given for c in self._credentials)
                         else uuid.uuid4().hex)
        held = HeldCredential(credential_id, issuer.to_entry(), body)
        del self._pending[request_nonce]
        self._credentials.append(held)
        return held

    def credentials(self) -> list[HeldCredential]:
        return list(self._credentials)

    def remove(self, credential_id: str) -> None:
        self._credentials = [c for c in self._credentials if c.credential_id != credential_id]

    # -- presentation ------------------------------------------------------------------

    def present(self, challenge: AgeChallenge | Mapping[str, Any], *,
                status_lists: Mapping[str, Mapping[str, Any]] | None = None,
                tails_dir: Path | None = None, origin: str | None = None,
                account: str | None = None) -> dict[str, Any]:
        """Prove the challenge's predicate with a suitable credential.

        `status_lists` are the current status lists by revocation registry id (the
        verifier's trust registry publishes them); `tails_dir` holds the issuers' tails
        files named by their hash. Reveals no attribute: only the predicate holds.

        With `origin` (the server this wallet's account is on) and `account` (its id), the
        challenge must name both and its nonce must recompute from them: a challenge
        relayed from another account or another verifier is refused.
        """
        if not isinstance(challenge, AgeChallenge):
            challenge = AgeChallenge.from_json(challenge)
        if origin is not None or account is not None:
            check_binding(challenge, origin, account)
        if not is_band_predicate(challenge.band, challenge.predicate, self._clock(),
                                 threshold_years=self._threshold,
                                 horizon_days=challenge.horizon_days):
            raise ChallengeRefused(f"the challenge does not ask for the {challenge.band.value} "
                                   f"band with a {self._threshold}-year threshold")
        held, status_list = self._choose(challenge, status_lists or {})
        issuer = TrustedIssuer.from_entry(held.issuer)
        credential = anoncreds.Credential.load(held.credential)
        present = anoncreds.PresentCredentials()
        if status_list is None:
            present.add_predicates(credential, PREDICATE_REFERENT)
        else:
            registry = issuer.registry(held.rev_reg_id)
            if tails_dir is None or registry is None:
                raise InvalidInput("a revocable credential needs the issuer's tails file")
            timestamp = int(status_list["timestamp"])
            rev_state = self._revocation_state(held, registry, status_list, tails_dir)
            present.add_predicates(credential, PREDICATE_REFERENT, timestamp=timestamp,
                                   rev_state=rev_state)
        try:
            presentation = anoncreds.Presentation.create(
                challenge.presentation_request(), present, {}, self._link_secret.value,
                {issuer.schema_id: issuer.schema_object},
                {issuer.cred_def_id: issuer.cred_def_object})
        except anoncreds.AnoncredsError as exc:
            raise InvalidInput(f"cannot build the presentation: {exc}") from exc
        return {"nonce": challenge.nonce, "presentation": presentation.to_dict()}

    def warm_up(self, tails_dir: Path | None) -> None:
        """Compute the non-revocation witnesses a proof will need before its challenge
        arrives (they depend on the status list, not on the challenge), against the
        status lists the issuers published with the credentials. A challenge that
        carries a newer list makes `present` compute its own; nothing else changes."""
        if tails_dir is None:
            return
        for held in self._credentials:
            index = held.rev_reg_index
            registry = TrustedIssuer.from_entry(held.issuer).registry(held.rev_reg_id)
            if registry is None or index is None:
                continue
            bits = registry.status_list.get("revocationList") or []
            if (index >= len(bits) or bits[index]
                    or not tails_path(tails_dir, registry.tails_hash).exists()):
                continue
            with contextlib.suppress(InvalidInput):
                self._revocation_state(held, registry, registry.status_list, tails_dir)

    def _choose(self, challenge: AgeChallenge, status_lists: Mapping[str, Mapping[str, Any]],
                ) -> tuple[HeldCredential, Mapping[str, Any] | None]:
        accepted = [c for c in self._credentials if c.cred_def_id in challenge.cred_def_ids]
        if not accepted:
            raise NoMatchingCredential("no credential from an issuer this verifier trusts")
        satisfying = [c for c in accepted if challenge.predicate.holds_for(c.birthdate_dateint)]
        if not satisfying:
            raise PredicateUnsatisfiable(f"cannot prove {challenge.band.value}")
        revoked = False
        for held in satisfying:
            if held.rev_reg_id is None:
                return held, None
            status_list = status_lists.get(held.rev_reg_id)
            if status_list is None:
                continue
            index = held.rev_reg_index
            bits = status_list.get("revocationList") or []
            if index is None or index >= len(bits) or bits[index]:
                revoked = True
                continue
            return held, status_list
        if revoked:
            raise CredentialRevoked("the issuer has revoked this credential")
        raise NoMatchingCredential("no current status list for the credential's registry")

    def _revocation_state(self, held: HeldCredential, registry: Revocation,
                          status_list: Mapping[str, Any], tails_dir: Path) -> Any:
        assert held.rev_reg_index is not None
        key = (registry.rev_reg_def_id, int(status_list["timestamp"]), held.rev_reg_index)
        state = self._rev_states.get(key)
        if state is None:
            tails = tails_path(tails_dir, registry.tails_hash)
            try:
                state = anoncreds.CredentialRevocationState.create(
                    registry.rev_reg_def_object, dict(status_list), held.rev_reg_index,
                    str(tails))
            except anoncreds.AnoncredsError as exc:
                raise InvalidInput(f"cannot compute the non-revocation witness: {exc}") from exc
            self._rev_states = {k: v for k, v in self._rev_states.items() if k[0] != key[0]}
            self._rev_states[key] = state
        return state
