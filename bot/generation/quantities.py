"""Numbers, durations and negation as Clerk reads them in answers and policies: shared by
the fact guard (``bot.generation.guard``) and the yes/no rule (``bot.generation.yesno``).

"30", "30-day" and "thirty" are one number; "5 to 7 business days" is two durations in
business days; "9:00" is also the number 9.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

NUMBER = re.compile(r"\b\d+(?:,\d{3})*(?:\.\d+)?(?!\d)")  # also in "32GB", "6pm"
CLOCK = re.compile(r"\b\d{1,2}:\d{2}\b")

NUMBER_WORDS = {
    "two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8,
    "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "fifteen": 15, "twenty": 20,
    "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60, "ninety": 90, "hundred": 100,
    "once": 1, "twice": 2, "single": 1, "one": 1, "a": 1, "an": 1,
}  # fmt: skip
WORD_NUMBER = re.compile(
    r"\b("
    + "|".join(k for k in NUMBER_WORDS if k not in ("a", "an", "one", "once", "single"))
    + r")\b",
    re.IGNORECASE,
)

_UNIT = r"(?:(business|working|calendar)[\s-]+)?(minute|hour|day|week|month|year)s?\b"
_NUM = r"(\d+(?:\.\d+)?|" + "|".join(NUMBER_WORDS) + r")"
DURATION = re.compile(
    r"\b" + _NUM + r"(?:\s*(?:-|\u2013|to|or)\s*" + _NUM + r")?[\s-]+" + _UNIT, re.IGNORECASE
)


NEGATION = re.compile(
    r"\b(?:not|no|never|cannot|can't|won't|don't|doesn't|isn't|aren't|nor|without|unable"
    r"|no longer|nothing|none|n't)\b",
    re.IGNORECASE,
)


def to_decimal(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", ""))
    except InvalidOperation:
        return None


def num_value(token: str) -> Decimal | None:
    word = token.lower()
    if word in NUMBER_WORDS:
        return Decimal(NUMBER_WORDS[word])
    return to_decimal(token)


def unit_name(qualifier: str | None, unit: str) -> str:
    unit = unit.lower()
    return f"{qualifier.lower()} {unit}" if qualifier else unit


def numbers_in(text: str) -> set[Decimal]:
    """Every number a text states: digits (also inside "32GB", "5-7", "6pm") and number
    words; a time of day also as its hour on a 12-hour clock."""
    out: set[Decimal] = set()
    for m in NUMBER.finditer(text):
        v = to_decimal(m.group(0))
        if v is not None:
            out.add(v.normalize())
    for m in WORD_NUMBER.finditer(text):
        out.add(Decimal(NUMBER_WORDS[m.group(1).lower()]))
    for m in CLOCK.finditer(text):  # "18:00" is also the number 18, and 6 (p.m.)
        hour = int(m.group(0).split(":")[0])
        out.update({Decimal(hour), Decimal(hour - 12 if hour > 12 else hour)})
    return out


@dataclass(frozen=True)
class DurationSpan:
    """One duration as written: "5 to 7 business days" is (5, 7, "business day"), "30
    days" is (30, 30, "day"); ``text`` is the words (kept only when asked for)."""

    low: Decimal
    high: Decimal
    unit: str
    text: str = field(default="", compare=False)


def duration_spans(text: str, *, with_text: bool = False) -> set[DurationSpan]:
    """Every duration a text states, ranges kept whole ("a week": no number, left out)."""
    out: set[DurationSpan] = set()
    for m in DURATION.finditer(text):
        unit = unit_name(m.group(3), m.group(4))
        low = None if m.group(1).lower() in ("a", "an") else num_value(m.group(1))
        high = num_value(m.group(2)) if m.group(2) else low
        if low is None or high is None:
            continue
        words = m.group(0) if with_text else ""
        out.add(DurationSpan(low.normalize(), high.normalize(), unit, words))
    return out


def durations_in(text: str) -> set[tuple[Decimal, str]]:
    """Every (number, unit) a text states: "5 to 7 business days" gives 5 and 7."""
    out: set[tuple[Decimal, str]] = set()
    for m in DURATION.finditer(text):
        unit = unit_name(m.group(3), m.group(4))
        for token in (m.group(1), m.group(2)):
            if token is None:
                continue
            v = num_value(token)
            if v is not None:
                out.add((v.normalize(), unit))
    return out
