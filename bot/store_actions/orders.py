"""Form submissions that read or change an order: ``action_order_status``,
``action_cancel_order``, ``action_return_order``, ``action_exchange_order`` and
``action_change_address``.

Each one re-checks, in its own session (the turn's, in process), that the order belongs
to the verified shopper and still has a status the change allows, and changes nothing
unless the slot ``confirmed`` is ``True``. A change writes the order and an ``OrderChange``
audit row (``kind``, ``data``, ``conversation_id`` = the tracker's sender id) together.
Whatever happens, the form's slots (all but ``customer_id``) are reset, so the next
request starts clean.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from decimal import Decimal
from typing import ClassVar

from rasa_sdk import Tracker
from rasa_sdk.events import EventType, SlotSet
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.store.models import Customer, Order, OrderChange, Variant
from bot.store_actions import replies
from bot.store_actions.base import StoreAction
from bot.store_actions.parsing import CANCEL_REASONS, cancel_reason_from_text
from bot.store_actions.store import (
    FORM_SLOTS,
    ORDER_RULES,
    credit_gift_card,
    is_gift_card,
    lines_for,
    money,
    net_paid_by_method,
    order_line,
    original_payment_method,
    payment_label,
    tracking_ids,
)
from bot.text_rules import AddressError, parse_address


class OrderSubmission(StoreAction, ABC):
    """Runs a form's submission against the shopper's order (abstract)."""

    form: ClassVar[str]
    needs_confirmation: ClassVar[bool] = True

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        resets: list[EventType] = [SlotSet(slot, None) for slot in FORM_SLOTS[self.form]]
        customer_id = tracker.get_slot("customer_id")
        order_id = tracker.get_slot("order_id")
        if not customer_id:
            dispatcher.utter_message(response="utter_need_identity")
            return resets
        if not order_id:
            dispatcher.utter_message(response="utter_order_unknown")
            return resets
        if self.needs_confirmation and tracker.get_slot("confirmed") is not True:
            dispatcher.utter_message(response="utter_nothing_changed")
            return resets
        with self.db.session() as s:
            order = s.scalars(
                select(Order)
                .where(Order.order_id == str(order_id))
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            if order is None or order.user_id != customer_id:
                dispatcher.utter_message(response="utter_order_not_found", order_id=str(order_id))
                return resets
            rule = ORDER_RULES[self.form]
            if rule.statuses is not None and order.status not in rule.statuses:
                dispatcher.utter_message(
                    response="utter_wrong_status_unchanged",
                    order_id=order.order_id,
                    status=replies.data_value("order_status", order.status),
                    refusal=replies.refusal(self.form),
                )
                return resets
            customer = s.get(Customer, customer_id)
            self.apply(s, order, customer, tracker, dispatcher)
        return resets

    @abstractmethod
    def apply(
        self,
        s: Session,
        order: Order,
        customer: Customer | None,
        tracker: Tracker,
        dispatcher: CollectingDispatcher,
    ) -> None:
        """Make the change (or report why not) and tell the shopper."""

    @staticmethod
    def audit(s: Session, order: Order, kind: str, data: dict, tracker: Tracker) -> None:
        s.add(
            OrderChange(
                order_id=order.order_id, kind=kind, data=data, conversation_id=tracker.sender_id
            )
        )


def _refund_sentence(
    customer: Customer | None, method: str | None, amount: Decimal, currency: str
) -> dict:
    """The refund of ``amount`` to ``method`` as a phrase (gift cards are refunded at once)."""
    kind = "gift_card" if is_gift_card(customer, method) else "card"
    return replies.phrase(
        f"utter_refund_{kind}",
        amount=replies.price(amount, currency),
        payment=payment_label(customer, method),
    )


class ActionOrderStatus(OrderSubmission):
    form = "order_status_form"
    needs_confirmation = False

    def name(self) -> str:
        return "action_order_status"

    def apply(
        self,
        s: Session,
        order: Order,
        customer: Customer | None,
        tracker: Tracker,
        dispatcher: CollectingDispatcher,
    ) -> None:
        tracking = tracking_ids(order)
        dispatcher.utter_message(
            response="utter_order_status",
            order_id=order.order_id,
            status=replies.data_value("order_status", order.status),
            items=replies.bullets([replies.line_text(ln, self.currency) for ln in order.items]),
            tracking=replies.phrase(
                "utter_order_tracking" if len(tracking) == 1 else "utter_order_tracking_many",
                tracking=tracking,
            )
            if tracking
            else None,
            address=replies.address_text(order.address),
            hint=replies.phrase(f"utter_order_hint_{order.status}")
            if order.status in ("pending", "delivered")
            else None,
        )


class ActionCancelOrder(OrderSubmission):
    form = "cancel_order_form"

    def name(self) -> str:
        return "action_cancel_order"

    def apply(
        self,
        s: Session,
        order: Order,
        customer: Customer | None,
        tracker: Tracker,
        dispatcher: CollectingDispatcher,
    ) -> None:
        raw = tracker.get_slot("cancel_reason")
        reason = raw if raw in CANCEL_REASONS else cancel_reason_from_text(raw)
        if reason is None:
            dispatcher.utter_message(response="utter_cancel_reason_missing")
            return
        refunds = net_paid_by_method(order)
        history = list(order.payment_history or [])
        for method, amount in refunds.items():
            history.append(
                {"transaction_type": "refund", "amount": float(amount), "payment_method_id": method}
            )
            if customer is not None and is_gift_card(customer, method):
                credit_gift_card(customer, method, amount)
        order.payment_history = history
        order.status = "cancelled"
        self.audit(
            s,
            order,
            "cancel",
            {
                "reason": reason,
                "refunds": [
                    {"payment_method_id": m, "amount": float(a)} for m, a in refunds.items()
                ],
            },
            tracker,
        )
        dispatcher.utter_message(
            response="utter_cancel_done",
            order_id=order.order_id,
            reason=replies.data_value("cancel_reason", reason),
            refunds=[_refund_sentence(customer, m, a, self.currency) for m, a in refunds.items()],
        )


class ActionReturnOrder(OrderSubmission):
    form = "return_order_form"

    def name(self) -> str:
        return "action_return_order"

    def apply(
        self,
        s: Session,
        order: Order,
        customer: Customer | None,
        tracker: Tracker,
        dispatcher: CollectingDispatcher,
    ) -> None:
        ids = [str(i) for i in tracker.get_slot("return_items") or []]
        lines = lines_for(order, ids)
        if not lines:
            dispatcher.utter_message(response="utter_return_no_match", order_id=order.order_id)
            return
        refund = money(sum((line.price for line in lines), Decimal(0)))
        method = original_payment_method(order)
        order.status = "return requested"
        self.audit(
            s,
            order,
            "return",
            {
                "item_ids": [line.item_id for line in lines],
                "refund_amount": float(refund),
                "payment_method_id": method,
            },
            tracker,
        )
        dispatcher.utter_message(
            response="utter_return_done",
            order_id=order.order_id,
            items="; ".join(replies.line_text(line, self.currency) for line in lines),
            refund=_refund_sentence(customer, method, refund, self.currency),
        )


class ActionExchangeOrder(OrderSubmission):
    form = "exchange_order_form"

    def name(self) -> str:
        return "action_exchange_order"

    def apply(
        self,
        s: Session,
        order: Order,
        customer: Customer | None,
        tracker: Tracker,
        dispatcher: CollectingDispatcher,
    ) -> None:
        line = order_line(order, str(tracker.get_slot("exchange_item")))
        new = s.get(Variant, str(tracker.get_slot("exchange_variant")))
        if (
            line is None
            or new is None
            or new.product_id != line.product_id
            or new.item_id == line.item_id
        ):
            dispatcher.utter_message(response="utter_exchange_no_match", order_id=order.order_id)
            return
        if not new.available:
            dispatcher.utter_message(
                response="utter_exchange_sold_out",
                product=line.name,
                options=replies.options_text(new.options),
            )
            return
        diff = money(Decimal(new.price) - Decimal(line.price))
        method = original_payment_method(order)
        order.status = "exchange requested"
        self.audit(
            s,
            order,
            "exchange",
            {
                "items": [{"from": line.item_id, "to": new.item_id}],
                "price_difference": float(diff),
                "payment_method_id": method,
            },
            tracker,
        )
        difference = None
        if diff > 0:
            difference = replies.phrase(
                "utter_exchange_charge",
                amount=replies.price(diff, self.currency),
                payment=payment_label(customer, method),
            )
        elif diff < 0:
            difference = replies.phrase(
                "utter_exchange_refund",
                refund=_refund_sentence(customer, method, -diff, self.currency),
            )
        dispatcher.utter_message(
            response="utter_exchange_done",
            order_id=order.order_id,
            old_item=replies.line_text(line, self.currency),
            new_item=replies.item_text(line.name, new.options, new.price, self.currency),
            difference=difference,
        )


class ActionChangeAddress(OrderSubmission):
    form = "change_address_form"

    def name(self) -> str:
        return "action_change_address"

    def apply(
        self,
        s: Session,
        order: Order,
        customer: Customer | None,
        tracker: Tracker,
        dispatcher: CollectingDispatcher,
    ) -> None:
        value = tracker.get_slot("new_address")
        try:
            new = parse_address(
                replies.address_text(value) if isinstance(value, dict) else str(value or "")
            )
        except AddressError as exc:
            dispatcher.utter_message(
                response="utter_address_unusable_unchanged", problem=replies.address_problem(exc)
            )
            return
        old = dict(order.address or {})
        new["country"] = old.get("country") or new["country"]
        order.address = new
        self.audit(s, order, "address", {"old": old, "new": new}, tracker)
        dispatcher.utter_message(
            response="utter_address_done",
            order_id=order.order_id,
            address=replies.address_text(new),
        )
