"""What a shopper asked for in the conversation, read against the store's catalog.

``read_wishes(texts, catalog, named=...)`` reads the shopper's messages (oldest first):

- **products named**: a product whose whole name is in a message ("the Hiking Boots"), or
  the ``product`` entity/slot value ``named`` (exactly, or its words inside a name);
- **the kind of product** asked about: the products whose name ends with a word the
  shopper used ("kettles" -> Electric Kettle, Tea Kettle), else whose name has that word
  (four letters or more: "coffee" -> Coffee Maker). No category column is needed: a
  store's names carry the kind, in any store. (The engine falls back to content
  similarity when no word matches.)
- **options**: a value of one of the catalog's options ("in black", "1000ml"); a value of
  two characters or fewer, a number, yes or no counts only right after its option's name
  ("size M", "size 10", "waterproof yes"). A later message replaces an option of the same
  name;
- **price range**: ``bot.text_rules.find_price_range`` with plain budgets allowed
  ("under 100", "between 20 and 50"); the latest message that states one wins.

Pure functions; words are compared in lower case, hyphens dropped, a plural ``s`` dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.recommend.store import Catalog, CatalogProduct
from bot.text_rules import PriceRange, find_price_range

_TOKEN = re.compile(r"[^\W_]+(?:-[^\W_]+)*")
_KEY_REQUIRED = frozenset({"yes", "no", "true", "false"})
_MIN_CATEGORY_WORD = 4


def _norm(word: str) -> str:
    w = word.lower().replace("-", "")
    return w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith("ss") else w


def words(text: str) -> list[str]:
    """``text``'s words as compared: lower case, no hyphens, singular."""
    return [_norm(t) for t in _TOKEN.findall(text)]


@dataclass(frozen=True)
class OptionWish:
    key: str  # the catalog's option name ("color")
    value: str  # the catalog's value ("black")
    said: str  # as a reason shows it: "black", "size M"


@dataclass(frozen=True)
class Wishes:
    products: tuple[str, ...] = ()  # product ids named, latest first
    category: tuple[str, ...] = ()  # product ids of the kind asked about
    category_label: str | None = None  # the shopper's word for it ("kettles")
    options: tuple[OptionWish, ...] = ()
    price: PriceRange = field(default_factory=PriceRange)
    unknown_product: str | None = None  # a ``named`` product the catalog lacks

    @property
    def narrowing(self) -> bool:
        """Options or a price range were asked for."""
        return bool(self.options) or self.price.stated


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(
        list(haystack[i : i + n]) == list(needle) for i in range(len(haystack) - n + 1)
    )


def named_products(text: str, catalog: Catalog) -> list[CatalogProduct]:
    """Products whose whole name is in ``text``; a name inside a longer matching one
    ("Kettle" in "Electric Kettle") is left out."""
    said = words(text)
    found = [p for p in catalog.products if _contains(said, words(p.name))]
    return [
        p
        for p in found
        if not any(o is not p and _contains(words(o.name), words(p.name)) for o in found)
    ]


def _category(text: str, catalog: Catalog) -> tuple[tuple[str, ...], str | None]:
    option_values = {
        _norm(str(value))
        for p in catalog.products
        for v in p.variants
        for value in v.options.values()
    }
    tokens = _TOKEN.findall(text)
    for pass_ in ("head", "any"):
        for token in tokens:
            w = _norm(token)
            if pass_ == "any" and (len(w) < _MIN_CATEGORY_WORD or w in option_values):
                continue
            hits = tuple(
                p.product_id
                for p in catalog.products
                if (words(p.name)[-1:] == [w] if pass_ == "head" else w in words(p.name))
            )
            if hits:
                return hits, token
    return (), None


def _options(text: str, catalog: Catalog) -> dict[str, OptionWish]:
    lower = [t.lower() for t in _TOKEN.findall(text)]
    found: dict[str, OptionWish] = {}
    seen: set[tuple[str, str]] = set()
    for p in catalog.products:
        for v in p.variants:
            for key, value in v.options.items():
                pair = (str(key), str(value))
                if pair in seen:
                    continue
                seen.add(pair)
                val = [t.lower() for t in _TOKEN.findall(pair[1])]
                key_words = [t.lower() for t in _TOKEN.findall(pair[0])]
                if not val:
                    continue
                needs_key = (
                    len(pair[1]) <= 2
                    or pair[1].replace(".", "").isdigit()
                    or pair[1].lower() in _KEY_REQUIRED
                )
                if _contains(lower, key_words + val):
                    found[pair[0]] = OptionWish(pair[0], pair[1], f"{pair[0]} {pair[1]}")
                elif not needs_key and _contains(lower, val) and pair[0] not in found:
                    found[pair[0]] = OptionWish(pair[0], pair[1], pair[1])
    return found


def read_wishes(texts: Sequence[str], catalog: Catalog, *, named: str | None = None) -> Wishes:
    """What ``texts`` (the shopper's messages, oldest first) and ``named`` (the product
    entity or slot) ask for; see the module doc."""
    products: list[str] = []
    options: dict[str, OptionWish] = {}
    price = PriceRange()
    category: tuple[str, ...] = ()
    label: str | None = None
    last_product = last_category = -1
    for i, text in enumerate(texts):
        for p in named_products(text, catalog):
            last_product = i
            if p.product_id in products:
                products.remove(p.product_id)
            products.insert(0, p.product_id)
        options.update(_options(text, catalog))
        stated = find_price_range(text, bare_amounts=True)
        if stated.stated:
            price = stated
        hits, word = _category(text, catalog)
        if hits:
            category, label, last_category = hits, word, i
    unknown = None
    if named:
        exact = [p for p in catalog.products if words(p.name) == words(str(named))]
        inside = exact or named_products(str(named), catalog)
        if inside:
            for p in inside:
                if p.product_id not in products:
                    products.insert(0, p.product_id)
            last_product = len(texts)
        else:
            hits, word = _category(str(named), catalog)
            if hits:
                category, label, last_category = hits, str(named), len(texts)
            else:
                unknown = str(named)
    if last_product >= last_category:  # the product named last outranks its kind
        category, label = (), None
    return Wishes(
        products=tuple(products),
        category=category,
        category_label=label,
        options=tuple(options.values()),
        price=price,
        unknown_product=unknown,
    )
