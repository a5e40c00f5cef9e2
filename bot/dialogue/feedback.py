"""CSAT: when the bot asks the shopper to rate the conversation, and what a rating writes.

**When** ("the end of a conversation", for any store; at most once per conversation
session, and never while a human agent is awaited or holds the conversation):

- the bot has just said one of the store's closing responses, ``ask_after`` (the
  ``feedback_after`` setting; default ``utter_goodbye``, the goodbye response of every Rasa
  project, Clerk's templates included);
- a rule or story runs the built-in action ``action_ask_feedback`` (a store's own end, e.g.
  after "no, that's all");
- a human agent closes a handoff from the console (``DialogueManager.run_external`` sees
  the ``closed`` step and asks through the outbox, as it tells the shopper of the close).

A session starts with ``SessionStarted`` (or ``Restarted``); a second "bye" in the same
session gets the goodbye without a second request.

**The request** is one ``BotUttered``: the text of ``utter_ask_feedback`` and, in
``data["custom"]``::

    {"type": "feedback_request", "ratings": [{"rating": "up", "label": <utter_feedback_up>},
                                            {"rating": "down", "label": <utter_feedback_down>}]}

(``metadata["utter_action"]`` is ``utter_ask_feedback``). It adds no ``ActionExecuted`` of
its own after a closing response, so rules and stories see the conversation as written.

**A rating** (``FeedbackGiven``, ``rating`` in ``FEEDBACK_RATINGS``) is appended with the
thanks (``utter_thanks_for_feedback``, custom ``{"type": "feedback_thanks", "rating", "id"}``)
by ``DialogueManager.record_feedback``, in one short transaction, without a bot turn. It is
accepted only in the session the request was made in, while that session lasts (the
domain's ``session_expiration_time``): a late rating would append fresh events to an old
session, and the shopper's next message would carry it on instead of starting a new one.
The same rating twice is recorded once.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from bot.dialogue.domain import Domain
from bot.dialogue.tracker import Tracker
from bot.dialogue.voice import bot_event
from bot.errors import BadRating
from bot.types import (
    FEEDBACK_RATINGS,
    BotUttered,
    Event,
    FeedbackGiven,
    Reply,
    Restarted,
    SessionStarted,
)

log = logging.getLogger(__name__)

REQUEST_TYPE = "feedback_request"
THANKS_TYPE = "feedback_thanks"
ASK_RESPONSE = "utter_ask_feedback"
THANKS_RESPONSE = "utter_thanks_for_feedback"
LABEL_RESPONSES = {"up": "utter_feedback_up", "down": "utter_feedback_down"}
ASK_ACTION = "action_ask_feedback"
DEFAULT_ASK_AFTER = ("utter_goodbye",)


def is_request(event: Event) -> bool:
    """Whether ``event`` is the bot asking for a rating."""
    return (
        isinstance(event, BotUttered)
        and (event.data.get("custom") or {}).get("type") == REQUEST_TYPE
    )


def asked_in_session(events: Iterable[Event]) -> bool:
    """Whether the bot asked for a rating since the conversation's session last started."""
    asked = False
    for e in events:
        if isinstance(e, SessionStarted | Restarted):
            asked = False
        elif is_request(e):
            asked = True
    return asked


def ever_asked(events: Iterable[Event]) -> bool:
    """Whether the bot ever asked this conversation for a rating (one asked only in an
    earlier session is refused as too late, not as never asked)."""
    return any(is_request(e) for e in events)


def checked_rating(rating: object) -> str:
    """``rating`` if it is one of ``FEEDBACK_RATINGS``, else ``BadRating``."""
    if not isinstance(rating, str) or rating not in FEEDBACK_RATINGS:
        raise BadRating(rating, FEEDBACK_RATINGS)
    return rating


