"""Store queries and rules the actions share: who a shopper is, which orders are theirs,
what a form may do with an order, payments and refunds, alternatives for an item.

Every function takes the caller's ``Session`` (from ``Database.session()``) and never
commits. Order lookups that take a ``customer_id`` return ``None`` both for an unknown
order and for another customer's order, so callers cannot leak which one it was.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from bot.store.models import Customer, Order, OrderItem, Variant
from bot.store_actions.parsing import ItemView, VariantView, find_zip_codes

CENT = Decimal("0.01")


# ----------------------------------------------------------------- forms and statuses


@dataclass(frozen=True)
class OrderRule:
    """What a form may do with an order: the statuses it accepts (how to say no is the
    response ``utter_refusal_<form>``)."""

    statuses: frozenset[str] | None  # None: any status


ORDER_RULES: dict[str, OrderRule] = {
    "order_status_form": OrderRule(None),
    "cancel_order_form": OrderRule(frozenset({"pending"})),
    "change_address_form": OrderRule(frozenset({"pending"})),
    "return_order_form": OrderRule(frozenset({"delivered"})),
    "exchange_order_form": OrderRule(frozenset({"delivered"})),
    "complaint_form": OrderRule(None),
}

# slots each form resets after its submission (everything but the shopper's identity)
FORM_SLOTS: dict[str, tuple[str, ...]] = {
    "order_status_form": ("order_id",),
    "cancel_order_form": ("order_id", "cancel_reason", "confirmed"),
    "return_order_form": ("order_id", "return_items", "confirmed"),
    "exchange_order_form": ("order_id", "exchange_item", "exchange_variant", "confirmed"),
    "change_address_form": ("order_id", "new_address", "confirmed"),
    "complaint_form": ("order_id", "complaint_text", "contact"),
}


# -------------------------------------------------------------------------- customers


def customer_by_email(s: Session, email: str) -> Customer | None:
    email = email.strip().lower()
    return s.scalars(
        select(Customer).where(func.lower(Customer.email) == email).order_by(Customer.user_id)
    ).first()


def customers_by_name_and_zip(s: Session, text: str) -> list[Customer]:
    """Customers whose zip code is in ``text`` and whose first and last name both are."""
    zips = find_zip_codes(text)
    if not zips:
        return []
    words = set(re.findall(r"[a-z]+(?:['-][a-z]+)*", text.lower()))
    found = []
    for c in s.scalars(select(Customer).where(Customer.zip.in_(zips)).order_by(Customer.user_id)):
        first = set(re.findall(r"[a-z]+(?:['-][a-z]+)*", c.first_name.lower()))
        last = set(re.findall(r"[a-z]+(?:['-][a-z]+)*", c.last_name.lower()))
        if first and last and first <= words and last <= words:
            found.append(c)
    return found


# ----------------------------------------------------------------------------- orders


def owned_order(s: Session, order_id: str | None, customer_id: str | None) -> Order | None:
    """The order if it exists and belongs to ``customer_id``; None otherwise (both cases)."""
    if not order_id or not customer_id:
        return None
    order = s.get(Order, order_id)
    if order is None or order.user_id != customer_id:
        return None
    return order


def customer_orders(s: Session, customer_id: str, statuses: frozenset[str] | None) -> list[Order]:
    stmt = select(Order).where(Order.user_id == customer_id)
    if statuses is not None:
        stmt = stmt.where(Order.status.in_(sorted(statuses)))
    return list(s.scalars(stmt.order_by(Order.order_id)))


def item_views(order: Order) -> list[ItemView]:
    return [ItemView(i.item_id, i.product_id, i.name, dict(i.options or {})) for i in order.items]


def order_line(order: Order, item_id: str) -> OrderItem | None:
    return next((i for i in order.items if i.item_id == item_id), None)


def lines_for(order: Order, item_ids: Sequence[str]) -> list[OrderItem] | None:
    """The order lines for ``item_ids`` (a repeated id takes another line with that id);
    None when an id is not in the order or is asked for more often than it was bought."""
    available: dict[str, list[OrderItem]] = defaultdict(list)
    for line in order.items:
        available[line.item_id].append(line)
    out = []
    for item_id in item_ids:
        bucket = available.get(str(item_id))
        if not bucket:
            return None
        out.append(bucket.pop(0))
    return out


def alternatives(s: Session, product_id: str, exclude_item_id: str) -> list[Variant]:
    """Available variants of the product other than ``exclude_item_id`` (price order)."""
    return list(
        s.scalars(
            select(Variant)
            .where(
                Variant.product_id == product_id,
                Variant.available.is_(True),
                Variant.item_id != exclude_item_id,
            )
            .order_by(Variant.price, Variant.item_id)
        )
    )


def variant_views(variants: Sequence[Variant]) -> list[VariantView]:
    return [VariantView(v.item_id, dict(v.options or {})) for v in variants]


def tracking_ids(order: Order) -> list[str]:
    ids: list[str] = []
    for f in order.fulfillments or []:
        for t in (f or {}).get("tracking_id") or []:
            if str(t) not in ids:
                ids.append(str(t))
    return ids


# --------------------------------------------------------------------------- payments


def money(value: Any) -> Decimal:
    return Decimal(str(value)).quantize(CENT)


def original_payment_method(order: Order) -> str | None:
    for entry in order.payment_history or []:
        if entry.get("transaction_type") == "payment":
            return entry.get("payment_method_id")
    return None


def net_paid_by_method(order: Order) -> dict[str, Decimal]:
    """Payments minus refunds, per payment method, for what is still paid on the order."""
    net: dict[str, Decimal] = defaultdict(Decimal)
    for entry in order.payment_history or []:
        method = str(entry.get("payment_method_id"))
        amount = money(entry.get("amount") or 0)
        if entry.get("transaction_type") == "payment":
            net[method] += amount
        elif entry.get("transaction_type") == "refund":
            net[method] -= amount
    return {m: money(a) for m, a in net.items() if a > 0}


def is_gift_card(customer: Customer | None, method_id: str | None) -> bool:
    if not method_id:
        return False
    method = (customer.payment_methods or {}).get(method_id) if customer else None
    source = (method or {}).get("source") or ""
    return source == "gift_card" or method_id.startswith("gift_card")


def payment_label(customer: Customer | None, method_id: str | None) -> dict[str, Any]:
    """The payment method as a phrase: ``utter_payment_<kind>`` with ``brand`` and
    ``last_four`` (kinds: gift_card, paypal, card_ending, card, credit_card, original)."""
    method = (customer.payment_methods or {}).get(method_id) if customer and method_id else None
    source = (method or {}).get("source") or (method_id or "").rsplit("_", 1)[0]
    if source in ("gift_card", "paypal"):
        return {"response": f"utter_payment_{source}"}
    if source == "credit_card":
        brand = str((method or {}).get("brand") or "")
        brand = brand.title() if brand.islower() else brand
        last4 = (method or {}).get("last_four")
        kind = ("card_ending" if last4 else "card") if brand else "credit_card"
        return {"response": f"utter_payment_{kind}", "brand": brand, "last_four": last4}
    return {"response": "utter_payment_original"}


def credit_gift_card(customer: Customer, method_id: str, amount: Decimal) -> None:
    """Add ``amount`` to a gift card's balance (a refund to a gift card is immediate)."""
    methods = {k: dict(v) for k, v in (customer.payment_methods or {}).items()}
    card = methods.get(method_id)
    if card is None or card.get("source") != "gift_card":
        return
    card["balance"] = float(money(card.get("balance") or 0) + amount)
    customer.payment_methods = methods  # a new dict, so the JSON column is written
