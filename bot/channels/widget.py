"""The web chat widget: an embeddable script, a demo store page, and a WebSocket channel.

Routes::

    GET /                  the demo store page; it embeds the widget with one <script> tag
    GET /widget/clerk.js   the widget; this server's defaults (title, colour, greeting) and
                           wording (its own words from the domain, the currency) baked in
    GET /widget/clerk.css  its styles, loaded into the widget's shadow root
    GET /demo/store.css    the demo page's own styles
    WS  /widget/ws         the conversation

The WebSocket speaks JSON text frames. Client to server::

    {"type": "hello", "session": str | null}        first frame; resumes a session or starts one
    {"type": "message", "id": str, "text": str, "title"?: str}
                                                    id: the client's (1-64 of A-Z a-z 0-9 _ -),
                                                    for exactly-once delivery;
                                                    title: a quick reply's label (text = payload);
                                                    a text or title breaking the rules of
                                                    bot.inputs gets error bad_frame
    {"type": "feedback", "rating": "up" | "down"}   the shopper's thumb on a feedback request
                                                    (CSAT) of this session's conversation
    {"type": "ping"}

Server to client::

    {"type": "welcome", "session": str, "history": [entry, ...], "busy": bool}
    {"type": "ack", "id": str, "duplicate"?: true}  accepted: it will be handled exactly once
    {"type": "user", "id": str, "text": str}        a message from another tab of the session
    {"type": "typing", "on": bool}                 on: a turn started; off: its replies are all sent
    {"type": "stream", "id": str, "delta": str}     tokens of bot message ``id``, while generated
    {"type": "bot", "id": str, "reply_to": str, "text"?, "buttons"?, "custom"?, "image"?}
                                                    one bot message, whole
    {"type": "stream_end", "id": str, "final"?: str}
                                                    the stream is over: its bubble becomes bot
                                                    message ``final`` (sent next), or goes away
    {"type": "error", "code": str, "message": str, "id"?: str, "retry_after"?: float}
                                                    a refused rating: code feedback_refused
                                                    with "reason" (bad_rating, not_asked...)
    {"type": "pong"}

A bot message with ``custom.type == "feedback_request"`` asks the shopper to rate the
conversation (``custom.ratings``: ``[{"rating", "label"}]``, the labels the domain's); the
thanks comes back as a bot message with ``custom.type == "feedback_thanks"`` (and
``custom.rating``) to every open tab. In the history a request already answered carries
``custom.rated``: the last rating given.

History entries are ``user`` and ``bot`` frames. Bot message ids are ``<user message id>:<n>``
(``agent:<id>`` for messages sent outside a turn: an agent's, a notice, a rating's thanks)
both live and in history, so a client renders each message once whatever the order in which
a reconnect, the history and a live broadcast reach it.

Ownership: a session's messages are handled one at a time, in arrival order, by a worker
task of the channel, not of the socket: a turn started before a dropped connection finishes,
its replies are stored, and the reconnected client gets them in the history. A message id
already accepted (live, or stored in the conversation) is acknowledged and not handled again.
Conversation ids are ``web:<session>``; session ids are random, issued by the server.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import inspect
import json
import logging
import re
import secrets
import string
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol
from urllib.parse import urlsplit

from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.routing import BaseRoute, Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketState

from bot.channels.base import Channel, Say, clerk_say
from bot.dialogue.feedback import REQUEST_TYPE as FEEDBACK_REQUEST
from bot.dialogue.sealing import Sealer
from bot.errors import FeedbackRefused, Unavailable
from bot.handoff.desk import shopper_message
from bot.inputs import BadInput, client_string
from bot.knowledge.money import format_money
from bot.ratelimit import LocalMessageLimits, MessageLimits
from bot.store import conversations
from bot.store.db import Database
from bot.types import BotUttered, ConversationId, FeedbackGiven, Message, Reply, UserUttered

if TYPE_CHECKING:
    from bot.handoff.outbox import OutgoingMessage

log = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"
DEFAULTS_MARKER = "/*CLERK_DEFAULTS*/{}"
WORDING_MARKER = "/*CLERK_WORDING*/{}"
_MARKERS = re.compile("|".join(re.escape(m) for m in (DEFAULTS_MARKER, WORDING_MARKER)))

MAX_FRAME_CHARS = 16_000
MAX_QUEUED_PER_SESSION = 20
MAX_HISTORY = 200
MAX_SESSIONS = 10_000
SESSION_RE = re.compile(r"[A-Za-z0-9_-]{20,64}")
MESSAGE_ID_RE = re.compile(r"[A-Za-z0-9_-]{1,64}")
TURN_ATTEMPTS = 3


class TurnHandler(Protocol):
    """What a channel needs of the dialogue manager (``DialogueManager``): a shopper's
    message taken as a turn, and a shopper's rating of their conversation (CSAT; raises
    ``FeedbackRefused`` or ``Unavailable``, see ``DialogueManager.record_feedback``)."""

    async def handle(self, message: Message) -> list[Reply]: ...

    async def record_feedback(
        self, conversation_id: ConversationId, rating: object, *, channel: str
    ) -> list[Reply]: ...


TokenSink = Callable[[str], Awaitable[None]]


# --------------------------------------------------------------------------- policies


class OriginPolicy:
    """Which web pages may open a conversation: this server's own origin, the listed
    origins, or any origin when the list holds ``*``. Requests without an ``Origin`` header
    (no browser involved) are allowed; browsers always send one on WebSocket handshakes."""

    def __init__(self, allowed: Iterable[str] = ()) -> None:
        items = [o.strip().rstrip("/").lower() for o in allowed if o.strip()]
        self.any = "*" in items
        self.allowed = frozenset(o for o in items if o != "*")

    def allows(self, origin: str | None, host: str | None) -> bool:
        if origin is None or self.any:
            return True
        origin = origin.strip().rstrip("/").lower()
        if origin in self.allowed:
            return True
        netloc = urlsplit(origin).netloc
        return bool(host) and netloc == (host or "").lower()


# --------------------------------------------------------------------------- rendering


def reply_frame(reply: Reply, message_id: str, reply_to: str) -> dict[str, Any]:
    frame: dict[str, Any] = {"type": "bot", "id": message_id, "reply_to": reply_to}
    if reply.text is not None:
        frame["text"] = reply.text
    if reply.buttons:
        frame["buttons"] = [b.to_dict() for b in reply.buttons]
    if reply.custom is not None:
        frame["custom"] = reply.custom
    if reply.image is not None:
        frame["image"] = reply.image
    return frame


def transcript(events: Iterable[Any], limit: int = MAX_HISTORY) -> list[dict[str, Any]]:
    """A conversation's stored events as widget frames (the last ``limit`` of them).

    A quick reply is stored as its payload; it is shown with the title of the button the
    shopper pressed, looked up among the buttons of the bot messages just before it."""
    out: list[dict[str, Any]] = []
    turn_id = "start"
    n = 0
    buttons: dict[str, str] = {}
    request: dict[str, Any] | None = None  # the latest feedback request's frame
    for ev in events:
        if isinstance(ev, UserUttered):
            turn_id = ev.message_id or f"u{len(out)}"
            n = 0
            text = buttons.get(ev.text, ev.text)
            out.append({"type": "user", "id": turn_id, "text": text})
            buttons = {}
        elif isinstance(ev, BotUttered):
            reply = ev.to_reply()
            outside = ev.outside_turn_id  # said outside a turn (the outbox, a rating's thanks)
            if outside is not None:
                out.append(reply_frame(reply, f"agent:{outside}", f"agent:{outside}"))
            else:
                out.append(reply_frame(reply, f"{turn_id}:{n}", turn_id))
                n += 1
            if (reply.custom or {}).get("type") == FEEDBACK_REQUEST:
                request = out[-1]
            for b in reply.buttons:
                buttons.setdefault(b.payload, b.title)
        elif (shown := shopper_message(ev)) is not None:  # a human agent's message, a notice
            custom = {
                "type": "agent_message" if shown["kind"] == "agent" else "handoff_notice",
                "id": shown["id"],
                **({"agent": shown["agent"]} if "agent" in shown else {}),
            }
            out.append(
                {
                    "type": "bot",
                    "id": f"agent:{shown['id']}",
                    "reply_to": f"agent:{shown['id']}",
                    "text": shown["text"],
                    "custom": custom,
                }
            )
        elif isinstance(ev, FeedbackGiven) and request is not None:
            request["custom"] = {**request["custom"], "rated": ev.rating}
    return out[-limit:]


# --------------------------------------------------------------------------- sessions


@dataclass
class _Item:
    """A message to take a turn for, or (``rating`` set) a rating to record, in the order
    the session's sockets sent them."""

    id: str
    text: str
    shown: str  # what the shopper sees as their message (a quick reply's title)
    rating: _Rating | None = None


