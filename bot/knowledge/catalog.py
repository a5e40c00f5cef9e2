"""The store's catalog as facts, and the resolver from a question to catalog variants.

``CatalogResolver`` answers "which product and which of its variants does this question
name?": "blue M crew-neck T-shirt" -> the T-Shirt variants that are blue, size M and crew
neck; "the Bluetooth Speaker in blue" -> the blue Bluetooth Speaker variants; a question
naming a product but no option -> all of its variants. It never guesses: product names and
option values match case-insensitively on whole words only (plural, hyphen and spacing
variants allowed), and a question naming no catalog product resolves to ``None``.

Products come in either shape the project holds them in: the tau-bench ``products.json``
mapping (or a list of its values) or ``bot.store.models.Product`` rows. Both are read once
into immutable ``CatalogProduct`` values; the resolver keeps no reference to a session.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from bot.errors import DataError
from bot.knowledge.money import format_money
from bot.knowledge.text import normalise
from bot.lang.option_words import words_for
from bot.text_rules import NON_HAN_WORD_CHAR

__all__ = [
    "CatalogProduct",
    "CatalogResolver",
    "ProductFacts",
    "VariantFact",
    "format_money",
    "format_price",
    "load_products_json",
    "normalise_products",
]

# ------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class VariantFact:
    item_id: str
    options: Mapping[str, str]
    price: Decimal
    available: bool

    def describe(self) -> str:
        """``color blue, size M`` — the options as the catalog names them."""
        return ", ".join(f"{k} {v}" for k, v in self.options.items())

    def to_meta(self) -> dict[str, Any]:
        return {
            "item_id": self.item_id,
            "options": dict(self.options),
            "price": format_price(self.price),
            "available": self.available,
        }


@dataclass(frozen=True)
class CatalogProduct:
    """One product as the store sells it. ``currency`` is the store's (ISO code) and applies
    to every variant price; ``description`` is plain text ("" when the catalog has none);
    ``source`` is the catalog file it came from, relative to the knowledge folder."""

    product_id: str
    name: str
    variants: tuple[VariantFact, ...]
    currency: str = "USD"
    description: str = ""
    source: str = "catalog/products.json"

    def to_dict(self) -> dict[str, Any]:
        """The tau-bench ``products.json`` shape (prices as exact decimal text), plus
        ``currency``, ``description`` and ``source``: what ``normalise_products`` reads back."""
        return {
            "product_id": self.product_id,
            "name": self.name,
            "variants": {
                v.item_id: {
                    "item_id": v.item_id,
                    "options": dict(v.options),
                    "price": str(v.price),
                    "available": v.available,
                }
                for v in self.variants
            },
            "currency": self.currency,
            "description": self.description,
            "source": self.source,
        }

    def option_values(self) -> dict[str, list[str]]:
        """Each option key with its values over all variants, in a natural order."""
        seen: dict[str, list[str]] = {}
        for v in self.variants:
            for key, value in v.options.items():
                values = seen.setdefault(key, [])
                if value not in values:
                    values.append(value)
        return {k: sorted(vals, key=_natural_key) for k, vals in seen.items()}


@dataclass(frozen=True)
class ProductFacts:
    """What the catalog says about one product, narrowed to what a question asked for.

    ``variants`` are the variants matching every requested option (all variants when no
    option was asked for; empty when the combination does not exist). ``requested`` maps
    an option key (keys joined by ``/`` when a value fits several) to the values asked
    for. ``unmatched`` holds colours the question named that this product does not come in.
    ``mention`` is how the question named the product (lower case), "" when it did not.
    ``price_from`` / ``price_to`` / ``in_stock``: the price bounds and stock the question
    asked for (``bot.knowledge.filters.narrow_facts``), also described in ``requested``
    under ``price`` and ``availability``; ``None`` when not asked.
    """

    product: CatalogProduct
    variants: tuple[VariantFact, ...]
    requested: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    unmatched: tuple[str, ...] = ()
    mention: str = ""
    price_from: Decimal | None = None
    price_to: Decimal | None = None
    in_stock: bool | None = None

    @property
    def product_id(self) -> str:
        return self.product.product_id

    @property
    def name(self) -> str:
        return self.product.name

    @property
    def all_variants(self) -> tuple[VariantFact, ...]:
        return self.product.variants


def format_price(price: Decimal | float | str) -> str:
    """Two decimals, exactly as the catalog holds the price (``289.69``), no currency:
    for machine-readable fields. Text a shopper reads uses ``format_money``."""
    return f"{Decimal(str(price)).quantize(Decimal('0.01'))}"


_SIZE_ORDER = {s: i for i, s in enumerate(["XXS", "XS", "S", "M", "L", "XL", "XXL", "XXXL"])}


def _natural_key(value: str) -> tuple[int, float, str]:
    if value in _SIZE_ORDER:
        return (0, _SIZE_ORDER[value], value)
    m = re.match(r"^(\d+(?:\.\d+)?)", value)
    if m:
        return (1, float(m.group(1)), value.lower())
    return (2, 0.0, value.lower())


# ------------------------------------------------------------------------- normalising


def load_products_json(path: Path) -> list[CatalogProduct]:
    """Read a tau-bench ``products.json``; ``DataError`` when it is not readable as one.
    Prices are read from the JSON text (``parse_float=Decimal``), never through a float."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=Decimal)
    except (OSError, ValueError) as exc:
        raise DataError(f"{path}: cannot read the product catalog: {exc}") from exc
    try:
        return normalise_products(data)
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        raise DataError(f"{path}: not a product catalog ({exc!r})") from exc


