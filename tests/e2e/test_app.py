"""`covey app` in a real browser: Playwright driving Debian's Chromium against real
`covey app` processes (each a device client with its own encrypted store) and one real
`covey server` per module. Two people create accounts in the page, find each other,
exchange messages and an image (the preview is seen by the other), report from the page
(the report shows verified in the moderation console), block and report in one tap; a
child sees the band of who asks to be its contact. axe-core checks every page; screenshots
at 390 px and 1280 px go to test-artifacts/."""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections.abc import AsyncIterator, Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from covey.client import Client
from tests.support.age import FAST_SCRYPT, IssuerService, server_env, write_registry
from tests.support.app import AppProcess, axe_source
from tests.support.console import PASSWORD, create_console_user
from tests.support.safety import BandIssuer
from tests.support.server import SHARED_IP_LIMITS, CoveyServer, sqlite_url

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_INSTALLED = CHROMIUM.exists()
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
PASSPHRASE = "a long test passphrase"

pytestmark = [pytest.mark.timeout(300), pytest.mark.browser]


@pytest.fixture(scope="module")
def issuer(tmp_path_factory: pytest.TempPathFactory) -> BandIssuer:
    return BandIssuer(tmp_path_factory.mktemp("app-issuer"))


@pytest.fixture(scope="module")
def issuer_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[IssuerService]:
    """A real `covey issuer serve` whose operator approves by hand (the app's Age page)."""
    service = IssuerService(tmp_path_factory.mktemp("app-issuer-service")).start()
    try:
        yield service
    finally:
        service.stop()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, issuer: BandIssuer,
           issuer_service: IssuerService) -> Iterator[Any]:
    """One relay for the module, trusting both test issuers; tests use their own handles."""
    root = tmp_path_factory.mktemp("app-server")
    registry = root / "registry.json"
    write_registry(registry, [issuer.issuer.publish(), issuer_service.entry()])
    # One child's block is enough to flag an adult (the safety notice test).
    env = {**SHARED_IP_LIMITS, **server_env(registry), "COVEY_CONSOLE_ALLOW_HTTP": "true",
           "COVEY_MINOR_BLOCK_REPORT_THRESHOLD": "1"}
    relay = CoveyServer(sqlite_url(root), root / "data", env=env)
    relay.start()
    try:
        yield relay
    finally:
        relay.stop()


@pytest.fixture(scope="module")
def axe() -> str:
    return axe_source()


@pytest.fixture
async def browser() -> AsyncIterator[Any]:
    from playwright.async_api import async_playwright

    assert CHROMIUM_INSTALLED, "Debian's chromium is missing at /usr/bin/chromium"
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=str(CHROMIUM),
                                                    headless=True, args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            await launched.close()


@pytest.fixture
def apps(tmp_path: Path) -> Iterator[list[AppProcess]]:
    started: list[AppProcess] = []
    yield started
    for app in started:
        app.stop()


class Person:
    """One app instance in its own browser context (its own cookie jar)."""

    def __init__(self, app: AppProcess, page: Any, axe: str) -> None:
        self.app = app
        self.page = page
        self.axe = axe
        self.csp_errors: list[str] = []
        page.on("console", lambda m: self.csp_errors.append(m.text)
                if "Content Security Policy" in m.text else None)

    async def check(self, name: str) -> None:
        """Screenshots at 390 and 1280 px; no serious or critical axe violation; no CSP
        violation (nothing loaded from elsewhere, no inline script)."""
        ARTIFACTS.mkdir(exist_ok=True)
        for width, height in ((390, 844), (1280, 900)):
            await self.page.set_viewport_size({"width": width, "height": height})
            await self.page.screenshot(path=str(ARTIFACTS / f"app-{name}-{width}.png"),
                                       full_page=True)
        await self.page.evaluate(self.axe)
        for scheme in ("light", "dark"):  # both themes meet contrast (WCAG AA)
            await self.page.emulate_media(color_scheme=scheme)
            if scheme == "dark":
                await self.page.set_viewport_size({"width": 390, "height": 844})
                await self.page.screenshot(path=str(ARTIFACTS / f"app-{name}-390-dark.png"),
                                           full_page=True)
            result = await self.page.evaluate(
                "axe.run(document, {resultTypes: ['violations']})")
            bad = [{"id": v["id"], "impact": v["impact"],
                    "nodes": [n["html"][:200] for n in v["nodes"][:3]]}
                   for v in result["violations"] if v["impact"] in ("serious", "critical")]
            assert not bad, f"axe on {name} ({scheme}): {json.dumps(bad, indent=1)}"
        await self.page.emulate_media(color_scheme="light")
        await self.page.set_viewport_size({"width": 1280, "height": 900})
        assert not self.csp_errors, self.csp_errors


