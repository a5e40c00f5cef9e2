"""Messages for the shopper that are not replies to a shopper turn, and the in-process
change feed the console listens to.

``ShopperDelivery`` is the one contract a channel implements to push to a shopper::

    class ShopperDelivery(Protocol):
        async def deliver(self, message: OutgoingMessage) -> bool: ...

Return ``True`` once the message reached the shopper (or the transport took it: a Bot API
``sendMessage`` that succeeded, a frame written to an open WebSocket); ``False`` or an
exception keeps it pending and the outbox retries it every ``retry_every`` seconds. A
message may be pushed more than once after a failure: ``OutgoingMessage.id`` is stable, so
a client shows it once. Register one per channel name (``Conversation.channel``) with
``Outbox.register`` (``bot.app.attach_handoff`` registers what each channel's
``Channel.delivery()`` offers); a channel with none (REST) leaves messages pending until the
client takes them with ``Outbox.take_pending`` (``GET /webhooks/rest/messages?sender=ID``).

Database work runs on the database's threads (``Database.call``), never on the event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from bot.store.db import Database
from bot.store.models import OutboxMessage
from bot.types import ConversationId, Reply

log = logging.getLogger(__name__)

# --------------------------------------------------------------------------- the feed


@dataclass(frozen=True)
class Change:
    """Something happened in a conversation the console may show: ``kinds`` are event
    types (``user``, ``bot``) and handoff steps (``handoff:claimed``), ``status`` the
    conversation's handoff status afterwards."""

    conversation_id: str
    status: str
    kinds: tuple[str, ...] = ()


class Subscription:
    """An async iterator of ``Change`` values. Bounded: a subscriber that falls behind
    loses the oldest changes (consoles refetch on each one, so the latest is what counts)."""

    def __init__(self, relay: Relay, maxsize: int) -> None:
        self._relay = relay
        self._queue: asyncio.Queue[Change | None] = asyncio.Queue(maxsize)

    def _put(self, change: Change | None) -> None:
        while True:
            try:
                self._queue.put_nowait(change)
                return
            except asyncio.QueueFull:
                with contextlib.suppress(asyncio.QueueEmpty):
                    self._queue.get_nowait()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Change:
        change = await self._queue.get()
        if change is None:
            raise StopAsyncIteration
        return change

    def close(self) -> None:
        self._relay._subscribers.discard(self)
        self._put(None)


