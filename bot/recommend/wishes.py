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
- **price range**: ``bot.lang.price_range.find_price_range`` with plain budgets allowed
  ("under 100", "between 20 and 50", "两百以内", "100到300元之间"); the latest message that states one wins.

Pure functions; words are compared in lower case, hyphens dropped, a plural ``s`` dropped.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from bot.lang.price_range import PriceRange, find_price_range
from bot.recommend.store import Catalog

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


@dataclass(frozen=True)
class _OptionPair:
    """One option value of the catalog under one option name, as the text is read for."""

    key: str
    value: str
    key_words: tuple[str, ...]  # lower case
    value_words: tuple[str, ...]  # lower case
    needs_key: bool  # counts only said right after its option's name


@dataclass(frozen=True)
class Lexicon:
    """A catalog's words, indexed once per catalog content (``Lexicon.build``) so that
    reading a message looks up its own words instead of scanning every product and
    variant. Immutable; the engine keeps one per catalog content key."""

    order: dict[str, int]  # product id -> its place in the catalog
    name_words: dict[str, tuple[str, ...]]  # product id -> ``words(name)``
    by_first_word: dict[str, tuple[str, ...]]  # a name's first word -> product ids
    by_last_word: dict[str, tuple[str, ...]]  # a name's last word -> product ids
    by_word: dict[str, tuple[str, ...]]  # any word of a name -> product ids
    option_values: frozenset[str]  # every option value, as ``_norm`` compares
    pairs: tuple[_OptionPair, ...]  # distinct (option, value), in catalog order
    pairs_by_word: dict[str, tuple[int, ...]]  # a pair's first word (name or value) -> pairs

    @classmethod
    def build(cls, catalog: Catalog) -> Lexicon:
        order = {p.product_id: i for i, p in enumerate(catalog.products)}
        name_words = {p.product_id: tuple(words(p.name)) for p in catalog.products}
        first: dict[str, list[str]] = {}
        last: dict[str, list[str]] = {}
        anyw: dict[str, list[str]] = {}
        for pid, ws in name_words.items():
            if ws:
                first.setdefault(ws[0], []).append(pid)
                last.setdefault(ws[-1], []).append(pid)
            for w in dict.fromkeys(ws):
                anyw.setdefault(w, []).append(pid)
        all_name_words = set(anyw)
        seen: dict[tuple[str, str], None] = {}
        values: set[str] = set()
        for p in catalog.products:
            for v in p.variants:
                for key, value in v.options.items():
                    seen.setdefault((str(key), str(value)), None)
                    values.add(_norm(str(value)))
        pairs: list[_OptionPair] = []
        by_word: dict[str, list[int]] = {}
        for key, value in seen:
            val = tuple(t.lower() for t in _TOKEN.findall(value))
            if not val:
                continue
            key_words = tuple(t.lower() for t in _TOKEN.findall(key))
            needs_key = (
                len(value) <= 2
                or not re.search(r"[^\W\d_]", value)  # "10", "60%", "1.5"
                or value.lower() in _KEY_REQUIRED
                or any(_norm(t) in all_name_words for t in val)  # "laptop", "Bluetooth"
            )
            n = len(pairs)
            pairs.append(_OptionPair(key, value, key_words, val, needs_key))
            for w in {val[0], (key_words or val)[0]}:
                by_word.setdefault(w, []).append(n)
        return cls(
            order=order,
            name_words=name_words,
            by_first_word={w: tuple(ps) for w, ps in first.items()},
            by_last_word={w: tuple(ps) for w, ps in last.items()},
            by_word={w: tuple(ps) for w, ps in anyw.items()},
            option_values=frozenset(values),
            pairs=tuple(pairs),
            pairs_by_word={w: tuple(ns) for w, ns in by_word.items()},
        )


