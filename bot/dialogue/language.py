"""The shopper's language, kept in the built-in ``language`` slot.

Contract: a conversation starts in the store's language (``Settings.language``, given to
the ``DialogueManager`` as a plain value) unless the domain declares the slot with an
initial value of its own. Each shopper message is read by ``bot.lang.detect_language``
with the conversation's current language as the default, so a message with no letters (an
order id alone, digits, emoji) keeps it. When the detected language differs from the
slot's value, the turn records a ``SlotSet`` right after the shopper's message: the
tracker stays the truth and the slot appears once per change. Responses then pick their
variants by it like by any slot (``condition: [{type: slot, name: language, value: zh}]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.dialogue.domain import LANGUAGE_SLOT, Domain
from bot.lang import Language, detect_language, parse_language
from bot.types import SlotSet


def initial_slots(domain: Domain, store_language: Language) -> dict[str, Any]:
    """The slots a conversation starts with: the domain's, the ``language`` slot holding
    the store's language unless the domain gives it an initial value."""
    slots = domain.initial_slots()
    if slots.get(LANGUAGE_SLOT) is None:
        slots[LANGUAGE_SLOT] = store_language
    return slots


def language_change(
    text: str, slots: Mapping[str, Any], store_language: Language
) -> SlotSet | None:
    """The ``SlotSet`` of the language ``text`` is written in, or None when it is the
    conversation's current language (or ``text`` has no language of its own)."""
    current = parse_language(slots.get(LANGUAGE_SLOT)) or store_language
    detected = detect_language(text, default=current)
    if detected == slots.get(LANGUAGE_SLOT):
        return None
    return SlotSet(key=LANGUAGE_SLOT, value=detected)
