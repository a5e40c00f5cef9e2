"""The handoff desk: the steps of a handoff, and what the console reads.

Step functions (``request``, ``claim``, ``post``, ``note``, ``hand_back``, ``close``) run
inside one transaction under the conversation's lock, with its replayed tracker: the
dialogue manager runs them (in a turn for ``request``; ``DialogueManager.run_external``
for the console's steps). Each applies ``HandoffEvent``s to the tracker and writes the
rows derived from them (``handoffs``, ``outbox``) in the same session, so the tracker and
the tables never disagree. A step that is not allowed in the conversation's state raises
``HandoffConflict`` (HTTP 409) and changes nothing.

Read functions (``queue``, ``conversation``, ``tickets``) open their own sessions.
"""

from __future__ import annotations

import datetime as dt
import math
import secrets
import statistics
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from bot.errors import ClerkError
from bot.handoff.outbox import Outbox
from bot.handoff.triggers import Trigger
from bot.store.db import Database
from bot.store.models import (
    Agent,
    Conversation,
    ConversationEvent,
    Customer,
    Handoff,
    Order,
    Ticket,
)
from bot.store.personal_data import CLOSED_TICKET_STATUSES
from bot.types import HandoffEvent, SlotSet, UserUttered

TICKET_STATUSES = ("open", "pending", "solved")
TICKET_PRIORITIES = ("low", "normal", "high")
MAX_AGENT_TEXT = 4000
# slots an agent may set when handing back (the authenticated customer, the order talked about)
SETTABLE_SLOTS = ("customer_id", "order_id", "ticket_id")


class HandoffConflict(ClerkError):
    """The step does not fit the conversation's handoff state (``status``)."""

    def __init__(self, message: str, status: str | None = None) -> None:
        super().__init__(message)
        self.status = status


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _aware(t: dt.datetime) -> dt.datetime:
    """``t`` in UTC when it carries no zone (SQLite gives naive datetimes back)."""
    return t if t.tzinfo else t.replace(tzinfo=dt.UTC)


class Notices(Protocol):
    """What the shopper is told at each step: the text of the domain's response
    ``utter_handoff_<step>`` (claimed, returned, closed) for ``channel`` (the
    conversation's ``Channel.name``), ``values`` (``agent``) filling its placeholders.
    The composition root passes ``Domain``-backed wording; the desk holds no text."""

    def __call__(self, response: str, channel: str, **values: Any) -> str: ...


@dataclass
class QueueEntry:
    conversation_id: str
    channel: str
    status: str  # requested | claimed
    reason: str
    trigger: str
    requested_at: float
    agent: str | None
    customer_id: str | None
    customer_name: str | None
    last_message: str | None
    ticket_id: str | None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass
class StepResult:
    status: str
    outgoing: list[Any] = field(default_factory=list)


def _open_handoff(session: Session, conversation_id: str) -> Handoff | None:
    return session.scalar(
        select(Handoff)
        .where(
            Handoff.conversation_id == conversation_id, Handoff.status.in_(("requested", "claimed"))
        )
        .order_by(Handoff.id.desc())
        .limit(1)
    )


def new_ticket_id(session: Session) -> str:
    for _ in range(50):
        candidate = f"T-{secrets.randbelow(1_000_000):06d}"
        if session.get(Ticket, candidate) is None:
            return candidate
    raise RuntimeError("could not find a free ticket id")


