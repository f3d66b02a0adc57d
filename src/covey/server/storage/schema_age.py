"""The age-assurance table: one row per account holding a proven age band.

Only what the issue allows is kept: band, expiry, issuer and verification time. No
presentation, no birth date, no nonce, nothing that could link two presentations.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, ForeignKey, String, Table

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
