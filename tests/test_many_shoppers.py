"""Many shoppers at once, through real servers on 127.0.0.1, on SQLite and PostgreSQL:
identities that never cross channels, retries handled once, concurrent shoppers that do not
wait for each other, a hung action server that delays nobody else, 503 instead of a freeze.
Clients are concurrent async clients (``httpx.AsyncClient`` + ``asyncio.gather``)."""

from __future__ import annotations

import asyncio
import dataclasses
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any, Self

import httpx
import pytest
from sqlalchemy import func, select

from bot.store.db import Database
from bot.store.models import Conversation, ConversationEvent, Order, OrderChange
from bot.types import ConversationId, Message
from tests.live import LiveServer, bot_server

EMAIL = "ivan.santos3158@example.com"  # owns #W6893533 (and others)
ORDER = "#W6893533"


@pytest.fixture(scope="module")
def settings(module_database_url: str, bot_settings):  # type: ignore[no-untyped-def]
    return bot_settings(module_database_url)


@pytest.fixture(scope="module")
def store(settings) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    db = Database(settings.database_url)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def server(settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]

    with bot_server(settings, shared_encoder) as live:
        yield live


async def say(
    client: httpx.AsyncClient, sender: str, text: str, **extra: Any
) -> list[dict[str, Any]]:
    r = await client.post(
        "/webhooks/rest/webhook", json={"sender": sender, "message": text, **extra}
    )
    assert r.status_code == 200, r.text
    return r.json()


def joined(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r.get("text") or "" for r in replies).lower()


def user_texts(db: Database, cid: str) -> list[str]:
    with db.session() as s:
        rows = s.scalars(
            select(ConversationEvent.data)
            .where(ConversationEvent.conversation_id == cid)
            .order_by(ConversationEvent.seq)
        ).all()
    return [r["text"] for r in rows if r.get("event") == "user"]


def event_count(db: Database, cid: str) -> int:
    with db.session() as s:
        return int(
            s.scalar(
                select(func.count())
                .select_from(ConversationEvent)
                .where(ConversationEvent.conversation_id == cid)
            )
            or 0
        )


# ------------------------------------------------------------------------- identities


async def test_no_channel_can_address_another_channels_conversation(server, store) -> None:  # type: ignore[no-untyped-def]
    """A shopper verified on each channel; a REST caller then tries every id shape of every
    channel: it always lands in a fresh REST conversation that knows nobody."""
    from bot.channels.rest import RestChannel
    from bot.channels.socketio_channel import SocketIOChannel
    from bot.channels.telegram import TelegramChannel
    from bot.channels.widget import WidgetChannel

    manager = server.parts.manager
    victims = {
        WidgetChannel: "a" * 24,
        SocketIOChannel: "b" * 32,
        TelegramChannel: "424242",
        RestChannel: "alice-1",
    }
    victim_ids = {}
    for channel, local in victims.items():
        name = channel.name
        cid = channel.conversation_id(local)
        victim_ids[name] = cid
        await manager.handle(
            Message(conversation_id=cid, text=f"where is my order {ORDER}?", channel=name)
        )
        replies = await manager.handle(Message(conversation_id=cid, text=EMAIL, channel=name))
        assert "garden hose" in " ".join(r.text or "" for r in replies).lower(), name
    before = {name: event_count(store, cid) for name, cid in victim_ids.items()}

    # every other channel's ids, in full and bare; REST's own in full ("alice-1" bare is
    # simply that REST shopper, as the channel intends)
    shapes = [
        s for name, cid in victim_ids.items() if name != "rest" for s in (cid, cid.split(":", 1)[1])
    ]
    shapes += [victim_ids["rest"], "TG:424242"]
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        answers = await asyncio.gather(
            *(say(client, shape, f"cancel order {ORDER}") for shape in shapes)
        )
    for shape, replies in zip(shapes, answers, strict=True):
        text = joined(replies)
        assert "email" in text, (shape, text)  # asked to authenticate: nobody is verified
        assert "garden hose" not in text
    # the same shapes as Socket.IO session ids and widget sessions
    # (minus each channel's own bare id, which is simply that channel's session)
    sio_shapes = [x for x in shapes if x != victims[SocketIOChannel]]
    web_shapes = [x for x in shapes if x != victims[WidgetChannel]]
    sio_texts = await asyncio.to_thread(_sio_attempts, server.url, sio_shapes)
    web_texts = await asyncio.to_thread(_widget_attempts, server.url, web_shapes)
    for shape, text in [
        *zip(sio_shapes, sio_texts, strict=True),
        *zip(web_shapes, web_texts, strict=True),
    ]:
        assert "email" in text and "garden hose" not in text, (shape, text)
    for name, cid in victim_ids.items():
        assert event_count(store, cid) == before[name], name  # nothing reached them
    with store.session() as s:
        for shape in shapes:
            conv = s.get(Conversation, f"rest:{shape}")
            assert conv is not None and conv.channel == "rest" and conv.customer_id is None
        for shape in sio_shapes:
            sio = s.get(Conversation, f"sio:{shape}")
            assert sio is not None and sio.channel == "socketio" and sio.customer_id is None


