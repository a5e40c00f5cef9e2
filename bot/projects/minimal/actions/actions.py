"""This store's own actions (rasa-sdk). Clerk's store actions — orders, returns, exchanges,
tickets, recommendations — are built in; an action here with the same name replaces one.

Every text comes from domain.yml: an action names a response and passes the values."""

from __future__ import annotations

import datetime
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.executor import CollectingDispatcher

# Opening hours per weekday (Monday = 0); None = closed.
OPENING_HOURS: dict[int, str | None] = {
    0: "9:00-18:00",
    1: "9:00-18:00",
    2: "9:00-18:00",
    3: "9:00-18:00",
    4: "9:00-18:00",
    5: "10:00-16:00",
    6: None,
}


class ActionOpeningHours(Action):
    def name(self) -> str:
        return "action_opening_hours"

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: dict[str, Any]
    ) -> list[dict[str, Any]]:
        hours = OPENING_HOURS[datetime.date.today().weekday()]
        if hours is None:
            dispatcher.utter_message(response="utter_closed_today")
        else:
            dispatcher.utter_message(response="utter_opening_hours", hours=hours)
        return []
