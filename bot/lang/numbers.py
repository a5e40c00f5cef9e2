"""Numbers written the Chinese way: ``parse_chinese_number``.

It reads Chinese numerals ("一百二十五" 125, "十五" 15, "两" 2, "三万" 30000, "一亿三千万"
130000000, "一百零五" 105), the financial forms ("壹佰贰拾伍"), the spoken shortening of a
final unit ("三千五" 3500, "两万五" 25000, "一百五" 150), a decimal part after ``点``
("九十九点五" 99.5), digit-by-digit numbers ("二〇二六" 2026, "幺三八" 138), Arabic digits
(half-width or full-width, with "," thousands separators: "1,299") and both mixed ("3万"
30000, "1.5万" 15000, "2万5千" 25000). The value is a ``Decimal`` (exact for prices);
anything else is None ("万一", "一下", "", "abc").

``NUMBER`` is the regular expression of a candidate number in free text; the entity finders
(``bot.lang.zh_entities``) match it, then parse it and drop what does not parse.
"""

from __future__ import annotations

import re
from decimal import Decimal

DIGITS = {
    "零": 0, "〇": 0, "○": 0, "一": 1, "壹": 1, "幺": 1, "二": 2, "贰": 2, "貳": 2, "两": 2,
    "兩": 2, "三": 3, "叁": 3, "參": 3, "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6,
    "陸": 6, "七": 7, "柒": 7, "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
BIG_UNITS = {"万": 10**4, "萬": 10**4, "亿": 10**8, "億": 10**8}

_DIGIT_CHARS = "".join(DIGITS)
_NUMERAL_CHARS = _DIGIT_CHARS + "".join(UNITS) + "".join(BIG_UNITS)
#: A candidate number: Arabic digits (thousands commas, a decimal part) or a numeral, then
#: more digits, numerals or unit characters ("3万5千"), then an optional ``点`` part.
NUMBER = (
    rf"(?:\d{{1,3}}(?:,\d{{3}})+(?!\d)|\d+|[{_NUMERAL_CHARS}])"
    rf"(?:\.\d+)?(?:[{_NUMERAL_CHARS}]|\d+(?:\.\d+)?)*"
    rf"(?:点[{_DIGIT_CHARS}\d]+)?"
)
_TOKEN = re.compile(rf"\d+(?:\.\d+)?|[{_NUMERAL_CHARS}]")
_ARABIC = re.compile(r"\d{1,3}(?:,\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?")


def _decimal(digits: str) -> Decimal:
    # int() and Decimal() read full-width digits too; normalise them for a clean repr
    return Decimal("".join(str(int(c)) if c.isdigit() else c for c in digits))


def _fraction(text: str) -> Decimal | None:
    """The digits after ``点``, one by one ("五" -> 0.5, "05" -> 0.05)."""
    out = []
    for c in text:
        if c in DIGITS:
            out.append(str(DIGITS[c]))
        elif c.isdigit():
            out.append(str(int(c)))
        else:
            return None
    return Decimal("0." + "".join(out)) if out else None


def parse_chinese_number(text: str) -> Decimal | None:
    """The value of a number written in Chinese, Arabic digits or both (module docstring);
    None when ``text`` (surrounding spaces allowed) is not one number."""
    text = text.strip()
    if not text:
        return None
    if _ARABIC.fullmatch(text):
        return _decimal(text.replace(",", ""))
    whole, point, frac = text.partition("点")
    fraction = Decimal(0)
    if point:
        parsed = _fraction(frac)
        if parsed is None:
            return None
        fraction = parsed
    value = _integer_part(whole)
    return None if value is None else value + fraction


def _integer_part(text: str) -> Decimal | None:
    tokens = _TOKEN.findall(text)
    if not tokens or "".join(tokens) != text:
        return None
    if len(tokens) > 1 and all(t in DIGITS for t in tokens):  # "二〇二六": digit by digit
        return Decimal("".join(str(DIGITS[t]) for t in tokens))
    total = Decimal(0)  # what the big units (万, 亿) have closed
    section = Decimal(0)  # below the last big unit
    number: Decimal | None = None  # a digit waiting for its unit
    after_zero = False  # a 零 came since the last unit: "一百零五" is 105, not 150
    last_unit = 0  # the unit just before a trailing digit ("三千五": 千)
    previous = ""  # the kind of the previous token
    for token in tokens:
        if token in DIGITS or token[0].isdigit():
            value = Decimal(DIGITS[token]) if token in DIGITS else _decimal(token)
            if number is not None and not (number == 0 or previous == "zero"):
                return None  # two digits in a row, not digit by digit: "三五百"
            after_zero = after_zero or value == 0
            number = value
            previous = "zero" if value == 0 else "digit"
        elif token in UNITS:
            unit = UNITS[token]
            if number is None:
                if previous == "" or previous == "big" or unit == 10:
                    number = Decimal(1)  # "十五", "百分" are read as 一十五, 一百
                else:
                    return None  # "百千"
            section += number * unit
            number, last_unit, after_zero, previous = None, unit, False, "unit"
        else:
            big = BIG_UNITS[token]
            closed = section + (number or 0)
            if closed == 0:
                return None  # "万一", "亿"
            total = (total + closed) * big if big > 10**4 else total + closed * big
            section, number, after_zero, previous = Decimal(0), None, False, "big"
            last_unit = big
    if number is not None:
        if previous == "digit" and last_unit and not after_zero and len(tokens) > 1:
            number *= Decimal(last_unit) / 10  # the shortened final unit: "三千五", "两万五"
        section += number
    return total + section