def _sio_attempts(url: str, shapes: list[str]) -> list[str]:
    """A rasa-webchat client asking for each shape as its Socket.IO session."""
    from tests.test_socketio import RasaWebchat

    texts = []
    for shape in shapes:
        client = RasaWebchat(url)
        try:
            client.start(shape)
            texts.append(
                " ".join(
                    str(m.get("text") or "") for m in client.utter(f"cancel order {ORDER}")
                ).lower()
            )
        finally:
            client.client.disconnect()
    return texts


def _widget_attempts(url: str, shapes: list[str]) -> list[str]:
    """A widget asking to resume each shape as its session: a shape that is a valid widget
    session id names the widget conversation ``web:<shape>``, never another channel's."""
    import json

    from websockets.sync.client import connect

    texts = []
    for n, shape in enumerate(shapes):
        with connect(url.replace("http://", "ws://") + "/widget/ws", proxy=None) as ws:
            ws.send(json.dumps({"type": "hello", "session": shape}))
            welcome = json.loads(ws.recv(timeout=20))
            assert welcome["history"] == []
            ws.send(json.dumps({"type": "message", "id": f"x{n}", "text": f"cancel order {ORDER}"}))
            said = []
            while (frame := json.loads(ws.recv(timeout=30))) != {"type": "typing", "on": False}:
                if frame.get("type") == "bot":
                    said.append(str(frame.get("text") or ""))
            texts.append(" ".join(said).lower())
    return texts


async def test_the_rest_channel_can_require_a_bearer_token(settings, shared_encoder) -> None:  # type: ignore[no-untyped-def]
    from bot.app import build, create_app

    parts = build(dataclasses.replace(settings, rest_token="s3cret-token"), encoder=shared_encoder)
    with LiveServer(create_app(parts)) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=30) as client:
            body = {"sender": "tok-1", "message": "hi"}
            assert (await client.post("/webhooks/rest/webhook", json=body)).status_code == 401
            wrong = await client.post(
                "/webhooks/rest/webhook", json=body, headers={"Authorization": "Bearer nope"}
            )
            assert wrong.status_code == 401 and wrong.headers["www-authenticate"] == "Bearer"
            polled = await client.get("/webhooks/rest/messages", params={"sender": "tok-1"})
            assert polled.status_code == 401
            ok = await client.post(
                "/webhooks/rest/webhook",
                json=body,
                headers={"Authorization": "Bearer s3cret-token"},
            )
            assert ok.status_code == 200 and ok.json()[0]["recipient_id"] == "tok-1"


# ---------------------------------------------------------------------------- retries


async def test_a_resent_message_is_handled_once_with_the_same_reply(server, store) -> None:  # type: ignore[no-untyped-def]
    sender = "retry-shopper"
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
        await say(
            client, sender, "I'd like to cancel order #W8770097", metadata={"message_id": "m-1"}
        )
        await say(client, sender, EMAIL, metadata={"message_id": "m-2"})
        await say(client, sender, "I ordered it by mistake", metadata={"message_id": "m-3"})
        # the client timed out on "yes" and sends it again, three times at once
        answers = await asyncio.gather(
            *(say(client, sender, "yes", metadata={"message_id": "m-4"}) for _ in range(3))
        )
        bad = await client.post(
            "/webhooks/rest/webhook",
            json={"sender": sender, "message": "yes", "metadata": {"message_id": "x" * 200}},
        )
    assert bad.status_code == 400
    assert answers[0] == answers[1] == answers[2]
    assert "cancelled" in joined(answers[0])
    texts = user_texts(store, f"rest:{sender}")
    assert texts.count("yes") == 1 and len(texts) == 4
    with store.session() as s:
        changes = s.scalars(select(OrderChange).where(OrderChange.order_id == "#W8770097")).all()
        assert len(changes) == 1
        assert s.get(Order, "#W8770097").status == "cancelled"  # type: ignore[union-attr]


# ------------------------------------------------------------------------ concurrency


