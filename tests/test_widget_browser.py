"""The chat widget in a real headless Chromium (Debian's chromium, driven by Playwright):
a shopper on the demo store page opens the widget, checks an order, clicks a quick reply,
reloads, loses the connection and types on, and the widget works on a phone-sized screen
with the keyboard alone. Screenshots land in test-artifacts/.

The browser reaches the server through a TCP proxy on 127.0.0.1 that the test can cut, the
way a train tunnel cuts a phone's connection."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bot.store.db import Database
from bot.store.models import ConversationEvent
from bot.types import Message, Reply
from tests.conftest import ROOT, fresh_database
from tests.live import LiveServer

try:
    from playwright import sync_api as playwright_api
except ImportError:  # pragma: no cover - .ci/run installs it
    playwright_api = None  # type: ignore[assignment]

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
ARTIFACTS = ROOT / "test-artifacts"
TIMEOUT_MS = 20_000


class CuttableProxy:
    """Forwards TCP connections from a port on 127.0.0.1 to ``target_port``. ``cut()``
    drops every open connection and refuses new ones until ``restore()``."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.up = True
        self._open: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up:
                client.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port))
            except OSError:
                client.close()
                continue
            with self._lock:
                self._open.update((client, upstream))
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while chunk := src.recv(65536):
                dst.sendall(chunk)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()
                with self._lock:
                    self._open.discard(s)

    def cut(self) -> None:
        self.up = False
        with self._lock:
            victims = list(self._open)
        for s in victims:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def restore(self) -> None:
        self.up = True

    def close(self) -> None:
        self._closed = True
        self.cut()
        self.listener.close()


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("browser")) as url:
        yield url


class StorePage:
    """Another store's site on its own server (a different origin): one page with the
    widget's script tag pointing at Clerk, in the store's own look."""

    def __init__(self) -> None:
        self.clerk_url = ""
        self.server = LiveServer(Starlette(routes=[Route("/", self.page)]))
        self.url = self.server.url  # http://127.0.0.1:<port>, on the allow-list
        self.other_origin_url = self.url.replace("127.0.0.1", "localhost")  # not on it

    async def page(self, request):  # type: ignore[no-untyped-def]
        return HTMLResponse(
            "<!doctype html><html lang=en><head><title>Acme</title></head><body><h1>Acme</h1>"
            f'<script src="{self.clerk_url}/widget/clerk.js" data-title="Acme help" '
            'data-color="#facc15" data-greeting="Ahoy! Ask me anything."></script>'
            "</body></html>"
        )


@pytest.fixture(scope="module")
def store_page() -> Iterator[StorePage]:
    page = StorePage()
    with page.server:
        yield page


@pytest.fixture(scope="module")
def site(
    database_url: str,
    store_page: StorePage,
    bot_settings,
    shared_encoder,  # type: ignore[no-untyped-def]
) -> Iterator[CuttableProxy]:
    from bot.app import build, create_app

    settings = bot_settings(database_url, widget_origins=(store_page.url,))
    parts = build(settings, encoder=shared_encoder)
    with LiveServer(create_app(parts)) as live:
        proxy = CuttableProxy(live.port)
        store_page.clerk_url = proxy.url
        yield proxy
        proxy.close()


@contextlib.contextmanager
def chromium() -> Iterator[Any]:
    """Debian's headless Chromium through Playwright, closed afterwards (so Playwright's
    event loop does not outlive it); skipped, or failed on CI, when either is missing."""
    if playwright_api is None or not Path(CHROMIUM).exists():
        why = "needs Debian's chromium (apt-get install chromium) and playwright (pip)"
        if os.environ.get("CI"):
            pytest.fail(why)
        pytest.skip(why)
    with playwright_api.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with chromium() as b:
        yield b


@pytest.fixture
def page(browser):  # type: ignore[no-untyped-def]
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    pg = context.new_page()
    pg.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    pg.on("pageerror", lambda exc: errors.append(str(exc)))
    pg.errors = errors
    yield pg
    context.close()
    assert errors == []  # no JavaScript error on the way


def screenshot(page, name: str) -> Path:  # type: ignore[no-untyped-def]
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / name
    page.screenshot(path=str(path))
    return path


def user_texts(database_url: str, conversation_id: str) -> list[str]:
    db = Database(database_url)
    try:
        with db.session() as s:
            rows = s.scalars(
                select(ConversationEvent.data)
                .where(
                    ConversationEvent.conversation_id == conversation_id,
                    ConversationEvent.type == "user",
                )
                .order_by(ConversationEvent.seq)
            )
            return [r["text"] for r in rows]
    finally:
        db.dispose()


def say(page, text: str) -> None:  # type: ignore[no-untyped-def]
    box = page.get_by_role("textbox", name="Message")
    box.fill(text)
    box.press("Enter")


