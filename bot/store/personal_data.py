"""A shopper's personal data: export it, erase it, and purge what is older than the
retention period (``clerk privacy export | delete | purge``, ``CLERK_RETENTION_DAYS``).

Contracts:

- Every function here is one transaction (``Database.session()``): it is done whole or not
  at all, and it writes one ``privacy_audit`` row saying what it did (counts only).
- The audit never holds a shopper's id in clear (that would undo the erasure it records):
  ``subject`` is ``subject_hash(id)``, a SHA-256 of the id cut to 32 hex digits. It is a
  pseudonym, not anonymity: whoever already knows an id can tell whether, and when, it was
  exported or erased (that is what lets a second ``delete`` say "already erased"), but the
  id cannot be read back from the audit.
- ``delete_customer`` keeps what the store must keep for its accounts and anonymises the
  rest. Orders reference ``customers.user_id`` by foreign key, and the retail data's ids
  carry the shopper's name (``mia_garcia_4516``), so the profile is neither deleted (the
  orders would dangle) nor blanked in place (its id would still name the shopper): the
  orders move to a new profile ``erased-<random>`` holding no personal data, and the old
  row is deleted. The random id groups that shopper's orders without linking them to the
  audit row or to anything an outsider can compute. Orders keep items, amounts, payment
  history and fulfilments and lose their address; the bot's order changes lose their
  conversation id, and an address change its addresses. Tickets are kept with their
  status, priority and order, their text, contact, customer and conversation blanked.
  Conversations go with their events, handoffs and outbox messages (``ON DELETE
  CASCADE``). Running it again finds nothing and says so.
- ``purge_older_than`` deletes conversations not updated since the cutoff, except those a
  human agent is involved in (handoff requested or claimed) or a turn holds right now, and
  anonymises solved tickets last updated before the cutoff. It is set-based SQL: one
  ``DELETE`` and one ``UPDATE`` whatever the table sizes.
- ``run_retention_once`` is the daily purge of ``clerk serve``: when another worker (or a
  manual ``clerk privacy purge``) purged in the last 23 hours it does nothing. The check and
  the purge are one transaction, serialised on PostgreSQL by an advisory lock and on SQLite
  by its single writer, so of several workers exactly one purges.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import logging
import re
import secrets
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import ColumnElement, delete, false, inspect, or_, select, text, update
from sqlalchemy.orm import Session, selectinload

from bot.errors import InputError, UnknownCustomer
from bot.store.db import Database
from bot.store.models import (
    Base,
    Conversation,
    ConversationEvent,
    Customer,
    Order,
    OrderChange,
    PrivacyAudit,
    Ticket,
    utcnow,
)

log = logging.getLogger(__name__)

ERASED = "[erased]"
# what an anonymised ticket keeps: status, priority, order, times; the rest is blanked
_ANONYMOUS_TICKET: dict[str, Any] = {
    "text": ERASED,
    "contact": None,
    "customer_id": None,
    "conversation_id": None,
    "updated_at": Ticket.updated_at,  # anonymising is not an update of the ticket
}
#: Handoff states in which a human agent is involved: a purge leaves these conversations.
ACTIVE_HANDOFF = ("requested", "claimed")
#: Ticket states after which a ticket may be anonymised by the retention purge (the
#: console's states are open | pending | solved).
CLOSED_TICKET_STATUSES = ("solved",)
#: A scheduled purge is skipped when any purge ran this recently.
PURGE_GUARD = dt.timedelta(hours=23)
# Key of the PostgreSQL advisory lock that serialises workers' retention purges.
_PG_RETENTION_LOCK_KEY = 0x436C65726B01


def subject_hash(customer_id: str) -> str:
    """The audit's pseudonym for ``customer_id``: 32 hex digits of its SHA-256."""
    return hashlib.sha256(f"clerk-privacy-subject\0{customer_id}".encode()).hexdigest()[:32]


# ----------------------------------------------------------------------------- export


