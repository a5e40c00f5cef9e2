"""CSAT: the bot asks for a 👍/👎 at the end of a conversation and keeps the rating.

Through real servers on 127.0.0.1, on SQLite and PostgreSQL, with transcripts sealed
(``CLERK_TRANSCRIPT_KEY``): a goodbye gets the request once a session; an agent closing a
handoff sends it; REST clients post the rating, the widget and Socket.IO send it over their
socket, Telegram's inline keyboard answers the callback query (the Chromium click on 👍 is
in test_widget_browser.py); refusals (a bad rating, another shopper's or another channel's
conversation, one never asked) store nothing; 16 shoppers rate at once, each in their own
conversation.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select
from websockets.sync.client import connect

from bot.channels.telegram import TRY_AGAIN
from bot.config import Settings
from bot.dialogue.feedback import asked_in_session, checked_rating, ever_asked
from bot.errors import BadRating
from bot.handoff.agents import AgentAccounts
from bot.handoff.outbox import Outbox, OutgoingMessage, Relay
from bot.store.db import Database
from bot.store.models import Conversation, ConversationEvent, OutboxMessage
from bot.types import BotUttered, FeedbackGiven, SessionStarted, UserUttered
from tests.live import Chat, LiveServer, bot_server
from tests.test_handoff import PASSWORD, Agent, poll, wait_until
from tests.test_telegram import (
    WEBHOOK_TOKEN,
    FakeBotAPI,
    callback_update,
    deliver,
    text_update,
)

_tg_chats = itertools.count(880_000)  # one chat each, across both databases' servers
ASK = "Before you go: how did we do today?"
THANKS = "Thanks for your feedback!"
REFUSED = "Sorry, I couldn't record that rating."


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeBotAPI]:
    api = FakeBotAPI({WEBHOOK_TOKEN})
    with LiveServer(api.app) as live:
        api.url = live.url  # type: ignore[attr-defined]
        yield api


@pytest.fixture(scope="module")
def server(
    module_database_url: str, bot_settings, shared_encoder, fake_api
) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    settings = dataclasses.replace(
        bot_settings(module_database_url),
        transcript_key=Fernet.generate_key().decode(),
        telegram_token=WEBHOOK_TOKEN,
        telegram_base_url=fake_api.url,
        telegram_webhook_url="https://clerk.example/webhooks/telegram",
    )
    with bot_server(settings, shared_encoder) as live:
        AgentAccounts(live.parts.db).add("ana", PASSWORD, "agent")  # type: ignore[attr-defined]
        yield live


@pytest.fixture(scope="module")
def store(server: LiveServer, module_database_url: str) -> Iterator[Database]:
    db = Database(module_database_url)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def ana(server: LiveServer) -> Agent:
    return Agent(server.url, "ana")


@pytest.fixture
def chat(server: LiveServer) -> Chat:
    return Chat(server.url)


def stored(db: Database, conversation_id: str) -> list[dict[str, Any]]:
    """The conversation's events as stored (sealed values stay sealed)."""
    with db.session() as s:
        return list(
            s.scalars(
                select(ConversationEvent.data)
                .where(ConversationEvent.conversation_id == conversation_id)
                .order_by(ConversationEvent.seq)
            ).all()
        )


def ratings(db: Database, conversation_id: str) -> list[str]:
    return [e["rating"] for e in stored(db, conversation_id) if e["event"] == "feedback"]


def requests(db: Database, conversation_id: str) -> list[dict[str, Any]]:
    return [
        e
        for e in stored(db, conversation_id)
        if e["event"] == "bot" and (e["data"].get("custom") or {}).get("type") == "feedback_request"
    ]


def rate(server: LiveServer, sender: Any, rating: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/webhooks/rest/feedback",
        json={"sender": sender, "rating": rating},
        timeout=30,
    )


def feedback_request(replies: list[dict[str, Any]]) -> dict[str, Any] | None:
    found = [r for r in replies if (r.get("custom") or {}).get("type") == "feedback_request"]
    assert len(found) <= 1, replies
    return found[0] if found else None


# --------------------------------------------------------------------------- when to ask


