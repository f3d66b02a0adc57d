"""What the relay stores, field by field, and who can read it: the catalog behind
`covey audit visibility`. Pure data and arithmetic; the code that measures a live database
is `covey.server.audit`.

Every column of every table must be classified here: `coverage_problems` lists what is
not, and a unit test fails on it, so a new column cannot slip past the audit.
"""

from __future__ import annotations

import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from covey.protocol.safety_copy import ENC_BYTES, TAG_BYTES
from covey.safety.policy import PolicyMode

HPKE_OVERHEAD_BYTES = ENC_BYTES + TAG_BYTES  # enc ‖ AES-GCM tag around the plaintext


class Visibility(enum.StrEnum):
    """What the server can learn from a stored field."""

    CIPHERTEXT = "ciphertext"
    PLAINTEXT_READABLE = "plaintext-readable"
    METADATA = "metadata"
    COMMITMENT = "commitment"
    PUBLIC_KEY = "public-key"
    SECRET_HASH = "secret-hash"  # noqa: S105 (a class name, not a password)
    SERVER_SECRET = "server-secret"  # noqa: S105

    @property
    def meaning(self) -> str:
        return _MEANINGS[self]


_MEANINGS = {
    Visibility.CIPHERTEXT: "end-to-end encrypted: only the participants' devices hold the "
    "keys; the server cannot read it",
    Visibility.PLAINTEXT_READABLE: "user content the server can read (in clear, or sealed "
    "to a key the server holds)",
    Visibility.METADATA: "who, when, how much, relationships, age bands and states: "
    "readable by the server",
    Visibility.COMMITMENT: "franking commitments and tags: readable bytes that reveal "
    "nothing about the content without the franking key inside the ciphertext",
    Visibility.PUBLIC_KEY: "public keys and their signatures: public by design",
    Visibility.SECRET_HASH: "a hash of a secret (token, password): a database leak does "
    "not yield the secret",
    Visibility.SERVER_SECRET: "a secret or single-use nonce the server generated, held in "
    "clear to check a later request; reveals nothing about users",
}

ALL_MODES: frozenset[PolicyMode] = frozenset(PolicyMode)
SAFEGUARDED_ONLY: frozenset[PolicyMode] = frozenset({PolicyMode.SAFEGUARDED})


@dataclass(frozen=True)
class Retention:
    """How long rows (or a field) stay; `setting` names the `Settings` field that bounds it."""

    rule: str
    setting: str | None = None

    def describe(self, values: Mapping[str, Any] | None = None) -> str:
        if self.setting is None:
            return self.rule
        value = (values or {}).get(self.setting)
        if value is None:
            return f"{self.rule} ({self.setting})"
        return f"{self.rule} ({self.setting} = {_duration(self.setting, value)})"


def _duration(setting: str, value: Any) -> str:
    seconds = int(value) * (86400 if setting.endswith("_days") else 1)
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size and seconds % size == 0:
            n = seconds // size
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{seconds} s"


@dataclass(frozen=True)
class FieldVisibility:
    """One column: its class, an optional note, and overrides of the table's retention and
    modes. `reader` names who can read a plaintext-readable field and with which key;
    `sealed_overhead` is what sealing adds to the plaintext (0 when stored in clear)."""

    visibility: Visibility
    note: str = ""
    retention: Retention | None = None
    modes: frozenset[PolicyMode] | None = None
    reader: str = ""
    sealed_overhead: int = 0


@dataclass(frozen=True)
class TableVisibility:
    purpose: str
    retention: Retention
    columns: Mapping[str, FieldVisibility]
    modes: frozenset[PolicyMode] = ALL_MODES

    def field_modes(self, column: str) -> frozenset[PolicyMode]:
        return self.columns[column].modes or self.modes

    def field_retention(self, column: str) -> Retention:
        return self.columns[column].retention or self.retention

    def of(self, visibility: Visibility) -> list[str]:
        return [name for name, f in self.columns.items() if f.visibility is visibility]


def _f(visibility: Visibility) -> Any:
    def make(note: str = "", **kw: Any) -> FieldVisibility:
        return FieldVisibility(visibility, note, **kw)

    return make