def export_customer(
    db: Database, customer_id: str, *, now: dt.datetime | None = None
) -> dict[str, Any]:
    """Everything stored about one shopper, as JSON-ready values (datetimes in ISO 8601,
    money as decimal strings): ``profile`` (``None`` when only conversations or tickets
    name the id), ``conversations`` with their ``events``, ``tickets`` (the shopper's and
    those raised in their conversations), ``orders`` with their ``items`` and the
    ``changes`` the bot made. ``UnknownCustomer`` when nothing names the id."""
    now = _utc(now)
    with db.session() as s:
        customer = s.get(Customer, customer_id)
        conversations = s.scalars(
            select(Conversation)
            .where(Conversation.customer_id == customer_id)
            .order_by(Conversation.created_at, Conversation.id)
        ).all()
        conversation_ids = [c.id for c in conversations]
        events: dict[str, list[dict[str, Any]]] = {cid: [] for cid in conversation_ids}
        for event in s.scalars(
            select(ConversationEvent)
            .where(ConversationEvent.conversation_id.in_(conversation_ids))
            .order_by(ConversationEvent.conversation_id, ConversationEvent.seq)
        ):
            events[event.conversation_id].append(_columns(event, skip=("id", "conversation_id")))
        tickets = s.scalars(
            select(Ticket).where(_tickets_of(customer_id, conversation_ids)).order_by(Ticket.id)
        ).all()
        orders = s.scalars(
            select(Order)
            .where(Order.user_id == customer_id)
            .options(selectinload(Order.items), selectinload(Order.changes))
            .order_by(Order.order_id)
        ).all()
        if customer is None and not conversations and not tickets:
            raise UnknownCustomer(customer_id)
        export = {
            "customer_id": customer_id,
            "exported_at": now.isoformat(),
            "profile": _columns(customer) if customer is not None else None,
            "conversations": [
                {**_columns(c, skip=("lease_owner", "lease_until")), "events": events[c.id]}
                for c in conversations
            ],
            "tickets": [_columns(t) for t in tickets],
            "orders": [
                {
                    **_columns(o),
                    "items": [_columns(i, skip=("id", "order_id")) for i in o.items],
                    "changes": [_columns(c, skip=("order_id",)) for c in o.changes],
                }
                for o in orders
            ],
        }
        counts = {
            "profile": int(customer is not None),
            "conversations": len(conversations),
            "events": sum(len(e) for e in events.values()),
            "tickets": len(tickets),
            "orders": len(orders),
            "order_changes": sum(len(o.changes) for o in orders),
        }
        s.add(
            PrivacyAudit(
                action="export", subject=subject_hash(customer_id), counts=counts, created_at=now
            )
        )
    return export


# ----------------------------------------------------------------------------- erasure


@dataclass(frozen=True)
class ErasureSummary:
    """What ``delete_customer`` did. All counts 0 and ``already_erased``: an earlier
    erasure of this id left nothing to do."""

    subject: str  # subject_hash of the id, as in the audit
    profile: int  # profiles anonymised (0 or 1)
    conversations: int  # deleted, with their events, handoffs and outbox messages
    events: int
    tickets: int  # anonymised
    orders: int  # kept for the accounts, address removed, moved to the erased profile
    order_changes: int  # conversation link (and an address change's addresses) removed
    already_erased: bool = False

    def counts(self) -> dict[str, int]:
        return {
            k: v
            for k, v in asdict(self).items()
            if type(v) is int  # not the bool, not subject
        }

    @property
    def nothing_left(self) -> bool:
        return not any(self.counts().values())


