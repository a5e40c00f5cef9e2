"""Rasa's ``socketio`` channel, so a store moving from Rasa keeps its web widget (for
example rasa-webchat) unchanged. Served by python-socketio on ``/socket.io``.

The protocol, as Rasa 3 speaks it with ``session_persistence: true``::

    client: session_request {"session_id": str | null}
    server: session_confirm  session_id           (a new one when none was given)
    client: user_uttered    {"message": str, "session_id": str, "customData"?: {...}}
    server: bot_uttered     {"text": str}                       one per paragraph
                            {"text": str, "quick_replies": [{"content_type": "text",
                                                             "title", "payload"}]}
                            {"attachment": {"type": "image", "payload": {"src": url}}}
                            {...custom payload as is...}

A malformed event (no data, data that is not an object, a ``session_id`` that is not a
session id, a ``message`` that is not a string or breaks the rules of ``bot.inputs``) is
answered on that socket only with ``clerk_error {"error": str, "event": str}`` and nothing
is stored; the connection stays open.

CSAT: a bot message with ``"type": "feedback_request"`` asks for a rating
(``bot.dialogue.feedback``); the client answers ``feedback {"rating": "up" | "down"}``,
which rates the conversation of the socket's own session (the one ``session_request``
confirmed, never one named in the data). The thanks comes as ``bot_uttered`` to the
session's room; a refusal as ``clerk_error`` with a ``reason`` (``bad_rating``,
``unknown_conversation``, ``not_asked``), nothing stored.

A socket joins the room of its session id, and the bot's messages go to that room: every
socket of the session (a reload, a second tab) sees them, and the conversation
(``sio:<session_id>``) continues across connections. A message without a session id uses
the socket id, as Rasa does without session persistence. The widget's origin allow-list
and per-session rate limit apply here too; a rate-limited shopper gets a polite message.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import re
import uuid
import weakref
from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Any

import socketio
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Mount, Route

from bot.channels.base import Channel
from bot.channels.widget import MAX_FRAME_CHARS, OriginPolicy, TurnHandler
from bot.errors import FeedbackRefused, Unavailable
from bot.inputs import BadInput, client_string
from bot.ratelimit import LocalMessageLimits, MessageLimits
from bot.types import Message, Reply

if TYPE_CHECKING:
    from bot.handoff.outbox import OutgoingMessage

log = logging.getLogger(__name__)

SESSION_ID_RE = re.compile(r"[A-Za-z0-9_.:-]{1,100}")
ERROR_EVT = "clerk_error"
TURN_FAILED = "Sorry, something went wrong on our side. Please try again."
SLOW_DOWN = "You're sending messages faster than I can read them. Please wait a few seconds."


def rasa_messages(reply: Reply) -> list[dict[str, Any]]:
    """One reply as the ``bot_uttered`` payloads Rasa's SocketIOOutput would emit."""
    out: list[dict[str, Any]] = []
    if reply.text is not None or reply.buttons:
        parts = [p for p in (reply.text or "").strip().split("\n\n")] or [""]
        messages: list[dict[str, Any]] = [{"text": p} for p in parts]
        if reply.buttons:
            messages[-1]["quick_replies"] = [
                {"content_type": "text", "title": b.title, "payload": b.payload or b.title}
                for b in reply.buttons
            ]
        out.extend(messages)
    if reply.image:
        out.append({"attachment": {"type": "image", "payload": {"src": reply.image}}})
    if reply.custom is not None:
        out.append(dict(reply.custom))
    return out


