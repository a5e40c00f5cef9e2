"""Rasa's REST channel: ``POST /webhooks/rest/webhook`` with ``{"sender", "message"}``
returns ``[{"recipient_id", "text", "buttons"?, "custom"?}]`` so existing Rasa clients work.

Bad requests get HTTP 400 with ``{"error": ...}``; nothing is stored for them. With a
``token`` (``CLERK_REST_TOKEN``) every request must carry ``Authorization: Bearer <token>``
(401 otherwise). The sender names a conversation of this channel only (``rest:<sender>``).
``metadata.message_id`` (1-64 of A-Z a-z 0-9 _ . : -) is the client's id for the message: a
resend after a timeout is handled once and answered with the same replies.

While a human agent holds a conversation the bot stays silent (the webhook answers ``[]``);
the agent's messages wait in the outbox until the client takes them with
``GET /webhooks/rest/messages?sender=ID``: ``[{"recipient_id", "text", "custom": {"type":
"agent_message" | "handoff_notice", "id", "agent"?}}]``, oldest first, each returned once.
"""

from __future__ import annotations

import hmac
import json
import logging
import re
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.channels.base import Channel
from bot.dialogue.manager import DialogueManager
from bot.handoff.outbox import Outbox
from bot.types import Message

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_SENDER_CHARS = 190
CLIENT_MESSAGE_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")


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
    key_prefix = "rest"

    def __init__(self, manager: DialogueManager, outbox: Outbox | None = None, *,
                 token: str | None = None) -> None:
        self.manager = manager
        self.outbox = outbox
        self.token = token

    def _unauthorised(self, request: Request) -> JSONResponse | None:
        """401 unless the request carries the channel's bearer token (when one is set)."""
        if not self.token:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(),
                                                              self.token.encode()):
            return None
        return JSONResponse({"error": "a valid 'Authorization: Bearer <token>' is required"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

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
        if (denied := self._unauthorised(request)) is not None:
            return denied
        sender = (request.query_params.get("sender") or "").strip()
        if not sender or len(sender) > MAX_SENDER_CHARS:
            return bad_request(f"query parameter 'sender' must have 1 to {MAX_SENDER_CHARS} "
                               "characters")
        taken = await self.outbox.take_pending(self.conversation_id(sender))
        return JSONResponse([m.to_reply().to_rasa(sender) for m in taken])

    async def status(self, request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def webhook(self, request: Request) -> JSONResponse:
        if (denied := self._unauthorised(request)) is not None:
            return denied
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
        client_id = metadata.get("message_id")
        if client_id is not None and not (isinstance(client_id, str)
                                          and CLIENT_MESSAGE_ID.fullmatch(client_id)):
            return bad_request("'metadata.message_id' must be 1-64 of A-Z a-z 0-9 _ . : -")
        replies = await self.manager.handle(
            Message(conversation_id=self.conversation_id(sender), text=text, channel=self.name,
                    metadata=metadata)
        )
        return JSONResponse([r.to_rasa(sender) for r in replies])
