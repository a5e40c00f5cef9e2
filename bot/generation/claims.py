"""The pieces of a claim as Clerk reads them in answers and policies: numbers, durations,
counts, order states, negation, opening replies and clauses. Shared by the fact guard
(``bot.generation.guard``) and the yes/no rule (``bot.generation.yesno``), so both read
a sentence the same way.

"30", "30-day" and "thirty" are one number; "5 to 7 business days" is one duration range
in business days; "18:00" is also 6 (p.m.); "it can be cancelled" names no order state,
"a cancelled order" does; "No, only pending orders..." is the reply "no" and then a claim
without negation. All functions are pure and thread-safe.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache

from bot.knowledge.text import normalise, terms

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


# ------------------------------------------------------------------------------- counts

_COUNT = re.compile(
    r"(?<![\d.,$€£])\b(once(?!\s+(?:it|its|it's|your|the|an?|we|you|they|our|that|this)\b)"
    r"|twice|\d+|" + "|".join(k for k in NUMBER_WORDS if len(k) > 2) + r")\b"
    r"(?!\s*(?:-|to|or)?\s*\d)(?![\s-]+(?:business |working |calendar )?"
    r"(?:minute|hour|day|week|month|year)s?\b)(?!\s*[%$.:,]\d)((?:\s+[A-Za-z][\w-]*){0,3})",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Count:
    """A count a text states: ``value``, the lower-case words after it (up to three:
    "two payment methods" -> ("payment", "methods")), and the words as written."""

    value: Decimal
    words: tuple[str, ...]
    text: str

    @property
    def counted(self) -> str:
        """What is counted: "time" for "once"/"twice"/"3 times", else the next word's term."""
        first = self.text.split()[0].lower()
        if first in ("once", "twice") or (self.words and self.words[0].startswith("time")):
            return "time"
        found = terms(" ".join(self.words[:1]))
        return found[0] if found else ""


def counts_in(text: str) -> list[Count]:
    """Counts a text states ("once", "two payment methods", "4 colors"), not prices,
    durations or times of day."""
    out = []
    for m in _COUNT.finditer(text):
        value = num_value(m.group(1))
        if value is not None:
            words = tuple(w.lower() for w in m.group(2).split())
            out.append(Count(value, words, m.group(0).strip()))
    return out


# ------------------------------------------------------------------------- order states

#: Order states every store has, whatever its policy calls quoted values.
ORDER_STATES = frozenset(
    {
        "pending", "processing", "processed", "shipped", "dispatched", "in transit",
        "delivered", "cancelled", "canceled", "on hold",
    }
)  # fmt: skip


@lru_cache(maxsize=256)
def _state_pattern(states: frozenset[str]) -> re.Pattern[str]:
    # a state, not the verb: "it can be cancelled", "gets delivered" say what is done
    names = "|".join(re.escape(s) for s in sorted(states, key=len, reverse=True) if s)
    return re.compile(
        r"(?<!\bbe )(?<!\bbeen )(?<!\bget )(?<!\bgets )(?<![\w-])("
        + (names or "(?!)")
        + r")(?![\w-])",
        re.IGNORECASE,
    )


def states_in(text: str, states: frozenset[str] = ORDER_STATES) -> set[str]:
    """The order states ``text`` names (lower case): "a processed order" names processed;
    a longer state named holds its shorter ones ("pending (items modified)")."""
    found = {m.group(1).lower() for m in _state_pattern(states).finditer(text)}
    return {v for v in found if not any(v != w and v in w for w in found)}


# ----------------------------------------------------------------- replies and negation

NEGATION = re.compile(
    r"\b(?:not|no|never|cannot|can't|won't|don't|doesn't|isn't|aren't|nor|without|unable"
    r"|no longer|nothing|none|n't)\b",
    re.IGNORECASE,
)
# "Yes," / "No," / "Not at the moment." opening a sentence, followed by punctuation or the
# sentence's end ("No restocking fee" and "No problem, ..." are no replies)
_REPLY = re.compile(
    r"^[\W_]*(?:(yes|yeah|yep)|(no|nope|not (?:at the moment|currently|yet|at this time"
    r"|right now)|unfortunately not|sorry,? no))[*_\"']*(?=\s*(?:[,.;:!\u2014\u2013-]|$))",
    re.IGNORECASE,
)


def reply_polarity(sentence: str) -> bool | None:
    """True when a sentence opens with a yes ("Yes, ..."), False with a no ("No, ...",
    "Not at the moment."), None otherwise."""
    m = _REPLY.search(normalise(sentence))
    if m is None:
        return None
    return m.group(1) is not None


def without_reply(sentence: str) -> str:
    """The sentence after its opening reply ("No, only pending..." -> "only pending..."),
    for judging what it states."""
    m = _REPLY.search(sentence)
    if m is None:
        return sentence
    return sentence[m.end() :].lstrip(" ,.;:!*_\"'\u2014\u2013-")


def negated(text: str) -> bool:
    """Whether a clause says no ("not", "can't", "no longer", "nothing"...), its opening
    reply aside."""
    return NEGATION.search(normalise(without_reply(text))) is not None


# ------------------------------------------------------------------------------ clauses

_MAIN = (
    r"[;:]|,\s*(?:but|however|and|so|though|while)\b|\s+but\s+|\s+(?:\u2014|\u2013|-)\s+"
    r"|\s+(?:or|and)\s+(?=(?:you|we|it|they|has|have|hasn't|haven't|is|isn't)\b)"
)
#: Where a sentence's main clauses part ("..., but you can return it").
MAIN_CLAUSES = re.compile(_MAIN)
#: ... and its conditions too ("you can swap it | once it is delivered"): each part is
#: judged on its own.
CLAUSES = re.compile(_MAIN + r"|(?<=\w)\s+(?=(?:once|if|before|until|unless)\s)")


def clauses(sentence: str, pattern: re.Pattern[str] = CLAUSES) -> list[str]:
    """The parts of ``sentence`` cut by ``pattern`` that hold a letter."""
    return [c.strip() for c in pattern.split(sentence) if c and re.search(r"[A-Za-z]", c)]


# ---------------------------------------------------------------------------- durations


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
