"""Bad input never 500s: each endpoint and socket event of a real server on 127.0.0.1 answers
a value that breaks the rules of ``bot.inputs`` (lone surrogate, NUL, control character, wrong
type, too long, malformed JSON) with a 4xx (or an error event/frame) naming the field, logs
no traceback and stores nothing. Runs on SQLite and PostgreSQL (PostgreSQL refuses NUL in
text, so that is where a NUL used to turn into a 500)."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import socketio
from sqlalchemy import select
from websockets.sync.client import connect

from bot.handoff.agents import AgentAccounts
from bot.inputs import BadInput, client_id, client_string, first_bad_string, json_object
from bot.store.db import Database
from bot.store.models import Conversation, Ticket
from tests.guards import TracebackWatch, half_written, watch_tracebacks
from tests.live import LiveServer, bot_server
from tests.test_handoff import PASSWORD, Agent

SURROGATE = b'"\\ud800"'  # JSON for a lone surrogate: json.loads accepts it
NUL = b'"a\\u0000b"'


@pytest.fixture(scope="module")
def server(module_database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]

    with bot_server(bot_settings(module_database_url), shared_encoder) as live:
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
def log() -> Iterator[TracebackWatch]:
    with watch_tracebacks() as watch:
        yield watch
    watch.assert_clean()


def post_raw(server: LiveServer, path: str, body: bytes, **kw: Any) -> httpx.Response:
    return httpx.post(
        server.url + path,
        content=body,
        timeout=30,
        headers={"content-type": "application/json", **kw.pop("headers", {})},
        **kw,
    )


def refused(r: httpx.Response, field: str, status: int = 400) -> str:
    assert r.status_code == status, (r.status_code, r.text)
    error = r.json()["error"]
    assert field in error, error
    return error


def conversation_exists(db: Database, cid: str) -> bool:
    with db.session() as s:
        return s.get(Conversation, cid) is not None


# ------------------------------------------------------------------- the known 500s


def test_a_lone_surrogate_in_parse_text_is_a_400(server: LiveServer, log: TracebackWatch) -> None:
    r = post_raw(server, "/model/parse", b'{"text": ' + SURROGATE + b"}")
    assert "surrogate" in refused(r, "'text'")
    ok = httpx.post(server.url + "/model/parse", json={"text": "hello"}, timeout=30)
    assert ok.status_code == 200 and ok.json()["intent"]["name"]


def test_a_lone_surrogate_in_the_rest_webhook_is_a_400_and_stores_nothing(
    server: LiveServer, store: Database, log: TracebackWatch
) -> None:
    sender = f"surrogate-{uuid.uuid4().hex[:8]}"
    r = post_raw(
        server,
        "/webhooks/rest/webhook",
        b'{"sender": "' + sender.encode() + b'", "message": ' + SURROGATE + b"}",
    )
    assert "surrogate" in refused(r, "'message'")
    r = post_raw(
        server, "/webhooks/rest/webhook", b'{"sender": ' + SURROGATE + b', "message": "hello"}'
    )
    refused(r, "'sender'")
    r = post_raw(
        server,
        "/webhooks/rest/webhook",
        b'{"sender": "x", "message": "hi", "metadata": {"message_id": ' + SURROGATE + b"}}",
    )
    refused(r, "'metadata.message_id'")
    assert not conversation_exists(store, sender)
    assert half_written(store) == []


def test_a_nul_in_the_rest_sender_is_a_400_and_stores_nothing(
    server: LiveServer, store: Database, log: TracebackWatch
) -> None:
    r = post_raw(server, "/webhooks/rest/webhook", b'{"sender": ' + NUL + b', "message": "hi"}')
    assert "NUL" in refused(r, "'sender'")
    r = post_raw(
        server, "/webhooks/rest/webhook", b'{"sender": "nul-msg", "message": ' + NUL + b"}"
    )
    refused(r, "'message'")
    r = httpx.get(server.url + "/webhooks/rest/messages", params={"sender": "a\x00b"})
    refused(r, "'sender'")
    assert not conversation_exists(store, "nul-msg")
    assert half_written(store) == []


def test_a_non_string_assignee_is_a_400_and_changes_nothing(
    server: LiveServer, store: Database, ana: Agent, log: TracebackWatch
) -> None:
    ticket_id = f"T-{uuid.uuid4().int % 10**6:06d}"
    with store.session() as s:
        s.add(Ticket(id=ticket_id, text="the kettle leaks", status="open", priority="normal"))
    for assignee in (5, ["ana"], {"name": "ana"}, True, "a\x00b", "x" * 101):
        r = ana.post("ticket", {"id": ticket_id, "assignee": assignee})
        refused(r, "'assignee'")
    for body, field in (
        ({"id": ticket_id, "status": 5}, "'status'"),
        ({"id": ticket_id, "priority": ["high"]}, "'priority'"),
        ({"id": 1.5}, "'id'"),
        ({}, "'id'"),
        ({"id": "T\x00"}, "'id'"),
    ):
        refused(ana.post("ticket", body), field)
    with store.session() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.assignee is None and ticket.status == "open"
    done = ana.post("ticket", {"id": ticket_id, "assignee": "me", "priority": "high"})
    assert done.status_code == 200 and done.json()["ticket"]["assignee"] == "ana"


def test_socketio_events_without_data_get_an_error_event(
    server: LiveServer, log: TracebackWatch
) -> None:
    client = socketio.SimpleClient()
    client.connect(server.url, transports=["websocket"], wait_timeout=10)
    try:
        client.emit("user_uttered")
        assert client.receive(timeout=10) == [
            "clerk_error",
            {"error": "the data must be an object with a 'message'", "event": "user_uttered"},
        ]
        client.emit("session_request")  # no data: a new session, as Rasa does
        event, session_id = client.receive(timeout=10)
        assert event == "session_confirm" and len(session_id) == 32
        for data, field in (
            ("hello", "object"),
            ([1], "object"),
            ({"message": 5}, "'message'"),
            ({"message": "a\x00b"}, "NUL"),
            ({"message": "hi", "session_id": 7}, "'session_id'"),
        ):
            client.emit("user_uttered", data)
            event, payload = client.receive(timeout=10)
            assert event == "clerk_error" and field in payload["error"], (data, payload)
        for data in ("x", {"session_id": ["x"]}, {"session_id": "bad id!"}):
            client.emit("session_request", data)
            assert client.receive(timeout=10)[0] == "clerk_error"
        client.emit("user_uttered", ({"message": "hello", "session_id": session_id}, "extra"))
        event, reply = client.receive(timeout=30)  # the connection still works
        assert event == "bot_uttered" and "clerk" in reply["text"].lower()
    finally:
        client.disconnect()


# ------------------------------------------------------------ every other entry point


def test_malformed_json_bodies_are_400s(server: LiveServer, log: TracebackWatch) -> None:
    deep = b"[" * 50_000
    huge_number = b'{"sender": 1' + b"1" * 5000 + b', "message": "hi"}'
    for path in ("/webhooks/rest/webhook", "/model/parse", "/api/copy"):
        for body in (deep, huge_number, b"\xff\xfe", b'"text"', b"{"):
            refused(post_raw(server, path, body), "JSON" if body != b'"text"' else "object")
        refused(post_raw(server, path, b"{" * 70_000), "bytes", status=413)


def test_a_payload_with_entities_nested_too_deep_is_ignored(
    server: LiveServer, log: TracebackWatch
) -> None:
    text = '/greet{"name":' + "[" * 1900 + "]" * 1900 + "}"  # under 4000 characters
    r = httpx.post(server.url + "/model/parse", json={"text": text}, timeout=30)
    assert r.status_code == 200 and r.json()["intent"]["name"] == "greet"
    assert r.json()["entities"] == []


def test_rest_webhook_types_and_metadata(
    server: LiveServer, store: Database, log: TracebackWatch
) -> None:
    url = server.url + "/webhooks/rest/webhook"
    cases: list[tuple[dict[str, Any], str]] = [
        ({"sender": True, "message": "hi"}, "'sender'"),
        ({"sender": 1.5, "message": "hi"}, "'sender'"),
        ({"sender": "x" * 201, "message": "hi"}, "'sender'"),
        ({"sender": "a\nb", "message": "hi"}, "'sender'"),
        ({"sender": "ok", "message": "bell\x07"}, "'message'"),
        ({"sender": "ok", "message": ["hi"]}, "'message'"),
        ({"sender": "ok", "message": "hi", "metadata": "x"}, "'metadata'"),
        (
            {"sender": "ok", "message": "hi", "metadata": {"message_id": {"a": 1}}},
            "'metadata.message_id'",
        ),
        (
            {"sender": "ok", "message": "hi", "metadata": {"message_id": "m" * 129}},
            "'metadata.message_id'",
        ),
    ]
    for body, field in cases:
        refused(httpx.post(url, json=body, timeout=30), field)
    assert not conversation_exists(store, "ok")
    # what stays allowed: numeric senders, line breaks and tabs in a message, an int id
    sender = 4242000 + uuid.uuid4().int % 1000
    r = httpx.post(
        url,
        json={
            "sender": sender,
            "message": "hello\n\tthere",
            "metadata": {"message_id": 17, "language": "en"},
        },
        timeout=30,
    )
    assert r.status_code == 200 and r.json()[0]["recipient_id"] == str(sender)


def test_copy_fields(server: LiveServer, log: TracebackWatch) -> None:
    url = server.url + "/api/copy"
    for body, field in (
        ({"product_id": "\x00"}, "'product_id'"),
        ({"product_id": [1]}, "'product_id'"),
        ({"product_id": "1", "audience": 5}, "'audience'"),
        ({"product_id": "1", "tone": "calm\x1b"}, "'tone'"),
        ({"product_id": "1", "tone": "x" * 201}, "'tone'"),
    ):
        refused(httpx.post(url, json=body, timeout=30), field)
    refused(
        post_raw(server, "/api/copy", b'{"product_id": "1", "audience": ' + SURROGATE + b"}"),
        "'audience'",
    )


def test_console_api_fields(server: LiveServer, ana: Agent, log: TracebackWatch) -> None:
    r = ana.http.get("/console/api/conversation", params={"id": "x\x00"})
    refused(r, "'id'")
    refused(ana.http.get("/console/api/conversation"), "'id'")
    for path, body, field in (
        ("claim", {"id": 1.5}, "'id'"),
        ("claim", {"id": "a\x00"}, "'id'"),
        ("message", {"id": "c", "text": "hi\x00"}, "'text'"),
        ("message", {"id": "c", "text": 5}, "'text'"),
        ("note", {"id": "c", "text": "\x1b[31m"}, "'text'"),
        ("close", {"id": "c", "resolution": ["done"]}, "'resolution'"),
        ("return", {"id": "c", "slots": {"customer_id": 5}}, "customer_id"),
        ("return", {"id": "c", "slots": {"customer_id": "x" * 101}}, "customer_id"),
        ("return", {"id": "c", "slots": {"customer_id": "a\x00"}}, "customer_id"),
        ("return", {"id": "c", "slots": ["customer_id"]}, "'slots'"),
    ):
        refused(ana.post(path, body), field)
    raw = ana.http.post(
        "/console/api/message",
        content=b'{"id": "c", "text": ' + SURROGATE + b"}",
        headers={"X-CSRF-Token": ana.csrf, "content-type": "application/json"},
    )
    refused(raw, "'text'")
    deep = ana.http.post(
        "/console/api/claim", content=b"[" * 50_000, headers={"X-CSRF-Token": ana.csrf}
    )
    refused(deep, "JSON")
    # a CSRF token in the body that is not a string, or not encodable, is just wrong
    for token in (b"5", SURROGATE):
        r = ana.http.post(
            "/console/api/claim", content=b'{"id": "c", "csrf_token": ' + token + b"}"
        )
        assert r.status_code == 403, r.text


def test_console_forms_and_login(server: LiveServer, ana: Agent, log: TracebackWatch) -> None:
    r = ana.http.post("/console/tickets/update", data={"id": "T\x00", "csrf_token": ana.csrf})
    refused(r, "'id'")
    r = ana.http.post(
        "/console/tickets/update", data={"id": "T-1", "assignee": "a\x00", "csrf_token": ana.csrf}
    )
    refused(r, "'assignee'")
    login = httpx.Client(base_url=server.url, timeout=10)
    page = login.get("/console/login")
    token = page.text.split('name="csrf_token" value="')[1].split('"')[0]
    r = login.post(
        "/console/login", data={"name": "ana\x00", "password": PASSWORD, "csrf_token": token}
    )
    assert r.status_code == 400 and "Wrong name or password" in r.text


def test_the_widget_refuses_bad_text_with_an_error_frame(
    server: LiveServer, log: TracebackWatch
) -> None:
    with connect(
        server.url.replace("http://", "ws://") + "/widget/ws", proxy=None, open_timeout=10
    ) as ws:
        ws.send(json.dumps({"type": "hello", "session": None}))
        assert json.loads(ws.recv(timeout=30))["type"] == "welcome"
        for frame, field in (
            ('{"type": "message", "id": "m1", "text": "\\ud800"}', "'text'"),
            ('{"type": "message", "id": "m2", "text": "a\\u0000"}', "'text'"),
            ('{"type": "message", "id": "m3", "text": "hi", "title": 5}', "'title'"),
            ("[" * 10_000, "malformed"),
            ('{"type": ' + "1" * 5000 + "}", "malformed"),
        ):
            ws.send(frame)
            error = json.loads(ws.recv(timeout=10))
            assert error["type"] == "error" and error["code"] == "bad_frame", error
            assert field in error["message"], error
        ws.send(json.dumps({"type": "ping"}))
        assert json.loads(ws.recv(timeout=10)) == {"type": "pong"}  # still connected


TG_TOKEN = "777:TEST-bad-input"


@pytest.fixture(scope="module")
def telegram() -> Iterator[tuple[LiveServer, Any, list[str]]]:
    """The Telegram webhook on a real server, against the fake Bot API of test_telegram.py;
    the dialogue manager is a stand-in that echoes (the webhook is under test)."""
    from starlette.applications import Starlette

    from bot.channels.telegram import TelegramChannel
    from bot.types import Message, Reply
    from tests.test_telegram import FakeBotAPI

    seen: list[str] = []

    class Echo:
        async def handle(self, m: Message) -> list[Reply]:
            seen.append(m.text)
            return [Reply(text=f"echo: {m.text}")]

    api = FakeBotAPI({TG_TOKEN})
    with LiveServer(api.app) as fake:
        channel = TelegramChannel(Echo(), token=TG_TOKEN, base_url=fake.url)
        app = Starlette(routes=channel.routes(), lifespan=lambda app: channel.running())
        with LiveServer(app) as live:
            live.channel = channel  # type: ignore[attr-defined]
            yield live, api, seen


def test_a_malformed_telegram_update_is_a_400(
    telegram: tuple[LiveServer, Any, list[str]], log: TracebackWatch
) -> None:
    from bot.channels.telegram import SECRET_HEADER, TEXT_ONLY, derived_secret
    from tests.test_telegram import message

    live, api, seen = telegram
    headers = {SECRET_HEADER: derived_secret(TG_TOKEN), "content-type": "application/json"}

    def deliver(body: bytes | dict[str, Any]) -> httpx.Response:
        raw = body if isinstance(body, bytes) else json.dumps(body).encode()
        return httpx.post(live.url + "/webhooks/telegram", content=raw, headers=headers, timeout=30)

    chat = 7_100_000 + uuid.uuid4().int % 1000
    good = message(chat, "hello")
    for body in (
        b"{",
        b"[]",
        b"[" * 50_000,
        {"update_id": "1"},
        {"update_id": [1]},
        {"update_id": True},
        {"update_id": 1, "message": "text"},
        {"update_id": 2, "message": {**good, "date": 10**20}},
        {"update_id": 3, "message": {**good, "chat": 5}},
        {"update_id": 4, "message": {**good, "text": 5}},
        {"update_id": 5, "callback_query": []},
        {"update_id": 6, "message": {**good, "text": "a\x00b"}},
        b'{"update_id": 7, "message": {"message_id": 1, "date": 0, "chat": {"id": 1,'
        b' "type": "private"}, "text": ' + SURROGATE + b"}}",
    ):
        r = deliver(body)
        assert r.status_code == 400 and r.json()["error"], (body, r.text)
    assert deliver({"update_id": 8, "message": message(chat, "bell\x07")}).status_code == 200
    assert api.replies(chat)[0]["text"] == TEXT_ONLY  # a control character: not read
    assert deliver({"update_id": 9, "message": message(chat, "hi")}).status_code == 200
    assert api.replies(chat, at_least=2)[1]["text"] == "echo: hi"
    assert seen == ["hi"] and live.channel.errors == 0  # type: ignore[attr-defined]


def test_openapi_document_is_served(server: LiveServer) -> None:
    doc = httpx.get(server.url + "/openapi.json", timeout=10).json()
    assert doc["openapi"].startswith("3.0")
    assert {
        "/health",
        "/model/parse",
        "/api/copy",
        "/webhooks/rest/webhook",
        "/webhooks/rest/messages",
        "/webhooks/rest/",
        "/console/api/ticket",
    } <= set(doc["paths"])
    webhook = doc["paths"]["/webhooks/rest/webhook"]["post"]
    schema = webhook["requestBody"]["content"]["application/json"]["schema"]
    assert schema["required"] == ["sender", "message"]
    assert "message_id" in schema["properties"]["metadata"]["properties"]
    assert doc["paths"]["/console/api/claim"]["post"]["security"] == [
        {"consoleSession": [], "csrfToken": []}
    ]


# ------------------------------------------------------------------------- the rules


def test_the_rules() -> None:
    assert client_string("line one\nline\ttwo\r\n", "m", max_chars=100) == "line one\nline\ttwo\r\n"
    assert client_id(" 42 ", "sender", max_chars=10) == "42"
    assert client_id(42, "sender", max_chars=10) == "42"
    for value, problem in (
        ("\ud800", "surrogate"),
        ("\udfff x", "surrogate"),
        ("a\x00", "NUL"),
        ("\x1b", "control"),
        ("\x7f ok", None),
    ):
        if problem is None:
            assert client_string(value, "m", max_chars=10) == value
            continue
        with pytest.raises(BadInput, match=problem) as exc:
            client_string(value, "m", max_chars=10)
        assert exc.value.field == "m" and exc.value.status == 400
        assert value not in str(exc.value)  # the refusal never repeats the value
    with pytest.raises(BadInput, match="control"):
        client_id("a\tb", "sender", max_chars=10)
    with pytest.raises(BadInput, match="at most 3"):
        client_id("abcd", "sender", max_chars=3)
    with pytest.raises(BadInput, match="at most 3"):
        client_id("ab   ", "sender", max_chars=3)  # the limit counts what was sent
    with pytest.raises(BadInput, match="must not be empty"):
        client_id("   ", "sender", max_chars=3)
    for bad in (None, True, 1.5, [], {}):
        with pytest.raises(BadInput):
            client_id(bad, "sender", max_chars=10)
    with pytest.raises(BadInput) as too_big:
        json_object(b"{}" * 10, max_bytes=5)
    assert too_big.value.status == 413
    assert first_bad_string({"a": [{"b": "ok"}, {"c": "x\x00"}]}) == "$.a[1].c"
    assert first_bad_string({"ok": ["fine", 1, None]}) is None


def test_stored_events_hold_no_bad_strings(store: Database) -> None:
    """After everything above (module order): nothing half-written."""
    with store.session() as s:
        assert s.scalar(select(Conversation.id).limit(1)) is not None  # the checks saw data
    assert half_written(store) == []
