"""Measure what the server can read on a live database, read-only: bytes per 1,000
messages for adults' and for children's conversations, by the classes of
`covey.safety.visibility`. Only sizes and metadata leave the database: no message
content and no safety copy is ever read (a copy's plaintext size is its sealed size minus
the HPKE overhead), so the audit needs no key and writes no read log."""

from __future__ import annotations

import importlib
import pkgutil
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Table,
    and_,
    case,
    cast,
    func,
    inspect,
    literal,
    select,
)
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from covey.errors import InvalidInput
from covey.safety.policy import PolicyMode
from covey.safety.visibility import (
    CATALOG,
    Audience,
    Tally,
    Visibility,
    audience_of,
    parse_participants,
)

_BAND_CHUNK = 500


def load_schema() -> MetaData:
    """The relay's `MetaData` with every `storage/schema*.py` module imported, so every
    table is registered (new schema modules are found without editing this)."""
    import covey.server.storage as storage
    from covey.server.storage.schema import metadata

    for module in pkgutil.iter_modules(storage.__path__):
        if module.name.startswith("schema"):
            importlib.import_module(f"{storage.__name__}.{module.name}")
    return metadata


# --- results ----------------------------------------------------------------------------


@dataclass(frozen=True)
class TableTotal:
    rows: int
    bytes: Mapping[str, int]  # stored bytes by visibility class


@dataclass(frozen=True)
class ReadableContent:
    """One plaintext-readable column: non-empty rows and the plaintext bytes in them."""

    rows: int
    bytes: int
    readable_by: str


@dataclass(frozen=True)
class VisibilityReport:
    mode: PolicyMode
    database: str
    measured_at_ms: int
    audiences: Mapping[Audience, Tally]
    # Safety copies whose message row is already gone (counted apart from the per-1,000).
    unmatched_copies: Mapping[Audience, Tally]
    readable_content: Mapping[str, ReadableContent]
    tables: Mapping[str, TableTotal]
    findings: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "mode": self.mode.value,
            "database": self.database,
            "measured_at_ms": self.measured_at_ms,
            "audiences": {a.value: t.to_json() for a, t in self.audiences.items()},
            "unmatched_safety_copies": {
                a.value: {"safety_copies": t.safety_copies, "plaintext_bytes": t.plaintext,
                          "metadata_bytes": t.metadata}
                for a, t in self.unmatched_copies.items()},
            "readable_content": {k: {"rows": v.rows, "bytes": v.bytes,
                                     "readable_by": v.readable_by}
                                 for k, v in self.readable_content.items()},
            "tables": {k: {"rows": v.rows, "bytes": dict(v.bytes)}
                       for k, v in self.tables.items()},
            "findings": list(self.findings),
        }


# --- engine -----------------------------------------------------------------------------


def read_only_engine(database_url: str) -> AsyncEngine:
    """An engine that cannot write: SQLite opened `mode=ro` (never creating a file),
    PostgreSQL sessions in read-only transactions (set per connection by the caller)."""
    parsed = make_url(database_url)
    backend, driver = parsed.get_backend_name(), parsed.get_driver_name()
    if backend == "sqlite":
        if driver != "aiosqlite":
            raise InvalidInput("SQLite needs the async driver: sqlite+aiosqlite:///path")
        path = Path(parsed.database or "").expanduser()
        if not parsed.database or parsed.database == ":memory:" or not path.is_file():
            raise InvalidInput(f"no SQLite database at {parsed.database or '(none)'}")
        ro = URL.create("sqlite+aiosqlite", database=path.resolve().as_uri(),
                        query={"mode": "ro", "uri": "true"})
        return create_async_engine(ro, poolclass=NullPool, hide_parameters=True,
                                   connect_args={"timeout": 30})
    if backend == "postgresql":
        if driver != "asyncpg":
            raise InvalidInput("PostgreSQL needs the async driver: postgresql+asyncpg://...")
        return create_async_engine(parsed, poolclass=NullPool, hide_parameters=True)
    raise InvalidInput(f"unsupported database backend {backend!r}")


# --- SQL size expressions ---------------------------------------------------------------


def _octets(column: Any, dialect: str) -> ColumnElement[Any]:
    """Bytes a value occupies as the server holds it: UTF-8 bytes of text, the length of
    binary, the width of an integer; 0 for NULL."""
    kind = column.type
    if isinstance(kind, String | LargeBinary):
        if dialect == "postgresql":
            size: ColumnElement[Any] = func.octet_length(column)
        else:
            size = func.length(cast(column, LargeBinary))
        return func.coalesce(size, 0)
    width = (8 if isinstance(kind, BigInteger) else 2 if isinstance(kind, SmallInteger)
             else 4 if isinstance(kind, Integer) else 8)
    return case((column.is_(None), 0), else_=width)


