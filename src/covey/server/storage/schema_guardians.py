"""Tables for guardians (docs/safety-policy.md#guardians): links between an under-16
account and the 16+ accounts it chose as guardians, and the alerts those guardians get.

An alert row has a column per fact it may carry (a category, a detector code, the other
account of a new contact, a conversation id) and nothing else: there is no column a
message's text, attachment or key could be written into."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, String, Table, UniqueConstraint

from covey.server.storage.schema import metadata

guardian_links = Table(
    "guardian_links",
    metadata,
    Column("link_id", String(40), primary_key=True),
    Column("child", String(32), nullable=False),
    Column("guardian", String(32), nullable=False),
    # pending, active, removal_requested (removed links are deleted)
    Column("status", String(24), nullable=False),
    Column("proposed_by", String(32), nullable=False),
    Column("created_ms", BigInteger, nullable=False),
    Column("accepted_ms", BigInteger, nullable=True),
    Column("removal_requested_ms", BigInteger, nullable=True),
    UniqueConstraint("child", "guardian", name="uq_guardian_links_pair"),
    Index("ix_guardian_links_guardian", "guardian"),
)

guardian_alerts = Table(
    "guardian_alerts",
    metadata,
    Column("alert_id", String(40), primary_key=True),
    Column("guardian", String(32), nullable=False),
    Column("child", String(32), nullable=False),
    # report_filed, contact_accepted, high_risk_detection, removal_requested
    Column("kind", String(32), nullable=False),
    Column("category", String(64), nullable=True),  # report_filed: the report category
    Column("other_user", String(32), nullable=True),  # contact_accepted: the new contact
    Column("conversation_id", String(80), nullable=True),  # high_risk_detection
    Column("detector", String(64), nullable=True),
    Column("code", String(64), nullable=True),
    Column("severity", String(8), nullable=True),
    Column("created_ms", BigInteger, nullable=False),
    Column("acknowledged_ms", BigInteger, nullable=True),
    Index("ix_guardian_alerts_guardian", "guardian", "created_ms"),
    Index("ix_guardian_alerts_child", "child", "created_ms"),
)
