"""Responses: every text the bot says, read from the domain and rendered per turn.

Contract (Rasa 3's responses, as far as Clerk uses them):

- A response is a list of variants; a variant is a mapping with ``text`` and optionally
  ``buttons`` (``title``/``payload``), ``image``, ``custom``, ``channel`` and ``condition``
  (a list of ``{type: slot, name, value}``, all of which must hold).
- Choosing a variant (``choose_variants``), in Rasa's order of preference: conditional
  variants for the reply's channel whose conditions hold; variants for the channel without
  conditions; conditional variants without a channel whose conditions hold; variants with
  neither. One of the preferred group is picked at random.
- Filling (``fill``): ``{name}`` placeholders in texts, button titles and payloads, and the
  strings inside ``custom`` take their value from the values passed (an action's
  ``utter_message`` keyword arguments, the engine's values) and then from the slots.
  Values are shown as a shopper would read them (``Filler.shown``): a list joins with
  ", ", a mapping shows its values, ``None`` or a missing value shows nothing. A *phrase*
  — a mapping ``{"response": name, **values}`` — shows the text of that response, filled
  from its own values (then the slots); a list of phrases joins with a space (they are
  sentences); *lines* — a mapping ``{"lines": [...]}`` — show one item per line (a list
  of suggestions, each a phrase). Braces that are not a ``{word}`` (the JSON of an
  ``/inform{...}`` payload) stay as they are.
- A *data value* — a mapping ``{"value_kind": kind, "value": stored}`` — is a value from
  the store's database (an order status, a cancel reason) shown by its *display name*:
  the text of response ``utter_value_<kind>_<key>`` (``display_response``: the key is the
  stored value in lower case, each run of other characters than letters and digits one
  ``_``, so ``"pending (items modified)"`` is ``pending_items_modified``), chosen and
  filled as a phrase (per-language ``condition`` variants work). A domain without that
  response shows the stored value as it is, so a store names only the values it wants
  shown otherwise; the database, the actions and the action server keep the stored
  value. ``Filler.shown`` is the one place this happens. The kinds Clerk's store actions
  send are ``bot.store_actions.replies.DataKind``; a store's own actions may use others.
- An action's own ``custom`` payload (rasa-sdk's ``json_message``) is sent as it is; one
  that carries ``bot.types.WORD_PHRASES`` (Clerk's product cards) has the phrases in it
  replaced by their text (``shown_phrases``): a card's ``reason`` is worded by the domain
  like any reply. A store's own payload is never rewritten.
- Clerk ships default responses for its engine messages and built-in store actions in
  ``default_responses.yml`` next to this module; a project's own responses replace them
  name by name (``with_defaults``).
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bot.types import Button, Reply

log = logging.getLogger(__name__)

DEFAULT_RESPONSES_FILE = Path(__file__).with_name("default_responses.yml")
Variant = dict[str, Any]
Variants = list[Variant]

_MAX_PHRASE_DEPTH = 4  # phrases inside phrases: enough for "refund to {payment}"
_PLACEHOLDER = re.compile(r"\{(\w+)\}")
_NOT_KEY = re.compile(r"[\W_]+")  # what a display name's response key joins with "_"
# Rasa's channel names next to the names Clerk's channels go by (``Channel.name``).
_CHANNEL_ALIASES = {"cmdline": "shell", "shell": "cmdline"}


@cache
def default_responses() -> dict[str, Variants]:
    """Clerk's shipped responses (read once; callers must not change them)."""
    data = yaml.safe_load(DEFAULT_RESPONSES_FILE.read_text(encoding="utf-8")) or {}
    return {str(name): list(variants or []) for name, variants in data["responses"].items()}


def with_defaults(project: Mapping[str, Variants]) -> dict[str, Variants]:
    """The project's responses over Clerk's defaults: a name the project defines is
    entirely the project's (its variants replace the default's, none are mixed)."""
    return {**default_responses(), **project}


def choose_variants(
    variants: Sequence[Variant], slots: Mapping[str, Any], channel: str | None
) -> list[Variant]:
    """The variants a reply on ``channel`` may use (see the module's order)."""

    def on_channel(v: Variant) -> bool:
        wanted = v.get("channel")
        return wanted is not None and wanted in (channel, _CHANNEL_ALIASES.get(channel or ""))

    conditional = [v for v in variants if v.get("condition")]
    plain = [v for v in variants if not v.get("condition")]
    groups = (
        [v for v in conditional if on_channel(v) and condition_holds(v, slots)],
        [v for v in plain if on_channel(v)],
        [v for v in conditional if not v.get("channel") and condition_holds(v, slots)],
        [v for v in plain if not v.get("channel")],
    )
    return next((g for g in groups if g), [])


def condition_holds(variant: Variant, slots: Mapping[str, Any]) -> bool:
    """Every ``type: slot`` condition of the variant holds (other types are not known and
    never hold, so a variant meant for another engine is not shown by mistake)."""
    for cond in variant.get("condition") or []:
        if cond.get("type") != "slot" or slots.get(cond.get("name")) != cond.get("value"):
            return False
    return True


def is_phrase(value: Any) -> bool:
    """A value that stands for the text of another response (see the module doc)."""
    return isinstance(value, Mapping) and isinstance(value.get("response"), str)


def is_data_value(value: Any) -> bool:
    """A stored value shown by its display name (see the module doc)."""
    return (
        isinstance(value, Mapping)
        and set(value) == {"value_kind", "value"}
        and isinstance(value["value_kind"], str)
    )