@dataclass(frozen=True)
class _Rating:
    value: object  # as the client sent it; ``record_feedback`` checks it
    client: _Client  # told of a refusal


@dataclass
class _Client:
    socket: WebSocket
    ready: bool = False  # welcome sent; until then broadcasts wait in ``held``
    held: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class _Session:
    id: str
    clients: list[_Client] = field(default_factory=list)
    queue: deque[_Item] = field(default_factory=deque)
    accepted: OrderedDict[str, None] = field(default_factory=OrderedDict)
    worker: asyncio.Task[None] | None = None
    busy: bool = False

    def remember(self, message_id: str) -> None:
        self.accepted[message_id] = None
        while len(self.accepted) > 1000:
            self.accepted.popitem(last=False)

    @property
    def idle(self) -> bool:
        return not self.clients and not self.queue and self.worker is None


@dataclass(frozen=True)
class WidgetLook:
    """What the store sets about the widget; the ``<script>`` tag may override each.
    ``greeting``: the chat's first message ("" for none; the server's default is the
    domain's, ``default_greeting``)."""

    title: str = "Clerk"
    color: str = "#0f766e"
    greeting: str = ""
    server_url: str | None = None

    def as_defaults(self) -> dict[str, str]:
        out = {"title": self.title, "color": self.color, "greeting": self.greeting}
        if self.server_url:
            out["server"] = self.server_url.rstrip("/")
        return out


