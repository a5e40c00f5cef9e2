"""SQLAlchemy 2 schema: the tracker store, the store's catalog, customers, orders,
tickets and knowledge passages. Alembic migrations in ``bot/store/migrations`` create it;
the two must stay in step (a test compares them).

Money is ``Numeric(10, 2)`` (``Decimal`` in Python). JSON columns hold the structured
parts of the retail data (addresses, options, payment history) as they arrive.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    Numeric,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


# ----------------------------------------------------------------------------- tracker


class Conversation(Base):
    __tablename__ = "conversations"

    id: Mapped[str] = mapped_column(String(200), primary_key=True)
    channel: Mapped[str] = mapped_column(String(40), default="rest")
    customer_id: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # none | requested | claimed | closed  (derived from handoff events, kept for queries)
    handoff_status: Mapped[str] = mapped_column(String(20), default="none", index=True)
    # when the conversation started (its first message): analytics counts conversations by it
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    event_count: Mapped[int] = mapped_column(Integer, default=0)
    # The turn that holds the conversation (see ``bot.store.conversations``): a random
    # owner token, valid until ``lease_until`` (epoch seconds) unless renewed.
    lease_owner: Mapped[str | None] = mapped_column(String(32), nullable=True)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)


class ConversationEvent(Base):
    __tablename__ = "conversation_events"
    __table_args__ = (UniqueConstraint("conversation_id", "seq", name="uq_event_seq"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    seq: Mapped[int] = mapped_column(Integer)
    type: Mapped[str] = mapped_column(String(40))
    timestamp: Mapped[float] = mapped_column(Float)
    data: Mapped[dict[str, Any]] = mapped_column(JSON)


# the analytics report reads the window's events of a few types (revision 0005)
Index("ix_conversation_events_type_timestamp", ConversationEvent.type, ConversationEvent.timestamp)


# ----------------------------------------------------------------------------- catalog


class Product(Base):
    __tablename__ = "products"

    product_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(200), index=True)
    variants: Mapped[list[Variant]] = relationship(
        back_populates="product", order_by="Variant.item_id", cascade="all, delete-orphan"
    )


class Variant(Base):
    __tablename__ = "variants"

    item_id: Mapped[str] = mapped_column(String(40), primary_key=True)
    product_id: Mapped[str] = mapped_column(ForeignKey("products.product_id"), index=True)
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    available: Mapped[bool] = mapped_column(Boolean, default=True)
    product: Mapped[Product] = relationship(back_populates="variants")


# --------------------------------------------------------------------------- customers


class Customer(Base):
    __tablename__ = "customers"

    user_id: Mapped[str] = mapped_column(String(100), primary_key=True)
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    email: Mapped[str] = mapped_column(String(200), index=True)
    zip: Mapped[str] = mapped_column(String(20), index=True)
    address: Mapped[dict[str, Any]] = mapped_column(JSON)
    payment_methods: Mapped[dict[str, Any]] = mapped_column(JSON)


Index("ix_customers_name_zip", Customer.last_name, Customer.first_name, Customer.zip)


# ------------------------------------------------------------------------------ orders


class Order(Base):
    __tablename__ = "orders"

    order_id: Mapped[str] = mapped_column(String(20), primary_key=True)
    user_id: Mapped[str] = mapped_column(ForeignKey("customers.user_id"), index=True)
    # pending | processed | delivered | cancelled | return requested | exchange requested
    status: Mapped[str] = mapped_column(String(40), index=True)
    address: Mapped[dict[str, Any]] = mapped_column(JSON)
    fulfillments: Mapped[list[Any]] = mapped_column(JSON, default=list)
    payment_history: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    items: Mapped[list[OrderItem]] = relationship(
        back_populates="order", order_by="OrderItem.id", cascade="all, delete-orphan"
    )
    changes: Mapped[list[OrderChange]] = relationship(
        back_populates="order", order_by="OrderChange.id", cascade="all, delete-orphan"
    )


class OrderItem(Base):
    __tablename__ = "order_items"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), index=True)
    item_id: Mapped[str] = mapped_column(String(40))
    product_id: Mapped[str] = mapped_column(String(40))
    name: Mapped[str] = mapped_column(String(200))
    price: Mapped[Decimal] = mapped_column(Numeric(10, 2))
    options: Mapped[dict[str, Any]] = mapped_column(JSON)
    order: Mapped[Order] = relationship(back_populates="items")


class OrderChange(Base):
    """Audit log of every change Clerk made to an order (cancel, return, exchange, address)."""

    __tablename__ = "order_changes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    order_id: Mapped[str] = mapped_column(ForeignKey("orders.order_id"), index=True)
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(JSON)
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    order: Mapped[Order] = relationship(back_populates="changes")


# ----------------------------------------------------------------------------- tickets


class Ticket(Base):
    __tablename__ = "tickets"

    id: Mapped[str] = mapped_column(String(20), primary_key=True)  # "T-" + 6 digits
    status: Mapped[str] = mapped_column(String(20), default="open", index=True)
    priority: Mapped[str] = mapped_column(String(20), default="normal", index=True)
    customer_id: Mapped[str | None] = mapped_column(String(100), nullable=True, index=True)
    order_id: Mapped[str | None] = mapped_column(String(20), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    contact: Mapped[str | None] = mapped_column(String(200), nullable=True)
    conversation_id: Mapped[str | None] = mapped_column(String(200), nullable=True)
    assignee: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )
    # when the status last became resolved (``solved``); None while open or pending
    # (revision 0005). ``updated_at`` moves with any edit, so it cannot time a resolution.
    resolved_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )


# --------------------------------------------------------------------------- knowledge


class KnowledgePassage(Base):
    __tablename__ = "knowledge_passages"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # stable: source + anchor
    source: Mapped[str] = mapped_column(String(300), index=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)  # product | policy | faq
    title: Mapped[str] = mapped_column(String(300))
    text: Mapped[str] = mapped_column(Text)
    meta: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    content_hash: Mapped[str] = mapped_column(String(64))
    updated_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, onupdate=utcnow
    )


# ----------------------------------------------------------------------------- handoff
# Human agents, their console sessions, handoff episodes and the agent->shopper outbox
# (revision 0002). The tracker stays the truth about a conversation; ``handoffs`` and
# ``conversations.handoff_status`` are kept in step with its handoff events for queries.


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(20), default="agent")  # agent | admin
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AgentSession(Base):
    """A console login. The cookie holds a random token; only its SHA-256 is stored."""

    __tablename__ = "agent_sessions"

    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[int] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True))


class Handoff(Base):
    """One handoff episode of a conversation: requested -> claimed -> returned | closed."""

    __tablename__ = "handoffs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    status: Mapped[str] = mapped_column(String(20), index=True)  # requested|claimed|returned|closed
    reason: Mapped[str] = mapped_column(String(300))
    trigger: Mapped[str] = mapped_column(String(40))  # asked | misses | complaint | ...
    ticket_id: Mapped[str | None] = mapped_column(String(20), nullable=True)
    agent: Mapped[str | None] = mapped_column(String(100), nullable=True)
    resolution: Mapped[str | None] = mapped_column(Text, nullable=True)
    requested_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), default=utcnow, index=True
    )
    claimed_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    ended_at: Mapped[dt.datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class OutboxMessage(Base):
    """A message for the shopper sent outside a bot turn (an agent's reply, a handoff
    notice, the CSAT request after a close). Channels that can push deliver it at once;
    REST clients poll for it. ``text`` is always the plain words a shopper may be shown;
    ``payload`` (revision 0006) what a kind carries besides (``Reply.custom``)."""

    __tablename__ = "outbox"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True
    )
    channel: Mapped[str] = mapped_column(String(40))
    # agent (a human agent's reply) | notice (the system: "Ana joined") | feedback (the
    # CSAT request, its thumbs in ``payload``: bot.handoff.outbox.STRUCTURED_KINDS)
    kind: Mapped[str] = mapped_column(String(20))
    sender: Mapped[str | None] = mapped_column(String(100), nullable=True)
    text: Mapped[str] = mapped_column(Text)
    payload: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    delivered_at: Mapped[dt.datetime | None] = mapped_column(
        DateTime(timezone=True), nullable=True, index=True
    )


# ----------------------------------------------------------------------------- privacy


class PrivacyAudit(Base):
    """What a privacy command did (revision 0004): one row per export, erasure or
    retention purge. ``subject`` is never a shopper's id in clear: it is a truncated
    SHA-256 of it (``bot.store.personal_data.subject_hash``), or ``None`` for a purge;
    ``counts`` says how many rows of each kind were exported, deleted or anonymised."""

    __tablename__ = "privacy_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    action: Mapped[str] = mapped_column(String(20))  # export | delete | purge
    subject: Mapped[str | None] = mapped_column(String(64), nullable=True, index=True)
    counts: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


Index("ix_privacy_audit_action_created_at", PrivacyAudit.action, PrivacyAudit.created_at)
