"""The tracker store: conversations, their append-only event lists, and leases.

All functions take the caller's ``Session`` and are blocking; async code runs them through
``Database.call``.

A turn (or an agent's step) holds its conversation with a **lease** on the conversation row
rather than a database lock or connection: ``claim`` writes a random owner token and an
expiry in one short transaction and loads the events; ``renew`` pushes the expiry on while
the turn works (waiting for models, action servers, LLMs, with no connection held);
``commit`` appends the turn's events only if the lease is still the turn's and nobody
appended meanwhile (fencing), and releases it in the same transaction. Several worker
processes on several hosts sharing one database thus handle each conversation's messages
one at a time, in order; a worker that dies (kill -9) leaves a lease that simply expires.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import insert, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from bot.store.models import Conversation, ConversationEvent
from bot.types import ConversationId, Event, event_from_dict


@dataclass(frozen=True)
class Snapshot:
    """What a lease holder read when it took the conversation."""

    conversation_id: ConversationId
    channel: str
    events: list[Event]
    event_count: int
    handoff_status: str
    customer_id: str | None
    existed: bool


def claim(
    session: Session,
    conversation_id: ConversationId,
    channel: str,
    owner: str,
    ttl: float,
    *,
    create: bool = True,
) -> Snapshot | None:
    """Take the conversation for ``owner`` for ``ttl`` seconds and read it; ``None`` when
    another owner's lease is still valid (or, with ``create=False``, when there is no such
    conversation and ``existed`` would be False: then an empty snapshot is returned)."""
    now = time.time()
    existed = session.get(Conversation, conversation_id) is not None
    if not existed:
        if not create:
            return Snapshot(conversation_id, channel, [], 0, "none", None, existed=False)
        _insert_if_missing(session, conversation_id, channel)
    taken = session.execute(
        update(Conversation)
        .where(
            Conversation.id == conversation_id,
            or_(Conversation.lease_owner.is_(None), Conversation.lease_until < now),
        )
        .values(lease_owner=owner, lease_until=now + ttl)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    row = session.execute(
        select(
            Conversation.channel,
            Conversation.event_count,
            Conversation.handoff_status,
            Conversation.customer_id,
        ).where(Conversation.id == conversation_id)
    ).one()
    return Snapshot(
        conversation_id,
        row.channel,
        load_events(session, conversation_id),
        row.event_count or 0,
        row.handoff_status or "none",
        row.customer_id,
        existed=existed,
    )


def _insert_if_missing(session: Session, conversation_id: ConversationId, channel: str) -> None:
    """Create the row; a concurrent creator on another connection wins quietly."""
    values = {"id": conversation_id, "channel": channel, "event_count": 0, "handoff_status": "none"}
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        session.execute(pg_insert(Conversation).values(**values).on_conflict_do_nothing())
    elif dialect == "sqlite":
        session.execute(sqlite_insert(Conversation).values(**values).on_conflict_do_nothing())
    else:
        session.add(Conversation(**values))
        session.flush()


def renew(session: Session, conversation_id: ConversationId, owner: str, ttl: float) -> bool:
    """Extend ``owner``'s lease; False when it is no longer ``owner``'s."""
    done = session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.lease_owner == owner)
        .values(lease_until=time.time() + ttl)
        .execution_options(synchronize_session=False)
    )
    return done.rowcount == 1  # type: ignore[attr-defined]


def release(session: Session, conversation_id: ConversationId, owner: str) -> None:
    """Give the conversation up without writing anything (a turn that failed)."""
    session.execute(
        update(Conversation)
        .where(Conversation.id == conversation_id, Conversation.lease_owner == owner)
        .values(lease_owner=None, lease_until=None)
        .execution_options(synchronize_session=False)
    )


def commit(
    session: Session,
    snapshot: Snapshot,
    owner: str,
    events: list[Event],
    *,
    handoff_status: str,
    customer_id: str | None,
) -> bool:
    """Append ``events`` after the snapshot's, update the derived columns and release the
    lease, all only if ``owner`` still holds it and nobody appended since the snapshot.
    False (nothing written) otherwise."""
    start = snapshot.event_count
    values: dict[str, object] = {
        "event_count": start + len(events),
        "handoff_status": handoff_status,
        "lease_owner": None,
        "lease_until": None,
    }
    if customer_id:
        values["customer_id"] = customer_id
    done = session.execute(
        update(Conversation)
        .where(
            Conversation.id == snapshot.conversation_id,
            Conversation.lease_owner == owner,
            Conversation.event_count == start,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != 1:  # type: ignore[attr-defined]
        return False
    _insert_events(session, snapshot.conversation_id, start, events)
    return True


def load_events(session: Session, conversation_id: ConversationId) -> list[Event]:
    rows = session.scalars(
        select(ConversationEvent.data)
        .where(ConversationEvent.conversation_id == conversation_id)
        .order_by(ConversationEvent.seq)
    ).all()
    return [event_from_dict(d) for d in rows]


def _insert_events(session: Session, conversation_id: str, start: int, events: list[Event]) -> None:
    if not events:
        return
    session.execute(
        insert(ConversationEvent),
        [
            {
                "conversation_id": conversation_id,
                "seq": start + i,
                "type": e.type_name,
                "timestamp": e.timestamp,
                "data": e.to_dict(),
            }
            for i, e in enumerate(events)
        ],
    )