def delete_customer(
    db: Database, customer_id: str, *, now: dt.datetime | None = None
) -> ErasureSummary:
    """Erase one shopper (see the module's contract). ``UnknownCustomer`` when nothing
    names the id and it was never erased; a repeated erasure returns a summary with
    ``already_erased`` set."""
    now = _utc(now)
    subject = subject_hash(customer_id)
    with db.session() as s:
        customer = s.get(Customer, customer_id, with_for_update=True)
        conversation_ids = list(
            s.scalars(select(Conversation.id).where(Conversation.customer_id == customer_id))
        )
        tickets = _rows(
            s.execute(
                update(Ticket)
                .where(_tickets_of(customer_id, conversation_ids))
                .values(**_ANONYMOUS_TICKET)
                .execution_options(synchronize_session=False)
            )
        )
        their_orders = select(Order.order_id).where(Order.user_id == customer_id)
        order_changes = _rows(
            s.execute(
                update(OrderChange)
                .where(
                    or_(
                        OrderChange.order_id.in_(their_orders),
                        OrderChange.conversation_id.in_(conversation_ids),
                    )
                )
                .values(conversation_id=None)
                .execution_options(synchronize_session=False)
            )
        )
        s.execute(
            update(OrderChange)
            .where(OrderChange.order_id.in_(their_orders), OrderChange.kind == "address")
            .values(data={"old": ERASED, "new": ERASED})
            .execution_options(synchronize_session=False)
        )
        orders = 0
        if customer is not None:
            orders = _move_orders_to_erased_profile(s, customer_id)
        event_counts = s.scalars(
            delete(Conversation)
            .where(Conversation.id.in_(conversation_ids))
            .returning(Conversation.event_count)
            .execution_options(synchronize_session=False)
        ).all()
        summary = ErasureSummary(
            subject=subject,
            profile=int(customer is not None),
            conversations=len(event_counts),
            events=sum(event_counts),
            tickets=tickets,
            orders=orders,
            order_changes=order_changes,
        )
        if summary.nothing_left:
            erased_before = s.scalar(
                select(PrivacyAudit.id)
                .where(PrivacyAudit.action == "delete", PrivacyAudit.subject == subject)
                .limit(1)
            )
            if erased_before is None:
                raise UnknownCustomer(customer_id)
            summary = ErasureSummary(**{**asdict(summary), "already_erased": True})
        s.add(
            PrivacyAudit(
                action="delete",
                subject=subject,
                counts={**summary.counts(), "already_erased": summary.already_erased},
                created_at=now,
            )
        )
    return summary


def _move_orders_to_erased_profile(s: Session, customer_id: str) -> int:
    """Move the shopper's orders (addresses removed) to a new profile without personal
    data, then delete the shopper's profile. The number of orders moved."""
    erased_id = f"erased-{secrets.token_hex(8)}"
    s.add(
        Customer(
            user_id=erased_id,
            first_name=ERASED,
            last_name=ERASED,
            email=ERASED,
            zip="",
            address={},
            payment_methods={},
        )
    )
    s.flush()
    orders = _rows(
        s.execute(
            update(Order)
            .where(Order.user_id == customer_id)
            .values(user_id=erased_id, address={}, updated_at=Order.updated_at)
            .execution_options(synchronize_session=False)
        )
    )
    s.execute(
        delete(Customer)
        .where(Customer.user_id == customer_id)
        .execution_options(synchronize_session=False)
    )
    return orders


# ----------------------------------------------------------------------------- retention


@dataclass(frozen=True)
class PurgeSummary:
    cutoff: dt.datetime  # what was last updated before this went
    conversations: int  # deleted, with their events, handoffs and outbox messages
    events: int
    tickets: int  # solved tickets anonymised

    def counts(self) -> dict[str, int]:
        return {"conversations": self.conversations, "events": self.events, "tickets": self.tickets}


_AGE = re.compile(r"(\d+(?:\.\d+)?)\s*([hdw])")
_UNIT_DAYS = {"h": 1 / 24, "d": 1.0, "w": 7.0}


def parse_age(text: str) -> float:
    """Days in an age like ``90d``, ``12w`` or ``24h`` (hours, days, weeks). ``InputError``
    with a message for the user for anything else, and for an age that is not > 0."""
    match = _AGE.fullmatch(text.strip().lower())
    if match is None:
        raise InputError(f"{text!r} is not an age: use a number and a unit, e.g. 90d, 12w or 24h")
    days = float(match.group(1)) * _UNIT_DAYS[match.group(2)]
    if days <= 0:
        raise InputError(f"an age must be more than 0, got {text!r}")
    return days


def purge_older_than(db: Database, days: float, *, now: dt.datetime | None = None) -> PurgeSummary:
    """Delete conversations and anonymise solved tickets older than ``days`` (see the
    module's contract)."""
    if days <= 0:
        raise InputError(f"an age must be more than 0 days, got {days}")
    now = _utc(now)
    with db.session() as s:
        return _purge(s, days, now, scheduled=False)


