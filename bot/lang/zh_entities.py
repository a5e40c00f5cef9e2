"""What a Chinese shopper's message (or a Chinese answer) states: order ids, mainland phone
numbers, prices, quantities and durations.

Each finder returns frozen dataclasses in text order, each with the span of what was
written (``text[start:end]``) and its value read into a type (a ``Decimal`` amount, an
``int`` count, a unit name). ``find_entities`` runs them all and drops overlaps (a duration
"3个月" is not also a quantity "3个"). Numbers are read by ``parse_chinese_number``, so
"九十九元", "99元" and "¥99" are the same price and "三十天" and "30天" the same duration.

Chinese input methods often type letters, digits and signs full-width ("Ｗ２６１１３４０",
"１３８１２３４５６７８", "＃"): every finder reads the text with them folded to ASCII, one
character for one, so spans still point into the text as given. The full-width comma
"，" is left alone: in Chinese it separates clauses, never thousands.

Rules:

- **Order id**: the store's ids as ``bot.text_rules`` reads them ("#W2611340", "W2611340"
  right after a Chinese word, "W-2611340"), and 7 bare digits after an order word
  ("订单号是2611340", "单号：2611340", "订单 2611340"); the value is the canonical
  ``"#W2611340"`` of ``bot.text_rules.normalise_order_id``, so the store actions need no
  Chinese rule.
- **Phone**: mainland mobile numbers, 11 digits ``1[3-9]xxxxxxxxx``, optionally split
  3-4-4 by spaces or hyphens and prefixed by ``+86``/``0086``/``86``; not inside a longer
  run of digits. ``value`` is the 11 national digits, ``e164`` ``"+86..."``.
- **Price**: a number after ``¥``/``￥``/``RMB``/``CNY``/``人民币``, or before ``元``,
  ``块``/``块钱`` (``块`` only as money: followed by ``钱``, ``的``, ``左右``, the jiao
  shortening "三块五", or no Chinese at all; "两块手表" is no price), with an optional
  ``N角``/``N毛`` ("两块五毛" is 2.5). "99美元" and "99日元" are not yuan. Currency ``CNY``.
- **Quantity**: a whole number and a measure word ("两件", "3个", "一双", "五盒"), not an
  ordinal ("第一个") nor part of a duration ("3个月").
- **Duration**: a number, an optional ``个`` and a unit: ``天``/``日`` (day; ``日`` not in a
  date "3月5日"), ``工作日`` (business day), ``周``/``星期``/``礼拜`` (week; "周一" is a
  weekday, not a week), ``个月`` (month: "3月" is March), ``年`` (year; a number of 1,000
  or more is a calendar year), ``小时``/``钟头`` (hour), ``分钟`` (minute). A range
  ("3-5个工作日", "三到五天", "7至15天") gives ``amount`` 3 and ``upto`` 5; a half
  ("半个月", "一个半月", "半年") gives a fractional amount.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from bot.lang.numbers import NUMBER, parse_chinese_number
from bot.lang.script import HAN
from bot.text_rules import find_order_ids as _find_marked_order_ids
from bot.text_rules import normalise_order_id

# --------------------------------------------------------------------------- the values


@dataclass(frozen=True)
class OrderId:
    value: str  # canonical, "#W2611340"
    start: int
    end: int


@dataclass(frozen=True)
class Phone:
    value: str  # the 11 national digits, "13812345678"
    e164: str  # "+8613812345678"
    start: int
    end: int


@dataclass(frozen=True)
class Price:
    amount: Decimal
    start: int
    end: int
    currency: str = "CNY"


@dataclass(frozen=True)
class Quantity:
    count: int
    unit: str  # the measure word as written: 件, 个, 双...
    start: int
    end: int


@dataclass(frozen=True)
class Duration:
    amount: Decimal
    unit: str  # day | business_day | week | month | year | hour | minute
    start: int
    end: int
    upto: Decimal | None = None  # the upper end of a range ("3-5天": amount 3, upto 5)


ZhEntity = OrderId | Phone | Price | Quantity | Duration

#: Full-width ASCII (U+FF01..U+FF5E) and the ideographic space, folded one for one; not
#: the full-width comma.
_WIDTH = {c: c - 0xFEE0 for c in range(0xFF01, 0xFF5F) if c != 0xFF0C} | {0x3000: 0x20}


def fold_width(text: str) -> str:
    """``text`` with full-width letters, digits and signs (not "，") made ASCII; the same
    length, so a span into one is a span into the other."""
    return text.translate(_WIDTH)


# ---------------------------------------------------------------------------- order ids

_ORDER_CUE = re.compile(
    r"(?:订单号码|订单编号|订单号|订单|单号)(?:是|为|:|：|\s)*(?:[#＃]\s?)?(\d{7})(?!\d)"
)


def find_order_ids(text: str) -> list[OrderId]:
    """Order ids in Chinese (or mixed) text, canonical (module docstring)."""
    text = fold_width(text)
    found = [OrderId(m.value, m.start, m.end) for m in _find_marked_order_ids(text)]
    for m in _ORDER_CUE.finditer(text):
        value = normalise_order_id(m.group(1))
        if value and not any(o.start <= m.start(1) < o.end for o in found):
            found.append(OrderId(value, m.start(1), m.end()))
    return sorted(found, key=lambda o: o.start)


# ------------------------------------------------------------------------------- phones

_PHONE = re.compile(
    r"(?<![\d+])(?:(?:\+|00)?86[\s-]?)?"  # the country code, optional
    r"(1[3-9]\d)[\s-]?(\d{4})[\s-]?(\d{4})(?!\d)"
)


def find_phones(text: str) -> list[Phone]:
    """Mainland mobile numbers (module docstring)."""
    out = []
    for m in _PHONE.finditer(fold_width(text)):
        national = "".join(m.groups())
        out.append(Phone(national, "+86" + national, m.start(), m.end()))
    return out


# ------------------------------------------------------------------------------- prices

_CN_DIGITS = "零一二两三四五六七八九"
_PRICE_BEFORE = re.compile(
    rf"(?:[¥￥]|RMB|CNY|人民币)\s?({NUMBER})(?:\s?(?:元|块钱|块))?", re.IGNORECASE
)
_PRICE_AFTER = re.compile(
    rf"(?<![\d.,])(?P<n>{NUMBER})\s?"
    rf"(?:元|块钱|块(?=钱|的|左右|[{_CN_DIGITS}]|[^{HAN}]|$))"
    rf"(?:(?P<jiao>[{_CN_DIGITS}\d])(?:[角毛]|(?![{HAN}\d])))?"
)  # "99美元", "99日元": a word between the number and 元, so no match


def find_prices(text: str) -> list[Price]:
    """Prices in yuan (module docstring)."""
    text = fold_width(text)
    found: list[Price] = []
    for m in _PRICE_BEFORE.finditer(text):
        amount = parse_chinese_number(m.group(1))
        if amount is not None:
            found.append(Price(amount, m.start(), m.end()))
    for m in _PRICE_AFTER.finditer(text):
        if any(p.start <= m.start() < p.end for p in found):
            continue  # "¥99元" was read from its ¥
        amount = parse_chinese_number(m.group("n"))
        if amount is None:
            continue
        if m.group("jiao"):  # "三块五", "99元5角"
            amount += (parse_chinese_number(m.group("jiao")) or Decimal(0)) / 10
        found.append(Price(amount, m.start(), m.end()))
    return sorted(found, key=lambda p: p.start)


# ------------------------------------------------------------------------------ durations

_DURATION_UNITS = (
    ("个工作日", "business_day"),
    ("工作日", "business_day"),
    ("个小时", "hour"),
    ("小时", "hour"),
    ("个钟头", "hour"),
    ("钟头", "hour"),
    ("分钟", "minute"),
    ("个星期", "week"),
    ("星期", "week"),
    ("个礼拜", "week"),
    ("礼拜", "week"),
    ("周", "week"),
    ("个月", "month"),
    ("天", "day"),
    ("日", "day"),
    ("年", "year"),
)
_UNIT_BY_WORD = dict(_DURATION_UNITS)
_UNIT_WORDS = "|".join(re.escape(w) for w, _ in _DURATION_UNITS)
_HALFABLE = "个月|个小时|小时|个钟头|钟头|个星期|个礼拜|天|年|周"
_RANGE = r"\s*(?:-|~|～|–|—|到|至)\s*"
_DURATION = re.compile(
    rf"(?<!周)(?<!星期)(?<!礼拜)(?<![第\d.,{_CN_DIGITS}十百千万])"
    rf"(?:(?P<half>半)(?P<hunit>{_HALFABLE})"
    rf"|(?P<n>{NUMBER})(?:{_RANGE}(?P<upto>{NUMBER}))?\s?"
    rf"(?:(?P<ge>个)半(?P<gunit>月|小时|钟头|星期|礼拜)|(?P<unit>{_UNIT_WORDS})(?P<yhalf>半)?))"
)
_DATE_BEFORE = re.compile(r"月\s?$")


def find_durations(text: str) -> list[Duration]:
    """Durations (module docstring)."""
    text = fold_width(text)
    out = []
    for m in _DURATION.finditer(text):
        if m.group("half"):
            unit = _UNIT_BY_WORD[m.group("hunit")]
            out.append(Duration(Decimal("0.5"), unit, m.start(), m.end()))
            continue
        amount = parse_chinese_number(m.group("n"))
        upto = parse_chinese_number(m.group("upto")) if m.group("upto") else None
        if amount is None or (m.group("upto") and upto is None):
            continue
        if m.group("gunit"):  # "一个半月"
            unit = _UNIT_BY_WORD["个" + m.group("gunit")]
            out.append(Duration(amount + Decimal("0.5"), unit, m.start(), m.end()))
            continue
        word = m.group("unit")
        unit = _UNIT_BY_WORD[word]
        if word == "日" and _DATE_BEFORE.search(text[: m.start()]):
            continue  # "3月5日" is a date
        if word == "年" and amount >= 1000:
            continue  # "2026年" is a calendar year
        if m.group("yhalf"):  # "一年半", "两天半"
            amount += Decimal("0.5")
        out.append(Duration(amount, unit, m.start(), m.end(), upto))
    return out


# ----------------------------------------------------------------------------- quantities

MEASURE_WORDS = "件个双条台只支瓶盒套包袋本张把副部顶份箱罐枚片颗对辆位"
_QUANTITY = re.compile(
    rf"(?<![第\d.,])({NUMBER})\s?([{MEASURE_WORDS}])(?!月|工作日|小时|钟头|星期|礼拜)"
)


def find_quantities(text: str) -> list[Quantity]:
    """Counts of things (module docstring)."""
    out = []
    for m in _QUANTITY.finditer(fold_width(text)):
        value = parse_chinese_number(m.group(1))
        if value is None or value != value.to_integral_value() or value <= 0:
            continue
        out.append(Quantity(int(value), m.group(2), m.start(), m.end()))
    return out


# ----------------------------------------------------------------------------------- all


def find_entities(text: str) -> list[ZhEntity]:
    """Every entity the finders see, in text order, without overlaps: order ids and phones
    first, then durations, prices, quantities (an earlier kind keeps a contested span)."""
    taken: list[ZhEntity] = []
    for found in (
        find_order_ids(text),
        find_phones(text),
        find_durations(text),
        find_prices(text),
        find_quantities(text),
    ):
        for entity in found:
            if not any(entity.start < t.end and t.start < entity.end for t in taken):
                taken.append(entity)
    return sorted(taken, key=lambda e: e.start)
