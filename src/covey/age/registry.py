"""The trust registry: public material of the issuers a verifier accepts.

An entry is exactly what `Issuer.publish()` returns (or what any AnonCreds issuer
publishes): schema, credential definition and, for revocable credentials, each
revocation registry's definition and current status list (an issuer opens a new
registry when one is full; holders of every registry keep proving).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anoncreds

from covey.age._files import PUBLIC_MODE, write_json
from covey.age.bands import BIRTHDATE_ATTRIBUTE
from covey.age.tails import check_tails_hash
from covey.errors import InvalidInput


def _load(kind: Any, value: Any, what: str) -> Any:
    try:
        return kind.load(value)
    except anoncreds.AnoncredsError as exc:
        raise InvalidInput(f"trust registry: {what} is not valid: {exc}") from exc


def _as_dict(value: Any, what: str) -> dict[str, Any]:
    if isinstance(value, str | bytes):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise InvalidInput(f"trust registry: {what} is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidInput(f"trust registry: {what} must be an object")
    return value


@dataclass(frozen=True)
class Revocation:
    """A revocation registry and the status list the verifier currently accepts."""

    rev_reg_def_id: str
    rev_reg_def: dict[str, Any]
    status_list: dict[str, Any]
    tails_hash: str
    tails_location: str
    # Parsed anoncreds objects, built once (see TrustedIssuer).
    _objects: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        # The issuer names the tails file: the name must be the definition's own hash.
        value = self.rev_reg_def.get("value")
        check_tails_hash(self.tails_hash,
                         value.get("tailsHash") if isinstance(value, dict) else "")
        if self.status_list.get("revRegDefId") != self.rev_reg_def_id:
            raise InvalidInput(f"trust registry: status list is not for {self.rev_reg_def_id}")
        self._objects["rev_reg_def"] = _load(anoncreds.RevocationRegistryDefinition,
                                             self.rev_reg_def, "revocation registry")
        self._objects["status_list"] = _load(anoncreds.RevocationStatusList,
                                             self.status_list, "status list")

    @property
    def timestamp(self) -> int:
        return int(self.status_list["timestamp"])

    @property
    def rev_reg_def_object(self) -> Any:
        return self._objects["rev_reg_def"]

    @property
    def status_list_object(self) -> Any:
        return self._objects["status_list"]

    @classmethod
    def from_entry(cls, rev: Mapping[str, Any]) -> Revocation:
        return cls(
            rev_reg_def_id=str(rev["rev_reg_def_id"]),
            rev_reg_def=_as_dict(rev["rev_reg_def"], "rev_reg_def"),
            status_list=_as_dict(rev["status_list"], "status_list"),
            tails_hash=str(rev["tails_hash"]),
            tails_location=str(rev.get("tails_location", rev["tails_hash"])),
        )

    def to_entry(self) -> dict[str, Any]:
        return {
            "rev_reg_def_id": self.rev_reg_def_id,
            "rev_reg_def": self.rev_reg_def,
            "status_list": self.status_list,
            "tails_hash": self.tails_hash,
            "tails_location": self.tails_location,
        }


@dataclass(frozen=True)
class TrustedIssuer:
    """One trusted credential definition and its public material (validated).

    A revocable credential definition has one or more revocation registries: when one
    is full the issuer opens the next, and holders of every registry keep proving.
    `revocations` lists them oldest first; the last is the one issuing now."""

    issuer_id: str
    schema_id: str
    schema: dict[str, Any]
    cred_def_id: str
    cred_def: dict[str, Any]
    revocations: tuple[Revocation, ...] = ()
    # Parsed anoncreds objects, built once: loading a credential definition per
    # verification would cost more than a millisecond each time.
    _objects: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        if BIRTHDATE_ATTRIBUTE not in self.schema.get("attrNames", []):
            raise InvalidInput(f"trust registry: schema {self.schema_id} has no "
                               f"{BIRTHDATE_ATTRIBUTE} attribute")
        if self.cred_def.get("schemaId") != self.schema_id:
            raise InvalidInput(f"trust registry: {self.cred_def_id} is not over {self.schema_id}")
        self._objects["schema"] = _load(anoncreds.Schema, self.schema, "schema")
        self._objects["cred_def"] = _load(anoncreds.CredentialDefinition, self.cred_def,
                                          "credential definition")
        ids = [r.rev_reg_def_id for r in self.revocations]
        if len(set(ids)) != len(ids):
            raise InvalidInput(f"trust registry: {self.cred_def_id} lists a revocation "
                               f"registry twice")
        for rev in self.revocations:
            if rev.rev_reg_def.get("credDefId") != self.cred_def_id:
                raise InvalidInput(f"trust registry: {rev.rev_reg_def_id} is not for "
                                   f"{self.cred_def_id}")

    @classmethod
    def from_entry(cls, entry: Mapping[str, Any]) -> TrustedIssuer:
        """Build from a published entry; raises `InvalidInput` if anything is off.

        `revocation` is the registry issuing now (null: not revocable);
        `revocation_registries`, when present, is every registry, oldest first, ending
        with that one. An entry with `revocation` alone has just the one registry."""
        try:
            current = entry.get("revocation")
            listed = entry.get("revocation_registries")
            revocations: tuple[Revocation, ...]
            if listed is None:
                revocations = () if current is None else (Revocation.from_entry(current),)
            else:
                revocations = tuple(Revocation.from_entry(r) for r in listed)
                if current is None or not revocations or (
                        str(current["rev_reg_def_id"]) != revocations[-1].rev_reg_def_id):
                    raise InvalidInput("trust registry: `revocation` must be the last of "
                                       "`revocation_registries`")
            return cls(
                issuer_id=str(entry["issuer_id"]),
                schema_id=str(entry["schema_id"]),
                schema=_as_dict(entry["schema"], "schema"),
                cred_def_id=str(entry["cred_def_id"]),
                cred_def=_as_dict(entry["cred_def"], "cred_def"),
                revocations=revocations,
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise InvalidInput(f"trust registry entry is incomplete: {exc}") from exc

    def to_entry(self) -> dict[str, Any]:
        entry: dict[str, Any] = {
            "issuer_id": self.issuer_id,
            "schema_id": self.schema_id,
            "schema": self.schema,
            "cred_def_id": self.cred_def_id,
            "cred_def": self.cred_def,
            "revocation": None if self.revocation is None else self.revocation.to_entry(),
        }
        if len(self.revocations) > 1:
            entry["revocation_registries"] = [r.to_entry() for r in self.revocations]
        return entry

    @property
    def revocation(self) -> Revocation | None:
        """The revocation registry issuing now (None: credentials are not revocable)."""
        return self.revocations[-1] if self.revocations else None

    def registry(self, rev_reg_def_id: str | None) -> Revocation | None:
        """One of this issuer's revocation registries, by id."""
        return next((r for r in self.revocations if r.rev_reg_def_id == rev_reg_def_id),
                    None)

    def with_status_list(self, status_list: Mapping[str, Any]) -> TrustedIssuer:
        """A copy that accepts a newer status list of one of its registries."""
        new = dict(status_list)
        current = self.registry(new.get("revRegDefId"))
        if current is None:
            raise InvalidInput("status list is for another revocation registry")
        if int(new.get("timestamp", 0)) < current.timestamp:
            raise InvalidInput("status list is older than the one already trusted")
        updated = Revocation(current.rev_reg_def_id, current.rev_reg_def, new,
                             current.tails_hash, current.tails_location)
        return TrustedIssuer(self.issuer_id, self.schema_id, self.schema, self.cred_def_id,
                             self.cred_def, tuple(updated if r is current else r
                                                  for r in self.revocations))

    # Parsed objects for the verifier and the wallet.
    @property
    def schema_object(self) -> Any:
        return self._objects["schema"]

    @property
    def cred_def_object(self) -> Any:
        return self._objects["cred_def"]


