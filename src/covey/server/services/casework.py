"""The console's casework around a report: the filtered queue and the handled reports,
assignment to a moderator, moderators' notes, the reported user's account facts, and the
transparency counts for a date range (exact for moderators; small counts suppressed on the
public page). Every change is written to the audit log."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from covey.errors import InvalidInput
from covey.moderation.transparency import (
    ImageMatchCountRow,
    month_of,
    month_range_ms,
    suppress_small_counts,
    transparency_counts,
)
from covey.server.services._common import now_ms
from covey.server.services.moderation import ConsoleSession
from covey.server.services.moderation import _transparency_rows as transparency_rows
from covey.server.storage.console_repo import (
    AccountFacts,
    ConsoleRepository,
    NoteRow,
    QueueEntry,
    QueueFilter,
)
from covey.server.storage.image_matches import ImageMatchStore
from covey.server.storage.reports_repo import AuditRow, ReportRepository, ReportRow
from covey.settings import Settings

MAX_NOTE_CHARS = 2000
BandLookup = Callable[[str], Awaitable[str]]


@dataclass(frozen=True)
class ReportedUser:
    """The reported user's band and account facts, for the report page."""

    band: str
    facts: AccountFacts

    @property
    def account_age_days(self) -> int | None:
        if self.facts.created_ms is None:
            return None
        return max(0, (now_ms() - self.facts.created_ms) // 86_400_000)


class CaseworkService:
    def __init__(self, settings: Settings, store: ReportRepository,
                 console: ConsoleRepository, band_of: BandLookup,
                 image_matches: ImageMatchStore) -> None:
        self._settings = settings
        self._store = store
        self._console = console
        self._band_of = band_of
        self._image_matches = image_matches

    async def queue(self, session: ConsoleSession, want: QueueFilter) -> list[QueueEntry]:
        entries = await self._console.reports(want)
        await self._store.audit(AuditRow(now_ms(), session.actor, "view_queue", None,
                                         f"{len(entries)} {want.view} reports"))
        return entries

    async def moderators(self) -> list[str]:
        return await self._console.moderators()

    async def assignee(self, report_id: str) -> str | None:
        return await self._console.assignee(report_id)

    async def assign(self, session: ConsoleSession, row: ReportRow, moderator: str) -> str:
        """Assign the report to `moderator` ("" unassigns); returns the notice code."""
        if moderator and moderator not in await self._console.moderators():
            raise InvalidInput("no such console account", code="unknown_moderator")
        now = now_ms()
        await self._console.assign(
            row.report_id, moderator or None, session.actor, now,
            AuditRow(now, session.actor, "assign" if moderator else "unassign",
                     row.report_id, f"to {moderator}" if moderator else ""))
        return "assigned" if moderator else "unassigned"

    async def add_note(self, session: ConsoleSession, row: ReportRow, text: str) -> None:
        text = "".join(ch for ch in text.strip()[:MAX_NOTE_CHARS]
                       if ch.isprintable() or ch == "\n")
        if not text:
            raise InvalidInput("a note needs some text", code="empty_note")
        now = now_ms()
        await self._console.add_note(row.report_id, session.username, text, now,
                                     AuditRow(now, session.actor, "note", row.report_id,
                                              f"{len(text)} characters"))

    async def notes(self, report_id: str) -> list[NoteRow]:
        return await self._console.notes(report_id)

    async def reported_user(self, row: ReportRow) -> ReportedUser | None:
        """The band and facts of the user a verified report names; None for a claim."""
        user = row.attributed_user
        if user is None:
            return None
        return ReportedUser(str(await self._band_of(user)),
                            await self._console.account_facts(user))

    # --- transparency ----------------------------------------------------------------

    async def transparency(self, session: ConsoleSession, start: str,
                           end: str) -> dict[str, Any]:
        """Exact counts for reports received between two days (YYYY-MM-DD, inclusive)."""
        start_ms = _day_ms(start, "from") if start else None
        end_ms = _day_ms(end, "to") + 86_400_000 if end else None
        rows = await self._console.reports_between(start_ms, end_ms)
        await self._store.audit(AuditRow(now_ms(), session.actor, "view_transparency",
                                         None, f"from {start or 'start'} to {end or 'now'}"))
        matches = [ImageMatchCountRow(m.created_ms, m.origin, m.bank, m.withheld)
                   for m in await self._image_matches.all_matches()
                   if (start_ms is None or m.created_ms >= start_ms)
                   and (end_ms is None or m.created_ms < end_ms)]
        return transparency_counts(transparency_rows(rows), matches)

    async def public_months(self) -> list[str]:
        """The completed months with reports, newest first: the current month is not
        published until it ends (comparing it day by day would show single reports)."""
        current = month_of(now_ms())
        months = {month_of(r.created_ms) for r in await self._console.reports_between(
            None, month_range_ms(current, current)[0])}
        return sorted(months, reverse=True)

    async def public_transparency(self, first: str, last: str) -> dict[str, Any]:
        """Counts for whole completed months `first`..`last` (YYYY-MM), small ones hidden."""
        for month, name in ((first, "from"), (last, "to")):
            try:
                datetime.strptime(month, "%Y-%m")
            except ValueError:
                raise InvalidInput(f"'{name}' must be a month as YYYY-MM",
                                   code="bad_month") from None
        if first > last:
            first, last = last, first
        current = month_of(now_ms())
        start_ms, end_ms = month_range_ms(first, last)
        end_ms = min(end_ms, month_range_ms(current, current)[0])
        rows = await self._console.reports_between(start_ms, end_ms)
        return suppress_small_counts(transparency_counts(transparency_rows(rows)),
                                     self._settings.transparency_min_count)


def _day_ms(day: str, name: str) -> int:
    try:
        at = datetime.strptime(day, "%Y-%m-%d").replace(tzinfo=UTC)
    except ValueError:
        raise InvalidInput(f"'{name}' must be a date as YYYY-MM-DD", code="bad_date") from None
    return int(at.timestamp() * 1000)

