"""The console's admin dashboard over real HTTP on 127.0.0.1, on SQLite and PostgreSQL: an
admin sees the figures of the known scenario (``tests/analytics_scenario.py``), its charts
are PNG images, the CSV export parses and says what the report says; agents are refused
(403) and nobody logged in gets past the login; a period that names no window is a 400.
The console is served alone (its routes on Starlette) over the store, as ``app.py`` mounts
them."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette

from bot.analytics import build_report
from bot.handoff.agents import AgentAccounts
from bot.handoff.desk import HandoffDesk
from bot.handoff.outbox import Outbox, Relay
from bot.store import migrate
from bot.store.db import Database
from bot.web.console.app import Console
from tests.analytics_scenario import SHOPPER_TEXTS, SINCE, UNTIL, build
from tests.live import LiveServer
from tests.test_handoff import PASSWORD, Agent

WINDOW = {"since": "2026-11-02", "until": "2026-11-04"}
PNG = b"\x89PNG\r\n\x1a\n"


class NoSteps:
    """The dashboard never runs a conversation step; the queue pages are not used here."""

    async def run_external(self, conversation_id: str, step: Any, *, guard: Any = None) -> Any:
        raise RuntimeError("not used by the dashboard")


@pytest.fixture(scope="module")
def console(module_database_url: str) -> Iterator[tuple[LiveServer, Database]]:
    migrate.upgrade(module_database_url)
    db = Database(module_database_url)
    build(db)
    accounts = AgentAccounts(db)
    accounts.add("ana", PASSWORD, "agent")
    accounts.add("root", PASSWORD, "admin")
    relay = Relay()
    desk = HandoffDesk(db, Outbox(db, relay), notices=lambda response, channel, **v: response)
    app = Starlette(
        routes=Console(steps=NoSteps(), desk=desk, accounts=accounts, relay=relay).routes()
    )
    try:
        with LiveServer(app) as live:
            yield live, db
    finally:
        db.dispose()


def test_an_admin_sees_the_figures_and_charts_of_the_period(
    console: tuple[LiveServer, Database],
) -> None:
    live, _ = console
    root = Agent(live.url, "root")
    queue = root.http.get("/console")
    assert 'href="/console/admin/dashboard"' in queue.text  # the nav link, for admins
    page = root.http.get("/console/admin/dashboard", params=WINDOW)
    assert page.status_code == 200, page.text
    html = page.text
    assert "default-src 'none'" in page.headers["content-security-policy"]
    for figure, value in (
        ("conversations", "9"),
        ("containment", "50.0%"),
        ("handoff_rate", "50.0%"),
        ("fallback_rate", "18.8%"),
        ("csat", "40.0%"),
        ("tickets", "4"),
    ):
        block = html.split(f'data-figure="{figure}"><span class="value">', 1)[1]
        assert block.startswith(value + "</span>"), figure
    assert "containment (4 of 8)" in html
    assert "handoff rate (4 handed off of 8 engaged)" in html
    assert "fallback rate (3 of 16 messages)" in html
    assert "resolved, median 24.0 h, p90 4.4 days" in html
    assert "<td>2026-11-03</td><td>3</td><td>1</td><td>1</td><td>5</td>" in html  # web tg rest
    assert (
        "<td>cancel_order</td><td>2</td><td>2</td><td>2</td><td>2</td><td>1</td><td>0</td>" in html
    )
    assert "<td>replaced: guard</td><td>1</td>" in html
    for text in SHOPPER_TEXTS:
        assert text not in html

    charts = [part.split('"', 1)[0].replace("&amp;", "&") for part in html.split('<img src="')[1:]]
    assert len(charts) == 5
    for url in charts:
        r = root.http.get(url)
        assert r.status_code == 200 and r.headers["content-type"] == "image/png", url
        assert r.content.startswith(PNG) and len(r.content) > 2000


def test_the_csv_export_parses_and_matches_the_report(console: tuple[LiveServer, Database]) -> None:
    live, db = console
    root = Agent(live.url, "root")
    r = root.http.get("/console/admin/dashboard.csv", params=WINDOW)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    assert 'filename="clerk-report-20261102-20261104.csv"' in r.headers["content-disposition"]
    rows = list(csv.reader(io.StringIO(r.text)))
    assert rows[0] == ["section", "name", "value"]
    with db.session() as s:
        report = build_report(s, SINCE, UNTIL)
    assert [tuple(row) for row in rows[1:]] == report.rows()
    figures = {(section, name): value for section, name, value in rows[1:]}
    assert figures[("conversations", "total")] == "9"
    assert figures[("conversations", "containment_pct")] == "50.00"
    assert figures[("conversations_by_day", "2026-11-03 web")] == "3"
    assert figures[("handoffs_by_trigger", "misses")] == "1"
    assert figures[("tickets", "median_resolution_s")] == "86400.00"
    assert figures[("csat", "csat_pct")] == "40.00"
    for text in SHOPPER_TEXTS:
        assert text not in r.text


def test_agents_and_strangers_are_refused(console: tuple[LiveServer, Database]) -> None:
    live, _ = console
    ana = Agent(live.url, "ana")
    assert 'href="/console/admin/dashboard"' not in ana.http.get("/console").text
    page = ana.http.get("/console/admin/dashboard", params=WINDOW)
    assert page.status_code == 403 and "Only admins can see the dashboard." in page.text
    assert ana.http.get("/console/admin/dashboard.csv", params=WINDOW).status_code == 403
    chart = ana.http.get("/console/admin/dashboard/chart/rates.png", params=WINDOW)
    assert chart.status_code == 403 and not chart.content.startswith(PNG)
    stranger = httpx.Client(base_url=live.url, follow_redirects=False, timeout=10)
    for path in (
        "/console/admin/dashboard",
        "/console/admin/dashboard.csv",
        "/console/admin/dashboard/chart/rates.png",
    ):
        r = stranger.get(path, params=WINDOW)
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login"), path


def test_a_period_that_names_no_window_is_refused_clearly(
    console: tuple[LiveServer, Database],
) -> None:
    live, _ = console
    root = Agent(live.url, "root")
    page = root.http.get("/console/admin/dashboard", params={"since": "last tuesday"})
    assert page.status_code == 400
    assert "is not a span or a date" in page.text and 'value="last tuesday"' in page.text
    empty = root.http.get(
        "/console/admin/dashboard", params={"since": "2026-11-04", "until": "2026-11-02"}
    )
    assert empty.status_code == 400 and "the window is empty" in empty.text
    # out of the calendar in UTC, or far too long: a 400 naming why, never a 500
    for period, why in (
        ({"since": "0001-01-01T00:00+05:00"}, "out of the calendar"),
        ({"since": "2026-11-02", "until": "9999-12-31T23:00-05:00"}, "out of the calendar"),
        ({"since": "99999w"}, "at most 400 days"),
    ):
        page = root.http.get("/console/admin/dashboard", params=period)
        assert page.status_code == 400 and why in page.text, period
        chart = root.http.get("/console/admin/dashboard/chart/rates.png", params=period)
        assert chart.status_code == 400 and why in chart.json()["error"], period
    csv_bad = root.http.get("/console/admin/dashboard.csv", params={"since": "7x"})
    assert csv_bad.status_code == 400 and "7x" in csv_bad.json()["error"]
    assert root.http.get("/console/admin/dashboard/chart/nope.png").status_code == 404
    # the default period (last 7 days) shows an empty report, not an error
    default = root.http.get("/console/admin/dashboard")
    assert default.status_code == 200 and 'data-figure="conversations"' in default.text


async def test_reloads_share_one_report_built_aside_one_at_a_time(db: Database) -> None:
    """A preset reloaded within the minute names the same window and so the same report;
    the low-confidence bar is part of the key; builds run one at a time on the database's
    long-read thread; with MAX_REPORTS windows being computed, another is a 503."""
    import asyncio
    import threading
    import time

    from bot.analytics import parse_window
    from bot.errors import Overloaded
    from bot.web.console import app as console_app

    relay = Relay()
    desk = HandoffDesk(db, Outbox(db, relay), notices=lambda response, channel, **v: response)
    console = Console(steps=NoSteps(), desk=desk, accounts=AgentAccounts(db), relay=relay)
    built: list[tuple[Any, ...]] = []
    running: list[int] = []
    most = 0
    release = threading.Event()
    real = console._build_report

    def counting(*key: Any) -> Any:
        nonlocal most
        built.append(key)
        running.append(1)
        most = max(most, len(running))
        release.wait(5)
        time.sleep(0.01)
        running.pop()
        return real(*key)

    console._build_report = counting  # type: ignore[method-assign]
    now = dt.datetime(2026, 11, 4, 12, 0, 5, tzinfo=dt.UTC)
    first = parse_window("7d", now=now)
    reload = parse_window("7d", now=now + dt.timedelta(seconds=40))
    assert first == reload
    release.set()
    one, two = await asyncio.gather(console._report(*first), console._report(*reload))
    assert one is two and len(built) == 1
    console.low_confidence = 0.9
    stricter = await console._report(*first)
    assert len(built) == 2 and stricter.low_confidence == 0.9 and one.low_confidence == 0.5

    # MAX_REPORTS windows being computed: the next is refused, none is dropped
    release.clear()
    windows = [
        (SINCE, UNTIL + dt.timedelta(minutes=i)) for i in range(1, console_app.MAX_REPORTS + 1)
    ]
    pending = [asyncio.ensure_future(console._report(*w)) for w in windows]
    await asyncio.sleep(0.1)
    with pytest.raises(Overloaded):
        await console._report(SINCE, UNTIL + dt.timedelta(hours=5))
    release.set()
    await asyncio.gather(*pending)
    assert most == 1  # one build at a time


def test_csv_cells_are_never_formulas() -> None:
    from bot.web.console.app import _csv_cell

    for risky in ('=HYPERLINK("http://x")', "+1", "-1+2", "@SUM(A1)", "\tx", "\rx"):
        assert _csv_cell(risky) == "'" + risky
    for plain in ("shopper asked for a human", "12", "66.67", "", "2026-11-03 web"):
        assert _csv_cell(plain) == plain
