"""The moderation console in a real browser: Playwright driving Debian's Chromium
(/usr/bin/chromium, never a downloaded build) against a real `covey server`. A user reports
a franked message; a moderator logs in (security headers checked), opens the report,
escalates it after a confirmation step with a reason; screenshots of the pages are kept
under test-artifacts/."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from covey.moderation import ReportCategory
from tests.support.console import PASSWORD, create_console_user

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

pytestmark = [pytest.mark.timeout(180), pytest.mark.browser]


async def _reported_conversation(server: Any, tmp: Path) -> str:
    """alice writes to bob (generated text), bob reports the last message."""
    await asyncio.to_thread(tmp.mkdir)
    alice = await Client.register(server.url, "alice", tmp / "alice.db", "pass alice",
                                  scrypt_n=2**12)
    bob = await Client.register(server.url, "bob", tmp / "bob.db", "pass bob",
                                scrypt_n=2**12)
    try:
        await alice.wait_connected()
        await bob.wait_connected()
        last = ""
        for text in ("hi! which school do you go to?", "don't tell your parents we talk",
                     "let's continue on another app where nobody can see"):
            last = await alice.send_text("bob", text)
            await bob.next_message(15)
        receipt = await bob.report(last, ReportCategory.GROOMING_OR_ENTICEMENT,
                                   "he asked me to keep it secret")
        return receipt.report_id
    finally:
        await alice.close()
        await bob.close()


@pytest.mark.parametrize("covey_server", ["sqlite"], indirect=True)
async def test_moderator_escalates_a_report_in_chromium(covey_server: Any,
                                                        tmp_path: Path) -> None:
    from playwright.async_api import async_playwright, expect

    # ./scripts/test installs it; a missing browser is a failure, never a skip.
    assert CHROMIUM_INSTALLED, "Debian's chromium is missing at /usr/bin/chromium"
    report_id = await _reported_conversation(covey_server, tmp_path / "clients")
    await asyncio.to_thread(create_console_user, covey_server, "mod", "moderator")
    ARTIFACTS.mkdir(exist_ok=True)

    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 1000})
            answer = await page.goto(f"{covey_server.url}/console/")
            assert answer is not None
            headers = await answer.all_headers()
            assert "frame-ancestors 'none'" in headers["content-security-policy"]
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "no-referrer"
            assert headers["cache-control"] == "no-store"
            await expect(page).to_have_url(f"{covey_server.url}/console/login")
            await page.fill("#username", "mod")
            await page.fill("#password", PASSWORD)
            await page.click("button[type=submit]")
            await expect(page.locator("h1")).to_have_text("Report queue")

            await page.click(f"text={report_id}")
            await expect(page.locator("h1")).to_have_text(f"Report {report_id}")
            await expect(page.locator(".badge.verified")).to_have_count(3)
            await expect(page.locator("#status")).to_have_text("open")

            await page.click("text=Escalate to law enforcement")
            # A confirmation step with a reason, before anything happens.
            await expect(page.locator("h1")).to_have_text("Escalate to law enforcement?")
            await page.screenshot(path=str(ARTIFACTS / "console-confirm-escalation.png"),
                                  full_page=True)
            await page.click("#confirm")  # an empty reason: the browser refuses to submit
            await expect(page.locator("h1")).to_have_text("Escalate to law enforcement?")
            await page.fill("#reason", "grooming: secrecy and a move to another app")
            await page.click("#confirm")
            await expect(page.locator(".notice")).to_contain_text("Escalated")
            await expect(page.locator("#status")).to_have_text("escalated")
            await expect(page.locator("text=evidence-bundle.zip")).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "console-report-escalated.png"),
                                  full_page=True)

            await page.click("text=Transparency")
            await expect(page.locator("h1")).to_have_text("Transparency report")
            await expect(page.locator("img.chart").first).to_be_visible()
            await page.screenshot(path=str(ARTIFACTS / "console-transparency.png"),
                                  full_page=True)
        finally:
            await browser.close()
    sealed = covey_server.data_dir / "escalations" / report_id / "evidence-bundle.zip.sealed"
    assert sealed.is_file() and not sealed.read_bytes().startswith(b"PK")  # sealed at rest