def run_retention_once(db: Database, retention_days: int, now: dt.datetime) -> PurgeSummary | None:
    """The scheduled purge: ``None`` (nothing done) when retention is off
    (``retention_days`` 0) or some purge ran within ``PURGE_GUARD`` of ``now``."""
    if retention_days <= 0:
        return None
    now = _utc(now)
    with db.session() as s:
        if db.dialect == "postgresql":
            s.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_RETENTION_LOCK_KEY})
        recent = s.scalar(
            select(PrivacyAudit.id)
            .where(PrivacyAudit.action == "purge", PrivacyAudit.created_at > now - PURGE_GUARD)
            .limit(1)
        )
        if recent is not None:
            return None
        return _purge(s, retention_days, now, scheduled=True)


async def retention_loop(
    db: Database,
    retention_days: int,
    stop: asyncio.Event,
    *,
    check_every: float = 3600.0,
    clock: Callable[[], dt.datetime] = utcnow,
) -> None:
    """Run ``run_retention_once`` now and every ``check_every`` seconds, on a database
    thread (no connection is held while this waits), until ``stop`` is set. Checking
    hourly against the 23-hour guard purges about once a day, however often workers
    restart. A failure is logged and tried again at the next check.

    ``stop``, not only cancellation, ends it: the loop leaves between two checks, whatever
    a cancellation meets on its way."""
    while not stop.is_set():
        try:
            done = await db.call_within(60.0, run_retention_once, db, retention_days, clock())
            if done is not None:
                log.info(
                    "retention purge (older than %d days): %d conversations (%d events) "
                    "deleted, %d tickets anonymised",
                    retention_days,
                    done.conversations,
                    done.events,
                    done.tickets,
                )
        except Exception:
            log.exception("retention purge failed; next try in %.0f s", check_every)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), check_every)


@contextlib.asynccontextmanager
async def retention_running(
    db: Database, retention_days: int, *, check_every: float = 3600.0
) -> AsyncIterator[None]:
    """Held open while the app serves: the retention loop runs in the background."""
    stop = asyncio.Event()
    task = asyncio.create_task(retention_loop(db, retention_days, stop, check_every=check_every))
    try:
        yield
    finally:
        stop.set()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def _purge(s: Session, days: float, now: dt.datetime, *, scheduled: bool) -> PurgeSummary:
    cutoff = now - dt.timedelta(days=days)
    event_counts = s.scalars(
        delete(Conversation)
        .where(
            Conversation.updated_at < cutoff,
            Conversation.handoff_status.not_in(ACTIVE_HANDOFF),
            or_(Conversation.lease_until.is_(None), Conversation.lease_until < now.timestamp()),
        )
        .returning(Conversation.event_count)
        .execution_options(synchronize_session=False)
    ).all()
    tickets = _rows(
        s.execute(
            update(Ticket)
            .where(
                Ticket.status.in_(CLOSED_TICKET_STATUSES),
                Ticket.updated_at < cutoff,
                Ticket.text != ERASED,
            )
            .values(**_ANONYMOUS_TICKET)
            .execution_options(synchronize_session=False)
        )
    )
    summary = PurgeSummary(
        cutoff=cutoff, conversations=len(event_counts), events=sum(event_counts), tickets=tickets
    )
    s.add(
        PrivacyAudit(
            action="purge",
            subject=None,
            counts={**summary.counts(), "older_than_days": days, "scheduled": scheduled},
            created_at=now,
        )
    )
    return summary


# ----------------------------------------------------------------------------- helpers


def _tickets_of(customer_id: str, conversation_ids: Sequence[str]) -> ColumnElement[bool]:
    """The shopper's tickets, and those raised in their conversations before they were
    identified."""
    in_conversations = Ticket.conversation_id.in_(conversation_ids) if conversation_ids else false()
    return or_(Ticket.customer_id == customer_id, in_conversations)


def _rows(result: Any) -> int:
    return int(result.rowcount)


def _utc(now: dt.datetime | None) -> dt.datetime:
    """``now`` (default: the current time) in UTC; a naive time is taken as UTC."""
    if now is None:
        return utcnow()
    return now.replace(tzinfo=dt.UTC) if now.tzinfo is None else now.astimezone(dt.UTC)


def _columns(row: Base, skip: Sequence[str] = ()) -> dict[str, Any]:
    """A row's columns as JSON-ready values."""
    return {
        attr.key: _jsonable(getattr(row, attr.key))
        for attr in inspect(type(row)).column_attrs
        if attr.key not in skip
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return _utc(value).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value