def _class_sums(table: Table, names: Iterable[str], dialect: str,
                ) -> dict[str, ColumnElement[Any]]:
    """One SUM per visibility class over the given columns; plaintext-readable columns
    count their plaintext (sealed size minus the sealing overhead)."""
    entry = CATALOG[table.name]
    parts: dict[str, list[ColumnElement[Any]]] = {}
    for name in names:
        spec = entry.columns[name]
        size = _octets(table.c[name], dialect)
        if spec.sealed_overhead:
            size = case((table.c[name].is_(None), 0),
                        else_=size - literal(spec.sealed_overhead))
        parts.setdefault(spec.visibility.value, []).append(size)
    sums: dict[str, ColumnElement[Any]] = {}
    for cls, sizes in parts.items():
        total = sizes[0]
        for size in sizes[1:]:
            total = total + size
        sums[cls] = func.coalesce(func.sum(total), 0)
    return sums


_TALLY_FIELD = {Visibility.CIPHERTEXT.value: "ciphertext",
                Visibility.PLAINTEXT_READABLE.value: "plaintext",
                Visibility.COMMITMENT.value: "commitment"}


def _add(tally: Tally, sums: Mapping[str, int]) -> None:
    for cls, value in sums.items():
        # Everything the server reads that is not content or a commitment is metadata.
        name = _TALLY_FIELD.get(cls, "metadata")
        setattr(tally, name, getattr(tally, name) + int(value))


# --- measurement ------------------------------------------------------------------------


async def measure_visibility(database_url: str, mode: PolicyMode | str,
                             *, now_ms: int | None = None) -> VisibilityReport:
    """Measure the database at `database_url` without writing to it."""
    mode = PolicyMode(mode)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    metadata = load_schema()
    engine = read_only_engine(database_url)
    try:
        async with engine.connect() as conn:
            if engine.dialect.name == "postgresql":
                conn = await conn.execution_options(
                    postgresql_readonly=True, isolation_level="REPEATABLE READ")
            else:
                # One read transaction: every aggregate sees the same snapshot.
                await conn.exec_driver_sql("BEGIN")
            try:
                report = await _measure(conn, metadata, mode, now)
            finally:
                await conn.rollback()
    finally:
        await engine.dispose()
    shown = make_url(database_url).render_as_string(hide_password=True)
    return VisibilityReport(mode=mode, database=shown, measured_at_ms=now, **report)


def _existing(sync: Connection) -> dict[str, set[str]]:
    inspector = inspect(sync)
    return {name: {c["name"] for c in inspector.get_columns(name)}
            for name in inspector.get_table_names()}


async def _measure(conn: AsyncConnection, metadata: MetaData, mode: PolicyMode,
                   now: int) -> dict[str, Any]:
    dialect = conn.dialect.name
    existing = await conn.run_sync(_existing)
    tables = {t.name: t for t in metadata.sorted_tables}
    findings: list[str] = []

    def columns(name: str) -> list[str]:
        return [c for c in CATALOG[name].columns if c in existing.get(name, set())]

    totals: dict[str, TableTotal] = {}
    readable: dict[str, ReadableContent] = {}
    for name, entry in CATALOG.items():
        if name not in existing or name not in tables:
            findings.append(f"table {name} is not in this database (older schema): "
                            "measured as empty")
            continue
        table, present = tables[name], columns(name)
        sums = _class_sums(table, present, dialect)
        row = (await conn.execute(select(func.count(), *sums.values()).select_from(
            table))).one()
        totals[name] = TableTotal(int(row[0]), {k: int(v) for k, v in
                                                zip(sums, row[1:], strict=True)})
        for column in entry.of(Visibility.PLAINTEXT_READABLE):
            if column not in present:
                continue
            size = _class_sums(table, [column], dialect)[Visibility.PLAINTEXT_READABLE.value]
            hit = (await conn.execute(select(func.count(), size).select_from(table).where(
                table.c[column].is_not(None)))).one()
            readable[f"{name}.{column}"] = ReadableContent(
                int(hit[0]), int(hit[1]), entry.columns[column].reader)
    unknown = sorted(set(existing) - set(CATALOG) - {"alembic_version"})
    findings += [f"table {name} is in the database but not in the catalog: its contents "
                 "are not classified" for name in unknown]

    audiences = {a: Tally() for a in Audience}
    unmatched = {a: Tally() for a in Audience}
    groups = await _message_groups(conn, tables, columns, dialect)
    bands = await _bands(conn, tables, existing, {u for g in groups for u in g[1]})
    for (conversation, participants, kind, matched), sizes in groups.items():
        audience = audience_of(participants, bands, now)
        tally = audiences[audience] if matched else unmatched[audience]
        tally.conversations.add(conversation)
        count = sizes.pop("_count")
        if kind == "messages":
            tally.messages += count
        elif kind == "mailbox":
            tally.mailbox_entries += count
        else:
            tally.safety_copies += count
        _add(tally, sizes)
    findings += _policy_findings(mode, audiences, unmatched)
    return {"audiences": audiences, "unmatched_copies": unmatched,
            "readable_content": readable, "tables": totals, "findings": findings}


