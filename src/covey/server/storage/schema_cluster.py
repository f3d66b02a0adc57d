"""Tables for running several relay nodes on one database (docs/operations.md,
"Scaling out"): a lease row per node and the key ids every node must share."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Float, String, Table

from covey.server.storage.schema import metadata

# One row per node that ran on this database; `heartbeat_ms` is renewed while it runs.
cluster_nodes = Table(
    "cluster_nodes",
    metadata,
    Column("node_id", String(32), primary_key=True),
    Column("clustered", Boolean, nullable=False),  # started with --nats-url
    Column("listen", String(200), nullable=False),  # host:port, for the operator
    Column("started_ms", BigInteger, nullable=False),
    Column("heartbeat_ms", BigInteger, nullable=False),
)

# Fingerprints (SHA-256 of a domain label and the key file) of the keys in the shared
# data directory: a node with other keys would tag, sign and seal things no peer can check.
cluster_keys = Table(
    "cluster_keys",
    metadata,
    Column("name", String(64), primary_key=True),
    Column("key_id", String(64), nullable=False),
    Column("recorded_ms", BigInteger, nullable=False),
)

# Rate-limit token buckets shared by the nodes (server/ratelimit.py, SharedRateLimiter):
# each node spends a share locally and settles what it spent here every few ms.
rate_buckets = Table(
    "rate_buckets",
    metadata,
    Column("action", String(16), primary_key=True),
    Column("key", String(200), primary_key=True),  # "user:<id>" or "ip:<address>"
    Column("tokens", Float, nullable=False),
    Column("updated_ms", BigInteger, nullable=False),
)
