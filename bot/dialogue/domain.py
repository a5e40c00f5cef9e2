"""The bot's domain, read from Rasa 3 ``domain.yml`` (a file or a folder of them).

``Domain`` answers what the engine needs (intents, slots and their mappings, forms and
their required slots, responses) and renders responses. Its ``responses`` are the
project's over Clerk's shipped defaults (``bot.dialogue.responses``), so every text the
bot says can be reworded or translated in ``domain.yml``. ``Domain.as_rasa_dict()`` is the
shape the rasa-sdk action server expects in its payload.
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import yaml

from bot.dialogue.responses import Filler, with_defaults
from bot.dialogue.responses import render as render_response
from bot.errors import TrainingDataError
from bot.types import MAX_BUTTON_TITLE, WORD_PHRASES, Reply

#: Clerk's built-in slots: the form's ``requested_slot``, and the shopper's ``language``
#: (``en`` | ``zh``, set by the engine from each message: ``bot.dialogue.language``). A
#: domain need not declare them; one that does keeps its declaration. Neither is sent in
#: the domain an action server gets (the tracker's slots carry their values).
REQUESTED_SLOT = "requested_slot"
LANGUAGE_SLOT = "language"
BUILTIN_SLOTS = (REQUESTED_SLOT, LANGUAGE_SLOT)

BUILTIN_ACTIONS = {
    "action_listen",
    "action_restart",
    "action_session_start",
    "action_default_fallback",
    "action_deactivate_loop",
    "action_knowledge_answer",
    "action_handoff",
    "action_offer_handoff",
    "action_ask_feedback",
}


@dataclass(frozen=True)
class SlotMapping:
    type: str
    entity: str | None = None
    intent: tuple[str, ...] = ()
    not_intent: tuple[str, ...] = ()
    value: Any = None
    role: str | None = None
    group: str | None = None
    conditions: tuple[tuple[str | None, str | None], ...] = ()  # (active_loop, requested_slot)


@dataclass(frozen=True)
class SlotDef:
    name: str
    type: str = "any"
    initial_value: Any = None
    influence_conversation: bool = True
    mappings: tuple[SlotMapping, ...] = ()


@dataclass
class Domain:
    intents: list[str]
    entities: list[str]
    slots: dict[str, SlotDef]
    forms: dict[str, list[str]]
    responses: dict[str, list[dict[str, Any]]]
    actions: list[str]
    session_expiration_minutes: float = 60.0
    carry_over_slots: bool = True
    raw: dict[str, Any] = field(default_factory=dict)

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | Path) -> Domain:
        path = Path(path)
        if path.is_dir():
            candidates = sorted(p for p in path.rglob("*.yml") if _looks_like_domain(p)) + sorted(
                p for p in path.rglob("*.yaml") if _looks_like_domain(p)
            )
            if not candidates:
                raise TrainingDataError("no domain file found", str(path))
        else:
            candidates = [path]
        merged: dict[str, Any] = {}
        for p in candidates:
            merged = _merge(merged, _read_yaml(p))
        return cls.from_dict(merged)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Domain:
        intents = [_name_of(i) for i in data.get("intents") or []]
        entities = [_name_of(e) for e in data.get("entities") or []]
        slots = {
            name: _slot_def(name, spec or {}) for name, spec in (data.get("slots") or {}).items()
        }
        declared = set(slots)
        for builtin in BUILTIN_SLOTS:
            slots.setdefault(builtin, SlotDef(builtin, "any", None, False, ()))
        forms: dict[str, list[str]] = {}
        for name, spec in (data.get("forms") or {}).items():
            spec = spec or {}
            req = spec.get("required_slots", []) if isinstance(spec, dict) else []
            if isinstance(req, dict):  # Rasa 2 style: {slot: [mappings]}
                req = list(req.keys())
            forms[name] = [str(s) for s in req]
            for slot in forms[name]:
                if slot not in slots:
                    raise TrainingDataError(f"form {name!r} requires unknown slot {slot!r}")
        responses = with_defaults(
            {name: list(variants or []) for name, variants in (data.get("responses") or {}).items()}
        )
        session = data.get("session_config") or {}
        raw = dict(data)
        raw.setdefault("forms", {})
        raw["forms"] = {k: {"required_slots": v} for k, v in forms.items()}
        raw["slots"] = {
            n: {**((data.get("slots") or {}).get(n) or {}), "type": s.type}
            for n, s in slots.items()
            if n in declared and n != REQUESTED_SLOT
        }
        return cls(
            intents=intents,
            entities=entities,
            slots=slots,
            forms=forms,
            responses=responses,
            actions=[str(a) for a in data.get("actions") or []],
            session_expiration_minutes=float(session.get("session_expiration_time", 60) or 0),
            carry_over_slots=bool(session.get("carry_over_slots_to_new_session", True)),
            raw=raw,
        )

    # ------------------------------------------------------------------ queries
    def as_rasa_dict(self) -> dict[str, Any]:
        return self.raw

    def is_form(self, name: str) -> bool:
        return name in self.forms

    def is_response(self, name: str) -> bool:
        return name in self.responses

    def initial_slots(self) -> dict[str, Any]:
        return {name: s.initial_value for name, s in self.slots.items()}

    def ask_action_for(self, form: str, slot: str) -> str | None:
        """Rasa's order: action_ask_<form>_<slot>, utter_ask_<form>_<slot>, action_ask_<slot>,
        utter_ask_<slot>."""
        for name in (
            f"action_ask_{form}_{slot}",
            f"utter_ask_{form}_{slot}",
            f"action_ask_{slot}",
            f"utter_ask_{slot}",
        ):
            if name in self.actions or name in self.responses:
                return name
        return None

    # ---------------------------------------------------------------- rendering
    def render(
        self,
        name: str,
        slots: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        channel: str | None = None,
        rng: random.Random | None = None,
    ) -> list[Reply]:
        """The replies of response ``name`` on ``channel`` (none for an unknown name):
        see ``bot.dialogue.responses`` for how the variant is chosen and filled."""
        return render_response(self.responses, name, slots, values or {}, channel=channel, rng=rng)

    def text(
        self,
        name: str,
        slots: Mapping[str, Any],
        values: Mapping[str, Any] | None = None,
        *,
        channel: str | None = None,
    ) -> str:
        """Response ``name`` as one plain text (its replies' texts joined by a space;
        buttons dropped): for wording used as a value inside another reply, or sent
        where only text fits (a handoff notice)."""
        replies = self.render(name, slots, values, channel=channel)
        return " ".join(r.text for r in replies if r.text)

    def render_message(
        self, message: Mapping[str, Any], slots: Mapping[str, Any], *, channel: str | None = None
    ) -> list[Reply]:
        """The replies of one message an action sent (rasa-sdk's ``utter_message`` dict).

        With ``response``: that response rendered, its placeholders filled from the
        message's other keyword arguments, then the slots; the action's own ``buttons``
        follow the response's, and its ``text``, ``image`` and ``custom`` (json_message),
        when given, replace the response's (Rasa's rule). Without: the message as it is.
        Phrases inside the action's ``custom`` are replaced by their text when it asks for
        that (``bot.types.WORD_PHRASES``); any other payload passes through unchanged. A
        button title that is a phrase is worded and cut to ``MAX_BUTTON_TITLE``."""
        name = message.get("response") or message.get("template")
        filler = Filler(self.responses, slots, channel)
        own = Reply.from_rasa({**message, "buttons": _worded_buttons(message, filler)})
        if isinstance(own.custom, Mapping) and own.custom.get(WORD_PHRASES) is True:
            data = {k: v for k, v in own.custom.items() if k != WORD_PHRASES}
            own = replace(own, custom=filler.shown_phrases(data))
        if not name:
            return [own]
        values = {k: v for k, v in message.items() if k not in _MESSAGE_KEYS}
        out = []
        for reply in self.render(str(name), slots, values, channel=channel):
            out.append(
                Reply(
                    text=own.text if own.text else reply.text,
                    buttons=reply.buttons + own.buttons,
                    custom=own.custom if own.custom else reply.custom,
                    image=own.image or reply.image,
                )
            )
        return out


def _worded_buttons(message: Mapping[str, Any], filler: Filler) -> list[Any]:
    """The message's buttons, each title that is not text shown as a shopper reads it."""
    return [
        b
        if not isinstance(b, Mapping) or isinstance(b.get("title", ""), str)
        else {**b, "title": filler.shown(b["title"])[:MAX_BUTTON_TITLE]}
        for b in message.get("buttons") or []
    ]


