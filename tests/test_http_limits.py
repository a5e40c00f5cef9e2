"""The HTTP server's deadlines through a real uvicorn on 127.0.0.1 with ``server_config``:
half-sent request heads (45 at once, silent ones too, and a byte-by-byte dribbler) and
half-sent bodies are closed soon after their timeout while normal requests are served in
between; slow but timely requests, keep-alive and WebSockets are left alone; the settings
that feed the limits. Timeouts here are 1 s; every wait is bounded."""

from __future__ import annotations

import logging
import os
import pickle
import selectors
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import httpx
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket
from websockets.sync.client import connect

from bot.config import Settings
from bot.errors import ConfigError
from bot.server import HttpLimits, TimedH11Protocol, server_config
from tests.live import ROOT, LiveServer, free_port

TIMEOUT = 1.0
MARGIN = 2.0  # a loaded 2-core machine: closing may come this much after the deadline
LIMITS = HttpLimits(
    header_timeout=TIMEOUT, body_timeout=TIMEOUT, keepalive=TIMEOUT, limit_concurrency=200
)


async def hello(request: Request) -> PlainTextResponse:
    return PlainTextResponse("ok")


async def echo(request: Request) -> PlainTextResponse:
    return PlainTextResponse(str(len(await request.body())))


async def early(request: Request) -> PlainTextResponse:  # answers without reading the body
    return PlainTextResponse("early")


async def ws_echo(ws: WebSocket) -> None:
    await ws.accept()
    async for text in ws.iter_text():
        await ws.send_text(text)


tiny_app = Starlette(
    routes=[
        Route("/", hello),
        Route("/echo", echo, methods=["POST"]),
        Route("/early", early, methods=["POST"]),
        WebSocketRoute("/ws", ws_echo),
    ]
)


@pytest.fixture(scope="module")
def server() -> Iterator[LiveServer]:
    options = server_config(tiny_app, host="127.0.0.1", port=0, limits=LIMITS)
    with LiveServer(tiny_app, options=options) as live:
        yield live


def raw(server: LiveServer, payload: bytes = b"") -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    if payload:
        sock.sendall(payload)
    return sock


def wait_closed(
    socks: list[socket.socket], limit: float
) -> tuple[dict[socket.socket, float], dict[socket.socket, bytes]]:
    """Read every socket until the server closes it, for at most ``limit`` seconds: when
    each was closed (monotonic) and what it received."""
    received = {s: b"" for s in socks}
    closed: dict[socket.socket, float] = {}
    deadline = time.monotonic() + limit
    with selectors.DefaultSelector() as sel:
        for s in socks:
            s.setblocking(False)
            sel.register(s, selectors.EVENT_READ)
        while len(closed) < len(socks) and (left := deadline - time.monotonic()) > 0:
            for key, _ in sel.select(timeout=left):
                s = key.fileobj  # type: ignore[assignment]
                try:
                    chunk = s.recv(4096)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    chunk = b""
                if chunk:
                    received[s] += chunk
                else:
                    closed[s] = time.monotonic()
                    sel.unregister(s)
    return closed, received


HEADS = [
    b"",
    b"GET / HTTP/1.1\r\n",
    b"GET / HTTP/1.1\r\nHost: x\r\nUser-Agent: slow",
    b"POST /echo HT",
]
BODY_HEAD = b"POST /echo HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n"


class Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_half_sent_requests_are_closed_while_others_are_served(server: LiveServer) -> None:
    errors = Errors()
    logging.getLogger("uvicorn.error").addHandler(errors)
    opened = time.monotonic()
    heads = [raw(server, HEADS[n % len(HEADS)]) for n in range(45)]
    bodies = [raw(server, BODY_HEAD + b"x" * 10) for _ in range(10)]
    with httpx.Client(base_url=server.url, timeout=5) as http:
        assert http.get("/").text == "ok"  # served while 55 connections hang
        assert http.post("/echo", content=b"y" * 1000).text == "1000"
    closed, received = wait_closed(heads + bodies, TIMEOUT + MARGIN)
    try:
        assert len(closed) == 55, f"{55 - len(closed)} connections still open"
        for s in heads + bodies:  # closed by the deadline, not before it
            assert closed[s] - opened >= TIMEOUT * 0.9
        for n, s in enumerate(heads):
            if HEADS[n % len(HEADS)]:
                assert received[s].startswith(b"HTTP/1.1 408 "), received[s]
            else:
                assert received[s] == b""  # nothing asked, nothing answered
        for s in bodies:
            assert received[s].startswith(b"HTTP/1.1 408 "), received[s]
        with httpx.Client(base_url=server.url, timeout=5) as http:
            assert http.get("/").text == "ok"
        # the application's ClientDisconnect over a body timeout is no error to log
        assert [r.getMessage() for r in errors.records] == []
    finally:
        logging.getLogger("uvicorn.error").removeHandler(errors)
        for s in heads + bodies:
            s.close()


def test_a_head_dribbled_byte_by_byte_is_cut_off(server: LiveServer) -> None:
    """uvicorn's keep-alive timer restarts on every byte; the head deadline does not."""
    sock = raw(server)
    started = time.monotonic()
    head = b"GET / HTTP/1.1\r\nX-Padding: " + b"a" * 100
    cut_after = None
    try:
        for byte in head:  # at most ~100 x 0.1 s
            try:
                sock.sendall(bytes([byte]))
            except OSError:
                cut_after = time.monotonic() - started
                break
            sock.settimeout(0.1)
            try:
                if sock.recv(4096).startswith(b"HTTP/1.1 408"):
                    cut_after = time.monotonic() - started
                    break
            except TimeoutError:
                pass
    finally:
        sock.close()
    assert cut_after is not None and TIMEOUT * 0.9 <= cut_after <= TIMEOUT + MARGIN