class HandoffDesk:
    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        *,
        notices: Notices,
        default_wait_minutes: float = 3.0,
        reveal: Callable[[dict[str, Any]], dict[str, Any]] | None = None,
    ) -> None:
        """``reveal``: opens a stored event's sealed personal data for the agent
        (``bot.dialogue.sealing``; None when transcripts are stored as said)."""
        self.db = db
        self.reveal = reveal or (lambda data: data)
        self.outbox = outbox
        self.notices = notices
        self.default_wait_minutes = default_wait_minutes

    # ------------------------------------------------------------------ steps
    def request(
        self,
        session: Session,
        conv: Conversation,
        tracker: Any,
        trigger: Trigger,
        *,
        ticket_text: str | None = None,
    ) -> Handoff | None:
        """Put the conversation in the queue (nothing when it is already waiting or held).
        With ``ticket_text`` a high-priority ticket is opened for the agent to work on."""
        if tracker.handoff_status in ("requested", "claimed"):
            return None
        ticket_id = None
        if ticket_text:
            order_id = tracker.slots.get("order_id")
            order_id = order_id if order_id and session.get(Order, order_id) else None
            ticket_id = new_ticket_id(session)
            session.add(
                Ticket(
                    id=ticket_id,
                    status="open",
                    priority="high",
                    customer_id=tracker.slots.get("customer_id"),
                    order_id=order_id,
                    text=ticket_text,
                    conversation_id=conv.id,
                )
            )
        row = Handoff(
            conversation_id=conv.id,
            status="requested",
            reason=trigger.reason[:300],
            trigger=trigger.kind.value,
            ticket_id=ticket_id,
        )
        session.add(row)
        session.flush()
        data: dict[str, Any] = {"trigger": trigger.kind.value, "handoff_id": row.id}
        if ticket_id:
            data["ticket_id"] = ticket_id
        tracker.apply(HandoffEvent(step="requested", reason=trigger.reason, data=data))
        return row

    @staticmethod
    def claim_guard(session: Session, conversation_id: str) -> None:
        """The race decider, first statement of the claim's transaction: exactly one of any
        number of concurrent claimers changes the row; the others get ``HandoffConflict``."""
        result = session.execute(
            update(Conversation)
            .where(Conversation.id == conversation_id, Conversation.handoff_status == "requested")
            .values(handoff_status="claimed")
            .execution_options(synchronize_session=False)
        )
        if result.rowcount != 1:  # type: ignore[attr-defined]
            status = session.scalar(
                select(Conversation.handoff_status).where(Conversation.id == conversation_id)
            )
            raise HandoffConflict(
                "this conversation is not waiting for an agent (someone else may have taken it)",
                status,
            )

    def claim(self, session: Session, conv: Conversation, tracker: Any, agent: str) -> StepResult:
        if tracker.handoff_status != "requested":
            raise HandoffConflict("this conversation is not waiting", tracker.handoff_status)
        row = _open_handoff(session, conv.id)
        if row is not None:
            row.status, row.agent, row.claimed_at = "claimed", agent, _now()
        notice = self.notices("utter_handoff_claimed", conv.channel, agent=agent)
        out = self.outbox.add(session, conv.id, conv.channel, notice, kind="notice", sender=agent)
        tracker.apply(
            HandoffEvent(
                step="claimed",
                data={
                    "agent": agent,
                    "handoff_id": row.id if row else None,
                    "shopper_text": notice,
                    "message_id": out.id,
                },
            )
        )
        return StepResult("claimed", [out])

    def _held_by(self, session: Session, conv: Conversation, tracker: Any, agent: str) -> Handoff:
        if tracker.handoff_status != "claimed":
            raise HandoffConflict("no agent holds this conversation", tracker.handoff_status)
        row = _open_handoff(session, conv.id)
        if row is None or row.agent != agent:
            raise HandoffConflict(
                f"{row.agent if row else 'another agent'} holds this conversation",
                tracker.handoff_status,
            )
        return row

    def post(
        self, session: Session, conv: Conversation, tracker: Any, agent: str, text: str
    ) -> StepResult:
        """The holding agent's reply to the shopper."""
        text = _clean(text)
        self._held_by(session, conv, tracker, agent)
        out = self.outbox.add(session, conv.id, conv.channel, text, kind="agent", sender=agent)
        tracker.apply(
            HandoffEvent(
                step="agent_message",
                data={"agent": agent, "text": text, "shopper_text": text, "message_id": out.id},
            )
        )
        return StepResult("claimed", [out])

    def note(
        self, session: Session, conv: Conversation, tracker: Any, agent: str, text: str
    ) -> StepResult:
        """An internal note: in the transcript for agents, never sent to the shopper."""
        text = _clean(text)
        tracker.apply(
            HandoffEvent(step="note", data={"agent": agent, "text": text, "id": uuid.uuid4().hex})
        )
        return StepResult(tracker.handoff_status)

    def hand_back(
        self,
        session: Session,
        conv: Conversation,
        tracker: Any,
        agent: str,
        slots: dict[str, Any] | None = None,
    ) -> StepResult:
        """Return the conversation to the bot, optionally setting slots (e.g. the customer
        the agent verified)."""
        row = self._held_by(session, conv, tracker, agent)
        slots = dict(slots or {})
        unknown = set(slots) - set(SETTABLE_SLOTS)
        if unknown:
            raise HandoffConflict(
                f"slots an agent may set: {', '.join(SETTABLE_SLOTS)}; "
                f"not {', '.join(sorted(unknown))}"
            )
        if slots.get("customer_id") and session.get(Customer, slots["customer_id"]) is None:
            raise HandoffConflict(f"no customer {slots['customer_id']!r}")
        for key, value in slots.items():
            tracker.apply(SlotSet(key=key, value=value if value != "" else None))
        row.status, row.ended_at = "returned", _now()
        notice = self.notices("utter_handoff_returned", conv.channel, agent=agent)
        out = self.outbox.add(session, conv.id, conv.channel, notice, kind="notice")
        tracker.apply(
            HandoffEvent(
                step="returned",
                data={
                    "agent": agent,
                    "slots": slots,
                    "handoff_id": row.id,
                    "shopper_text": notice,
                    "message_id": out.id,
                },
            )
        )
        return StepResult("none", [out])

    def close(
        self, session: Session, conv: Conversation, tracker: Any, agent: str, resolution: str
    ) -> StepResult:
        """End the handoff with a resolution (kept for agents); the shopper is told."""
        resolution = _clean(resolution)
        row = self._held_by(session, conv, tracker, agent)
        row.status, row.ended_at, row.resolution = "closed", _now(), resolution
        notice = self.notices("utter_handoff_closed", conv.channel, agent=agent)
        out = self.outbox.add(session, conv.id, conv.channel, notice, kind="notice", sender=agent)
        tracker.apply(
            HandoffEvent(
                step="closed",
                reason=resolution,
                data={
                    "agent": agent,
                    "resolution": resolution,
                    "handoff_id": row.id,
                    "shopper_text": notice,
                    "message_id": out.id,
                },
            )
        )
        return StepResult("closed", [out])

    # ------------------------------------------------------------------ reads
    def expected_wait_minutes(self, session: Session) -> int:
        """Minutes a newly queued shopper should expect: the median time to claim of recent
        handoffs (or the default), times the queue ahead per agent seen in the console in
        the last five minutes."""
        since = _now() - dt.timedelta(minutes=5)
        agents_online = (
            session.scalar(
                select(func.count())
                .select_from(Agent)
                .where(Agent.active.is_(True), Agent.last_seen_at >= since)
            )
            or 0
        )
        recent = session.execute(
            select(Handoff.requested_at, Handoff.claimed_at)
            .where(Handoff.claimed_at.is_not(None))
            .order_by(Handoff.id.desc())
            .limit(50)
        ).all()
        waits = [((_aware(c) - _aware(r)).total_seconds() / 60.0) for r, c in recent if r and c]
        per = statistics.median(waits) if waits else self.default_wait_minutes
        waiting = (
            session.scalar(
                select(func.count()).select_from(Handoff).where(Handoff.status == "requested")
            )
            or 0
        )
        ahead = max(0, waiting - 1)  # called after the new request was queued
        estimate = per * (1 + ahead / max(1, agents_online))
        return max(1, math.ceil(estimate))

    def queue(self) -> list[QueueEntry]:
        """Conversations waiting for or held by an agent, longest waiting first."""
        with self.db.session() as s:
            rows = s.execute(
                select(Handoff, Conversation)
                .join(Conversation, Conversation.id == Handoff.conversation_id)
                .where(
                    Handoff.status.in_(("requested", "claimed")),
                    Conversation.handoff_status.in_(("requested", "claimed")),
                )
                .order_by(Handoff.requested_at)
            ).all()
            out = []
            for h, c in rows:
                customer = s.get(Customer, c.customer_id) if c.customer_id else None
                out.append(
                    QueueEntry(
                        conversation_id=c.id,
                        channel=c.channel,
                        status=c.handoff_status,
                        reason=h.reason,
                        trigger=h.trigger,
                        requested_at=_aware(h.requested_at).timestamp(),
                        agent=h.agent,
                        customer_id=c.customer_id,
                        customer_name=f"{customer.first_name} {customer.last_name}"
                        if customer
                        else None,
                        last_message=_last_user_text(s, c.id, self.reveal),
                        ticket_id=h.ticket_id,
                    )
                )
            return out

    def conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """Everything the conversation view shows: the transcript with what the bot
        understood and cited, the handoff, the customer with orders and tickets."""
        from bot.types import event_from_dict

        with self.db.session() as s:
            conv = s.get(Conversation, conversation_id)
            if conv is None:
                return None
            raw = s.scalars(
                select(ConversationEvent.data)
                .where(ConversationEvent.conversation_id == conversation_id)
                .order_by(ConversationEvent.seq)
            ).all()
            events = [event_from_dict(self.reveal(d)) for d in raw]
            handoff = s.scalar(
                select(Handoff)
                .where(Handoff.conversation_id == conversation_id)
                .order_by(Handoff.id.desc())
                .limit(1)
            )
            customer_id = conv.customer_id
            slots: dict[str, Any] = {}
            for e in events:
                if isinstance(e, SlotSet):
                    slots[e.key] = e.value
            customer_id = customer_id or slots.get("customer_id")
            customer = s.get(Customer, customer_id) if customer_id else None
            orders = []
            if customer is not None:
                for o in s.scalars(
                    select(Order).where(Order.user_id == customer.user_id).order_by(Order.order_id)
                ):
                    orders.append(
                        {
                            "order_id": o.order_id,
                            "status": o.status,
                            "items": [i.name for i in o.items],
                        }
                    )
            tickets_q = select(Ticket).where(Ticket.conversation_id == conversation_id)
            if customer is not None:
                tickets_q = select(Ticket).where(
                    (Ticket.conversation_id == conversation_id)
                    | (Ticket.customer_id == customer.user_id)
                )
            tickets = [_ticket_dict(t) for t in s.scalars(tickets_q.order_by(Ticket.created_at))]
            work_on = handoff.ticket_id if handoff is not None and handoff.ticket_id else None
            if work_on is None:
                open_here = [
                    t
                    for t in tickets
                    if t["conversation_id"] == conversation_id and t["status"] != "solved"
                ]
                work_on = open_here[-1]["id"] if open_here else None
            return {
                "id": conv.id,
                "channel": conv.channel,
                "status": conv.handoff_status,
                "handoff": None
                if handoff is None
                else {
                    "reason": handoff.reason,
                    "trigger": handoff.trigger,
                    "status": handoff.status,
                    "agent": handoff.agent,
                    "requested_at": _aware(handoff.requested_at).timestamp(),
                    "resolution": handoff.resolution,
                    "ticket_id": handoff.ticket_id,
                },
                "transcript": transcript(events),
                "slots": {
                    k: v for k, v in slots.items() if v is not None and k != "requested_slot"
                },
                "customer": None
                if customer is None
                else {
                    "user_id": customer.user_id,
                    "name": f"{customer.first_name} {customer.last_name}",
                    "email": customer.email,
                    "zip": customer.zip,
                },
                "orders": orders,
                "tickets": tickets,
                "work_on_ticket": work_on,
            }

    # ------------------------------------------------------------------ tickets
    def tickets(
        self, status: str | None = None, priority: str | None = None, limit: int = 200
    ) -> list[dict[str, Any]]:
        with self.db.session() as s:
            q = select(Ticket)
            if status:
                q = q.where(Ticket.status == status)
            if priority:
                q = q.where(Ticket.priority == priority)
            return [
                _ticket_dict(t)
                for t in s.scalars(q.order_by(Ticket.created_at.desc()).limit(limit))
            ]

    def update_ticket(
        self,
        ticket_id: str,
        *,
        status: str | None = None,
        priority: str | None = None,
        assignee: str | None = None,
        unassign: bool = False,
    ) -> dict[str, Any]:
        """Change a ticket's status, priority or assignee; ``resolved_at`` is set when the
        status becomes resolved (``CLOSED_TICKET_STATUSES``) and cleared when it is reopened.
        Raises ``KeyError`` for an unknown
        ticket and ``ValueError`` for a status or priority outside the allowed ones."""
        if status is not None and status not in TICKET_STATUSES:
            raise ValueError(f"status must be one of {', '.join(TICKET_STATUSES)}")
        if priority is not None and priority not in TICKET_PRIORITIES:
            raise ValueError(f"priority must be one of {', '.join(TICKET_PRIORITIES)}")
        with self.db.session() as s:
            # the row locked as read: a concurrent status change waits, then sees this one
            # (else both decide from the old status and resolved_at ends up wrong)
            t = s.get(Ticket, ticket_id, with_for_update=True)
            if t is None:
                raise KeyError(ticket_id)
            if status is not None and status != t.status:
                # resolution time for analytics: set as it becomes resolved, cleared if reopened
                resolved = status in CLOSED_TICKET_STATUSES
                if resolved and t.status not in CLOSED_TICKET_STATUSES:
                    t.resolved_at = _now()
                elif not resolved:
                    t.resolved_at = None
                t.status = status
            if priority is not None:
                t.priority = priority
            if assignee is not None:
                t.assignee = assignee
            if unassign:
                t.assignee = None
            t.updated_at = _now()
            s.flush()
            return _ticket_dict(t)