meta = _f(Visibility.METADATA)
cipher = _f(Visibility.CIPHERTEXT)
readable = _f(Visibility.PLAINTEXT_READABLE)
commitment = _f(Visibility.COMMITMENT)
public = _f(Visibility.PUBLIC_KEY)
secret_hash = _f(Visibility.SECRET_HASH)
server_secret = _f(Visibility.SERVER_SECRET)

_KEPT = Retention("kept until deleted (no purge)")
_SAFETY_SERVICE = "the safety service (the server holds its key file)"

CATALOG: Mapping[str, TableVisibility] = {
    # --- relay (schema.py) ---------------------------------------------------------------
    "users": TableVisibility("accounts", _KEPT, {
        "user_id": meta(), "created_ms": meta(),
        "handle_skeleton": meta("the handle's confusable skeleton (look-alike check)")}),
    "devices": TableVisibility("each account's devices and their identity keys", _KEPT, {
        "id": meta(), "user_id": meta(), "device_id": meta(),
        "identity_key": public("Curve25519 identity key"),
        "signing_key": public("Ed25519 signing key"),
        "signature": public(), "created_ms": meta(),
        "removed_ms": meta("when the account unlinked the device (it stops receiving)")}),
    "one_time_keys": TableVisibility(
        "one-time prekeys for new Olm sessions", Retention("until claimed by a sender"), {
            "id": meta(), "device_pk": meta(), "key_id": meta(), "key": public(),
            "signature": public()}),
    "fallback_keys": TableVisibility(
        "each device's fallback prekey", Retention("until the device replaces it"), {
            "device_pk": meta(), "key_id": meta(), "key": public(), "signature": public()}),
    "tokens": TableVisibility("login bearer tokens", Retention(
        "until expiry, then purged", "token_ttl_s"), {
        "token_hash": secret_hash("SHA-256 of the bearer token"), "device_pk": meta(),
        "expires_ms": meta()}),
    "challenges": TableVisibility("login challenges", Retention(
        "until expiry, then purged", "challenge_ttl_s"), {
        "challenge_id": meta(), "device_pk": meta(),
        "challenge": server_secret("random nonce the device signs to log in"),
        "expires_ms": meta(), "used": meta()}),
    "link_tokens": TableVisibility("device-link tokens", Retention(
        "until expiry, then purged", "link_token_ttl_s"), {
        "token_hash": secret_hash("SHA-256 of the link token"), "user_id": meta(),
        "expires_ms": meta(), "used": meta()}),
    "groups": TableVisibility("groups", Retention("while the group exists (no deletion)"), {
        "group_id": meta(),
        "name": readable("the group's name as its creator typed it, sent and stored in "
                         "clear, for adults' groups too", reader="the server"),
        "epoch": meta("membership version"), "created_ms": meta()}),
    "group_members": TableVisibility("group membership", Retention("until the member "
                                                                   "leaves or is removed"), {
        "group_id": meta(), "user_id": meta(), "role": meta()}),
    "group_invitations": TableVisibility(
        "invitations of unverified and under-16 accounts to groups",
        Retention("until accepted or declined, or 7 days, then purged"), {
            "invitation_id": meta(), "group_id": meta(), "user_id": meta(),
            "invited_by": meta(), "created_ms": meta(), "expires_ms": meta()}),
    "messages": TableVisibility(
        "one row per message: routing, franking, and a group message's Megolm ciphertext",
        Retention("kept after sending until no mailbox entry references it and it is older "
                  "than the mailbox TTL", "mailbox_ttl_s"), {
            "id": meta(), "sender_device_pk": meta(), "sender_user": meta(),
            "sender_device": meta(), "message_id": meta(), "conversation_id": meta(),
            "commitment": commitment("HMAC-SHA256 under the franking key inside the "
                                     "ciphertext"),
            "server_ts_ms": meta(), "participants": meta("user ids of the conversation"),
            "group_session_id": meta("Megolm session id (groups)"),
            "group_body": cipher("Megolm ciphertext of a group message (padded)"),
            "blob_ids": meta("the blobs the envelope declared (JSON list of ids)")}),
    "mailbox": TableVisibility(
        "one entry per recipient device until it acknowledges",
        Retention("until the device acknowledges it or the mailbox TTL ends",
                  "mailbox_ttl_s"), {
            "seq": meta(), "device_pk": meta(), "message_pk": meta(),
            "olm_type": meta("prekey or normal Olm message"),
            "body": cipher("Olm ciphertext for this device (padded)"),
            "franking_tag": commitment("HMAC-SHA256 under the server's franking key over "
                                       "the commitment and routing metadata"),
            "expires_ms": meta()}),
    "blobs": TableVisibility(
        "attachment blobs (the bytes are files under <data_dir>/blobs)",
        Retention("until no message declared it within the retention (or, never declared, "
                  "past the grace period after upload), then purged", "blob_retention_s"), {
            "blob_id": meta(), "owner_user": meta(),
            "sha256": meta("hash of the encrypted blob"), "size": meta(),
            "created_ms": meta()}),
    "blob_refs": TableVisibility(
        "which conversations declared each blob (who may download it)",
        Retention("purged with the blob", "blob_retention_s"), {
            "blob_id": meta(), "conversation_id": meta(),
            "last_ref_ms": meta("time of the newest message that declared it")}),
    # --- age assurance (schema_age.py) ---------------------------------------------------
    "age_bands": TableVisibility(
        "each account's proven age band", Retention(
            "until the next proof replaces it; the band itself lapses after its validity",
            "age_band_validity_days"), {
            "user_id": meta(), "band": meta("16+ or under-16"), "expires_ms": meta(),
            "issuer_id": meta(), "verified_ms": meta()}),
    "age_challenges": TableVisibility(
        "outstanding single-use age challenges", Retention(
            "deleted an hour after the challenge expires", "age_challenge_ttl_s"), {
            "nonce_hash": secret_hash("SHA-256 of the challenge nonce"),
            "subject": meta("the account asked to prove"),
            "challenge": meta("JSON: predicate, trusted issuers, times; no proof"),
            "expires_ms": meta(), "used": meta()}),
    # --- reporting and moderation (schema_reports.py) ------------------------------------
    "reports": TableVisibility(
        "user reports of messages, with their franked evidence",
        Retention("row kept for the transparency report; evidence purged after the "
                  "preservation period"), {
            "report_id": meta(), "fingerprint": meta("hash of (message, reporter)"),
            "reporter": meta(), "reported_user": meta(), "category": meta(),
            "priority": meta(), "reporter_band": meta(), "policy_mode": meta(),
            "status": meta(), "verified_count": meta(), "total_count": meta(),
            "reported_verified": meta(), "created_ms": meta(), "actioned_ms": meta(),
            "preserve_until_ms": meta(),
            "sealed_evidence": readable(
                "the reported message, its context and attachments, as the reporter "
                "revealed them; AES-256-GCM under reports.key (outside the database)",
                retention=Retention("until the preservation period ends",
                                    "evidence_retention_s"),
                reader="moderators (the server holds reports.key)")}),
    "blocks": TableVisibility("who blocked whom", Retention("until unblocked"), {
        "blocker": meta(), "blocked": meta(), "created_ms": meta()}),
    "suspensions": TableVisibility("suspended accounts", Retention("until lifted"), {
        "user_id": meta(), "report_id": meta(), "actor": meta(), "created_ms": meta()}),
    "warnings": TableVisibility("moderator warnings", _KEPT, {
        "id": meta(), "user_id": meta(), "report_id": meta(), "actor": meta(),
        "created_ms": meta()}),
    "moderators": TableVisibility("console accounts", _KEPT, {
        "username": meta(), "password_hash": secret_hash("argon2id"), "role": meta(),
        "created_ms": meta(), "disabled_ms": meta("when an admin disabled the account")}),
    "moderator_sessions": TableVisibility("console sessions", Retention(
        "until logout or expiry", "console_session_ttl_s"), {
        "session_hash": secret_hash("SHA-256 of the session cookie"), "username": meta(),
        "csrf_token": server_secret("the session's CSRF token"), "expires_ms": meta()}),
    "escalations": TableVisibility(
        "escalations to law enforcement; the package (plaintext evidence) is a directory "
        "under <data_dir>/escalations, deleted with the evidence", _KEPT, {
            "report_id": meta(), "bundle_id": meta(), "actor": meta(), "created_ms": meta(),
            "directory": meta("path of the escalation package")}),
    # --- the console's own work (schema_console.py) -------------------------------------
    "report_assignments": TableVisibility("which moderator a report is assigned to", _KEPT, {
        "report_id": meta(), "moderator": meta(), "assigned_by": meta(),
        "assigned_ms": meta()}),
    "report_notes": TableVisibility("moderators' notes on a report", _KEPT, {
        "id": meta(), "report_id": meta(), "author": meta(), "created_ms": meta(),
        "text": readable("a moderator's own note, as typed (may quote the evidence)",
                         reader="moderators")}),
    "audit_log": TableVisibility("moderation audit log", _KEPT, {
        "id": meta(), "at_ms": meta(), "actor": meta(), "action": meta(),
        "report_id": meta(), "detail": meta("short description of the action, no content")}),
    # --- safety policy (schema_safety.py) ------------------------------------------------
    "contact_requests": TableVisibility("contact requests", Retention(
        "pending ones until answered; answered ones purged 30 days after the answer (never "
        "within minor_contact_request_window_s)"), {
        "request_id": meta(), "requester": meta(), "target": meta(), "status": meta(),
        "to_under_age": meta("whether the target was under 16"), "created_ms": meta(),
        "decided_ms": meta()}),
    "contacts": TableVisibility("accepted contacts", Retention("until removed"), {
        "user_a": meta(), "user_b": meta(), "since_ms": meta()}),
    "mutes": TableVisibility("who muted whom", Retention("until unmuted"), {
        "muter": meta(), "muted": meta(), "created_ms": meta()}),
    "under_age_flags": TableVisibility(
        "blocks and reports by under-16 accounts (they bar an account from contacting "
        "children)", _KEPT, {
            "flagged": meta(), "flagger": meta(), "kind": meta("block or report"),
            "created_ms": meta()}),
    "group_invites": TableVisibility("group invite links", Retention(
        "valid for 7 days, then purged"), {
        "token_hash": secret_hash("SHA-256 of the invite token"), "group_id": meta(),
        "created_by": meta(), "created_ms": meta(), "expires_ms": meta()}),
    "safety_copies": TableVisibility(
        "safety copies of messages in safeguarded conversations",
        Retention("until the retention ends, then purged", "safety_copy_retention_s"), {
            "id": meta(), "message_id": meta(), "conversation_id": meta(),
            "sender_user": meta(), "sender_device": meta(), "participants": meta(),
            "commitment": commitment("the envelope's franking commitment"),
            "key_id": meta("which safety service key it is sealed to"),
            "sealed": readable(
                "the whole message content (text, franking key, attachment keys, so "
                "attachments too) sealed with HPKE to the safety service's key",
                reader=_SAFETY_SERVICE, sealed_overhead=HPKE_OVERHEAD_BYTES),
            "server_ts_ms": meta(), "expires_ms": meta()},
        modes=SAFEGUARDED_ONLY),
    "safety_copy_reads": TableVisibility(
        "the log of every opening of a stored safety copy: who, why, when", _KEPT, {
            "id": meta(), "copy_id": meta(), "message_id": meta(), "conversation_id": meta(),
            "sender_user": meta(), "reader": meta(), "purpose": meta(), "read_ms": meta()},
        modes=SAFEGUARDED_ONLY),
    # --- guardians (schema_guardians.py) -------------------------------------------------
    "guardian_links": TableVisibility(
        "links between an under-16 account and its chosen 16+ guardians",
        Retention("until the link is removed"), {
            "link_id": meta(), "child": meta(), "guardian": meta(), "status": meta(),
            "proposed_by": meta(), "created_ms": meta(), "accepted_ms": meta(),
            "removal_requested_ms": meta()}),
    "guardian_alerts": TableVisibility(
        "alerts to guardians, without content: a kind and at most a category, the other "
        "account of a new contact, a conversation id and a detector's code",
        Retention("until the guardian link is removed"), {
            "alert_id": meta(), "guardian": meta(), "child": meta(), "kind": meta(),
            "category": meta("report category"),
            "other_user": meta("the new contact (contact_accepted)"),
            "conversation_id": meta("high_risk_detection"),
            "detector": meta("which detector fired, not what it read"),
            "code": meta("the detector's signal code, never the text"),
            "severity": meta(), "created_ms": meta(), "acknowledged_ms": meta()}),
    "scan_jobs": TableVisibility(
        "the detection queue: which safeguarded messages still await a scan or a report "
        "(the content stays in the sealed safety copy)", Retention(
            "until scanned and every report filed"), {
            "id": meta(), "conversation_id": meta(), "sender_user": meta(),
            "sender_device": meta(), "message_id": meta(), "created_ms": meta(),
            "next_attempt_ms": meta(), "attempts": meta(), "alerted": meta(),
            "last_error": meta("why the last attempt failed (no content)")},
        modes=SAFEGUARDED_ONLY),
    # --- cluster membership (schema_cluster.py) -----------------------------------------
    "cluster_nodes": TableVisibility("which relay nodes run on this database", _KEPT, {
        "node_id": meta(), "clustered": meta(), "listen": meta("a node's host and port"),
        "started_ms": meta(), "heartbeat_ms": meta()}),
    "cluster_keys": TableVisibility("fingerprints of the keys every node must share",
                                    _KEPT, {
        "name": meta(), "key_id": meta("a SHA-256 fingerprint, never the key"),
        "recorded_ms": meta()}),
    "rate_buckets": TableVisibility("rate-limit tokens left per account and IP, shared "
                                    "by the nodes of a cluster", _KEPT, {
        "action": meta(), "key": meta("an account id or an IP address"),
        "tokens": meta(), "updated_ms": meta()}),
    # --- conversation detectors (schema_detectors.py) ------------------------------------
    "detector_states": TableVisibility(
        "what a conversation detector (the grooming scorer) remembers between messages: "
        "decaying levels per behaviour, alerts already raised, the ids and offsets of the "
        "messages that carried signals; never text", Retention(
            "until no message of the conversation was scanned for the safety-copy retention"),
        {"conversation_id": meta(), "detector": meta(),
         "state": meta("behaviour names, numbers, message ids and offsets: that a "
                       "conversation showed grooming behaviour, not what was said"),
         "updated_ms": meta()},
        modes=SAFEGUARDED_ONLY),
    # --- known-image hash banks (schema_banks.py) ----------------------------------------
    "hash_bank_state": TableVisibility("the banks' change counter", _KEPT, {
        "id": meta(), "version": meta()}),
    "hash_banks": TableVisibility("operators' and shared lists of known-image hashes",
                                  _KEPT, {
        "bank_id": meta(), "name": meta(), "created_ms": meta(), "version": meta()}),
    "hash_bank_entries": TableVisibility(
        "PDQ hashes of known images (never the images) and the list's metadata", _KEPT, {
            "entry_id": meta(), "bank_id": meta(),
            "pdq": meta("a perceptual hash from a hash list, not a user's image"),
            "meta": meta("the hash list's own metadata"), "source": meta(),
            "added_ms": meta(), "version": meta()}),
    "hash_bank_removals": TableVisibility(
        "which entries and banks were removed, so other processes catch up", _KEPT, {
            "version": meta(), "bank_id": meta(), "entry_id": meta()}),
    # --- known-image matches (schema_images.py) ------------------------------------------
    "image_matches": TableVisibility(
        "attachments whose PDQ hash matched a bank entry: found by the relay in a "
        "safeguarded conversation before delivery (the blob is then withheld), or in an "
        "attachment a person reported (any mode). Never a row for an image that did not "
        "match, nor for an unreported end-to-end encrypted one",
        Retention("kept for the transparency report and the CyberTipline record (no purge)"),
        {
            "match_id": meta(), "origin": meta("relay or user_report"),
            "blob_id": meta(), "conversation_id": meta(), "sender_user": meta(),
            "sender_device": meta(), "message_id": meta(),
            "plaintext_sha256": meta("SHA-256 of the matched image (of known material)"),
            "query_pdq": meta("the matched image's PDQ hash, within the distance of a "
                              "banked hash"),
            "quality": meta("PDQ quality"), "bank": meta(), "entry_id": meta(),
            "entry_pdq": meta("the banked hash it matched"),
            "entry_meta": meta("the hash list's metadata of that entry"),
            "distance": meta(), "variant": meta("which rotation or mirror matched"),
            "withheld": meta(), "child_present": meta("whether an under-16 took part"),
            "report_id": meta(), "created_ms": meta(),
            "viewed_ms": meta("when a moderator chose to look at the image")}),
}