class SocketIOChannel(Channel):
    """Holds the dialogue manager; speaks Rasa's Socket.IO protocol."""

    name = "socketio"
    key_prefix = "sio"

    def __init__(
        self,
        manager: TurnHandler,
        *,
        origins: OriginPolicy | None = None,
        rate_limit: int = 20,
        limits: MessageLimits | None = None,
        path: str = "/socket.io",
        user_message_evt: str = "user_uttered",
        bot_message_evt: str = "bot_uttered",
        metadata_key: str = "customData",
        redis_url: str | None = None,
    ) -> None:
        """``redis_url``: share rooms and sessions with the other workers through Redis
        (python-socketio's ``AsyncRedisManager``), so a reply or an agent's message emitted
        by one worker reaches a socket connected to another."""
        self.manager = manager
        self.origins = origins or OriginPolicy()
        self.limiter = limits or LocalMessageLimits(rate_limit)
        self.path = path.rstrip("/")
        self.user_message_evt = user_message_evt
        self.bot_message_evt = bot_message_evt
        self.metadata_key = metadata_key
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()
        manager_kw: dict[str, Any] = {}
        if redis_url:
            manager_kw["client_manager"] = socketio.AsyncRedisManager(redis_url)
        self.sio = socketio.AsyncServer(
            async_mode="asgi",
            cors_allowed_origins=self._origin_allowed,
            logger=False,
            engineio_logger=False,
            **manager_kw,
        )
        self.sio.on("connect", self._on_connect)
        self.sio.on("session_request", self._on_session_request)
        self.sio.on(self.user_message_evt, self._on_user_message)
        self.sio.on("feedback", self._on_feedback)

    def routes(self) -> list[BaseRoute]:
        return [
            Mount(self.path, app=socketio.ASGIApp(self.sio, socketio_path=None)),
            Route("/webhooks/socketio/", self.status, methods=["GET"]),
        ]

    async def status(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    def delivery(self) -> SocketIOChannel:
        return self

    async def deliver(self, message: OutgoingMessage) -> bool:
        """A human agent's message (or a handoff notice) as Rasa ``bot_message_evt``
        events to the session's room; ``False`` (kept pending) while no socket of the
        session is connected."""
        room = self.local_id(message.conversation_id)
        if not any(True for _ in self.sio.manager.get_participants("/", room)):
            return False
        for payload in rasa_messages(message.to_reply()):
            await self.sio.emit(self.bot_message_evt, payload, room=room)
        return True

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        try:
            yield
        finally:
            with contextlib.suppress(Exception):
                await self.sio.shutdown()

    def _origin_allowed(self, origin: str | None, environ: dict[str, Any]) -> bool:
        allowed = self.origins.allows(origin, environ.get("HTTP_HOST"))
        if not allowed:
            log.info("socket.io connection refused for origin %r", origin)
        return allowed

    # ------------------------------------------------------------------ events
    async def _on_connect(self, sid: str, environ: dict[str, Any], auth: Any = None) -> None:
        log.debug("socket.io client %s connected", sid)

    async def _refuse(self, sid: str, event: str, problem: str) -> None:
        log.info("socket.io %s refused: %s", event, problem)
        await self.sio.emit(ERROR_EVT, {"error": problem, "event": event}, to=sid)

    async def _on_session_request(self, sid: str, data: Any = None, *extra: Any) -> None:
        """No data or no ``session_id``: a new session, as Rasa does."""
        if data is not None and not isinstance(data, dict):
            await self._refuse(sid, "session_request", "the data must be an object")
            return
        requested = (data or {}).get("session_id")
        if requested is not None and not (
            isinstance(requested, str) and SESSION_ID_RE.fullmatch(requested)
        ):
            await self._refuse(
                sid, "session_request", "'session_id' must be null or 1-100 of A-Z a-z 0-9 _ . : -"
            )
            return
        session_id = requested or uuid.uuid4().hex
        await self.sio.enter_room(sid, session_id)
        await self.sio.save_session(sid, {"session_id": session_id})
        await self.sio.emit("session_confirm", session_id, room=sid)

    async def _on_feedback(self, sid: str, data: Any = None, *extra: Any) -> None:
        """A rating of the socket's own session's conversation (see the module docstring)."""
        if not isinstance(data, dict):
            await self._refuse(sid, "feedback", "the data must be an object with a 'rating'")
            return
        session_id = (await self.sio.get_session(sid)).get("session_id")
        if not session_id:
            await self._refuse(sid, "feedback", "send session_request first")
            return
        cid = self.conversation_id(session_id)
        if await self.limiter.check(cid):
            await self.sio.emit(self.bot_message_evt, {"text": SLOW_DOWN}, room=sid)
            return
        try:
            thanks = await self.manager.record_feedback(cid, data.get("rating"), channel=self.name)
        except FeedbackRefused as exc:
            log.info("socket.io feedback refused: %s", exc.reason)
            await self.sio.emit(
                ERROR_EVT, {"error": str(exc), "event": "feedback", "reason": exc.reason}, to=sid
            )
            return
        except Unavailable as exc:
            await self._refuse(sid, "feedback", str(exc))
            return
        for reply in thanks:
            for payload in rasa_messages(reply):
                await self.sio.emit(self.bot_message_evt, payload, room=session_id)

    async def _on_user_message(self, sid: str, data: Any = None, *extra: Any) -> None:
        event = self.user_message_evt
        if not isinstance(data, dict):
            await self._refuse(sid, event, "the data must be an object with a 'message'")
            return
        try:
            text = client_string(data.get("message"), "message", max_chars=MAX_FRAME_CHARS)
        except BadInput as exc:
            await self._refuse(sid, event, str(exc))
            return
        session_id = data.get("session_id")
        if session_id is not None and not (
            isinstance(session_id, str) and SESSION_ID_RE.fullmatch(session_id)
        ):
            await self._refuse(
                sid, event, "'session_id' must be null or 1-100 of A-Z a-z 0-9 _ . : -"
            )
            return
        if session_id is None:
            saved = await self.sio.get_session(sid)
            session_id = saved.get("session_id") or sid
        if session_id not in self.sio.rooms(sid):
            await self.sio.enter_room(sid, session_id)
        if await self.limiter.check(self.conversation_id(session_id)):
            await self.sio.emit(self.bot_message_evt, {"text": SLOW_DOWN}, room=sid)
            return
        metadata = data.get(self.metadata_key) or data.get("metadata") or {}
        if isinstance(metadata, str):
            try:
                metadata = json.loads(metadata)
            except (ValueError, RecursionError):  # not JSON, a huge number, too deep
                metadata = {}
        if not isinstance(metadata, dict):
            metadata = {}
        lock = self._locks.get(session_id)
        if lock is None:
            lock = self._locks[session_id] = asyncio.Lock()
        async with lock:  # one turn at a time per session, in arrival order
            try:
                replies = await self.manager.handle(
                    Message(
                        conversation_id=self.conversation_id(session_id),
                        text=text,
                        channel=self.name,
                        metadata={k: v for k, v in metadata.items() if k != "message_id"},
                    )
                )
            except Unavailable as exc:
                log.warning("socket.io turn refused: %s", exc)
                replies = [Reply(text=TURN_FAILED)]
            except Exception:
                log.exception("socket.io turn failed")
                replies = [Reply(text=TURN_FAILED)]
            for reply in replies:
                for payload in rasa_messages(reply):
                    await self.sio.emit(self.bot_message_evt, payload, room=session_id)
