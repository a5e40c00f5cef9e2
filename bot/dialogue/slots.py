"""Slot filling from a user message by the domain's slot mappings (Rasa 3's
``action_extract_slots``): from_entity, from_intent, from_trigger_intent and from_text,
each subject to its conditions on the active loop and the requested slot. ``custom``
mappings are left to actions.
"""

from __future__ import annotations

from typing import Any

from bot.dialogue.domain import Domain, SlotMapping
from bot.types import SlotSet, UserUttered


def _conditions_hold(m: SlotMapping, active_loop: str | None, requested: str | None) -> bool:
    if not m.conditions:
        return True
    for loop, req in m.conditions:
        if loop is not None and loop != active_loop:
            continue
        if req is not None and req != requested:
            continue
        return True
    return False


def _intent_ok(m: SlotMapping, intent: str | None) -> bool:
    if m.intent and intent not in m.intent:
        return False
    return not (m.not_intent and intent in m.not_intent)


def extract_slots(
    domain: Domain,
    message: UserUttered,
    *,
    active_loop: str | None,
    requested_slot: str | None,
    current: dict[str, Any],
) -> list[SlotSet]:
    """SlotSet events for every slot a mapping fills from ``message`` (changed values only)."""
    intent = message.intent
    entities = message.entities
    out: list[SlotSet] = []
    for slot in domain.slots.values():
        value: Any = None
        found = False
        for m in slot.mappings:
            if not _conditions_hold(m, active_loop, requested_slot):
                continue
            if m.type == "from_entity":
                if not _intent_ok(m, intent):
                    continue
                values = [
                    e.get("value")
                    for e in entities
                    if e.get("entity") == m.entity
                    and (m.role is None or e.get("role") == m.role)
                    and (m.group is None or e.get("group") == m.group)
                ]
                if values:
                    value = values if slot.type == "list" else values[0]
                    found = True
            elif m.type == "from_intent":
                if m.intent and intent in m.intent or (not m.intent and _intent_ok(m, intent)):
                    value, found = m.value, True
            elif m.type == "from_trigger_intent":
                if active_loop is None and m.intent and intent in m.intent:
                    value, found = m.value, True
            elif m.type == "from_text" and _intent_ok(m, intent) and message.text:
                value, found = message.text, True
            if found:
                break
        if found and current.get(slot.name) != value:
            out.append(SlotSet(key=slot.name, value=value))
    return out