# Stored outside the database, under the data dir.
DATA_DIR_FILES: Mapping[str, tuple[Visibility, str, Retention]] = {
    "blobs/<blob_id>": (Visibility.CIPHERTEXT, "attachment bytes, AES-256-GCM with a key "
                        "only inside the message", Retention("kept until deleted (no purge "
                                                             "yet)")),
    "escalations/<report id>/": (Visibility.PLAINTEXT_READABLE, "escalation packages: "
                                 "evidence bundle and CyberTipline XML", Retention(
                                     "deleted with the report's evidence",
                                     "evidence_retention_s")),
}


@dataclass(frozen=True)
class ImageHandling:
    """What happens to a child's images in one mode (docs/detection.md): what the server
    and the child's own client do, what that protects and what it leaks."""

    server: str
    device: str
    protects: str
    leaks: str

    def to_json(self) -> dict[str, str]:
        return {"server": self.server, "device": self.device, "protects": self.protects,
                "leaks": self.leaks}


_REPORTED = ("a reported image (any mode) is revealed by the reporter, matched against "
             "the banks and, on a match, withheld and counted")
IMAGE_HANDLING: Mapping[PolicyMode, ImageHandling] = {
    PolicyMode.SAFEGUARDED: ImageHandling(
        server="opens each safeguarded message's safety copy, decrypts every attachment "
        "with its franked key and PDQ-matches it against the banks before the message is "
        "stored; a match withholds the blob from all but its uploader and files a "
        "moderator report (adults' E2EE images are never opened)",
        device="shows a withheld image as 'withheld for your safety' with block-and-report",
        protects="the bank (it never leaves the server); adults' images",
        leaks="the server reads every image in a conversation with an under-16 or "
        "unverified participant (as it reads the text); a match row keeps the image's "
        "PDQ and SHA-256, the bank entry and who sent it; " + _REPORTED),
    PolicyMode.ON_DEVICE: ImageHandling(
        server="never sees a child's image nor any hash of it unless it is reported; "
        "holds no copy",
        device="gets no bank and sends no hash: it blurs each received "
        "image until tapped, with one-tap block-and-report (SafetyWarning image_review)",
        protects="the bank (a shipped list could be extracted, and an offline matcher "
        "is an oracle to perturb images against); every image's content and hash",
        leaks="nothing beyond the E2EE metadata (blob size, sender, time) until a report; "
        "known images that are never reported are not detected; " + _REPORTED),
    PolicyMode.E2EE_ONLY: ImageHandling(
        server="never sees an image unless it is reported",
        device="nothing beyond showing verified attachments",
        protects="every image's content and hash; the bank",
        leaks="blob size, sender and time; known images are detected only when reported; "
        + _REPORTED),
}


