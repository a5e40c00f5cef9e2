"""Marketing copy for a product page, built only from the product's catalog facts.

``CopyWriter.write(product_id, audience=..., tone=..., n=3)`` returns ``n`` short variants,
one per angle (its options, its price, what is in stock, ...). With an LLM each variant is
the model's, checked by the same ``FactGuard`` as shopper answers (the product's catalog
text is the evidence; copy shows no ``[n]`` marks, so every fact must simply be in it); a
variant the guard stops, or that the backend fails to write, is replaced by the template
variant for that angle, and the replacement is logged and counted. Without an LLM every
variant comes from the templates, which only ever print catalog values.

``audience`` and ``tone`` are short descriptions (at most 80 characters, letters and
punctuation only: no digits, currency or percent signs, so no price or number can enter
the copy through them). The guard judges facts (prices, numbers, names, options, stock,
promises), not adjectives: "comfortable" passes, "30% off" or "now in purple" do not.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from typing import Any

from bot.errors import InputError
from bot.generation.base import Citation
from bot.generation.guard import Evidence, FactGuard
from bot.generation.llm import LLM, GenerationParams, LLMError
from bot.generation.prompt import copy_messages, facts_passage_text
from bot.generation.writer import GenerationStats
from bot.knowledge.catalog import CatalogProduct, CatalogResolver, ProductFacts, format_money
from bot.knowledge.money import money_range
from bot.knowledge.passages import passage_id, product_text

log = logging.getLogger(__name__)

MAX_VARIANTS = 5
MAX_DESCRIPTION_CHARS = 80
ANGLES = (
    "the choice of options",
    "the price",
    "what is in stock now",
    "everyday use",
    "the product itself",
)
_DESCRIPTION = re.compile(r"[^\W\d_](?:[^\W\d_]|[\s,.'&/+-])*", re.UNICODE)
_OPENERS = {
    "playful": "Say hello to",
    "fun": "Say hello to",
    "professional": "Introducing",
    "formal": "Introducing",
    "luxury": "Discover",
    "premium": "Discover",
    "elegant": "Discover",
    "urgent": "Don't wait:",
    "bold": "Make room for",
}


class UnknownProduct(InputError):
    def __init__(self, product_id: str) -> None:
        super().__init__(f"no product with id {product_id!r} in the catalog")
        self.product_id = product_id


@dataclass(frozen=True)
class ProductCopy:
    """One variant: ``source`` is ``template`` or the LLM backend's name; ``fallback`` is
    why a model's variant was replaced (``guard`` or ``error``), ``None`` otherwise."""

    text: str
    angle: str
    source: str
    fallback: str | None = None
    violations: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "angle": self.angle,
            "source": self.source,
            "fallback": self.fallback,
        }


def check_description(name: str, value: str) -> str:
    value = " ".join(str(value).split())
    if not value:
        raise InputError(f"{name} must not be empty")
    if len(value) > MAX_DESCRIPTION_CHARS:
        raise InputError(f"{name} has more than {MAX_DESCRIPTION_CHARS} characters")
    if not _DESCRIPTION.fullmatch(value):
        raise InputError(
            f"{name} may hold letters, spaces and punctuation only (no digits, $ or %)"
        )
    return value


class CopyWriter:
    def __init__(
        self,
        catalog: CatalogResolver,
        guard: FactGuard,
        llm: LLM | None = None,
        *,
        params: GenerationParams | None = None,
        stats: GenerationStats | None = None,
    ) -> None:
        self.catalog = catalog
        self.guard = guard
        self.llm = llm
        self.params = params or GenerationParams(max_new_tokens=80)
        self.stats = stats or GenerationStats()

    def write(
        self,
        product_id: str,
        *,
        audience: str = "everyday shoppers",
        tone: str = "friendly",
        n: int = 3,
    ) -> list[ProductCopy]:
        """``n`` (1-5) copy variants. ``UnknownProduct`` / ``InputError`` for bad input."""
        product = self.catalog.product(str(product_id))
        if product is None:
            raise UnknownProduct(str(product_id))
        audience = check_description("audience", audience)
        tone = check_description("tone", tone)
        if not 1 <= int(n) <= MAX_VARIANTS:
            raise InputError(f"n must be between 1 and {MAX_VARIANTS}")
        facts = ProductFacts(product, product.variants)
        passage = Citation(
            1,
            passage_id("product", product.source, product.product_id),
            product.name,
            product.source,
            "product",
            product_text(product),
        )
        evidence = Evidence((passage,), facts, require_citations=False, min_overlap=0.0)
        out: list[ProductCopy] = []
        for angle in ANGLES[: int(n)]:
            template = ProductCopy(template_copy(product, audience, tone, angle), angle, "template")
            if self.llm is None:
                out.append(template)
                self.stats.add("copy_template")
                continue
            out.append(self._model_copy(product, facts, audience, tone, angle, evidence, template))
        return out

    def _model_copy(
        self,
        product: CatalogProduct,
        facts: ProductFacts,
        audience: str,
        tone: str,
        angle: str,
        evidence: Evidence,
        template: ProductCopy,
    ) -> ProductCopy:
        assert self.llm is not None
        messages = copy_messages(facts_passage_text(facts), audience, tone, angle)
        try:
            text = _tidy(self.llm.complete(messages, self.params))
        except LLMError as exc:
            log.warning("copy for %s: LLM failed, using the template: %s", product.name, exc)
            self.stats.fallback("error")
            self.stats.add("copy_template")
            return replace(template, fallback="error")
        verdict = self.guard.check(text, evidence) if text else None
        if verdict is None or not verdict.ok:
            violations = tuple(str(v) for v in verdict.violations) if verdict else ()
            log.warning(
                "fact guard stopped copy for %s: %s", product.name, "; ".join(violations[:5])
            )
            self.stats.add("guard_rejections")
            self.stats.fallback("guard" if verdict else "empty")
            self.stats.add("copy_template")
            return replace(
                template, fallback="guard" if verdict else "empty", violations=violations
            )
        self.stats.add("copy_llm")
        return ProductCopy(text, angle, self.llm.name)


def template_copy(product: CatalogProduct, audience: str, tone: str, angle: str) -> str:
    """A variant assembled from catalog values only."""
    name = product.name
    variants = product.variants
    prices = [v.price for v in variants]
    in_stock = sum(v.available for v in variants)
    opener = next((o for word, o in _OPENERS.items() if word in tone.lower()), "Meet")
    options = product.option_values()
    shown = " and ".join(
        f"{key} ({', '.join(values[:4])}{', and more' if len(values) > 4 else ''})"
        for key, values in list(options.items())[:2]
    )
    if angle == ANGLES[1]:
        price = money_range(prices, product.currency)
        return f"{opener} the {name}, priced {price}: a smart pick for {audience}."
    if angle == ANGLES[2]:
        if in_stock:
            return (
                f"{opener} the {name}: {in_stock} of its {len(variants)} variants are in stock "
                f"and ready for {audience}."
            )
        return f"{opener} the {name}, made for {audience}. Ask us when it is back in stock."
    if angle == ANGLES[3]:
        return f"{opener} the {name}, made for {audience} and everyday life. Choose your {shown}."
    if angle == ANGLES[4]:
        return f"{opener} the {name}. Made for {audience}, from {format_money(min(prices), product.currency)}."
    return f"{opener} the {name}, made for {audience}: choose your {shown}."


def _tidy(text: str) -> str:
    text = text.strip().strip('"').strip()
    return re.sub(r"\s+", " ", text)
