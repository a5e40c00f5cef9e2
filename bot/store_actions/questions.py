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
from bot.store_actions.parsing import AddressError, cancel_reason_from_text, parse_address
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
    refund_timing,
)

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
        no_order = replies.button("It's not about an order", replies.inform(order_id="none"))
        if not customer_id:
            if form == "complaint_form":
                dispatcher.utter_message(
                    text="I'm sorry to hear that. Which order is this about? Please give the "
                    "order id (like #W1234567), or say 'no order'.",
                    buttons=[no_order],
                )
            else:
                dispatcher.utter_message(text=f"Which order is it? {replies.ORDER_ID_FORMAT}")
            return []
        with self.db.session() as s:
            orders = customer_orders(s, customer_id, rule.statuses)
            shown = orders[:MAX_CHOICES]
            buttons = [
                replies.button(replies.order_summary(o), replies.inform(order_id=o.order_id))
                for o in shown
            ]
            listing = replies.bullets([replies.order_summary(o) for o in shown])
        more = f"\n(Showing {len(shown)} of {len(orders)}.)" if len(orders) > len(shown) else ""
        if form == "complaint_form":
            text = "I'm sorry to hear that. Which order is this about?"
            if shown:
                text += f" Here are your orders:\n{listing}{more}"
            dispatcher.utter_message(
                text=text + "\nOr say 'no order'.", buttons=[*buttons, no_order]
            )
        elif not shown:
            dispatcher.utter_message(
                text=f"I don't see any {rule.listing} on your account"
                + (f" — {rule.refusal}." if rule.refusal else ".")
                + " If you have a specific order id in mind, tell me; otherwise just say 'stop'."
            )
        else:
            dispatcher.utter_message(
                text=f"Which order? Here are your {rule.listing}:\n{listing}{more}", buttons=buttons
            )
        return []


class ActionAskReturnItems(StoreAction):
    def name(self) -> str:
        return "action_ask_return_items"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if form_already_asked(tracker, replies.WHICH_ONE):
            return []
        with self.db.session() as s:
            order = owned_order(s, tracker.get_slot("order_id"), tracker.get_slot("customer_id"))
            if order is None:
                dispatcher.utter_message(text="Which items would you like to return?")
                return []
            distinct = _distinct_lines(order)
            buttons = [
                replies.button(replies.line_text(line), replies.inform(return_items=[line.item_id]))
                for line in distinct[:MAX_CHOICES]
            ]
            if len(order.items) > 1:
                buttons.append(
                    replies.button(
                        "All items", replies.inform(return_items=[i.item_id for i in order.items])
                    )
                )
            dispatcher.utter_message(
                text=f"Which items from order {order.order_id} would you like to return? "
                "You can name several, or say 'all':\n"
                + replies.bullets([replies.line_text(line) for line in order.items]),
                buttons=buttons,
            )
        return []


