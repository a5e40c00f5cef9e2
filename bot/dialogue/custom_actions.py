"""Custom actions (the store's and the project's, rasa-sdk) as the turn runs them: the
action-server payload built from the tracker, the call through the ``ActionRunner``, the
result applied, and a failure recorded and routed to a human."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bot.actions import PROTOCOL_VERSION, ActionRunner
from bot.dialogue.steps import CARRY_ON, LISTEN_NOW, ActionOutcome, TurnStats
from bot.dialogue.tracker import Tracker
from bot.dialogue.voice import Voice
from bot.errors import ActionError
from bot.types import ActionExecuted

if TYPE_CHECKING:
    from bot.dialogue.handoff_router import HandoffRouter

log = logging.getLogger(__name__)


class CustomActions:
    """Runs custom actions through ``runner`` against ``domain_dict`` (the domain in Rasa's
    shape, sent with every call)."""

    def __init__(
        self,
        *,
        runner: ActionRunner,
        domain_dict: dict[str, Any],
        voice: Voice,
        router: HandoffRouter,
        stats: TurnStats,
    ) -> None:
        self.runner = runner
        self.domain_dict = domain_dict
        self.voice = voice
        self.router = router
        self.stats = stats

    def has(self, name: str) -> bool:
        """Whether the runner knows action ``name`` (a remote server is assumed to)."""
        return self.runner.has_action(name)

    def payload(
        self, name: str, tracker: Tracker, extra_events: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        """The action-server request for ``name``: the tracker's state with
        ``extra_events`` (Rasa event dicts; their slots applied) appended."""
        state = tracker.to_rasa_state()
        if extra_events:
            state["events"] = state["events"] + extra_events
            for e in extra_events:
                if e.get("event") == "slot":
                    state["slots"][e["name"]] = e.get("value")
        return {
            "next_action": name,
            "sender_id": tracker.conversation_id,
            "tracker": state,
            "domain": self.domain_dict,
            "version": PROTOCOL_VERSION,
        }

    async def call(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run a custom action; its ``{"events", "responses"}``. In process, it runs on a
        database thread in its own unit of work (a failed action leaves no trace);
        remotely, the action server commits its own changes. Either way no transaction of
        the turn is open meanwhile. Raises ``ActionError`` when it fails."""
        return await self.runner.run(name, payload)

    async def run(
        self, name: str, tracker: Tracker, *, executed: ActionExecuted | None
    ) -> ActionOutcome:
        """Run ``name`` and apply its result, after ``executed`` (its event; ``None`` for a
        form's ask action, which is not recorded). A failure is recorded (as ``failed``),
        counted and routed to a human, and the turn listens; else it carries on."""
        try:
            result = await self.call(name, self.payload(name, tracker))
        except ActionError as exc:
            log.warning("action failed: %s", exc)
            self.stats.action_failures += 1
            if executed is not None:
                tracker.apply(ActionExecuted(name=name, policy="failed"))
            await self.router.action_failed(tracker, name)
            return LISTEN_NOW
        if executed is not None:
            tracker.apply(executed)
        self.voice.apply_result(tracker, result)
        return CARRY_ON
