"""Hypothesis against the socket channels of a real server on 127.0.0.1 (SQLite): Socket.IO
``user_uttered`` / ``session_request`` events with arbitrary JSON data (or none, or extra
arguments), and widget WebSocket frames with arbitrary JSON. Every event or frame gets its
answer (``clerk_error`` / an error frame for what the rules refuse, the reply otherwise),
the connection keeps working, nothing reaches the log as a traceback, and no stored event
holds a NUL or a lone surrogate afterwards.

The rules restated here, independently of ``bot.inputs``: a shopper's text holds no lone
surrogate and no C0 control character but tab, line feed and carriage return."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import socketio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from bot.store.db import Database
from tests.conftest import fresh_database
from tests.guards import TracebackWatch, half_written, watch_tracebacks
from tests.live import LiveServer, bot_server

REFUSED_TEXT = re.compile("[\ud800-\udfff\x00-\x08\x0b\x0c\x0e-\x1f]")
SESSION_ID = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
WIDGET_FRAMES = {"ack", "error", "user", "typing", "stream", "stream_end", "bot"}

ODD = st.sampled_from(
    ["\ud800", "\udfff", "\x00", "\x1b", "\x07", "\n", "\t", " ", "é", "😀", "/greet", "hello", "0"]
)
TEXTS = st.lists(st.one_of(ODD, st.text(max_size=3)), max_size=5).map("".join)
VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=6,
)
MAYBE = st.one_of(TEXTS, VALUES)


def readable(text: object) -> bool:
    return isinstance(text, str) and not REFUSED_TEXT.search(text)


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("fuzz-sockets")) as url:
        yield url


@pytest.fixture(scope="module")
def server(database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]

    with bot_server(bot_settings(database_url, widget_rate_limit=100_000), shared_encoder) as live:
        yield live


@pytest.fixture(scope="module")
def watch(server: LiveServer) -> Iterator[TracebackWatch]:
    with watch_tracebacks() as w:
        yield w


# --------------------------------------------------------------------------- Socket.IO


class SocketIO:
    """One python-socketio client; ``answer`` reads until the event a request expects."""

    def __init__(self, url: str) -> None:
        self.client = socketio.SimpleClient()
        self.client.connect(url, transports=["websocket"], wait_timeout=10)

    def answer(self, wanted: set[str], timeout: float = 30) -> list[Any]:
        """Events until one named in ``wanted`` (a turn's replies to an earlier event may
        arrive meanwhile); every event must be one the protocol has."""
        deadline = time.monotonic() + timeout
        while True:
            event = self.client.receive(timeout=max(0.1, deadline - time.monotonic()))
            assert event[0] in {"bot_uttered", "clerk_error", "session_confirm"}, event
            if event[0] in wanted:
                return event


def sio_args() -> st.SearchStrategy[tuple[Any, ...]]:
    message = st.fixed_dictionaries(
        {"message": MAYBE},
        optional={
            "session_id": st.one_of(st.none(), st.just("fuzz-session"), MAYBE),
            "customData": VALUES,
        },
    )
    return st.one_of(st.just(()), st.tuples(VALUES), st.tuples(message), st.tuples(message, VALUES))


@given(event=st.sampled_from(["user_uttered", "session_request"]), args=sio_args())
@settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_socketio_events_with_any_data(
    event: str, args: tuple[Any, ...], server: LiveServer, watch: TracebackWatch
) -> None:
    # a connection of its own per example: Socket.IO handles a client's events
    # concurrently, so a slow turn's replies must not reach the next example's reader
    sio = SocketIO(server.url)
    try:
        _check_socketio_event(sio, event, args)
    finally:
        sio.client.disconnect()
    assert not watch.problems, watch.problems[:3]


def _check_socketio_event(sio: SocketIO, event: str, args: tuple[Any, ...]) -> None:
    sio.client.emit(event, args if len(args) != 1 else args[0])
    data = args[0] if args else None
    if event == "session_request":
        session_id = data.get("session_id") if isinstance(data, dict) else None
        ok = (data is None or isinstance(data, dict)) and (
            session_id is None
            or isinstance(session_id, str)
            and bool(SESSION_ID.fullmatch(session_id))
        )
        name, payload = sio.answer({"session_confirm", "clerk_error"})
        assert name == ("session_confirm" if ok else "clerk_error"), (args, payload)
    else:
        session_id = data.get("session_id") if isinstance(data, dict) else None
        ok = (
            isinstance(data, dict)
            and readable(data.get("message"))
            and (
                session_id is None
                or isinstance(session_id, str)
                and bool(SESSION_ID.fullmatch(session_id))
            )
        )
        name, payload = sio.answer({"bot_uttered", "clerk_error"})
        assert name == ("bot_uttered" if ok else "clerk_error"), (args, payload)
        if not ok:
            assert payload["event"] == "user_uttered" and payload["error"]


# --------------------------------------------------------------------------- widget


class Widget:
    def __init__(self, url: str) -> None:
        self.ws: ClientConnection = connect(
            url.replace("http://", "ws://") + "/widget/ws", proxy=None, open_timeout=10
        )
        self.ws.send(json.dumps({"type": "hello", "session": None}))
        welcome = json.loads(self.ws.recv(timeout=30))
        assert welcome["type"] == "welcome"

    def until_pong(self) -> list[dict[str, Any]]:
        """Ping; the frames before the pong (the widget answers frames in order)."""
        self.ws.send(json.dumps({"type": "ping"}))
        frames = []
        while True:
            frame = json.loads(self.ws.recv(timeout=30))
            if frame == {"type": "pong"}:
                return frames
            assert frame.get("type") in WIDGET_FRAMES, frame
            frames.append(frame)


@pytest.fixture(scope="module")
def widget(server: LiveServer) -> Iterator[Widget]:
    client = Widget(server.url)
    yield client
    client.ws.close()


def widget_frames() -> st.SearchStrategy[Any]:
    message = st.fixed_dictionaries(
        {"type": st.just("message"), "text": MAYBE},  # a fresh id is added when sent
        optional={"title": MAYBE},
    )
    return st.one_of(
        message,
        message,
        VALUES,
        st.fixed_dictionaries({"type": MAYBE}, optional={"session": MAYBE}),
    )


@given(frame=widget_frames())
@settings(max_examples=120, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_widget_frames_with_any_json(frame: Any, widget: Widget, watch: TracebackWatch) -> None:
    kind = frame.get("type") if isinstance(frame, dict) else None
    if kind == "message":
        frame = {**frame, "id": uuid.uuid4().hex}  # ids are the client's, unique
    widget.ws.send(json.dumps(frame))  # ensure_ascii: a lone surrogate travels as \ud800
    # Judge the frame as the server decodes it: a high surrogate followed by a low one
    # travels as "\ud800\udfff" and arrives as one (readable) astral character.
    frame = json.loads(json.dumps(frame))
    answers = [
        f
        for f in widget.until_pong()
        if f["type"] in ("ack", "error") and f.get("code") != "turn_failed"
    ]
    if kind == "ping":
        assert answers == []  # its pong ended the read
    elif (
        kind == "message"
        and readable(frame["text"])
        and ("title" not in frame or frame["title"] is None or readable(frame["title"]))
    ):
        assert answers and (
            answers[0] == {"type": "ack", "id": frame["id"]}
            or answers[0].get("code") == "rate_limited"
        ), (frame, answers)
    else:
        assert answers and answers[0]["type"] == "error", (frame, answers)
    assert not watch.problems, watch.problems[:3]


def test_nothing_was_half_written_and_nothing_logged(
    server: LiveServer, widget: Widget, watch: TracebackWatch, database_url: str
) -> None:
    widget.until_pong()  # the widget connection still answers, and so does the server
    sio = SocketIO(server.url)
    try:
        sio.client.emit("session_request", {"session_id": f"last-{uuid.uuid4().hex[:6]}"})
        sio.answer({"session_confirm"})
    finally:
        sio.client.disconnect()
    time.sleep(2)  # turns still running finish, their events are stored
    watch.assert_clean()
    db = Database(database_url)
    try:
        assert half_written(db) == []
    finally:
        db.dispose()
