"""Price and stock constraints stated in a question, as ``SearchFilters``.

"blue T-shirts under $30", "speakers between $50 and $100", "which backpacks are in
stock?", "500元以下的耳机": ``question_filters`` reads the price range
(``bot.lang.price_range.find_price_range``: in English only amounts written as money,
``$30``, ``30 dollars``, ``€30``, ``30 EUR``, in the store's currency; Chinese bounds such
as "500元以下", "不超过两百") and the stock constraint ("in stock", "有货"; "sold out",
"缺货"); ``narrow_facts`` keeps a product's variants that
meet them and records them in ``ProductFacts.requested`` (keys ``price`` and
``availability``) so the answer can say what was asked for.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

from bot.knowledge.catalog import ProductFacts, format_money
from bot.knowledge.retriever import SearchFilters
from bot.lang.price_range import find_price_range

_OUT_OF_STOCK = re.compile(
    r"\b(?:out[\s-]of[\s-]stock|sold[\s-]out|unavailable)\b|缺货|没货|无货|售罄|卖完|断货",
    re.IGNORECASE,
)
_IN_STOCK = re.compile(
    r"\b(?:in[\s-]stock|available (?:now|today)|ready to ship)\b|(?<![没无])有货|有现货|现货",
    re.IGNORECASE,
)


def question_filters(question: str) -> SearchFilters:
    """The price range and stock constraint ``question`` states (none: an empty filter)."""
    price = find_price_range(question)
    lo, hi = price.low, price.high
    in_stock: bool | None = None
    if _OUT_OF_STOCK.search(question):
        in_stock = False
    elif _IN_STOCK.search(question):
        in_stock = True
    return SearchFilters(
        kinds=None, in_stock=in_stock, min_price=lo, max_price=hi, product_types=None
    )


def narrow_facts(facts: ProductFacts, filters: SearchFilters) -> ProductFacts:
    """``facts`` keeping only the variants within the filters' price range and stock."""
    variants = tuple(
        v
        for v in facts.variants
        if (filters.min_price is None or v.price >= Decimal(str(filters.min_price)))
        and (filters.max_price is None or v.price <= Decimal(str(filters.max_price)))
        and (filters.in_stock is None or v.available == filters.in_stock)
    )
    requested = dict(facts.requested)
    currency = facts.product.currency

    def money(value: float) -> str:
        return format_money(Decimal(str(value)), currency)

    if filters.min_price is not None and filters.max_price is not None:
        lo = money(filters.min_price)
        requested["price"] = (f"from {lo} to {money(filters.max_price)}",)
    elif filters.max_price is not None:
        requested["price"] = (f"up to {money(filters.max_price)}",)
    elif filters.min_price is not None:
        requested["price"] = (f"from {money(filters.min_price)}",)
    if filters.in_stock is not None:
        requested["availability"] = ("in stock" if filters.in_stock else "out of stock",)
    return replace(
        facts,
        variants=variants,
        requested=requested,
        price_from=None if filters.min_price is None else Decimal(str(filters.min_price)),
        price_to=None if filters.max_price is None else Decimal(str(filters.max_price)),
        in_stock=filters.in_stock,
    )
