"""Value types that cross module boundaries: messages, replies and tracker events.

Everything here is a frozen dataclass. Events convert to and from Rasa's JSON event
shapes (``{"event": "slot", "name": ..., "value": ...}``) only at the edges: the tracker
store, the action-server protocol and the REST API. This module imports nothing of ``bot``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any, NewType

ConversationId = NewType("ConversationId", str)
CustomerId = NewType("CustomerId", str)
OrderId = NewType("OrderId", str)
TicketId = NewType("TicketId", str)

MAX_MESSAGE_CHARS = 4000

#: Actions that answer a shopper's message the bot did not understand (a "miss"): the
#: default fallback, out of scope, and the offer of a human after misses. The dialogue
#: counts misses in a row with it; analytics counts fallbacks with it.
MISS_ACTIONS = frozenset({"action_default_fallback", "utter_out_of_scope", "action_offer_handoff"})
#: The policy recorded on ``action_handoff`` when the bot itself decided to hand off:
#: ``HandoffPolicy:<trigger kind>``.
HANDOFF_POLICY = "HandoffPolicy"
#: Trigger kinds (``bot.handoff.triggers.TriggerKind``) of a handoff the bot decides on
#: instead of answering a miss: out of scope (``handoff_on_out_of_scope``), and the last
#: miss of a row (misses mode ``handoff``). Analytics counts such an answer as a miss.
MISS_HANDOFF_TRIGGERS = frozenset({"out_of_scope", "misses"})
#: The action that ends a turn: the bot waits for the shopper (no step of its own).
LISTEN = "action_listen"
#: In an action's custom payload (``json_message``), this key set to ``True`` asks the
#: engine to replace the phrases inside (``{"response": name, **values}``) by their text;
#: the engine drops the key. Any other payload reaches the channel exactly as sent.
WORD_PHRASES = "clerk_word_phrases"
#: The longest button title an action's button keeps (the rest is cut).
MAX_BUTTON_TITLE = 80


@dataclass(frozen=True)
class Button:
    title: str
    payload: str

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "payload": self.payload}


@dataclass(frozen=True)
class Message:
    """One inbound shopper message, as a channel hands it to the dialogue manager."""

    conversation_id: ConversationId
    text: str
    channel: str = "rest"
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Reply:
    """One outbound bot message. ``custom`` carries structured payloads (product cards)."""

    text: str | None = None
    buttons: tuple[Button, ...] = ()
    custom: dict[str, Any] | None = None
    image: str | None = None

    def to_rasa(self, recipient_id: str) -> dict[str, Any]:
        out: dict[str, Any] = {"recipient_id": recipient_id}
        if self.text is not None:
            out["text"] = self.text
        if self.buttons:
            out["buttons"] = [b.to_dict() for b in self.buttons]
        if self.custom is not None:
            out["custom"] = self.custom
        if self.image is not None:
            out["image"] = self.image
        return out

    @classmethod
    def from_rasa(cls, data: dict[str, Any]) -> Reply:
        """Build from a rasa-sdk response dict (``dispatcher.utter_message`` output)."""
        buttons = tuple(
            Button(title=str(b.get("title", "")), payload=str(b.get("payload", "")))
            for b in (data.get("buttons") or [])
        )
        custom = data.get("custom") or data.get("json_message") or None
        return cls(text=data.get("text"), buttons=buttons, custom=custom, image=data.get("image"))


# ---------------------------------------------------------------------------------------
# Events. ``Event.to_dict`` gives Rasa's JSON shape; ``event_from_dict`` parses it back.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    timestamp: float = field(default_factory=time.time, kw_only=True)

    type_name = "event"

    def payload(self) -> dict[str, Any]:
        return {}

    def to_dict(self) -> dict[str, Any]:
        return {"event": self.type_name, "timestamp": self.timestamp, **self.payload()}


@dataclass(frozen=True)
class UserUttered(Event):
    """``metadata["to_agent"]``: written while a human agent held the conversation, so the
    bot did not answer it (analytics leaves such messages out of the bot's figures)."""

    text: str
    parse_data: dict[str, Any] = field(default_factory=dict)
    input_channel: str | None = None
    message_id: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    type_name = "user"

    @property
    def intent(self) -> str | None:
        return (self.parse_data.get("intent") or {}).get("name")

    @property
    def entities(self) -> list[dict[str, Any]]:
        return list(self.parse_data.get("entities") or [])

    @property
    def to_agent(self) -> bool:
        return bool(self.metadata.get("to_agent"))

    def payload(self) -> dict[str, Any]:
        out = {
            "text": self.text,
            "parse_data": self.parse_data,
            "input_channel": self.input_channel,
            "message_id": self.message_id,
        }
        if self.metadata:
            out["metadata"] = self.metadata
        return out


@dataclass(frozen=True)
class BotUttered(Event):
    """``metadata["utter_action"]``: the domain response the text was rendered from (as
    in Rasa), so actions can tell which question was just asked whatever its wording."""

    text: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)

    type_name = "bot"

    def payload(self) -> dict[str, Any]:
        return {"text": self.text, "data": self.data, "metadata": self.metadata}

    def to_reply(self) -> Reply:
        return Reply.from_rasa({"text": self.text, **self.data})

    @property
    def outside_turn_id(self) -> str | None:
        """The id of a message the bot said outside any shopper turn
        (``metadata["message_id"]``: a rating request sent through the outbox, a rating's
        thanks); ``None`` for a reply to a shopper's message."""
        said = self.metadata.get("message_id")
        return str(said) if said else None