def test_a_goodbye_gets_the_request_once_a_session(chat: Chat, store: Database) -> None:
    chat.say("hello")
    replies = chat.say("bye!")
    assert "bye" in replies[0]["text"].lower()  # the store's goodbye first
    request = feedback_request(replies)
    assert request is not None and request["text"] == ASK
    assert request["custom"]["ratings"] == [
        {"rating": "up", "label": "Good, this helped"},
        {"rating": "down", "label": "Bad, this did not help"},
    ]
    again = chat.say("goodbye")
    assert "bye" in again[0]["text"].lower()
    assert feedback_request(again) is None  # asked once in this session
    assert len(requests(store, chat.conversation_id)) == 1
    # the request is no action of its own: rules and stories see the goodbye as written
    actions = [e["name"] for e in stored(store, chat.conversation_id) if e["event"] == "action"]
    assert "action_ask_feedback" not in actions and actions.count("utter_goodbye") == 2


def test_a_new_session_may_be_asked_again() -> None:
    request = BotUttered(text=ASK, data={"custom": {"type": "feedback_request", "ratings": []}})
    hello = UserUttered(text="hi")
    assert asked_in_session([hello, request])
    assert not asked_in_session([hello, request, SessionStarted()])
    assert ever_asked([hello, request, SessionStarted()])
    assert not ever_asked([hello])


def test_the_closing_responses_are_a_setting(tmp_path: Path) -> None:
    def load(**env: str) -> Settings:
        return Settings.load({"CLERK_PROJECT": str(tmp_path), **env}, config_file=tmp_path / "x")

    assert load().feedback_after == ("utter_goodbye",)
    assert load(CLERK_FEEDBACK_AFTER="utter_goodbye, utter_bye").feedback_after == (
        "utter_goodbye",
        "utter_bye",
    )
    assert load(CLERK_FEEDBACK_AFTER="none").feedback_after == ()


def test_an_agent_closing_a_handoff_asks_through_the_outbox(
    server: LiveServer, chat: Chat, ana: Agent, store: Database
) -> None:
    chat.text("I want to talk to a human")
    ana.do("claim", {"id": chat.conversation_id})
    ana.do("close", {"id": chat.conversation_id, "resolution": "refund issued"})
    waiting = poll(server.url, chat.sender)
    assert "closed this conversation" in waiting[-2]["text"]
    request = waiting[-1]
    assert request["text"] == ASK and request["custom"]["type"] == "feedback_request"
    assert [r["rating"] for r in request["custom"]["ratings"]] == ["up", "down"]
    assert request["custom"]["id"]  # the outbox message's id, stable across pushes
    [event] = requests(store, chat.conversation_id)
    assert event["metadata"]["message_id"] == request["custom"]["id"]
    # the row holds the plain question in ``text`` (what a worker that does not know the
    # kind sends) and the thumbs in ``payload``
    with store.session() as s:
        row = s.scalars(
            select(OutboxMessage).where(
                OutboxMessage.conversation_id == chat.conversation_id,
                OutboxMessage.kind == "feedback",
            )
        ).one()
        assert row.text == ASK
        assert row.payload == {k: v for k, v in request["custom"].items() if k != "id"}
    thanks = rate(server, chat.sender, "up")
    assert thanks.status_code == 200, thanks.text
    assert ratings(store, chat.conversation_id) == ["up"]
    # the shopper then says goodbye in the same session: not asked a second time
    assert feedback_request(chat.say("bye")) is None


async def test_an_unreadable_payload_goes_as_text_and_stops_nothing(db: Database) -> None:
    """A feedback row without a readable payload (a bad write, a row an older worker made)
    is sent as its plain text and counted; the messages queued after it still go."""
    with db.session() as s:
        s.add(Conversation(id="web:broken", channel="web"))
        s.flush()
        Outbox.add(s, "web:broken", "web", ASK, kind="feedback")  # no payload at all
        s.add(
            OutboxMessage(
                message_id="m-list",
                conversation_id="web:broken",
                channel="web",
                kind="feedback",
                text=ASK,
                payload=["not", "an", "object"],
            )
        )
        s.flush()
        Outbox.add(s, "web:broken", "web", "Ana here again", kind="agent", sender="ana")
    outbox = Outbox(db, Relay())
    pushed: list[OutgoingMessage] = []

    class Widget:
        async def deliver(self, message: OutgoingMessage) -> bool:
            pushed.append(message)
            return True

    outbox.register("web", Widget())
    assert await outbox.push("web:broken") == 3
    assert [m.to_reply().text for m in pushed] == [ASK, ASK, "Ana here again"]
    assert [(m.to_reply().custom or {})["type"] for m in pushed] == [
        "handoff_notice",
        "handoff_notice",
        "agent_message",
    ]
    assert outbox.bad_payloads == 2 and outbox.failures == 0


