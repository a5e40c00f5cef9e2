"""When and how the bot hands a conversation to a human.

``HandoffRouter`` turns the turn's situations into typed ``HandoffTrigger`` values: a severe
complaint, a prediction of ``utter_out_of_scope`` or of one miss too many (rewritten into a
``Decision`` for ``action_handoff`` carrying its trigger, or into ``action_offer_handoff``),
a failed action, the shopper's own request. It then offers a human or requests one: the
queue row (and a ticket) through the ``HandoffDesk`` in its own short transaction, and the
shopper told what happens next.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.dialogue.forms import deactivate_form
from bot.dialogue.policy import LISTEN
from bot.dialogue.steps import Decision, TurnStats
from bot.dialogue.tracker import Tracker
from bot.dialogue.voice import Voice
from bot.handoff.triggers import ASKED, HandoffPolicy, HandoffTrigger, TriggerKind, assess_complaint
from bot.store.models import Conversation
from bot.types import MISS_ACTIONS, ActionExecuted, HandoffEvent, UserUttered

if TYPE_CHECKING:
    from bot.handoff.desk import HandoffDesk
    from bot.store.db import Database

WAITING = ("requested", "claimed")  # handoff states in which a human is already involved


class HandoffRouter:
    """``policy``: when the bot hands off on its own; ``desk``: the queue (without one a
    handoff is only recorded in the tracker); ``db``: where the desk's transactions run."""

    def __init__(
        self,
        *,
        policy: HandoffPolicy,
        desk: HandoffDesk | None,
        db: Database,
        voice: Voice,
        stats: TurnStats,
    ) -> None:
        self.policy = policy
        self.desk = desk
        self.db = db
        self.voice = voice
        self.stats = stats

    # ------------------------------------------------------------------ triggers
    def severe_complaint(self, tracker: Tracker, user: UserUttered) -> HandoffTrigger | None:
        """A complaint (or an answer inside the complaint form) naming a legal or safety
        issue, or strongly negative, when the policy hands those off and no human is
        involved yet; else ``None``."""
        if not self.policy.on_severe_complaint:
            return None
        if tracker.handoff_status in WAITING:
            return None
        if user.intent != "complaint" and tracker.active_loop != "complaint_form":
            return None
        return assess_complaint(user.text)

    def route(self, decision: Decision, tracker: Tracker) -> Decision:
        """``decision`` as the handoff policy has it: out of scope -> ``action_handoff``
        (when handed off on); one miss too many -> ``action_handoff`` or
        ``action_offer_handoff``; anything else unchanged."""
        waiting = tracker.handoff_status in WAITING
        if decision.action == "utter_out_of_scope" and self.policy.on_out_of_scope and not waiting:
            trigger = HandoffTrigger(TriggerKind.OUT_OF_SCOPE, "request outside the bot's scope")
            return Decision(
                "action_handoff",
                decision.policy,
                decision.confidence,
                decision.flow,
                handoff=trigger,
            )
        if decision.action in MISS_ACTIONS and (
            tracker.consecutive_fallbacks() + 1 >= self.policy.max_misses
        ):
            if self.policy.misses == "handoff" and not waiting:
                trigger = HandoffTrigger(
                    TriggerKind.MISSES,
                    f"bot misunderstood {self.policy.max_misses} messages in a row",
                )
                return Decision(
                    "action_handoff",
                    decision.policy,
                    decision.confidence,
                    decision.flow,
                    handoff=trigger,
                )
            return Decision(
                "action_offer_handoff", decision.policy, decision.confidence, decision.flow
            )
        return decision

    def requested_trigger(self, tracker: Tracker, decision: Decision) -> HandoffTrigger:
        """Why ``action_handoff`` runs: the bot's own decision, the shopper asking, the
        shopper accepting an offered human, or (otherwise) a flow that ends in a human."""
        if decision.handoff is not None:
            return decision.handoff
        intent = tracker.latest_message.intent if tracker.latest_message else None
        if intent == "human_handoff":
            return ASKED
        if tracker.latest_action_name == "action_handoff" and _offered(tracker):
            return HandoffTrigger(
                TriggerKind.MISSES, "bot could not understand; shopper accepted a human"
            )
        return HandoffTrigger(TriggerKind.UNANSWERED, "bot could not help")

    # ------------------------------------------------------------------ actions
    async def offer(self, tracker: Tracker) -> None:
        """``action_offer_handoff``: a miss, answered by offering a human."""
        self.stats.fallbacks += 1
        self.voice.utter(tracker, "utter_offer_handoff")

    async def handoff_action(self, tracker: Tracker, decision: Decision) -> None:
        """``action_handoff``: say why when the bot decided it, then hand off."""
        trigger = self.requested_trigger(tracker, decision)
        if decision.handoff is not None and trigger.kind is TriggerKind.OUT_OF_SCOPE:
            self.voice.utter(tracker, "utter_handoff_out_of_scope")
        elif decision.handoff is not None and trigger.kind is TriggerKind.MISSES:
            self.voice.utter(tracker, "utter_handoff_misses")
        await self.hand_off(tracker, trigger)

    async def complaint(self, tracker: Tracker, trigger: HandoffTrigger, text: str) -> None:
        """A severe complaint: recorded as ``action_handoff`` decided by the bot, handed off
        with a ticket holding ``text``; the bot then listens."""
        decision = Decision("action_handoff", "", handoff=trigger)
        tracker.apply(
            ActionExecuted(name="action_handoff", policy=decision.recorded_policy, confidence=1.0)
        )
        await self.hand_off(tracker, trigger, ticket_text=text)
        tracker.apply(ActionExecuted(name=LISTEN))

    async def action_failed(self, tracker: Tracker, action: str) -> None:
        """A custom action failed: say so, and hand off when the policy says to."""
        if not self.policy.on_action_failure:
            self.voice.utter(tracker, "utter_action_failed")
            return
        self.voice.utter(tracker, "utter_handoff_action_failed")
        await self.hand_off(
            tracker, HandoffTrigger(TriggerKind.ACTION_FAILED, f"action {action} failed")
        )

    async def hand_off(
        self, tracker: Tracker, trigger: HandoffTrigger, *, ticket_text: str | None = None
    ) -> None:
        """Queue the conversation for a human agent (once; the active form ends) and tell
        the shopper what happens next and how long it should take."""
        if tracker.active_loop:
            deactivate_form(self.voice.domain, tracker.active_loop, tracker)
        waiting = tracker.handoff_status in WAITING
        wait = self.voice.phrase(tracker, "utter_wait_unknown")
        ticket_id = None
        if self.desk is not None:
            ticket_id, minutes = await self.db.call(self._request, tracker, trigger, ticket_text)
            wait = self.voice.phrase(
                tracker,
                "utter_wait_one_minute" if minutes == 1 else "utter_wait_minutes",
                minutes=minutes,
            )
        elif not waiting:
            tracker.apply(
                HandoffEvent(
                    step="requested", reason=trigger.reason, data={"trigger": trigger.kind.value}
                )
            )
        if not waiting:
            self.stats.handoffs += 1
        if ticket_id:
            self.voice.utter(tracker, "utter_handoff_complaint", ticket_id=ticket_id)
        self.voice.utter(tracker, "utter_handoff", wait=wait)

    def _request(
        self, tracker: Tracker, trigger: HandoffTrigger, ticket_text: str | None
    ) -> tuple[str | None, int]:
        """On a database thread: queue the conversation (its handoff row, a ticket) and
        estimate the wait. Its own short transaction, like an in-process action."""
        assert self.desk is not None
        with self.db.session() as session:
            conv = session.get(Conversation, tracker.conversation_id)
            row = None
            if conv is not None:
                row = self.desk.request(session, conv, tracker, trigger, ticket_text=ticket_text)
            ticket_id = row.ticket_id if row is not None else None
            return ticket_id, self.desk.expected_wait_minutes(session)


def _offered(tracker: Tracker) -> bool:
    """Whether the bot offered a human just before the shopper's latest message."""
    seen_user = False
    for e in reversed(tracker.events):
        if isinstance(e, UserUttered):
            seen_user = True
        elif seen_user and isinstance(e, ActionExecuted) and e.name != LISTEN:
            return e.name == "action_offer_handoff"
    return False