def default_greeting(say: Say) -> str:
    """The widget's greeting when the settings set none: response ``utter_widget_greeting``."""
    return say("utter_widget_greeting", {})


#: The widget's own words: each key is domain response ``utter_widget_<key>``, with the
#: ``{placeholders}`` the widget fills in the browser (the title may come from the script tag).
WIDGET_STRINGS: dict[str, tuple[str, ...]] = {
    "connecting": (),
    "reconnecting": (),
    "online": (),
    "offline": (),
    "open_chat": ("title",),
    "close_chat": (),
    "conversation": ("title",),
    "typing": ("title",),
    "placeholder": (),
    "message": (),
    "send": (),
    "queued": (),
    "held": (),
    "sending": (),
    "not_sent": (),
    "products": (),
    "in_stock": (),
    "out_of_stock": (),
    "quick_replies": (),
    "agent": ("agent",),
    "agent_unnamed": (),
    "rate_limited": ("seconds",),
    "turn_failed": (),
    "feedback_refused": (),
}


@dataclass(frozen=True)
class WidgetWording:
    """The widget's own words and the store's currency, baked into the script as
    ``WORDING`` (the ``<script>`` tag cannot override them).

    ``strings``: ``WIDGET_STRINGS`` key -> text, its ``{placeholders}`` left for the widget
    to fill; the widget inserts it as text, never HTML, and falls back to Clerk's English
    for a key missing here. ``currency``: the ISO 4217 code product card prices are shown
    in (``Settings.currency``)."""

    strings: Mapping[str, str] = field(default_factory=dict)
    currency: str = "USD"

    @classmethod
    def from_responses(cls, say: Say, currency: str = "USD") -> WidgetWording:
        """Every ``WIDGET_STRINGS`` key from ``say`` (one variant each, chosen now)."""
        strings = {
            key: say(f"utter_widget_{key}", {hole: "{" + hole + "}" for hole in holes})
            for key, holes in WIDGET_STRINGS.items()
        }
        return cls(strings, currency)

    def as_script_value(self) -> dict[str, Any]:
        return {"currency": self.currency, "strings": dict(self.strings)}