def normalise_products(products: Any) -> list[CatalogProduct]:
    """Accept the ``products.json`` mapping, a list of its values, ``Product`` rows or
    ``CatalogProduct`` values; return ``CatalogProduct`` values sorted by name."""
    if isinstance(products, Mapping):
        products = list(products.values())
    out = [_one_product(p) for p in products]
    return sorted(out, key=lambda p: (p.name.lower(), p.product_id))


def _one_product(p: Any) -> CatalogProduct:
    if isinstance(p, CatalogProduct):
        return p
    if isinstance(p, Mapping):
        raw_variants = p["variants"]
        if isinstance(raw_variants, Mapping):
            raw_variants = list(raw_variants.values())
        variants = [
            VariantFact(
                item_id=str(v["item_id"]),
                options={str(k): str(x) for k, x in (v.get("options") or {}).items()},
                price=Decimal(str(v["price"])),
                available=bool(v.get("available", True)),
            )
            for v in raw_variants
        ]
        extra = {k: str(p[k]) for k in ("currency", "description", "source") if p.get(k)}
        return CatalogProduct(str(p["product_id"]), str(p["name"]), tuple(variants), **extra)
    # a bot.store.models.Product row (duck-typed so this module needs no session)
    variants = [
        VariantFact(
            item_id=str(v.item_id),
            options={str(k): str(x) for k, x in (v.options or {}).items()},
            price=Decimal(str(v.price)),
            available=bool(v.available),
        )
        for v in p.variants
    ]
    return CatalogProduct(str(p.product_id), str(p.name), tuple(variants))


# ---------------------------------------------------------------------------- patterns

_PHRASE_BREAK = re.compile(r"[,;:?!.()]|\b(?:or|and|vs|versus|than|with|for)\b")


def _same_phrase(gap: str) -> bool:
    """Whether the words between two mentions keep them in one noun phrase."""
    return len(gap.split()) <= 3 and not _PHRASE_BREAK.search(gap)


# A name or option value stands on its own between non-word characters, or beside Chinese
# text, which has no spaces: "T-Shirt多少钱", "10码", "的Yoga Mat".
_WORD_CHAR = rf"(?:{NON_HAN_WORD_CHAR}|')"
_LEFT = rf"(?<!{_WORD_CHAR})"
_RIGHT = rf"(?!{_WORD_CHAR})"


