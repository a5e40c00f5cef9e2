"""Two real Chromium pages at once (Debian's chromium driven by Playwright): a shopper in
the chat widget on the demo store page and an agent in the console. The shopper asks for a
human, the conversation appears in the agent's queue without a reload, the agent takes
over, they write to each other both ways (an XSS attempt included, shown as text), the
agent leaves an internal note and hands back, and the bot answers again. Screenshots land
in test-artifacts/console/."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.handoff.agents import AgentAccounts
from tests.conftest import ROOT, fresh_database
from tests.live import LiveServer
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
ARTIFACTS = ROOT / "test-artifacts" / "console"
TIMEOUT_MS = 20_000
XSS = '<img src=x onerror="alert(document.cookie)"><script>alert(1)</script>'


@pytest.fixture(scope="module")
def site(
    tmp_path_factory: pytest.TempPathFactory,
    bot_settings,
    shared_encoder,  # type: ignore[no-untyped-def]
) -> Iterator[LiveServer]:
    from bot.app import build, create_app

    with fresh_database("sqlite", tmp_path_factory.mktemp("console-browser")) as url:
        parts = build(bot_settings(url), encoder=shared_encoder)
        AgentAccounts(parts.db).add("Ana", PASSWORD, "agent")
        with LiveServer(create_app(parts)) as live:
            yield live


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


def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / name), full_page=True)


def test_a_shopper_and_an_agent_talk_live_then_the_bot_takes_over_again(
    browser,
    site: LiveServer,  # type: ignore[no-untyped-def]
) -> None:
    expect = playwright_api.expect
    pages = []
    errors: list[str] = []
    dialogs: list[str] = []
    for _ in range(2):
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        pages.append(page)
    shopper, agent = pages

    # the agent logs in and watches the queue
    agent.goto(site.url + "/console")
    expect(agent).to_have_url(site.url + "/console/login?next=/console")
    agent.get_by_label("Name").fill("Ana")
    agent.get_by_label("Password").fill(PASSWORD)
    agent.get_by_role("button", name="Log in").click()
    expect(agent.locator("h1")).to_have_text("Queue")
    expect(agent.locator("#live")).to_have_text("live")

    # the shopper asks for a human in the widget
    shopper.goto(site.url + "/")
    shopper.get_by_role("button", name="Open chat with Clerk").click()
    box = shopper.get_by_role("textbox", name="Message")
    box.fill("I need to talk to a human about my order")
    box.press("Enter")
    expect(shopper.locator(".msg.bot").last).to_contain_text("expected wait is about")

    # it appears in the agent's queue without a reload
    row = agent.locator("#queue tbody tr", has_text="I need to talk to a human about my order")
    expect(row).to_be_visible()
    expect(row.locator(".channel")).to_have_text("web")
    expect(row.locator(".reason")).to_have_text("shopper asked for a human")
    expect(row.locator(".wait")).to_have_text(lambda_re(r"\d+s"))
    shot(agent, "1-agent-queue.png")
    shot(shopper, "1-shopper-waiting.png")

    row.get_by_role("button", name="Take over").click()
    expect(agent.locator("#conv-state")).to_have_text("You hold this conversation")
    expect(shopper.locator(".msg.system").last).to_contain_text("Ana from our team has joined")

    # shopper -> agent, live
    box.fill("Hi, are you there? My parcel never arrived.")
    box.press("Enter")
    user_msgs = agent.locator("#transcript li.msg.user")
    expect(user_msgs.last.locator(".text")).to_have_text(
        "Hi, are you there? My parcel never arrived."
    )
    expect(user_msgs.last.locator(".intent")).to_be_visible()  # what the bot understood
    box.fill(XSS)
    box.press("Enter")
    expect(user_msgs.last.locator(".text")).to_have_text(XSS)
    assert agent.locator("#transcript img, #transcript script").count() == 0

    # agent -> shopper, with a canned reply first
    agent.locator(".canned-reply").first.click()
    expect(agent.locator("#reply")).to_have_value(
        "Thanks for your patience — I'm looking into this now."
    )
    agent.locator("#send").click()
    from_agent = shopper.locator(".msg.agent")
    expect(from_agent.last.locator(".bubble")).to_have_text(
        "Thanks for your patience — I'm looking into this now."
    )
    expect(from_agent.last.locator(".who")).to_contain_text("Ana")
    agent.locator("#reply").fill("I've found it: it's at the depot and arrives tomorrow.")
    agent.locator("#send").click()
    expect(from_agent.last.locator(".bubble")).to_have_text(
        "I've found it: it's at the depot and arrives tomorrow."
    )
    agent.locator("#note").fill("Depot confirmed by phone; check again Friday")
    agent.locator("#add-note").click()
    expect(agent.locator("#transcript li.note").last).to_contain_text("Depot confirmed by phone")
    expect(agent.locator("#transcript li.msg.agent")).to_have_count(2)
    shot(agent, "2-agent-conversation.png")
    shot(shopper, "2-shopper-with-agent.png")
    assert "Depot confirmed" not in shopper.locator("body").inner_text()

    # hand back: the bot answers again
    agent.locator("#hand-back").click()
    expect(agent.locator("#conv-state")).to_have_text("The bot holds this conversation")
    expect(shopper.locator(".msg.system").last).to_contain_text("You're back with Clerk")
    box.fill("are you a bot?")
    box.press("Enter")
    expect(shopper.locator(".msg.bot").last).to_contain_text("I'm a bot")
    expect(agent.locator("#transcript li.msg.bot").last).to_contain_text("I'm a bot")
    expect(agent.locator("#transcript li[data-kind=returned]")).to_have_count(1)
    agent.goto(site.url + "/console")
    expect(agent.locator("#queue-empty")).to_be_visible()
    shot(shopper, "3-shopper-back-with-bot.png")
    shot(agent, "3-agent-queue-empty.png")

    assert dialogs == [] and errors == []
    for page in pages:
        page.context.close()


def lambda_re(pattern: str):  # type: ignore[no-untyped-def]
    import re

    return re.compile(pattern)