class WidgetChannel(Channel):
    """Holds the dialogue manager; serves the widget and its WebSocket conversations."""

    name = "web"
    key_prefix = "web"

    def __init__(
        self,
        manager: TurnHandler,
        db: Database,
        *,
        look: WidgetLook | None = None,
        wording: WidgetWording | None = None,
        origins: OriginPolicy | None = None,
        rate_limit: int = 20,
        limits: MessageLimits | None = None,
        demo_products: list[dict[str, Any]] | None = None,
        sealer: Sealer | None = None,
    ) -> None:
        """``look`` and ``wording``: Clerk's defaults (its greeting, words and USD) when not
        given; ``bot.app`` passes the store's. ``sealer``: opens the personal data sealed
        in stored conversations, for the history shown to the shopper it belongs to."""
        self.manager = manager
        self.db = db
        self.sealer = sealer
        say = clerk_say(self.name)
        self.look = look or WidgetLook(greeting=default_greeting(say))
        self.wording = wording or WidgetWording.from_responses(say)
        self.origins = origins or OriginPolicy()
        self.limiter = limits or LocalMessageLimits(rate_limit)
        self.demo_products = demo_products or []
        self._sessions: OrderedDict[str, _Session] = OrderedDict()
        self._streams = "on_token" in inspect.signature(manager.handle).parameters
        self._closing = False

    # ------------------------------------------------------------------ HTTP
    def routes(self) -> list[BaseRoute]:
        return [
            Route("/", self.demo_page, methods=["GET"]),
            Route("/widget/clerk.js", self.script, methods=["GET"]),
            Route("/widget/clerk.css", self.stylesheet, methods=["GET"]),
            Route("/demo/store.css", self.demo_stylesheet, methods=["GET"]),
            WebSocketRoute("/widget/ws", self.websocket),
        ]

    async def script(self, request: Request) -> Response:
        source = (WEB_DIR / "static" / "clerk-widget.js").read_text(encoding="utf-8")
        # One pass: a marker's text inside a baked value (a title "/*CLERK_WORDING*/{}")
        # must never be replaced in turn, which would put JSON inside a JS string literal.
        baked = {
            DEFAULTS_MARKER: _script_json(self.look.as_defaults()),
            WORDING_MARKER: _script_json(self.wording.as_script_value()),
        }
        source = _MARKERS.sub(lambda m: baked[m.group(0)], source)
        return Response(
            source, media_type="text/javascript; charset=utf-8", headers=_asset_headers()
        )

    async def stylesheet(self, request: Request) -> Response:
        return Response(
            (WEB_DIR / "static" / "clerk-widget.css").read_text(),
            media_type="text/css; charset=utf-8",
            headers=_asset_headers(),
        )

    async def demo_stylesheet(self, request: Request) -> Response:
        return Response(
            (WEB_DIR / "static" / "demo-store.css").read_text(),
            media_type="text/css; charset=utf-8",
            headers=_asset_headers(),
        )

    async def demo_page(self, request: Request) -> HTMLResponse:
        page = string.Template((WEB_DIR / "templates" / "demo-store.html").read_text())
        server = (self.look.server_url or str(request.base_url)).rstrip("/")
        ws_origin = re.sub(r"^http", "ws", server)
        body = page.safe_substitute(
            title=html.escape(self.look.title),
            server=html.escape(server, quote=True),
            products=_product_grid(self.demo_products),
        )
        csp = (
            "default-src 'self'; script-src 'self' "
            + server
            + "; style-src 'self' "
            + server
            + "; connect-src 'self' "
            + ws_origin
            + "; img-src 'self' data:; base-uri 'none'; "
            "form-action 'self'; frame-ancestors 'none'"
        )
        return HTMLResponse(
            body, headers={"Content-Security-Policy": csp, "X-Content-Type-Options": "nosniff"}
        )

    # ------------------------------------------------------------------ lifecycle
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        self._closing = False
        try:
            yield
        finally:
            self._closing = True
            for session in list(self._sessions.values()):
                for client in list(session.clients):
                    with contextlib.suppress(Exception):
                        await client.socket.close(code=1001, reason="server restarting")
                if session.worker is not None:
                    session.worker.cancel()
            self._sessions.clear()

    # ------------------------------------------------------------------ WebSocket
    async def websocket(self, socket: WebSocket) -> None:
        if self._closing or not self.origins.allows(
            socket.headers.get("origin"), socket.headers.get("host")
        ):
            log.info("widget connection refused for origin %r", socket.headers.get("origin"))
            await socket.close(code=1008)  # before accept: the handshake gets HTTP 403
            return
        await socket.accept()
        client = _Client(socket)
        session: _Session | None = None
        try:
            while True:
                frame = await socket.receive()
                if frame["type"] == "websocket.disconnect":
                    break
                raw = frame.get("text")
                if raw is None:
                    await self._send(client, _error("bad_frame", "send JSON text frames"))
                    continue
                if len(raw) > MAX_FRAME_CHARS:
                    await socket.close(code=1009, reason="frame too large")
                    break
                try:
                    data = json.loads(raw)
                except (ValueError, RecursionError):  # not JSON, a huge number, too deep
                    await self._send(client, _error("bad_frame", "malformed JSON"))
                    continue
                if not isinstance(data, dict):
                    await self._send(client, _error("bad_frame", "a frame is a JSON object"))
                    continue
                kind = data.get("type")
                if kind == "ping":
                    await self._send(client, {"type": "pong"})
                elif kind == "hello":
                    if session is not None:
                        await self._send(client, _error("bad_frame", "hello was already sent"))
                        continue
                    session = await self._welcome(client, data.get("session"))
                elif kind == "message":
                    if session is None:
                        await self._send(client, _error("hello_first", "send hello first"))
                        continue
                    await self._accept(session, client, data)
                elif kind == "feedback":
                    if session is None:
                        await self._send(client, _error("hello_first", "send hello first"))
                        continue
                    await self._accept_rating(session, client, data.get("rating"))
                else:
                    await self._send(client, _error("bad_frame", f"unknown type {kind!r}"))
        except Exception:  # a broken socket ends this connection, never the session
            log.debug("widget socket ended", exc_info=True)
        finally:
            if session is not None and client in session.clients:
                session.clients.remove(client)

    async def _welcome(self, client: _Client, requested: Any) -> _Session:
        sid = requested if isinstance(requested, str) and SESSION_RE.fullmatch(requested) else None
        if sid is None:
            sid = secrets.token_urlsafe(24)
        session = self._session(sid)
        session.clients.append(client)  # broadcasts from now on are held until the welcome
        history = await self.db.call(self._history, sid)
        for entry in history:
            if entry["type"] == "user":
                session.remember(entry["id"])
        pending = [
            {"type": "user", "id": i.id, "text": i.shown}
            for i in session.queue
            if i.rating is None and not any(e["id"] == i.id for e in history)
        ]
        await self._send(
            client,
            {"type": "welcome", "session": sid, "history": history + pending, "busy": session.busy},
            direct=True,
        )
        client.ready = True
        held, client.held = client.held, []
        shown = {entry["id"] for entry in history}
        for frame in held:  # what the history already holds is not sent again
            if frame.get("type") in ("bot", "user") and frame.get("id") in shown:
                continue
            await self._send(client, frame)
        return session

    def _history(self, sid: str) -> list[dict[str, Any]]:
        with self.db.session() as s:
            events = conversations.load_events(s, self.conversation_id(sid))
        return transcript(self.sealer.open(events) if self.sealer else events)

    def _session(self, sid: str) -> _Session:
        session = self._sessions.get(sid)
        if session is None:
            session = self._sessions[sid] = _Session(sid)
            for old_id in list(self._sessions):
                if len(self._sessions) <= MAX_SESSIONS:
                    break
                if self._sessions[old_id].idle:
                    del self._sessions[old_id]
        self._sessions.move_to_end(sid)
        return session

    async def _accept(self, session: _Session, client: _Client, data: dict[str, Any]) -> None:
        mid, text, title = data.get("id"), data.get("text"), data.get("title")
        if not isinstance(mid, str) or not MESSAGE_ID_RE.fullmatch(mid):
            await self._send(
                client, _error("bad_frame", "a message needs an id (1-64 of A-Z a-z 0-9 _ -)")
            )
            return
        if not isinstance(text, str):
            await self._send(client, _error("bad_frame", "a message needs a text", mid))
            return
        try:  # the rules of bot.inputs: nothing that cannot be stored reaches a turn
            client_string(text, "text", max_chars=MAX_FRAME_CHARS)
            if title is not None:
                client_string(title, "title", max_chars=MAX_FRAME_CHARS)
        except BadInput as exc:
            await self._send(client, _error("bad_frame", str(exc), mid))
            return
        if mid in session.accepted:
            await self._send(client, {"type": "ack", "id": mid, "duplicate": True})
            return
        if len(session.queue) >= MAX_QUEUED_PER_SESSION:
            await self._send(
                client,
                {**_error("rate_limited", "too many messages waiting", mid), "retry_after": 2.0},
            )
            return
        wait = await self.limiter.check(self.conversation_id(session.id))
        if wait:
            await self._send(
                client,
                {
                    **_error(
                        "rate_limited", "You're sending messages faster than I can read them.", mid
                    ),
                    "retry_after": round(wait, 2),
                },
            )
            return
        shown = title.strip()[:200] if isinstance(title, str) and title.strip() else text
        item = _Item(id=mid, text=text, shown=shown)
        session.remember(mid)
        session.queue.append(item)
        await self._send(client, {"type": "ack", "id": mid})
        await self._broadcast(session, {"type": "user", "id": mid, "text": item.shown}, skip=client)
        if session.worker is None:
            session.worker = asyncio.create_task(self._drain(session))

    async def _accept_rating(self, session: _Session, client: _Client, rating: object) -> None:
        """Queue the shopper's rating behind the session's messages: the receive loop goes
        on at once (a rating may wait on the conversation, as a turn does), and a rating
        sent after a message is recorded after that message's turn."""
        wait = await self.limiter.check(self.conversation_id(session.id))
        if wait or len(session.queue) >= MAX_QUEUED_PER_SESSION:
            await self._send(
                client,
                {
                    **_error("rate_limited", "too many messages", None),
                    "retry_after": round(wait or 2.0, 2),
                },
            )
            return
        session.queue.append(_Item(id="", text="", shown="", rating=_Rating(rating, client)))
        if session.worker is None:
            session.worker = asyncio.create_task(self._drain(session))

    async def _feedback(self, session: _Session, rating: _Rating) -> None:
        """The shopper's rating of this session's conversation (the only one it may rate):
        recorded without a turn; the thanks goes to every open tab of the session, a
        refusal to the socket that sent it."""
        cid = self.conversation_id(session.id)
        client = rating.client
        try:
            thanks = await self.manager.record_feedback(cid, rating.value, channel=self.name)
        except FeedbackRefused as exc:
            await self._send(client, {**_error("feedback_refused", str(exc)), "reason": exc.reason})
            return
        except Unavailable as exc:
            await self._send(
                client,
                {**_error("busy", "try again shortly"), "retry_after": round(exc.retry_after, 2)},
            )
            return
        for reply in thanks:  # the id the history gives it: the event's message_id
            frame_id = f"agent:{(reply.custom or {}).get('id')}"
            await self._broadcast(session, reply_frame(reply, frame_id, frame_id))

    # ------------------------------------------------------------------ turns
    async def _drain(self, session: _Session) -> None:
        try:
            while session.queue:
                item = session.queue[0]
                if item.rating is not None:
                    try:
                        await self._feedback(session, item.rating)
                    except Exception:
                        log.exception("widget rating failed")
                        await self._send(
                            item.rating.client,
                            _error("busy", "Sorry, something went wrong. Please try again."),
                        )
                    finally:
                        session.queue.popleft()
                    continue
                session.busy = True
                await self._broadcast(session, {"type": "typing", "on": True})
                try:
                    await self._turn_with_retries(session, item)
                except Exception:
                    log.exception("widget turn failed")
                    await self._broadcast(
                        session,
                        _error(
                            "turn_failed",
                            "Sorry, something went wrong on our side. Please try again.",
                            item.id,
                        ),
                    )
                finally:
                    session.queue.popleft()
                    session.busy = False
                    # typing off ends the turn: every reply to the message has been sent
                    await self._broadcast(session, {"type": "typing", "on": False})
        finally:
            session.busy = False
            session.worker = None

    async def _turn_with_retries(self, session: _Session, item: _Item) -> None:
        """An accepted message is this worker's to deliver: when the conversation or the
        database is busy (``Unavailable``), try again a few times before giving up. A retry
        of a turn that was stored after all is answered from the store (same message id)."""
        for attempt in range(TURN_ATTEMPTS):
            try:
                await self._turn(session, item)
                return
            except Unavailable as exc:
                if attempt == TURN_ATTEMPTS - 1 or self._closing:
                    raise
                await asyncio.sleep(min(exc.retry_after, 5.0))

    async def _turn(self, session: _Session, item: _Item) -> None:
        stream_id = f"{item.id}:s"
        streamed: list[str] = []

        async def on_token(delta: str) -> None:
            if delta:
                streamed.append(delta)
                await self._broadcast(session, {"type": "stream", "id": stream_id, "delta": delta})

        message = Message(
            conversation_id=self.conversation_id(session.id),
            text=item.text,
            channel=self.name,
            metadata={"message_id": item.id},
        )
        if self._streams:
            replies = await self.manager.handle(message, on_token=on_token)  # type: ignore[call-arg]
        else:
            replies = await self.manager.handle(message)
        frames = [reply_frame(r, f"{item.id}:{n}", item.id) for n, r in enumerate(replies)]
        if streamed:
            # the streamed bubble becomes the final message it spelled out (which the
            # history knows by the same id), or goes away if there is none
            target = _streamed_reply(frames, "".join(streamed))
            end: dict[str, Any] = {"type": "stream_end", "id": stream_id}
            if target is not None:
                end["final"] = target["id"]
            await self._broadcast(session, end)
        for frame in frames:
            await self._broadcast(session, frame)

    # ------------------------------------------------------------------ sending
    async def push(self, session_id: str, frame: dict[str, Any]) -> bool:
        """Send ``frame`` to every open socket of widget session ``session_id`` outside a
        turn (a human agent's message). False when none is open: the caller keeps the
        message and retries; the history shows it on the next connection anyway."""
        session = self._sessions.get(session_id)
        if session is None or not session.clients:
            return False
        await self._broadcast(session, frame)
        return True

    def delivery(self) -> WidgetChannel:
        return self

    async def deliver(self, message: OutgoingMessage) -> bool:
        """A human agent's message (or a handoff notice) as a ``bot`` frame with id
        ``agent:<message id>`` (the id the widget's history gives it), to every open
        socket of the session; ``False`` (kept pending) while none is open."""
        reply = message.to_reply()
        frame: dict[str, Any] = {
            "type": "bot",
            "id": f"agent:{message.id}",
            "reply_to": f"agent:{message.id}",
            "text": reply.text,
            "custom": reply.custom,
        }
        return await self.push(self.local_id(message.conversation_id), frame)

    async def _broadcast(
        self, session: _Session, frame: dict[str, Any], skip: _Client | None = None
    ) -> None:
        for client in list(session.clients):
            if client is not skip:
                await self._send(client, frame)

    async def _send(self, client: _Client, frame: dict[str, Any], direct: bool = False) -> None:
        if not direct and not client.ready and frame.get("type") not in ("pong", "error", "ack"):
            client.held.append(frame)
            return
        if client.socket.application_state != WebSocketState.CONNECTED:
            return
        try:
            await client.socket.send_text(json.dumps(frame))
        except Exception:
            log.debug("widget send failed", exc_info=True)