# What detection (the grooming scorer, phrase lists: docs/detection.md) reveals, per mode.
DETECTION: Mapping[PolicyMode, str] = {
    PolicyMode.SAFEGUARDED: (
        "the server scores every safety copy for grooming behaviour: it learns which of a "
        "child's conversations show which behaviours (detector_states: levels, alerts, "
        "message ids and offsets, no text); the child gets a notice, guardians the "
        "behaviour category (never content), moderators a report with the verified "
        "messages"),
    PolicyMode.ON_DEVICE: (
        "the child's own client scores incoming messages with signed rules from the "
        "server; notices stay on the device; the server learns nothing of a detection "
        "(no copy, no state, no alert, no report) unless the child reports, and only "
        "that the rules were fetched"),
    PolicyMode.E2EE_ONLY: "no detection anywhere; only what a participant reports",
}


def coverage_problems(tables: Iterable[Any],
                      catalog: Mapping[str, TableVisibility] = CATALOG) -> list[str]:
    """Every table and column of `tables` (SQLAlchemy `Table`s) not in the catalog, and
    every catalog entry that no longer exists. Empty when the catalog is complete."""
    problems: list[str] = []
    seen: set[str] = set()
    for table in tables:
        seen.add(table.name)
        entry = catalog.get(table.name)
        if entry is None:
            problems.append(f"table {table.name} is not classified")
            continue
        names = {column.name for column in table.columns}
        problems += [f"column {table.name}.{c} is not classified"
                     for c in sorted(names - set(entry.columns))]
        problems += [f"column {table.name}.{c} is classified but does not exist"
                     for c in sorted(set(entry.columns) - names)]
    problems += [f"table {name} is classified but does not exist"
                 for name in sorted(set(catalog) - seen)]
    return problems


