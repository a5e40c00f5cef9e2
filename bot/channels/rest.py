"""Rasa's REST channel: ``POST /webhooks/rest/webhook`` with ``{"sender", "message"}``
returns ``[{"recipient_id", "text", "buttons"?, "custom"?}]`` so existing Rasa clients work.

Bad requests get HTTP 400 with ``{"error": ...}``; nothing is stored for them.

While a human agent holds a conversation the bot stays silent (the webhook answers ``[]``);
the agent's messages wait in the outbox until the client takes them with
``GET /webhooks/rest/messages?sender=ID``: ``[{"recipient_id", "text", "custom": {"type":
"agent_message" | "handoff_notice", "id", "agent"?}}]``, oldest first, each returned once.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.channels.base import Channel
from bot.dialogue.manager import DialogueManager
from bot.handoff.outbox import Outbox
from bot.types import ConversationId, Message

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_SENDER_CHARS = 200


def bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


async def read_json_object(request: Request) -> dict[str, Any] | JSONResponse:
    """The request body as a JSON object, or a 400 response saying what is wrong."""
    body = await request.body()
    if len(body) > MAX_BODY_BYTES:
        return JSONResponse({"error": f"request body over {MAX_BODY_BYTES} bytes"}, status_code=413)
    try:
        data = json.loads(body or b"null")
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        return bad_request(f"malformed JSON: {exc}")
    if not isinstance(data, dict):
        return bad_request("the body must be a JSON object")
    return data


class RestChannel(Channel):
    name = "rest"

    def __init__(self, manager: DialogueManager, outbox: Outbox | None = None) -> None:
        self.manager = manager
        self.outbox = outbox

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/webhooks/rest/webhook", self.webhook, methods=["POST"]),
            Route("/webhooks/rest/", self.status, methods=["GET"]),
        ]
        if self.outbox is not None:
            routes.append(Route("/webhooks/rest/messages", self.messages, methods=["GET"]))
        return routes

    async def messages(self, request: Request) -> JSONResponse:
        """Pending messages from a human agent (and handoff notices) for ``sender``."""
        assert self.outbox is not None
        sender = (request.query_params.get("sender") or "").strip()
        if not sender or len(sender) > MAX_SENDER_CHARS:
            return bad_request(f"query parameter 'sender' must have 1 to {MAX_SENDER_CHARS} "
                               "characters")
        taken = await self.outbox.take_pending(sender)
        return JSONResponse([m.to_rasa() for m in taken])

    async def status(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def webhook(self, request: Request) -> JSONResponse:
        data = await read_json_object(request)
        if isinstance(data, JSONResponse):
            return data
        sender = data.get("sender")
        text = data.get("message")
        if sender is None or isinstance(sender, bool) or not isinstance(sender, str | int):
            return bad_request("field 'sender' (a string) is required")
        sender = str(sender).strip()
        if not sender or len(sender) > MAX_SENDER_CHARS:
            return bad_request(f"field 'sender' must have 1 to {MAX_SENDER_CHARS} characters")
        if text is None or not isinstance(text, str):
            return bad_request("field 'message' (a string) is required")
        metadata = data.get("metadata") if isinstance(data.get("metadata"), dict) else {}
        replies = await self.manager.handle(
            Message(conversation_id=ConversationId(sender), text=text, channel=self.name,
                    metadata=metadata)
        )
        return JSONResponse([r.to_rasa(sender) for r in replies])
