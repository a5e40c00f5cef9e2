"""The form loop (Rasa 3 forms on Clerk's engine).

``FormLoop.run(form, tracker)`` is one step of a form: on activation, or when the shopper
answered, ``validate_<form>`` runs through the action runner with the turn's slot
candidates; the form then asks its next empty slot (``requested_slot``, by
``utter_ask_<slot>`` or ``action_ask_<slot>``), or completes so that rules and stories
take over (its submit action). A shopper who changes the subject gets the side question's
action queued and then a ``Reask`` of the form's question; "stop" (or a rule leading to
another form or a human) deactivates the form and clears its slots.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

from bot.dialogue.domain import Domain
from bot.dialogue.policy import FlowPolicy
from bot.dialogue.steps import (
    CARRY_ON,
    LISTEN_NOW,
    ActionOutcome,
    Reask,
    RunAction,
    TurnStats,
)
from bot.dialogue.tracker import Tracker
from bot.dialogue.voice import Voice
from bot.errors import ActionError
from bot.types import ActionExecuted, ActiveLoop, SlotSet, UserUttered

if TYPE_CHECKING:
    from bot.dialogue.custom_actions import CustomActions
    from bot.dialogue.handoff_router import HandoffRouter

log = logging.getLogger(__name__)

# intents that answer a form's question rather than change the subject
NON_INTERRUPTING = frozenset({"inform", "affirm", "deny", "nlu_fallback", None})
NEVER_CLEARED = frozenset({"customer_id"})  # a verified shopper stays verified


def deactivate_form(domain: Domain, form: str, tracker: Tracker) -> None:
    """End ``form`` and clear its slots (a verified ``customer_id`` is kept)."""
    tracker.apply(ActiveLoop(name=None))
    for slot in domain.forms[form]:
        if slot not in NEVER_CLEARED and tracker.slots.get(slot) is not None:
            tracker.apply(SlotSet(key=slot, value=None))


class FormLoop:
    """Runs the domain's forms: validation through ``custom`` (the action runner), questions
    by ``voice`` or ``custom``, failures to ``router``; ``flows`` names the action an
    interrupting intent's rule starts with."""

    def __init__(
        self,
        *,
        domain: Domain,
        flows: FlowPolicy,
        voice: Voice,
        custom: CustomActions,
        router: HandoffRouter,
        stats: TurnStats,
    ) -> None:
        self.domain = domain
        self.flows = flows
        self.voice = voice
        self.custom = custom
        self.router = router
        self.stats = stats

    def deactivate(self, form: str, tracker: Tracker) -> None:
        """End ``form`` and clear its slots (``action_deactivate_loop``)."""
        deactivate_form(self.domain, form, tracker)

    async def run(self, form: str, tracker: Tracker) -> ActionOutcome:
        """One step of ``form``: activate or continue it, validate this turn's candidates,
        ask the next question (then listen) or complete (then carry on predicting). A
        shopper who changed the subject gets the interruption's steps queued instead."""
        required = self.domain.forms[form]
        activating = tracker.active_loop != form
        latest = tracker.latest_message
        intent = latest.intent if latest else None

        # slot candidates: this turn's extracted values (and, on activation, prefilled slots)
        candidates = {k: v for k, v in _slots_set_since_user(tracker).items() if k in required}
        if activating:
            for s in required:
                if tracker.slots.get(s) is not None:
                    candidates.setdefault(s, tracker.slots[s])
        validator = f"validate_{form}"
        result: dict[str, Any] = {"events": [], "responses": []}
        if validator in self.domain.actions and self.custom.has(validator):
            extra = [
                {"event": "slot", "name": k, "value": v, "timestamp": time.time()}
                for k, v in candidates.items()
            ]
            payload = self.custom.payload(validator, _with_loop(tracker, form), extra)
            try:
                result = await self.custom.call(validator, payload)
            except ActionError as exc:
                log.warning("form validation failed: %s", exc)
                self.stats.action_failures += 1
                tracker.apply(ActionExecuted(name=form, policy="failed"))
                if tracker.active_loop == form:
                    tracker.apply(ActiveLoop(name=None))
                await self.router.action_failed(tracker, validator)
                return LISTEN_NOW

        events = result.get("events") or []
        slot_events = [e for e in events if e.get("event") == "slot"]
        filled = any(e["name"] in required and e.get("value") is not None for e in slot_events)
        rejected = any(e.get("event") == "action_execution_rejected" for e in events)
        handled = (filled or bool(candidates) or bool(result.get("responses"))) and not rejected

        if not activating and not handled and intent not in NON_INTERRUPTING:
            return self._interrupt(form, tracker, intent)

        tracker.apply(ActionExecuted(name=form, policy="FormPolicy", confidence=1.0))
        if activating:
            tracker.apply(ActiveLoop(name=form))
        self.voice.apply_result(
            tracker,
            {
                "events": [e for e in events if e.get("event") != "action_execution_rejected"],
                "responses": result.get("responses"),
            },
        )
        requested = [e for e in slot_events if e["name"] == "requested_slot"]
        if requested:
            next_slot = requested[-1].get("value")
        else:
            next_slot = next((s for s in required if tracker.slots.get(s) is None), None)
        if next_slot is None:
            if tracker.slots.get("requested_slot") is not None:
                tracker.apply(SlotSet(key="requested_slot", value=None))
            tracker.apply(ActiveLoop(name=None))
            return CARRY_ON
        if tracker.slots.get("requested_slot") != next_slot:
            tracker.apply(SlotSet(key="requested_slot", value=next_slot))
        return await self.ask(form, str(next_slot), tracker)

    async def ask(self, form: str, slot: str, tracker: Tracker) -> ActionOutcome:
        """Ask for ``slot`` of ``form`` (its response or its custom ask action); the bot then
        listens for the answer."""
        ask = self.domain.ask_action_for(form, slot)
        if ask is None:
            log.warning("form %s has no question for slot %s", form, slot)
            self.voice.utter(tracker, "utter_default")
        elif self.domain.is_response(ask):
            self.voice.utter(tracker, ask)
        else:
            await self.custom.run(ask, tracker, executed=None)
        return LISTEN_NOW

    async def reask(self, step: Reask, tracker: Tracker) -> None:
        """Ask the form's pending question again, if the form is still active and asks."""
        requested = tracker.slots.get("requested_slot")
        if tracker.active_loop == step.form and requested:
            await self.ask(step.form, str(requested), tracker)

    def _interrupt(self, form: str, tracker: Tracker, intent: str | None) -> ActionOutcome:
        """The shopper changed the subject while ``form`` waited for an answer."""
        target = self.flows.rule_action_for_intent(intent)
        if intent in ("stop", "human_handoff") or target is None or self.domain.is_form(target):
            self.deactivate(form, tracker)
            return ActionOutcome(queued=(RunAction(target or "utter_ok_cancelled_request"),))
        # Answer the side question, then ask again what the form waits for.
        return ActionOutcome(queued=(RunAction(target), Reask(form)))


def _with_loop(tracker: Tracker, form: str) -> Tracker:
    """A view of ``tracker`` whose ``active_loop`` is ``form`` (on activation the validation
    runs before the ActiveLoop event is logged, as in Rasa)."""
    return Tracker(
        conversation_id=tracker.conversation_id,
        initial_slots=tracker.initial_slots,
        events=tracker.events,
        slots=tracker.slots,
        active_loop=form,
        latest_message=tracker.latest_message,
        latest_action_name=tracker.latest_action_name,
        followup_action=tracker.followup_action,
        handoff_status=tracker.handoff_status,
        channel=tracker.channel,
    )


def _slots_set_since_user(tracker: Tracker) -> dict[str, Any]:
    """The slots set (to a value) since the shopper's latest message, latest value each."""
    out: dict[str, Any] = {}
    for e in reversed(tracker.events):
        if isinstance(e, UserUttered):
            break
        if isinstance(e, SlotSet):
            out.setdefault(e.key, e.value)
    return {k: v for k, v in out.items() if v is not None}