# The keys of rasa-sdk's ``utter_message`` dict that are not template values.
_MESSAGE_KEYS = frozenset(
    (
        "text",
        "buttons",
        "elements",
        "custom",
        "json_message",
        "template",
        "response",
        "image",
        "attachment",
    )
)


def _looks_like_domain(p: Path) -> bool:
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError:
        return False
    return isinstance(data, dict) and any(k in data for k in ("intents", "responses", "slots"))


def _read_yaml(p: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(p.read_text()) or {}
    except yaml.YAMLError as exc:
        line = getattr(getattr(exc, "problem_mark", None), "line", None)
        raise TrainingDataError(f"invalid YAML: {exc}", str(p), None if line is None else line + 1)
    if not isinstance(data, dict):
        raise TrainingDataError("a domain file must be a mapping", str(p))
    return data


def _merge(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = dict(a)
    for k, v in b.items():
        if k in out and isinstance(out[k], list) and isinstance(v, list):
            out[k] = out[k] + [x for x in v if x not in out[k]]
        elif k in out and isinstance(out[k], dict) and isinstance(v, dict):
            out[k] = {**out[k], **v}
        else:
            out[k] = v
    return out


def _name_of(item: Any) -> str:
    if isinstance(item, dict):
        return str(next(iter(item)))
    return str(item)


def _as_tuple(v: Any) -> tuple[str, ...]:
    if v is None:
        return ()
    if isinstance(v, str):
        return (v,)
    return tuple(str(x) for x in v)


def _slot_def(name: str, spec: dict[str, Any]) -> SlotDef:
    mappings = []
    for m in spec.get("mappings") or []:
        conds = tuple(
            (c.get("active_loop"), c.get("requested_slot")) for c in (m.get("conditions") or [])
        )
        mappings.append(
            SlotMapping(
                type=str(m.get("type")),
                entity=m.get("entity"),
                intent=_as_tuple(m.get("intent")),
                not_intent=_as_tuple(m.get("not_intent")),
                value=m.get("value"),
                role=m.get("role"),
                group=m.get("group"),
                conditions=conds,
            )
        )
    return SlotDef(
        name=name,
        type=str(spec.get("type", "any")),
        initial_value=spec.get("initial_value"),
        influence_conversation=bool(spec.get("influence_conversation", True)),
        mappings=tuple(mappings),
    )
