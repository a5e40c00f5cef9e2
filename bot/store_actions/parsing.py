"""Reading shopper text for the store actions: credentials, cancellation reasons, "no
order", and which order items or catalogue variants a message points at.

Chinese answers (reasons, "没有订单号") are read by ``bot.lang.answers``' tables.

Order and ticket ids, emails, phone numbers, zip codes, addresses and ticket priority are
``bot.text_rules``' (one set of rules with the NLU, the handoff triggers and the log filter).

Pure functions over strings and plain values; nothing here touches the database, so every
rule can be tested on its own. Matching is deliberately conservative: when a message does
not clearly name one thing, the functions say so (``None``, ``ambiguous``) instead of
guessing, and the caller asks the shopper.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.lang import answers
from bot.text_rules import AddressError, find_zips, parse_address, ticket_priority

# parse_address, AddressError and ticket_priority live in bot.text_rules (shared with the
# NLU, the handoff triggers and the log filter); re-exported for the store actions.
__all__ = [
    "CANCEL_REASONS",
    "AddressError",
    "ItemMatch",
    "ItemView",
    "VariantMatch",
    "VariantView",
    "cancel_reason_from_text",
    "contains_words",
    "find_item_ids",
    "find_zip_codes",
    "match_items",
    "match_variant",
    "mentions_credentials",
    "parse_address",
    "same_address",
    "says_no_order",
    "ticket_priority",
]

# ------------------------------------------------------------------- items, credentials

_ITEM_ID = re.compile(r"(?<!\d)(\d{10})(?!\d)")


def find_item_ids(text: str) -> list[str]:
    """The 10-digit item ids in ``text``."""
    return _ITEM_ID.findall(text or "")


_CREDENTIAL_HINT = re.compile(
    r"\b(my name|name is|i am|i'm|im|this is|zip|postal|postcode|post code)\b", re.IGNORECASE
)


def mentions_credentials(text: str) -> bool:
    """True when a message offers a name and zip code (``"I'm X, zip 12345"``,
    "我叫Noah Brown，邮编80279")."""
    return bool(find_zips(text)) and bool(
        _CREDENTIAL_HINT.search(text or "") or answers.offers_credentials(text)
    )


def find_zip_codes(text: str) -> list[str]:
    """The zip codes in ``text`` (``bot.text_rules.find_zips``' values)."""
    return [m.value for m in find_zips(text)]


def contains_words(text: str, phrase: str) -> bool:
    """Whole-word, case-insensitive containment of ``phrase`` in ``text``."""
    if not phrase.strip():
        return False
    pattern = r"(?<![\w])" + r"\s+".join(re.escape(w) for w in phrase.lower().split()) + r"(?![\w])"
    return re.search(pattern, (text or "").lower()) is not None


# ----------------------------------------------------------------- cancellation reasons

CANCEL_REASONS = (answers.REASON_NO_LONGER_NEEDED, answers.REASON_MISTAKE)

_MISTAKE = re.compile(
    r"mistake|mistaken|by accident|accident(al)?ly|didn'?t mean|did not mean|"
    r"wrong (item|order|product|one|size|colou?r|thing|address)|ordered (it |this )?twice|"
    r"duplicate|in error|by error|misclick|erroneous|not what i (wanted|meant)",
    re.IGNORECASE,
)
_NOT_NEEDED = re.compile(
    r"no longer|don'?t (really )?(need|want)|do not (need|want)|dont (need|want)|"
    r"not needed|no need|needless|not necessary|unnecessary|changed my mind|change of mind|"
    r"(need|want) it any ?more|(need|want) them any ?more|won'?t (need|use)|will not (need|use)|"
    r"not interested|not (going to|gonna) use|have (one|it) already|already (have|bought|got)",
    re.IGNORECASE,
)


def cancel_reason_from_text(text: Any) -> str | None:
    """Map free text to one of ``CANCEL_REASONS`` (None when it fits neither); Chinese
    reasons by ``bot.lang.answers.REASON_PHRASES`` ("买错了", "不需要了")."""
    if not isinstance(text, str) or not text.strip():
        return None
    lowered = text.strip().lower()
    if lowered in CANCEL_REASONS:
        return lowered
    if _MISTAKE.search(lowered):
        return answers.REASON_MISTAKE
    if _NOT_NEEDED.search(lowered):
        return answers.REASON_NO_LONGER_NEEDED
    return answers.reason_in(text)


# ---------------------------------------------------------------------------- address


def same_address(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    keys = ("address1", "address2", "city", "state", "zip")
    return all(
        str(a.get(k) or "").strip().lower() == str(b.get(k) or "").strip().lower() for k in keys
    )


# ---------------------------------------------------------------------------- no order

_NO_ORDER = re.compile(
    r"^\s*(no|none|nope|n/?a|no order|no order id|not an order|no specific order|"
    r"it'?s not about an order|not about an order|not about any order|not order related|"
    r"i don'?t have (one|an order|an order id|it)|don'?t have (one|it)|"
    r"without (an )?order|general)\s*[.!]*\s*$",
    re.IGNORECASE,
)


def says_no_order(text: str) -> bool:
    """The shopper has no order to name ("no order", "没有订单号", "不记得单号了")."""
    return (
        bool(_NO_ORDER.match(text or ""))
        or contains_words(text, "no order")
        or answers.says_no_order(text)
    )


# ------------------------------------------------------------------- choosing items


@dataclass(frozen=True)
class ItemView:
    """One line of an order, as the matching functions need it."""

    item_id: str
    product_id: str
    name: str
    options: Mapping[str, Any]


@dataclass
class ItemMatch:
    """Which order lines a message names. ``ambiguous`` holds product names the shopper
    named that fit several different items (say, two jigsaw puzzles in other options)."""

    indices: list[int] = field(default_factory=list)
    ambiguous: list[str] = field(default_factory=list)
    everything: bool = False


_ALL = re.compile(
    r"\b(all|everything|every ?thing|every item|each item|whole order|entire order|"
    r"all of (it|them)|both)\b",
    re.IGNORECASE,
)


def _singular(word: str) -> str:
    if len(word) > 3 and word.endswith("es") and word[:-2].endswith(("sh", "ch", "x", "ss")):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _norm_words(text: str) -> list[str]:
    return [_singular(w) for w in re.findall(r"[a-z0-9]+", (text or "").lower().replace("-", ""))]


def _contains_seq(haystack: Sequence[str], needle: Sequence[str]) -> bool:
    n = len(needle)
    return n > 0 and any(
        list(haystack[i : i + n]) == list(needle) for i in range(len(haystack) - n + 1)
    )


def _name_score(text_words: Sequence[str], name: str) -> int:
    words = _norm_words(name)
    if _contains_seq(text_words, words):
        return 2
    if words and words[-1] in text_words:
        return 1
    return 0


def _value_mentioned(text: str, text_words: Sequence[str], key: str, value: Any) -> bool:
    """Is this option value clearly in the text? Short or numeric values ("M", "9",
    "no") only count next to their option name ("size M") or, for sizes, in capitals."""
    v = str(value).strip()
    if not v:
        return False
    v_words = _norm_words(v)
    k_words = _norm_words(key)
    with_key = _contains_seq(text_words, k_words + v_words) or _contains_seq(
        text_words, v_words + k_words
    )
    if with_key:
        return True
    weak = len(v) <= 2 or v.isdigit() or v.lower() in {"yes", "no", "none", "not resistant"}
    if weak:
        return bool(
            key == "size"
            and v.isalpha()
            and re.search(rf"(?<![\w']){re.escape(v)}(?![\w'])", text or "")
        )
    return _contains_seq(text_words, v_words)


def match_items(text: str, items: Sequence[ItemView], *, allow_all: bool = True) -> ItemMatch:
    """Which of ``items`` the text names: "all"/"everything", item ids, product names
    ("the water bottle", "the chair"), narrowed by option values ("the blue one")."""
    result = ItemMatch()
    if not items:
        return result
    ids = set(find_item_ids(text))
    if ids:
        result.indices = [i for i, it in enumerate(items) if it.item_id in ids]
        if result.indices:
            return result
    if (
        allow_all
        and (_ALL.search(text or "") or answers.says_all_items(text))
        and not (contains_words(text, "both") and len({it.item_id for it in items}) > 2)
    ):
        result.indices = list(range(len(items)))
        result.everything = True
        return result

    words = _norm_words(text)
    scores = [_name_score(words, it.name) for it in items]
    best_name = max(scores)
    if best_name == 0:
        # No product named: try options alone ("the blue one").
        opt = [
            sum(_value_mentioned(text, words, k, v) for k, v in it.options.items()) for it in items
        ]
        top = max(opt)
        if top == 0:
            return result
        chosen = [i for i, s in enumerate(opt) if s == top]
        if len({items[i].item_id for i in chosen}) == 1:
            result.indices = chosen
        else:
            result.ambiguous = sorted({items[i].name for i in chosen})
        return result

    named = [i for i, s in enumerate(scores) if s > 0]
    # "electric kettle" names the Electric Kettle, not also the Tea Kettle that merely
    # shares the head noun: a head-noun hit yields to a full-name hit on the same noun.
    full_heads = {_norm_words(items[j].name)[-1] for j in named if scores[j] == 2}
    by_product: dict[str, list[int]] = {}
    for i in named:
        if scores[i] == 2 or _norm_words(items[i].name)[-1] not in full_heads:
            by_product.setdefault(items[i].name, []).append(i)
    for name, idxs in by_product.items():
        distinct = {items[i].item_id for i in idxs}
        if len(distinct) == 1:
            result.indices.extend(idxs)
            continue
        opt = [
            sum(_value_mentioned(text, words, k, v) for k, v in items[i].options.items())
            for i in idxs
        ]
        top = max(opt)
        chosen = [idxs[n] for n, s in enumerate(opt) if s == top]
        if top > 0 and len({items[i].item_id for i in chosen}) == 1:
            result.indices.extend(chosen)
        else:
            result.ambiguous.append(name)
    result.indices.sort()
    return result


# ---------------------------------------------------------------- choosing a variant


@dataclass(frozen=True)
class VariantView:
    item_id: str
    options: Mapping[str, Any]


@dataclass
class VariantMatch:
    """``chosen`` when the text names exactly one variant; else ``candidates`` (several
    fit), or ``mentioned`` without candidates (nothing available fits what was asked)."""

    chosen: VariantView | None = None
    candidates: list[VariantView] = field(default_factory=list)
    mentioned: dict[str, list[str]] = field(default_factory=dict)


def match_variant(
    text: str,
    current: Mapping[str, Any],
    variants: Iterable[VariantView],
    catalogue: Iterable[VariantView] = (),
) -> VariantMatch:
    """Pick the variant the text asks for among ``variants`` (the available alternatives).

    Mentioned option values ("size L", "in red", "the 750ml one") must all hold; among
    the variants that satisfy them, the one that keeps most of the current options wins.
    A tie is ambiguous. Values equal to the current ones are ignored when the shopper
    also names a different value for that option ("from black to red"). ``catalogue``
    (every variant of the product, in stock or not) widens what counts as a mention, so
    asking for an out-of-stock option is reported as such rather than as gibberish.
    """
    pool = list(variants)
    out = VariantMatch()
    ids = set(find_item_ids(text))
    for v in pool:
        if v.item_id in ids:
            out.chosen = v
            return out
    words = _norm_words(text)
    mentioned: dict[str, set[str]] = {}
    known = pool + list(catalogue)
    keys = list(current) + sorted({k for v in known for k in v.options} - set(current))
    for key in keys:
        values = {str(v.options[key]) for v in known if v.options.get(key) is not None}
        if current.get(key) is not None:
            values.add(str(current[key]))
        for value in values:
            if _value_mentioned(text, words, key, value):
                mentioned.setdefault(key, set()).add(value)
    # "from black to red": the current value yields to another value of the same option
    for key, values in mentioned.items():
        cur = str(current.get(key)) if current.get(key) is not None else None
        if cur in values and len(values) > 1:
            values.discard(cur)
    out.mentioned = {k: sorted(v) for k, v in mentioned.items()}
    if not mentioned:
        return out

    def fits(v: VariantView) -> bool:
        # a value named for several options (say "black" as colour and dial colour)
        # needs to hold for at least one of them
        by_value: dict[str, bool] = {}
        for key, values in mentioned.items():
            for value in values:
                ok = str(v.options.get(key)).lower() == value.lower()
                by_value[value] = by_value.get(value, False) or ok
        return all(by_value.values())

    fitting = [v for v in pool if fits(v)]
    if not fitting:
        return out

    def kept(v: VariantView) -> int:
        return sum(1 for k, val in current.items() if v.options.get(k) == val)

    best = max(kept(v) for v in fitting)
    top = [v for v in fitting if kept(v) == best]
    if len(top) == 1:
        out.chosen = top[0]
    else:
        out.candidates = top
    return out
