"""The HTTP server: uvicorn with the timeouts and limits a public server needs.

uvicorn closes idle keep-alive connections, but not a connection that is slow to *send*:
a client may take forever over its request line and headers (or never send a byte), or over
its body, and each such connection stays open and counts against ``limit_concurrency``.
``TimedH11Protocol`` adds the two missing deadlines; ``server_config`` returns the keyword
arguments of ``uvicorn.run`` / ``uvicorn.Config`` with them and the other limits::

    uvicorn.run(**server_config(app, host="0.0.0.0", port=5005, limits=HttpLimits(...)))
    uvicorn.run(**server_config("bot.app:factory", host=..., port=..., workers=4, factory=True))

The protocol subclasses uvicorn's h11 implementation and relies on its attributes
(``conn``, ``cycle``, ``transport``, ``handle_events``, ``handle_websocket_upgrade``);
``tests/test_http_limits.py`` runs it against the installed uvicorn. It imports nothing of
``bot``: ``cli`` (or any launcher) passes the settings' values in.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from dataclasses import dataclass
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)

_TIMEOUT_408 = (
    b"HTTP/1.1 408 Request Timeout\r\ncontent-type: text/plain; charset=utf-8\r\n"
    b"content-length: 16\r\nconnection: close\r\n\r\nrequest timeout\n"
)


@dataclass(frozen=True)
class HttpLimits:
    """Seconds and sizes for one server process.

    ``header_timeout``: a request's line and headers must be complete this long after the
    connection opens or the first byte of the request arrives. ``body_timeout``: its body
    must be complete this long after its headers. ``keepalive``: an idle connection between
    requests is closed after this long: longer than the idle timeout of the clients and proxies
    in front (httpx 5 s, nginx 60 s, cloud load balancers 60 s), so that it is always they
    who close an idle connection, never the server just as they send a request on it. ``graceful_shutdown``: on shutdown, running requests
    get this long to finish. ``limit_concurrency``: open connections (WebSockets included)
    and running requests beyond it get 503. ``backlog``: connections the kernel queues
    before accept. ``max_head_bytes``: a longer request head gets 400."""

    header_timeout: float = 10.0
    body_timeout: float = 30.0
    keepalive: float = 75.0
    graceful_shutdown: float = 5.0
    limit_concurrency: int = 1000
    backlog: int = 2048
    max_head_bytes: int = 16 * 1024

    def __post_init__(self) -> None:
        for name in ("header_timeout", "body_timeout", "keepalive", "graceful_shutdown"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be a positive number of seconds")
        for name in ("limit_concurrency", "backlog", "max_head_bytes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


class TimedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines for receiving a request.

    - **head**: the request line and headers must be complete within ``header_timeout``
      seconds of the connection opening, or of the first byte of a later request on it.
      Otherwise the connection is closed: with ``408 Request Timeout`` when part of a
      head arrived, silently when nothing did.
    - **body**: the body must be complete within ``body_timeout`` seconds of the head.
      Otherwise the connection is closed, with ``408`` when the application has not started
      its response; the application's ``receive()`` then gives ``http.disconnect`` and what
      it sends is dropped; an exception it raises over that (Starlette's
      ``ClientDisconnect``) is logged at debug level, not as an error, so slow clients
      cannot flood the log. A response sent early does not end the deadline: a body that
      keeps trickling in afterwards is still cut off.

    Between requests, idle keep-alive connections are uvicorn's (``timeout_keep_alive``).
    A WebSocket upgrade ends both deadlines. uvicorn builds one instance per connection by
    calling the class with its own keywords, so pass the timeouts with
    ``functools.partial`` (see ``server_config``)."""

    def __init__(
        self, *args: Any, header_timeout: float = 10.0, body_timeout: float = 30.0, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.header_timeout = header_timeout
        self.body_timeout = body_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None
        self._head_started = False
        self._upgraded = False
        self._body_expired = False
        self.app = self._quiet_after_body_timeout(self.app)

    # ------------------------------------------------------------------ events
    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)

    def data_received(self, data: bytes) -> None:
        if not self._upgraded and self.conn.their_state is h11.IDLE:
            self._head_started = True
            if self._head_timer is None:
                self._head_timer = self.loop.call_later(self.header_timeout, self._head_timed_out)
        super().data_received(data)

    def handle_events(self) -> None:
        super().handle_events()
        self._follow_request()

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._upgraded = True
        self._cancel_timers()
        super().handle_websocket_upgrade(event)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    def _quiet_after_body_timeout(self, app: Any) -> Any:
        async def run(scope: Any, receive: Any, send: Any) -> None:
            try:
                await app(scope, receive, send)
            except Exception:
                if not self._body_expired:
                    raise
                log.debug("the application failed over a body timeout", exc_info=True)

        return run

    # ------------------------------------------------------------------ deadlines
    def _follow_request(self) -> None:
        """Start or end the deadlines as the client's side of h11 moves on."""
        if self._upgraded:
            return
        state = self.conn.their_state
        if state is not h11.IDLE and self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
            self._head_started = False
        if state is h11.SEND_BODY:
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self.body_timeout, self._body_timed_out)
        elif self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self.transport.is_closing():
            return
        log.debug(
            "closing %s: request head not complete in %.1f s", self.client, self.header_timeout
        )
        if self._head_started:
            self.transport.write(_TIMEOUT_408)
        with contextlib.suppress(h11.LocalProtocolError):
            self.conn.send(h11.ConnectionClosed())
        self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if self.transport.is_closing():
            return
        log.debug("closing %s: request body not complete in %.1f s", self.client, self.body_timeout)
        self._body_expired = True
        cycle = self.cycle
        if cycle is not None and not cycle.response_started:
            cycle.response_started = True
            self.transport.write(_TIMEOUT_408)
        if cycle is not None:  # the application sees a disconnect, its sends are dropped
            cycle.disconnected = True
            cycle.message_event.set()
        self.transport.close()


def server_config(
    app: Any,
    *,
    host: str,
    port: int,
    workers: int = 1,
    factory: bool = False,
    limits: HttpLimits | None = None,
    log_level: str = "warning",
) -> dict[str, Any]:
    """Keyword arguments for ``uvicorn.run`` (or ``uvicorn.Config``) serving ``app`` with
    ``limits``' timeouts and limits.

    ``app``: an ASGI application, or an import string (``"module:attribute"``), which
    ``workers`` > 1 requires; ``factory``: the import string names a function returning
    the application. The limits hold per worker process. uvicorn's own proxy-header
    handling is off, so the ASGI ``client`` is the socket peer: the application decides
    which ``X-Forwarded-For`` to believe (``bot.ratelimit.client_address``).
    Raises ``ValueError`` for an application object with ``workers`` > 1."""
    limits = limits or HttpLimits()
    if workers < 1:
        raise ValueError("workers must be at least 1")
    if workers > 1 and not isinstance(app, str):
        raise ValueError("several workers need the application as an import string")
    return {
        "app": app,
        "host": host,
        "port": port,
        "workers": workers,
        "factory": factory,
        "http": functools.partial(
            TimedH11Protocol, header_timeout=limits.header_timeout, body_timeout=limits.body_timeout
        ),
        "proxy_headers": False,
        "timeout_keep_alive": limits.keepalive,
        "timeout_graceful_shutdown": limits.graceful_shutdown,
        "limit_concurrency": limits.limit_concurrency,
        "backlog": limits.backlog,
        "h11_max_incomplete_event_size": limits.max_head_bytes,
        "log_level": log_level,
    }