def bot_said(page, text: str):  # type: ignore[no-untyped-def]
    """The bot message containing ``text``, once it is on screen."""
    found = page.locator(".msg.bot", has_text=text).last
    found.wait_for()
    return found


def test_a_shopper_checks_an_order_reloads_and_survives_a_dropped_connection(
    page,
    site: CuttableProxy,
    database_url: str,  # type: ignore[no-untyped-def]
) -> None:
    expect = playwright_api.expect
    page.goto(site.url + "/")
    expect(page).to_have_title("Clerk demo store")
    launcher = page.get_by_role("button", name="Open chat with Clerk")
    launcher.click()
    dialog = page.get_by_role("dialog", name="Clerk")
    expect(dialog).to_be_visible()
    expect(page.get_by_role("textbox", name="Message")).to_be_focused()
    expect(page.get_by_role("status").filter(has_text="Online")).to_be_visible()

    # the full authenticated flow
    say(page, "where is my order #W6893533?")
    expect(page.locator(".msg.user").last).to_have_text("where is my order #W6893533?")
    bot_said(page, "verify it's you")
    say(page, "ivan.santos3158@example.com")
    status = bot_said(page, "Tracking number")
    expect(status).to_contain_text("#W6893533 is delivered")
    expect(status).to_contain_text("Garden Hose")

    # product cards
    say(page, "recommend me a speaker")
    card = page.locator(".card").first
    card.wait_for()
    expect(card.get_by_role("heading")).to_have_text("Bluetooth Speaker")
    expect(card).to_contain_text("$")
    expect(card).to_contain_text("In stock")

    # a quick reply
    say(page, "what can you do?")
    quick = page.get_by_role("group", name="Quick replies").last
    quick.get_by_role("button", name="Talk to a human").click()
    expect(page.locator(".msg.user").last).to_have_text("Talk to a human")
    bot_said(page, "human")
    expect(quick.get_by_role("button", name="Where is my order?")).to_be_disabled()
    screenshot(page, "widget-conversation.png")

    # reload: the widget reopens with the whole conversation
    session = page.evaluate(
        "() => Object.entries(localStorage).find(([k]) => k.endsWith(':session'))[1]"
    )
    page.reload()
    expect(page.get_by_role("dialog", name="Clerk")).to_be_visible()
    expect(page.locator(".msg.bot", has_text="Tracking number")).to_have_count(1)
    expect(page.locator(".msg.user", has_text="Talk to a human")).to_have_count(1)
    expect(page.get_by_role("status").filter(has_text="Online")).to_be_visible()

    # the connection drops; the shopper types on; the messages go out once it is back
    site.cut()
    expect(page.get_by_role("status").filter(has_text="reconnecting")).to_be_visible()
    say(page, "thanks a lot")
    say(page, "are you a bot?")
    queued = page.locator(".msg.user[data-state=queued]")
    expect(queued).to_have_count(2)
    expect(queued.first.locator(".meta")).to_have_text("Waiting for connection…")
    screenshot(page, "widget-offline.png")
    site.restore()
    expect(page.get_by_role("status").filter(has_text="Online")).to_be_visible(timeout=15_000)
    bot_said(page, "welcome")
    bot_said(page, "bot")
    expect(page.locator(".msg.user[data-state]")).to_have_count(0)
    texts = user_texts(database_url, f"web:{session}")
    assert texts[-2:] == ["thanks a lot", "are you a bot?"]  # once each, in order
    assert texts.count("thanks a lot") == 1
    screenshot(page, "widget-desktop.png")


def test_typed_html_shows_as_text(page, site: CuttableProxy) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_api.expect
    payload = (
        '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
        '<b>bold</b> https://evil.example/"onmouseover="x'
    )
    page.goto(site.url + "/")
    page.get_by_role("button", name="Open chat with Clerk").click()
    say(page, payload)
    mine = page.locator(".msg.user").last
    expect(mine).to_have_text(payload)
    page.locator(".msg.bot").nth(1).wait_for()  # the bot answered (the greeting is first)
    page.reload()
    expect(page.locator(".msg.user").last).to_have_text(payload)  # and after the history
    assert page.evaluate("() => window.__xss") is None
    widget = page.locator("#clerk-widget")
    assert widget.locator(".log img").count() == 0
    assert widget.locator(".log script").count() == 0
    assert widget.locator(".log b").count() == 0
    assert widget.locator(".msg.user a").count() == 0  # shopper text is never linkified


