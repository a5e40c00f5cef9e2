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
from bot.store_actions.parsing import (
    CANCEL_REASONS,
    AddressError,
    cancel_reason_from_text,
    parse_address,
)
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
            dispatcher.utter_message(text=replies.NEED_IDENTITY)
            return resets
        if not order_id:
            dispatcher.utter_message(
                text=f"I don't know which order you mean. {replies.ORDER_ID_FORMAT}"
            )
            return resets
        if self.needs_confirmation and tracker.get_slot("confirmed") is not True:
            dispatcher.utter_message(text=replies.NOTHING_CHANGED)
            return resets
        with self.db.session() as s:
            order = s.scalars(
                select(Order)
                .where(Order.order_id == str(order_id))
                .with_for_update()
                .execution_options(populate_existing=True)
            ).first()
            if order is None or order.user_id != customer_id:
                dispatcher.utter_message(text=replies.order_not_found(str(order_id)))
                return resets
            rule = ORDER_RULES[self.form]
            if rule.statuses is not None and order.status not in rule.statuses:
                dispatcher.utter_message(
                    text=replies.wrong_status(order.order_id, order.status, rule.refusal)
                    + " Nothing was changed."
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


def _refund_sentence(customer: Customer | None, method: str | None, amount: Decimal) -> str:
    if is_gift_card(customer, method):
        return f"{replies.price(amount)} goes back to {payment_label(customer, method)} right away."
    return (
        f"{replies.price(amount)} will be refunded to {payment_label(customer, method)} "
        "within 5–7 business days."
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
        text = f"Order {order.order_id} is {order.status}.\nItems:\n" + replies.bullets(
            [replies.line_text(line) for line in order.items]
        )
        tracking = tracking_ids(order)
        if tracking:
            text += (
                "\nTracking number"
                + ("s" if len(tracking) > 1 else "")
                + ": "
                + ", ".join(tracking)
            )
        text += f"\nShipping to: {replies.address_text(order.address)}"
        hint = {
            "pending": "It hasn't shipped yet, so you can still cancel it or change its address.",
            "delivered": "If something isn't right, you can return or exchange items from it.",
        }.get(order.status)
        if hint:
            text += f"\n{hint}"
        dispatcher.utter_message(text=text)


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
            dispatcher.utter_message(
                text="I need a reason to cancel ('no longer needed' or 'ordered by mistake'). "
                "Nothing was changed."
            )
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
        text = f"Done — order {order.order_id} is cancelled (reason: {reason})."
        if refunds:
            text += " " + " ".join(_refund_sentence(customer, m, a) for m, a in refunds.items())
        dispatcher.utter_message(text=text)


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
            dispatcher.utter_message(
                text=f"I couldn't match the items to return with order {order.order_id}. "
                "Nothing was changed."
            )
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
            text="Done — I've requested the return of "
            + "; ".join(replies.line_text(line) for line in lines)
            + f" from order {order.order_id}. You'll get an email explaining how to send the "
            "items back. " + _refund_sentence(customer, method, refund)
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
            dispatcher.utter_message(
                text=f"I couldn't match that exchange with order {order.order_id}. "
                "Nothing was changed."
            )
            return
        if not new.available:
            dispatcher.utter_message(
                text=f"Sorry, the {line.name} ({replies.options_text(new.options)}) has just gone "
                "out of stock. Nothing was changed."
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
        text = (
            f"Done — I've requested the exchange of your {replies.line_text(line)} for the "
            f"{replies.item_text(line.name, new.options, new.price)} in order {order.order_id}. "
            "You'll get an email explaining how to send the item back; there's no need to place "
            "a new order."
        )
        if diff > 0:
            text += (
                f" The price difference of {replies.price(diff)} will be charged to "
                f"{payment_label(customer, method)}."
            )
        elif diff < 0:
            text += " Price difference: " + _refund_sentence(customer, method, -diff)
        dispatcher.utter_message(text=text)


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
                text=f"That address is missing {exc.problem}. Nothing was changed."
            )
            return
        old = dict(order.address or {})
        new["country"] = old.get("country") or new["country"]
        order.address = new
        self.audit(s, order, "address", {"old": old, "new": new}, tracker)
        dispatcher.utter_message(
            text=f"Done — order {order.order_id} will now ship to {replies.address_text(new)}."
        )
