"""The web chat widget's channel, through a real server on 127.0.0.1: the page and script it
serves, and conversations over its WebSocket (resume, exactly-once delivery, order, tabs,
origins, rate limit, streaming). Conversations with the demo bot run on SQLite and
PostgreSQL; the browser itself is in test_widget_browser.py."""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import ClientConnection, connect

from bot.channels.widget import (
    OriginPolicy,
    WidgetChannel,
    WidgetLook,
    transcript,
)
from bot.config import Settings
from bot.errors import ConfigError
from bot.ratelimit import RateLimiter
from bot.store.db import Database
from bot.store.models import Conversation, ConversationEvent
from bot.types import BotUttered, Message, Reply, UserUttered
from tests.live import LiveServer

SHOP = "https://shop.example"


# --------------------------------------------------------------------------- helpers


class WidgetClient:
    """One browser tab's WebSocket, speaking the widget protocol."""

    def __init__(self, base_url: str, *, origin: str | None = None) -> None:
        self.ws: ClientConnection = connect(
            base_url.replace("http://", "ws://") + "/widget/ws",
            origin=origin,
            proxy=None,
            open_timeout=10,
        )
        self.session: str | None = None

    def send(self, frame: dict[str, Any] | str | bytes) -> None:
        self.ws.send(frame if isinstance(frame, (str, bytes)) else json.dumps(frame))

    def recv(self, timeout: float = 30) -> dict[str, Any]:
        return json.loads(self.ws.recv(timeout=timeout))

    def hello(self, session: str | None = None) -> dict[str, Any]:
        self.send({"type": "hello", "session": session})
        welcome = self.recv()
        assert welcome["type"] == "welcome", welcome
        self.session = welcome["session"]
        return welcome

    def until_turn_ends(self, timeout: float = 30) -> list[dict[str, Any]]:
        """Frames up to and including ``typing: off`` (a turn's last frame)."""
        frames = []
        deadline = time.monotonic() + timeout
        while True:
            frame = self.recv(timeout=max(0.1, deadline - time.monotonic()))
            frames.append(frame)
            if frame == {"type": "typing", "on": False}:
                return frames

    def say(
        self, text: str, *, mid: str | None = None, title: str | None = None
    ) -> list[dict[str, Any]]:
        """Send one message; the bot messages that answer it."""
        mid = mid or uuid.uuid4().hex
        frame: dict[str, Any] = {"type": "message", "id": mid, "text": text}
        if title:
            frame["title"] = title
        self.send(frame)
        ack = self.recv()
        assert ack == {"type": "ack", "id": mid}, ack
        frames = self.until_turn_ends()
        return [f for f in frames if f["type"] == "bot" and f["reply_to"] == mid]

    def text(self, text: str, **kw: Any) -> str:
        return "\n".join(f.get("text") or "" for f in self.say(text, **kw)).lower()

    def close(self) -> None:
        self.ws.close()


class EchoManager:
    """A scripted stand-in for the dialogue manager: answers ``echo: <text>``."""

    def __init__(self) -> None:
        self.seen: list[Message] = []

    async def handle(self, message: Message) -> list[Reply]:
        self.seen.append(message)
        return [Reply(text=f"echo: {message.text}")]


class StreamingManager:
    """A stand-in for a manager whose generator streams (the ``on_token`` hook)."""

    TOKENS = ("You can ", "return ", "items ", "within ", "30 days ", "[1].")

    async def handle(self, message: Message, on_token: Any = None) -> list[Reply]:
        for token in self.TOKENS:
            await on_token(token)
            await asyncio.sleep(0.01)
        return [
            Reply(
                text="".join(self.TOKENS),
                custom={"type": "answer", "grounded": True, "citations": [{"index": 1}]},
            ),
            Reply(text="Anything else?"),
        ]


def events_of(db: Database, conversation_id: str) -> list[dict[str, Any]]:
    with db.session() as s:
        return list(
            s.scalars(
                select(ConversationEvent.data)
                .where(ConversationEvent.conversation_id == conversation_id)
                .order_by(ConversationEvent.seq)
            )
        )


