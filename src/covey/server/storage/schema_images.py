"""Known-image matches (docs/detection.md#acting-on-a-match): one row per attachment that
matched a hash bank, on the relay before delivery or in a user's report. A relay match
withholds the blob (`withheld`); `report_id` is the moderator report filed for it (None
until filed: a sweep files it after a crash); `viewed_ms` is when a moderator chose to
look at the image (the CyberTipline record's `fileViewedByEsp`)."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, String, Table, Text

from covey.server.storage.schema import metadata

image_matches = Table(
    "image_matches",
    metadata,
    Column("match_id", String(32), primary_key=True),
    Column("origin", String(16), nullable=False),  # relay | user_report
    Column("blob_id", String(80), nullable=False),
    Column("conversation_id", String(80), nullable=False),
    Column("sender_user", String(32), nullable=False),
    Column("sender_device", String(64), nullable=False),
    Column("message_id", String(64), nullable=False),
    Column("plaintext_sha256", String(64), nullable=False),
    Column("query_pdq", String(64), nullable=False),
    Column("quality", Integer, nullable=False),
    Column("bank", String(64), nullable=False),
    Column("entry_id", BigInteger, nullable=False),
    Column("entry_pdq", String(64), nullable=False),
    Column("entry_meta", Text, nullable=False),  # JSON object, the bank entry's metadata
    Column("distance", Integer, nullable=False),
    Column("variant", Integer, nullable=False),  # dihedral variant that matched (0: as sent)
    Column("withheld", Boolean, nullable=False),
    Column("child_present", Boolean, nullable=False),
    Column("report_id", String(32), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("viewed_ms", BigInteger, nullable=True),
    Index("ix_image_matches_blob", "blob_id"),
    Index("ix_image_matches_report", "report_id"),
)