def _streamed_reply(frames: list[dict[str, Any]], text: str) -> dict[str, Any] | None:
    """The final message a token stream belongs to: the knowledge answer, else the message
    whose text the stream spelled out."""
    for f in frames:
        if (f.get("custom") or {}).get("type") == "answer":
            return f
    for f in frames:
        if (f.get("text") or "").strip() == text.strip():
            return f
    return None


def _error(code: str, message: str, message_id: str | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {"type": "error", "code": code, "message": message}
    if message_id is not None:
        out["id"] = message_id
    return out


def _script_json(value: Any) -> str:
    """``value`` as a JavaScript literal that cannot end the script element it may be
    inlined into (no ``<``)."""
    return json.dumps(value).replace("<", "\\u003c")


def _asset_headers() -> dict[str, str]:
    return {
        "Cache-Control": "public, max-age=300",
        "X-Content-Type-Options": "nosniff",
        "Access-Control-Allow-Origin": "*",
    }


def _product_grid(products: list[dict[str, Any]]) -> str:
    cards = []
    for p in products:
        variants = list((p.get("variants") or {}).values())
        prices = [Decimal(str(v["price"])) for v in variants if v.get("price") is not None]
        in_stock = sum(1 for v in variants if v.get("available"))
        currency = str(p.get("currency") or "USD")
        price = f"from {format_money(min(prices), currency)}" if prices else ""
        stock = f"{in_stock} of {len(variants)} options in stock" if variants else ""
        cards.append(
            '<li class="product"><h3>' + html.escape(str(p.get("name", ""))) + "</h3>"
            f'<p class="price">{html.escape(price)}</p><p class="stock">{html.escape(stock)}</p>'
            "</li>"
        )
    return "\n".join(cards)
