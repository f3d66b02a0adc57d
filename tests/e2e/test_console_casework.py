"""The console's casework in Debian's Chromium against a real `covey server`: a child
reports an adult (and blocks them); the moderator finds the report with the filters and
search, reads category names in words, the reported user's band and account facts, the
child's own lines as context (not as red "unattested"), assigns it, writes a note,
dismisses it and finds it among the handled reports; the transparency page takes a date
range, and the public transparency page needs no login and hides small counts. Every page
is screenshotted at 420 px and 1280 px under test-artifacts/."""

from __future__ import annotations

import asyncio
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from covey.moderation import ReportCategory
from tests.e2e.test_console import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, CHROMIUM_INSTALLED
from tests.support.console import PASSWORD, create_console_user
from tests.support.safety import People, band_issuer, people, trust_band_issuer

__all__ = ["band_issuer", "people", "trust_band_issuer"]
pytestmark = [pytest.mark.timeout(300), pytest.mark.browser]
WIDTHS = (420, 1280)


def _old_month() -> tuple[str, int]:
    """A month that is over (two months back) and a time in the middle of it."""
    first_of_this = datetime.now(UTC).replace(day=1, hour=0, minute=0, second=0,
                                              microsecond=0)
    old = (first_of_this - timedelta(days=40)).replace(day=15, hour=12)
    return old.strftime("%Y-%m"), int(old.timestamp() * 1000)


def _seed_old_reports(server: Any, at_ms: int) -> None:
    """Reports handled long ago, whose evidence is purged (as the purge task leaves them):
    12 grooming and 11 harassment by 16+ reporters, 3 spam by under-16 reporters."""
    from sqlalchemy import text

    from covey.server.storage.engine import create_engine

    rows = ([("grooming_or_enticement", "16+", 2)] * 12 + [("harassment", "16+", 0)] * 11
            + [("spam", "under-16", 1)] * 3)

    async def insert() -> None:
        engine = create_engine(server.database_url)
        try:
            async with engine.begin() as conn:
                for i, (category, band, priority) in enumerate(rows):
                    await conn.execute(text(
                        "INSERT INTO reports (report_id, fingerprint, reporter, "
                        "reported_user, category, priority, reporter_band, policy_mode, "
                        "status, verified_count, total_count, reported_verified, "
                        "created_ms, actioned_ms, preserve_until_ms, sealed_evidence) "
                        "VALUES (:id, :fp, 'oldreporter', 'oldsender', :category, :priority, "
                        ":band, 'safeguarded', 'dismissed', 1, 1, 1, :at, :at, :at, NULL)"),
                        {"id": "rep_" + secrets.token_hex(12), "fp": secrets.token_hex(32),
                         "category": category, "band": band, "priority": priority,
                         "at": at_ms + i})
        finally:
            await engine.dispose()

    asyncio.run(insert())


async def _child_reports_adult(people: People) -> str:
    """maxaa (16+) asks kimaa (under 16) for contact; they talk; kimaa reports and blocks."""
    kim, adult = await people.child("kimaa"), await people.adult("maxaa")
    await adult.request_contact("kimaa")
    for _ in range(50):
        incoming = (await kim.contact_requests()).incoming
        if incoming:
            break
        await asyncio.sleep(0.2)
    await kim.accept_contact(incoming[0].request_id)
    await adult.send_text("kimaa", "hi! which school do you go to?")
    await kim.next_message(15)
    await kim.send_text("maxaa", "why do you want to know?")
    await adult.next_message(15)
    last = await adult.send_text("kimaa", "don't tell your parents we talk, ok?")
    await kim.next_message(15)
    receipt = await kim.report(last, ReportCategory.GROOMING_OR_ENTICEMENT,
                               "he wants it secret", block=True)
    return receipt.report_id