class Relay:
    """In-process publish/subscribe of ``Change`` values (one server process)."""

    def __init__(self) -> None:
        self._subscribers: set[Subscription] = set()

    def subscribe(self, maxsize: int = 100) -> Subscription:
        sub = Subscription(self, maxsize)
        self._subscribers.add(sub)
        return sub

    def publish(self, change: Change) -> None:
        for sub in list(self._subscribers):
            sub._put(change)

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def close(self) -> None:
        for sub in list(self._subscribers):
            sub.close()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Held open while the app serves (a relay across workers listens meanwhile)."""
        yield


class RedisRelay(Relay):
    """The change feed of several workers: ``publish`` goes to a Redis pub/sub channel and
    every worker's ``running()`` listener hands what arrives to its local subscribers, so
    a console on one worker sees turns taken on another, and the worker that holds a
    shopper's socket pushes an agent's message queued on another.

    Redis is a notifier here, not a store: a change lost while Redis is down is published
    locally instead, and the outbox's periodic retry delivers what a lost change would
    have. Why Redis rather than PostgreSQL ``LISTEN/NOTIFY``: it needs no connection held
    per worker from the database pool, works with SQLite too, and python-socketio's
    manager for several workers uses it anyway."""

    def __init__(self, url: str, channel: str = "clerk:changes") -> None:
        import redis.asyncio as aioredis

        super().__init__()
        self.url = url
        self.channel = channel
        self._redis = aioredis.from_url(url)
        self._sending: set[asyncio.Task[None]] = set()

    def publish(self, change: Change) -> None:
        task = asyncio.get_running_loop().create_task(self._send(change))
        self._sending.add(task)
        task.add_done_callback(self._sending.discard)

    async def _send(self, change: Change) -> None:
        payload = json.dumps(
            {
                "conversation_id": change.conversation_id,
                "status": change.status,
                "kinds": list(change.kinds),
            }
        )
        try:
            await self._redis.publish(self.channel, payload)
        except Exception:
            log.warning("Redis publish failed; the change stays on this worker", exc_info=True)
            Relay.publish(self, change)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        listener = asyncio.create_task(self._listen())
        try:
            yield
        finally:
            listener.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await listener
            await self._redis.aclose()

    async def _listen(self) -> None:
        while True:
            try:
                async with self._redis.pubsub() as pubsub:
                    await pubsub.subscribe(self.channel)
                    async for item in pubsub.listen():
                        if item.get("type") != "message":
                            continue
                        data = json.loads(item["data"])
                        Relay.publish(
                            self,
                            Change(
                                conversation_id=str(data["conversation_id"]),
                                status=str(data["status"]),
                                kinds=tuple(data.get("kinds") or ()),
                            ),
                        )
            except asyncio.CancelledError:
                raise
            except Exception:
                log.warning("Redis change feed interrupted; reconnecting", exc_info=True)
                await asyncio.sleep(1.0)


# --------------------------------------------------------------------------- the outbox


#: Kinds of outbox message that carry a structured payload (``Reply.custom``) besides their
#: text: the row's ``payload`` column (revision 0006) holds it, ``text`` only the words, so
#: a worker that does not know the kind still sends plain words. ``feedback``: the request
#: for a CSAT rating sent when an agent closes a handoff (``bot.dialogue.feedback``).
STRUCTURED_KINDS = frozenset({"feedback"})


@dataclass(frozen=True)
class OutgoingMessage:
    """One outbox message. ``degraded``: a ``STRUCTURED_KINDS`` message whose payload was
    missing or unreadable; it goes out as a plain notice with its text (logged, and counted
    by ``Outbox.bad_payloads``) rather than stopping the messages queued after it."""

    id: str
    conversation_id: ConversationId
    channel: str
    kind: str  # agent (a human agent's reply) | notice (the system: "Ana joined") | feedback
    text: str
    sender: str | None = None
    custom: dict[str, Any] | None = None  # the payload of a ``STRUCTURED_KINDS`` message
    degraded: bool = False

    def to_reply(self) -> Reply:
        if self.kind in STRUCTURED_KINDS and self.custom is not None:
            return Reply(text=self.text or None, custom={**self.custom, "id": self.id})
        custom: dict[str, Any] = {
            "type": "agent_message" if self.kind == "agent" else "handoff_notice",
            "id": self.id,
        }
        if self.sender:
            custom["agent"] = self.sender
        return Reply(text=self.text, custom=custom)

    def to_rasa(self) -> dict[str, Any]:
        return self.to_reply().to_rasa(self.conversation_id)

    @classmethod
    def from_row(cls, row: OutboxMessage) -> OutgoingMessage:
        """The row as a message; never raises for a bad payload (see ``degraded``)."""
        custom, degraded = None, False
        if row.kind in STRUCTURED_KINDS:
            custom = _payload(row)
            degraded = custom is None
        return cls(
            id=row.message_id,
            conversation_id=ConversationId(row.conversation_id),
            channel=row.channel,
            kind=row.kind,
            text=row.text if isinstance(row.text, str) else "",
            sender=row.sender,
            custom=custom,
            degraded=degraded,
        )


def _payload(row: OutboxMessage) -> dict[str, Any] | None:
    """The row's payload if it is a JSON object with a string ``type``; else ``None``,
    logged."""
    payload = row.payload
    if isinstance(payload, dict) and isinstance(payload.get("type"), str):
        return dict(payload)
    log.warning(
        "outbox message %s (%s) has no readable payload (%.80r); sending its text only",
        row.message_id,
        row.kind,
        payload,
    )
    return None


class ShopperDelivery(Protocol):
    async def deliver(self, message: OutgoingMessage) -> bool: ...


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Outbox:
    def __init__(
        self,
        db: Database,
        relay: Relay,
        *,
        retry_every: float = 5.0,
        max_age: dt.timedelta = dt.timedelta(hours=24),
    ) -> None:
        self.db = db
        self.relay = relay
        self.retry_every = retry_every
        self.max_age = max_age
        self._deliveries: dict[str, ShopperDelivery] = {}
        self.delivered = 0
        self.failures = 0
        self.bad_payloads = 0  # messages sent as plain text: their payload was unreadable

    def register(self, channel: str, delivery: ShopperDelivery) -> None:
        """Push messages of conversations on ``channel`` through ``delivery``."""
        self._deliveries[channel] = delivery

    # ------------------------------------------------------------------ writing
    @staticmethod
    def add(
        session: Session,
        conversation_id: str,
        channel: str,
        text: str,
        *,
        kind: str = "agent",
        sender: str | None = None,
        payload: dict[str, Any] | None = None,
    ) -> OutgoingMessage:
        """Queue a message in the caller's transaction (a handoff step's)."""
        row = OutboxMessage(
            message_id=uuid.uuid4().hex,
            conversation_id=conversation_id,
            channel=channel,
            kind=kind,
            sender=sender,
            text=text,
            payload=payload,
        )
        session.add(row)
        session.flush()
        return OutgoingMessage.from_row(row)

    @staticmethod
    def add_reply(
        session: Session, conversation_id: str, channel: str, reply: Reply, *, kind: str
    ) -> OutgoingMessage:
        """Queue a message with a structured payload (``reply.custom``, in ``payload``;
        ``kind`` one of ``STRUCTURED_KINDS``) and its plain text in the caller's
        transaction."""
        if kind not in STRUCTURED_KINDS:
            raise ValueError(f"kind {kind!r} carries no payload; use Outbox.add")
        return Outbox.add(
            session, conversation_id, channel, reply.text or "", kind=kind, payload=reply.custom
        )

    # ------------------------------------------------------------------ reading
    def pending(
        self,
        conversation_id: str | None = None,
        *,
        channels: list[str] | None = None,
        newer_than: dt.datetime | None = None,
    ) -> list[OutgoingMessage]:
        with self.db.session() as s:
            stmt = select(OutboxMessage).where(OutboxMessage.delivered_at.is_(None))
            if conversation_id is not None:
                stmt = stmt.where(OutboxMessage.conversation_id == conversation_id)
            if channels is not None:
                stmt = stmt.where(OutboxMessage.channel.in_(channels))
            if newer_than is not None:
                stmt = stmt.where(OutboxMessage.created_at >= newer_than)
            rows = s.scalars(stmt.order_by(OutboxMessage.id)).all()
            return self._counted([OutgoingMessage.from_row(r) for r in rows])

    def _counted(self, messages: list[OutgoingMessage]) -> list[OutgoingMessage]:
        self.bad_payloads += sum(m.degraded for m in messages)
        return messages

    async def take_pending(self, conversation_id: str) -> list[OutgoingMessage]:
        """The conversation's undelivered messages, oldest first, marked delivered: each is
        returned once, even to two clients polling at the same moment."""
        taken = await self.db.call(self._take_pending, conversation_id, frozenset(self._deliveries))
        self.delivered += len(taken)
        return taken

    def _take_pending(self, conversation_id: str, pushed: frozenset[str]) -> list[OutgoingMessage]:
        with self.db.session() as s:
            rows = s.scalars(
                select(OutboxMessage)
                .where(
                    OutboxMessage.conversation_id == conversation_id,
                    OutboxMessage.delivered_at.is_(None),
                )
                .order_by(OutboxMessage.id)
            ).all()
            taken = []
            for r in rows:
                if r.channel in pushed:
                    continue  # that channel pushes: polling must not take its messages
                done = s.execute(
                    update(OutboxMessage)
                    .where(OutboxMessage.id == r.id, OutboxMessage.delivered_at.is_(None))
                    .values(delivered_at=_now())
                )
                if done.rowcount == 1:  # type: ignore[attr-defined]
                    taken.append(OutgoingMessage.from_row(r))
            return self._counted(taken)

    # ------------------------------------------------------------------ pushing
    async def push(self, conversation_id: str | None = None) -> int:
        """Push pending messages (of one conversation, or all) whose channel has a delivery.
        Messages older than ``max_age`` are no longer pushed (the widget shows them in its
        history). Returns how many were delivered."""
        if not self._deliveries:
            return 0
        messages = await self.db.call(
            self.pending,
            conversation_id,
            channels=list(self._deliveries),
            newer_than=_now() - self.max_age,
        )
        done = 0
        for m in messages:
            try:
                ok = await self._deliveries[m.channel].deliver(m)
            except Exception:
                log.exception("pushing message %s to %s failed", m.id, m.channel)
                ok = False
            if not ok:
                self.failures += 1
                continue
            await self.db.call(self._mark_delivered, m.id)
            done += 1
        self.delivered += done
        return done

    def _mark_delivered(self, message_id: str) -> None:
        with self.db.session() as s:
            s.execute(
                update(OutboxMessage)
                .where(OutboxMessage.message_id == message_id, OutboxMessage.delivered_at.is_(None))
                .values(delivered_at=_now())
            )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Held open while the app serves: push on every change that queued a message,
        and retry what is pending every ``retry_every`` seconds."""
        feed = self.relay.subscribe(maxsize=1000)
        worker = asyncio.create_task(self._work(feed))
        try:
            yield
        finally:
            feed.close()
            worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await worker

    async def _work(self, feed: Subscription) -> None:
        it = feed.__aiter__()
        while True:
            try:
                change = await asyncio.wait_for(it.__anext__(), timeout=self.retry_every)
            except TimeoutError:
                change = None
            except StopAsyncIteration:
                return
            try:
                if change is None:
                    await self.push()
                elif "outbox" in change.kinds:
                    await self.push(change.conversation_id)
            except Exception:
                log.exception("outbox worker failed; retrying")
