"""Rules and stories from Rasa 3 ``rules.yml`` / ``stories.yml``.

A story or rule becomes a list of ``Step``s. ``slot_was_set`` steps are kept as checks on
slot values at that point; ``checkpoint``/``or`` are supported in their simple forms.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import TrainingDataError


@dataclass(frozen=True)
class Step:
    kind: str  # intent | action | active_loop | slot
    name: str | None  # intent/action/loop name; slot name for kind == slot
    value: Any = None  # slot value for kind == slot ("__set__" = any non-null)
    alternatives: tuple[str, ...] = ()  # `or:` intents


@dataclass(frozen=True)
class Flow:
    name: str
    steps: tuple[Step, ...]
    is_rule: bool
    conditions: tuple[Step, ...] = ()
    conversation_start: bool = False
    wait_for_user_input: bool = True


@dataclass
class DialogueData:
    rules: list[Flow] = field(default_factory=list)
    stories: list[Flow] = field(default_factory=list)

    @classmethod
    def load(cls, *paths: str | Path) -> DialogueData:
        data = cls()
        for path in paths:
            path = Path(path)
            files = (
                sorted(path.rglob("*.yml")) + sorted(path.rglob("*.yaml"))
                if path.is_dir()
                else [path]
            )
            for f in files:
                try:
                    doc = yaml.safe_load(f.read_text()) or {}
                except yaml.YAMLError as exc:
                    mark = getattr(exc, "problem_mark", None)
                    raise TrainingDataError(
                        f"invalid YAML: {exc}", str(f), None if mark is None else mark.line + 1
                    ) from exc
                if not isinstance(doc, dict):
                    continue
                for item in doc.get("rules") or []:
                    data.rules.append(_flow(item, is_rule=True, source=f))
                for item in doc.get("stories") or []:
                    data.stories.append(_flow(item, is_rule=False, source=f))
        return data


def _steps(raw: list[Any], source: Path, name: str) -> list[Step]:
    out: list[Step] = []
    for s in raw or []:
        if not isinstance(s, dict):
            raise TrainingDataError(f"{name!r}: a step must be a mapping, got {s!r}", str(source))
        if "intent" in s:
            out.append(Step("intent", str(s["intent"])))
        elif "action" in s:
            out.append(Step("action", str(s["action"])))
        elif "active_loop" in s:
            out.append(Step("active_loop", s["active_loop"]))
        elif "slot_was_set" in s:
            for entry in s["slot_was_set"] or []:
                if isinstance(entry, dict):
                    for k, v in entry.items():
                        out.append(Step("slot", str(k), v))
                else:
                    out.append(Step("slot", str(entry), "__set__"))
        elif "or" in s:
            intents = tuple(
                str(x["intent"]) for x in s["or"] if isinstance(x, dict) and "intent" in x
            )
            if intents:
                out.append(Step("intent", intents[0], alternatives=intents))
        elif "checkpoint" in s or "user" in s or "bot" in s:
            continue  # checkpoints are not followed; end-to-end text steps are not used here
        else:
            raise TrainingDataError(f"{name!r}: unknown step {s!r}", str(source))
    return out


def _flow(item: dict[str, Any], *, is_rule: bool, source: Path) -> Flow:
    name = str(item.get("rule") or item.get("story") or "?")
    steps = _steps(item.get("steps") or [], source, name)
    if not steps:
        raise TrainingDataError(f"{name!r} has no steps", str(source))
    conditions = tuple(_steps(item.get("condition") or [], source, name))
    return Flow(
        name=name,
        steps=tuple(steps),
        is_rule=is_rule,
        conditions=conditions,
        conversation_start=bool(item.get("conversation_start", False)),
        wait_for_user_input=bool(item.get("wait_for_user_input", True)),
    )
