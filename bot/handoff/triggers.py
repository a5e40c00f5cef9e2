"""When the bot hands a conversation to a human on its own.

``HandoffPolicy`` is built once from settings and given to the dialogue manager:

- ``misses``: after ``max_misses`` misunderstood messages in a row the bot either
  ``"offer"``s a human (and hands off on "yes") or ``"handoff"``s directly;
- ``on_out_of_scope``: a request outside the bot's scope goes to a human;
- ``on_action_failure``: a custom action that fails goes to a human;
- ``on_severe_complaint``: a complaint that names a legal or safety issue, or whose text
  is strongly negative, goes to a human at once (with a high-priority ticket).

``assess_complaint(text)`` is a small lexicon scorer: explicit and testable, no model. Its
words are ``bot.text_rules``' severity rules, shared with the ticket priority of the store
actions, so a complaint handed off as severe always gets a high-priority ticket.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from bot.text_rules import SEVERE_NEGATIVITY, negativity, severe_issue

__all__ = [
    "ASKED",
    "MISSES_MODES",
    "HandoffPolicy",
    "Trigger",
    "assess_complaint",
    "negativity",
]

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


def assess_complaint(text: str) -> Trigger | None:
    """A trigger when a complaint must go to a human at once, else ``None``.

    Severe by ``bot.text_rules``: a safety issue, else a legal one, else strongly negative
    text; the same rules make ``ticket_priority`` say ``"high"`` for it.
    """
    issue = severe_issue(text)
    if issue is not None:
        return Trigger(COMPLAINT, f"complaint names a {issue.kind} issue ({issue.word})")
    if negativity(text) >= SEVERE_NEGATIVITY:
        return Trigger(COMPLAINT, "complaint is strongly negative")
    return None
