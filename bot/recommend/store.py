"""What the recommender reads from the store: the catalog, a shopper's history and the
purchase counts, each in one short query on the caller's ``Session``.

Every function takes a ``Session`` from ``Database.session()`` (inside an engine turn, the
turn's own) and never commits or writes. None of them waits on anything but the database.
Purchases count *orders*: a product bought twice in one order counts once. Orders whose
status is in ``NOT_OWNING_STATUSES`` (cancelled) count nowhere: not in a history, not in
popularity or co-purchase (``_owning``: the one copy of that rule).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, aliased

from bot.store.models import Customer, Order, OrderItem, Product, Variant

#: Orders with these statuses do not make their products the shopper's own.
NOT_OWNING_STATUSES = frozenset({"cancelled"})


def _owning(order_id: Any) -> Any:
    """A condition on ``order_id`` (an order id column): its order makes its products the
    shopper's own (its status is not in ``NOT_OWNING_STATUSES``)."""
    return order_id.in_(
        select(Order.order_id).where(Order.status.not_in(sorted(NOT_OWNING_STATUSES)))
    )


@dataclass(frozen=True)
class CatalogVariant:
    item_id: str
    product_id: str
    options: Mapping[str, Any]
    price: Decimal
    available: bool


@dataclass(frozen=True)
class CatalogProduct:
    product_id: str
    name: str
    variants: tuple[CatalogVariant, ...]


@dataclass(frozen=True)
class Catalog:
    """The store's products with their variants, ordered by product id."""

    products: tuple[CatalogProduct, ...]
    by_id: Mapping[str, CatalogProduct] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "by_id", {p.product_id: p for p in self.products})

    def name(self, product_id: str) -> str:
        product = self.by_id.get(product_id)
        return product.name if product else ""


@dataclass(frozen=True)
class History:
    """What a shopper ordered (cancelled orders left out): products, most recent order
    first (by each order's first line, as the store has no order dates), and the
    variants."""

    products: tuple[str, ...] = ()
    items: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Purchases:
    """Purchase counts over a set of orders.

    ``popularity[p]``: orders containing product ``p``. ``together[a][b]``: orders
    containing both ``a`` and ``b`` (present for the anchors it was built for; every
    product when built ``from_baskets``). ``buyers_together[a][b]``: the distinct
    customers of those orders (what "often bought with" may rest on: not one person's
    habit); ``None`` (``from_baskets``): taken to be ``together``."""

    popularity: Mapping[str, int]
    together: Mapping[str, Mapping[str, int]]
    buyers_together: Mapping[str, Mapping[str, int]] | None = None

    def buyers(self, anchor: str, product: str) -> int:
        counts = self.together if self.buyers_together is None else self.buyers_together
        return counts.get(anchor, {}).get(product, 0)

    @classmethod
    def from_baskets(cls, baskets: Iterable[Collection[str]]) -> Purchases:
        """Counts over ``baskets`` (each the product ids of one order)."""
        popularity: dict[str, int] = defaultdict(int)
        together: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
        for basket in baskets:
            products = set(basket)
            for a in products:
                popularity[a] += 1
                for b in products:
                    if a != b:
                        together[a][b] += 1
        return cls(dict(popularity), {a: dict(bs) for a, bs in together.items()})


def read_catalog(s: Session) -> Catalog:
    """Every product with its variants (two queries)."""
    variants: dict[str, list[CatalogVariant]] = defaultdict(list)
    rows = s.execute(  # columns, not ORM objects: a large catalog loads several times faster
        select(
            Variant.item_id, Variant.product_id, Variant.options, Variant.price, Variant.available
        ).order_by(Variant.product_id, Variant.item_id)
    )
    for item_id, product_id, options, price, available in rows:
        variants[product_id].append(
            CatalogVariant(
                item_id=item_id,
                product_id=product_id,
                options=dict(options or {}),
                price=Decimal(price),
                available=bool(available),
            )
        )
    products = tuple(
        CatalogProduct(pid, name, tuple(variants.get(pid, ())))
        for pid, name in s.execute(
            select(Product.product_id, Product.name).order_by(Product.product_id)
        )
    )
    return Catalog(products)


def customer_exists(s: Session, customer_id: str) -> bool:
    return s.get(Customer, customer_id) is not None


def read_history(s: Session, customer_id: str) -> History:
    """The shopper's ordered products and variants (one query), most recent order first:
    orders have no dates and random ids, so an order's place is that of its first line
    (``OrderItem.id``, which grows as orders are recorded)."""
    rows = s.execute(
        select(OrderItem.order_id, OrderItem.id, OrderItem.product_id, OrderItem.item_id)
        .join(Order, Order.order_id == OrderItem.order_id)
        .where(Order.user_id == customer_id, _owning(Order.order_id))
        .order_by(OrderItem.id)
    ).all()
    first_line: dict[str, int] = {}
    for order_id, line_id, _, _ in rows:
        first_line.setdefault(order_id, line_id)
    recent_first = sorted(rows, key=lambda r: (-first_line[r[0]], r[1]))
    return History(
        products=tuple(dict.fromkeys(r[2] for r in recent_first)),
        items=frozenset(r[3] for r in recent_first),
    )


def read_purchases(s: Session, anchors: Collection[str]) -> Purchases:
    """Popularity of every product and co-purchase counts (orders and customers) of
    ``anchors`` (two queries)."""
    n = func.count(func.distinct(OrderItem.order_id))
    popularity = {
        pid: int(count)
        for pid, count in s.execute(
            select(OrderItem.product_id, n)
            .where(_owning(OrderItem.order_id))
            .group_by(OrderItem.product_id)
        )
    }
    together: dict[str, dict[str, int]] = defaultdict(dict)
    buyers: dict[str, dict[str, int]] = defaultdict(dict)
    if anchors:
        a, b = aliased(OrderItem), aliased(OrderItem)
        both = func.count(func.distinct(b.order_id))
        people = func.count(func.distinct(Order.user_id))
        stmt = (
            select(a.product_id, b.product_id, both, people)
            .join(b, a.order_id == b.order_id)
            .join(Order, Order.order_id == a.order_id)
            .where(
                a.product_id.in_(sorted(anchors)),
                b.product_id != a.product_id,
                _owning(a.order_id),
            )
            .group_by(a.product_id, b.product_id)
        )
        for anchor, other, count, customers in s.execute(stmt):
            together[anchor][other] = int(count)
            buyers[anchor][other] = int(customers)
    return Purchases(popularity, dict(together), dict(buyers))


def variant_orders(s: Session) -> dict[str, int]:
    """How many order lines each variant has, cancelled orders left out (one query)."""
    stmt = (
        select(OrderItem.item_id, func.count())
        .where(_owning(OrderItem.order_id))
        .group_by(OrderItem.item_id)
    )
    return {item: int(count) for item, count in s.execute(stmt)}
