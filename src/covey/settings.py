"""The one settings object: `covey.toml` and `COVEY_*` environment variables.

Environment variables win over the file; the file is looked up at `$COVEY_CONFIG`
or `./covey.toml`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field
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
    # Reporting and moderation.
    evidence_retention_s: int = Field(
        default=365 * 24 * 3600, description="how long report evidence is preserved")
    evidence_purge_interval_s: float = 3600
    console_session_ttl_s: int = 8 * 3600
    esp_contact_name: str = "Covey Trust and Safety"
    esp_contact_email: str = "safety@covey.invalid"
    # Age assurance (docs/age-assurance.md, docs/operations.md).
    trust_registry: str | None = Field(
        default=None, description="trusted age-credential issuers: a JSON file path or an "
        "http(s) URL ({\"issuers\": [...]}, see `covey issuer publish`); reloaded on change")
    trust_registry_refresh_s: float = Field(
        default=60.0, description="how often a trust registry URL is fetched again")
    age_threshold_years: int = 16
    age_band_validity_days: int = 90
    age_challenge_ttl_s: int = 300
    age_reproof_before_s: int = Field(
        default=24 * 3600, description="ask devices for a fresh proof this long before expiry")
    age_clock_offset_s: int = Field(
        default=0, description="testing only: shift the age verifier's clock (e.g. to reach "
        "a band's expiry or a 16th birthday without waiting)")

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

    def resolved_server_key_file(self) -> Path:
        return self.server_key_file or self.data_dir / "server.key"


def load_settings(**overrides: Any) -> Settings:
    return Settings(**overrides)
