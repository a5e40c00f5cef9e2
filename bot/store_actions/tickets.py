"""Complaints become tickets for the human team: ``action_create_ticket`` (the
complaint form's submission) and ``action_ticket_status``.

A ticket id is ``T-`` + 6 random digits, unique in the store. The priority comes from the
complaint's words by ``bot.text_rules.ticket_priority``: a complaint the handoff policy
finds severe (safety, legal, strongly negative), breakage and non-delivery -> ``high``. The status
reply carries status, priority and creation date only: a ticket id is not a credential,
so no personal data is ever read back from it.
"""

from __future__ import annotations

import secrets

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from bot.store.models import Order, Ticket
from bot.store_actions import replies
from bot.store_actions.base import StoreAction, first_entity, latest_text
from bot.store_actions.store import FORM_SLOTS
from bot.text_rules import find_ticket_id, normalise_order_id, normalise_ticket_id, ticket_priority

_ID_ATTEMPTS = 50


def new_ticket_id(s: Session) -> str:
    """A ``T-`` + 6-digit id not used by any ticket yet."""
    for _ in range(_ID_ATTEMPTS):
        candidate = f"T-{secrets.randbelow(1_000_000):06d}"
        if s.get(Ticket, candidate) is None:
            return candidate
    raise RuntimeError("could not find a free ticket id")  # a million tickets: not expected


class ActionCreateTicket(StoreAction):
    def name(self) -> str:
        return "action_create_ticket"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        resets: list[EventType] = [SlotSet(slot, None) for slot in FORM_SLOTS["complaint_form"]]
        text = str(tracker.get_slot("complaint_text") or latest_text(tracker)).strip()
        contact = tracker.get_slot("contact")
        order_id = normalise_order_id(tracker.get_slot("order_id"))
        customer_id = tracker.get_slot("customer_id")
        with self.db.session() as s:
            if order_id is not None:
                order = s.get(Order, order_id)
                if order is None or (customer_id and order.user_id != customer_id):
                    order_id = None  # never attach someone else's order
                elif not customer_id:
                    customer_id = order.user_id
            ticket = Ticket(
                id=new_ticket_id(s),
                status="open",
                priority=ticket_priority(text),
                customer_id=customer_id,
                order_id=order_id,
                text=text,
                contact=str(contact) if contact else None,
                conversation_id=tracker.sender_id,
            )
            s.add(ticket)
            s.flush()
            ticket_id, priority = ticket.id, ticket.priority
        dispatcher.utter_message(
            response="utter_ticket_created",
            ticket_id=ticket_id,
            urgent=replies.phrase("utter_ticket_urgent") if priority == "high" else None,
            reach=replies.phrase("utter_ticket_reach", contact=contact) if contact else None,
        )
        return resets


class ActionTicketStatus(StoreAction):
    def name(self) -> str:
        return "action_ticket_status"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        raw = (
            first_entity(tracker, "ticket_id")
            or find_ticket_id(latest_text(tracker))
            or tracker.get_slot("ticket_id")
        )
        if not raw:
            dispatcher.utter_message(response="utter_ask_ticket_number")
            return []
        ticket_id = normalise_ticket_id(raw)
        if ticket_id is None:
            dispatcher.utter_message(response="utter_not_a_ticket_number", value=raw)
            return [SlotSet("ticket_id", None)]
        with self.db.session() as s:
            ticket = s.get(Ticket, ticket_id)
            if ticket is None:
                dispatcher.utter_message(response="utter_ticket_not_found", ticket_id=ticket_id)
                return [SlotSet("ticket_id", None)]
            created = ticket.created_at
            status, priority = ticket.status, ticket.priority
        dispatcher.utter_message(
            response="utter_ticket_status",
            ticket_id=ticket_id,
            status=replies.data_value("ticket_status", status),
            priority=replies.data_value("ticket_priority", priority),
            opened=replies.phrase(
                "utter_date",
                day=created.day,
                month=created.month,
                month_name=replies.phrase(f"utter_month_{created.month}"),
                year=created.year,
            )
            if created
            else replies.phrase("utter_date_unknown"),
        )
        return [SlotSet("ticket_id", ticket_id)]