async def _open(browser: Any, app: AppProcess, axe: str) -> Person:
    context = await browser.new_context(viewport={"width": 1280, "height": 900})
    page = await context.new_page()
    await page.goto(app.url)
    return Person(app, page, axe)


async def _nav(person: Person, name: str) -> None:
    await person.page.get_by_role("navigation").get_by_role("link", name=name).click()


async def _create_account(person: Person, handle: str, *, check: bool = False) -> None:
    from playwright.async_api import expect

    page = person.page
    await expect(page.get_by_role("heading", name="Create account")).to_be_visible()
    await page.get_by_label("Handle", exact=True).press_sequentially("Al")
    await expect(page.locator("#handle-check")).to_contain_text("lowercase")
    await page.get_by_label("Handle", exact=True).fill("")
    await page.get_by_label("Handle", exact=True).press_sequentially(handle)
    await expect(page.locator("#handle-check")).to_contain_text("is a valid handle")
    await page.get_by_label("Passphrase", exact=True).fill(PASSPHRASE)
    await page.get_by_label("Passphrase again", exact=True).fill(PASSPHRASE)
    if check:
        await person.check("create-account")
    await page.get_by_role("button", name="Create account").click()
    await expect(page.get_by_role("heading", name="Chats")).to_be_visible(timeout=60_000)


