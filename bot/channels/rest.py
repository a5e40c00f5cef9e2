"""Rasa's REST channel: ``POST /webhooks/rest/webhook`` with ``{"sender", "message"}``
returns ``[{"recipient_id", "text", "buttons"?, "custom"?}]`` so existing Rasa clients work.

Bad requests get HTTP 400 (413 for a body over 64 KiB) with ``{"error": ...}``; nothing is
stored for them. ``sender`` (a string or an integer, 1-190 characters), ``message`` and
``metadata.message_id`` (an optional client message id, 1-128 characters) follow the rules
of ``bot.inputs``: no lone surrogates, no NUL or other control characters. With a ``token``
(``CLERK_REST_TOKEN``) every request must carry ``Authorization: Bearer <token>`` (401
otherwise). The sender names a conversation of this channel only (``rest:<sender>``).
``metadata.message_id`` is the client's id for the message: a resend after a timeout is
handled once and answered with the same replies.

While a human agent holds a conversation the bot stays silent (the webhook answers ``[]``);
the agent's messages wait in the outbox until the client takes them with
``GET /webhooks/rest/messages?sender=ID``: ``[{"recipient_id", "text", "custom": {"type":
"agent_message" | "handoff_notice", "id", "agent"?}}]``, oldest first, each returned once.

CSAT: when the bot asks for a rating (a reply with ``custom.type == "feedback_request"``,
see ``bot.dialogue.feedback``), the client posts the shopper's thumb to
``POST /webhooks/rest/feedback`` with ``{"sender", "rating": "up" | "down"}`` and gets the
thanks as the webhook's replies (``custom.type == "feedback_thanks"``). Refused, nothing
stored, with ``{"error", "reason"}``: a body that is no JSON object with a valid ``sender``
400 (``bad_body``; 413 over 64 KiB), a bad rating 400 (``bad_rating``), a sender
without a conversation 404 (``unknown_conversation``), a conversation the bot never asked
409 (``not_asked``), one asked in a session that has ended 409 (``session_ended``), more
ratings than the chat channels' message limit (``MessageLimits``, per conversation) 429
(``rate_limited``, with ``Retry-After``). The same rating again is no new rating: it is
answered with the thanks already given.
"""

from __future__ import annotations

import hmac
import logging
import math
from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot.channels.base import Channel
from bot.dialogue.manager import DialogueManager
from bot.errors import FeedbackRefused
from bot.handoff.outbox import Outbox
from bot.inputs import BadInput, client_id, client_string, json_object
from bot.ratelimit import LocalMessageLimits, MessageLimits
from bot.types import Message

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 64 * 1024
MAX_SENDER_CHARS = 190  # the conversation id, rest:<sender>, is at most 200
MAX_CLIENT_MESSAGE_ID_CHARS = 128


def bad_request(message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=400)


def refusal(exc: BadInput) -> JSONResponse:
    return JSONResponse({"error": str(exc)}, status_code=exc.status)


async def read_json_object(request: Request) -> dict[str, Any] | JSONResponse:
    """The request body as a JSON object, or a 400 (413: too large) response saying what
    is wrong."""
    try:
        return json_object(await request.body(), max_bytes=MAX_BODY_BYTES)
    except BadInput as exc:
        return refusal(exc)


def client_metadata(value: object) -> dict[str, Any]:
    """The webhook's optional ``metadata`` object; of it only ``message_id`` is stored, so
    only that is checked (and normalised to a string)."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadInput("metadata", "must be an object")
    metadata = dict(value)
    if metadata.get("message_id") is not None:
        metadata["message_id"] = client_id(
            metadata["message_id"], "metadata.message_id", max_chars=MAX_CLIENT_MESSAGE_ID_CHARS
        )
    return metadata


class RestChannel(Channel):
    name = "rest"
    key_prefix = "rest"

    def __init__(
        self,
        manager: DialogueManager,
        outbox: Outbox | None = None,
        *,
        token: str | None = None,
        rate_limit: int = 20,
        limits: MessageLimits | None = None,
    ) -> None:
        """``limits``: how many ratings a conversation may post (default ``rate_limit`` a
        minute in this process; ``bot.app`` passes the chat channels' limits)."""
        self.manager = manager
        self.outbox = outbox
        self.token = token
        self.limiter = limits or LocalMessageLimits(rate_limit)

    def _unauthorised(self, request: Request) -> JSONResponse | None:
        """401 unless the request carries the channel's bearer token (when one is set)."""
        if not self.token:
            return None
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            return None
        return JSONResponse(
            {"error": "a valid 'Authorization: Bearer <token>' is required"},
            status_code=401,
            headers={"WWW-Authenticate": "Bearer"},
        )

    def routes(self) -> list[BaseRoute]:
        routes: list[BaseRoute] = [
            Route("/webhooks/rest/webhook", self.webhook, methods=["POST"]),
            Route("/webhooks/rest/feedback", self.feedback, methods=["POST"]),
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
        try:
            sender = client_id(
                request.query_params.get("sender"), "sender", max_chars=MAX_SENDER_CHARS
            )
        except BadInput as exc:
            return bad_request(f"query parameter {exc}")
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
        try:
            sender = client_id(data.get("sender"), "sender", max_chars=MAX_SENDER_CHARS)
            # longer than the dialogue's limit is answered by the bot itself ("too long")
            text = client_string(data.get("message"), "message", max_chars=MAX_BODY_BYTES)
            metadata = client_metadata(data.get("metadata"))
        except BadInput as exc:
            return bad_request(f"field {exc}")
        replies = await self.manager.handle(
            Message(
                conversation_id=self.conversation_id(sender),
                text=text,
                channel=self.name,
                metadata=metadata,
            )
        )
        return JSONResponse([r.to_rasa(sender) for r in replies])

    async def feedback(self, request: Request) -> JSONResponse:
        """The shopper's rating of their conversation (see the module's docstring)."""
        if (denied := self._unauthorised(request)) is not None:
            return denied
        try:
            data = json_object(await request.body(), max_bytes=MAX_BODY_BYTES)
            sender = client_id(data.get("sender"), "sender", max_chars=MAX_SENDER_CHARS)
        except BadInput as exc:
            return JSONResponse({"error": str(exc), "reason": "bad_body"}, status_code=exc.status)
        cid = self.conversation_id(sender)
        wait = await self.limiter.check(cid)
        if wait:
            return JSONResponse(
                {"error": "too many ratings; try again shortly", "reason": "rate_limited"},
                status_code=429,
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        try:  # the manager checks the rating (bad_rating)
            thanks = await self.manager.record_feedback(cid, data.get("rating"), channel=self.name)
        except FeedbackRefused as exc:
            return JSONResponse({"error": str(exc), "reason": exc.reason}, status_code=exc.status)
        return JSONResponse([r.to_rasa(sender) for r in thanks])