async def _shots(page: Any, name: str) -> None:
    """Screenshots of the page at each width, and no sideways scrolling at any."""
    for width in WIDTHS:
        await page.set_viewport_size({"width": width, "height": 900})
        overflow = await page.evaluate(
            "document.documentElement.scrollWidth - document.documentElement.clientWidth")
        assert overflow <= 1, f"{name} scrolls sideways by {overflow}px at {width}px"
        await page.screenshot(path=str(ARTIFACTS / f"console-{name}-{width}.png"),
                              full_page=True)
    await page.set_viewport_size({"width": 1280, "height": 900})


@pytest.mark.parametrize("covey_server", [
    "sqlite", pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
async def test_moderator_casework_and_the_public_transparency_page(
        trust_band_issuer: None, covey_server: Any, people: People) -> None:
    from playwright.async_api import async_playwright, expect

    assert CHROMIUM_INSTALLED, "Debian's chromium is missing at /usr/bin/chromium"
    report_id = await _child_reports_adult(people)
    month, at_ms = _old_month()
    await asyncio.to_thread(_seed_old_reports, covey_server, at_ms)
    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    await asyncio.to_thread(create_console_user, covey_server, "ann", "moderator")
    ARTIFACTS.mkdir(exist_ok=True)
    url = covey_server.url

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            # The public page first, with no session at all.
            public = await browser.new_page(viewport={"width": 1280, "height": 900})
            shown = await public.goto(f"{url}/console/public/transparency")
            assert shown is not None and shown.status == 200
            headers = await shown.all_headers()
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert "set-cookie" not in headers  # no session, not even a login token
            await expect(public.locator("h1")).to_have_text("Transparency report")
            await expect(public.locator("#totals")).to_contain_text("26 reports")
            spam = public.locator("#by_category tr", has_text="Spam")
            await expect(spam).to_contain_text("hidden")
            # Harassment (11) is hidden too, or 26 - 12 - 11 would give the spam count.
            await expect(public.locator("#by_category tr", has_text="Harassment")
                         ).to_contain_text("hidden")
            await expect(public.locator("#by_category tr", has_text="Grooming or enticement")
                         ).to_contain_text("12")
            await expect(public.locator("#by_reporter_band tr", has_text="under 16")
                         ).to_contain_text("hidden")
            # This month's report (still open) is not published before the month ends.
            await expect(public.locator("#by_month")).not_to_contain_text(
                datetime.now(UTC).strftime("%Y-%m"))
            body = await public.locator("body").inner_text()
            assert "kimaa" not in body and "maxaa" not in body and "Log out" not in body
            await _shots(public, "public-transparency")
            answer = await public.goto(f"{url}/console/public/transparency.json")
            assert answer is not None and answer.status == 200
            counts = (await answer.json())["counts"]
            assert counts["by_category"]["spam"] is None
            assert counts["by_category"]["grooming_or_enticement"] == 12

            page = await browser.new_page(viewport={"width": 1280, "height": 900})
            await page.goto(f"{url}/console/login")
            await page.fill("#username", "mod")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Report queue")
            row = page.locator("#reports tbody tr", has_text=report_id)
            await expect(row.locator(".category")).to_have_text("Grooming or enticement")
            await expect(row).to_contain_text("under 16")
            await _shots(page, "queue")

            # Filters: spam finds nothing open; the child's category and band find it;
            # search by the reported user finds it.
            await page.select_option("select[name=category]", "spam")
            await page.click(".filters button[type=submit]")
            await expect(page.locator("text=No report matches these filters.")).to_be_visible()
            await page.select_option("select[name=category]", "grooming_or_enticement")
            await page.select_option("select[name=band]", "under-16")
            await page.select_option("select[name=priority]", "3")
            await page.click(".filters button[type=submit]")
            await expect(page.locator("#reports tbody tr")).to_have_count(1)
            await page.goto(f"{url}/console/?q=MAXAA")
            await expect(page.locator("#reports tbody tr")).to_have_count(1)
            await page.goto(f"{url}/console/?q=nobody")
            await expect(page.locator("#reports tbody tr")).to_have_count(0)

            await page.goto(f"{url}/console/reports/{report_id}")
            await expect(page.locator("#category")).to_have_text("Grooming or enticement")
            await expect(page.locator("#reported-band")).to_have_text("16 or over")
            await expect(page.locator("#account-age")).to_have_text("created today")
            await expect(page.locator("#reports-against")).to_have_text("1")
            await expect(page.locator("#blocks-by-children")).to_contain_text("1")
            # The child's own line: shown, as context, never as a red "unattested".
            own = page.locator(".msg.own")
            await expect(own).to_have_count(1)
            await expect(own).to_contain_text("why do you want to know?")
            await expect(own.locator(".badge")).to_have_text("reporter's own message")
            await expect(page.locator(".badge.unverified")).to_have_count(0)
            assert "unattested" not in await page.locator("#evidence").inner_text()
            await expect(page.locator(".badge.verified")).to_have_count(2)

            await page.click("#assign-me")
            await expect(page.locator(".notice")).to_have_text("Report assigned.")
            await expect(page.locator("#assignee")).to_contain_text("mod (you)")
            await page.fill("#note", "Asked the child's school? No: contact the child "
                                     "only through the in-app notice.")
            await page.click("#add-note")
            await expect(page.locator(".notice")).to_have_text("Note added.")
            await expect(page.locator(".note")).to_contain_text("in-app notice")
            await _shots(page, "report")
            await page.select_option("#moderator", "ann")
            await page.click("#assignment form.inline button[type=submit] >> nth=0")
            await expect(page.locator("#assignee")).to_contain_text("ann")
            await page.goto(f"{url}/console/?assignee=ann")
            await expect(page.locator("#reports tbody tr")).to_have_count(1)

            await page.goto(f"{url}/console/reports/{report_id}")
            await page.click("text=Dismiss")
            await expect(page.locator("#status")).to_have_text("dismissed")
            await page.goto(f"{url}/console/")
            await expect(page.locator(f"text={report_id}")).to_have_count(0)
            await page.click("nav.tabs >> text=Handled")
            await expect(page.locator("h1")).to_have_text("Handled reports")
            await expect(page.locator("#reports tbody tr", has_text=report_id)
                         ).to_contain_text("dismissed")
            await page.select_option("select[name=status]", "warned")
            await page.click(".filters button[type=submit]")
            await expect(page.locator(f"text={report_id}")).to_have_count(0)
            await page.goto(f"{url}/console/?view=handled")
            await _shots(page, "handled")

            # The moderators' transparency page: exact counts, over a date range.
            first = f"{month}-01"
            await page.goto(f"{url}/console/transparency?from={first}&to={first[:8]}28")
            await expect(page.locator("#totals")).to_contain_text("26 reports")
            await expect(page.locator("#by_reporter_band tr", has_text="under 16")
                         ).to_contain_text("3")
            await page.goto(f"{url}/console/transparency")
            await expect(page.locator("#totals")).to_contain_text("27 reports")
            await expect(page.locator("img.chart")).to_have_count(5)
            width = await page.locator("#by_month img.chart").evaluate("e => e.clientWidth")
            main = await page.locator("main").evaluate("e => e.clientWidth")
            assert width >= main * 0.9, (width, main)
            await _shots(page, "transparency")
            await page.goto(f"{url}/console/transparency?from=not-a-date")
            await expect(page.locator("p.error")).to_contain_text("YYYY-MM-DD")
        finally:
            await browser.close()
    audit = await asyncio.to_thread(covey_server.rows,
                                    "SELECT action, detail FROM audit_log WHERE action IN "
                                    "('assign', 'note') ORDER BY id")
    assert [a for a, _ in audit] == ["assign", "note", "assign"]
    assert "in-app notice" not in " ".join(d for _, d in audit)  # notes are not in the log