async def test_the_request_after_a_close_is_rendered_once(tmp_path: Path, db: Database) -> None:
    """The shopper (outbox) and the tracker get the same words, even from a response with
    several variants (``Domain.render`` picks one at random)."""
    from bot.dialogue.feedback import ASK_RESPONSE
    from bot.types import ConversationId, HandoffEvent, Message

    manager = _moodbot(tmp_path, OWN_END, db, feedback_after=())
    wordings = itertools.count()
    text = manager.feedback.domain.text

    def varying(name: str, *args: Any, **kwargs: Any) -> str:
        if name == ASK_RESPONSE:
            return f"How did we do? (variant {next(wordings)})"
        return text(name, *args, **kwargs)

    manager.feedback.domain.text = varying  # type: ignore[method-assign]
    cid = ConversationId("rest:closed-once")
    try:
        await manager.handle(Message(conversation_id=cid, text="hi", channel="rest"))
        await manager.run_external(
            cid, lambda _s, _conv, tracker: tracker.apply(HandoffEvent(step="closed"))
        )
    finally:
        manager.close()
    [event] = requests(db, cid)
    with db.session() as s:
        row = s.scalars(select(OutboxMessage).where(OutboxMessage.conversation_id == cid)).one()
    assert row.text == event["text"] == "How did we do? (variant 0)"


# --------------------------------------------------------------------------- REST


def test_a_rest_rating_is_stored_and_thanked_and_the_last_counts(
    server: LiveServer, chat: Chat, store: Database
) -> None:
    chat.say("my email is ivan.santos3158@example.com")  # sealed in the database
    assert feedback_request(chat.say("bye")) is not None
    r = rate(server, chat.sender, "up")
    assert r.status_code == 200, r.text
    [thanks] = r.json()
    assert thanks["recipient_id"] == chat.sender and thanks["text"] == THANKS
    assert thanks["custom"]["type"] == "feedback_thanks" and thanks["custom"]["rating"] == "up"
    again = rate(server, chat.sender, "up")  # pressed twice: no new rating, same thanks
    assert again.status_code == 200 and again.json() == r.json()
    assert ratings(store, chat.conversation_id) == ["up"]
    assert rate(server, chat.sender, "down").status_code == 200  # changed their mind
    assert ratings(store, chat.conversation_id) == ["up", "down"]  # both kept; the last counts
    events = stored(store, chat.conversation_id)
    assert "ivan.santos3158@example.com" not in json.dumps(events)  # sealing still holds
    feedback = [e for e in events if e["event"] == "feedback"]
    assert all(set(e) == {"event", "timestamp", "rating"} for e in feedback)


def test_rest_ratings_are_throttled_per_conversation(
    server: LiveServer, chat: Chat, store: Database
) -> None:
    assert feedback_request(chat.say("bye")) is not None
    answers = [rate(server, chat.sender, ("up", "down")[n % 2]) for n in range(25)]
    codes = [a.status_code for a in answers]
    assert codes[:20] == [200] * 20 and set(codes[20:]) == {429}  # the chat channels' 20/min
    assert answers[-1].json()["reason"] == "rate_limited"
    assert int(answers[-1].headers["retry-after"]) >= 1
    assert len(ratings(store, chat.conversation_id)) == 20


def test_telegram_ratings_are_throttled_per_chat(
    server: LiveServer, fake_api: FakeBotAPI, store: Database
) -> None:
    chat = next(_tg_chats)
    deliver(server, text_update(chat, "bye"))
    asked = fake_api.replies(chat, 2)[-1]
    presses = [callback_update(chat, asked, ("#fb:up", "#fb:down")[n % 2]) for n in range(22)]
    for press in presses:
        deliver(server, press)
    last = presses[-1]["callback_query"]["id"]
    answer = fake_api.wait_for(
        lambda: [
            p for p in fake_api.calls_to("answerCallbackQuery") if p["callback_query_id"] == last
        ]
    )
    assert answer[0]["text"] == TRY_AGAIN
    fake_api.wait_for(lambda: len(ratings(store, f"tg:{chat}")) == 20)


def test_a_retried_message_gets_its_own_replies_not_the_thanks_said_after(
    server: LiveServer, chat: Chat
) -> None:
    def say(text: str, message_id: str) -> list[dict[str, Any]]:
        r = httpx.post(
            f"{server.url}/webhooks/rest/webhook",
            json={"sender": chat.sender, "message": text, "metadata": {"message_id": message_id}},
            timeout=60,
        )
        assert r.status_code == 200, r.text
        return list(r.json())

    first = say("bye", "bye-1")
    assert feedback_request(first) is not None
    assert rate(server, chat.sender, "up").status_code == 200
    assert say("bye", "bye-1") == first  # the client's retry: the same replies, no thanks


