"""The OpenAPI 3.0 description of Clerk's HTTP API, served at ``GET /openapi.json``.

A plain dict, written by hand next to the handlers' rules (``bot.inputs`` and each
endpoint's limits), so that what it promises is exactly what the server checks: a request
that breaks the schema gets a 4xx, never a 5xx. ``tests/test_fuzz_http.py`` holds the server
to that with schemathesis. Socket channels (the widget's WebSocket, Socket.IO) and the
Telegram webhook (Telegram's own schema, behind a secret) are not described here.

Strings a client sends follow one rule (``bot.inputs``): no lone surrogates, no NUL or
other C0 control characters (free text may hold ``\\n``, ``\\r`` and ``\\t``; ids and names
not), and a length limit. A lone surrogate cannot be written as a JSON Schema ``pattern``;
it is refused like the rest.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.handoff.desk import MAX_AGENT_TEXT, TICKET_PRIORITIES, TICKET_STATUSES
from bot.types import FEEDBACK_RATINGS

# The limits the handlers apply (bot.channels.rest, bot.app, bot.web.console.app).
MAX_BODY_BYTES = 64 * 1024
MAX_SENDER_CHARS = 200
MAX_CLIENT_MESSAGE_ID_CHARS = 128
MAX_PARSE_CHARS = 4000
MAX_CONSOLE_ID_CHARS = 200
MAX_CONSOLE_NAME_CHARS = 100

TEXT_PATTERN = "^[^\\u0000-\\u0008\\u000b\\u000c\\u000e-\\u001f]*$"
LINE_PATTERN = "^[^\\u0000-\\u001f]*$"

JSON = "application/json"
Schema = dict[str, Any]


def text(
    max_chars: int,
    *,
    single_line: bool = False,
    min_chars: int = 0,
    nullable: bool = False,
    description: str | None = None,
) -> Schema:
    """A client string under the rules of ``bot.inputs``."""
    out: Schema = {
        "type": "string",
        "maxLength": max_chars,
        "pattern": LINE_PATTERN if single_line else TEXT_PATTERN,
    }
    if min_chars:
        out["minLength"] = min_chars
    if nullable:
        out["nullable"] = True
    if description:
        out["description"] = description
    return out


def identifier(max_chars: int, description: str) -> Schema:
    """A client-named id: a single-line string (surrounding spaces are removed; it must not
    be blank) or an integer (its decimal text)."""
    return {
        "description": description,
        "anyOf": [text(max_chars, single_line=True, min_chars=1), {"type": "integer"}],
    }


def obj(properties: dict[str, Schema], required: tuple[str, ...] = (), **extra: Any) -> Schema:
    out: Schema = {"type": "object", "properties": properties, **extra}
    if required:
        out["required"] = list(required)
    return out


def ref(name: str) -> Schema:
    return {"$ref": f"#/components/schemas/{name}"}


def body(schema: Schema) -> Schema:
    return {"required": True, "content": {JSON: {"schema": schema}}}


ERROR_TEXT = {
    400: "Bad input: malformed JSON, a missing field, a value of the wrong type, a string "
    "that breaks the rules (lone surrogate, NUL or control character, too long)",
    401: "No console session (log in first)",
    403: "Missing or wrong CSRF token, or a cross-site Origin",
    404: "Not found",
    409: "The conversation is not in a state that allows this step",
    413: f"Request body over {MAX_BODY_BYTES} bytes",
}


def responses(ok: Schema, *errors: int, ok_text: str = "OK") -> Schema:
    out: Schema = {"200": {"description": ok_text, "content": {JSON: {"schema": ok}}}}
    for code in errors:
        schema = ref("Conflict") if code == 409 else ref("Error")
        out[str(code)] = {"description": ERROR_TEXT[code], "content": {JSON: {"schema": schema}}}
    return out


def components() -> Schema:
    return {
        "schemas": {
            "Error": obj({"error": {"type": "string"}}, ("error",)),
            "Conflict": obj(
                {"error": {"type": "string"}, "status": {"type": "string", "nullable": True}},
                ("error",),
            ),
            "RasaMessage": obj(
                {
                    "recipient_id": {"type": "string"},
                    "text": {"type": "string"},
                    "buttons": {
                        "type": "array",
                        "items": obj({"title": {"type": "string"}, "payload": {"type": "string"}}),
                    },
                    "custom": {"type": "object"},
                    "image": {"type": "string"},
                },
                ("recipient_id",),
            ),
            "Parse": obj(
                {
                    "text": {"type": "string"},
                    "intent": obj(
                        {"name": {"type": "string"}, "confidence": {"type": "number"}},
                        ("name", "confidence"),
                    ),
                    "entities": {"type": "array", "items": {"type": "object"}},
                    "intent_ranking": {
                        "type": "array",
                        "items": obj(
                            {"name": {"type": "string"}, "confidence": {"type": "number"}}
                        ),
                    },
                },
                ("text", "intent", "entities", "intent_ranking"),
            ),
            "Step": obj(
                {
                    "ok": {"type": "boolean"},
                    "status": {"type": "string", "nullable": True},
                    "messages": {"type": "array", "items": {}},
                },
                ("ok",),
            ),
        },
        "securitySchemes": {
            "consoleSession": {
                "type": "apiKey",
                "in": "cookie",
                "name": "clerk_console",
                "description": "The session cookie set by POST /console/login",
            },
            "csrfToken": {
                "type": "apiKey",
                "in": "header",
                "name": "X-CSRF-Token",
                "description": "The session's CSRF token (in the console pages' "
                '<meta name="csrf-token">); every POST needs it',
            },
        },
    }


def core_paths() -> Schema:
    rest_body = obj(
        {
            "sender": identifier(MAX_SENDER_CHARS, "The conversation, as the client names it"),
            "message": text(
                MAX_BODY_BYTES,
                description="What the shopper wrote (over 4000 "
                "characters the bot answers that it is too long; blank: it asks "
                "for a message)",
            ),
            "metadata": obj(
                {
                    "message_id": {
                        **identifier(
                            MAX_CLIENT_MESSAGE_ID_CHARS,
                            "An optional client message id, stored with the message",
                        ),
                        "nullable": True,
                    }
                },
                nullable=True,
            ),
        },
        ("sender", "message"),
    )
    return {
        "/health": {
            "get": {
                "summary": "Liveness and counters",
                "operationId": "health",
                "responses": responses(
                    obj(
                        {
                            "status": {"type": "string", "enum": ["ok"]},
                            "uptime_s": {"type": "number"},
                            "actions": {"type": "string"},
                            "stats": {"type": "object"},
                            "handoff": {"type": "object", "nullable": True},
                            "generation": {"type": "object", "nullable": True},
                        },
                        ("status", "uptime_s", "actions", "stats"),
                    )
                ),
            }
        },
        "/model/parse": {
            "post": {
                "summary": "What the NLU understands of a text (Rasa's shape)",
                "operationId": "parse",
                "requestBody": body(obj({"text": text(MAX_PARSE_CHARS)}, ("text",))),
                "responses": responses(ref("Parse"), 400, 413),
            }
        },
        "/api/copy": {
            "post": {
                "summary": "Marketing copy for a product, checked against the catalog",
                "operationId": "copy",
                "requestBody": body(
                    obj(
                        {
                            "product_id": identifier(100, "A catalog product id"),
                            "audience": text(
                                200,
                                nullable=True,
                                description="Letters, spaces and "
                                "punctuation, at most 80 characters once spaces are joined",
                            ),
                            "tone": text(200, nullable=True, description="As audience"),
                            "n": {"type": "integer", "minimum": 1, "maximum": 5, "default": 3},
                        },
                        ("product_id",),
                    )
                ),
                "responses": responses(
                    obj(
                        {
                            "product_id": {"type": "string"},
                            "name": {"type": "string"},
                            "copies": {"type": "array", "items": {"type": "object"}},
                        },
                        ("product_id", "name", "copies"),
                    ),
                    400,
                    404,
                    413,
                ),
            }
        },
        "/webhooks/rest/webhook": {
            "post": {
                "summary": "Rasa's REST channel: one shopper message, the bot's replies",
                "operationId": "restWebhook",
                "requestBody": body(rest_body),
                "responses": responses(
                    {"type": "array", "items": ref("RasaMessage")},
                    400,
                    413,
                    ok_text="The bot's replies ([] while an agent holds the conversation)",
                ),
            }
        },
        "/webhooks/rest/feedback": {
            "post": {
                "summary": "The shopper's rating (CSAT) of a conversation the bot asked to rate",
                "description": "After a reply with custom.type 'feedback_request'. The last "
                "rating of a conversation counts; a second one is stored too. Errors carry "
                "a 'reason': bad_rating (400), unknown_conversation (404), not_asked (409).",
                "operationId": "restFeedback",
                "requestBody": body(
                    obj(
                        {
                            "sender": identifier(
                                MAX_SENDER_CHARS, "The conversation, as the client names it"
                            ),
                            "rating": {"type": "string", "enum": list(FEEDBACK_RATINGS)},
                        },
                        ("sender", "rating"),
                    )
                ),
                "responses": responses(
                    {"type": "array", "items": ref("RasaMessage")},
                    400,
                    404,
                    409,
                    413,
                    ok_text="The thanks (custom.type 'feedback_thanks')",
                ),
            }
        },
        "/webhooks/rest/messages": {
            "get": {
                "summary": "Messages from a human agent waiting for the sender, each once",
                "operationId": "restMessages",
                "parameters": [
                    {
                        "name": "sender",
                        "in": "query",
                        "required": True,
                        "schema": text(MAX_SENDER_CHARS, single_line=True, min_chars=1),
                    }
                ],
                "responses": responses({"type": "array", "items": ref("RasaMessage")}, 400),
            }
        },
        "/webhooks/rest/": {
            "get": {
                "summary": "The REST channel is up",
                "operationId": "restStatus",
                "responses": responses(obj({"status": {"type": "string"}}, ("status",))),
            }
        },
    }


def console_paths() -> Schema:
    read: list[dict[str, list[str]]] = [{"consoleSession": []}]
    write: list[dict[str, list[str]]] = [{"consoleSession": [], "csrfToken": []}]
    conversation_id = text(MAX_CONSOLE_ID_CHARS, single_line=True, min_chars=1)

    def get(
        op: str, summary: str, ok: Schema, *errors: int, parameters: list[Schema] | None = None
    ) -> Schema:
        out: Schema = {
            "summary": summary,
            "operationId": op,
            "security": read,
            "responses": responses(ok, 401, *errors),
        }
        if parameters:
            out["parameters"] = parameters
        return {"get": out}

    def step(
        op: str,
        summary: str,
        fields: dict[str, Schema],
        required: tuple[str, ...],
        ok: Schema,
        *errors: int,
    ) -> Schema:
        return {
            "post": {
                "summary": summary,
                "operationId": op,
                "security": write,
                "requestBody": body(obj({"id": conversation_id, **fields}, ("id", *required))),
                "responses": responses(ok, 400, 401, 403, 413, *errors),
            }
        }

    agent_text = text(
        MAX_AGENT_TEXT,
        min_chars=1,
        description=f"Not blank; over {MAX_AGENT_TEXT} characters the desk refuses it (409)",
    )
    slot_value = text(MAX_CONSOLE_NAME_CHARS, single_line=True, nullable=True)
    return {
        "/console/api/me": get(
            "consoleMe",
            "The logged-in agent",
            obj({"name": {"type": "string"}, "role": {"type": "string"}}, ("name", "role")),
        ),
        "/console/api/queue": get(
            "consoleQueue",
            "Conversations waiting for or held by an agent",
            obj(
                {
                    "now": {"type": "number"},
                    "queue": {"type": "array", "items": {"type": "object"}},
                },
                ("now", "queue"),
            ),
        ),
        "/console/api/conversation": get(
            "consoleConversation",
            "One conversation: transcript, handoff, customer",
            obj({"now": {"type": "number"}}, ("now",)),
            400,
            404,
            parameters=[{"name": "id", "in": "query", "required": True, "schema": conversation_id}],
        ),
        "/console/api/tickets": get(
            "consoleTickets",
            "Tickets, optionally filtered",
            obj({"tickets": {"type": "array", "items": {"type": "object"}}}, ("tickets",)),
            400,
            parameters=[
                {
                    "name": "status",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["", *TICKET_STATUSES]},
                },
                {
                    "name": "priority",
                    "in": "query",
                    "required": False,
                    "schema": {"type": "string", "enum": ["", *TICKET_PRIORITIES]},
                },
            ],
        ),
        "/console/api/claim": step(
            "consoleClaim", "Take a conversation from the queue", {}, (), ref("Step"), 409
        ),
        "/console/api/message": step(
            "consoleMessage",
            "Send the shopper a message",
            {"text": agent_text},
            ("text",),
            ref("Step"),
            409,
        ),
        "/console/api/note": step(
            "consoleNote",
            "Leave a note for other agents",
            {"text": agent_text},
            ("text",),
            ref("Step"),
            409,
        ),
        "/console/api/return": step(
            "consoleReturn",
            "Hand the conversation back to the bot, optionally setting slots",
            {"slots": {"type": "object", "nullable": True, "additionalProperties": slot_value}},
            (),
            ref("Step"),
            409,
        ),
        "/console/api/close": step(
            "consoleClose",
            "End the handoff with a resolution",
            {"resolution": agent_text},
            ("resolution",),
            ref("Step"),
            409,
        ),
        "/console/api/ticket": {
            "post": {
                "summary": "Change a ticket's status, priority or assignee",
                "operationId": "consoleTicket",
                "security": write,
                "requestBody": body(
                    obj(
                        {
                            "id": text(MAX_CONSOLE_ID_CHARS, single_line=True, min_chars=1),
                            "status": {
                                "type": "string",
                                "enum": list(TICKET_STATUSES),
                                "nullable": True,
                            },
                            "priority": {
                                "type": "string",
                                "enum": list(TICKET_PRIORITIES),
                                "nullable": True,
                            },
                            "assignee": text(
                                MAX_CONSOLE_NAME_CHARS,
                                single_line=True,
                                nullable=True,
                                description='An agent\'s name, "me", or "" to unassign',
                            ),
                        },
                        ("id",),
                    )
                ),
                "responses": responses(
                    obj(
                        {"ok": {"type": "boolean"}, "ticket": {"type": "object"}}, ("ok", "ticket")
                    ),
                    400,
                    401,
                    403,
                    404,
                    413,
                ),
            }
        },
    }


def openapi_document(*, console: bool = True) -> Schema:
    paths = core_paths()
    if console:
        paths.update(console_paths())
    return {
        "openapi": "3.0.3",
        "info": {
            "title": "Clerk",
            "version": "0.1.0",
            "description": "Clerk's HTTP API: NLU, marketing copy, Rasa's REST channel "
            "and the agent console's JSON API. Every error is "
            '{"error": "..."} with a 4xx status.',
        },
        "paths": paths,
        "components": components(),
    }


def openapi_route(*, console: bool = True) -> Route:
    """``GET /openapi.json``; the document is built once."""
    document = openapi_document(console=console)

    async def serve(request: Request) -> JSONResponse:
        return JSONResponse(document)

    return Route("/openapi.json", serve, methods=["GET"])