def catalog_json(mode: PolicyMode, settings: Mapping[str, Any] | None = None,
                 ) -> list[dict[str, Any]]:
    """The catalog as JSON for one mode; `settings` turns retention settings into values."""
    out = []
    for name, table in CATALOG.items():
        columns = []
        for column, f in table.columns.items():
            item: dict[str, Any] = {
                "column": column, "class": f.visibility.value,
                "holds_data": mode in table.field_modes(column),
                "retention": table.field_retention(column).describe(settings)}
            if f.note:
                item["note"] = f.note
            if f.reader:
                item["readable_by"] = f.reader
            columns.append(item)
        out.append({"table": name, "purpose": table.purpose,
                    "holds_data": mode in table.modes,
                    "modes": sorted(m.value for m in table.modes),
                    "retention": table.retention.describe(settings), "columns": columns})
    return out


def retention_settings() -> set[str]:
    """Every `Settings` field the catalog names (a test checks they exist)."""
    named = {t.retention.setting for t in CATALOG.values()}
    named |= {f.retention.setting for t in CATALOG.values() for f in t.columns.values()
              if f.retention is not None}
    named |= {r.setting for _, _, r in DATA_DIR_FILES.values()}
    return {s for s in named if s is not None}


# --- arithmetic -------------------------------------------------------------------------


