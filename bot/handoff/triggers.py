"""When the bot hands a conversation to a human on its own.

``HandoffPolicy`` is built once from settings and given to the dialogue manager:

- ``misses``: after ``max_misses`` misunderstood messages in a row the bot either
  ``"offer"``s a human (and hands off on "yes") or ``"handoff"``s directly;
- ``on_out_of_scope``: a request outside the bot's scope goes to a human;
- ``on_action_failure``: a custom action that fails goes to a human;
- ``on_severe_complaint``: a complaint that names a legal or safety issue, or whose text
  is strongly negative, goes to a human at once (with a high-priority ticket).

``assess_complaint(text)`` is a small lexicon scorer: explicit and testable, no model.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import StrEnum

MISSES_MODES = ("offer", "handoff")


@dataclass(frozen=True)
class HandoffPolicy:
    max_misses: int = 2
    misses: str = "offer"  # offer | handoff
    on_out_of_scope: bool = True
    on_action_failure: bool = True
    on_severe_complaint: bool = True

    def __post_init__(self) -> None:
        if self.misses not in MISSES_MODES:
            raise ValueError(f"misses must be one of {MISSES_MODES}, not {self.misses!r}")
        if self.max_misses < 1:
            raise ValueError("max_misses must be at least 1")


class TriggerKind(StrEnum):
    """Why a conversation goes to a human, in a word (stored as its value: ``handoffs.trigger``
    and the ``trigger`` of a ``requested`` handoff event)."""

    ASKED = "asked"
    MISSES = "misses"
    COMPLAINT = "complaint"
    ACTION_FAILED = "action_failed"
    OUT_OF_SCOPE = "out_of_scope"
    UNANSWERED = "unanswered"


@dataclass(frozen=True)
class HandoffTrigger:
    """Why the bot hands off: ``kind`` for queries and metrics, ``reason`` for the agent."""

    kind: TriggerKind
    reason: str


Trigger = HandoffTrigger  # the shorter name
COMPLAINT = TriggerKind.COMPLAINT

ASKED = HandoffTrigger(TriggerKind.ASKED, "shopper asked for a human")

_SAFETY = re.compile(
    r"\b(fire|flames?|caught fire|smok(e|ed|ing)|burn(s|t|ed|ing)?|explod\w*|sparks?|"
    r"electric(al)? shock|shocked|electrocut\w*|injur\w*|hurt|wounded|bleeding|hospital|"
    r"poison\w*|chok(e|ed|ing)|allergic reaction|unsafe|dangerous|hazard\w*|toxic)\b",
    re.IGNORECASE,
)
_LEGAL = re.compile(
    r"\b(legal|lawyers?|attorneys?|lawsuit|sue|suing|court|solicitor|police|"
    r"consumer protection|trading standards|fraud\w*|scam\w*|stolen|identity theft|"
    r"unauthori[sz]ed (charge|payment|transaction)s?|chargeback|gdpr|data breach)\b",
    re.IGNORECASE,
)
# strongly negative words and phrases, with weights; two points make a complaint severe
_NEGATIVE: dict[str, float] = {
    "terrible": 1, "horrible": 1, "awful": 1, "appalling": 1.5, "disgusting": 1.5,
    "disgraceful": 1.5, "disgrace": 1.5, "outrageous": 1.5, "outraged": 1.5, "furious": 1.5,
    "livid": 1.5, "unacceptable": 1, "ridiculous": 1, "pathetic": 1.5, "useless": 1,
    "worst": 1, "hate": 1, "incompetent": 1.5, "joke": 0.5, "never again": 1.5,
    "fed up": 1, "sick of": 1, "angry": 1, "rip-off": 1.5, "rip off": 1.5, "shameful": 1.5,
    "lied": 1, "liars": 1.5, "nightmare": 1, "garbage": 1, "rubbish": 1, "scandal": 1.5,
}
_INTENSIFIERS = re.compile(r"\b(absolutely|completely|totally|utterly|so|very|extremely|"
                           r"beyond|truly)\b", re.IGNORECASE)
_NEGATIVE_RE = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(_NEGATIVE, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
SEVERE_SCORE = 2.0


def negativity(text: str) -> float:
    """A score of how strongly negative ``text`` is (0 for neutral text)."""
    hits = [m.group(1).lower() for m in _NEGATIVE_RE.finditer(text or "")]
    score = sum(_NEGATIVE.get(h, 0.0) for h in hits)
    if hits:
        score += 0.5 * min(2, len(_INTENSIFIERS.findall(text)))
        shouted = [w for w in re.findall(r"[A-Za-z]{3,}", text) if w.isupper()]
        score += 0.5 * min(2, len(shouted))
        if "!!" in text:
            score += 0.5
    return score


def assess_complaint(text: str) -> Trigger | None:
    """A trigger when a complaint must go to a human at once, else ``None``."""
    safety = _SAFETY.search(text or "")
    if safety:
        return Trigger(COMPLAINT, f"complaint names a safety issue ({safety.group(0).lower()})")
    legal = _LEGAL.search(text or "")
    if legal:
        return Trigger(COMPLAINT, f"complaint names a legal issue ({legal.group(0).lower()})")
    if negativity(text) >= SEVERE_SCORE:
        return Trigger(COMPLAINT, "complaint is strongly negative")
    return None
