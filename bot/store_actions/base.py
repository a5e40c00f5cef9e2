"""What every store action shares: its database, and reading the tracker.

Who owns the database: an action built by ``actions.build_actions(db)`` uses that
``Database`` (Clerk's engine, in process). An action built with no argument — as rasa-sdk's
``ActionExecutor.register_package("bot.store_actions")`` and ``python -m rasa_sdk --actions bot.store_actions``
build them — opens ``database_from_env()`` (``CLERK_DATABASE_URL``) the first time it needs
it; actions of one process share that engine, one per URL.

The store's currency (``Settings.currency``, in which every price is written) is owned
the same way: ``build_actions(db, currency=...)`` passes the engine's; an action built
without it reads ``Settings.load().currency`` (``CLERK_CURRENCY`` or the project's
``clerk.yml``) the first time it writes a price.

Every DB access goes through ``Database.session()``: inside an engine turn that is the
turn's session (committed or rolled back with the whole turn), otherwise a session that
commits when the action's block ends. Actions never commit themselves.

Registration contract: rasa-sdk registers every imported, non-abstract ``Action`` subclass
by instantiating it with no arguments. The helpers here stay abstract (``name`` is an
``abstractmethod``) so they are never registered under a bogus name.
"""

from __future__ import annotations

import threading
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from typing import Any

from rasa_sdk import Action, Tracker
from rasa_sdk.forms import FormValidationAction

from bot.store.db import Database

_env_lock = threading.Lock()
_env_databases: dict[str, Database] = {}


def currency_from_env() -> str:
    """The store's currency as the process's settings give it (``CLERK_CURRENCY``,
    ``clerk.yml``; USD by default)."""
    from bot.config import Settings

    return Settings.load().currency


def database_from_env() -> Database:
    """The process's ``Database`` for ``CLERK_DATABASE_URL`` (one engine per URL)."""
    from bot.config import Settings

    url = Settings.load().database_url
    with _env_lock:
        db = _env_databases.get(url)
        if db is None:
            db = _env_databases[url] = Database(url)
        return db


class UsesStore:
    """Holds the injected ``Database`` and currency, or resolves them from the environment
    on first use."""

    def __init__(self, db: Database | None = None, *, currency: str | None = None) -> None:
        self._db = db
        self._currency = currency

    @property
    def db(self) -> Database:
        if self._db is None:
            self._db = database_from_env()
        return self._db

    @property
    def currency(self) -> str:
        """The ISO code of the store's currency: every price a reply shows is in it."""
        if self._currency is None:
            self._currency = currency_from_env()
        return self._currency


class StoreAction(UsesStore, Action, ABC):
    """Base of the store's plain actions (questions, submissions, look-ups)."""

    @abstractmethod
    def name(self) -> str: ...


class StoreFormValidator(UsesStore, FormValidationAction, ABC):
    """Base of the store's ``validate_<form>`` actions."""

    @abstractmethod
    def name(self) -> str: ...


# ---------------------------------------------------------------------- tracker reading


def latest_text(tracker: Tracker) -> str:
    return str((tracker.latest_message or {}).get("text") or "")


def latest_intent(tracker: Tracker) -> str | None:
    intent = (tracker.latest_message or {}).get("intent") or {}
    if isinstance(intent, dict):
        return intent.get("name")
    return str(intent) if intent else None


def entity_values(tracker: Tracker, entity: str) -> list[Any]:
    """Values of ``entity`` in the latest message, any role or group."""
    entities = (tracker.latest_message or {}).get("entities") or []
    return [
        e.get("value") for e in entities if e.get("entity") == entity and e.get("value") is not None
    ]


def first_entity(tracker: Tracker, entity: str) -> Any:
    values = entity_values(tracker, entity)
    return values[0] if values else None


def events_before_latest_user(tracker: Tracker) -> Iterator[dict[str, Any]]:
    """The tracker's events before the latest user message, newest first. Without a user
    message, the events before the trailing slot candidates."""
    events = tracker.events or []
    cut = max((i for i, e in enumerate(events) if e.get("event") == "user"), default=None)
    if cut is None:
        cut = len(events)
        while cut > 0 and events[cut - 1].get("event") == "slot":
            cut -= 1
    yield from reversed(events[:cut])


def slot_before_turn(tracker: Tracker, name: str) -> Any:
    """The value ``name`` had before the latest user message (None when never set)."""
    for e in events_before_latest_user(tracker):
        if e.get("event") == "slot" and e.get("name") == name:
            return e.get("value")
        if e.get("event") in ("restart", "reset_slots"):
            return None
    return None


def form_already_asked(tracker: Tracker, questions: Collection[str]) -> bool:
    """Did the active form's validation, in this turn, already say one of the responses
    ``questions`` (by name: ``metadata.utter_action`` of its bot event)?

    An ``action_ask_<slot>`` uses this to stay silent when the validation has just asked
    a narrower version of its question (say, which of three matching options), instead of
    repeating the full list. Anything else since the shopper's message (a side answer,
    say) makes the question be asked again in full.
    """
    form = tracker.active_loop_name
    asked = False
    for e in reversed(tracker.events or []):
        kind = e.get("event")
        if kind == "user":
            return False
        if kind == "bot" and (e.get("metadata") or {}).get("utter_action") in questions:
            asked = True
        if kind == "action" and e.get("name") != "action_listen":
            return asked and e.get("name") in (form, f"validate_{form}")
    return False