def test_a_shopper_rates_the_conversation_with_a_thumb(  # type: ignore[no-untyped-def]
    page, site: CuttableProxy, database_url: str
) -> None:
    """CSAT: a goodbye brings 👍/👎 (named for screen readers by the domain's labels); a
    click stores a ``feedback`` event, disables both and shows the thanks, also after a
    reload."""
    expect = playwright_api.expect
    page.goto(site.url + "/")
    page.get_by_role("button", name="Open chat with Clerk").click()
    expect(page.get_by_role("status").filter(has_text="Online")).to_be_visible()
    say(page, "bye")
    bot_said(page, "how did we do today?")
    thumbs = page.get_by_role("group", name="Before you go: how did we do today?")
    up = thumbs.get_by_role("button", name="Good, this helped")
    down = thumbs.get_by_role("button", name="Bad, this did not help")
    expect(up.locator("svg")).to_have_count(1)  # 👍 and 👎 drawn as icons
    expect(down.locator("svg")).to_have_count(1)
    up.click()
    bot_said(page, "Thanks for your feedback!")
    expect(up).to_be_disabled()
    expect(down).to_be_disabled()
    expect(up).to_have_attribute("aria-pressed", "true")
    screenshot(page, "widget-feedback.png")
    session = page.evaluate(
        "() => Object.entries(localStorage).find(([k]) => k.endsWith(':session'))[1]"
    )
    db = Database(database_url)
    try:
        with db.session() as s:
            rated = s.scalars(
                select(ConversationEvent.data).where(
                    ConversationEvent.conversation_id == f"web:{session}",
                    ConversationEvent.type == "feedback",
                )
            ).all()
    finally:
        db.dispose()
    assert [r["rating"] for r in rated] == ["up"]
    page.reload()  # the history shows the request as answered
    again = page.get_by_role("group", name="Before you go: how did we do today?")
    expect(again.get_by_role("button", name="Good, this helped")).to_be_disabled()
    expect(again.get_by_role("button", name="Good, this helped")).to_have_attribute(
        "aria-pressed", "true"
    )
    expect(page.locator(".msg.bot", has_text="Thanks for your feedback!")).to_have_count(1)


def test_a_refused_rating_frees_the_thumbs_and_says_so(  # type: ignore[no-untyped-def]
    page, site: CuttableProxy
) -> None:
    """The server refuses a rating (``feedback_refused``: here the socket answers for it):
    the thumbs can be pressed again, and the widget says so in the domain's words."""
    expect = playwright_api.expect

    def refuse_ratings(ws) -> None:  # type: ignore[no-untyped-def]
        server = ws.connect_to_server()

        def from_page(message: str | bytes) -> None:
            if isinstance(message, str) and json.loads(message).get("type") == "feedback":
                ws.send(
                    json.dumps(
                        {
                            "type": "error",
                            "code": "feedback_refused",
                            "message": "this conversation was not asked for a rating",
                            "reason": "not_asked",
                        }
                    )
                )
                return
            server.send(message)

        ws.on_message(from_page)

    page.route_web_socket(re.compile(r".*/widget/ws.*"), refuse_ratings)
    page.goto(site.url + "/")
    page.get_by_role("button", name="Open chat with Clerk").click()
    expect(page.get_by_role("status").filter(has_text="Online")).to_be_visible()
    say(page, "bye")
    bot_said(page, "how did we do today?")
    thumbs = page.get_by_role("group", name="Before you go: how did we do today?")
    up = thumbs.get_by_role("button", name="Good, this helped")
    up.click()
    expect(page.locator(".msg.system", has_text="couldn't record that rating")).to_be_visible()
    expect(up).to_be_enabled()
    expect(up).to_have_attribute("aria-pressed", "false")
    expect(thumbs.get_by_role("button", name="Bad, this did not help")).to_be_enabled()


def test_keyboard_only_on_a_phone_sized_screen(browser, site: CuttableProxy) -> None:  # type: ignore[no-untyped-def]
    expect = playwright_api.expect
    context = browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(site.url + "/")
    launcher = page.get_by_role("button", name="Open chat with Clerk")
    launcher.focus()
    page.keyboard.press("Enter")
    box = page.get_by_role("textbox", name="Message")
    expect(box).to_be_focused()
    panel = page.get_by_role("dialog", name="Clerk")
    bounds = panel.bounding_box()
    assert bounds and bounds["x"] >= 0 and bounds["width"] <= 390 and bounds["height"] <= 844
    page.keyboard.type("what can you do?")
    page.keyboard.press("Enter")
    bot_said(page, "I can check")
    # Tab reaches the quick replies; Enter presses one
    quick = page.get_by_role("button", name="Where is my order?")
    quick.focus()
    page.keyboard.press("Enter")
    expect(page.locator(".msg.user").last).to_have_text("Where is my order?")
    bot_said(page, "email")
    screenshot(page, "widget-phone.png")
    page.keyboard.press("Escape")
    expect(panel).to_be_hidden()
    expect(launcher).to_be_focused()
    context.close()