def _phrase_body(phrase: str, *, plural: bool = False) -> str:
    """Regex body for a phrase: words may be joined by spaces, hyphens or nothing;
    a number may be glued to its unit ("8GB" = "8 gb"); optionally a plural last word."""
    words = [w for w in re.split(r"[\s\-]+", normalise(phrase).strip()) if w]
    if plural and words and words[-1].isalpha():
        last = words[-1]
        if last.endswith(("sses", "shes", "ches", "xes")):
            last = last[:-2]
        elif last.endswith("s") and not last.endswith("ss"):
            last = last[:-1]
        words[-1] = last
    parts = []
    for w in words:
        pieces = re.split(r"(?<=\d)(?=[a-z])", w)
        parts.append(r"\s?".join(re.escape(x) for x in pieces))
    body = r"[\s\-]*".join(parts)
    if plural and words and words[-1].isalpha():
        body += r"(?:s|es)?"
    return body


def _compile(body: str) -> re.Pattern[str]:
    return re.compile(_LEFT + body + _RIGHT)


# Words people use for a product that are not in its catalog name.
_PRODUCT_ALIASES: dict[str, tuple[str, ...]] = {
    "Bicycle": ("bike",),
    "Smartphone": ("phone", "cell phone", "mobile phone", "cellphone"),
    "Vacuum Cleaner": ("vacuum", "hoover"),
    "Portable Charger": ("power bank",),
    "Wireless Earbuds": ("earbuds", "earphones"),
    "T-Shirt": ("tee", "tee shirt"),
    "E-Reader": ("ebook reader", "e-book reader", "kindle"),
    "Indoor Security Camera": ("security camera",),
    "Mechanical Keyboard": ("keyboard",),
    "Smart Watch": ("smartwatch",),
}
# Last words of names too generic to stand for the product on their own.
_GENERIC_HEADS = frozenset(
    {"set", "kit", "machine", "maker", "cleaner", "bulb", "shoes", "camera", "watch"}
)

# Option values that say nothing on their own; matched through their key instead
# ("waterproof" -> yes, "not waterproof" -> no).
_FLAG_VALUES = frozenset({"yes", "no", "none"})
_NEGATION = re.compile(r"(?:\bnot|\bno|\bnon|\bwithout)[\s\-]+(?:\w+[\s\-]+)?$")

# Spoken sizes for products whose sizes are letter codes.
_SIZE_WORDS = {
    "extra small": "XS",
    "small": "S",
    "medium": "M",
    "large": "L",
    "extra large": "XL",
    "x-large": "XL",
    "xx-large": "XXL",
}
_SPELLING = {"gray": "grey", "grey": "gray"}


def _zh_words(value: str) -> tuple[str, ...]:
    """Chinese words for an English catalog's option ``value`` (``bot.lang.option_words``),
    so that a Chinese shopper's "黑色的", "大号" finds "black", "large"; "gray" as "grey"."""
    return words_for(value) or words_for(_SPELLING.get(value.lower(), ""))


# Other ways to say a yes/no option's key.
_FLAG_SYNONYMS = {
    "water resistance": ("waterproof", "water proof"),
    "waterproof": ("water resistant", "water resistance", "water proof"),
}


@dataclass(frozen=True)
class _Mention:
    start: int
    end: int
    value: str
    keys: tuple[str, ...]


