"""``AnswerWording``: the words a knowledge answer puts around the store's data.

Contract: everything an answer writer adds to its evidence — the ``Sources:`` line, the
sentences around a product's name, options, prices and stock, "I couldn't find anything"
— is a domain response, so a store rewords or translates its knowledge answers in
``domain.yml`` like every other text (Clerk's defaults: ``RESPONSES`` in
``bot/dialogue/default_responses.yml``). The writers sit below ``bot.dialogue``, so they
receive the wording as this value; the composition root (``bot.app.answer_wording``)
builds it from the ``Domain``.

``say(name, values)`` must return response ``name`` as one plain text with its
``{placeholders}`` filled from ``values`` (``Domain.text``). Values passed are store data
already written for a shopper (product names, option values, prices formatted by
``format_money``) or other phrases of this wording; ``{cite}`` is the citation mark
(``[1]``) a sentence ends with, placed by the response so a translation can move it.
Thread-safe when ``say`` is.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from bot.knowledge.catalog import ProductFacts, VariantFact
from bot.knowledge.money import format_money

Say = Callable[[str, Mapping[str, Any]], str]

#: Every response an answer writer may say (the defaults must define each of them).
RESPONSES = (
    "utter_knowledge_not_found",
    "utter_answer_sources",
    "utter_answer_yes",
    "utter_answer_no",
    "utter_answer_or",
    "utter_answer_price_range",
    "utter_answer_in_stock",
    "utter_answer_out_of_stock",
    "utter_answer_variant_line",
    "utter_answer_product_summary_one",
    "utter_answer_product_summary",
    "utter_answer_cheapest",
    "utter_answer_most_expensive",
    "utter_answer_product_not_in",
    "utter_answer_product_no_match",
    "utter_answer_variant_in_stock",
    "utter_answer_variant_out_of_stock",
    "utter_answer_product_matches",
    "utter_answer_more_variants",
    "utter_answer_wants_option",
    "utter_answer_wants_price_between",
    "utter_answer_wants_price_up_to",
    "utter_answer_wants_price_from",
    "utter_answer_wants_in_stock",
    "utter_answer_wants_out_of_stock",
)

CITE = "[1]"  # a product answer cites the product's passage, always numbered 1


@dataclass(frozen=True)
class AnswerWording:
    """The connecting words of knowledge answers, rendered by ``say`` (see the module)."""

    say: Say

    # -- whole answers -------------------------------------------------------------------

    def not_found(self) -> str:
        """The reply when the store's knowledge holds no answer."""
        return self.say("utter_knowledge_not_found", {})

    def sources(self, entries: Sequence[str]) -> str:
        """The closing line listing the cited passages (``[n] title (file)`` each)."""
        return self.say("utter_answer_sources", {"sources": "; ".join(entries)})

    def reply(self, yes: bool) -> str:
        """The yes or no a yes/no question's answer opens with."""
        return self.say("utter_answer_yes" if yes else "utter_answer_no", {})

    # -- pieces --------------------------------------------------------------------------

    def or_list(self, values: Sequence[str]) -> str:
        """``a``, ``a or b``, ``a, b or c``."""
        if len(values) <= 1:
            return "".join(values)
        return self.say("utter_answer_or", {"items": ", ".join(values[:-1]), "last": values[-1]})

    def price_range(self, prices: Sequence[Decimal], currency: str) -> str:
        """One price when all are equal, else the range; "" for none."""
        if not prices:
            return ""
        low, high = format_money(min(prices), currency), format_money(max(prices), currency)
        if low == high:
            return low
        return self.say("utter_answer_price_range", {"low": low, "high": high})

    def stock(self, available: bool) -> str:
        return self.say("utter_answer_in_stock" if available else "utter_answer_out_of_stock", {})

    def variant_line(self, options: str, price: Decimal, currency: str, available: bool) -> str:
        """One listed variant: its options, price and stock."""
        return self.say(
            "utter_answer_variant_line",
            {
                "options": options,
                "price": format_money(price, currency),
                "stock": self.stock(available),
            },
        )

    def request(self, facts: ProductFacts) -> str:
        """What the question asked of the product: its options, price bounds and stock."""
        parts: list[str] = []
        for key, values in facts.requested.items():
            if key == "price" and (facts.price_from is not None or facts.price_to is not None):
                parts.append(self._price_bound(facts))
            elif key == "availability" and facts.in_stock is not None:
                parts.append(
                    self.say(
                        "utter_answer_wants_in_stock"
                        if facts.in_stock
                        else "utter_answer_wants_out_of_stock",
                        {},
                    )
                )
            else:
                parts.append(
                    self.say(
                        "utter_answer_wants_option",
                        {"option": self.or_list(key.split("/")), "values": self.or_list(values)},
                    )
                )
        return ", ".join(parts)

    def _price_bound(self, facts: ProductFacts) -> str:
        currency = facts.product.currency
        low = None if facts.price_from is None else format_money(facts.price_from, currency)
        high = None if facts.price_to is None else format_money(facts.price_to, currency)
        if low is not None and high is not None:
            return self.say("utter_answer_wants_price_between", {"low": low, "high": high})
        if high is not None:
            return self.say("utter_answer_wants_price_up_to", {"high": high})
        return self.say("utter_answer_wants_price_from", {"low": low})

    # -- product sentences ---------------------------------------------------------------

    def product_summary(
        self, facts: ProductFacts, variants: Sequence[VariantFact], options: str
    ) -> str:
        name = (
            "utter_answer_product_summary_one"
            if len(variants) == 1
            else "utter_answer_product_summary"
        )
        return self.say(
            name,
            {
                "product": facts.name,
                "count": str(len(variants)),
                "in_stock": str(sum(v.available for v in variants)),
                "price": self.price_range([v.price for v in variants], facts.product.currency),
                "options": options,
                "cite": CITE,
            },
        )

    def extreme(self, variant: VariantFact, currency: str, *, cheapest: bool) -> str:
        """The cheapest (or most expensive) of more variants than are listed."""
        name = "utter_answer_cheapest" if cheapest else "utter_answer_most_expensive"
        return self.say(
            name,
            {
                "variant": variant.describe(),
                "price": format_money(variant.price, currency),
                "stock": self.stock(variant.available),
            },
        )

    def not_in(self, facts: ProductFacts, options: str) -> str:
        """The product does not come in the colours asked for; ``options``: the ones it has."""
        return self.say(
            "utter_answer_product_not_in",
            {
                "product": facts.name,
                "unmatched": self.or_list(list(facts.unmatched)),
                "options": options,
                "cite": CITE,
            },
        )

    def no_match(self, facts: ProductFacts, options: str) -> str:
        """No variant has the options asked for; ``options``: the ones it has."""
        return self.say(
            "utter_answer_product_no_match",
            {
                "product": facts.name,
                "request": self.request(facts),
                "options": options,
                "cite": CITE,
            },
        )

    def one_variant(self, facts: ProductFacts, variant: VariantFact) -> str:
        """The one variant the question asked for: price and stock."""
        name = (
            "utter_answer_variant_in_stock"
            if variant.available
            else "utter_answer_variant_out_of_stock"
        )
        return self.say(
            name,
            {
                "product": facts.name,
                "variant": variant.describe(),
                "price": format_money(variant.price, facts.product.currency),
                "cite": CITE,
            },
        )

    def matches(self, facts: ProductFacts, variants: Sequence[VariantFact]) -> str:
        """The heading of the list of variants matching the question's options."""
        return self.say(
            "utter_answer_product_matches",
            {
                "product": facts.name,
                "count": str(len(variants)),
                "request": self.request(facts),
                "in_stock": str(sum(v.available for v in variants)),
                "cite": CITE,
            },
        )

    def more_variants(self, variants: Sequence[VariantFact], currency: str) -> str:
        """The variants past the listed ones: how many, at what prices."""
        return self.say(
            "utter_answer_more_variants",
            {
                "count": str(len(variants)),
                "price": self.price_range([v.price for v in variants], currency),
            },
        )
