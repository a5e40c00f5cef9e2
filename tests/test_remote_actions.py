"""Custom actions on a real rasa-sdk action server (CLERK_ACTION_ENDPOINT), an action
server that is down, and turns that fail half-way: nothing half-written reaches the DB."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.actions import InProcessActionRunner
from bot.store.db import Database
from bot.store.models import ConversationEvent, Order, OrderChange
from bot.types import ConversationId, Message
from tests.live import ActionServer, Chat, LiveServer, free_port


def _order(db: Database, order_id: str) -> Order:
    with db.session() as s:
        o = s.get(Order, order_id)
        s.expunge(o)
        return o


def _events(db: Database, sender: str) -> list[dict[str, Any]]:
    with db.session() as s:
        return list(
            s.scalars(
                select(ConversationEvent.data)
                .where(ConversationEvent.conversation_id == sender)
                .order_by(ConversationEvent.seq)
            )
        )


@pytest.fixture(scope="module")
def settings(module_database_url: str, bot_settings):  # type: ignore[no-untyped-def]
    return bot_settings(module_database_url)


@pytest.fixture(scope="module")
def db(settings) -> Iterator[Database]:  # type: ignore[no-untyped-def]
    database = Database(settings.database_url)
    yield database
    database.dispose()


def test_actions_on_a_real_rasa_sdk_action_server(settings, db, shared_encoder) -> None:  # type: ignore[no-untyped-def]
    from bot.app import build, create_app

    with ActionServer(settings.database_url) as actions:
        remote = dataclasses.replace(settings, action_endpoint=actions.url)
        parts = build(remote, encoder=shared_encoder)
        with LiveServer(create_app(parts)) as server:
            chat = Chat(server.url)
            assert "email" in chat.text("please cancel my order #W5183325")
            assert "why" in chat.text("ivan.santos3158@example.com")
            summary = chat.text("no longer needed")
            assert "led light bulb" in summary and "mechanical keyboard" in summary
            assert "cancelled" in chat.text("yes")
    assert _order(db, "#W5183325").status == "cancelled"
    with db.session() as s:
        [change] = s.scalars(select(OrderChange).where(OrderChange.order_id == "#W5183325")).all()
        assert change.kind == "cancel" and change.data["reason"] == "no longer needed"


def test_an_action_server_that_is_down_gets_a_polite_reply(settings, db, shared_encoder) -> None:  # type: ignore[no-untyped-def]
    from bot.app import build, create_app

    down = dataclasses.replace(settings, action_endpoint=f"http://127.0.0.1:{free_port()}/webhook")
    parts = build(down, encoder=shared_encoder)
    with LiveServer(create_app(parts)) as server:
        chat = Chat(server.url)
        reply = chat.text("cancel order #W3913498")
        assert "went wrong" in reply and "nothing was changed" in reply
        chat.text("ivan.santos3158@example.com")
        assert parts.manager.stats.action_failures >= 1
        # the bot still answers what needs no custom action
        assert "bot" in chat.text("are you a bot?")
    assert _order(db, "#W3913498").status == "pending"
    kinds = [e["event"] for e in _events(db, chat.conversation_id)]
    assert kinds.count("user") == 3  # every shopper message is kept


async def test_a_failing_action_leaves_no_trace(settings, db, shared_encoder) -> None:  # type: ignore[no-untyped-def]
    """An in-process action runs in its own unit of work: one that writes and then crashes
    is rolled back whole, and the shopper gets a polite reply."""
    from bot.app import build
    from bot.store_actions import build_actions
    from bot.store_actions.orders import ActionCancelOrder

    class CrashingCancel(ActionCancelOrder):
        async def run(self, dispatcher, tracker, domain):  # type: ignore[no-untyped-def]
            await super().run(dispatcher, tracker, domain)  # writes the cancellation
            raise RuntimeError("simulated crash after the write")

    actions = [a for a in build_actions(db) if a.name() != "action_cancel_order"]
    runner = InProcessActionRunner([*actions, CrashingCancel(db)], db=db)
    parts = build(settings, encoder=shared_encoder, actions=runner)
    sender = ConversationId("savepoint-test")

    async def say(text: str) -> str:
        replies = await parts.manager.handle(Message(conversation_id=sender, text=text))
        return "\n".join(r.text or "" for r in replies).lower()

    await say("cancel order #W2090453")
    await say("olivia.jackson2465@example.com")
    await say("ordered by mistake")
    reply = await say("yes")
    assert "went wrong" in reply
    assert _order(db, "#W2090453").status == "pending"
    with db.session() as s:
        assert not s.scalars(select(OrderChange).where(OrderChange.order_id == "#W2090453")).all()
    assert any(e["event"] == "user" and e["text"] == "yes" for e in _events(db, sender))
    parts.db.dispose()


async def test_a_turn_whose_events_cannot_be_stored_writes_none_of_them(
    settings,
    db,
    shared_encoder,
    monkeypatch: pytest.MonkeyPatch,  # type: ignore[no-untyped-def]
) -> None:
    """The turn's events are stored in one transaction or not at all, and the conversation
    is free again at once. An action's own change is its own unit of work: committed when
    the action succeeded (as with a remote action server), with its audit row."""
    from bot.app import build
    from bot.store import conversations

    parts = build(settings, encoder=shared_encoder)
    sender = ConversationId("atomic-turn-test")
    for text in ("cancel order #W6975922", "olivia.jackson2465@example.com", "no longer needed"):
        await parts.manager.handle(Message(conversation_id=sender, text=text))
    stored_before = len(_events(db, sender))

    def broken_commit(*args: Any, **kwargs: Any) -> bool:
        raise RuntimeError("database went away")

    monkeypatch.setattr(conversations, "commit", broken_commit)
    with pytest.raises(RuntimeError):
        await parts.manager.handle(Message(conversation_id=sender, text="yes"))
    assert len(_events(db, sender)) == stored_before
    assert _order(db, "#W6975922").status == "cancelled"
    with db.session() as s:
        [change] = s.scalars(select(OrderChange).where(OrderChange.order_id == "#W6975922"))
        assert change.conversation_id == sender
    monkeypatch.undo()
    # not held by the failed turn: the next message is handled at once
    reply = await asyncio.wait_for(
        parts.manager.handle(Message(conversation_id=sender, text="are you a bot?")), 5
    )
    assert "bot" in " ".join(r.text or "" for r in reply).lower()
    parts.db.dispose()
