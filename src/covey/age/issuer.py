"""The age-credential issuer: schema, revocable credential definition, issuance, revocation.

State lives in one directory: `public.json` (what `publish()` returns), `private.json`
and `ledger.json` (0600: signing keys, issued indexes, pending tickets) and `tails/`.
The issuer signs a birth date only after its `BirthDateCheck` approves it, and keeps
no birth date once the credential has been collected. When its revocation registry is
full it opens the next one (same credential definition); every registry stays
published, and revocable, for the holders already in it.
"""

from __future__ import annotations

import contextlib
import copy
import fcntl
import logging
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
    TicketUnknown,
)
from covey.errors import InvalidInput

SCHEMA_NAME = "covey-age"
SCHEMA_VERSION = "1.0"
OFFER_TTL_S = 24 * 3600

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IssuanceResult:
    """Where a request stands. `message` (when issued) goes to the holder's wallet;
    `credential_id` stays with the issuer: it is the handle for `revoke`."""

    ticket_id: str
    status: str  # "pending" | "issued" | "rejected"
    credential_id: str | None = None
    message: dict[str, Any] | None = None
    reason: str = ""
    rev_reg_def_id: str | None = None  # the revocation registry the credential is in


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
        self._private: dict[str, Any] = private
        self.issuer_id: str = public["issuer_id"]
        self.schema_id: str = public["schema_id"]
        self.cred_def_id: str = public["cred_def_id"]
        self._cred_def = anoncreds.CredentialDefinition.load(public["cred_def"])
        self._cred_def_private = anoncreds.CredentialDefinitionPrivate.load(
            private["cred_def_private"])
        self._key_proof = anoncreds.KeyCorrectnessProof.load(private["key_correctness_proof"])

    @classmethod
    def create(cls, directory: Path, issuer_id: str, check: BirthDateCheck, *,
               capacity: int = 1000, tails_base_url: str | None = None,
               clock: Callable[[], float] = time.time) -> Issuer:
        """Make keys, a revocation registry for `capacity` credentials, and save them.
        (When that registry is full, issuing opens another of the same size.)

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
        try:
            schema = anoncreds.Schema.create(SCHEMA_NAME, SCHEMA_VERSION, issuer_id,
                                             [BIRTHDATE_ATTRIBUTE])
            cred_def, cred_def_private, key_proof = anoncreds.CredentialDefinition.create(
                schema_id, schema, issuer_id, SCHEMA_NAME, "CL", support_revocation=True)
        except anoncreds.AnoncredsError as exc:
            raise InvalidInput(f"cannot create issuer {issuer_id!r}: {exc}") from exc
        registry, rev_reg_def_private = _new_registry(
            cred_def_id, cred_def, issuer_id, 1, capacity, tails_dir, tails_base_url,
            int(clock()))
        public = {
            "issuer_id": issuer_id,
            "schema_id": schema_id,
            "schema": schema.to_dict(),
            "cred_def_id": cred_def_id,
            "cred_def": cred_def.to_dict(),
            "revocation": registry,
        }
        private = {
            "cred_def_private": cred_def_private.to_dict(),
            "key_correctness_proof": key_proof.to_dict(),
            "rev_reg_def_privates": {registry["rev_reg_def_id"]: rev_reg_def_private},
        }
        ledger = {"capacity": capacity, "next_index": 1,
                  "rev_reg_def_id": registry["rev_reg_def_id"], "tails_base_url": tails_base_url,
                  "credentials": {}, "offers": {}, "tickets": {}}
        write_json(directory / "private.json", private, mode=PRIVATE_MODE)
        write_json(directory / "ledger.json", ledger, mode=PRIVATE_MODE)
        write_json(directory / "public.json", public, mode=PUBLIC_MODE)
        return cls(directory, check, clock=clock)

    # -- public material ---------------------------------------------------------------

    def publish(self, *, refresh: bool = False) -> dict[str, Any]:
        """The trust-registry entry a verifier needs, with the current status list.

        `refresh` re-dates every status list to now (same revocations): the issuer vouches
        that it is still current, and verifiers refuse lists older than their maximum age.
        """
        with self._state():
            if refresh:
                self._refresh_status_lists()
            return copy.deepcopy(self._public)

    def _refresh_status_lists(self) -> None:
        now = int(self._clock())
        changed = False
        for registry in self._registries():
            if int(registry["status_list"]["timestamp"]) >= now:
                continue
            # Same revocations, new date. (anoncreds 0.2.3's `update_timestamp_only`
            # passes the wrong handle to the library, so a full update with no changes.)
            registry["status_list"] = anoncreds.RevocationStatusList.load(
                registry["status_list"]).update(
                self._cred_def, anoncreds.RevocationRegistryDefinition.load(
                    registry["rev_reg_def"]),
                self._rev_reg_def_private(registry["rev_reg_def_id"]), None, None,
                now).to_dict()
            if self._public["revocation"]["rev_reg_def_id"] == registry["rev_reg_def_id"]:
                self._public["revocation"]["status_list"] = registry["status_list"]
            changed = True
        if changed:
            write_json(self._dir / "public.json", self._public, mode=PUBLIC_MODE)

    @property
    def rev_reg_def_id(self) -> str:
        """The revocation registry new credentials go to."""
        return str(self._registries()[-1]["rev_reg_def_id"])

    @property
    def tails_path(self) -> Path:
        """The tails file of the registry issuing now (serve it at its published
        location; `tails_file` finds any registry's)."""
        return self._dir / "tails" / str(self._registries()[-1]["tails_hash"])

    def tails_file(self, tails_hash: str) -> Path | None:
        """The tails file of one of this issuer's registries, by its hash."""
        with self._state():
            hashes = {str(r["tails_hash"]) for r in self._registries()}
        return self._dir / "tails" / tails_hash if tails_hash in hashes else None

    def _registries(self) -> list[dict[str, Any]]:
        """Every revocation registry as published, oldest first; the last is issuing."""
        listed = self._public.get("revocation_registries")
        return list(listed) if listed else [self._public["revocation"]]

    def _rev_reg_def_private(self, rev_reg_def_id: str) -> Any:
        privates = self._private.get("rev_reg_def_privates")
        if privates is None:  # a directory made before registries rotated: just one
            privates = {self._registries()[0]["rev_reg_def_id"]:
                        self._private["rev_reg_def_private"]}
        return anoncreds.RevocationRegistryDefinitionPrivate.load(privates[rev_reg_def_id])

    def _open_registry(self) -> None:
        """The issuing registry is full: create the next one, for the same credential
        definition, and make it the one issuing. Older registries stay published."""
        registries = self._registries()
        number = len(registries) + 1
        capacity = int(self._ledger["capacity"])
        registry, private = _new_registry(
            self.cred_def_id, self._cred_def, self.issuer_id, number, capacity,
            self._dir / "tails", self._tails_base_url(),
            max(int(self._clock()), *(int(r["status_list"]["timestamp"]) for r in registries)))
        rev_reg_def_id = registry["rev_reg_def_id"]
        privates = dict(self._private.get("rev_reg_def_privates") or {
            registries[0]["rev_reg_def_id"]: self._private["rev_reg_def_private"]})
        privates[rev_reg_def_id] = private
        self._private = {k: v for k, v in self._private.items() if k != "rev_reg_def_private"}
        self._private["rev_reg_def_privates"] = privates
        # Private part first: a crash before public.json leaves an unused key, never a
        # published registry nobody can revoke in.
        write_json(self._dir / "private.json", self._private, mode=PRIVATE_MODE)
        self._public["revocation_registries"] = [*registries, registry]
        self._public["revocation"] = registry
        write_json(self._dir / "public.json", self._public, mode=PUBLIC_MODE)
        self._ledger.update(rev_reg_def_id=rev_reg_def_id, next_index=1)
        log.warning("revocation registry %s is full; opened %s for the next %d credentials "
                    "(publish the issuer again so verifiers accept them)",
                    registries[-1]["rev_reg_def_id"], rev_reg_def_id, capacity)

    def _tails_base_url(self) -> str | None:
        if "tails_base_url" in self._ledger:
            return self._ledger["tails_base_url"]  # type: ignore[no-any-return]
        # A directory made before registries rotated: derive it from the published one.
        first = self._registries()[0]
        location, tails_hash = str(first["tails_location"]), str(first["tails_hash"])
        if location.startswith(("http://", "https://")) and location.endswith(f"/{tails_hash}"):
            return location[: -len(tails_hash) - 1]
        return None

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
                                        ticket.get("message"), ticket.get("reason", ""),
                                        ticket.get("rev_reg_def_id"))
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
        credential_id, message, rev_reg_def_id = self._issue(ticket, outcome.birth_date)
        ticket.update(status="issued", credential_id=credential_id, message=message,
                      rev_reg_def_id=rev_reg_def_id)
        del ticket["offer"], ticket["request"]
        self._save_ledger()
        return IssuanceResult(ticket_id, "issued", credential_id, message,
                              rev_reg_def_id=rev_reg_def_id)

    def _issue(self, ticket: dict[str, Any], birth_date: date,
               ) -> tuple[str, dict[str, Any], str]:
        active = self.rev_reg_def_id
        if self._ledger.get("rev_reg_def_id", self._registries()[0]["rev_reg_def_id"]) != active:
            # A registry was opened but the ledger not saved (a crash): it is unused.
            self._ledger.update(rev_reg_def_id=active, next_index=1)
        if int(self._ledger["next_index"]) > int(self._ledger["capacity"]):
            self._open_registry()
        index = int(self._ledger["next_index"])
        registry = self._registries()[-1]
        rev_reg_def_id = str(registry["rev_reg_def_id"])
        revocation = anoncreds.CredentialRevocationConfig(
            anoncreds.RevocationRegistryDefinition.load(registry["rev_reg_def"]),
            self._rev_reg_def_private(rev_reg_def_id),
            anoncreds.RevocationStatusList.load(registry["status_list"]), index)
        try:
            credential = anoncreds.Credential.create(
                self._cred_def, self._cred_def_private, ticket["offer"], ticket["request"],
                {BIRTHDATE_ATTRIBUTE: str(to_dateint(birth_date))}, None, revocation)
        except anoncreds.AnoncredsError as exc:
            raise InvalidInput(f"cannot issue: {exc}") from exc
        credential_id = uuid.uuid4().hex
        self._ledger["next_index"] = index + 1
        # Only the registry and index are kept: enough to revoke, nothing about the holder.
        self._ledger["credentials"][credential_id] = {"rev_reg_def_id": rev_reg_def_id,
                                                      "index": index,
                                                      "issued_at": self._clock(),
                                                      "revoked_at": None}
        # The public material goes along: the registry may be newer than the offer.
        # The id goes along too, so the holder's wallet shows the one `approve` printed.
        message = {"request_nonce": ticket["request"]["nonce"], "credential_id": credential_id,
                   "credential": credential.to_dict(), "issuer": copy.deepcopy(self._public)}
        return credential_id, message, rev_reg_def_id

    # -- revocation --------------------------------------------------------------------

    def revoke(self, credential_id: str) -> dict[str, Any]:
        """Revoke one credential and return the new status list of its registry (publish
        it)."""
        with self._state():
            record = self._ledger["credentials"].get(credential_id)
            if record is None:
                raise CredentialUnknown("no credential with this id")
            rev_reg_def_id = record.get("rev_reg_def_id",
                                        self._registries()[0]["rev_reg_def_id"])
            registry = next(r for r in self._registries()
                            if r["rev_reg_def_id"] == rev_reg_def_id)
            if record["revoked_at"] is not None:
                return copy.deepcopy(registry["status_list"])
            status_list = anoncreds.RevocationStatusList.load(registry["status_list"])
            previous = int(registry["status_list"]["timestamp"])
            # Strictly increasing timestamps: verifiers tell lists apart by timestamp.
            timestamp = max(int(self._clock()), previous + 1)
            updated = status_list.update(
                self._cred_def, anoncreds.RevocationRegistryDefinition.load(
                    registry["rev_reg_def"]),
                self._rev_reg_def_private(rev_reg_def_id), None, [int(record["index"])],
                timestamp).to_dict()
            record["revoked_at"] = self._clock()
            registry["status_list"] = updated  # in `revocation_registries` (and `revocation`)
            if self._public["revocation"]["rev_reg_def_id"] == rev_reg_def_id:
                self._public["revocation"]["status_list"] = updated
            self._save_ledger()
            write_json(self._dir / "public.json", self._public, mode=PUBLIC_MODE)
            return copy.deepcopy(updated)

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
                    self._private = read_json(self._dir / "private.json")
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