class ActionAskExchangeItem(StoreAction):
    def name(self) -> str:
        return "action_ask_exchange_item"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        if form_already_asked(tracker, replies.WHICH_ONE):
            return []
        with self.db.session() as s:
            order = owned_order(s, tracker.get_slot("order_id"), tracker.get_slot("customer_id"))
            if order is None:
                dispatcher.utter_message(text="Which item would you like to exchange?")
                return []
            lines = _distinct_lines(order)
            open_ = [line for line in lines if alternatives(s, line.product_id, line.item_id)]
            closed = [line for line in lines if line not in open_]
            text = (
                f"Which item from order {order.order_id} would you like to exchange?\n"
                + replies.bullets([replies.line_text(line) for line in open_])
            )
            if closed:
                text += (
                    "\n(No other options are available for: "
                    + ", ".join(line.name for line in closed)
                    + ".)"
                )
            dispatcher.utter_message(
                text=text,
                buttons=[
                    replies.button(
                        replies.line_text(line), replies.inform(exchange_item=line.item_id)
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
        if form_already_asked(tracker, replies.WHICH_ONE):
            return []
        with self.db.session() as s:
            order = owned_order(s, tracker.get_slot("order_id"), tracker.get_slot("customer_id"))
            item_id = tracker.get_slot("exchange_item")
            line = order_line(order, str(item_id)) if order and item_id else None
            if line is None:
                dispatcher.utter_message(text="Which option would you like instead?")
                return []
            alts = alternatives(s, line.product_id, line.item_id)
            shown = alts[:MAX_CHOICES]
            choices = [_choice_text(v, line.options or {}, line.price) for v in shown]
            more = f"\n(Showing {len(shown)} of {len(alts)}.)" if len(alts) > len(shown) else ""
            dispatcher.utter_message(
                text=f"You have the {replies.line_text(line)}. Which option would you like "
                "instead? These are available (only the differences are shown):\n"
                + replies.bullets(choices)
                + more
                + "\nYou can also just tell me what to change, like 'size L' or 'in red'.",
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
                details = describe(s, order, customer, tracker) if describe else None
        if details is None:
            dispatcher.utter_message(
                text="Shall I go ahead with this change?", buttons=replies.YES_NO
            )
            return []
        dispatcher.utter_message(
            text="Here's what I'll do:\n"
            + replies.bullets(details)
            + "\nShall I go ahead? Please answer yes or no.",
            buttons=replies.YES_NO,
        )
        return []


# ----------------------------------------------------------------------------- details


def _refund_text(customer: Customer | None, method: str | None, amount: Decimal) -> str:
    timing = refund_timing(is_gift_card(customer, method))
    return f"{replies.price(amount)} back to {payment_label(customer, method)}, {timing}"


def _cancel_details(
    s: Session, order: Order, customer: Customer | None, tracker: Tracker
) -> list[str] | None:
    raw = tracker.get_slot("cancel_reason")
    reason = cancel_reason_from_text(raw) or raw
    refunds = net_paid_by_method(order)
    out = [
        f"Cancel order {order.order_id}: "
        + ", ".join(replies.line_text(line) for line in order.items),
        f"Reason: {reason}",
    ]
    if refunds:
        out += [f"Refund: {_refund_text(customer, m, a)}" for m, a in refunds.items()]
    out.append("This can't be undone.")
    return out


def _return_details(
    s: Session, order: Order, customer: Customer | None, tracker: Tracker
) -> list[str] | None:
    lines = lines_for(order, [str(i) for i in tracker.get_slot("return_items") or []])
    if not lines:
        return None
    total = sum((line.price for line in lines), Decimal(0))
    method = original_payment_method(order)
    return [
        f"Return from order {order.order_id}: "
        + "; ".join(replies.line_text(line) for line in lines),
        f"Refund: {_refund_text(customer, method, total)} (to the original payment method)",
        (
            "The order's status becomes 'return requested' and you'll get an email explaining "
            "how to send the items back."
        ),
        "Please make sure these are all the items you want to return.",
    ]


def _exchange_details(
    s: Session, order: Order, customer: Customer | None, tracker: Tracker
) -> list[str] | None:
    line = order_line(order, str(tracker.get_slot("exchange_item")))
    new = s.get(Variant, str(tracker.get_slot("exchange_variant")))
    if line is None or new is None:
        return None
    diff = Decimal(new.price) - Decimal(line.price)
    method = original_payment_method(order)
    label = payment_label(customer, method)
    if diff > 0:
        money = f"Price difference: you pay {replies.price(diff)} more, charged to {label}"
    elif diff < 0:
        money = f"Price difference: {_refund_text(customer, method, -diff)}"
    else:
        money = "Price difference: none"
    return [
        (
            f"Exchange in order {order.order_id}: your {replies.line_text(line)} "
            f"→ {replies.item_text(line.name, new.options, new.price)}"
        ),
        money,
        (
            "The order's status becomes 'exchange requested' and you'll get an email explaining "
            "how to send the item back — no need to place a new order."
        ),
        (
            "Only this item is exchanged, and the order can't be exchanged again afterwards, so "
            "please make sure it's the only item you want to exchange."
        ),
    ]


def _address_details(
    s: Session, order: Order, customer: Customer | None, tracker: Tracker
) -> list[str] | None:
    value = tracker.get_slot("new_address")
    try:
        new = parse_address(replies.address_text(value) if isinstance(value, dict) else str(value))
    except AddressError:
        return None
    return [
        f"Ship order {order.order_id} to: {replies.address_text(new)}",
        f"(instead of {replies.address_text(order.address)})",
    ]


def _distinct_lines(order: Order) -> list[Any]:
    seen: set[str] = set()
    out = []
    for line in order.items:
        if line.item_id not in seen:
            seen.add(line.item_id)
            out.append(line)
    return out


def _choice_text(variant: Variant, current: dict[str, Any], current_price: Any) -> str:
    changed = {k: v for k, v in (variant.options or {}).items() if current.get(k) != v}
    diff = Decimal(variant.price) - Decimal(current_price)
    sign = "+" if diff > 0 else "−" if diff < 0 else "±"
    return (
        f"{replies.options_text(changed or variant.options)}: {replies.price(variant.price)} "
        f"({sign}{replies.price(abs(diff))})"
    )
