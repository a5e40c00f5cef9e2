"""How the actions hand values to the domain's responses.

The sentences a shopper reads are domain responses (Clerk's defaults are in
``bot/dialogue/default_responses.yml``); actions send ``utter_message(response=...,
**values)``. Here are the value formatters (prices, item and option lists, addresses,
order summaries: data, not sentences), ``phrase``, a sentence chosen by the data, and
``data_value``, a stored value (an order status) the engine shows by the display name the
domain gives it (``utter_value_<kind>_<key>``), or as stored.
Prices are written in the store's currency (the action's ``currency``) by
``bot.knowledge.money.format_money``, exactly from ``Decimal``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from decimal import Decimal
from typing import Any, Literal

from bot.knowledge.money import format_money
from bot.store.models import Order, OrderItem
from bot.text_rules import AddressError
from bot.types import MAX_BUTTON_TITLE


def price(value: Any, currency: str) -> str:
    """``$2,674.40`` / ``€19.90`` / ``19.90 CHF``: an amount in ``currency``."""
    return format_money(Decimal(str(value)), currency, thousands=True)


def options_text(options: Mapping[str, Any] | None) -> str:
    return ", ".join(f"{k} {v}" for k, v in (options or {}).items())


def item_text(name: str, options: Mapping[str, Any] | None, amount: Any, currency: str) -> str:
    """``Water Bottle (color blue), $12.00``"""
    opts = options_text(options)
    out = f"{name} ({opts})" if opts else name
    return f"{out}, {price(amount, currency)}"


def line_text(line: OrderItem, currency: str) -> str:
    return item_text(line.name, line.options, line.price, currency)


def bullets(lines: list[str]) -> str:
    return "\n".join(f"• {line}" for line in lines)


def order_summary(order: Order) -> dict[str, Any]:
    """An order as one line, a phrase (``utter_order_summary``: "#W2611340 (pending):
    Water Bottle, Office Chair"), its status by its display name."""
    return phrase(
        "utter_order_summary",
        order_id=order.order_id,
        status=data_value("order_status", order.status),
        items=", ".join(i.name for i in order.items),
    )


def order_listing(orders: list[Order]) -> dict[str, list[Any]]:
    """Orders one per line (``utter_order_listed``, a bullet before each summary)."""
    return lines([phrase("utter_order_listed", order=order_summary(o)) for o in orders])


def address_text(address: Mapping[str, Any] | None) -> str:
    a = address or {}
    parts = [a.get("address1"), a.get("address2"), a.get("city")]
    head = ", ".join(str(p) for p in parts if p)
    tail = " ".join(str(p) for p in (a.get("state"), a.get("zip")) if p)
    return ", ".join(p for p in (head, tail) if p)


def lines(values: list[Any]) -> dict[str, list[Any]]:
    """A value the engine shows one item per line (each item a phrase, or text)."""
    return {"lines": list(values)}


def inform(**entities: Any) -> str:
    """A button payload in Rasa's ``/intent{entities}`` form."""
    return "/inform" + json.dumps(entities, ensure_ascii=False)


def button(title: str | dict[str, Any], payload: str) -> dict[str, Any]:
    """A button; a phrase as ``title`` is worded (and cut) by the engine."""
    return {
        "title": title[:MAX_BUTTON_TITLE] if isinstance(title, str) else title,
        "payload": payload,
    }


def phrase(response: str, **values: Any) -> dict[str, Any]:
    """A value that the engine shows as the text of domain response ``response`` (filled
    from ``values``, then the slots): how an action puts a sentence that depends on the
    data (a refund, a hint) inside another response without writing it in Python."""
    return {"response": response, **values}


#: The kinds of stored values Clerk's store actions send as ``data_value``: each value
#: ``v`` of kind ``k`` is shown by the domain's ``utter_value_<k>_<v>`` when it has one.
DataKind = Literal["order_status", "ticket_status", "ticket_priority", "cancel_reason"]


def data_value(kind: DataKind, value: str | None) -> dict[str, Any]:
    """Stored ``value`` (an order's status, a ticket's priority) as the engine shows it:
    by its display name in the domain, else as stored (``bot.dialogue.responses``). The
    value itself is never changed: compare and store the stored one."""
    return {"value_kind": kind, "value": value}


def address_problem(exc: AddressError) -> dict[str, Any]:
    """What an unusable address lacks, as a phrase (``utter_address_missing_<code>``)."""
    return phrase(f"utter_address_missing_{exc.code}")


def refusal(form: str) -> dict[str, Any]:
    """Why ``form`` cannot use an order of another status (``utter_refusal_<form>``)."""
    return phrase(f"utter_refusal_{form}")


# Responses that ask a narrower version of an ask action's question (which of several
# matching items or options): the ask action stays silent after one of them.
NARROWER_QUESTIONS = frozenset({"utter_which_item", "utter_which_option"})