def user_texts(db: Database, conversation_id: str) -> list[str]:
    return [e["text"] for e in events_of(db, conversation_id) if e["event"] == "user"]


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(module_database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from bot.app import build, create_app

    settings = bot_settings(
        module_database_url,
        widget_origins=(SHOP,),
        widget_title="Clerk",
        widget_greeting="Hi there!",
    )
    parts = build(settings, encoder=shared_encoder)
    with LiveServer(create_app(parts)) as live:
        live.parts = parts  # type: ignore[attr-defined]
        yield live


@pytest.fixture(scope="module")
def store(server: LiveServer, module_database_url: str) -> Iterator[Database]:
    db = Database(module_database_url)
    yield db
    db.dispose()


@pytest.fixture
def tab(server: LiveServer) -> Iterator[WidgetClient]:
    client = WidgetClient(server.url)
    yield client
    client.close()


@pytest.fixture
def small_db(tmp_path) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    db = Database(f"sqlite:///{tmp_path / 'widget.db'}")
    db.create_all()
    yield db
    db.dispose()


def channel_server(channel: WidgetChannel) -> LiveServer:
    return LiveServer(Starlette(routes=channel.routes()))


# --------------------------------------------------------------------------- the page


def test_demo_page_embeds_the_widget_with_one_script_tag(server: LiveServer) -> None:
    page = httpx.get(server.url + "/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    scripts = re.findall(r"<script\b[^>]*>", page.text)
    assert scripts == [f'<script src="{server.url}/widget/clerk.js" defer>']
    assert "Bluetooth Speaker" in page.text or "T-Shirt" in page.text  # the store's products
    csp = page.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]

    script = httpx.get(server.url + "/widget/clerk.js")
    assert script.status_code == 200 and "javascript" in script.headers["content-type"]
    defaults = json.loads(re.search(r"var DEFAULTS = (\{.*?\});", script.text).group(1))
    assert defaults == {"title": "Clerk", "color": "#0f766e", "greeting": "Hi there!"}
    css = httpx.get(server.url + "/widget/clerk.css")
    assert css.status_code == 200 and "text/css" in css.headers["content-type"]
    assert "@media (max-width: 480px)" in css.text  # phone-sized screens

    # everything is served locally: no CDN, no web fonts, no third-party URL at all
    for body in (page.text, script.text, css.text, httpx.get(server.url + "/demo/store.css").text):
        urls = re.findall(r"https?://[^\s\"'<>)]+", body)
        foreign = [
            u
            for u in urls
            if not u.startswith(
                (server.url, "http://www.w3.org/2000/svg", "https://your-clerk-server")
            )
        ]
        assert foreign == []


def test_the_script_tag_carries_the_stores_look(small_db: Database) -> None:
    look = WidgetLook(
        title="</script><b>Acme</b>",
        color="#7c3aed",
        greeting="Hoi!",
        server_url="https://chat.acme.example/",
    )
    with channel_server(WidgetChannel(EchoManager(), small_db, look=look)) as live:
        script = httpx.get(live.url + "/widget/clerk.js").text
        page = httpx.get(live.url + "/").text
    raw = re.search(r"var DEFAULTS = (\{.*?\});", script).group(1)
    assert "</script>" not in raw  # cannot close a script element it is inlined into
    assert json.loads(raw) == {
        "title": "</script><b>Acme</b>",
        "color": "#7c3aed",
        "greeting": "Hoi!",
        "server": "https://chat.acme.example",
    }
    assert '<script src="https://chat.acme.example/widget/clerk.js" defer>' in page
    assert "&lt;/script&gt;&lt;b&gt;Acme&lt;/b&gt;" in page


def test_widget_settings_are_read_and_checked() -> None:
    s = Settings.load(
        {
            "CLERK_WIDGET_ORIGINS": "https://a.example/, https://b.example",
            "CLERK_WIDGET_RATE_LIMIT": "5",
            "CLERK_WIDGET_COLOR": "#123abc",
            "CLERK_WIDGET_TITLE": "Help",
        },
        config_file="/nonexistent.yml",
    )
    assert s.widget_origins == ("https://a.example", "https://b.example")
    assert (s.widget_rate_limit, s.widget_color, s.widget_title) == (5, "#123abc", "Help")
    with pytest.raises(ConfigError):  # the colour ends up in CSS: nothing else gets in
        Settings.load({"CLERK_WIDGET_COLOR": "red;}body{display:none"}, "/nonexistent.yml")
    with pytest.raises(ConfigError):
        Settings.load({"CLERK_WIDGET_RATE_LIMIT": "0"}, "/nonexistent.yml")


# --------------------------------------------------------------------------- conversations


def test_an_order_check_over_the_websocket(tab: WidgetClient, store: Database) -> None:
    welcome = tab.hello()
    assert re.fullmatch(r"[A-Za-z0-9_-]{32}", welcome["session"])
    assert welcome["history"] == [] and welcome["busy"] is False

    ask = tab.text("where is my order #W6893533?")
    assert "email" in ask
    answer = tab.say("ivan.santos3158@example.com", mid="m-email")
    text = "\n".join(f["text"] for f in answer).lower()
    assert "#w6893533" in text and "delivered" in text and "garden hose" in text
    assert [f["id"] for f in answer] == [f"m-email:{n}" for n in range(len(answer))]

    cid = f"web:{tab.session}"
    with store.session() as s:
        assert s.get(Conversation, cid).channel == "web"
    assert user_texts(store, cid) == ["where is my order #W6893533?", "ivan.santos3158@example.com"]


def test_a_reload_resumes_the_conversation_with_its_history(
    server: LiveServer, store: Database
) -> None:
    first = WidgetClient(server.url)
    session = first.hello()["session"]
    first.say("where is my order?", mid="q1")
    first.say("ivan.santos3158@example.com", mid="q2")
    first.close()

    again = WidgetClient(server.url)  # the page reloaded: same session id from localStorage
    welcome = again.hello(session)
    assert welcome["session"] == session
    history = welcome["history"]
    assert [h["id"] for h in history if h["type"] == "user"] == ["q1", "q2"]
    assert history[0] == {"type": "user", "id": "q1", "text": "where is my order?"}
    assert all(h["reply_to"] in ("q1", "q2") for h in history if h["type"] == "bot")
    assert any(h["id"] == "q2:0" for h in history)  # the same ids the live replies had
    # the shopper is still verified: the conversation goes on where it was
    answer = again.text("#W6893533")
    assert "delivered" in answer and "email" not in answer
    again.close()


def test_a_quick_reply_shows_its_title(server: LiveServer, tab: WidgetClient) -> None:
    tab.hello()
    menu = tab.say("what can you do?")
    button = next(b for f in menu for b in f.get("buttons", []) if b["payload"] == "/order_status")
    reply = tab.text(button["payload"], mid="qr1", title=button["title"])
    assert "first i need to verify it's you" in reply
    history = WidgetClient(server.url).hello(tab.session)["history"]
    assert {"type": "user", "id": "qr1", "text": button["title"]} in history


def test_a_resent_message_is_handled_once(server: LiveServer, store: Database) -> None:
    tab = WidgetClient(server.url)
    session = tab.hello()["session"]
    assert tab.say("hello", mid="once-1")
    tab.close()

    # the connection dropped before the ack reached the browser: it sends the message again
    again = WidgetClient(server.url)
    again.hello(session)
    again.send({"type": "message", "id": "once-1", "text": "hello"})
    assert again.recv() == {"type": "ack", "id": "once-1", "duplicate": True}
    again.send({"type": "ping"})
    assert again.recv() == {"type": "pong"}  # and nothing else was sent: no second turn
    again.close()
    assert user_texts(store, f"web:{session}") == ["hello"]


def test_a_message_in_flight_when_the_connection_drops_is_delivered_once(
    server: LiveServer, store: Database
) -> None:
    tab = WidgetClient(server.url)
    session = tab.hello()["session"]
    tab.send({"type": "message", "id": "fly-1", "text": "are you a bot?"})
    assert tab.recv() == {"type": "ack", "id": "fly-1"}
    tab.close()  # gone before any reply

    again = WidgetClient(server.url)
    welcome = again.hello(session)
    again.send({"type": "message", "id": "fly-1", "text": "are you a bot?"})
    frames = [welcome]
    while True:  # the reply arrives once: in the history or live, never both
        frame = again.recv()
        frames.append(frame)
        if frame.get("duplicate"):
            break
    if welcome["busy"] and {"type": "typing", "on": False} not in frames:
        frames += again.until_turn_ends()  # the turn was still running: wait for its end
    bot_ids = [h["id"] for h in welcome["history"] if h["type"] == "bot"]
    bot_ids += [f["id"] for f in frames if f["type"] == "bot"]
    assert bot_ids == ["fly-1:0"]
    again.close()
    assert user_texts(store, f"web:{session}") == ["are you a bot?"]


def test_messages_are_handled_in_the_order_sent(tab: WidgetClient, store: Database) -> None:
    tab.hello()
    said = ["hello", "are you a bot?", "thanks a lot"]
    for n, text in enumerate(said):  # no waiting between them
        tab.send({"type": "message", "id": f"ord-{n}", "text": text})
    frames: list[dict[str, Any]] = []
    while sum(1 for f in frames if f == {"type": "typing", "on": False}) < 3:
        frames.append(tab.recv())
    replies_to = [f["reply_to"] for f in frames if f["type"] == "bot"]
    assert replies_to == sorted(replies_to) and set(replies_to) == {"ord-0", "ord-1", "ord-2"}
    assert user_texts(store, f"web:{tab.session}") == said


def test_two_tabs_of_one_session_see_the_same_conversation(server: LiveServer) -> None:
    one = WidgetClient(server.url)
    session = one.hello()["session"]
    two = WidgetClient(server.url)
    two.hello(session)
    one.say("hello", mid="tabs-1")
    frames = two.until_turn_ends()
    assert {"type": "user", "id": "tabs-1", "text": "hello"} in frames
    assert any(f["type"] == "bot" and f["reply_to"] == "tabs-1" for f in frames)
    one.close()
    two.close()


def test_only_allowed_origins_may_connect(server: LiveServer) -> None:
    with pytest.raises(InvalidStatus) as refused:
        WidgetClient(server.url, origin="https://evil.example")
    assert refused.value.response.status_code == 403
    for origin in (SHOP, server.url, None):  # listed, our own page, no browser at all
        client = WidgetClient(server.url, origin=origin)
        assert client.hello()["session"]
        client.close()


def test_bad_frames_get_an_error_and_the_connection_survives(tab: WidgetClient) -> None:
    tab.send({"type": "message", "id": "x", "text": "hi"})
    assert tab.recv()["code"] == "hello_first"
    tab.hello()
    tab.send("not json")
    assert tab.recv()["code"] == "bad_frame"
    tab.send(b"\x00\x01")
    assert tab.recv()["code"] == "bad_frame"
    tab.send("[1, 2]")
    assert tab.recv()["code"] == "bad_frame"
    tab.send({"type": "message", "text": "no id"})
    assert tab.recv()["code"] == "bad_frame"
    tab.send({"type": "message", "id": "has spaces & <tags>", "text": "hi"})
    assert tab.recv()["code"] == "bad_frame"
    assert "clerk" in tab.text("hello")  # still talking
    tab.send("x" * 20_000)  # far over any real message: the connection is closed
    with pytest.raises(ConnectionClosed) as closed:
        tab.recv()
    assert closed.value.rcvd.code == 1009


def test_user_text_is_kept_verbatim(server: LiveServer, tab: WidgetClient) -> None:
    payload = '<img src=x onerror="alert(1)"><script>alert(2)</script>'
    tab.hello()
    tab.say(payload, mid="xss-1")
    history = WidgetClient(server.url).hello(tab.session)["history"]
    assert {"type": "user", "id": "xss-1", "text": payload} in history  # the browser shows text


# --------------------------------------------------------------------------- channel rules


def test_the_rate_limit_is_per_session(small_db: Database) -> None:
    manager = EchoManager()
    with channel_server(WidgetChannel(manager, small_db, rate_limit=3)) as live:
        tab = WidgetClient(live.url)
        tab.hello()
        for n in range(3):
            assert tab.say(f"m{n}")[0]["text"] == f"echo: m{n}"
        tab.send({"type": "message", "id": "too-many", "text": "m3"})
        refused = tab.recv()
        assert refused["type"] == "error" and refused["code"] == "rate_limited"
        assert refused["id"] == "too-many" and 0 < refused["retry_after"] <= 60
        other = WidgetClient(live.url)  # another shopper is not slowed down
        other.hello()
        assert other.say("hi")[0]["text"] == "echo: hi"
        tab.close()
        other.close()
    assert [m.text for m in manager.seen] == ["m0", "m1", "m2", "hi"]


def test_rate_limiter_window_slides() -> None:
    now = [0.0]
    limiter = RateLimiter(2, window=10, clock=lambda: now[0])
    assert limiter.check("a") == 0 and limiter.check("a") == 0
    assert limiter.check("a") == pytest.approx(10)
    now[0] = 4
    assert limiter.check("a") == pytest.approx(6)
    now[0] = 10.5
    assert limiter.check("a") == 0


def test_origin_policy() -> None:
    policy = OriginPolicy(["https://shop.example/"])
    assert policy.allows("https://shop.example", "bot.example")
    assert policy.allows("http://bot.example:5005", "bot.example:5005")  # same origin
    assert policy.allows(None, "bot.example")
    assert not policy.allows("https://shop.example.evil.com", "bot.example")
    assert not policy.allows("null", "bot.example")
    assert OriginPolicy(["*"]).allows("https://anything.example", "bot.example")


def test_streamed_tokens_then_the_final_message(small_db: Database) -> None:
    with channel_server(WidgetChannel(StreamingManager(), small_db)) as live:
        tab = WidgetClient(live.url)
        tab.hello()
        tab.send({"type": "message", "id": "s1", "text": "what is the return window?"})
        assert tab.recv()["type"] == "ack"
        frames = tab.until_turn_ends()
        tab.close()
    kinds = [f["type"] for f in frames]
    assert kinds == ["typing"] + ["stream"] * 6 + ["stream_end", "bot", "bot", "typing"]
    deltas = [f["delta"] for f in frames if f["type"] == "stream"]
    assert deltas == list(StreamingManager.TOKENS) and {f["id"] for f in frames[1:7]} == {"s1:s"}
    end, answer, more = frames[7], frames[8], frames[9]
    assert end == {"type": "stream_end", "id": "s1:s", "final": "s1:0"}
    assert answer["id"] == "s1:0" and answer["text"] == "".join(deltas)
    assert answer["custom"]["type"] == "answer" and more["text"] == "Anything else?"


def test_transcript_maps_stored_events_to_frames() -> None:
    events = [
        UserUttered(text="what can you do?", message_id="a"),
        BotUttered(
            text="Lots.",
            data={"buttons": [{"title": "Where is my order?", "payload": "/order_status"}]},
        ),
        UserUttered(text="/order_status", message_id="b"),
        BotUttered(text="Your email?"),
        BotUttered(text=None, data={"custom": {"type": "product_cards", "products": []}}),
    ]
    assert transcript(events) == [
        {"type": "user", "id": "a", "text": "what can you do?"},
        {
            "type": "bot",
            "id": "a:0",
            "reply_to": "a",
            "text": "Lots.",
            "buttons": [{"title": "Where is my order?", "payload": "/order_status"}],
        },
        {"type": "user", "id": "b", "text": "Where is my order?"},
        {"type": "bot", "id": "b:0", "reply_to": "b", "text": "Your email?"},
        {
            "type": "bot",
            "id": "b:1",
            "reply_to": "b",
            "custom": {"type": "product_cards", "products": []},
        },
    ]
    assert len(transcript(events, limit=2)) == 2


def test_a_marker_inside_a_baked_value_stays_text() -> None:
    """The script's two markers are replaced in one pass: a title holding the other
    marker's text stays a string, not JSON spliced into a JS string literal."""
    from starlette.testclient import TestClient

    from bot.channels.widget import WORDING_MARKER

    class Handler:
        async def handle(self, message: Any) -> Any:
            return None

    title = WORDING_MARKER + '"</script>'
    widget = WidgetChannel(Handler(), None, look=WidgetLook(title=title))  # type: ignore[arg-type]
    script = TestClient(Starlette(routes=widget.routes())).get("/widget/clerk.js").text
    defaults = re.search(r"var DEFAULTS = (.*);", script)
    assert defaults is not None
    assert json.loads(defaults.group(1))["title"] == title
    assert re.search(r"var WORDING = \{\"currency\": \"USD\"", script)