def _new_registry(cred_def_id: str, cred_def: Any, issuer_id: str, number: int,
                  capacity: int, tails_dir: Path, tails_base_url: str | None,
                  timestamp: int) -> tuple[dict[str, Any], dict[str, Any]]:
    """A `CL_ACCUM` revocation registry for `capacity` credentials (issuance by default:
    issuing does not change the accumulator) with its first status list. Returns the
    published part and the private part."""
    rev_reg_def_id = f"{cred_def_id}/revocation/{number}"
    try:
        # anoncreds 0.2.3 uses indexes 1..max_cred_num-1, so one slot is never usable.
        rev_reg_def, rev_reg_def_private = anoncreds.RevocationRegistryDefinition.create(
            cred_def_id, cred_def, issuer_id, str(number), "CL_ACCUM", capacity + 1,
            tails_dir_path=str(tails_dir))
        status_list = anoncreds.RevocationStatusList.create(
            cred_def, rev_reg_def_id, rev_reg_def, rev_reg_def_private, issuer_id, True,
            timestamp)
    except anoncreds.AnoncredsError as exc:
        raise InvalidInput(f"cannot create revocation registry {rev_reg_def_id}: {exc}") from exc
    tails_hash = rev_reg_def.tails_hash
    # The library writes the local tails path into the public definition; publish a
    # location that means something to holders instead of our file system layout.
    public_rev_reg_def = rev_reg_def.to_dict()
    public_rev_reg_def["value"]["tailsLocation"] = (
        f"{tails_base_url.rstrip('/')}/{tails_hash}" if tails_base_url else tails_hash)
    published = {
        "rev_reg_def_id": rev_reg_def_id,
        "rev_reg_def": public_rev_reg_def,
        "status_list": status_list.to_dict(),
        "tails_hash": tails_hash,
        "tails_location": public_rev_reg_def["value"]["tailsLocation"],
    }
    return published, rev_reg_def_private.to_dict()