async def test_concurrent_shoppers_each_get_an_ordered_complete_transcript(server, store) -> None:  # type: ignore[no-untyped-def]
    script = [
        "hello",
        "are you a bot?",
        "how much is the bluetooth speaker?",
        "can I return an item?",
        "thanks, bye",
    ]

    async def shopper(client: httpx.AsyncClient, n: int) -> list[list[dict[str, Any]]]:
        return [await say(client, f"crowd-{n}", line) for line in script]

    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        results = await asyncio.gather(*(shopper(client, n) for n in range(24)))
        # one shopper firing five messages at once: handled one at a time, none lost
        burst = [f"message number {i}" for i in range(5)]
        await asyncio.gather(*(say(client, "burst-1", text) for text in burst))
    assert all(all(turn for turn in turns) for turns in results)  # every turn was answered
    for n in range(24):
        assert user_texts(store, f"rest:crowd-{n}") == script
    assert sorted(user_texts(store, "rest:burst-1")) == sorted(burst)
    with store.session() as s:
        rows = s.scalars(
            select(ConversationEvent.data)
            .where(ConversationEvent.conversation_id == "rest:burst-1")
            .order_by(ConversationEvent.seq)
        ).all()
    kinds = [r["event"] for r in rows if r["event"] in ("user", "bot", "action")]
    # every user message is followed by the bot's turn before the next one starts
    users = [i for i, k in enumerate(kinds) if k == "user"]
    assert all(kinds[i + 1] != "user" for i in users if i + 1 < len(kinds))


async def test_concurrent_shoppers_get_the_nlu_fallback_only_for_what_it_cannot_read(
    server, store
) -> None:  # type: ignore[no-untyped-def]
    """Keyboard mashing falls back (the unknown-words rule and the calibrated threshold)
    while, at the same moment, other shoppers' ordinary messages are understood: the
    served NLU (int8 encoder, read-only model) is shared by every concurrent turn."""
    mashing = ["blorf snargle wib", "qwzx vlemp krrpt", "zzkr plonq"]
    ordinary = ["hello", "can I return an item?", "how much is the bluetooth speaker?"]

    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        replies = await asyncio.gather(
            *(say(client, f"nlu-mash-{n}", mashing[n % 3]) for n in range(12)),
            *(say(client, f"nlu-ok-{n}", ordinary[n % 3]) for n in range(12)),
        )
    for reply in replies[:12]:
        assert "didn't quite understand" in joined(reply)
    for reply in replies[12:]:
        assert reply and "didn't quite understand" not in joined(reply)
    assert user_texts(store, "rest:nlu-mash-4") == [mashing[1]]