def _png() -> bytes:
    """A generated picture: coloured shapes, no real content."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (160, 120), (30, 90, 200))
    draw = ImageDraw.Draw(image)
    draw.ellipse((20, 20, 100, 100), fill=(250, 200, 40))
    draw.rectangle((110, 30, 150, 90), fill=(220, 60, 60))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


async def test_two_people_chat_send_an_image_and_report(
        server: Any, browser: Any, apps: list[AppProcess], tmp_path: Path, axe: str) -> None:
    from playwright.async_api import expect

    apps += [AppProcess(server.url, tmp_path / "ana.db"),
             AppProcess(server.url, tmp_path / "ben.db")]
    ana = await _open(browser, apps[0], axe)
    ben = await _open(browser, apps[1], axe)
    await _create_account(ana, "ana", check=True)
    await _create_account(ben, "ben")
    await ana.check("chats-empty")

    # Ana finds Ben and writes to him.
    await ana.page.get_by_role("navigation").get_by_role("link", name="Contacts").click()
    await ana.page.get_by_label("Search", exact=True).fill("ben")
    await ana.page.get_by_role("button", name="Find").click()
    await ana.page.get_by_role("link", name="Message ben").click()
    banner = ana.page.get_by_role("status").filter(has_text="safeguarded")
    await expect(banner).to_be_visible()
    await ana.page.get_by_text("Why?").click()
    await expect(banner).to_contain_text("unverified")
    await ana.page.get_by_label("Message", exact=True).fill("hi ben! want to plan the picnic?")
    await ana.page.get_by_role("button", name="Send").click()
    await expect(ana.page.locator(".message.mine .mark").last).to_have_text("✓ Sent")

    # Ben's chat list updates live: a link named "ana", the last message, one unread.
    ben_row = ben.page.locator(".conversations li").filter(
        has=ben.page.get_by_role("link", name="ana", exact=True))
    await expect(ben_row).to_contain_text("want to plan the picnic?", timeout=20_000)
    await expect(ben_row.locator(".unread")).to_have_text("1 unread")
    await expect(ben_row).to_contain_text("safeguarded")
    await ben.check("chats")
    await ben.page.get_by_role("link", name="ana", exact=True).click()
    await expect(ben.page.get_by_text("hi ben! want to plan the picnic?")).to_be_visible()
    await ben.page.get_by_label("Message", exact=True).fill("yes, Saturday at the park")
    await ben.page.keyboard.press("Enter")  # keyboard only: Enter sends
    await expect(ana.page.get_by_text("yes, Saturday at the park")).to_be_visible(
        timeout=20_000)

    # Ana sends a picture; Ben sees the preview, its name, size and a download link.
    picture = tmp_path / "picnic-map.png"
    picture.write_bytes(_png())
    async with ana.page.expect_file_chooser() as chooser:
        await ana.page.get_by_role("button", name="Attach").click()
    await (await chooser.value).set_files(str(picture))
    await expect(ana.page.locator("#attach-status")).to_have_text("Sent picnic-map.png.")
    preview = ben.page.get_by_role("img", name="Image picnic-map.png")
    await expect(preview).to_be_visible(timeout=20_000)
    assert await preview.evaluate("img => img.naturalWidth") == 160
    await expect(ben.page.locator(".file-name").last).to_have_text("picnic-map.png")
    await expect(ben.page.locator(".file-size").last).to_contain_text("B")
    download = ben.page.get_by_role("link", name="Download picnic-map.png")
    got = await ben.page.request.get(ben.app.origin + str(await download.get_attribute("href")))
    assert got.headers["content-disposition"].startswith("attachment")
    assert await got.body() == picture.read_bytes()  # decrypted, checked, the same bytes
    await ana.check("conversation")
    await ben.check("conversation-received")

    # Ana writes something worth reporting; Ben reports it, the context shown first.
    await ana.page.get_by_label("Message", exact=True).fill(
        "don't tell your parents about our chats")
    await ana.page.get_by_role("button", name="Send").click()
    reported = ben.page.locator(".message.theirs").filter(has_text="don't tell your parents")
    await expect(reported).to_be_visible(timeout=20_000)
    await reported.get_by_role("button", name="Report").click()
    await expect(ben.page.get_by_role("heading", name="What will be sent")).to_be_visible()
    await expect(ben.page.locator(".context .message")).to_have_count(4)
    await expect(ben.page.locator(".context .reported")).to_contain_text("don't tell")
    await ben.page.get_by_role("button", name="Submit report").click()
    await expect(ben.page.locator("#category:invalid")).to_have_count(1)  # required
    await ben.page.get_by_label("Category", exact=True).select_option(
        "grooming_or_enticement")
    await ben.page.get_by_label("Comment (optional)").fill("asked me to keep it secret")
    await ben.check("report")
    await ben.page.get_by_role("button", name="Submit report").click()
    await expect(ben.page.locator(".notice")).to_contain_text("Report sent")

    # The moderator sees it verified in the console.
    await asyncio.to_thread(create_console_user, server, "mod", "moderator")
    moderator = await (await browser.new_context()).new_page()
    await moderator.goto(f"{server.url}/console/login")
    await moderator.fill("#username", "mod")
    await moderator.fill("#password", PASSWORD)
    await moderator.click("button[type=submit]")
    await expect(moderator.locator("h1")).to_have_text("Report queue")
    await moderator.locator("a[href*='/console/reports/']").first.click()
    await expect(moderator.get_by_text("don't tell your parents about our chats").first
                 ).to_be_visible()
    assert await moderator.locator(".badge.verified").count() >= 1
    await moderator.screenshot(path=str(ARTIFACTS / "app-report-in-console.png"),
                               full_page=True)


async def test_block_and_report_in_one_tap(server: Any, browser: Any,
                                           apps: list[AppProcess], tmp_path: Path,
                                           axe: str) -> None:
    from playwright.async_api import expect

    pest = await Client.register(server.url, "pest", tmp_path / "pest.db", PASSPHRASE,
                                 scrypt_n=FAST_SCRYPT)
    try:
        apps.append(AppProcess(server.url, tmp_path / "cleo.db"))
        cleo = await _open(browser, apps[0], axe)
        await _create_account(cleo, "cleo")
        await pest.wait_connected()
        await pest.send_text("cleo", "you're ugly and everyone knows it")
        await cleo.page.get_by_role("link", name="pest", exact=True).click(timeout=20_000)
        await expect(cleo.page.get_by_text("everyone knows it")).to_be_visible()
        await cleo.page.get_by_role("button", name="Block and report").click()
        await expect(cleo.page.locator(".notice")).to_contain_text("Blocked and reported")
        await cleo.page.get_by_role("navigation").get_by_role("link", name="Contacts").click()
        await expect(cleo.page.get_by_role("heading", name="Blocked")).to_be_visible()
        await cleo.check("contacts-blocked")
        rows = await asyncio.to_thread(
            server.rows, "SELECT reported_user FROM reports")
        assert ("pest",) in rows
        blocks = await asyncio.to_thread(
            server.rows, "SELECT blocker, blocked FROM blocks")
        assert ("cleo", "pest") in blocks
    finally:
        await pest.close()


async def test_a_child_sees_the_band_of_who_asks(server: Any, browser: Any,
                                                 apps: list[AppProcess], tmp_path: Path,
                                                 issuer: BandIssuer, axe: str) -> None:
    from playwright.async_api import expect

    # The child's account was made on this device earlier (with its age credential);
    # the app opens its store with $COVEY_PASSPHRASE.
    store = tmp_path / "kid.db"
    issuer.place_tails(store)
    kid = await Client.register(server.url, "kiddo", store, PASSPHRASE, scrypt_n=FAST_SCRYPT,
                                wallet=issuer.wallet(12))
    await kid.close()
    adult_store = tmp_path / "coach.db"
    issuer.place_tails(adult_store)
    coach = await Client.register(server.url, "coach", adult_store, PASSPHRASE,
                                  scrypt_n=FAST_SCRYPT, wallet=issuer.wallet(35))
    parent_store = tmp_path / "mum.db"
    issuer.place_tails(parent_store)
    parent = await Client.register(server.url, "mumma", parent_store, PASSPHRASE,
                                   scrypt_n=FAST_SCRYPT, wallet=issuer.wallet(41))
    try:
        apps.append(AppProcess(server.url, store, passphrase=PASSPHRASE))
        child = await _open(browser, apps[0], axe)
        await expect(child.page.get_by_role("heading", name="Chats")).to_be_visible()

        # The child asks a parent to be its guardian; the parent accepts.
        await _nav(child, "Safety")
        await child.page.get_by_label("Ask someone to be your guardian (their handle)"
                                      ).fill("mumma")
        await child.page.get_by_role("button", name="Send").click()
        proposal = (await parent.guardian_links())[0]
        await parent.accept_guardian_link(proposal.link_id)
        await child.page.reload()
        await expect(child.page.locator("tbody tr").first).to_contain_text("active")
        await _nav(child, "Chats")

        await coach.request_contact("kiddo")
        await expect(child.page.get_by_text("wants to message you")).to_be_visible(
            timeout=20_000)
        await child.page.get_by_role("navigation").get_by_role("link", name="Contacts").click()
        request = child.page.locator(".requests li").filter(has_text="coach")
        await expect(request.locator(".band")).to_have_text("16 or over")
        await child.check("contact-request")
        await request.get_by_role("button", name="Accept").click()
        await expect(child.page.locator(".notice")).to_contain_text("accepted")
        await expect(child.page.get_by_role("link", name="coach")).to_be_visible()

        # Another child blocks the coach: the first child now sees a safety notice, in
        # plain words, with one-tap block and report, in the conversation.
        other_store = tmp_path / "kid2.db"
        issuer.place_tails(other_store)
        other = await Client.register(server.url, "kidtwo", other_store, PASSPHRASE,
                                      scrypt_n=FAST_SCRYPT, wallet=issuer.wallet(13))
        await other.block("coach")
        await other.close()
        await coach.send_text("kiddo", "well done at practice today")
        await child.page.get_by_role("link", name="coach").click()
        notice = child.page.get_by_role("note", name="Safety notice")
        await expect(notice).to_contain_text("Several young people have blocked or reported")
        banner = child.page.get_by_role("status").filter(has_text="safeguarded")
        await expect(banner).to_be_visible()
        await expect(child.page.get_by_text("well done at practice today")).to_be_visible(
            timeout=20_000)
        await child.check("conversation-safety-notice")
        await notice.get_by_role("button", name="Block and report coach").click()
        await expect(child.page.locator(".notice")).to_contain_text("Blocked and reported")

        # The guardian is alerted (kinds and times, never content); the child sees the
        # alerts sent about it on its Safety page.
        kinds = {a.kind for a in await parent.guardian_alerts()}
        assert {"contact_accepted", "report_filed"} <= kinds
        await _nav(child, "Safety")
        alerts = child.page.locator("section").filter(
            has=child.page.get_by_role("heading", name="Alerts"))
        await expect(alerts).to_contain_text("kiddo accepted a new contact: coach")
        await expect(alerts).to_contain_text("kiddo reported someone")
        assert "well done at practice" not in await alerts.inner_text()
        await child.check("safety-alerts")
    finally:
        await coach.close()
        await parent.close()


async def test_groups_devices_age_and_safety(server: Any, browser: Any, apps: list[AppProcess],
                                            tmp_path: Path, issuer_service: IssuerService,
                                            axe: str) -> None:
    from playwright.async_api import expect

    apps += [AppProcess(server.url, tmp_path / "dan.db"),
             AppProcess(server.url, tmp_path / "eve.db")]
    dan = await _open(browser, apps[0], axe)
    eve = await _open(browser, apps[1], axe)
    await _create_account(dan, "dan")
    await _create_account(eve, "eve")

    # A group: named, with members; the other member sees it by its name.
    await _nav(dan, "Groups")
    await dan.page.get_by_label("Group name").fill("Picnic club")
    await dan.page.get_by_label("Members", exact=True).fill("eve")
    await dan.check("groups")
    await dan.page.get_by_role("button", name="Create group").click()
    await expect(dan.page.get_by_role("heading", name="Picnic club")).to_be_visible()
    # eve is unverified: invited, not added; she joins by accepting (issue 9, item 15).
    await expect(eve.page.get_by_text("dan invites you to Picnic club")).to_be_visible(
        timeout=20_000)
    await _nav(eve, "Groups")
    await eve.check("group-invitation")
    await eve.page.get_by_role("button", name="Accept the invitation to Picnic club").click()
    await expect(eve.page.locator(".notice")).to_contain_text("You joined the group")
    await dan.page.reload()
    await dan.page.get_by_label("Message", exact=True).fill("welcome to the club!")
    await dan.page.get_by_role("button", name="Send").click()
    await _nav(eve, "Chats")
    await eve.page.get_by_role("link", name="Picnic club", exact=True).click(timeout=20_000)
    await expect(eve.page.get_by_text("welcome to the club!")).to_be_visible(timeout=20_000)
    await dan.page.get_by_role("link", name="Members (2)").click()
    await expect(dan.page.locator(".contacts li")).to_have_count(2)
    await dan.page.get_by_role("button", name="Create invite code").click()
    await expect(dan.page.locator(".code")).to_have_text(re.compile(r"^[A-Za-z0-9_-]{43}$"))
    await dan.check("group-members")
    await eve.page.get_by_role("link", name="Members (2)").click()
    await eve.page.get_by_role("button", name="Leave group").click()
    await expect(eve.page.locator(".notice")).to_contain_text("You left the group")

    # A second device: the first makes a code (and a QR code), the second types it.
    await _nav(dan, "Devices")
    await dan.page.get_by_role("button", name="Link a new device").click()
    code = (await dan.page.locator("#link-code-value").text_content() or "").strip()
    await expect(dan.page.get_by_role("img", name="QR code of the link code")).to_be_visible()
    await dan.check("devices-link")
    apps.append(AppProcess(server.url, tmp_path / "dan-laptop.db"))
    laptop = await _open(browser, apps[2], axe)
    await laptop.page.get_by_text("I already have an account on another device").click()
    await laptop.page.get_by_label("Your handle").fill("dan")
    await laptop.page.get_by_label("Link code").fill(code)
    await laptop.page.get_by_label("New passphrase for this device").fill(PASSPHRASE)
    await laptop.page.get_by_role("button", name="Link this device").click()
    await expect(laptop.page.get_by_role("heading", name="Chats")).to_be_visible(
        timeout=60_000)
    await _nav(dan, "Devices")
    await expect(dan.page.locator(".contacts li")).to_have_count(2)
    # The first device says so in the conversations (a device you did not add means
    # someone else can read along).
    await _nav(dan, "Chats")
    await dan.page.get_by_role("link", name="Picnic club", exact=True).click()
    await expect(dan.page.get_by_text("You added a new device")).to_be_visible(
        timeout=20_000)
    await _nav(dan, "Devices")
    # The laptop is lost: the phone unlinks it.
    await dan.page.get_by_role("button", name=re.compile(r"^Unlink")).click()
    await expect(dan.page.locator(".notice")).to_contain_text("Device unlinked")
    await expect(dan.page.locator(".contacts li")).to_have_count(1)

    # Age: ask the issuer, see it pending, the operator approves, prove the band.
    await _nav(dan, "Age")
    await expect(dan.page.locator("#band-title")).to_contain_text("unverified")
    await dan.page.get_by_label("Issuer address").fill(issuer_service.url)
    await dan.page.get_by_label("Evidence the issuer asks for").fill("student_id=S-1234")
    await dan.page.get_by_role("button", name="Request credential").click()
    await expect(dan.page.get_by_text("pending", exact=True)).to_be_visible()
    await dan.check("age-pending")
    ticket = (await asyncio.to_thread(issuer_service.operator().pending))[0].ticket_id
    await asyncio.to_thread(issuer_service.operator().approve, ticket, date(1990, 3, 4))
    await dan.page.get_by_role("link", name="Check again").click()
    await expect(dan.page.get_by_text("Approved: your credential")).to_be_visible()
    await dan.page.get_by_role("button", name="Prove my age").click()
    await expect(dan.page.locator(".notice")).to_contain_text("proven")
    await expect(dan.page.locator("#band-title")).to_contain_text("16 or over")
    await dan.check("age-proven")

    await _nav(dan, "Safety")
    await expect(dan.page.get_by_role("heading", name="Guardians")).to_be_visible()
    await dan.check("safety")
