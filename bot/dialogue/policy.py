"""Next-action prediction from rules and stories (Rasa's RulePolicy and MemoizationPolicy,
on Clerk's engine).

A flow (rule or story) predicts its action at position k when the steps before k match the
end of the tracker. Slot events in the tracker are ignored for alignment; ``slot_was_set``
steps in a flow are checked against the slot values at that point. Rules win over stories;
among matches the longest (most specific) wins. A rule matched to its very end predicts
``action_listen``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.dialogue.stories import DialogueData, Flow, Step
from bot.dialogue.tracker import StepView, Tracker
from bot.types import LISTEN


@dataclass(frozen=True)
class Prediction:
    action: str
    policy: str
    confidence: float
    flow: str | None = None


def _visible(steps: list[StepView]) -> list[StepView]:
    """Tracker steps used for alignment: no slots, consecutive loop changes collapsed."""
    out: list[StepView] = []
    for s in steps:
        if s.kind == "slot":
            continue
        if s.kind == "active_loop" and out and out[-1].kind == "active_loop":
            out[-1] = StepView(s.kind, s.name, out[-1].slots_before, out[-1].active_loop_before)
            continue
        out.append(s)
    return out


def _step_matches(step: Step, view: StepView) -> bool:
    if step.kind != view.kind:
        return False
    if step.kind == "intent":
        names = step.alternatives or (step.name,)
        return view.name in names
    return step.name == view.name


def _slot_ok(step: Step, slots: dict) -> bool:
    value = slots.get(step.name)
    if step.value == "__set__":
        return value is not None
    return value == step.value


class FlowPolicy:
    def __init__(self, data: DialogueData, *, max_history: int = 5) -> None:
        self.rules = data.rules
        self.stories = data.stories
        self.max_history = max_history
        self._first_action_by_intent: dict[str, str] = {}
        for rule in self.rules:
            if len(rule.steps) >= 2 and rule.steps[0].kind == "intent" and not rule.conditions:
                nxt = next((s for s in rule.steps[1:] if s.kind == "action"), None)
                if nxt is not None:
                    for name in rule.steps[0].alternatives or (rule.steps[0].name,):
                        self._first_action_by_intent.setdefault(str(name), str(nxt.name))

    def rule_action_for_intent(self, intent: str | None) -> str | None:
        """The action an intent's context-free rule starts with (used for interruptions)."""
        return self._first_action_by_intent.get(intent or "")

    def predict(self, tracker: Tracker) -> Prediction | None:
        visible = _visible(tracker.steps)
        best: tuple[int, Prediction] | None = None
        for flows, policy, limit in (
            (self.rules, "RulePolicy", None),
            (self.stories, "MemoizationPolicy", self.max_history),
        ):
            for flow in flows:
                match = self._match(flow, visible, tracker, limit)
                if match is not None and (best is None or match[0] > best[0]):
                    best = (match[0], Prediction(match[1], policy, 1.0, flow.name))
            if best is not None:
                return best[1]
        return None

    def _match(
        self, flow: Flow, visible: list[StepView], tracker: Tracker, limit: int | None
    ) -> tuple[int, str] | None:
        best: tuple[int, str] | None = None
        steps = flow.steps
        positions = [i for i, s in enumerate(steps) if s.kind == "action"] + [len(steps)]
        for k in positions:
            prefix = list(steps[:k])
            if limit is not None:
                # keep the last `limit` non-slot steps of the prefix
                kept, count = [], 0
                for s in reversed(prefix):
                    if s.kind != "slot":
                        count += 1
                        if count > limit:
                            break
                    kept.append(s)
                prefix = list(reversed(kept))
            core = [s for s in prefix if s.kind != "slot"]
            if not core:
                continue
            if k == len(steps):
                if not flow.is_rule or not flow.wait_for_user_input or steps[-1].kind == "intent":
                    continue
                action = LISTEN
            else:
                action = str(steps[k].name)
            score = self._align(flow, prefix, visible, tracker)
            if score is not None and (best is None or score > best[0]):
                best = (score, action)
        return best

    def _align(
        self, flow: Flow, prefix: list[Step], visible: list[StepView], tracker: Tracker
    ) -> int | None:
        vi = len(visible) - 1
        state_after: dict = tracker.slots
        matched = 0
        first_view: StepView | None = None
        for step in reversed(prefix):
            if step.kind == "slot":
                if not _slot_ok(step, state_after):
                    return None
                continue
            if vi < 0 or not _step_matches(step, visible[vi]):
                return None
            first_view = visible[vi]
            state_after = visible[vi].slots_before
            vi -= 1
            matched += 1
        if first_view is None:
            return None
        if flow.conversation_start and any(v.kind == "intent" for v in visible[: vi + 1]):
            return None
        for cond in flow.conditions:
            # (unless the form activated and completed within the same turn)
            if (
                cond.kind == "active_loop"
                and first_view.active_loop_before != cond.name
                and not (first_view.kind == "action" and first_view.name == cond.name)
            ):
                return None
            if cond.kind == "slot" and not _slot_ok(cond, first_view.slots_before):
                return None
        return matched * 10 + len(flow.conditions)