def test_slow_but_timely_requests_are_served(server: LiveServer) -> None:
    sock = raw(server)
    try:
        for piece in (
            b"POST /echo HTTP/1.1\r\nHost: x\r\n",
            b"Content-Length: 6\r\n",
            b"\r\n",
            b"abc",
            b"def",
        ):
            sock.sendall(piece)
            time.sleep(TIMEOUT / 8)
        sock.settimeout(5)
        reply = sock.recv(4096)
        assert reply.startswith(b"HTTP/1.1 200 ") and reply.endswith(b"\r\n\r\n6"), reply
        # the same connection, a second request: its own head deadline, not the first one's
        time.sleep(TIMEOUT / 2)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(TIMEOUT * 0.6)
        sock.sendall(b"Host: x\r\n\r\n")
        assert sock.recv(4096).endswith(b"\r\n\r\nok")
    finally:
        sock.close()


def test_an_idle_keep_alive_connection_is_closed(server: LiveServer) -> None:
    sock = raw(server, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    try:
        sock.settimeout(5)
        assert sock.recv(4096).endswith(b"ok")
        answered = time.monotonic()
        closed, _ = wait_closed([sock], TIMEOUT + MARGIN)
        assert sock in closed and closed[sock] - answered >= TIMEOUT * 0.9
    finally:
        sock.close()


def test_an_early_answer_does_not_let_a_body_trickle_forever(server: LiveServer) -> None:
    sock = raw(server, b"POST /early HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\nxx")
    started = time.monotonic()
    got = b""
    try:
        sock.settimeout(0.1)
        for _ in range(int((TIMEOUT + MARGIN) / 0.1)):  # bounded: ~3 s
            try:
                sock.sendall(b"x")
                chunk = sock.recv(4096)
            except TimeoutError:
                continue
            except OSError:
                break
            if not chunk:
                break
            got += chunk
        else:
            pytest.fail("the trickling body was never cut off")
    finally:
        sock.close()
    assert got.startswith(b"HTTP/1.1 200 ") and got.endswith(b"early")
    assert time.monotonic() - started <= TIMEOUT + MARGIN


def test_websockets_outlive_the_request_deadlines(server: LiveServer) -> None:
    with connect(server.url.replace("http", "ws") + "/ws", proxy=None) as ws:
        time.sleep(TIMEOUT * 1.5)
        ws.send("still here")
        assert ws.recv(timeout=5) == "still here"


def test_server_config_fits_uvicorn_with_workers_and_a_factory() -> None:
    kwargs = server_config(
        "tests.test_http_limits:tiny_app", host="127.0.0.1", port=0, workers=2, limits=LIMITS
    )
    config = uvicorn.Config(**kwargs)
    assert config.workers == 2 and not config.proxy_headers
    assert config.timeout_keep_alive == TIMEOUT and config.limit_concurrency == 200
    assert config.h11_max_incomplete_event_size == 16 * 1024
    assert pickle.loads(pickle.dumps(kwargs["http"])).func is TimedH11Protocol  # spawnable
    factory = server_config("bot.app:create_app", host="h", port=1, factory=True)
    assert factory["factory"] is True and factory["workers"] == 1
    with pytest.raises(ValueError, match="import string"):
        server_config(tiny_app, host="127.0.0.1", port=0, workers=2)
    with pytest.raises(ValueError, match="header_timeout"):
        HttpLimits(header_timeout=0)


def test_two_worker_processes_keep_the_deadlines() -> None:
    """``uvicorn.run(**server_config("module:app", workers=2))``: the protocol and its
    timeouts reach the spawned workers."""
    port = free_port()
    script = (
        "import uvicorn\n"
        "from bot.server import HttpLimits, server_config\n"
        f"uvicorn.run(**server_config('tests.test_http_limits:tiny_app', host='127.0.0.1',"
        f" port={port}, workers=2, limits=HttpLimits(header_timeout={TIMEOUT})))\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the workers did not start"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/", timeout=2).text == "ok":
                    break
            except httpx.HTTPError:
                time.sleep(0.2)
        socks = [socket.create_connection(("127.0.0.1", port), timeout=5) for _ in range(4)]
        for sock in socks:
            sock.sendall(b"GET / HTTP/1.1\r\n")
        closed, received = wait_closed(socks, TIMEOUT + MARGIN)
        for sock in socks:
            sock.close()
        assert len(closed) == 4 and all(r.startswith(b"HTTP/1.1 408 ") for r in received.values())
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=5)


def test_settings_feed_the_limits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from bot.app import http_limits

    none = tmp_path / "none.yml"
    defaults = http_limits(Settings.load({}, none))
    assert (
        defaults.header_timeout,
        defaults.body_timeout,
        defaults.keepalive,
        defaults.limit_concurrency,
    ) == (10.0, 30.0, 75.0, 1000)
    limits = http_limits(
        Settings.load(
            {
                "CLERK_HTTP_HEADER_TIMEOUT": "2.5",
                "CLERK_HTTP_BODY_TIMEOUT": "7",
                "CLERK_HTTP_KEEPALIVE": "3",
                "CLERK_HTTP_LIMIT_CONCURRENCY": "50",
            },
            none,
        )
    )
    assert (
        limits.header_timeout,
        limits.body_timeout,
        limits.keepalive,
        limits.limit_concurrency,
    ) == (2.5, 7.0, 3.0, 50)
    for key, value in (
        ("CLERK_HTTP_HEADER_TIMEOUT", "0"),
        ("CLERK_HTTP_BODY_TIMEOUT", "x"),
        ("CLERK_HTTP_LIMIT_CONCURRENCY", "0"),
    ):
        with pytest.raises(ConfigError):
            Settings.load({key: value}, none)
