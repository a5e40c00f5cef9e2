"""Typed values the dialogue manager's parts hand each other within one turn.

A turn runs actions until the bot listens. Which action runs next is a ``Decision`` (with the
``HandoffTrigger`` when the bot itself decided to hand off); what running it means for the
rest of the turn is an ``ActionOutcome``: carry on predicting, or listen, possibly after
``queued`` steps (a side question's action, then a ``Reask`` of the form's question).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from bot.dialogue.policy import Prediction
from bot.handoff.triggers import HandoffTrigger
from bot.types import HANDOFF_POLICY


@dataclass
class TurnStats:
    """Counters a deployment watches (exposed on /health and in logs)."""

    turns: int = 0
    fallbacks: int = 0
    action_failures: int = 0
    handoffs: int = 0
    knowledge_answers: int = 0
    knowledge_unanswered: int = 0
    ratings: int = 0  # CSAT ratings recorded (a repeat of the same rating is not one)


@dataclass(frozen=True)
class Decision:
    """The action to run next and why. ``policy`` and ``confidence`` are recorded on the
    action's ``ActionExecuted`` event; ``handoff`` is set when the bot decided on its own to
    hand off (``action`` is then ``action_handoff``)."""

    action: str
    policy: str
    confidence: float = 1.0
    flow: str | None = None
    handoff: HandoffTrigger | None = None

    @classmethod
    def of(cls, prediction: Prediction) -> Decision:
        return cls(prediction.action, prediction.policy, prediction.confidence, prediction.flow)

    @property
    def recorded_policy(self) -> str:
        """The policy name stored on the action's event: ``HandoffPolicy:<trigger kind>`` for
        a handoff the bot decided on. Only ever written (for people reading the tracker);
        the turn passes the trigger itself, never this text."""
        if self.handoff is not None:
            return f"{HANDOFF_POLICY}:{self.handoff.kind.value}"
        return self.policy


@dataclass(frozen=True)
class RunAction:
    """Queued: run this action next (recorded with policy ``FormInterruption``)."""

    name: str


@dataclass(frozen=True)
class Reask:
    """Queued: ask the active form's pending question again, then listen (skipped if the
    form is no longer active or asks nothing)."""

    form: str


QueuedStep = RunAction | Reask


class After(Enum):
    """What the turn does once an action has run."""

    PREDICT = "predict"  # predict (or take from the queue) the next action
    LISTEN = "listen"  # stop: the bot waits for the shopper


@dataclass(frozen=True)
class ActionOutcome:
    """What running an action means for the rest of the turn: ``queued`` steps run first,
    in order, and only when ``after`` is ``PREDICT``."""

    after: After = After.PREDICT
    queued: tuple[QueuedStep, ...] = ()


CARRY_ON = ActionOutcome()
LISTEN_NOW = ActionOutcome(After.LISTEN)