class _ProductMatcher:
    """Everything needed to recognise one product and its options in a question."""

    def __init__(self, product: CatalogProduct, heads: Mapping[str, int]) -> None:
        self.product = product
        names = [product.name, *_PRODUCT_ALIASES.get(product.name, ())]
        self.name_patterns = [_compile(_phrase_body(n, plural=True)) for n in names]
        head_words = re.split(r"[\s\-]+", product.name.lower())
        head = head_words[-1]
        self.head_pattern = None
        if len(head_words) > 1 and heads.get(head, 0) == 1 and head not in _GENERIC_HEADS:
            self.head_pattern = _compile(_phrase_body(head, plural=True))
        self.option_values = product.option_values()
        # value (case-folded) -> (pattern, canonical value, keys)
        by_value: dict[str, tuple[str, list[str]]] = {}
        for key, values in self.option_values.items():
            for value in values:
                entry = by_value.setdefault(value.lower(), (value, []))
                entry[1].append(key)
        self.value_patterns: list[tuple[re.Pattern[str], str, tuple[str, ...]]] = []
        for folded, (value, keys) in by_value.items():
            if folded in _FLAG_VALUES:
                continue
            self.value_patterns.append((_compile(_phrase_body(value)), value, tuple(keys)))
            alt = _SPELLING.get(folded)
            if alt and alt not in by_value:
                self.value_patterns.append((_compile(_phrase_body(alt)), value, tuple(keys)))
        for word, code in _SIZE_WORDS.items():
            for key, values in self.option_values.items():
                if code in values and word not in by_value:
                    self.value_patterns.append((_compile(_phrase_body(word)), code, (key,)))
        for folded, (value, keys) in by_value.items():
            for word in _zh_words(folded):
                self.value_patterns.append((_compile(re.escape(word)), value, tuple(keys)))
        self.value_patterns.sort(key=lambda t: -len(t[0].pattern))
        # yes/no options: the key phrase itself ("waterproof", "water resistant")
        self.flag_patterns: list[tuple[re.Pattern[str], str]] = []
        for key, values in self.option_values.items():
            if {v.lower() for v in values} <= {"yes", "no"}:
                for phrase in (key, *_FLAG_SYNONYMS.get(key.lower(), ())):
                    words = [w for w in re.split(r"[\s\-]+", phrase.lower()) if w]
                    stems = [w[: max(5, len(w) - 4)] for w in words]
                    body = r"[\s\-]*".join(re.escape(s) + r"\w*" for s in stems)
                    self.flag_patterns.append((re.compile(_LEFT + body + _RIGHT), key))

    def find_name(self, text: str, *, allow_head: bool) -> re.Match[str] | None:
        for pattern in self.name_patterns:
            m = pattern.search(text)
            if m:
                return m
        if allow_head and self.head_pattern is not None:
            return self.head_pattern.search(text)
        return None

    def find_options(self, text: str, blocked: list[tuple[int, int]]) -> list[_Mention]:
        taken = list(blocked)
        found: list[_Mention] = []
        for pattern, value, keys in self.value_patterns:
            for m in pattern.finditer(text):
                if any(m.start() < e and s < m.end() for s, e in taken):
                    continue
                taken.append((m.start(), m.end()))
                found.append(_Mention(m.start(), m.end(), value, keys))
        for pattern, key in self.flag_patterns:
            for m in pattern.finditer(text):
                if any(m.start() < e and s < m.end() for s, e in taken):
                    continue
                negated = _NEGATION.search(text[: m.start()]) is not None
                values = {v.lower(): v for v in self.option_values[key]}
                value = values["no" if negated else "yes"]
                taken.append((m.start(), m.end()))
                found.append(_Mention(m.start(), m.end(), value, (key,)))
        return sorted(found, key=lambda x: x.start)


