"""The age-credential issuer: schema, revocable credential definition, issuance, revocation.

State lives in one directory: `public.json` (what `publish()` returns), `private.json`
and `ledger.json` (0600: signing keys, issued indexes, pending tickets) and `tails/`.
The issuer signs a birth date only after its `BirthDateCheck` approves it, and keeps
no birth date once the credential has been collected.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

import anoncreds

from covey.age._files import PRIVATE_MODE, PUBLIC_MODE, read_json, write_json
from covey.age.bands import BIRTHDATE_ATTRIBUTE, to_dateint
from covey.age.checks import Approved, BirthDateCheck, CheckOutcome, Pending, Rejected
from covey.age.errors import (
    CredentialUnknown,
    IssuanceRejected,
    OfferUnknown,
    RegistryFull,
    TicketUnknown,
)
from covey.errors import InvalidInput

SCHEMA_NAME = "covey-age"
SCHEMA_VERSION = "1.0"
OFFER_TTL_S = 24 * 3600


@dataclass(frozen=True)
class IssuanceResult:
    """Where a request stands. `message` (when issued) goes to the holder's wallet;
    `credential_id` stays with the issuer: it is the handle for `revoke`."""

    ticket_id: str
    status: str  # "pending" | "issued" | "rejected"
    credential_id: str | None = None
    message: dict[str, Any] | None = None
    reason: str = ""


@dataclass(frozen=True)
class PendingTicket:
    """A request waiting for a decision, as an operator sees it."""

    ticket_id: str
    submitted_at: float
    evidence: dict[str, Any]
    reason: str


class Issuer:
    """Issues revocable AnonCreds credentials carrying `birthdate_dateint`."""

    def __init__(self, directory: Path, check: BirthDateCheck, *,
                 clock: Callable[[], float] = time.time) -> None:
        """Open an existing issuer directory (see `Issuer.create`)."""
        self._dir = directory
        self._check = check
        self._clock = clock
        self._lock = threading.RLock()
        self._depth = 0
        public = read_json(directory / "public.json")
        private = read_json(directory / "private.json")
        self._ledger: dict[str, Any] = read_json(directory / "ledger.json")
        self._public: dict[str, Any] = public
        self.issuer_id: str = public["issuer_id"]
        self.schema_id: str = public["schema_id"]
        self.cred_def_id: str = public["cred_def_id"]
        self.rev_reg_def_id: str = public["revocation"]["rev_reg_def_id"]
        self._schema = anoncreds.Schema.load(public["schema"])
        self._cred_def = anoncreds.CredentialDefinition.load(public["cred_def"])
        self._rev_reg_def = anoncreds.RevocationRegistryDefinition.load(
            public["revocation"]["rev_reg_def"])
        self._status_list = anoncreds.RevocationStatusList.load(
            public["revocation"]["status_list"])
        self._cred_def_private = anoncreds.CredentialDefinitionPrivate.load(
            private["cred_def_private"])
        self._key_proof = anoncreds.KeyCorrectnessProof.load(private["key_correctness_proof"])
        self._rev_reg_def_private = anoncreds.RevocationRegistryDefinitionPrivate.load(
            private["rev_reg_def_private"])

    @classmethod
    def create(cls, directory: Path, issuer_id: str, check: BirthDateCheck, *,
               capacity: int = 1000, tails_base_url: str | None = None,
               clock: Callable[[], float] = time.time) -> Issuer:
        """Make keys, a revocation registry for `capacity` credentials, and save them.

        `issuer_id` must be a URI (a DID such as `did:web:bank.example`, or https).
        Creating the credential definition takes seconds (safe-prime generation).
        """
        if (directory / "public.json").exists():
            raise InvalidInput(f"{directory} already holds an issuer")
        if capacity < 1:
            raise InvalidInput("capacity must be at least 1")
        directory.mkdir(parents=True, exist_ok=True)
        directory.chmod(0o700)
        tails_dir = directory / "tails"
        tails_dir.mkdir(exist_ok=True)
        schema_id = f"{issuer_id}/schemas/{SCHEMA_NAME}/{SCHEMA_VERSION}"
        cred_def_id = f"{issuer_id}/credential-definitions/{SCHEMA_NAME}"
        rev_reg_def_id = f"{cred_def_id}/revocation/1"
        try:
            schema = anoncreds.Schema.create(SCHEMA_NAME, SCHEMA_VERSION, issuer_id,
                                             [BIRTHDATE_ATTRIBUTE])
            cred_def, cred_def_private, key_proof = anoncreds.CredentialDefinition.create(
                schema_id, schema, issuer_id, SCHEMA_NAME, "CL", support_revocation=True)
            # anoncreds 0.2.3 uses indexes 1..max_cred_num-1, so one slot is never usable.
            rev_reg_def, rev_reg_def_private = anoncreds.RevocationRegistryDefinition.create(
                cred_def_id, cred_def, issuer_id, "1", "CL_ACCUM", capacity + 1,
                tails_dir_path=str(tails_dir))
        except anoncreds.AnoncredsError as exc:
            raise InvalidInput(f"cannot create issuer {issuer_id!r}: {exc}") from exc
        tails_hash = rev_reg_def.tails_hash
        # The library writes the local tails path into the public definition; publish a
        # location that means something to holders instead of our file system layout.
        public_rev_reg_def = rev_reg_def.to_dict()
        public_rev_reg_def["value"]["tailsLocation"] = (
            f"{tails_base_url.rstrip('/')}/{tails_hash}" if tails_base_url else tails_hash)
        status_list = anoncreds.RevocationStatusList.create(
            cred_def, rev_reg_def_id, rev_reg_def, rev_reg_def_private, issuer_id,
            True, int(clock()))
        public = {
            "issuer_id": issuer_id,
            "schema_id": schema_id,
            "schema": schema.to_dict(),
            "cred_def_id": cred_def_id,
            "cred_def": cred_def.to_dict(),
            "revocation": {
                "rev_reg_def_id": rev_reg_def_id,
                "rev_reg_def": public_rev_reg_def,
                "status_list": status_list.to_dict(),
                "tails_hash": tails_hash,
                "tails_location": public_rev_reg_def["value"]["tailsLocation"],
            },
        }
        private = {
            "cred_def_private": cred_def_private.to_dict(),
            "key_correctness_proof": key_proof.to_dict(),
            "rev_reg_def_private": rev_reg_def_private.to_dict(),
        }
        ledger = {"capacity": capacity, "next_index": 1, "credentials": {}, "offers": {},
                  "tickets": {}}
        write_json(directory / "private.json", private, mode=PRIVATE_MODE)
        write_json(directory / "ledger.json", ledger, mode=PRIVATE_MODE)
        write_json(directory / "public.json", public, mode=PUBLIC_MODE)
        return cls(directory, check, clock=clock)

    # -- public material ---------------------------------------------------------------

    def publish(self) -> dict[str, Any]:
        """The trust-registry entry a verifier needs, with the current status list."""
        with self._state():
            return copy.deepcopy(self._public)

    @property
    def tails_path(self) -> Path:
        """The tails file holders need (serve it at the published tails location)."""
        return self._dir / "tails" / str(self._public["revocation"]["tails_hash"])

    # -- issuance ----------------------------------------------------------------------

    def offer(self) -> dict[str, Any]:
        """A fresh single-use credential offer, with the public material a wallet needs."""
        offer = anoncreds.CredentialOffer.create(self.schema_id, self.cred_def_id,
                                                 self._key_proof)
        body = offer.to_dict()
        with self._state():
            self._purge_offers()
            self._ledger["offers"][body["nonce"]] = {"offer": body,
                                                     "expires_at": self._clock() + OFFER_TTL_S}
            self._save_ledger()
        return {"offer": body, "issuer": self.publish()}

    def submit_request(self, request_message: Mapping[str, Any],
                       evidence: Mapping[str, Any]) -> IssuanceResult:
        """Take a wallet's credential request and run the birth-date check on `evidence`.

        Raises `OfferUnknown` for a request that answers no live offer of ours and
        `IssuanceRejected` if the check refuses. Otherwise the request is issued at
        once or waits as a ticket.
        """
        try:
            request = dict(request_message["request"])
            offer_nonce = str(request_message["offer_nonce"])
            anoncreds.CredentialRequest.load(request)
        except (KeyError, TypeError, ValueError, anoncreds.AnoncredsError) as exc:
            raise InvalidInput(f"not a credential request: {exc}") from exc
        if request.get("cred_def_id") != self.cred_def_id:
            raise OfferUnknown("the request is for another credential definition")
        with self._state():
            self._purge_offers()
            offer = self._ledger["offers"].pop(offer_nonce, None)
            if offer is None:
                raise OfferUnknown("no live offer with this nonce (unknown, used or expired)")
            ticket_id = uuid.uuid4().hex
            self._ledger["tickets"][ticket_id] = {
                "offer": offer["offer"], "request": request, "evidence": dict(evidence),
                "submitted_at": self._clock(), "status": "pending", "reason": "",
            }
            self._save_ledger()
            return self._answer_holder(self._decide(ticket_id, self._check.review(evidence)))

    def collect(self, ticket_id: str) -> IssuanceResult:
        """The holder asks again about a ticket: still pending, issued (handed out once,
        then dropped) or rejected (raises `IssuanceRejected`, once)."""
        with self._state():
            ticket = self._ticket(ticket_id)
            if ticket["status"] == "pending":
                result = self._decide(ticket_id, self._check.review(ticket["evidence"]))
            else:
                result = IssuanceResult(ticket_id, ticket["status"], ticket.get("credential_id"),
                                        ticket.get("message"), ticket.get("reason", ""))
            return self._answer_holder(result)

    def _answer_holder(self, result: IssuanceResult) -> IssuanceResult:
        """What the holder gets now; a decided ticket is forgotten once they have it."""
        if result.status != "pending":
            del self._ledger["tickets"][result.ticket_id]
            self._save_ledger()
        if result.status == "rejected":
            raise IssuanceRejected(result.reason or "rejected")
        return result

    def pending(self) -> list[PendingTicket]:
        """Tickets waiting for an operator, oldest first."""
        with self._state():
            tickets = [
                PendingTicket(tid, t["submitted_at"], dict(t["evidence"]), t["reason"])
                for tid, t in self._ledger["tickets"].items() if t["status"] == "pending"
            ]
        return sorted(tickets, key=lambda t: t.submitted_at)

    def approve(self, ticket_id: str, birth_date: date) -> IssuanceResult:
        """An operator vouches for `birth_date` (after seeing the evidence).

        The credential waits in the ledger until the holder collects it."""
        with self._state():
            self._ticket(ticket_id)
            return self._decide(ticket_id, Approved(birth_date))

    def reject(self, ticket_id: str, reason: str) -> None:
        with self._state():
            self._ticket(ticket_id)
            self._decide(ticket_id, Rejected(reason))

    def _ticket(self, ticket_id: str) -> dict[str, Any]:
        ticket = self._ledger["tickets"].get(ticket_id)
        if ticket is None:
            raise TicketUnknown("no such ticket")
        return ticket  # type: ignore[no-any-return]

    def _decide(self, ticket_id: str, outcome: CheckOutcome) -> IssuanceResult:
        ticket = self._ledger["tickets"][ticket_id]
        if ticket["status"] != "pending":
            raise InvalidInput(f"ticket is already {ticket['status']}")
        if isinstance(outcome, Pending):
            ticket["reason"] = outcome.reason
            self._save_ledger()
            return IssuanceResult(ticket_id, "pending")
        # A decision was made: the evidence has served its purpose.
        ticket["evidence"] = {}
        if isinstance(outcome, Rejected):
            ticket.update(status="rejected", reason=outcome.reason)
            del ticket["offer"], ticket["request"]
            self._save_ledger()
            return IssuanceResult(ticket_id, "rejected", reason=outcome.reason)
        credential_id, message = self._issue(ticket, outcome.birth_date)
        ticket.update(status="issued", credential_id=credential_id, message=message)
        del ticket["offer"], ticket["request"]
        self._save_ledger()
        return IssuanceResult(ticket_id, "issued", credential_id, message)

    def _issue(self, ticket: dict[str, Any], birth_date: date) -> tuple[str, dict[str, Any]]:
        index = int(self._ledger["next_index"])
        if index > int(self._ledger["capacity"]):
            raise RegistryFull("every index of the revocation registry is used")
        revocation = anoncreds.CredentialRevocationConfig(
            self._rev_reg_def, self._rev_reg_def_private, self._status_list, index)
        try:
            credential = anoncreds.Credential.create(
                self._cred_def, self._cred_def_private, ticket["offer"], ticket["request"],
                {BIRTHDATE_ATTRIBUTE: str(to_dateint(birth_date))}, None, revocation)
        except anoncreds.AnoncredsError as exc:
            raise InvalidInput(f"cannot issue: {exc}") from exc
        credential_id = uuid.uuid4().hex
        self._ledger["next_index"] = index + 1
        # Only the index is kept: enough to revoke, nothing about the holder.
        self._ledger["credentials"][credential_id] = {"index": index,
                                                      "issued_at": self._clock(),
                                                      "revoked_at": None}
        message = {"request_nonce": ticket["request"]["nonce"],
                   "credential": credential.to_dict()}
        return credential_id, message

    # -- revocation --------------------------------------------------------------------

    def revoke(self, credential_id: str) -> dict[str, Any]:
        """Revoke one credential and return the new status list (publish it)."""
        with self._state():
            record = self._ledger["credentials"].get(credential_id)
            if record is None:
                raise CredentialUnknown("no credential with this id")
            if record["revoked_at"] is not None:
                return self._status_list.to_dict()  # type: ignore[no-any-return]
            previous = int(self._status_list.to_dict()["timestamp"])
            # Strictly increasing timestamps: verifiers tell lists apart by timestamp.
            timestamp = max(int(self._clock()), previous + 1)
            self._status_list = self._status_list.update(
                self._cred_def, self._rev_reg_def, self._rev_reg_def_private,
                None, [int(record["index"])], timestamp)
            record["revoked_at"] = self._clock()
            self._public["revocation"]["status_list"] = self._status_list.to_dict()
            self._save_ledger()
            write_json(self._dir / "public.json", self._public, mode=PUBLIC_MODE)
            return self._status_list.to_dict()  # type: ignore[no-any-return]

    def is_revoked(self, credential_id: str) -> bool:
        with self._state():
            record = self._ledger["credentials"].get(credential_id)
            if record is None:
                raise CredentialUnknown("no credential with this id")
            return record["revoked_at"] is not None

    # -- persistence -------------------------------------------------------------------

    @contextlib.contextmanager
    def _state(self) -> Iterator[None]:
        """Hold the directory lock and work on the state as it is on disk.

        Another `Issuer` object (or process) on the same directory may have issued or
        revoked meanwhile; reusing a stale `next_index` would give two holders the same
        revocation index, so every operation re-reads the ledger under an exclusive lock.
        """
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            with (self._dir / ".lock").open("a") as lock_file:
                fcntl.flock(lock_file, fcntl.LOCK_EX)
                self._depth = 1
                try:
                    self._ledger = read_json(self._dir / "ledger.json")
                    self._public = read_json(self._dir / "public.json")
                    self._status_list = anoncreds.RevocationStatusList.load(
                        self._public["revocation"]["status_list"])
                    yield
                finally:
                    self._depth = 0
                    fcntl.flock(lock_file, fcntl.LOCK_UN)

    def _purge_offers(self) -> None:
        now = self._clock()
        offers = self._ledger["offers"]
        for nonce in [n for n, o in offers.items() if o["expires_at"] < now]:
            del offers[nonce]

    def _save_ledger(self) -> None:
        write_json(self._dir / "ledger.json", self._ledger, mode=PRIVATE_MODE)