class HangingServer:
    """Accepts connections on 127.0.0.1 and never answers (a frozen action server)."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}/webhook"
        self._held: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)

    def _accept(self) -> None:
        self.sock.settimeout(0.2)
        while not self._stop.is_set():
            try:
                conn, _ = self.sock.accept()
                self._held.append(conn)
            except TimeoutError:
                continue

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=2)
        for c in self._held:
            c.close()
        self.sock.close()


async def test_a_hung_action_server_delays_nobody_else(settings, shared_encoder, store) -> None:  # type: ignore[no-untyped-def]
    from bot.actions import RemoteActionRunner
    from bot.app import build, create_app

    with HangingServer() as hung:
        parts = build(
            dataclasses.replace(settings, action_endpoint=hung.url),
            encoder=shared_encoder,
            actions=RemoteActionRunner(hung.url, timeout=4.0, retries=0),
        )
        with LiveServer(create_app(parts)) as live:
            async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:
                await say(client, "calm-1", "hello")  # warm

                async def stuck() -> tuple[float, str]:
                    t = time.perf_counter()
                    replies = await say(client, "stuck-1", f"cancel order {ORDER}")
                    return time.perf_counter() - t, joined(replies)

                async def others() -> list[float]:
                    await asyncio.sleep(0.5)  # the stuck turn is waiting on the action now
                    times = []
                    for i in range(4):
                        t = time.perf_counter()
                        await say(client, f"calm-{i}", "are you a bot?")
                        times.append(time.perf_counter() - t)
                    return times

                (stuck_s, stuck_text), calm = await asyncio.gather(stuck(), others())
    assert stuck_s >= 3.5 and "went wrong" in stuck_text  # the hung call timed out politely
    assert max(calm) < 2.0, calm  # nobody else waited for it


async def test_an_exhausted_database_answers_503_and_health_still_answers(
    settings, shared_encoder
) -> None:  # type: ignore[no-untyped-def]
    """One database thread and 50 ms of patience: a burst of shoppers gets answers or 503
    with Retry-After (nothing half-written), /health answers throughout, and the server
    serves normally right after."""
    from bot.app import build, create_app

    parts = build(
        dataclasses.replace(settings, db_pool_size=1, db_queue_timeout=0.05), encoder=shared_encoder
    )
    with LiveServer(create_app(parts)) as live:
        async with httpx.AsyncClient(base_url=live.url, timeout=60) as client:

            async def post(n: int) -> httpx.Response:
                return await client.post(
                    "/webhooks/rest/webhook", json={"sender": f"busy-{n}", "message": "hello"}
                )

            burst = asyncio.gather(*(post(n) for n in range(30)))
            await asyncio.sleep(0.05)
            health = await client.get("/health")
            answers = await burst
            after = await post(99)
    busy = [r for r in answers if r.status_code == 503]
    assert busy and all(r.status_code in (200, 503) for r in answers)
    assert all(int(r.headers["retry-after"]) >= 1 and "busy" in r.json()["error"] for r in busy)
    assert health.status_code == 200
    assert after.status_code == 200 and after.json()
    with parts.db.session() as s:  # a refused turn stored nothing, an answered one all
        for n, r in enumerate(answers):
            texts = [
                e["text"]
                for e in s.scalars(
                    select(ConversationEvent.data).where(
                        ConversationEvent.conversation_id == f"rest:busy-{n}"
                    )
                )
                if e.get("event") == "user"
            ]
            assert texts == (["hello"] if r.status_code == 200 else []), n


# ------------------------------------------------------------------- leases (workers)


async def test_two_workers_take_turns_on_one_conversation(settings) -> None:  # type: ignore[no-untyped-def]
    """Two gates on two engines (as two worker processes would have): the second waits
    for the first's lease, a lost lease writes nothing, an expired one is taken over."""
    from bot.dialogue.gate import ConversationGate, Outcome
    from bot.errors import ConversationBusy
    from bot.types import SessionStarted

    db_a, db_b = Database(settings.database_url), Database(settings.database_url)
    try:
        a = ConversationGate(db_a, lease_seconds=5, wait_seconds=3)
        b = ConversationGate(db_b, lease_seconds=5, wait_seconds=0.3)
        cid = ConversationId("rest:lease-1")
        order: list[str] = []
        async with a.hold(cid, "rest") as held:
            with pytest.raises(ConversationBusy):
                async with b.hold(cid, "rest"):
                    pass
            order.append("a")
            await a.finish(held, lambda s: Outcome([SessionStarted()], "none"))
        async with b.hold(cid, "rest") as held_b:
            assert held_b.snapshot.event_count == 1
            order.append("b")
            # a stalled holder: its lease expires and another takes over
            with db_b.session() as s:
                s.get(Conversation, cid).lease_until = time.time() - 1  # type: ignore[union-attr]
            async with a.hold(cid, "rest") as held_a:
                await a.finish(held_a, lambda s: Outcome([SessionStarted()], "none"))
            with pytest.raises(ConversationBusy):
                await b.finish(held_b, lambda s: Outcome([SessionStarted()], "none"))
        assert order == ["a", "b"]
        assert event_count(db_a, cid) == 2  # the stalled holder wrote nothing
    finally:
        db_a.dispose()
        db_b.dispose()


# ----------------------------------------------------------------------- redis (workers)


async def test_message_limits_are_shared_by_workers_through_redis(redis_url: str) -> None:
    import uuid

    from bot.ratelimit import RedisMessageLimits

    url = redis_url
    worker_a = RedisMessageLimits(url, limit=3, window=30)
    worker_b = RedisMessageLimits(url, limit=3, window=30)
    key = f"web:test-{uuid.uuid4().hex}"
    answers = await asyncio.gather(*(w.check(key) for w in (worker_a, worker_b) * 3))
    assert sorted(a == 0 for a in answers) == [False, False, False, True, True, True]
    assert all(0 < a <= 30 for a in answers if a)
    assert await worker_a.check(key + "-other") == 0  # per session


async def test_an_unreachable_database_is_unavailable_not_an_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """What a PostgreSQL restart looks like to a turn: ``DatabaseUnavailable`` (HTTP 503,
    the widget retries), not an unexpected error."""
    from bot.errors import DatabaseUnavailable, Unavailable
    from tests.live import free_port

    db = Database(f"postgresql://postgres@127.0.0.1:{free_port()}/nowhere", queue_timeout=1)

    def ping() -> None:
        with db.session() as s:
            s.execute(select(1))

    try:
        with pytest.raises(DatabaseUnavailable) as caught:
            await db.call(ping)
        assert isinstance(caught.value, Unavailable) and caught.value.retry_after >= 1
    finally:
        db.dispose()