GroupKey = tuple[str, tuple[str, ...], str, bool]


async def _message_groups(conn: AsyncConnection, tables: Mapping[str, Table],
                          columns: Any, dialect: str) -> dict[GroupKey, dict[str, int]]:
    """Sizes by (conversation, participants, table, matched to a stored message)."""
    out: dict[GroupKey, dict[str, int]] = {}

    async def collect(kind: str, stmt: Any, sums: Mapping[str, Any], conv: Any, parts: Any,
                      matched: Any) -> None:
        stmt = stmt.add_columns(conv, parts, matched, func.count(), *sums.values())
        stmt = stmt.group_by(conv, parts, matched)
        for row in await conn.execute(stmt):
            key = (str(row[0]), tuple(parse_participants(str(row[1]))), kind, bool(row[2]))
            values = dict(zip(sums, (int(v) for v in row[4:]), strict=True))
            values["_count"] = int(row[3])
            bucket = out.setdefault(key, {})
            for k, v in values.items():
                bucket[k] = bucket.get(k, 0) + v

    if "messages" not in tables or not columns("messages"):
        return out
    m = tables["messages"]
    yes = literal(1)
    await collect("messages", select().select_from(m),
                  _class_sums(m, columns("messages"), dialect),
                  m.c.conversation_id, m.c.participants, yes)
    if columns("mailbox"):
        mb = tables["mailbox"]
        await collect("mailbox", select().select_from(mb.join(m, mb.c.message_pk == m.c.id)),
                      _class_sums(mb, columns("mailbox"), dialect),
                      m.c.conversation_id, m.c.participants, yes)
    if columns("safety_copies"):
        sc = tables["safety_copies"]
        joined = sc.outerjoin(m, and_(m.c.sender_user == sc.c.sender_user,
                                      m.c.sender_device == sc.c.sender_device,
                                      m.c.message_id == sc.c.message_id))
        matched = case((m.c.id.is_(None), 0), else_=1)
        await collect("safety_copies", select().select_from(joined),
                      _class_sums(sc, columns("safety_copies"), dialect),
                      sc.c.conversation_id, sc.c.participants, matched)
    return out


async def _bands(conn: AsyncConnection, tables: Mapping[str, Table],
                 existing: Mapping[str, set[str]], users: set[str],
                 ) -> dict[str, tuple[str, int]]:
    if "age_bands" not in existing or "age_bands" not in tables:
        return {}
    ab = tables["age_bands"]
    ordered = sorted(users)
    found: dict[str, tuple[str, int]] = {}
    for start in range(0, len(ordered), _BAND_CHUNK):
        chunk = ordered[start:start + _BAND_CHUNK]
        for row in await conn.execute(select(ab.c.user_id, ab.c.band, ab.c.expires_ms)
                                      .where(ab.c.user_id.in_(chunk))):
            found[str(row[0])] = (str(row[1]), int(row[2]))
    return found


def _policy_findings(mode: PolicyMode, audiences: Mapping[Audience, Tally],
                     unmatched: Mapping[Audience, Tally]) -> list[str]:
    findings = []
    adult_copies = (audiences[Audience.ADULTS].safety_copies
                    + unmatched[Audience.ADULTS].safety_copies)
    if adult_copies:
        findings.append(
            f"{adult_copies} safety copies belong to conversations whose participants are "
            "all 16+ now (a band changed since, or the policy was not applied)")
    all_copies = (adult_copies + audiences[Audience.CHILDREN].safety_copies
                  + unmatched[Audience.CHILDREN].safety_copies)
    if mode is not PolicyMode.SAFEGUARDED and all_copies:
        findings.append(
            f"the mode is {mode.value} but {all_copies} safety copies are stored (kept from "
            "an earlier safeguarded period until their retention ends?)")
    children = audiences[Audience.CHILDREN]
    if mode is PolicyMode.SAFEGUARDED and children.safety_copies < children.messages:
        findings.append(
            f"{children.messages - children.safety_copies} of {children.messages} stored "
            "children's messages have no stored safety copy (room-key shares, messages "
            "sent before the conversation was safeguarded, or copies already purged)")
    return findings
