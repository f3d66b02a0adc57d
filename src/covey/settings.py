"""The one settings object: `covey.toml` and `COVEY_*` environment variables.

Environment variables win over the file; the file is looked up at `$COVEY_CONFIG`
or `./covey.toml`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)


def _config_path() -> Path:
    return Path(os.environ.get("COVEY_CONFIG", "covey.toml"))


class Settings(BaseSettings):
    """Server settings. Every field can be set as `COVEY_<FIELD>` or in covey.toml."""

    model_config = SettingsConfigDict(env_prefix="COVEY_", extra="ignore")

    database_url: str = Field(
        default="sqlite+aiosqlite:///covey.db",
        description="SQLAlchemy async URL: sqlite+aiosqlite:///path or postgresql+asyncpg://...",
    )
    host: str = "127.0.0.1"
    port: int = 8470
    data_dir: Path = Field(default=Path("covey-data"), description="blobs and key files")
    server_key_file: Path | None = Field(
        default=None, description="32-byte franking server key; default <data_dir>/server.key"
    )
    token_ttl_s: int = 3600
    challenge_ttl_s: int = 120
    link_token_ttl_s: int = 600
    mailbox_ttl_s: int = 30 * 24 * 3600
    one_time_keys_low: int = Field(default=10, description="notify a device below this count")
    max_envelope_bytes: int = 256 * 1024
    max_blob_bytes: int = 100 * 1024 * 1024
    blob_quota_bytes: int = Field(
        default=5 * 1024**3, ge=0, description="bytes of blobs one account may have stored "
        "(every blob it uploaded, until blobs are purged); beyond it uploads get 413 "
        "blob_quota_exceeded")
    blob_unreferenced_grace_s: int = Field(
        default=24 * 3600, ge=1, description="an uploaded blob that no message declared "
        "(SendEnvelope.blob_ids) is deleted this long after its upload")
    blob_retention_s: int = Field(
        default=30 * 24 * 3600, ge=1, description="a blob is deleted this long after the "
        "newest message that declared it (reports keep their own sealed copy)")
    max_recipient_devices: int = 1024
    # Rate limits: sustained events per minute and burst, per account and per IP.
    rate_register_per_min: float = 10
    rate_register_burst: int = 20
    rate_login_per_min: float = 60
    rate_login_burst: int = 30
    rate_send_per_min: float = 3000
    rate_send_burst: int = 600
    # Age challenges and presentations per account (a verification is ~75 ms of CPU).
    rate_age_per_min: float = 30
    rate_age_burst: int = 40
    # Guardian link changes (propose, accept, remove, approve) per account.
    rate_guardian_per_min: float = 20
    rate_guardian_burst: int = 20
    # Looking accounts up (handle search, a DM's policy) and contact requests, per account:
    # each answer says something about an account, so probing is slowed.
    rate_lookup_per_min: float = 60
    rate_lookup_burst: int = 60
    rate_contact_per_min: float = 10
    rate_contact_burst: int = 20
    # Reports per account and per IP: each one is verified (and its blobs read) in full.
    rate_report_per_min: float = 6
    rate_report_burst: int = 15
    # Blob uploads per account and per IP (each up to max_blob_bytes, streamed to disk).
    rate_blob_per_min: float = 30
    rate_blob_burst: int = 30
    # Reporting and moderation.
    evidence_retention_s: int = Field(
        default=365 * 24 * 3600, description="how long report evidence is preserved")
    evidence_purge_interval_s: float = 3600
    console_session_ttl_s: int = 8 * 3600
    console_allow_http: bool = Field(
        default=False, description="console cookies without Secure and the __Host- prefix, "
        "for plain http://127.0.0.1 only (local use, the demo and the tests)")
    # Console login backoff: free failures, then base * 2^n seconds up to the maximum.
    console_login_free_failures: int = 5
    console_login_ip_free_failures: int = 20
    console_login_backoff_s: float = 1.0
    console_login_backoff_max_s: float = 900.0
    console_password_checks: int = Field(
        default=2, description="concurrent argon2 password checks (64 MiB each)")
    transparency_min_count: int = Field(
        default=10, ge=1, description="the public transparency page shows counts below "
        "this as 'hidden', so a small count cannot single out a child")
    esp_contact_name: str = "Covey Trust and Safety"
    esp_contact_email: str = "safety@covey.invalid"
    # Age assurance (docs/age-assurance.md, docs/operations.md).
    trust_registry: str | None = Field(
        default=None, description="trusted age-credential issuers: a file path or an "
        "https:// URL of a registry signed by the operator (see `covey issuer publish "
        "--operator-key`); reloaded on change")
    trust_registry_key: str | None = Field(
        default=None, description="the operator's Ed25519 public key (base64) the trust "
        "registry must be signed with (`covey issuer operator-key` prints it); required "
        "with trust_registry")
    trust_registry_refresh_s: float = Field(
        default=60.0, description="how often a trust registry URL is fetched again")
    trust_registry_max_age_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="a registry signed longer ago than this "
        "is stale: no band it vouches for counts until a fresh one arrives")
    revocation_status_max_age_s: int = Field(
        default=7 * 24 * 3600, gt=0, description="an issuer whose revocation status list "
        "is older than this (`covey issuer publish` refreshes it) vouches for no band")
    public_origin: str | None = Field(
        default=None, description="the server's origin as clients reach it (https://"
        "chat.example); age challenges name it and wallets check it. Default: the scheme "
        "and Host of each request")
    age_threshold_years: int = 16
    age_band_validity_days: int = 90
    age_challenge_ttl_s: int = 300
    age_reproof_before_s: int = Field(
        default=24 * 3600, description="ask devices for a fresh proof this long before expiry")
    age_notify_interval_s: float = Field(
        default=30.0, gt=0, description="how often connected devices whose band is about "
        "to expire are looked for and asked for a fresh proof")
    age_clock_offset_s: int = Field(
        default=0, description="testing only: shift the age verifier's clock (e.g. to reach "
        "a band's expiry or a 16th birthday without waiting)")
    # Safety policy (docs/safety-policy.md): one mode for the whole server.
    safety_mode: str = Field(
        default="safeguarded", description="conversations with an under-16 or unverified "
        "participant: safeguarded (server-readable safety copies, server-side detection), "
        "on-device (E2EE; the child's client scans) or e2ee-only")
    minor_block_report_threshold: int = Field(
        default=3, description="distinct under-16 accounts whose blocks or reports bar an "
        "account from sending contact requests to under-16 accounts")
    minor_contact_request_limit: int = Field(
        default=10, description="contact requests to under-16 accounts per sender per window")
    minor_contact_request_window_s: int = 24 * 3600
    contact_request_cooldown_s: int = Field(
        default=30 * 24 * 3600, ge=0, description="after an account declines a contact "
        "request, how long before the same sender may ask it again")
    policy_signing_key_file: Path | None = Field(
        default=None, description="Ed25519 key that signs conversation policies; default "
        "<data_dir>/policy-signing.key")
    safety_service_key_file: Path | None = Field(
        default=None, description="X25519 key safety copies are sealed to (kept sealed at "
        "rest); default <data_dir>/safety-service.key")
    safety_copy_retention_s: int = Field(
        default=30 * 24 * 3600, description="how long safety copies are kept")
    safety_copy_purge_interval_s: float = 600
    safety_phrase_list: Path | None = Field(
        default=None, description="operator phrase list for the phrase_list detector (one "
        "phrase per line, see docs/safety-policy.md); none: no phrase detection")
    detector_report_min_severity: str = Field(
        default="medium", description="detector signals at or above this severity (low, "
        "medium, high) raise a moderator report")
    safety_detectors: dict[str, dict[str, Any]] | None = Field(
        default=None, description="the detectors that scan safeguarded messages (on the "
        "server) and, in mode on-device, children's clients: {name: options}, JSON in "
        "COVEY_SAFETY_DETECTORS, e.g. {\"grooming\": {\"lexicons\": \"/etc/covey/lexicons\", "
        "\"notice\": 1.3}}; files the options name are re-read when they change. Default: "
        "grooming, plus phrase_list when safety_phrase_list is set (docs/detection.md)")
    safety_help_url: str = Field(
        default="https://childhelplineinternational.org/helplines/", max_length=500,
        description="the help link safety notices show children (a helpline directory)")
    scan_attachment_max_bytes: int = Field(
        default=25 * 1024 * 1024, ge=0, description="attachments up to this size are "
        "fetched and decrypted for detectors that read bytes; larger ones are scanned by "
        "reference only")
    # The scan queue (docs/operations.md, "The scan queue").
    scan_lease_s: float = Field(
        default=60.0, gt=0, description="how long a process holds a scan job before "
        "another process (or this one, after a restart) may take it over")
    scan_sweep_interval_s: float = Field(
        default=5.0, gt=0, description="how often due scan jobs (left by a dead process, "
        "or waiting for a retry) are looked for")
    scan_retry_base_s: float = Field(
        default=10.0, gt=0, description="first retry delay of a detection whose report "
        "could not be filed; doubles per attempt")
    scan_retry_max_s: float = Field(
        default=3600.0, gt=0, description="longest delay between two retries")
    scan_delay_s: float = Field(
        default=0.0, ge=0, description="testing only: wait this long after a commit before "
        "scanning (to stop a server between the commit and the scan)")

    # Running as a cluster (docs/operations.md, "Scaling out").
    nats_url: str | None = Field(
        default=None, description="NATS JetStream server (nats://HOST:4222) that makes this "
        "process a node of a cluster on a shared PostgreSQL database; without it, one "
        "process owns the database")
    cluster_name: str = Field(
        default="covey", pattern=r"^[A-Za-z0-9_-]{1,32}$", description="prefix of the "
        "cluster's NATS subjects and streams (several clusters may share one NATS)")
    cluster_heartbeat_s: float = Field(
        default=2.0, gt=0, description="how often a node renews its lease row")
    cluster_resync_s: float = Field(
        default=30.0, gt=0, description="how often each WebSocket re-reads its mailbox in a "
        "cluster, so a lost notification costs at most this much latency")

    # Known-image detection (docs/detection.md#known-images-pdq).
    pdq_match_distance: int = Field(
        default=31, ge=0, le=255, description="PDQ hashes within this Hamming distance of a "
        "banked hash match (PDQ's reference: 31)")
    hash_bank_poll_interval_s: float = Field(
        default=2.0, gt=0, description="how often each process checks the hash banks' "
        "version and loads what changed")
    pdq_multihash_min: int = Field(
        default=0, ge=0, description="banks of at least this many hashes are searched with "
        "FAISS multi-index hashing instead of the flat index; 0 (the default): always flat "
        "(measured faster up to 1M hashes, docs/detection.md)")

    @field_validator("nats_url")
    @classmethod
    def _nats_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("nats://", "tls://")):
            raise ValueError("use nats://HOST:4222 (or tls://HOST:4222)")
        return value

    @field_validator("safety_mode")
    @classmethod
    def _known_mode(cls, value: str) -> str:
        from covey.errors import CoveyError
        from covey.safety.policy import parse_mode

        try:
            return parse_mode(value).value
        except CoveyError as exc:  # pydantic reports ValueErrors as validation errors
            raise ValueError(exc.message) from exc

    @field_validator("trust_registry")
    @classmethod
    def _registry_file_or_https(cls, value: str | None) -> str | None:
        # A registry fetched in the clear could be withheld or replayed by anyone on the
        # path; it is signed, but freshness depends on getting the current one.
        if value is not None and "://" in value and not value.startswith("https://"):
            raise ValueError("the trust registry must be a local file or an https:// URL")
        return value

    @field_validator("trust_registry_key")
    @classmethod
    def _operator_key(cls, value: str | None) -> str | None:
        from covey.age.signed import parse_public_key

        if value is not None:
            parse_public_key(value)
        return value

    @model_validator(mode="after")
    def _registry_needs_key(self) -> Settings:
        if self.trust_registry is not None and self.trust_registry_key is None:
            raise ValueError("trust_registry is set but trust_registry_key is not: the "
                             "relay only trusts a registry signed by a pinned operator key")
        return self

    @field_validator("detector_report_min_severity")
    @classmethod
    def _known_severity(cls, value: str) -> str:
        if value not in ("low", "medium", "high"):
            raise ValueError("choose low, medium or high")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            TomlConfigSettingsSource(settings_cls, toml_file=_config_path()),
        )

    def detector_config(self) -> dict[str, dict[str, Any]]:
        """`safety_detectors`, or the default set; `safety_phrase_list` adds phrase_list."""
        config = ({"grooming": {}} if self.safety_detectors is None
                  else {k: dict(v) for k, v in self.safety_detectors.items()})
        if self.safety_phrase_list is not None and "phrase_list" not in config:
            config["phrase_list"] = {"path": str(self.safety_phrase_list)}
        return config

    def resolved_server_key_file(self) -> Path:
        return self.server_key_file or self.data_dir / "server.key"

    def resolved_policy_signing_key_file(self) -> Path:
        return self.policy_signing_key_file or self.data_dir / "policy-signing.key"

    def resolved_safety_service_key_file(self) -> Path:
        return self.safety_service_key_file or self.data_dir / "safety-service.key"


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
