"""What the bot says: domain responses rendered on the turn's channel and applied to the
tracker as ``BotUttered`` events, and an action's results applied the same way."""

from __future__ import annotations

from typing import Any

from bot.dialogue.domain import Domain
from bot.dialogue.tracker import Tracker
from bot.types import BotUttered, Event, Reply, event_from_dict


class Voice:
    """Renders ``domain``'s responses for a tracker (its slots fill placeholders that the
    given values leave open; its ``channel`` chooses the variant)."""

    def __init__(self, domain: Domain) -> None:
        self.domain = domain

    def utter(self, tracker: Tracker, response: str, **values: Any) -> None:
        """Say response ``response`` on the turn's channel, ``values`` filling its
        placeholders over the slots."""
        for r in self.replies(tracker, response, **values):
            tracker.apply(bot_event(r, response))

    def replies(self, tracker: Tracker, response: str, **values: Any) -> list[Reply]:
        """The replies ``response`` renders to, not applied."""
        return self.domain.render(response, tracker.slots, values, channel=tracker.channel)

    def phrase(self, tracker: Tracker, response: str, **values: Any) -> str:
        """The text of a response used as a value inside another one (say, the wait)."""
        return self.domain.text(response, tracker.slots, values, channel=tracker.channel)

    def apply_result(self, tracker: Tracker, result: dict[str, Any]) -> list[Event]:
        """Apply an action's ``{"events": [...], "responses": [...]}``: its events in order,
        then its responses rendered from the domain. Returns the events applied (not the
        bot messages)."""
        applied: list[Event] = []
        for raw in result.get("events") or []:
            ev = event_from_dict(raw)
            tracker.apply(ev)
            applied.append(ev)
        for resp in result.get("responses") or []:
            name = resp.get("response") or resp.get("template")
            for r in self.domain.render_message(resp, tracker.slots, channel=tracker.channel):
                tracker.apply(bot_event(r, name))
        return applied


def bot_event(reply: Reply, response: str | None = None) -> BotUttered:
    """The event of the bot saying ``reply``, naming the response it came from."""
    data: dict[str, Any] = {}
    if reply.buttons:
        data["buttons"] = [b.to_dict() for b in reply.buttons]
    if reply.custom is not None:
        data["custom"] = reply.custom
    if reply.image is not None:
        data["image"] = reply.image
    return BotUttered(
        text=reply.text, data=data, metadata={"utter_action": response} if response else {}
    )