class CatalogResolver:
    """Resolves questions to catalog products and variants. Build once; thread-safe."""

    def __init__(self, products: Any) -> None:
        self.products = normalise_products(products)
        heads: dict[str, int] = {}
        for p in self.products:
            head = re.split(r"[\s\-]+", p.name.lower())[-1]
            heads[head] = heads.get(head, 0) + 1
        self._matchers = [_ProductMatcher(p, heads) for p in self.products]
        colours: set[str] = set()
        for p in self.products:
            for key, values in p.option_values().items():
                if "color" in key.lower() or "colour" in key.lower():
                    colours.update(values)
        patterns = [(_compile(_phrase_body(c)), c) for c in colours]
        patterns += [(_compile(re.escape(word)), c) for c in colours for word in _zh_words(c)]
        self._colour_patterns = sorted(patterns, key=lambda t: -len(t[0].pattern))

    @classmethod
    def from_json(cls, path: Path) -> CatalogResolver:
        return cls(load_products_json(path))

    @property
    def currency(self) -> str:
        """The store's currency (ISO code): its products' (USD for an empty catalog)."""
        return self.products[0].currency if self.products else "USD"

    def product(self, product_id: str) -> CatalogProduct | None:
        for p in self.products:
            if p.product_id == product_id:
                return p
        return None

    def facts_for(self, product_id: str, text: str = "") -> ProductFacts | None:
        """Facts for a product already chosen (by retrieval), narrowed by the options
        ``text`` names."""
        for matcher in self._matchers:
            if matcher.product.product_id == product_id:
                question = normalise(text)
                found = matcher.find_name(question, allow_head=True)
                span = (found.start(), found.end()) if found else (-1, -1)
                return self._facts(matcher, question, span, "")
        return None

    def resolve(
        self, text: str, entities: list[dict[str, Any]] | None = None
    ) -> ProductFacts | None:
        """The first product the question names, with the variants its options select."""
        found = self.resolve_all(text, entities)
        return found[0] if found else None

    def resolve_all(
        self, text: str, entities: list[dict[str, Any]] | None = None
    ) -> list[ProductFacts]:
        """Every product the question names, in the order it names them.

        ``entities`` are NLU entities (Rasa shape: ``{"entity", "value", ...}``). A
        ``product`` entity is matched against product names first; any other entity's value
        counts as an option the shopper asked for. Full names win over bare head nouns
        ("speaker"), which are used only when no full name matches.
        """
        entity_products = [
            str(e.get("value"))
            for e in (entities or [])
            if e.get("entity") in ("product", "product_type", "product_name") and e.get("value")
        ]
        entity_options = [
            str(e.get("value"))
            for e in (entities or [])
            if e.get("entity") not in ("product", "product_type", "product_name")
            and isinstance(e.get("value"), str)
            and e.get("value")
        ]
        question = normalise(text)
        sources = [*(normalise(v) for v in entity_products), question]
        hits: list[tuple[int, _ProductMatcher, tuple[int, int]]] = []
        for allow_head in (False, True):
            for source in sources:
                for matcher in self._matchers:
                    if matcher.find_name(source, allow_head=allow_head) is None:
                        continue
                    if any(h[1] is matcher for h in hits):
                        continue
                    in_question = matcher.find_name(question, allow_head=True)
                    span = (in_question.start(), in_question.end()) if in_question else (-1, -1)
                    hits.append((span[0], matcher, span))
                if hits:
                    break
            if hits:
                break
        hits.sort(key=lambda h: h[0])
        if len(hits) > 1:
            # "the laptop compartment backpack": a name that is another named product's
            # option value is that option, not a product
            hits = [
                h
                for h in hits
                if h[2][0] < 0
                or not any(
                    other is not h
                    and other[2][0] >= h[2][1]
                    and _same_phrase(question[h[2][1] : other[2][0]])
                    and any(
                        m.start < h[2][1] and h[2][0] < m.end
                        for m in other[1].find_options(question, [other[2]])
                    )
                    for other in hits
                )
            ] or hits
        extra = " ; ".join(normalise(v) for v in entity_options)
        return [self._facts(matcher, question, span, extra) for _, matcher, span in hits]

    def _facts(
        self, matcher: _ProductMatcher, question: str, span: tuple[int, int], extra: str
    ) -> ProductFacts:
        blocked = [span] if span[0] >= 0 else []
        mentions = matcher.find_options(question, blocked)
        if extra:
            offset = len(question) + 1
            known = {m.value for m in mentions}
            for m in matcher.find_options(extra, []):
                if m.value not in known:
                    mentions.append(_Mention(m.start + offset, m.end + offset, m.value, m.keys))
        groups: dict[tuple[str, ...], list[str]] = {}
        for m in mentions:
            values = groups.setdefault(m.keys, [])
            if m.value not in values:
                values.append(m.value)
        variants = tuple(
            v
            for v in matcher.product.variants
            if all(any(v.options.get(k) in vals for k in keys) for keys, vals in groups.items())
        )
        requested = {"/".join(keys): tuple(vals) for keys, vals in groups.items()}
        unmatched = self._unmatched_colours(matcher, question, blocked, mentions)
        mention = question[span[0] : span[1]] if span[0] >= 0 else ""
        return ProductFacts(matcher.product, variants, requested, unmatched, mention)

    def _unmatched_colours(
        self,
        matcher: _ProductMatcher,
        question: str,
        blocked: list[tuple[int, int]],
        mentions: list[_Mention],
    ) -> tuple[str, ...]:
        if not any("color" in k.lower() for k in matcher.option_values):
            return ()
        taken = blocked + [(m.start, m.end) for m in mentions]
        out: list[str] = []
        for pattern, colour in self._colour_patterns:
            for m in pattern.finditer(question):
                if any(m.start() < e and s < m.end() for s, e in taken):
                    continue
                taken.append((m.start(), m.end()))
                if colour not in out:
                    out.append(colour)
        return tuple(out)