# --------------------------------------------------------------------------- helpers


def _clean(text: str) -> str:
    text = (text or "").strip()
    if not text:
        raise HandoffConflict("the text is empty")
    if len(text) > MAX_AGENT_TEXT:
        raise HandoffConflict(f"the text is over {MAX_AGENT_TEXT} characters")
    return text


def _ticket_dict(t: Ticket) -> dict[str, Any]:
    return {
        "id": t.id,
        "status": t.status,
        "priority": t.priority,
        "customer_id": t.customer_id,
        "order_id": t.order_id,
        "text": t.text,
        "contact": t.contact,
        "conversation_id": t.conversation_id,
        "assignee": t.assignee,
        "created_at": _aware(t.created_at).timestamp() if t.created_at else None,
    }


def _last_user_text(
    s: Session, conversation_id: str, reveal: Callable[[dict[str, Any]], dict[str, Any]]
) -> str | None:
    data = s.scalar(
        select(ConversationEvent.data)
        .where(
            ConversationEvent.conversation_id == conversation_id, ConversationEvent.type == "user"
        )
        .order_by(ConversationEvent.seq.desc())
        .limit(1)
    )
    return reveal(data).get("text") if data else None


def transcript(events: list[Any]) -> list[dict[str, Any]]:
    """The conversation as the console shows it: shopper messages with the intent and
    confidence the bot recognised, bot messages with the passages they cited, the actions
    the bot ran, and every handoff step (notes included; they are marked internal)."""
    from bot.types import ActionExecuted, BotUttered

    out: list[dict[str, Any]] = []
    for e in events:
        if isinstance(e, UserUttered):
            intent = e.parse_data.get("intent") or {}
            ranking = [
                {"name": r.get("name"), "confidence": r.get("confidence")}
                for r in (e.parse_data.get("intent_ranking") or [])[:3]
            ]
            out.append(
                {
                    "type": "user",
                    "text": e.text,
                    "time": e.timestamp,
                    "intent": intent.get("name"),
                    "confidence": intent.get("confidence"),
                    "ranking": ranking,
                    "entities": [
                        {"entity": x.get("entity"), "value": x.get("value")} for x in e.entities
                    ],
                }
            )
        elif isinstance(e, BotUttered):
            custom = e.data.get("custom") or {}
            out.append(
                {
                    "type": "bot",
                    "text": e.text,
                    "time": e.timestamp,
                    "buttons": [b.get("title") for b in e.data.get("buttons") or []],
                    "citations": custom.get("citations") or [],
                    "grounded": custom.get("grounded"),
                }
            )
        elif isinstance(e, ActionExecuted) and e.name != "action_listen":
            out.append(
                {
                    "type": "action",
                    "name": e.name,
                    "policy": e.policy,
                    "confidence": e.confidence,
                    "time": e.timestamp,
                }
            )
        elif isinstance(e, HandoffEvent):
            out.append(
                {
                    "type": "handoff",
                    "step": e.step,
                    "reason": e.reason,
                    "agent": e.data.get("agent"),
                    "text": e.data.get("text") or e.data.get("shopper_text"),
                    "internal": e.step == "note",
                    "time": e.timestamp,
                    "ticket_id": e.data.get("ticket_id"),
                }
            )
    return out


def shopper_message(event: Any) -> dict[str, Any] | None:
    """For channels that rebuild a chat from the tracker (the widget's history): the
    message a handoff event showed the shopper, as ``{"id", "text", "agent"?}``, or ``None``
    (internal notes and steps without a message)."""
    if not isinstance(event, HandoffEvent) or event.step == "note":
        return None
    text = event.data.get("shopper_text")
    if not text:
        return None
    out = {
        "id": str(event.data.get("message_id") or ""),
        "text": str(text),
        "kind": "agent" if event.step == "agent_message" else "notice",
    }
    if event.data.get("agent"):
        out["agent"] = str(event.data["agent"])
    return out
