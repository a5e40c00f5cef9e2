"""The conversation tracker: an append-only list of events and the state derived from it.

The tracker is the truth. Slots, the active form, the latest message and the handoff
state are all computed by replaying events; nothing else is stored about a conversation.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from bot.types import (
    LISTEN,
    MISS_ACTIONS,
    ActionExecuted,
    ActiveLoop,
    AllSlotsReset,
    ConversationId,
    Event,
    FollowupAction,
    HandoffEvent,
    Restarted,
    SessionStarted,
    SlotSet,
    UserUttered,
)


@dataclass(frozen=True)
class StepView:
    """One entry of the tracker as the policies see it, with the state before it."""

    kind: str  # intent | action | active_loop | slot
    name: Any
    slots_before: dict[str, Any]
    active_loop_before: str | None
    value: Any = None


@dataclass
class Tracker:
    conversation_id: ConversationId
    initial_slots: dict[str, Any]
    events: list[Event] = field(default_factory=list)
    # derived state
    slots: dict[str, Any] = field(default_factory=dict)
    active_loop: str | None = None
    latest_message: UserUttered | None = None
    latest_action_name: str | None = None
    followup_action: str | None = None
    handoff_status: str = "none"
    # the channel (``Channel.name``) the turn's replies go to; None outside a shopper's turn
    channel: str | None = None
    steps: list[StepView] = field(default_factory=list)
    persisted_count: int = 0  # how many of ``events`` are already in the store
    _event_dicts: list[dict[str, Any]] = field(default_factory=list, repr=False)

    @classmethod
    def from_events(
        cls, conversation_id: ConversationId, initial_slots: dict[str, Any], events: list[Event]
    ) -> Tracker:
        t = cls(conversation_id=conversation_id, initial_slots=dict(initial_slots))
        t.slots = dict(initial_slots)
        for e in events:
            t.apply(e)
        t.persisted_count = len(events)
        return t

    @property
    def new_events(self) -> list[Event]:
        return self.events[self.persisted_count :]

    def apply(self, e: Event) -> None:
        self.events.append(e)
        if isinstance(e, UserUttered):
            self.latest_message = e
            self.steps.append(StepView("intent", e.intent, dict(self.slots), self.active_loop))
        elif isinstance(e, ActionExecuted):
            self.latest_action_name = e.name
            if self.followup_action == e.name:
                self.followup_action = None
            if e.name != LISTEN:
                self.steps.append(StepView("action", e.name, dict(self.slots), self.active_loop))
        elif isinstance(e, SlotSet):
            self.steps.append(StepView("slot", e.key, dict(self.slots), self.active_loop, e.value))
            self.slots[e.key] = e.value
        elif isinstance(e, ActiveLoop):
            self.steps.append(StepView("active_loop", e.name, dict(self.slots), self.active_loop))
            self.active_loop = e.name
            if e.name is None:
                self.slots["requested_slot"] = None
        elif isinstance(e, FollowupAction):
            self.followup_action = e.name
        elif isinstance(e, AllSlotsReset):
            self.slots = dict(self.initial_slots)
        elif isinstance(e, Restarted):
            self.slots = dict(self.initial_slots)
            self.active_loop = None
            self.followup_action = None
            self.steps = []
        elif isinstance(e, SessionStarted):
            self.active_loop = None
            self.followup_action = None
            self.slots["requested_slot"] = None
        elif isinstance(e, HandoffEvent):
            self.handoff_status = {
                "requested": "requested",
                "claimed": "claimed",
                "returned": "none",
                "closed": "closed",
            }.get(e.step, self.handoff_status)

    # ------------------------------------------------------------ queries
    def last_event_time(self) -> float | None:
        return self.events[-1].timestamp if self.events else None

    def session_over(self, expiry_seconds: float, now: float | None = None) -> bool:
        """Whether the shopper's next message starts a new session: the conversation has
        no events, or none within ``expiry_seconds`` (0: a session never expires)."""
        last = self.last_event_time()
        if last is None:
            return True
        return (
            bool(expiry_seconds) and (time.time() if now is None else now) - last >= expiry_seconds
        )

    def consecutive_fallbacks(self) -> int:
        """How many user turns in a row the bot could not help with (fallback, out of
        scope, or a human already offered)."""
        count = 0
        for e in reversed(self.events):
            if isinstance(e, ActionExecuted) and e.name != LISTEN:
                if e.name in MISS_ACTIONS:
                    count += 1
                else:
                    break
        return count

    def event_dicts(self) -> list[dict[str, Any]]:
        """The events in Rasa's JSON shape (converted once each, kept in step)."""
        for e in self.events[len(self._event_dicts) :]:
            self._event_dicts.append(e.to_dict())
        return list(self._event_dicts)

    def to_rasa_state(self, domain_slots: set[str] | None = None) -> dict[str, Any]:
        """The tracker JSON of Rasa's action-server protocol."""
        latest = self.latest_message
        latest_message: dict[str, Any] = {}
        if latest is not None:
            latest_message = {
                "text": latest.text,
                "intent": latest.parse_data.get("intent") or {},
                "entities": latest.entities,
                "intent_ranking": latest.parse_data.get("intent_ranking") or [],
                "message_id": latest.message_id,
            }
        return {
            "sender_id": self.conversation_id,
            "slots": dict(self.slots),
            "latest_message": latest_message,
            "events": self.event_dicts(),
            "paused": self.handoff_status == "claimed",
            "followup_action": self.followup_action,
            "active_loop": {"name": self.active_loop} if self.active_loop else {},
            "latest_action_name": self.latest_action_name,
        }