class Feedback:
    """Asks for ratings in ``domain``'s words and writes them onto trackers (no I/O).
    A closing response (``ask_after``) the domain does not have is logged as a warning
    when built: the bot never says it, so it never asks after it."""

    def __init__(self, domain: Domain, ask_after: Iterable[str] = DEFAULT_ASK_AFTER) -> None:
        self.domain = domain
        self.ask_after = frozenset(ask_after)
        for name in sorted(self.ask_after - set(domain.responses)):
            log.warning(
                "feedback_after names %r, which is no response of the domain: the bot will "
                "not ask for a rating after it",
                name,
            )

    # ------------------------------------------------------------------ asking
    def due(self, tracker: Tracker) -> bool:
        """Whether the turn so far said a closing response and the bot may still ask."""
        said = any(
            isinstance(e, BotUttered) and e.metadata.get("utter_action") in self.ask_after
            for e in tracker.new_events
        )
        return said and self.may_ask(tracker)

    @staticmethod
    def may_ask(tracker: Tracker) -> bool:
        """Not asked in this session, and no human agent awaited or holding."""
        if tracker.handoff_status in ("requested", "claimed"):
            return False
        return not asked_in_session(tracker.events)

    def ask(
        self,
        tracker: Tracker,
        request: Reply | None = None,
        *,
        message_id: str | None = None,
    ) -> BotUttered:
        """Apply ``request`` (default: ``self.request`` worded for the turn's channel) to
        ``tracker`` and return its event. A request also sent elsewhere (the outbox) is
        passed in, so the shopper and the tracker hold the same words: ``Domain.render``
        picks among a response's variants at random. ``message_id``: the outbox id of a
        request sent outside a turn."""
        if request is None:
            request = self.request(tracker.slots, tracker.channel)
        event = _bot_event(request, ASK_RESPONSE, message_id)
        tracker.apply(event)
        return event

    def request(self, slots: Mapping[str, Any], channel: str | None) -> Reply:
        """The request as one reply: ``utter_ask_feedback``'s text on ``channel`` and the
        ``feedback_request`` payload with the thumbs' labels."""
        return Reply(
            text=self.domain.text(ASK_RESPONSE, slots, channel=channel) or None,
            custom={
                "type": REQUEST_TYPE,
                "ratings": [
                    {"rating": rating, "label": self.domain.text(name, slots, channel=channel)}
                    for rating, name in LABEL_RESPONSES.items()
                ],
            },
        )

    # ------------------------------------------------------------------ recording
    @staticmethod
    def thanks_for_same(events: Iterable[Event], rating: str) -> list[BotUttered] | None:
        """The thanks the conversation's last rating got, when that rating was ``rating``
        and no request came after it (the same thumb pressed again: nothing new to
        record); else ``None``."""
        last: str | None = None
        thanks: list[BotUttered] = []
        for e in events:
            if is_request(e):
                last, thanks = None, []
            elif isinstance(e, FeedbackGiven):
                last, thanks = e.rating, []
            elif (
                last is not None
                and isinstance(e, BotUttered)
                and (e.data.get("custom") or {}).get("type") == THANKS_TYPE
            ):
                thanks.append(e)
        return thanks if last == rating else None

    def rate(self, tracker: Tracker, rating: str, *, channel: str | None) -> list[Event]:
        """Apply ``FeedbackGiven(rating)`` and the thanks to ``tracker``; returns the events.
        The caller has checked the rating (``checked_rating``) and that the bot asked."""
        feedback = FeedbackGiven(rating=rating)
        tracker.apply(feedback)
        events: list[Event] = [feedback]
        for reply in self.domain.render(THANKS_RESPONSE, tracker.slots, channel=channel):
            message_id = uuid.uuid4().hex
            custom = {
                **(reply.custom or {}),
                "type": THANKS_TYPE,
                "rating": rating,
                "id": message_id,
            }
            event = _bot_event(replace(reply, custom=custom), THANKS_RESPONSE, message_id)
            tracker.apply(event)
            events.append(event)
        return events


def _bot_event(reply: Reply, response: str, message_id: str | None) -> BotUttered:
    """The bot saying ``reply``; ``message_id``: its id for channels, when it is said
    outside a shopper's turn (the widget shows it as ``agent:<id>``, live and in history)."""
    event = bot_event(reply, response)
    if message_id is None:
        return event
    return BotUttered(
        text=event.text,
        data=event.data,
        metadata={**event.metadata, "message_id": message_id},
        timestamp=event.timestamp,
    )