@pytest.mark.parametrize(
    ("body", "status", "reason"),
    [
        (b"{not json", 400, "bad_body"),
        (b"[]", 400, "bad_body"),
        (b'{"rating": "up"}', 400, "bad_body"),
        (b'{"sender": "", "rating": "up"}', 400, "bad_body"),
        (b'{"sender": "someone", "rating": "up", "x": "' + b"a" * 70_000 + b'"}', 413, "bad_body"),
        (b'{"sender": "someone"}', 400, "bad_rating"),
        (b'{"sender": "someone", "rating": "sideways"}', 400, "bad_rating"),
        (b'{"sender": "someone", "rating": 1}', 400, "bad_rating"),
        (b'{"sender": "someone", "rating": "UP"}', 400, "bad_rating"),
        (b'{"sender": "nobody-ever-wrote", "rating": "up"}', 404, "unknown_conversation"),
    ],
)
def test_bad_ratings_are_refused_clearly(
    server: LiveServer, body: bytes, status: int, reason: str
) -> None:
    httpx.post(f"{server.url}/webhooks/rest/webhook", json={"sender": "someone", "message": "hi"})
    r = httpx.post(
        f"{server.url}/webhooks/rest/feedback",
        content=body,
        headers={"content-type": "application/json"},
    )
    assert r.status_code == status, r.text
    assert r.json()["error"] and r.json()["reason"] == reason
    if reason == "bad_rating":
        assert "'up', 'down'" in r.json()["error"]


def test_a_conversation_never_asked_cannot_be_rated(
    server: LiveServer, chat: Chat, store: Database
) -> None:
    chat.say("hello")
    r = rate(server, chat.sender, "up")
    assert r.status_code == 409 and r.json()["reason"] == "not_asked", r.text
    assert ratings(store, chat.conversation_id) == []


def test_a_shopper_rates_only_their_own_conversation_in_their_own_channel(
    server: LiveServer, store: Database, fake_api: FakeBotAPI
) -> None:
    # a Telegram chat and a widget session that were both asked
    tg_chat = next(_tg_chats)
    deliver(server, text_update(tg_chat, "bye"))
    fake_api.wait_for(lambda: requests(store, f"tg:{tg_chat}"))
    session = _widget_session_asked(server)
    before = {cid: len(stored(store, cid)) for cid in (f"tg:{tg_chat}", f"web:{session}")}
    # a REST client naming them gets its own channel's conversations, which do not exist
    for sender in (f"tg:{tg_chat}", str(tg_chat), f"web:{session}", session):
        r = rate(server, sender, "up")
        assert r.status_code == 404 and r.json()["reason"] == "unknown_conversation", sender
    after = {cid: len(stored(store, cid)) for cid in before}
    assert after == before  # nothing written anywhere


def test_the_manager_refuses_a_conversation_of_another_channel(server: LiveServer) -> None:
    """Below the channels: the entry point checks the stored channel too."""
    chat = Chat(server.url)
    chat.say("bye")
    manager = server.parts.manager  # type: ignore[attr-defined]

    async def as_widget() -> None:
        await manager.record_feedback(chat.conversation_id, "up", channel="web")

    from bot.errors import UnknownConversation

    with pytest.raises(UnknownConversation):
        asyncio.run(as_widget())
    with pytest.raises(BadRating):
        checked_rating("meh")


# --------------------------------------------------------------------------- widget


def _ws_url(server: LiveServer) -> str:
    return server.url.replace("http://", "ws://") + "/widget/ws"


def _frames_until(ws: Any, pred: Any) -> list[dict[str, Any]]:
    seen = []
    while True:
        frame = json.loads(ws.recv(timeout=30))
        seen.append(frame)
        if pred(frame):
            return seen


def _widget_session_asked(server: LiveServer) -> str:
    with connect(_ws_url(server), proxy=None) as ws:
        ws.send(json.dumps({"type": "hello", "session": None}))
        session = json.loads(ws.recv(timeout=30))["session"]
        ws.send(json.dumps({"type": "message", "id": "m1", "text": "bye"}))
        _frames_until(ws, lambda f: f == {"type": "typing", "on": False})
    return str(session)