class TrustRegistry:
    """Trusted issuers by credential definition id; loaded from a JSON file, reloadable.

    The file is `{"issuers": [entry, ...]}`. Reads are lock-free: `reload()` and the
    update methods build a new mapping and swap it in whole.
    """

    def __init__(self, issuers: Iterable[TrustedIssuer] = (), *, path: Path | None = None) -> None:
        self._path = path
        self._lock = threading.Lock()
        self._by_cred_def: dict[str, TrustedIssuer] = {i.cred_def_id: i for i in issuers}

    @classmethod
    def load(cls, path: Path) -> TrustRegistry:
        registry = cls(path=path)
        registry.reload()
        return registry

    @classmethod
    def from_entries(cls, entries: Iterable[Mapping[str, Any]]) -> TrustRegistry:
        return cls(TrustedIssuer.from_entry(e) for e in entries)

    def reload(self) -> None:
        """Re-read the file; a bad file raises and leaves the current registry in place."""
        if self._path is None:
            raise InvalidInput("this trust registry was not loaded from a file")
        try:
            document = json.loads(self._path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidInput(f"cannot read trust registry {self._path}: {exc}") from exc
        if not isinstance(document, dict) or not isinstance(document.get("issuers"), list):
            raise InvalidInput('trust registry file must be {"issuers": [...]}')
        fresh = {i.cred_def_id: i for i in map(TrustedIssuer.from_entry, document["issuers"])}
        with self._lock:
            self._by_cred_def = fresh

    def to_json(self) -> dict[str, Any]:
        return {"issuers": [i.to_entry() for i in self._by_cred_def.values()]}

    def save(self, path: Path | None = None) -> None:
        target = path or self._path
        if target is None:
            raise InvalidInput("no path to save the trust registry to")
        write_json(target, self.to_json(), mode=PUBLIC_MODE)

    def trust(self, entry: Mapping[str, Any] | TrustedIssuer) -> TrustedIssuer:
        issuer = entry if isinstance(entry, TrustedIssuer) else TrustedIssuer.from_entry(entry)
        with self._lock:
            self._by_cred_def = {**self._by_cred_def, issuer.cred_def_id: issuer}
        return issuer

    def distrust(self, cred_def_id: str) -> None:
        with self._lock:
            self._by_cred_def = {k: v for k, v in self._by_cred_def.items() if k != cred_def_id}

    def update_status_list(self, status_list: Mapping[str, Any]) -> None:
        """Accept an issuer's newer status list (after a revocation)."""
        rev_reg_def_id = status_list.get("revRegDefId")
        with self._lock:
            for cred_def_id, issuer in self._by_cred_def.items():
                if issuer.registry(rev_reg_def_id) is not None:
                    updated = issuer.with_status_list(status_list)
                    self._by_cred_def = {**self._by_cred_def, cred_def_id: updated}
                    return
        raise InvalidInput(f"no trusted revocation registry {rev_reg_def_id!r}")

    def get(self, cred_def_id: str) -> TrustedIssuer | None:
        return self._by_cred_def.get(cred_def_id)

    def issuers(self) -> list[TrustedIssuer]:
        return list(self._by_cred_def.values())

    def cred_def_ids(self) -> list[str]:
        return sorted(self._by_cred_def)

    def status_lists(self) -> dict[str, dict[str, Any]]:
        """Current status lists by revocation registry id (every registry of every
        issuer): what a wallet proves against."""
        return {r.rev_reg_def_id: r.status_list
                for i in self._by_cred_def.values() for r in i.revocations}
