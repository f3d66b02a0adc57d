"""The age-assurance tables: proven bands, and the outstanding single-use challenges.

Only what the issue allows is kept for a band: band, expiry, issuer and verification
time. No presentation, no birth date, no nonce, nothing that could link two
presentations. A challenge is kept under a hash of its nonce, only until it has expired
(and a retention after that, so a late replay is told `nonce_used`, not `nonce_unknown`).
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    SmallInteger,
    String,
    Table,
    Text,
)

from covey.server.storage.schema import metadata

age_bands = Table(
    "age_bands",
    metadata,
    Column("user_id", String(32), ForeignKey("users.user_id"), primary_key=True),
    Column("band", String(16), nullable=False),
    Column("expires_ms", BigInteger, nullable=False),
    Column("issuer_id", String(255), nullable=False),
    Column("verified_ms", BigInteger, nullable=False),
)

# Shared by every relay process on the database, so a challenge issued by one can be
# answered at another, and exactly once: claiming is one conditional UPDATE.
age_challenges = Table(
    "age_challenges",
    metadata,
    Column("nonce_hash", LargeBinary(32), primary_key=True),  # SHA-256 of the nonce
    Column("subject", String(32), nullable=False),
    Column("challenge", Text, nullable=False),  # JSON: band, predicate, issuers, times
    Column("expires_ms", BigInteger, nullable=False),
    Column("used", SmallInteger, nullable=False),
    Index("ix_age_challenges_expires", "expires_ms"),
)