def test_the_widget_rates_over_its_socket_and_its_history_remembers(
    server: LiveServer, store: Database
) -> None:
    with connect(_ws_url(server), proxy=None) as ws:
        ws.send(json.dumps({"type": "feedback", "rating": "up"}))
        assert json.loads(ws.recv(timeout=30))["code"] == "hello_first"
        ws.send(json.dumps({"type": "hello", "session": None}))
        session = json.loads(ws.recv(timeout=30))["session"]
        ws.send(json.dumps({"type": "feedback", "rating": "up"}))  # nothing said yet
        refused = json.loads(ws.recv(timeout=30))
        assert refused["code"] == "feedback_refused"
        assert refused["reason"] == "unknown_conversation"
        ws.send(json.dumps({"type": "message", "id": "m0", "text": "hello"}))
        _frames_until(ws, lambda f: f == {"type": "typing", "on": False})
        ws.send(json.dumps({"type": "feedback", "rating": "up"}))  # nothing asked yet
        refused = json.loads(ws.recv(timeout=30))
        assert refused["code"] == "feedback_refused" and refused["reason"] == "not_asked"
        ws.send(json.dumps({"type": "message", "id": "m1", "text": "bye"}))
        frames = _frames_until(ws, lambda f: f == {"type": "typing", "on": False})
        [request] = [f for f in frames if (f.get("custom") or {}).get("type") == "feedback_request"]
        assert request["text"] == ASK and request["id"].startswith("m1:")
        ws.send(json.dumps({"type": "feedback", "rating": "thumbs"}))
        bad = json.loads(ws.recv(timeout=30))
        assert bad["code"] == "feedback_refused" and bad["reason"] == "bad_rating"
        ws.send(json.dumps({"type": "feedback", "rating": "up"}))
        thanks = _frames_until(ws, lambda f: f.get("type") == "bot")[-1]
        assert thanks["text"] == THANKS and thanks["custom"]["type"] == "feedback_thanks"
        assert thanks["custom"]["rating"] == "up" and thanks["id"].startswith("agent:")
    cid = f"web:{session}"
    assert ratings(store, cid) == ["up"]
    with connect(_ws_url(server), proxy=None) as ws:  # a reload: the request shows as rated
        ws.send(json.dumps({"type": "hello", "session": session}))
        history = json.loads(ws.recv(timeout=30))["history"]
    [shown] = [h for h in history if (h.get("custom") or {}).get("type") == "feedback_request"]
    assert shown["id"] == request["id"] and shown["custom"]["rated"] == "up"
    assert [h["id"] for h in history if h.get("text") == THANKS] == [thanks["id"]]


def test_the_widget_gets_the_request_live_when_an_agent_closes(
    server: LiveServer, ana: Agent, store: Database
) -> None:
    with connect(_ws_url(server), proxy=None) as ws:
        ws.send(json.dumps({"type": "hello", "session": None}))
        session = json.loads(ws.recv(timeout=30))["session"]
        ws.send(json.dumps({"type": "message", "id": "m1", "text": "I want to talk to a human"}))
        _frames_until(ws, lambda f: f == {"type": "typing", "on": False})
        cid = f"web:{session}"
        ana.do("claim", {"id": cid})
        ana.do("close", {"id": cid, "resolution": "answered by phone"})
        got = _frames_until(ws, lambda f: (f.get("custom") or {}).get("type") == "feedback_request")
        request = got[-1]
        assert request["text"] == ASK and request["id"] == f"agent:{request['custom']['id']}"
        ws.send(json.dumps({"type": "feedback", "rating": "down"}))
        thanks = _frames_until(ws, lambda f: f.get("type") == "bot")[-1]
        assert thanks["custom"]["type"] == "feedback_thanks"
    assert ratings(store, cid) == ["down"]
    with connect(_ws_url(server), proxy=None) as ws:  # the history knows it by the same id
        ws.send(json.dumps({"type": "hello", "session": session}))
        history = json.loads(ws.recv(timeout=30))["history"]
    [shown] = [h for h in history if (h.get("custom") or {}).get("type") == "feedback_request"]
    assert shown["id"] == request["id"] and shown["custom"]["rated"] == "down"


