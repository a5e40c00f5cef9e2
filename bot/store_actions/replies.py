"""The shopper-facing wording the actions share, in one voice: short, friendly, exact
about ids, amounts and statuses, and never about another customer's data.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from bot.store.models import Order, OrderItem


def price(value: Any) -> str:
    return f"${Decimal(str(value)):,.2f}"


def options_text(options: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (options or {}).items())


def item_text(name: str, options: Mapping[str, Any] | None, amount: Any | None = None) -> str:
    opts = options_text(options)
    out = f"{name} ({opts})" if opts else name
    return f"{out}, {price(amount)}" if amount is not None else out


def line_text(line: OrderItem, with_price: bool = True) -> str:
    return item_text(line.name, line.options, line.price if with_price else None)


def bullets(lines: list[str]) -> str:
    return "\n".join(f"• {line}" for line in lines)


def order_summary(order: Order) -> str:
    """``"#W2611340 (pending): Water Bottle, Office Chair"``"""
    names = ", ".join(i.name for i in order.items) or "no items"
    return f"{order.order_id} ({order.status}): {names}"


def address_text(address: Mapping[str, Any] | None) -> str:
    a = address or {}
    parts = [a.get("address1"), a.get("address2"), a.get("city")]
    head = ", ".join(str(p) for p in parts if p)
    tail = " ".join(str(p) for p in (a.get("state"), a.get("zip")) if p)
    return ", ".join(p for p in (head, tail) if p)


def inform(**entities: Any) -> str:
    """A button payload in Rasa's ``/intent{entities}`` form."""
    return "/inform" + json.dumps(entities, ensure_ascii=False)


def button(title: str, payload: str) -> dict[str, str]:
    return {"title": title[:80], "payload": payload}


YES_NO = [button("Yes, go ahead", "/affirm"), button("No, leave it", "/deny")]

ORDER_ID_FORMAT = "Order ids look like #W1234567."


def order_not_found(order_id: str) -> str:
    return (
        f"I can't find order {order_id} on your account. "
        f"Please check the order id — {ORDER_ID_FORMAT}"
    )


def not_an_order_id(value: Any) -> str:
    return f"“{value}” doesn't look like an order id. {ORDER_ID_FORMAT}"


def wrong_status(order_id: str, status: str, refusal: str) -> str:
    return f"Order {order_id} is {status}, and {refusal}."


NEED_IDENTITY = (
    "I need to verify who you are first: please tell me the email address on your account, "
    "or your full name and zip code."
)
ONE_CUSTOMER = (
    "I can only help with one account per conversation, and you're already verified for "
    "this one. For another account, please start a new conversation."
)
# A question the form's ``action_ask_<slot>`` recognises as already asked (see
# ``questions.already_asked``): validation messages that end in it replace the re-ask.
WHICH_ONE = "Which one would you like?"
NOTHING_CHANGED = "OK, I've left everything as it was — nothing changed."
