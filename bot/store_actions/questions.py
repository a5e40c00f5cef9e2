"""``action_ask_<slot>`` actions: the forms' questions that need the store's data.

The engine runs one when its form requests that slot (``requested_slot`` is already set;
these actions return no events). Each lists the real choices with buttons whose payloads
(``/inform{"order_id": "#W2611340"}``, ``/affirm``) fill the slot when clicked.

When the form's validation has just asked a narrower question in the same turn (which of
several matching items or options), the ask action stays silent rather than repeat the
full list (``base.form_already_asked``).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy.orm import Session

from bot.store.models import Customer, Order, Variant
from bot.store_actions import replies
from bot.store_actions.base import StoreAction, form_already_asked
from bot.store_actions.parsing import cancel_reason_from_text
from bot.store_actions.store import (
    ORDER_RULES,
    alternatives,
    customer_orders,
    is_gift_card,
    lines_for,
    net_paid_by_method,
    order_line,
    original_payment_method,
    owned_order,
    payment_label,
)
from bot.text_rules import AddressError, parse_address

MAX_CHOICES = 10


class ActionAskOrderId(StoreAction):
    """Lists the verified shopper's orders that fit the active form."""

    def name(self) -> str:
        return "action_ask_order_id"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        form = tracker.active_loop_name or "order_status_form"
        rule = ORDER_RULES.get(form, ORDER_RULES["order_status_form"])
        customer_id = tracker.get_slot("customer_id")
        if not customer_id:
            if form == "complaint_form":
                dispatcher.utter_message(response="utter_ask_complaint_order")
            else:
                dispatcher.utter_message(response="utter_ask_order_id_unverified")
            return []
        with self.db.session() as s:
            orders = customer_orders(s, customer_id, rule.statuses)
            shown = orders[:MAX_CHOICES]
            buttons = [
                replies.button(replies.order_summary(o), replies.inform(order_id=o.order_id))
                for o in shown
            ]
            listing = replies.order_listing(shown)
        more = _showing(len(shown), len(orders))
        if form == "complaint_form":
            dispatcher.utter_message(
                response="utter_ask_complaint_order_listed"
                if shown
                else "utter_ask_complaint_order_none",
                orders=listing,
                more=more,
                buttons=buttons,
            )
        elif not shown:
            dispatcher.utter_message(response=f"utter_no_orders_for_{form}")
        else:
            dispatcher.utter_message(
                response=f"utter_which_order_{form}", orders=listing, more=more, buttons=buttons
            )
        return []


class ActionAskReturnItems(StoreAction):
    def name(self) -> str:
        return "action_ask_return_items"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if form_already_asked(tracker, replies.NARROWER_QUESTIONS):
            return []
        with self.db.session() as s:
            order = owned_order(s, tracker.get_slot("order_id"), tracker.get_slot("customer_id"))
            if order is None:
                dispatcher.utter_message(response="utter_ask_return_items_plain")
                return []
            distinct = _distinct_lines(order)
            buttons = [
                replies.button(
                    replies.line_text(line, self.currency),
                    replies.inform(return_items=[line.item_id]),
                )
                for line in distinct[:MAX_CHOICES]
            ]
            dispatcher.utter_message(
                response="utter_ask_return_items_listed"
                if len(order.items) > 1
                else "utter_ask_return_item_listed",
                order_id=order.order_id,
                items=replies.bullets([replies.line_text(ln, self.currency) for ln in order.items]),
                all_items=replies.inform(return_items=[i.item_id for i in order.items]),
                buttons=buttons,
            )
        return []


class ActionAskExchangeItem(StoreAction):
    def name(self) -> str:
        return "action_ask_exchange_item"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if form_already_asked(tracker, replies.NARROWER_QUESTIONS):
            return []
        with self.db.session() as s:
            order = owned_order(s, tracker.get_slot("order_id"), tracker.get_slot("customer_id"))
            if order is None:
                dispatcher.utter_message(response="utter_ask_exchange_item_plain")
                return []
            lines = _distinct_lines(order)
            open_ = [line for line in lines if alternatives(s, line.product_id, line.item_id)]
            closed = [line for line in lines if line not in open_]
            dispatcher.utter_message(
                response="utter_ask_exchange_item_listed",
                order_id=order.order_id,
                items=replies.bullets([replies.line_text(ln, self.currency) for ln in open_]),
                unavailable=replies.phrase(
                    "utter_no_alternatives_for", products=[line.name for line in closed]
                )
                if closed
                else None,
                buttons=[
                    replies.button(
                        replies.line_text(line, self.currency),
                        replies.inform(exchange_item=line.item_id),
                    )
                    for line in open_[:MAX_CHOICES]
                ],
            )
        return []


class ActionAskExchangeVariant(StoreAction):
    def name(self) -> str:
        return "action_ask_exchange_variant"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if form_already_asked(tracker, replies.NARROWER_QUESTIONS):
            return []
        with self.db.session() as s:
            order = owned_order(s, tracker.get_slot("order_id"), tracker.get_slot("customer_id"))
            item_id = tracker.get_slot("exchange_item")
            line = order_line(order, str(item_id)) if order and item_id else None
            if line is None:
                dispatcher.utter_message(response="utter_ask_exchange_variant_plain")
                return []
            alts = alternatives(s, line.product_id, line.item_id)
            shown = alts[:MAX_CHOICES]
            choices = [
                _choice_text(v, line.options or {}, line.price, self.currency) for v in shown
            ]
            dispatcher.utter_message(
                response="utter_ask_exchange_variant_listed",
                item=replies.line_text(line, self.currency),
                options=replies.bullets(choices),
                more=_showing(len(shown), len(alts)),
                buttons=[
                    replies.button(text, replies.inform(exchange_variant=v.item_id))
                    for v, text in zip(shown, choices, strict=True)
                ],
            )
        return []


