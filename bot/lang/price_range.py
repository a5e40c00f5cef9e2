"""Price ranges a shopper states, in English or Chinese: ``find_price_range``.

The knowledge answerer (``bot.knowledge.filters``) and the recommender (``bot.recommend``)
both read prices here, with one rule.

English: "under $30", "between $50 and $100", "over 20 euros", "$20-$50". Only amounts
written as money count (``$30``, ``30 dollars``, ``€30``, ``30 EUR``; any currency is read
as the store's), so "within 30 days" is no price. With ``bare_amounts=True`` (a
recommendation request, where a number after "under" or "between" can only be a budget)
plain numbers count as well ("between 20 and 50", "under 100 in black"), unless a unit or
another word that does not join phrases follows ("under 2 kg", "between 8 and 10 inches").

Chinese: amounts are read by ``parse_chinese_number`` ("两百", "1.5千", "3万"), with or
without ``元``/``块``/``块钱``/``¥``; a bound is a word after the amount ("500元以下",
"两百以内", "1000以上", "100元起" with its currency: "一起" is no price) or before it ("不超过200块", "低于100元", "最多三百", "至少50"),
a range two amounts joined by 到/至/-/~ or "在…和…之间" ("100到300元之间", "100-300块").
What follows the amount must not be another unit: "30天以内", "不超过3件", "5公斤以下"
state no price; nor may a measure word come before a bare number ("尺码8-10", "评分4以上").
A range of bare numbers needs "之间" or a price word before it ("价格100-300"), as
"8-10" alone is no price. Chinese amounts count in either mode: a bound word right after a number
with no unit between says money in a shop ("两百以内"). Where a text states both an
English and a Chinese range, the English one is read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.lang.numbers import NUMBER, parse_chinese_number
from bot.lang.zh_entities import fold_width

__all__ = ["PriceRange", "find_price_range"]

# ----------------------------------------------------------------------------- English

# an amount: digits with an optional comma every three ("1,500") and cents, or a "k" for
# thousands ("2k"); ``_amount`` reads it
_NUMBER = r"(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d{1,2})?(?:k\b)?"
_MONEY = (
    r"(?:(?:[$€£]|\b(?:usd|eur|gbp)\s?)\s?(" + _NUMBER + r")"
    r"|(" + _NUMBER + r")\s?(?:dollars|usd|bucks|euros?|eur|pounds|gbp|€|£)(?!\w))"
)
# a plain number, when the caller accepts one: not part of a longer number or an id, and
# followed by the end, a punctuation mark or a word that joins phrases; any other word
# after it is taken for a unit or an option ("2 kg", "10 inches", "5 stars", "size 10 shoes")
_JOINING = r"(?:and|or|to|for|in|with|please|that|which|but|each|total|tops|max)\b"
_BARE = (
    r"(?<![\w.,#$€£])(" + _NUMBER + r")"
    r"(?![\w%]|\.\d|\s*-?\s*(?!" + _JOINING + r")[^\W\d_])"
)
_AT_MOST_WORDS = (
    r"\b(?:under|below|less than|cheaper than|up to|at most|max(?:imum)?|no more than|"
    r"within|not over|under budget of|budget of)\s+"
)
_AT_LEAST_WORDS = r"\b(?:over|above|more than|at least|min(?:imum)?|pricier than|starting at)\s+"


def _range_patterns(amount: str) -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    """(between, at most, at least) for ``amount``; a range without "between" or "from"
    ("$20-$50") only with money on both ends, as "size 8-10" is no price."""
    between = re.compile(
        r"\b(?:between|from)\s+"
        + amount
        + r"\s*(?:and|to|-)\s*"
        + amount
        + r"|"
        + _MONEY
        + r"\s*(?:-|to)\s*"
        + _MONEY,
        re.IGNORECASE,
    )
    return (
        between,
        re.compile(_AT_MOST_WORDS + amount, re.IGNORECASE),
        re.compile(_AT_LEAST_WORDS + amount, re.IGNORECASE),
    )


_MONEY_RANGE = _range_patterns(_MONEY)
# with bare amounts: a money amount, or a plain number as above
_ANY_RANGE = _range_patterns(r"(?:" + _MONEY + r"|" + _BARE + r")")


@dataclass(frozen=True)
class PriceRange:
    """Bounds a shopper stated, in the store's currency; ``None``: no bound that side."""

    low: float | None = None
    high: float | None = None

    @property
    def stated(self) -> bool:
        return self.low is not None or self.high is not None

    def holds(self, price: float) -> bool:
        return (self.low is None or price >= self.low) and (self.high is None or price <= self.high)


def _amount(said: str) -> float:
    """``"1,500"`` -> 1500.0, ``"2k"`` -> 2000.0, ``"19.90"`` -> 19.9."""
    digits = said.replace(",", "")
    if digits[-1:] in ("k", "K"):
        return float(digits[:-1]) * 1000
    return float(digits)


def _amounts(m: re.Match[str]) -> list[float]:
    return [_amount(g) for g in m.groups() if g is not None]


