"""``action_recommend_products``: suggestions drawn from the store's own data.

- A product named (``product`` entity or slot, or a catalogue name in the text): other
  in-stock variants of it, then the products most often bought together with it.
- Else, a verified shopper: products most often bought together with what they bought,
  leaving out products they already have.
- Else: the most ordered products that are in stock.

Co-purchase counts are orders that contain both products. Each suggested product is
shown through one in-stock variant (its most ordered one, then the cheapest). The reply
is a text plus a ``custom`` payload ``{"type": "product_cards", "products": [...]}`` of at
most ``MAX_CARDS`` JSON-serialisable cards.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict
from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from bot.store.models import Order, OrderItem, Product, Variant
from bot.store_actions import replies
from bot.store_actions.base import StoreAction, first_entity, latest_text

MAX_CARDS = 5
MAX_SAME_PRODUCT = 3


def _words(text: str) -> list[str]:
    out = []
    for w in re.findall(r"[a-z0-9]+", text.lower().replace("-", "")):
        out.append(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w)
    return out


def find_product(s: Session, name: str | None, text: str) -> Product | None:
    """The catalogue product ``name`` (or, failing that, the text) refers to."""
    products = list(s.scalars(select(Product).order_by(Product.name)))
    for query in (name, text):
        if not query:
            continue
        q = _words(str(query))
        if not q:
            continue
        exact = [p for p in products if _words(p.name) == q]
        if exact:
            return exact[0]
        contained = [p for p in products if _contains(q, _words(p.name))]
        if contained:
            return max(contained, key=lambda p: len(p.name))
        if query is name:  # a loose entity value: "bottle" -> Water Bottle
            heads = [p for p in products if _words(p.name) and _words(p.name)[-1] in q]
            if heads:  # "kettle": the most ordered of the kettles
                order = popular(s, set(), len(products))
                return min(heads, key=lambda p: (_rank(order, p.product_id), p.name))
    return None


def _rank(ordered: Sequence[str], product_id: str) -> int:
    return ordered.index(product_id) if product_id in ordered else len(ordered)


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(
        list(haystack[i : i + n]) == list(needle) for i in range(len(haystack) - n + 1)
    )


def co_purchased(
    s: Session, product_ids: Sequence[str], exclude: set[str], limit: int
) -> list[str]:
    """Products most often in the same order as any of ``product_ids``."""
    if not product_ids:
        return []
    a, b = aliased(OrderItem), aliased(OrderItem)
    n = func.count(func.distinct(b.order_id)).label("n")
    stmt = (
        select(b.product_id, n)
        .join(a, a.order_id == b.order_id)
        .where(a.product_id.in_(list(product_ids)), b.product_id.not_in(list(product_ids)))
        .group_by(b.product_id)
        .order_by(n.desc(), b.product_id)
    )
    out = []
    for product_id, _count in s.execute(stmt):
        if product_id not in exclude:
            out.append(product_id)
        if len(out) >= limit:
            break
    return out


def popular(s: Session, exclude: set[str], limit: int) -> list[str]:
    n = func.count(func.distinct(OrderItem.order_id)).label("n")
    stmt = (
        select(OrderItem.product_id, n)
        .group_by(OrderItem.product_id)
        .order_by(n.desc(), OrderItem.product_id)
    )
    return [p for p, _ in s.execute(stmt) if p not in exclude][:limit]


def in_stock_variants(s: Session, product_id: str, exclude_items: set[str]) -> list[Variant]:
    """Available variants of a product, most ordered first, then cheapest."""
    times = (
        select(OrderItem.item_id, func.count().label("n")).group_by(OrderItem.item_id).subquery()
    )
    stmt = (
        select(Variant)
        .outerjoin(times, times.c.item_id == Variant.item_id)
        .where(Variant.product_id == product_id, Variant.available.is_(True))
        .order_by(func.coalesce(times.c.n, 0).desc(), Variant.price, Variant.item_id)
    )
    return [v for v in s.scalars(stmt) if v.item_id not in exclude_items]


Pick = tuple[Variant, str]  # a variant to suggest and its product's name


def card(variant: Variant, name: str) -> dict[str, Any]:
    """A product card (``product_cards`` in the reply's custom data): ``price`` is a JSON
    number in the store's currency (``Settings.currency``); channels write it with
    ``format_money``."""
    return {
        "product_id": variant.product_id,
        "item_id": variant.item_id,
        "name": name,
        "options": dict(variant.options or {}),
        "price": float(variant.price),
        "available": bool(variant.available),
    }


class ActionRecommendProducts(StoreAction):
    def name(self) -> str:
        return "action_recommend_products"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        asked_name = first_entity(tracker, "product") or tracker.get_slot("product")
        customer_id = tracker.get_slot("customer_id")
        with self.db.session() as s:
            owned_items: set[str] = set()
            owned_products: list[str] = []
            if customer_id:
                rows = s.execute(
                    select(OrderItem.item_id, OrderItem.product_id)
                    .join(Order, Order.order_id == OrderItem.order_id)
                    .where(Order.user_id == customer_id)
                    .order_by(OrderItem.id)
                ).all()
                owned_items = {r[0] for r in rows}
                owned_products = list(dict.fromkeys(r[1] for r in rows))
            product = find_product(s, asked_name, latest_text(tracker))
            names = {p.product_id: p.name for p in s.scalars(select(Product))}
            chosen: list[Pick] = []
            intro: dict[str, Any] = {}
            if product is not None:
                variants = in_stock_variants(s, product.product_id, owned_items)
                related = self._representatives(
                    s, co_purchased(s, [product.product_id], set(), MAX_CARDS), names, owned_items
                )
                same = [(v, product.name) for v in variants]
                take = max(MAX_SAME_PRODUCT, MAX_CARDS - len(related))
                chosen = same[:take] + related
                chosen += same[take:]
                kind = (
                    "in_stock_and_related"
                    if related and same
                    else "in_stock"
                    if same
                    else "out_of_stock"
                )
                intro = replies.phrase(f"utter_suggest_{kind}", product=product.name)
            elif asked_name:
                intro = replies.phrase("utter_suggest_unknown_product", product=asked_name)
                chosen = self._representatives(s, popular(s, set(), MAX_CARDS * 2), names, set())
            elif owned_products:
                together = co_purchased(s, owned_products, set(owned_products), MAX_CARDS * 2)
                chosen = self._representatives(s, together, names, owned_items)
                intro = replies.phrase("utter_suggest_bought_together")
                if not chosen:
                    chosen = self._representatives(
                        s, popular(s, set(owned_products), MAX_CARDS * 2), names, owned_items
                    )
                    intro = replies.phrase("utter_suggest_popular_with_others")
            else:
                chosen = self._representatives(s, popular(s, set(), MAX_CARDS * 2), names, set())
                intro = replies.phrase("utter_suggest_popular")
            picks = chosen[:MAX_CARDS]
            lines = [
                replies.item_text(name, v.options, v.price, self.currency) for v, name in picks
            ]
            products = [card(v, name) for v, name in picks]
        if not products:
            dispatcher.utter_message(response="utter_no_suggestions")
            return []
        dispatcher.utter_message(
            response="utter_suggestions",
            intro=intro,
            products=replies.bullets(lines),
            json_message={"type": "product_cards", "products": products},
        )
        return []

    @staticmethod
    def _representatives(
        s: Session, product_ids: Sequence[str], names: dict[str, str], owned_items: set[str]
    ) -> list[Pick]:
        out = []
        for product_id in product_ids:
            variants = in_stock_variants(s, product_id, owned_items)
            if variants:
                out.append((variants[0], names.get(product_id, "")))
        return out
