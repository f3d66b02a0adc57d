"""Evidence bundles for law enforcement: verified messages, decrypted attachments and the
verification transcript in a deterministic zip, attested by the platform's Ed25519 key.

The signature covers the manifest's exact bytes (their SHA-256), which list every file's
SHA-256 and size; it also covers a digest of every manifest field and of every field of
every JSON file, only so that an offline check names exactly which file or field changed,
not just "invalid". The reader is strict: duplicate JSON keys, entries the manifest does
not list (directories included) and oversized or too many entries are all differences.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from covey.errors import InvalidInput
from covey.moderation._time import iso_utc
from covey.moderation.attestation import attestation_key_id
from covey.moderation.verify import ItemVerification, ReportVerification
from covey.protocol import b64decode, b64encode, canonical_json, labelled
from covey.protocol.content import MessageContent
from covey.protocol.franking import FrankingContext, opens
from covey.protocol.secrets import FrankingCommitment

BUNDLE_FORMAT = "covey-evidence-bundle/v1"
STATEMENT_FORMAT = "covey-evidence-statement/v2"
MANIFEST = "manifest.json"
SIGNATURE = "signature.json"
MESSAGES = "messages.json"
TRANSCRIPT = "transcript.json"
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)
_SIGNED_LABEL = "evidence-bundle"
# Reading limits: a bundle holds a report's messages (attachments up to 100 MiB each).
MAX_ENTRIES = 1024
MAX_ENTRY_BYTES = 128 * 1024 * 1024
MAX_TOTAL_BYTES = 1024 * 1024 * 1024

DifferenceKind = Literal["malformed", "signature", "manifest_field", "manifest_bytes",
                         "file_changed", "file_field", "file_added", "file_removed",
                         "content"]


@dataclass(frozen=True)
class EvidenceBundle:
    """A built bundle: file name → bytes, including the manifest and its signature."""

    files: Mapping[str, bytes] = field(repr=False)
    manifest: Mapping[str, Any]

    def to_zip(self) -> bytes:
        """Deterministic zip: sorted names, fixed time and mode, no compression."""
        out = io.BytesIO()
        with zipfile.ZipFile(out, "w", zipfile.ZIP_STORED) as archive:
            for name in sorted(self.files):
                info = zipfile.ZipInfo(name, date_time=_ZIP_TIME)
                info.create_system = 3
                info.external_attr = 0o100644 << 16
                archive.writestr(info, self.files[name])
        return out.getvalue()

    def write(self, path: Path) -> Path:
        path.write_bytes(self.to_zip())
        return path


@dataclass(frozen=True)
class BundleDifference:
    """One thing that is not as the platform signed it."""

    kind: DifferenceKind
    where: str
    detail: str

    def __str__(self) -> str:
        return f"{self.where}: {self.detail}"


@dataclass(frozen=True)
class BundleVerification:
    """The outcome of an offline check. `ok` only when nothing differs."""

    differences: tuple[BundleDifference, ...]
    key_id: str
    manifest: Mapping[str, Any] | None = None
    messages: tuple[Mapping[str, Any], ...] = ()

    @property
    def ok(self) -> bool:
        return not self.differences


def build_bundle(verification: ReportVerification, attestation_key: Ed25519PrivateKey, *,
                 created_at_ms: int, platform: str = "Covey",
                 escalated_by: str | None = None,
                 case_reference: str | None = None) -> EvidenceBundle:
    """Bundle the verified messages of a report and sign it. The same inputs give the
    same bytes. Refuses a report whose reported message did not verify."""
    reported = verification.reported
    if not reported.verified:
        raise InvalidInput("the reported message did not verify and cannot be escalated",
                           code="reported_unverified",
                           details={"status": reported.status.value})
    key_id = attestation_key_id(attestation_key.public_key())
    files: dict[str, bytes] = {}
    messages = []
    for item in verification.verified_items:
        record, attachments = _message_record(item)
        messages.append(record)
        files.update(attachments)
    files[MESSAGES] = _json_bytes({"conversation_id": reported.item.context.conversation_id,
                                   "messages": messages})
    files[TRANSCRIPT] = _json_bytes(verification.transcript())
    report = verification.report
    manifest: dict[str, Any] = {
        "format": BUNDLE_FORMAT,
        "bundle_id": hashlib.sha256(labelled("bundle-id", {
            "fingerprint": verification.fingerprint, "created_at_ms": created_at_ms,
            "key_id": key_id})).hexdigest()[:32],
        "created_at_ms": created_at_ms,
        "created_at": iso_utc(created_at_ms),
        "platform": platform,
        "attestation_key_id": key_id,
        "escalated_by": escalated_by,
        "case_reference": case_reference,
        "report": {
            "fingerprint": verification.fingerprint,
            "category": report.category.value,
            "reporter": report.reporter,
            "reported_message_id": report.reported_message_id,
            "reported_sender": reported.item.context.sender_user,
            "conversation_id": reported.item.context.conversation_id,
            "messages_submitted": len(verification.items),
            "messages_verified": len(messages),
        },
        "files": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                  for name, data in sorted(files.items())},
    }
    files[MANIFEST] = _json_bytes(manifest)
    statement = {
        "format": STATEMENT_FORMAT,
        "key_id": key_id,
        # The bytes themselves: the fields below only serve to name what changed.
        "manifest_sha256": hashlib.sha256(files[MANIFEST]).hexdigest(),
        "manifest": _field_digests(manifest),
        "json_files": {name: _field_digests(json.loads(data))
                       for name, data in sorted(files.items())
                       if name.endswith(".json") and name != MANIFEST},
    }
    signature = attestation_key.sign(labelled(_SIGNED_LABEL, statement))
    files[SIGNATURE] = _json_bytes({"algorithm": "Ed25519", "key_id": key_id,
                                    "statement": statement,
                                    "signature": b64encode(signature)})
    return EvidenceBundle(files, manifest)


def verify_bundle(bundle: Path | bytes, public_key: Ed25519PublicKey) -> BundleVerification:
    """Check a bundle offline against the platform's public key; every difference from
    what was signed is named (file, field, or the signature itself)."""
    key_id = attestation_key_id(public_key)
    try:
        files, duplicates, directories = _read_zip(
            bundle.read_bytes() if isinstance(bundle, Path) else bundle)
    except _TooLarge as exc:
        return _failed(key_id, "malformed", "bundle", str(exc))
    except (OSError, zipfile.BadZipFile, ValueError, NotImplementedError, EOFError) as exc:
        return _failed(key_id, "malformed", "bundle", f"not a readable zip: {exc}")
    differences = [BundleDifference("file_added", name, "appears more than once in the zip")
                   for name in duplicates]
    differences.extend(BundleDifference("file_added", name, "a directory entry: not in the "
                                        "signed manifest") for name in directories)
    statement, problem = _signed_statement(files, public_key, key_id)
    if statement is None:
        assert problem is not None
        return BundleVerification((*differences, problem), key_id)
    manifest = _load_json(files.get(MANIFEST))
    if MANIFEST not in files:
        differences.append(BundleDifference("file_removed", MANIFEST, "missing"))
    elif not isinstance(manifest, dict):
        differences.append(BundleDifference("malformed", MANIFEST, "not a JSON object (or "
                                            "a key appears twice)"))
    else:
        named = _compare_fields("manifest_field", "manifest", statement["manifest"],
                                _field_digests(manifest))
        differences.extend(named)
        actual = hashlib.sha256(files[MANIFEST]).hexdigest()
        if not named and not hmac.compare_digest(actual, statement["manifest_sha256"]):
            differences.append(BundleDifference(
                "manifest_bytes", MANIFEST, "its bytes are not the ones signed (same "
                "fields, other formatting, key order or escapes)"))
    differences.extend(_compare_files(files, statement))
    messages: tuple[Mapping[str, Any], ...] = ()
    if not differences:
        listed = _load_json(files.get(MESSAGES))
        if isinstance(listed, dict) and isinstance(listed.get("messages"), list):
            messages = tuple(m for m in listed["messages"] if isinstance(m, dict))
        differences.extend(_reopen_commitments(messages))
    return BundleVerification(tuple(differences), key_id,
                              manifest if isinstance(manifest, dict) else None, messages)


# --- building ---------------------------------------------------------------------------


def _message_record(item: ItemVerification) -> tuple[dict[str, Any], dict[str, bytes]]:
    content, ctx = item.item.content, item.item.context
    files: dict[str, bytes] = {}
    attachments = []
    for check in item.verified_attachments:
        assert check.plaintext is not None and check.plaintext_sha256 is not None
        path = f"attachments/{check.plaintext_sha256}.bin"
        files[path] = check.plaintext
        ref = check.ref
        attachments.append({"blob_id": ref.blob_id, "name": ref.name, "mime": ref.mime,
                            "size": ref.size, "ciphertext_sha256": ref.sha256,
                            "plaintext_sha256": check.plaintext_sha256, "file": path})
    record = {
        "message_id": ctx.message_id,
        "reported": item.is_reported,
        "sender_user": ctx.sender_user,
        "sender_device": ctx.sender_device,
        "recipient_user": ctx.recipient_user,
        "participants": sorted(set(ctx.participants)),
        "server_ts_ms": ctx.server_ts_ms,
        "server_time": iso_utc(ctx.server_ts_ms),
        "kind": content.kind,
        "text": content.text,
        "attachments": attachments,
        "franking": {"content": content.model_dump(mode="json"),
                     "context": ctx.franking().to_json(),
                     "commitment": item.item.commitment, "tag": item.item.tag},
    }
    return record, files



def _json_bytes(value: Any) -> bytes:
    """Readable, deterministic JSON (sorted keys, two-space indent, UTF-8)."""
    return (json.dumps(value, sort_keys=True, indent=2, ensure_ascii=False) + "\n").encode()


def _pointer_part(key: str) -> str:
    return key.replace("~", "~0").replace("/", "~1")


def _leaves(value: Any, pointer: str = "") -> Iterator[tuple[str, Any]]:
    """(RFC 6901 JSON pointer, value) for every leaf; empty containers are leaves."""
    if isinstance(value, dict) and value:
        for key in sorted(value):
            yield from _leaves(value[key], f"{pointer}/{_pointer_part(str(key))}")
    elif isinstance(value, list) and value:
        for index, element in enumerate(value):
            yield from _leaves(element, f"{pointer}/{index}")
    else:
        yield pointer, value


def _field_digests(value: Any) -> dict[str, str]:
    return {pointer: _digest(leaf) for pointer, leaf in _leaves(value)}


def _digest(leaf: Any) -> str:
    return hashlib.sha256(canonical_json(leaf)).hexdigest()


# --- checking ---------------------------------------------------------------------------


def _failed(key_id: str, kind: DifferenceKind, where: str, detail: str) -> BundleVerification:
    return BundleVerification((BundleDifference(kind, where, detail),), key_id)


class _TooLarge(Exception):
    """The zip exceeds a reading limit (entries, an entry's size, the total)."""


def _read_zip(data: bytes) -> tuple[dict[str, bytes], list[str], list[str]]:
    """(files, names seen twice, directory entries), within the reading limits. Sizes
    are checked before reading; a lying header fails the zip's own CRC and size check."""
    if len(data) > MAX_TOTAL_BYTES:
        raise _TooLarge(f"the bundle is larger than {MAX_TOTAL_BYTES} bytes")
    files: dict[str, bytes] = {}
    duplicates: list[str] = []
    directories: list[str] = []
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        infos = archive.infolist()
        if len(infos) > MAX_ENTRIES:
            raise _TooLarge(f"the bundle has more than {MAX_ENTRIES} entries")
        total = 0
        for info in infos:
            if info.file_size > MAX_ENTRY_BYTES:
                raise _TooLarge(f"{info.filename} is larger than {MAX_ENTRY_BYTES} bytes")
            total += info.file_size
            if total > MAX_TOTAL_BYTES:
                raise _TooLarge(f"the bundle unpacks to more than {MAX_TOTAL_BYTES} bytes")
            if info.is_dir():  # nothing a bundle lists; it may even carry data
                directories.append(info.filename)
                continue
            if info.filename in files:
                duplicates.append(info.filename)
            files[info.filename] = archive.read(info)
    return files, duplicates, directories


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("a key appears twice")
    return dict(pairs)


def _load_json(data: bytes | None) -> Any:
    """Strict JSON: None if it does not parse, or if any object repeats a key (readers
    disagree on which value wins)."""
    if data is None:
        return None
    try:
        return json.loads(data, object_pairs_hook=_no_duplicate_keys)
    except (ValueError, UnicodeDecodeError, RecursionError):
        return None


def _signed_statement(files: Mapping[str, bytes], public_key: Ed25519PublicKey, key_id: str
                      ) -> tuple[dict[str, Any] | None, BundleDifference | None]:
    if SIGNATURE not in files:
        return None, BundleDifference("file_removed", SIGNATURE, "missing: nothing is attested")
    envelope = _load_json(files[SIGNATURE])
    try:
        statement = envelope["statement"]
        encoded = envelope["signature"]
        claimed_key = str(envelope["key_id"])
        if not (isinstance(statement, dict) and isinstance(statement["manifest"], dict)
                and isinstance(statement["json_files"], dict)
                and isinstance(statement["manifest_sha256"], str)):
            raise TypeError("statement")
    except (KeyError, TypeError):
        return None, BundleDifference("malformed", SIGNATURE, "not a signature envelope")
    if not hmac.compare_digest(claimed_key.encode(), key_id.encode()):
        return None, BundleDifference(
            "signature", SIGNATURE,
            f"signed by key {claimed_key}, not by the given key {key_id}")
    try:
        signature = b64decode(encoded, field="signature")
        public_key.verify(signature, labelled(_SIGNED_LABEL, statement))
    except (InvalidSignature, InvalidInput):
        return None, BundleDifference("signature", SIGNATURE,
                                      "the signature does not verify under the given key")
    return statement, None


def _compare_fields(kind: DifferenceKind, where: str, signed: Mapping[str, str],
                    actual: Mapping[str, str]) -> list[BundleDifference]:
    differences = []
    for pointer in sorted(set(signed) | set(actual)):
        label = f"{where} {pointer or '/'}"
        if pointer not in actual:
            differences.append(BundleDifference(kind, label, "field removed"))
        elif pointer not in signed:
            differences.append(BundleDifference(kind, label, "field added (not signed)"))
        elif not hmac.compare_digest(signed[pointer], actual[pointer]):
            differences.append(BundleDifference(kind, label, "value changed"))
    return differences


def _signed_files(statement: Mapping[str, Any]) -> dict[str, str]:
    """File name → signed digest of its SHA-256, from the manifest's signed fields."""
    out = {}
    for pointer, digest in statement["manifest"].items():
        parts = pointer.split("/")
        if len(parts) == 4 and parts[1] == "files" and parts[3] == "sha256":
            out[parts[2].replace("~1", "/").replace("~0", "~")] = digest
    return out


def _compare_files(files: Mapping[str, bytes], statement: Mapping[str, Any]
                   ) -> list[BundleDifference]:
    signed = _signed_files(statement)
    differences = []
    for name in sorted(set(files) - set(signed) - {MANIFEST, SIGNATURE}):
        differences.append(BundleDifference("file_added", name, "not in the signed manifest"))
    for name in sorted(signed):
        if name not in files:
            differences.append(BundleDifference("file_removed", name, "missing"))
            continue
        actual = hashlib.sha256(files[name]).hexdigest()
        if hmac.compare_digest(_digest(actual), signed[name]):
            continue
        differences.append(BundleDifference("file_changed", name,
                                            f"content changed (SHA-256 now {actual})"))
        field_digests = statement["json_files"].get(name)
        parsed = _load_json(files[name])
        if isinstance(field_digests, dict) and parsed is not None:
            differences.extend(_compare_fields("file_field", name, field_digests,
                                               _field_digests(parsed)))
    return differences


def _reopen_commitments(messages: tuple[Mapping[str, Any], ...]) -> list[BundleDifference]:
    """Anyone can re-open the sender's commitments offline from the revealed keys."""
    differences = []
    for message in messages:
        try:
            franking = message["franking"]
            content = MessageContent.model_validate(franking["content"])
            ctx = franking["context"]
            context = FrankingContext(ctx["conversation_id"], ctx["sender_user"],
                                      ctx["sender_device"], tuple(ctx["participants"]))
            ok = opens(FrankingCommitment.from_b64(franking["commitment"]), content.fk(),
                       content.committed_part(), context)
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            differences.append(BundleDifference(
                "content", f"{MESSAGES} {message.get('message_id')}",
                "the message does not open its franking commitment"))
    return differences