def test_the_widget_on_another_stores_page(
    browser,
    site: CuttableProxy,  # type: ignore[no-untyped-def]
    store_page: StorePage,
) -> None:
    """One script tag on a page elsewhere, with the store's own look; only origins on the
    allow-list may talk to the bot."""
    expect = playwright_api.expect
    context = browser.new_context()
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    page.goto(store_page.url + "/")
    page.get_by_role("button", name="Open chat with Acme help").click()
    expect(page.get_by_role("dialog", name="Acme help")).to_be_visible()
    expect(page.locator(".msg.greeting")).to_have_text("Ahoy! Ask me anything.")
    expect(page.get_by_role("status").filter(has_text="Online")).to_be_visible()
    say(page, "hello")
    bot_said(page, "Clerk")
    # a yellow accent gets dark text, so the header stays readable
    header = page.locator(".head")
    assert header.evaluate("e => getComputedStyle(e).backgroundColor") == "rgb(250, 204, 21)"
    assert header.evaluate("e => getComputedStyle(e).color") == "rgb(17, 24, 39)"
    screenshot(page, "widget-elsewhere.png")

    other = context.new_page()  # the same page served under an origin not on the list
    other.set_default_timeout(TIMEOUT_MS)
    other.goto(store_page.other_origin_url + "/")
    other.get_by_role("button", name="Open chat with Acme help").click()
    expect(other.get_by_role("status").filter(has_text="reconnecting")).to_be_visible()
    say(other, "hello")
    expect(other.locator(".msg.user[data-state=queued]")).to_have_count(1)  # never delivered
    context.close()


class CardManager:
    """A stand-in for the dialogue manager: every message is answered with one product card."""

    async def handle(self, message: Message) -> list[Reply]:
        return [
            Reply(
                text="Hier bitte:",
                custom={
                    "type": "product_cards",
                    "products": [
                        {
                            "name": "Lautsprecher",
                            "price": 1024.1,
                            "available": True,
                            "options": {"Farbe": "rot"},
                        }
                    ],
                },
            )
        ]


GERMAN = {  # a store that translated the widget's words in its domain.yml
    "utter_widget_greeting": [{"text": "Hallo! Wie kann ich helfen?"}],
    "utter_widget_open_chat": [{"text": "Chat mit {title} öffnen"}],
    "utter_widget_conversation": [{"text": "Unterhaltung mit {title}"}],
    "utter_widget_online": [{"text": "Verbunden"}],
    "utter_widget_placeholder": [{"text": "Ihre Nachricht…"}],
    "utter_widget_message": [{"text": "Nachricht"}],
    "utter_widget_products": [{"text": "Produkte"}],
    "utter_widget_in_stock": [{"text": "<b>Auf Lager</b>"}],  # text, never HTML
}


def test_the_widget_in_the_stores_words_and_currency(
    browser,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    """A store's translated widget words and its euros, in the browser."""
    from bot.channels.base import domain_say
    from bot.channels.widget import WidgetChannel, WidgetLook, WidgetWording, default_greeting
    from bot.dialogue.domain import Domain

    expect = playwright_api.expect
    say = domain_say(Domain.from_dict({"responses": GERMAN}), "web")
    db = Database(f"sqlite:///{tmp_path / 'widget.db'}")
    db.create_all()
    channel = WidgetChannel(
        CardManager(),
        db,
        look=WidgetLook(title="Acme", greeting=default_greeting(say)),
        wording=WidgetWording.from_responses(say, "EUR"),
    )
    context = browser.new_context(locale="en-US")
    page = context.new_page()
    page.set_default_timeout(TIMEOUT_MS)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    try:
        with LiveServer(Starlette(routes=channel.routes())) as live:
            page.goto(live.url + "/")
            page.get_by_role("button", name="Chat mit Acme öffnen").click()
            expect(page.get_by_role("log", name="Unterhaltung mit Acme")).to_be_visible()
            expect(page.locator(".msg.greeting")).to_have_text("Hallo! Wie kann ich helfen?")
            expect(page.get_by_role("status").filter(has_text="Verbunden")).to_be_visible()
            box = page.get_by_role("textbox", name="Nachricht")
            expect(box).to_have_attribute("placeholder", "Ihre Nachricht…")
            box.fill("Lautsprecher?")
            box.press("Enter")
            card = page.get_by_role("list", name="Produkte").locator(".card").first
            expect(card.locator(".price")).to_have_text("€1,024.10")
            expect(card.locator(".stock")).to_have_text("<b>Auf Lager</b>")
            assert card.locator("b").count() == 0
            screenshot(page, "widget-translated.png")
    finally:
        context.close()
        db.dispose()
    assert errors == []