def is_outside_turn(event: Event) -> bool:
    """Whether ``event`` is the bot saying something outside any shopper turn: never part
    of the replies to the shopper message before it (a retry's answer, the widget's
    history)."""
    return isinstance(event, BotUttered) and event.outside_turn_id is not None


@dataclass(frozen=True)
class ActionExecuted(Event):
    name: str
    policy: str | None = None
    confidence: float | None = None

    type_name = "action"

    def payload(self) -> dict[str, Any]:
        return {"name": self.name, "policy": self.policy, "confidence": self.confidence}


@dataclass(frozen=True)
class SlotSet(Event):
    key: str
    value: Any = None

    type_name = "slot"

    def payload(self) -> dict[str, Any]:
        return {"name": self.key, "value": self.value}


@dataclass(frozen=True)
class ActiveLoop(Event):
    name: str | None

    type_name = "active_loop"

    def payload(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True)
class FollowupAction(Event):
    name: str

    type_name = "followup"

    def payload(self) -> dict[str, Any]:
        return {"name": self.name}


@dataclass(frozen=True)
class AllSlotsReset(Event):
    type_name = "reset_slots"


@dataclass(frozen=True)
class Restarted(Event):
    type_name = "restart"


@dataclass(frozen=True)
class SessionStarted(Event):
    type_name = "session_started"


@dataclass(frozen=True)
class HandoffEvent(Event):
    """A step of a human handoff: requested, claimed, agent_message, returned, closed."""

    step: str
    reason: str | None = None
    data: dict[str, Any] = field(default_factory=dict)

    type_name = "handoff"

    def payload(self) -> dict[str, Any]:
        return {"step": self.step, "reason": self.reason, "data": self.data}


@dataclass(frozen=True)
class FeedbackGiven(Event):
    """The shopper's rating of the conversation (CSAT), given when the bot asked for it at
    the end of a conversation: ``rating`` is ``"up"`` or ``"down"`` (``FEEDBACK_RATINGS``).
    A later rating in the same conversation replaces an earlier one for analytics."""

    rating: str

    type_name = "feedback"

    def payload(self) -> dict[str, Any]:
        return {"rating": self.rating}


FEEDBACK_RATINGS = ("up", "down")


@dataclass(frozen=True)
class UnknownEvent(Event):
    """An event type Clerk does not interpret; kept verbatim so nothing is lost."""

    raw: dict[str, Any] = field(default_factory=dict)

    type_name = "unknown"

    def to_dict(self) -> dict[str, Any]:
        return dict(self.raw)


def event_from_dict(data: dict[str, Any]) -> Event:
    """Parse one Rasa-shaped event dict. Unknown types are preserved as ``UnknownEvent``."""
    kind = data.get("event")
    ts = data.get("timestamp")
    kw: dict[str, Any] = {"timestamp": float(ts)} if ts is not None else {}
    if kind == "user":
        return UserUttered(
            text=data.get("text") or "",
            parse_data=data.get("parse_data") or {},
            input_channel=data.get("input_channel"),
            message_id=data.get("message_id"),
            metadata=data.get("metadata") or {},
            **kw,
        )
    if kind == "bot":
        return BotUttered(
            text=data.get("text"),
            data=data.get("data") or {},
            metadata=data.get("metadata") or {},
            **kw,
        )
    if kind == "action":
        return ActionExecuted(
            name=data["name"], policy=data.get("policy"), confidence=data.get("confidence"), **kw
        )
    if kind == "slot":
        return SlotSet(key=data["name"], value=data.get("value"), **kw)
    if kind in ("active_loop", "form"):
        return ActiveLoop(name=data.get("name"), **kw)
    if kind == "followup":
        return FollowupAction(name=data["name"], **kw)
    if kind == "reset_slots":
        return AllSlotsReset(**kw)
    if kind == "restart":
        return Restarted(**kw)
    if kind == "session_started":
        return SessionStarted(**kw)
    if kind == "handoff":
        return HandoffEvent(
            step=data["step"], reason=data.get("reason"), data=data.get("data") or {}, **kw
        )
    if kind == "feedback" and data.get("rating") in FEEDBACK_RATINGS:
        return FeedbackGiven(rating=str(data["rating"]), **kw)
    return UnknownEvent(raw=dict(data), **kw)
