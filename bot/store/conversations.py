"""The tracker store: conversations and their append-only event lists.

All functions take the caller's ``Session``; the dialogue manager passes the turn's
session, so a turn's events are written in the same transaction as its business changes.
"""

from __future__ import annotations

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from bot.store.models import Conversation, ConversationEvent
from bot.types import ConversationId, Event, event_from_dict


def lock_conversation(session: Session, conversation_id: ConversationId, channel: str) -> Conversation:
    """Get (or create) the conversation row, locked for this transaction on PostgreSQL."""
    stmt = select(Conversation).where(Conversation.id == conversation_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    conv = session.scalars(stmt).first()
    if conv is None:
        conv = Conversation(id=conversation_id, channel=channel, event_count=0)
        session.add(conv)
        session.flush()
    return conv


def load_events(session: Session, conversation_id: ConversationId) -> list[Event]:
    rows = session.scalars(
        select(ConversationEvent.data)
        .where(ConversationEvent.conversation_id == conversation_id)
        .order_by(ConversationEvent.seq)
    ).all()
    return [event_from_dict(d) for d in rows]


def append_events(session: Session, conv: Conversation, events: list[Event]) -> None:
    if not events:
        return
    start = conv.event_count or 0
    session.execute(
        insert(ConversationEvent),
        [
            {
                "conversation_id": conv.id,
                "seq": start + i,
                "type": e.type_name,
                "timestamp": e.timestamp,
                "data": e.to_dict(),
            }
            for i, e in enumerate(events)
        ],
    )
    conv.event_count = start + len(events)

