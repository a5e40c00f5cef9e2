"""Rasa's Socket.IO channel, talked to by a real Socket.IO client (python-socketio's, over
WebSocket and over HTTP long-polling) on a real server on 127.0.0.1, the way rasa-webchat
talks to a Rasa server."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import socketio
from sqlalchemy import select
from starlette.applications import Starlette

from bot.channels.socketio_channel import SLOW_DOWN, SocketIOChannel, rasa_messages
from bot.channels.widget import OriginPolicy
from bot.store.db import Database
from bot.store.models import Conversation, ConversationEvent
from bot.types import Button, Message, Reply
from tests.conftest import fresh_database
from tests.live import LiveServer


class RasaWebchat:
    """What rasa-webchat does: ask for a session, then utter and read ``bot_uttered``."""

    def __init__(
        self,
        url: str,
        *,
        transports: list[str] | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.client = socketio.SimpleClient()
        self.client.connect(
            url, transports=transports or ["websocket"], headers=headers or {}, wait_timeout=10
        )
        self.session_id: str | None = None

    def start(self, session_id: str | None = None) -> str:
        self.client.emit("session_request", {"session_id": session_id})
        event, sid = self.client.receive(timeout=10)
        assert event == "session_confirm"
        self.session_id = sid
        return sid

    def utter(self, text: str, **extra: Any) -> list[dict[str, Any]]:
        self.client.emit("user_uttered", {"message": text, "session_id": self.session_id, **extra})
        return self.read()

    def read(self, quiet: float = 0.3) -> list[dict[str, Any]]:
        """Every ``bot_uttered`` until the bot has been quiet for ``quiet`` seconds."""
        out = []
        event, data = self.client.receive(timeout=30)
        while True:
            assert event == "bot_uttered"
            out.append(data)
            try:
                event, data = self.client.receive(timeout=quiet)
            except socketio.exceptions.TimeoutError:
                return out

    def text(self, text: str, **extra: Any) -> str:
        return "\n".join(m.get("text") or "" for m in self.utter(text, **extra)).lower()

    def close(self) -> None:
        self.client.disconnect()


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("sio")) as url:
        yield url


@pytest.fixture(scope="module")
def server(database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from bot.app import build, create_app

    parts = build(
        bot_settings(database_url, widget_origins=("https://shop.example",)), encoder=shared_encoder
    )
    with LiveServer(create_app(parts)) as live:
        yield live


@pytest.fixture(scope="module")
def store(server: LiveServer, database_url: str) -> Iterator[Database]:
    db = Database(database_url)
    yield db
    db.dispose()


@pytest.fixture
def webchat(server: LiveServer) -> Iterator[RasaWebchat]:
    chat = RasaWebchat(server.url)
    yield chat
    chat.close()


def test_session_request_is_confirmed(webchat: RasaWebchat) -> None:
    new = webchat.start(None)
    assert len(new) == 32 and int(new, 16) >= 0  # a fresh uuid4 hex, as Rasa makes
    assert webchat.start("my-session-123") == "my-session-123"


def test_user_uttered_gets_bot_uttered(webchat: RasaWebchat, store: Database) -> None:
    sid = webchat.start()
    [greeting] = webchat.utter("hello there")
    assert set(greeting) == {"text"} and "clerk" in greeting["text"].lower()
    with store.session() as s:
        assert s.get(Conversation, f"sio:{sid}").channel == "socketio"


def test_buttons_arrive_as_quick_replies(webchat: RasaWebchat) -> None:
    webchat.start()
    messages = webchat.utter("what can you do?")
    last = messages[-1]
    assert last["quick_replies"][0] == {
        "content_type": "text",
        "title": "Where is my order?",
        "payload": "/order_status",
    }
    # a quick reply sends its payload, as rasa-webchat does
    assert "email" in webchat.text("/order_status")


def test_custom_payloads_and_paragraphs_arrive_as_rasa_sends_them(webchat: RasaWebchat) -> None:
    webchat.start()
    messages = webchat.utter("recommend me a speaker")
    cards = [m for m in messages if m.get("type") == "product_cards"]
    assert cards and {"name", "options", "price", "available"} <= set(cards[0]["products"][0])
    answer = webchat.utter("how much is the Bluetooth Speaker in blue?")
    texts = [m["text"] for m in answer if "text" in m]
    assert len(texts) >= 2 and texts[-1].startswith("Sources:")  # one message per paragraph
    assert any(m.get("type") == "answer" for m in answer)


def test_the_session_persists_across_connections(server: LiveServer, store: Database) -> None:
    first = RasaWebchat(server.url)
    sid = first.start(f"persist-{uuid.uuid4().hex[:8]}")
    assert "email" in first.text("where is my order #W6893533?")
    first.close()

    # a reload: rasa-webchat keeps the session id and asks for it again
    second = RasaWebchat(server.url, transports=["polling", "websocket"])  # upgrades
    assert second.start(sid) == sid
    answer = second.text("ivan.santos3158@example.com")
    assert "#w6893533" in answer and "delivered" in answer
    second.close()
    with store.session() as s:
        users = list(
            s.scalars(
                select(ConversationEvent.data).where(
                    ConversationEvent.conversation_id == f"sio:{sid}",
                    ConversationEvent.type == "user",
                )
            )
        )
    assert [u["text"] for u in users] == [
        "where is my order #W6893533?",
        "ivan.santos3158@example.com",
    ]
    assert all(u["input_channel"] == "socketio" for u in users)


def test_every_socket_of_a_session_hears_the_bot(server: LiveServer) -> None:
    sid = f"tabs-{uuid.uuid4().hex[:8]}"
    one, two = RasaWebchat(server.url), RasaWebchat(server.url)
    one.start(sid)
    two.start(sid)
    one.utter("hello")
    assert "clerk" in two.read()[0]["text"].lower()
    one.close()
    two.close()


def test_custom_data_is_accepted(webchat: RasaWebchat) -> None:
    webchat.start()
    assert "bot" in webchat.text("are you a bot?", customData={"language": "en"})
    assert "welcome" in webchat.text("thanks", customData=json.dumps({"language": "en"}))


def test_an_origin_off_the_allow_list_cannot_connect(server: LiveServer) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        RasaWebchat(server.url, transports=["polling"], headers={"Origin": "https://evil.example"})
    # the Engine.IO handshake a browser on each page would make
    handshake = server.url + "/socket.io/?EIO=4&transport=polling"
    evil = httpx.get(handshake, headers={"Origin": "https://evil.example"})
    assert evil.status_code == 400 and "access-control-allow-origin" not in evil.headers
    shop = httpx.get(handshake, headers={"Origin": "https://shop.example"})
    assert shop.status_code == 200
    assert shop.headers["access-control-allow-origin"] == "https://shop.example"
    assert '"sid"' in shop.text
    own = httpx.get(handshake, headers={"Origin": server.url})
    assert own.status_code == 200


def test_a_rate_limited_shopper_is_told_to_slow_down() -> None:
    seen: list[str] = []

    class Echo:
        async def handle(self, message: Message) -> list[Reply]:
            seen.append(message.text)
            return [Reply(text=f"echo: {message.text}")]

    channel = SocketIOChannel(Echo(), origins=OriginPolicy(), rate_limit=2)
    with LiveServer(Starlette(routes=channel.routes(), lifespan=_lifespan(channel))) as live:
        chat = RasaWebchat(live.url)
        chat.start()
        assert chat.text("one") == "echo: one"
        assert chat.text("two") == "echo: two"
        assert chat.utter("three") == [{"text": SLOW_DOWN}]
        chat.close()
    assert seen == ["one", "two"]


def _lifespan(channel: SocketIOChannel):  # type: ignore[no-untyped-def]
    import contextlib

    @contextlib.asynccontextmanager
    async def lifespan(app):  # type: ignore[no-untyped-def]
        async with channel.running():
            yield

    return lifespan


def test_rasa_messages_shape() -> None:
    reply = Reply(
        text="First.\n\nSecond.",
        buttons=(Button("Yes", "/affirm"),),
        image="https://img.example/x.png",
        custom={"type": "answer"},
    )
    assert rasa_messages(reply) == [
        {"text": "First."},
        {
            "text": "Second.",
            "quick_replies": [{"content_type": "text", "title": "Yes", "payload": "/affirm"}],
        },
        {"attachment": {"type": "image", "payload": {"src": "https://img.example/x.png"}}},
        {"type": "answer"},
    ]
    assert rasa_messages(Reply(custom={"type": "product_cards"})) == [{"type": "product_cards"}]
