"""The admin dashboard in a real Chromium page (Debian's chromium driven by Playwright): an
admin logs in, follows the nav link, picks the period, sees the figures of the known
scenario and every chart loaded as an image, under the console's Content-Security-Policy
(no page errors). Screenshots land in test-artifacts/analytics/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.analytics_scenario import build
from tests.conftest import ROOT, fresh_database
from tests.live import LiveServer
from tests.test_analytics_console import NoSteps
from tests.test_handoff import PASSWORD

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = pytest.mark.slow

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = ROOT / "test-artifacts" / "analytics"
TIMEOUT_MS = 20_000


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    from starlette.applications import Starlette

    from bot.handoff.agents import AgentAccounts
    from bot.handoff.desk import HandoffDesk
    from bot.handoff.outbox import Outbox, Relay
    from bot.store import migrate
    from bot.store.db import Database
    from bot.web.console.app import Console

    with fresh_database("sqlite", tmp_path_factory.mktemp("analytics-browser")) as url:
        migrate.upgrade(url)
        db = Database(url)
        build(db)
        accounts = AgentAccounts(db)
        accounts.add("Root", PASSWORD, "admin")
        relay = Relay()
        desk = HandoffDesk(db, Outbox(db, relay), notices=lambda r, c, **v: r)
        console = Console(steps=NoSteps(), desk=desk, accounts=accounts, relay=relay)
        try:
            with LiveServer(Starlette(routes=console.routes())) as live:
                yield live
        finally:
            db.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not Path(CHROMIUM).exists():
        why = "needs Debian's chromium (apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        yield b
        b.close()


def test_an_admin_reads_the_dashboard_in_a_browser(browser, site: LiveServer) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_api.expect
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    failed: list[str] = []  # responses that failed, but the browser's own favicon request
    page.on(
        "response",
        lambda r: (
            failed.append(f"{r.status} {r.url}")
            if r.status >= 400 and not r.url.endswith("/favicon.ico")
            else None
        ),
    )

    page.goto(site.url + "/console/admin/dashboard")
    page.get_by_label("Name").fill("Root")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("h1")).to_have_text("Dashboard")

    page.get_by_role("link", name="Dashboard").click()
    page.get_by_label("From").fill("2026-11-02")
    page.get_by_label("To").fill("2026-11-04")
    page.get_by_role("button", name="Show").click()
    expect(page.locator('[data-figure="conversations"] .value')).to_have_text("9")
    expect(page.locator('[data-figure="containment"] .value')).to_have_text("50.0%")
    expect(page.locator('[data-figure="fallback_rate"] .value')).to_have_text("18.8%")
    expect(page.locator('[data-figure="csat"] .value')).to_have_text("40.0%")
    expect(page.locator("#misunderstood tbody tr").first).to_contain_text("cancel_order")

    images = page.locator(".charts img")
    expect(images).to_have_count(5)
    for i in range(5):
        image = images.nth(i)
        image.scroll_into_view_if_needed()
        expect(image).to_be_visible()
        page.wait_for_function(
            "img => img.complete && img.naturalWidth > 0", arg=image.element_handle()
        )
    assert (
        page.locator("#csv")
        .get_attribute("href", timeout=TIMEOUT_MS)
        .startswith(  # type: ignore[union-attr]
            "/console/admin/dashboard.csv?since=2026-11-02"
        )
    )
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
    assert errors == [] and failed == []
    context.close()