def display_response(kind: str, value: Any) -> str:
    """The response that names stored ``value`` of ``kind``: ``utter_value_<kind>_<key>``
    (``order_status``, ``"return requested"`` -> ``utter_value_order_status_return_requested``)."""
    key = _NOT_KEY.sub("_", str(value).strip().lower()).strip("_")
    return f"utter_value_{kind}_{key}"


def is_lines(value: Any) -> bool:
    """A value shown one item per line (see the module doc)."""
    return (
        isinstance(value, Mapping) and set(value) == {"lines"} and isinstance(value["lines"], list)
    )


@dataclass(frozen=True)
class Filler:
    """Fills placeholders for one reply: ``responses`` to render phrases from, the
    ``slots`` under every value, the reply's ``channel``."""

    responses: Mapping[str, Variants]
    slots: Mapping[str, Any]
    channel: str | None = None
    depth: int = 0

    def shown(self, value: Any) -> str:
        """A value as text in a reply: never a Python repr."""
        if value is None:
            return ""
        if is_phrase(value):
            return self.phrase(value)
        if is_data_value(value):
            return self.display_name(value)
        if is_lines(value):
            return "\n".join(self.shown(v) for v in value["lines"])
        if isinstance(value, bool):
            return str(value).lower()
        if isinstance(value, Decimal | float) and value == int(value):
            return str(int(value))
        if isinstance(value, Mapping):
            return ", ".join(self.shown(v) for v in value.values() if v not in (None, ""))
        if isinstance(value, list | tuple | set):
            items = list(value)
            glue = " " if items and all(is_phrase(v) for v in items) else ", "
            return glue.join(self.shown(v) for v in items)
        return str(value)

    def phrase(self, value: Mapping[str, Any]) -> str:
        name = str(value["response"])
        if self.depth >= _MAX_PHRASE_DEPTH:
            log.warning("phrase %s nested too deep", name)
            return ""
        text = self._text_of(name, {k: v for k, v in value.items() if k != "response"})
        if text is None:
            log.warning("phrase %s is not a response of the domain", name)
            return ""
        return text

    def display_name(self, value: Mapping[str, Any]) -> str:
        """A data value's display name (its ``utter_value_<kind>_<key>`` response, which
        may show the stored value as ``{value}``), else the stored value itself."""
        stored = value["value"]
        if stored is None:
            return ""
        named = self._text_of(display_response(str(value["value_kind"]), stored), value)
        return str(stored) if named is None else named

    def _text_of(self, name: str, values: Mapping[str, Any]) -> str | None:
        """Response ``name``'s text filled from ``values`` over the slots, from a variant
        that fits this reply; None when the domain has no such variant."""
        fitting = choose_variants(self.responses.get(name, []), self.slots, self.channel)
        if not fitting:
            return None
        inner = Filler(self.responses, self.slots, self.channel, self.depth + 1)
        return inner.fill(str(random.choice(fitting).get("text") or ""), {**self.slots, **values})

    def fill(self, template: str, values: Mapping[str, Any]) -> str:
        """``template`` with each ``{name}`` replaced by ``shown(values[name])``; a name
        without a value shows nothing (and is logged)."""

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name not in values:
                log.warning("response placeholder {%s} has no value", name)
            return self.shown(values.get(name))

        return _PLACEHOLDER.sub(one, template)

    def shown_phrases(self, data: Any) -> Any:
        """``data`` (an action's custom payload) with every phrase in it replaced by its
        text; everything else as it is."""
        if is_phrase(data):
            return self.phrase(data)
        if isinstance(data, Mapping):
            return {k: self.shown_phrases(v) for k, v in data.items()}
        if isinstance(data, list):
            return [self.shown_phrases(v) for v in data]
        return data

    def fill_custom(self, data: Any, values: Mapping[str, Any]) -> Any:
        if isinstance(data, str):
            return self.fill(data, values)
        if isinstance(data, Mapping):
            return {k: self.fill_custom(v, values) for k, v in data.items()}
        if isinstance(data, list):
            return [self.fill_custom(v, values) for v in data]
        return data


def render_variant(variant: Variant, values: Mapping[str, Any], filler: Filler) -> Reply:
    """One reply from one variant, its placeholders filled from ``values``."""
    text = variant.get("text")
    buttons = tuple(
        Button(
            title=filler.fill(str(b.get("title", "")), values),
            payload=filler.fill(str(b.get("payload", "")), values),
        )
        for b in variant.get("buttons") or []
    )
    custom = variant.get("custom")
    return Reply(
        # a whole reply never starts or ends with space a missing value left
        text=None if text is None else filler.fill(str(text), values).strip(),
        buttons=buttons,
        custom=None if custom is None else filler.fill_custom(custom, values),
        image=variant.get("image"),
    )


def render(
    responses: Mapping[str, Variants],
    name: str,
    slots: Mapping[str, Any],
    values: Mapping[str, Any],
    *,
    channel: str | None = None,
    rng: random.Random | None = None,
) -> list[Reply]:
    """The reply of response ``name`` (none when it is unknown or no variant fits): a
    variant chosen for ``channel`` and ``slots``, filled from ``values`` over ``slots``."""
    fitting = choose_variants(responses.get(name, []), slots, channel)
    if not fitting:
        return []
    chosen = (rng or random).choice(fitting) if len(fitting) > 1 else fitting[0]
    filler = Filler(responses, slots, channel)
    return [render_variant(chosen, {**slots, **values}, filler)]
