"""A channel that can show tokens gets the knowledge answer piece by piece, in order, and
the pieces make up the final reply."""

from __future__ import annotations

from bot.types import ConversationId, Message


async def test_knowledge_answers_stream_through_the_manager(
    module_database_url: str,
    bot_settings,
    shared_encoder,  # type: ignore[no-untyped-def]
) -> None:
    from bot.app import build

    parts = build(bot_settings(module_database_url), encoder=shared_encoder)
    pieces: list[str] = []

    async def on_token(delta: str) -> None:
        pieces.append(delta)

    replies = await parts.manager.handle(
        Message(conversation_id=ConversationId("stream-1"), text="can I cancel a processed order?"),
        on_token=on_token,
    )
    [answer] = [r for r in replies if r.custom and r.custom.get("type") == "answer"]
    assert pieces  # the extractive writer shows its answer as one guarded piece
    assert "".join(pieces).strip() == (answer.text or "").strip()
    assert "pending" in (answer.text or "").lower()

    # without a sink the same turn type returns the whole answer and streams nothing
    again = await parts.manager.handle(
        Message(conversation_id=ConversationId("stream-2"), text="can I cancel a processed order?")
    )
    assert any("pending" in (r.text or "").lower() for r in again)
    parts.db.dispose()
