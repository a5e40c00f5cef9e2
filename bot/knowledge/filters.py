"""Price and stock constraints stated in a question, as ``SearchFilters``.

"blue T-shirts under $30", "speakers between $50 and $100", "which backpacks are in
stock?": ``question_filters`` reads the price range (only amounts written as money: ``$30``,
``30 dollars``) and the stock constraint; amounts in euros or pounds (``€30``, ``30 EUR``) count as well, in
the store's currency; ``narrow_facts`` keeps a product's variants that
meet them and records them in ``ProductFacts.requested`` (keys ``price`` and
``availability``) so the answer can say what was asked for.
"""

from __future__ import annotations

import re
from dataclasses import replace
from decimal import Decimal

from bot.knowledge.catalog import ProductFacts, format_money
from bot.knowledge.retriever import SearchFilters

_MONEY = (
    r"(?:(?:[$€£]|\b(?:usd|eur|gbp)\s?)\s?(\d+(?:\.\d{1,2})?)"
    r"|(\d+(?:\.\d{1,2})?)\s?(?:dollars|usd|bucks|euros?|eur|pounds|gbp|€|£)(?!\w))"
)
_BETWEEN = re.compile(
    r"\b(?:between|from)\s+"
    + _MONEY
    + r"\s*(?:and|to|-)\s*"
    + _MONEY
    + r"|"
    + _MONEY
    + r"\s*(?:-|to)\s*"
    + _MONEY,
    re.IGNORECASE,
)
_AT_MOST = re.compile(
    r"\b(?:under|below|less than|cheaper than|up to|at most|max(?:imum)?|no more than|"
    r"within|not over|under budget of|budget of)\s+" + _MONEY,
    re.IGNORECASE,
)
_AT_LEAST = re.compile(
    r"\b(?:over|above|more than|at least|min(?:imum)?|pricier than|starting at)\s+" + _MONEY,
    re.IGNORECASE,
)
_OUT_OF_STOCK = re.compile(r"\b(?:out[\s-]of[\s-]stock|sold[\s-]out|unavailable)\b", re.IGNORECASE)
_IN_STOCK = re.compile(r"\b(?:in[\s-]stock|available (?:now|today)|ready to ship)\b", re.IGNORECASE)


def _amounts(m: re.Match[str]) -> list[float]:
    return [float(g) for g in m.groups() if g is not None]


def question_filters(question: str) -> SearchFilters:
    """The price range and stock constraint ``question`` states (none: an empty filter)."""
    lo: float | None = None
    hi: float | None = None
    between = _BETWEEN.search(question)
    if between:
        values = _amounts(between)
        if len(values) == 2:
            lo, hi = min(values), max(values)
    else:
        at_most = _AT_MOST.search(question)
        at_least = _AT_LEAST.search(question)
        if at_most:
            hi = _amounts(at_most)[0]
        if at_least:
            lo = _amounts(at_least)[0]
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