def _english_range(text: str, *, bare_amounts: bool) -> PriceRange:
    between, at_most, at_least = _ANY_RANGE if bare_amounts else _MONEY_RANGE
    found = between.search(text)
    if found:
        values = _amounts(found)
        if len(values) == 2:
            return PriceRange(min(values), max(values))
    high = at_most.search(text)
    low = at_least.search(text)
    return PriceRange(
        _amounts(low)[0] if low else None,
        _amounts(high)[0] if high else None,
    )


# ----------------------------------------------------------------------------- Chinese

_YUAN = r"(?:\s?(?:元|块钱|块|rmb|人民币))?"
_CN_AMOUNT = rf"(?:[¥￥]\s?)?({NUMBER}){_YUAN}"
# what may follow an amount: the end, punctuation, a bound or joining word, "的", or Latin
# text; never another Han unit ("天", "件", "公斤")
_CN_AFTER = r"(?=$|[\s，。,.!！?？、;；:：)）]|以|之|左右|上下|内|的|和|或|[A-Za-z])"
_CN_BETWEEN = re.compile(
    rf"(?:在|从)?\s?{_CN_AMOUNT}\s?(?:到|至|-|~|～|—|和|与)\s?{_CN_AMOUNT}{_CN_AFTER}"
    r"(?:\s?(?:之间|之内|以内|范围))?",
    re.IGNORECASE,
)
_CN_AT_MOST_AFTER = re.compile(rf"{_CN_AMOUNT}\s?(?:以下|以内|之内|内|及以下)", re.IGNORECASE)
# "(?<!不)": "不超过" is at most, though "超过" is at least
_CN_AT_MOST_BEFORE = re.compile(
    rf"(?<!不)(?:不超过|不超出|不高于|不到|低于|少于|小于|最多|顶多|最高|预算|便宜于)\s?{_CN_AMOUNT}{_CN_AFTER}",
    re.IGNORECASE,
)
_CN_AT_LEAST_AFTER = re.compile(
    rf"{_CN_AMOUNT}\s?(?:以上|及以上)"
    rf"|(?:[¥￥]\s?({NUMBER})|({NUMBER})\s?(?:元|块钱|块))\s?起",  # "100元起", not "一起"
    re.IGNORECASE,
)
_CN_AT_LEAST_BEFORE = re.compile(
    rf"(?<!不)(?:不低于|不少于|高于|超过|多于|大于|至少|最少|最低)\s?{_CN_AMOUNT}{_CN_AFTER}",
    re.IGNORECASE,
)


def _cn_amount(m: re.Match[str] | None, group: int | None = None) -> float | None:
    """The amount of group ``group``, or of the first group that matched."""
    if m is None:
        return None
    said = m.group(group) if group else next((g for g in m.groups() if g is not None), None)
    value = parse_chinese_number(said) if said else None
    return None if value is None else float(value)


_MONEY_SIGN = re.compile(r"[¥￥元块]|rmb|人民币", re.IGNORECASE)
_PRICE_WORD = re.compile(r"价|预算|钱|花")
# a number after these measures something else ("尺码8-10", "评分4以上")
_OTHER_MEASURE = re.compile(
    r"(?:尺码|尺寸|码数|号码|鞋码|容量|重量|长度|宽度|高度|评分|星级|分数|size|型号)\s?$",
    re.IGNORECASE,
)


def _is_price(text: str, m: re.Match[str], *, needs_cue: bool) -> bool:
    """An amount written as money, or a bare one not measuring something else; a range of
    bare numbers (``needs_cue``) also needs "之间" or a price word before it."""
    if _MONEY_SIGN.search(m.group()):
        return True
    if _OTHER_MEASURE.search(text[max(0, m.start() - 6) : m.start()]):
        return False
    return (
        not needs_cue
        or "之间" in m.group()
        or bool(_PRICE_WORD.search(text[max(0, m.start() - 8) : m.start()]))
    )


def _bound(text: str, *patterns: re.Pattern[str]) -> float | None:
    """The amount of the earliest match of ``patterns`` that is a price."""
    found = [m for p in patterns for m in p.finditer(text) if _is_price(text, m, needs_cue=False)]
    return _cn_amount(min(found, key=lambda m: m.start())) if found else None


def _chinese_range(text: str) -> PriceRange:
    text = fold_width(text)
    for between in _CN_BETWEEN.finditer(text):
        a, b = _cn_amount(between, 1), _cn_amount(between, 2)
        if a is not None and b is not None and _is_price(text, between, needs_cue=True):
            return PriceRange(min(a, b), max(a, b))
    return PriceRange(
        _bound(text, _CN_AT_LEAST_AFTER, _CN_AT_LEAST_BEFORE),
        _bound(text, _CN_AT_MOST_AFTER, _CN_AT_MOST_BEFORE),
    )


def find_price_range(text: str, *, bare_amounts: bool = False) -> PriceRange:
    """The price bounds ``text`` states (see the module doc); an empty range when none."""
    english = _english_range(text, bare_amounts=bare_amounts)
    return english if english.stated else _chinese_range(text)