def test_a_slow_rating_does_not_hold_up_the_widget_socket(
    server: LiveServer, store: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rating may wait on the conversation (up to ``WAIT_SECONDS``) as a turn does: the
    socket answers pings meanwhile, and the thanks follows."""
    manager = server.parts.manager  # type: ignore[attr-defined]
    record = manager.record_feedback

    async def slow(*args: Any, **kwargs: Any) -> Any:
        await asyncio.sleep(3)
        return await record(*args, **kwargs)

    with connect(_ws_url(server), proxy=None) as ws:
        ws.send(json.dumps({"type": "hello", "session": None}))
        session = json.loads(ws.recv(timeout=30))["session"]
        ws.send(json.dumps({"type": "message", "id": "m1", "text": "bye"}))
        _frames_until(ws, lambda f: f == {"type": "typing", "on": False})
        monkeypatch.setattr(manager, "record_feedback", slow)
        ws.send(json.dumps({"type": "feedback", "rating": "up"}))
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=2)) == {"type": "pong"}  # before the thanks
        thanks = _frames_until(ws, lambda f: f.get("type") == "bot")[-1]
        assert thanks["custom"]["type"] == "feedback_thanks"
    assert ratings(store, f"web:{session}") == ["up"]


def test_a_socketio_client_rates_its_own_sessions_conversation_only(
    server: LiveServer, store: Database
) -> None:
    from tests.test_socketio import RasaWebchat

    webchat, other = RasaWebchat(server.url), RasaWebchat(server.url)
    try:
        session = webchat.start()
        said = webchat.utter("bye")
        [request] = [m for m in said if m.get("type") == "feedback_request"]
        assert [r["rating"] for r in request["ratings"]] == ["up", "down"]
        other.start()
        other.utter("hello")
        # naming the first session in the data changes nothing: it rates its own, never asked
        other.client.emit("feedback", {"rating": "up", "session_id": session})
        event, refusal = other.client.receive(timeout=10)
        assert event == "clerk_error" and refusal["reason"] == "not_asked"
        webchat.client.emit("feedback", {"rating": "up"})
        thanks = webchat.read()
        assert thanks[0]["text"] == THANKS and thanks[-1]["type"] == "feedback_thanks"
    finally:
        webchat.close()
        other.close()
    assert ratings(store, f"sio:{session}") == ["up"]


# --------------------------------------------------------------------------- Telegram


def test_telegram_asks_with_an_inline_keyboard_and_records_the_press(
    server: LiveServer, fake_api: FakeBotAPI, store: Database
) -> None:
    chat = next(_tg_chats)
    deliver(server, text_update(chat, "bye"))
    sent = fake_api.replies(chat, 2)
    asked = sent[-1]
    assert asked["text"] == ASK
    [row] = asked["reply_markup"]["inline_keyboard"]
    assert [b["callback_data"] for b in row] == ["#fb:up", "#fb:down"]
    assert row[0]["text"] == "\N{THUMBS UP SIGN} Good, this helped"
    # forged callback data: refused, nothing stored, the keyboard stays
    forged = callback_update(chat, asked, "#fb:sideways")
    deliver(server, forged)
    answer = fake_api.wait_for(
        lambda: [
            p
            for p in fake_api.calls_to("answerCallbackQuery")
            if p["callback_query_id"] == forged["callback_query"]["id"]
        ]
    )
    assert answer[0]["text"] == REFUSED
    assert ratings(store, f"tg:{chat}") == []
    # the real press: answered, recorded for this chat, keyboard removed, thanks sent
    press = callback_update(chat, asked, "#fb:down")
    deliver(server, press)
    thanks = fake_api.replies(chat, 3)[-1]
    assert thanks["text"] == THANKS
    assert any(
        p["callback_query_id"] == press["callback_query"]["id"] and not p.get("text")
        for p in fake_api.calls_to("answerCallbackQuery")
    )
    edits = [p for p in fake_api.calls_to("editMessageReplyMarkup") if p["chat_id"] == chat]
    assert edits and edits[-1]["message_id"] == asked["message_id"]
    assert not edits[-1].get("reply_markup")
    assert ratings(store, f"tg:{chat}") == ["down"]


def test_telegram_refuses_a_rating_for_a_chat_never_asked(
    server: LiveServer, fake_api: FakeBotAPI, store: Database
) -> None:
    chat = next(_tg_chats)
    sent = {"message_id": 1, "date": 0, "chat": {"id": chat, "type": "private"}, "text": "x"}
    press = callback_update(chat, sent, "#fb:up")
    deliver(server, press)
    answer = fake_api.wait_for(
        lambda: [
            p
            for p in fake_api.calls_to("answerCallbackQuery")
            if p["callback_query_id"] == press["callback_query"]["id"]
        ]
    )
    assert not answer[0].get("text")  # answered at once; the store's refusal follows
    assert [m["text"] for m in fake_api.replies(chat)] == [REFUSED]
    assert stored(store, f"tg:{chat}") == []


def test_telegram_thanks_a_rating_even_when_the_callback_answer_fails(
    server: LiveServer, fake_api: FakeBotAPI, store: Database
) -> None:
    """Telegram refuses to answer a query that is too old: the rating is still recorded
    and thanked."""
    chat = next(_tg_chats)
    deliver(server, text_update(chat, "bye"))
    asked = fake_api.replies(chat, 2)[-1]
    assert asked["text"] == ASK
    fake_api.fail_next(
        "answerCallbackQuery",
        400,
        description="Bad Request: query is too old and response timeout expired",
    )
    deliver(server, callback_update(chat, asked, "#fb:up"))
    assert fake_api.replies(chat, 3)[-1]["text"] == THANKS
    assert ratings(store, f"tg:{chat}") == ["up"]


def test_telegram_gets_the_request_when_an_agent_closes(
    server: LiveServer, fake_api: FakeBotAPI, ana: Agent, store: Database
) -> None:
    chat = next(_tg_chats)
    deliver(server, text_update(chat, "I want to talk to a human"))
    wait_until(lambda: ana.entry(f"tg:{chat}"))
    ana.do("claim", {"id": f"tg:{chat}"})
    ana.do("close", {"id": f"tg:{chat}", "resolution": "sorted"})
    asked = fake_api.wait_for(lambda: [m for m in fake_api.sent_to(chat) if m.get("text") == ASK])[
        -1
    ]
    [row] = asked["reply_markup"]["inline_keyboard"]
    deliver(server, callback_update(chat, asked, row[0]["callback_data"]))
    fake_api.wait_for(lambda: ratings(store, f"tg:{chat}") == ["up"])


# --------------------------------------------------------------------------- many at once


async def test_sixteen_shoppers_rate_at_once_each_in_their_own_conversation(
    server: LiveServer, store: Database
) -> None:
    senders = [f"csat-{n}-{uuid.uuid4().hex[:6]}" for n in range(16)]
    wanted = {s: ("up" if n % 3 else "down") for n, s in enumerate(senders)}

    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:

        async def goodbye(sender: str) -> list[dict[str, Any]]:
            r = await client.post(
                "/webhooks/rest/webhook", json={"sender": sender, "message": "bye"}
            )
            assert r.status_code == 200, r.text
            return list(r.json())

        async def thumb(sender: str) -> httpx.Response:
            return await client.post(
                "/webhooks/rest/feedback", json={"sender": sender, "rating": wanted[sender]}
            )

        said = await asyncio.gather(*(goodbye(s) for s in senders))
        assert all(feedback_request(replies) is not None for replies in said)
        answers = await asyncio.gather(*(thumb(s) for s in senders))
    assert [a.status_code for a in answers] == [200] * len(senders)
    for sender in senders:
        assert ratings(store, f"rest:{sender}") == [wanted[sender]]


def test_each_refusal_of_a_rating_carries_its_own_status() -> None:
    """The error tree says what handlers map: ``InputError`` is 400, so a refusal that is
    404 or 409 is no ``InputError``."""
    from bot.errors import (
        FeedbackNotAsked,
        FeedbackRefused,
        FeedbackTooLate,
        InputError,
        UnknownConversation,
    )

    assert not issubclass(FeedbackRefused, InputError)
    refusals = [
        BadRating("x", ("up", "down")),
        UnknownConversation("c"),
        FeedbackNotAsked("c"),
        FeedbackTooLate("c"),
    ]
    assert [(e.reason, e.status) for e in refusals] == [
        ("bad_rating", 400),
        ("unknown_conversation", 404),
        ("not_asked", 409),
        ("session_ended", 409),
    ]


def test_feedback_events_parse_back_as_feedback_given() -> None:
    from bot.types import event_from_dict

    event = event_from_dict({"event": "feedback", "timestamp": 1.0, "rating": "up"})
    assert event == FeedbackGiven(rating="up", timestamp=1.0)


# --------------------------------------------------------------------------- a store's own end


def _moodbot(tmp_path: Path, rules: str, db: Database, feedback_after: tuple[str, ...]) -> Any:
    from bot.actions import InProcessActionRunner
    from bot.dialogue.domain import Domain
    from bot.dialogue.manager import DialogueManager
    from bot.dialogue.policy import FlowPolicy
    from bot.dialogue.stories import DialogueData
    from tests.rasa_projects import DOMAIN
    from tests.test_actions import Parse, ScriptedParser

    (tmp_path / "domain.yml").write_text(DOMAIN)
    data = tmp_path / "data"
    data.mkdir()
    (data / "rules.yml").write_text(rules)
    parser = ScriptedParser()
    parser.script("bye", Parse("goodbye"))
    parser.script("hi", Parse("greet"))
    return DialogueManager(
        domain=Domain.load(tmp_path / "domain.yml"),
        policy=FlowPolicy(DialogueData.load(data)),
        nlu=parser,
        actions=InProcessActionRunner([], db=db),
        db=db,
        feedback_after=feedback_after,
    )


OWN_END = """\
version: "3.1"
rules:
- rule: goodbye, then the store asks for a rating itself
  steps:
  - intent: goodbye
  - action: utter_goodbye
  - action: action_ask_feedback
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
"""


async def test_a_store_ends_conversations_its_own_way_with_action_ask_feedback(
    tmp_path: Path, db: Database
) -> None:
    from bot.types import ConversationId, Message

    manager = _moodbot(tmp_path, OWN_END, db, feedback_after=())
    cid = ConversationId("rest:moody")
    try:

        async def say(text: str) -> list[Any]:
            return await manager.handle(Message(conversation_id=cid, text=text, channel="rest"))

        first = await say("bye")
        assert [(r.custom or {}).get("type") for r in first] == [None, "feedback_request"]
        assert first[0].text == "Bye"  # the store's goodbye, then the request
        second = await say("bye")
        assert [(r.custom or {}).get("type") for r in second] == [None]  # once a session
        [thanks] = await manager.record_feedback(cid, "up", channel="rest")
        assert thanks.text == THANKS
        assert ratings(db, cid) == ["up"]
        await manager.record_feedback(cid, "up", channel="rest")  # a repeat: not counted
        await manager.record_feedback(cid, "down", channel="rest")
        assert manager.stats.ratings == 2
    finally:
        manager.close()


async def test_a_rating_is_refused_once_its_session_has_ended(
    tmp_path: Path, db: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A late thumb would append fresh events to an old session (and the next message would
    carry that session on): refused, nothing stored, whether the session expired or a new
    one began."""
    import time

    from bot.errors import FeedbackTooLate
    from bot.types import ConversationId, Message

    manager = _moodbot(tmp_path, OWN_END, db, feedback_after=())
    clock = [time.time()]
    monkeypatch.setattr(time, "time", lambda: clock[0])
    expired, renewed = ConversationId("rest:late"), ConversationId("rest:renewed")
    try:
        for cid in (expired, renewed):
            said = await manager.handle(Message(conversation_id=cid, text="bye", channel="rest"))
            assert [(r.custom or {}).get("type") for r in said] == [None, "feedback_request"]
        clock[0] += 61 * 60  # the domain's session_expiration_time is 60 minutes
        with pytest.raises(FeedbackTooLate):
            await manager.record_feedback(expired, "up", channel="rest")
        await manager.handle(Message(conversation_id=renewed, text="hi", channel="rest"))
        with pytest.raises(FeedbackTooLate) as refused:
            await manager.record_feedback(renewed, "up", channel="rest")
    finally:
        manager.close()
    assert refused.value.reason == "session_ended" and refused.value.status == 409
    assert ratings(db, expired) == ratings(db, renewed) == []


def test_a_closing_response_the_domain_lacks_is_warned_of_at_load(
    caplog: pytest.LogCaptureFixture,
) -> None:
    from bot.dialogue.domain import Domain
    from bot.dialogue.feedback import Feedback

    domain = Domain.from_dict({"responses": {"utter_goodbye": [{"text": "Bye"}]}})
    with caplog.at_level("WARNING", logger="bot.dialogue.feedback"):
        Feedback(domain, ("utter_goodbye", "utter_see_you"))
    [warning] = [r.getMessage() for r in caplog.records if "feedback_after" in r.getMessage()]
    assert "'utter_see_you', which is no response of the domain" in warning


async def test_a_store_may_never_ask_after_a_goodbye(tmp_path: Path, db: Database) -> None:
    from bot.errors import FeedbackNotAsked
    from bot.types import ConversationId, Message
    from tests.rasa_projects import RULES

    manager = _moodbot(tmp_path, RULES, db, feedback_after=())
    cid = ConversationId("rest:quiet")
    try:
        replies = await manager.handle(Message(conversation_id=cid, text="bye", channel="rest"))
        assert [r.text for r in replies] == ["Bye"]
        with pytest.raises(FeedbackNotAsked):
            await manager.record_feedback(cid, "up", channel="rest")
        assert ratings(db, cid) == []
    finally:
        manager.close()
