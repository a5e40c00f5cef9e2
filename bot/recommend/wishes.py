"""What a shopper asked for in the conversation, read against the store's catalog.

``read_wishes(texts, catalog, named=...)`` reads the shopper's messages (oldest first; the
caller passes only the ones about what the shopper is looking for, so a budget or colour
said about something else never narrows):

- **products named**: a product whose whole name is in a message ("the Hiking Boots"), or
  the ``product`` entity/slot value ``named`` (exactly, or its words inside a name);
- **the kind of product** asked about: the products whose name ends with a word the
  shopper used ("kettles" -> Electric Kettle, Tea Kettle), else whose name has that word
  (four letters or more: "coffee" -> Coffee Maker). No category column is needed: a
  store's names carry the kind, in any store. (The engine falls back to content
  similarity when no word matches.)
- **options**: a value of one of the catalog's options ("in black", "1000ml"); a value of
  two characters or fewer, a number, yes or no, or a word of a product name counts only
  right after its option's name ("size M", "size 10", "waterproof yes", "compartment
  laptop": "a good laptop" asks for a Laptop, not a backpack's laptop compartment). A
  later message replaces an option of the same name;
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
    """An option value asked for: a variant has it when one of its options ``keys`` has
    ``value`` (compared in lower case)."""

    keys: tuple[str, ...]  # the catalog's option names with this value ("color", ...)
    value: str  # lower case ("black")
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


def _find(haystack: Sequence[str], needle: Sequence[str]) -> int | None:
    """Where ``needle`` starts in ``haystack`` (first), or None."""
    n = len(needle)
    for i in range(len(haystack) - n + 1):
        if n and list(haystack[i : i + n]) == list(needle):
            return i
    return None


def _contains(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    return _find(haystack, needle) is not None


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


def _category(
    text: str, catalog: Catalog, skip: frozenset[int] = frozenset()
) -> tuple[tuple[str, ...], str | None]:
    """The products of the kind a word of ``text`` names (tokens at ``skip`` left out:
    the words of an option asked for by name, "compartment bottle")."""
    option_values = {
        _norm(str(value))
        for p in catalog.products
        for v in p.variants
        for value in v.options.values()
    }
    tokens = [t for i, t in enumerate(_TOKEN.findall(text)) if i not in skip]
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


def _options(text: str, catalog: Catalog) -> tuple[list[OptionWish], frozenset[int]]:
    """The option values ``text`` asks for; one wish per value, with every option name
    the catalog has that value under ("black": color, frame color...); and the positions
    of the tokens an option named with its value took ("compartment bottle")."""
    lower = [t.lower() for t in _TOKEN.findall(text)]
    name_words = {w for p in catalog.products for w in words(p.name)}
    keys: dict[tuple[str, str], list[str]] = {}
    used: set[int] = set()
    for p in catalog.products:
        for v in p.variants:
            for key, value in v.options.items():
                val = [t.lower() for t in _TOKEN.findall(str(value))]
                if not val:
                    continue
                needs_key = (
                    len(str(value)) <= 2
                    or not re.search(r"[^\W\d_]", str(value))  # "10", "60%", "1.5"
                    or str(value).lower() in _KEY_REQUIRED
                    or any(_norm(t) in name_words for t in val)  # "laptop", "Bluetooth"
                )
                key_words = [t.lower() for t in _TOKEN.findall(str(key))]
                start = _find(lower, key_words + val)
                if start is not None:
                    said = f"{key} {value}"
                    used.update(range(start, start + len(key_words) + len(val)))
                elif not needs_key and _contains(lower, val):
                    said = str(value)
                else:
                    continue
                found = keys.setdefault((str(value).lower(), said), [])
                if str(key) not in found:
                    found.append(str(key))
    # a value said with its option's name is that option only
    named = {value for (value, said) in keys if said.lower() != value}
    wishes = [
        OptionWish(tuple(ks), value, said)
        for (value, said), ks in keys.items()
        if said.lower() != value or value not in named
    ]
    return wishes, frozenset(used)


def read_wishes(texts: Sequence[str], catalog: Catalog, *, named: str | None = None) -> Wishes:
    """What ``texts`` (the shopper's messages, oldest first) and ``named`` (the product
    entity or slot) ask for; see the module doc."""
    products: list[str] = []
    options: list[OptionWish] = []
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
        wished, used = _options(text, catalog)
        for wish in wished:  # a later wish replaces one on its options
            options = [o for o in options if not set(o.keys) & set(wish.keys)] + [wish]
        stated = find_price_range(text, bare_amounts=True)
        if stated.stated:
            price = stated
        hits, word = _category(text, catalog, used)
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
        options=tuple(options),
        price=price,
        unknown_product=unknown,
    )