class ActionAskConfirmed(StoreAction):
    """States the exact change and its consequences, then asks for an explicit yes/no."""

    def name(self) -> str:
        return "action_ask_confirmed"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        form = tracker.active_loop_name
        with self.db.session() as s:
            order = owned_order(s, tracker.get_slot("order_id"), tracker.get_slot("customer_id"))
            details = None
            if order is not None:
                customer = s.get(Customer, order.user_id)
                describe = {
                    "cancel_order_form": _cancel_details,
                    "return_order_form": _return_details,
                    "exchange_order_form": _exchange_details,
                    "change_address_form": _address_details,
                }.get(form or "")
                details = describe(s, order, customer, tracker, self.currency) if describe else None
        if details is None:
            dispatcher.utter_message(response="utter_ask_confirmed_plain")
            return []
        dispatcher.utter_message(**details)
        return []


# ----------------------------------------------------------------------------- details


Details = dict[str, Any]  # ``utter_message`` arguments: the confirmation's response, values


def _refund_text(
    customer: Customer | None, method: str | None, amount: Decimal, currency: str
) -> dict:
    kind = "gift_card" if is_gift_card(customer, method) else "card"
    return replies.phrase(
        f"utter_confirm_refund_{kind}",
        amount=replies.price(amount, currency),
        payment=payment_label(customer, method),
    )


def _cancel_details(
    s: Session, order: Order, customer: Customer | None, tracker: Tracker, currency: str
) -> Details | None:
    raw = tracker.get_slot("cancel_reason")
    reason = cancel_reason_from_text(raw)
    refunds = net_paid_by_method(order)
    return {
        "response": "utter_confirm_cancel",
        "order_id": order.order_id,
        "items": ", ".join(replies.line_text(line, currency) for line in order.items),
        "reason": replies.data_value("cancel_reason", reason) if reason else raw,
        "refunds": [
            replies.phrase(
                "utter_confirm_refund_line", refund=_refund_text(customer, m, a, currency)
            )
            for m, a in refunds.items()
        ],
    }


def _return_details(
    s: Session, order: Order, customer: Customer | None, tracker: Tracker, currency: str
) -> Details | None:
    lines = lines_for(order, [str(i) for i in tracker.get_slot("return_items") or []])
    if not lines:
        return None
    total = sum((line.price for line in lines), Decimal(0))
    return {
        "response": "utter_confirm_return",
        "order_id": order.order_id,
        "items": "; ".join(replies.line_text(line, currency) for line in lines),
        "refund": _refund_text(customer, original_payment_method(order), total, currency),
    }


def _exchange_details(
    s: Session, order: Order, customer: Customer | None, tracker: Tracker, currency: str
) -> Details | None:
    line = order_line(order, str(tracker.get_slot("exchange_item")))
    new = s.get(Variant, str(tracker.get_slot("exchange_variant")))
    if line is None or new is None:
        return None
    diff = Decimal(new.price) - Decimal(line.price)
    method = original_payment_method(order)
    if diff > 0:
        money = replies.phrase(
            "utter_confirm_charge",
            amount=replies.price(diff, currency),
            payment=payment_label(customer, method),
        )
    elif diff < 0:
        money = _refund_text(customer, method, -diff, currency)
    else:
        money = replies.phrase("utter_confirm_no_difference")
    return {
        "response": "utter_confirm_exchange",
        "order_id": order.order_id,
        "old_item": replies.line_text(line, currency),
        "new_item": replies.item_text(line.name, new.options, new.price, currency),
        "difference": money,
    }


def _address_details(
    s: Session, order: Order, customer: Customer | None, tracker: Tracker, currency: str
) -> Details | None:
    value = tracker.get_slot("new_address")
    try:
        new = parse_address(replies.address_text(value) if isinstance(value, dict) else str(value))
    except AddressError:
        return None
    return {
        "response": "utter_confirm_address",
        "order_id": order.order_id,
        "address": replies.address_text(new),
        "old_address": replies.address_text(order.address),
    }


def _showing(shown: int, total: int) -> dict[str, Any] | None:
    """ "Showing 10 of 14" when a list was cut (a phrase), else nothing."""
    if total <= shown:
        return None
    return replies.phrase("utter_showing_some", shown=shown, total=total)


def _distinct_lines(order: Order) -> list[Any]:
    seen: set[str] = set()
    out = []
    for line in order.items:
        if line.item_id not in seen:
            seen.add(line.item_id)
            out.append(line)
    return out


def _choice_text(
    variant: Variant, current: dict[str, Any], current_price: Any, currency: str
) -> str:
    changed = {k: v for k, v in (variant.options or {}).items() if current.get(k) != v}
    diff = Decimal(variant.price) - Decimal(current_price)
    sign = "+" if diff > 0 else "−" if diff < 0 else "±"
    return (
        f"{replies.options_text(changed or variant.options)}: "
        f"{replies.price(variant.price, currency)} ({sign}{replies.price(abs(diff), currency)})"
    )