def named_products(text: str, catalog: Catalog, lexicon: Lexicon | None = None) -> list[str]:
    """Ids of the products whose whole name is in ``text``, in catalog order; a name
    inside a longer matching one ("Kettle" in "Electric Kettle") is left out."""
    lex = lexicon or Lexicon.build(catalog)
    said = words(text)
    candidates = {pid for w in set(said) for pid in lex.by_first_word.get(w, ())}
    found = sorted(
        (pid for pid in candidates if _contains(said, lex.name_words[pid])),
        key=lex.order.__getitem__,
    )
    return [
        p
        for p in found
        if not any(o != p and _contains(lex.name_words[o], lex.name_words[p]) for o in found)
    ]


def _category(
    text: str, lex: Lexicon, skip: frozenset[int] = frozenset()
) -> tuple[tuple[str, ...], str | None]:
    """The products of the kind a word of ``text`` names (tokens at ``skip`` left out:
    the words of an option asked for by name, "compartment bottle")."""
    tokens = [t for i, t in enumerate(_TOKEN.findall(text)) if i not in skip]
    for pass_ in ("head", "any"):
        for token in tokens:
            w = _norm(token)
            if pass_ == "any" and (len(w) < _MIN_CATEGORY_WORD or w in lex.option_values):
                continue
            hits = (lex.by_last_word if pass_ == "head" else lex.by_word).get(w, ())
            if hits:
                return hits, token
    return (), None


def _options(text: str, lex: Lexicon) -> tuple[list[OptionWish], frozenset[int]]:
    """The option values ``text`` asks for; one wish per value, with every option name
    the catalog has that value under ("black": color, frame color...); and the positions
    of the tokens an option named with its value took ("compartment bottle")."""
    lower = [t.lower() for t in _TOKEN.findall(text)]
    keys: dict[tuple[str, str], list[str]] = {}
    used: set[int] = set()
    candidates = sorted({n for t in set(lower) for n in lex.pairs_by_word.get(t, ())})
    for n in candidates:
        pair = lex.pairs[n]
        key, value, val, key_words = pair.key, pair.value, pair.value_words, pair.key_words
        start = _find(lower, key_words + val)
        if start is not None:
            said = f"{key} {value}"
            used.update(range(start, start + len(key_words) + len(val)))
        elif not pair.needs_key and _contains(lower, val):
            said = value
        else:
            continue
        found = keys.setdefault((value.lower(), said), [])
        if key not in found:
            found.append(key)
    # a value said with its option's name is that option only
    named = {value for (value, said) in keys if said.lower() != value}
    wishes = [
        OptionWish(tuple(ks), value, said)
        for (value, said), ks in keys.items()
        if said.lower() != value or value not in named
    ]
    return wishes, frozenset(used)


def read_wishes(
    texts: Sequence[str],
    catalog: Catalog,
    *,
    named: str | None = None,
    lexicon: Lexicon | None = None,
) -> Wishes:
    """What ``texts`` (the shopper's messages, oldest first) and ``named`` (the product
    entity or slot) ask for; see the module doc. ``lexicon``: the catalog's
    (``Lexicon.build(catalog)``, built here when not given)."""
    lex = lexicon or Lexicon.build(catalog)
    products: list[str] = []
    options: list[OptionWish] = []
    price = PriceRange()
    category: tuple[str, ...] = ()
    label: str | None = None
    last_product = last_category = -1
    for i, text in enumerate(texts):
        for pid in named_products(text, catalog, lex):
            last_product = i
            if pid in products:
                products.remove(pid)
            products.insert(0, pid)
        wished, used = _options(text, lex)
        for wish in wished:  # a later wish replaces one on its options
            options = [o for o in options if not set(o.keys) & set(wish.keys)] + [wish]
        stated = find_price_range(text, bare_amounts=True)
        if stated.stated:
            price = stated
        hits, word = _category(text, lex, used)
        if hits:
            category, label, last_category = hits, word, i
    unknown = None
    if named:
        named_words = tuple(words(str(named)))
        exact = [
            pid
            for pid in lex.by_first_word.get(named_words[0] if named_words else "", ())
            if lex.name_words[pid] == named_words
        ]
        inside = exact or named_products(str(named), catalog, lex)
        if inside:
            for pid in inside:
                if pid not in products:
                    products.insert(0, pid)
            last_product = len(texts)
        else:
            hits, word = _category(str(named), lex)
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