class Audience(enum.StrEnum):
    """Whose conversation a message belongs to, as the safety policy sees it now."""

    ADULTS = "adults"      # every participant holds an unexpired 16+ band
    CHILDREN = "children"  # some participant is under 16 or unverified


def audience_of(participants: Iterable[str], bands: Mapping[str, tuple[str, int]],
                now_ms: int) -> Audience:
    """`bands` maps user id to (band, expires_ms) from `age_bands`; a missing or expired
    band is unverified, as the server treats it."""
    for user in participants:
        band = bands.get(user)
        if band is None or band[0] != "16+" or band[1] <= now_ms:
            return Audience.CHILDREN
    return Audience.ADULTS


def parse_participants(raw: str) -> list[str]:
    """The `participants` column: a JSON list of user ids."""
    value = json.loads(raw)
    if not isinstance(value, list) or not all(isinstance(u, str) for u in value):
        raise ValueError("participants is not a JSON list of user ids")
    return value


def plaintext_size(sealed_bytes: int, copies: int, overhead: int = HPKE_OVERHEAD_BYTES,
                   ) -> int:
    """Plaintext bytes inside `copies` sealed values totalling `sealed_bytes`."""
    return max(0, sealed_bytes - copies * overhead)


def per_thousand(total_bytes: int, messages: int) -> int | None:
    """Bytes per 1,000 messages, rounded; None when there are no messages."""
    if messages <= 0:
        return None
    return round(total_bytes * 1000 / messages)


@dataclass
class Tally:
    """Bytes the server stores for one audience's messages, by what it can read."""

    messages: int = 0
    mailbox_entries: int = 0
    safety_copies: int = 0
    metadata: int = 0
    plaintext: int = 0
    ciphertext: int = 0
    commitment: int = 0
    conversations: set[str] = field(default_factory=set)

    @property
    def readable(self) -> int:
        """What the server can read and learn from: metadata and plaintext."""
        return self.metadata + self.plaintext

    def to_json(self) -> dict[str, Any]:
        totals = {"readable": self.readable, "metadata": self.metadata,
                  "plaintext": self.plaintext, "ciphertext": self.ciphertext,
                  "commitment": self.commitment}
        return {"messages": self.messages, "conversations": len(self.conversations),
                "mailbox_entries": self.mailbox_entries, "safety_copies": self.safety_copies,
                "bytes": totals,
                "per_1000_messages": {k: per_thousand(v, self.messages)
                                      for k, v in totals.items()}}
