"""The Telegram channel against a fake Bot API server on 127.0.0.1 (written here, strict
where Telegram is strict: MarkdownV2 parsing, the 4096-character limit, getUpdates offsets,
429 flood control). Fully offline: python-telegram-bot talks HTTP to the fake."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import parse_qsl

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot.channels.telegram import (
    EXPIRED_BUTTON,
    SECRET_HEADER,
    TEXT_ONLY,
    TelegramChannel,
    derived_secret,
    render_markdown,
    split_text,
    utf16_len,
)
from bot.store.db import Database
from bot.store.models import Conversation, ConversationEvent
from bot.types import Button, Message, Reply
from tests.conftest import ROOT, fresh_database
from tests.live import LiveServer

TOKEN = "123456:TEST-polling"
WEBHOOK_TOKEN = "654321:TEST-webhook"
BOT_USERNAME = "clerk_test_bot"
RESERVED = set("_*[]()~`>#+-=|{}.!")


# --------------------------------------------------------------------------- the fake API


class MarkdownError(ValueError):
    pass


def parse_markdown_v2(text: str) -> tuple[str, list[str]]:
    """(plain text, bold pieces) as Telegram reads MarkdownV2; raises like Telegram does."""
    out: list[str] = []
    bold: list[str] = []
    open_bold: int | None = None
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            if i + 1 < len(text) and text[i + 1] in RESERVED | {"\\"}:
                out.append(text[i + 1])
                i += 2
                continue
            raise MarkdownError("Can't parse entities: character '\\' must be escaped")
        if c == "*":
            if open_bold is None:
                open_bold = len("".join(out))
            else:
                bold.append("".join(out)[open_bold:])
                open_bold = None
            i += 1
            continue
        if c == "[":
            close = text.find("](", i)
            end = text.find(")", close)
            while end > 0 and text[end - 1] == "\\":
                end = text.find(")", end + 1)
            if close < 0 or end < 0:
                raise MarkdownError("Can't parse entities: can't find end of a url")
            label, _ = parse_markdown_v2(text[i + 1 : close])
            out.append(label)
            i = end + 1
            continue
        if c in RESERVED:
            raise MarkdownError(
                f"Can't parse entities: Character '{c}' is reserved and must be "
                "escaped with the preceding '\\'"
            )
        out.append(c)
        i += 1
    if open_bold is not None:
        raise MarkdownError("Can't parse entities: can't find end of Bold entity")
    return "".join(out), bold


class FakeBotAPI:
    """Telegram's Bot API, the parts Clerk uses. Tests push updates and read what the bot
    sent; ``fail_next`` scripts an error response for a method."""

    def __init__(self, tokens: set[str]) -> None:
        self.tokens = set(tokens)
        self.lock = threading.Lock()
        self.calls: list[tuple[str, str, dict[str, Any], float]] = []  # token, method, params, t
        self.updates: dict[str, list[dict[str, Any]]] = {}
        self.delivered: Counter[int] = Counter()
        self.sent: list[dict[str, Any]] = []
        self.webhooks: dict[str, dict[str, Any]] = {}
        self.errors: list[str] = []
        self._scripted: dict[str, list[tuple[int, dict[str, Any]]]] = {}
        self._update_id = 10_000
        self._message_id = 500
        self.app = Starlette(
            routes=[
                Route("/bot{token}/{method}", self.endpoint, methods=["GET", "POST"]),
            ]
        )

    # -- what tests use
    def push(self, token: str, update: dict[str, Any]) -> int:
        with self.lock:
            self._update_id += 1
            update = {"update_id": self._update_id, **update}
            self.updates.setdefault(token, []).append(update)
            return self._update_id

    def fail_next(self, method: str, status: int, **parameters: Any) -> None:
        body: dict[str, Any] = {"ok": False, "error_code": status}
        if status == 429:
            body["description"] = f"Too Many Requests: retry after {parameters['retry_after']}"
            body["parameters"] = {"retry_after": parameters["retry_after"]}
        else:
            body["description"] = parameters.get("description", "Bad Request")
        self._scripted.setdefault(method, []).append((status, body))

    def calls_to(self, method: str, token: str | None = None) -> list[dict[str, Any]]:
        with self.lock:
            return [p for t, m, p, _ in self.calls if m == method and token in (None, t)]

    def sent_to(self, chat_id: int) -> list[dict[str, Any]]:
        with self.lock:
            return [m for m in self.sent if m["chat_id"] == chat_id]

    def wait_for(self, check: Callable[[], Any], timeout: float = 20) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = check()
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting; calls: {[c[1] for c in self.calls]}")

    def replies(self, chat_id: int, at_least: int = 1) -> list[dict[str, Any]]:
        return self.wait_for(
            lambda: len(self.sent_to(chat_id)) >= at_least and self.sent_to(chat_id)
        )

    # -- HTTP
    async def endpoint(self, request: Request) -> JSONResponse:
        token, method = request.path_params["token"], request.path_params["method"]
        params = await self._params(request)
        with self.lock:
            self.calls.append((token, method, params, time.monotonic()))
            scripted = self._scripted.get(method)
            script = scripted.pop(0) if scripted else None
        if token not in self.tokens:
            return JSONResponse(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status_code=401
            )
        if script is not None:
            return JSONResponse(script[1], status_code=script[0])
        handler = getattr(self, "api_" + method, None)
        if handler is None:
            return JSONResponse(
                {"ok": False, "error_code": 404, "description": "Not Found: method not found"},
                status_code=404,
            )
        try:
            result = await handler(token, params, request)
        except MarkdownError as exc:
            self.errors.append(str(exc))
            return JSONResponse(
                {"ok": False, "error_code": 400, "description": f"Bad Request: {exc}"},
                status_code=400,
            )
        return JSONResponse({"ok": True, "result": result})

    @staticmethod
    async def _params(request: Request) -> dict[str, Any]:
        if request.headers.get("content-type", "").startswith("application/json"):
            return dict(await request.json())
        # python-telegram-bot posts form-encoded fields, objects JSON-encoded in a field
        form = parse_qsl((await request.body()).decode(), keep_blank_values=True)
        out: dict[str, Any] = {}
        for key, value in form:
            if key in ("chat_id", "offset", "timeout", "message_id", "limit"):
                out[key] = int(value)
            elif key in ("reply_markup", "allowed_updates", "link_preview_options"):
                out[key] = json.loads(value)
            else:
                out[key] = value
        return out

    # -- methods
    async def api_getMe(self, token: str, p: dict[str, Any], request: Any = None) -> dict[str, Any]:
        return {
            "id": int(token.split(":")[0]),
            "is_bot": True,
            "first_name": "Clerk",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    async def api_setWebhook(self, token: str, p: dict[str, Any], request: Any = None) -> bool:
        self.webhooks[token] = p
        return True

    async def api_deleteWebhook(self, token: str, p: dict[str, Any], request: Any = None) -> bool:
        self.webhooks.pop(token, None)
        return True

    async def api_getUpdates(self, token: str, p: dict[str, Any], request: Any = None) -> Any:
        import asyncio

        if token in self.webhooks:
            raise MarkdownError("Conflict: can't use getUpdates method while webhook is active")
        offset = p.get("offset")
        deadline = time.monotonic() + float(p.get("timeout") or 0)
        while True:
            with self.lock:
                queue = self.updates.setdefault(token, [])
                if offset is not None:  # updates below the offset are confirmed: gone
                    queue[:] = [u for u in queue if u["update_id"] >= offset]
                batch = list(queue[: int(p.get("limit") or 100)])
                for u in batch:
                    self.delivered[u["update_id"]] += 1
            if batch or time.monotonic() >= deadline:
                return batch
            if request is not None and await request.is_disconnected():
                return []  # the client gave up on this long poll
            await asyncio.sleep(0.02)

    async def api_sendMessage(
        self, token: str, p: dict[str, Any], request: Any = None
    ) -> dict[str, Any]:
        text = p["text"]
        bold: list[str] = []
        if p.get("parse_mode") == "MarkdownV2":
            text, bold = parse_markdown_v2(text)
        if utf16_len(text) > 4096:
            raise MarkdownError("message is too long")
        if not text.strip():
            raise MarkdownError("message text is empty")
        with self.lock:
            self._message_id += 1
            message = {
                "message_id": self._message_id,
                "date": int(time.time()),
                "chat": {"id": p["chat_id"], "type": "private"},
                "from": await self.api_getMe(token, {}),
                "text": text,
            }
            if p.get("reply_markup"):
                message["reply_markup"] = p["reply_markup"]
            self.sent.append(
                {**message, "chat_id": p["chat_id"], "bold": bold, "raw": p["text"], "token": token}
            )
        return message

    async def api_sendChatAction(self, token: str, p: dict[str, Any], request: Any = None) -> bool:
        return True

    async def api_answerCallbackQuery(
        self, token: str, p: dict[str, Any], request: Any = None
    ) -> bool:
        return True

    async def api_editMessageReplyMarkup(
        self, token: str, p: dict[str, Any], request: Any = None
    ) -> dict[str, Any]:
        return {
            "message_id": p["message_id"],
            "date": int(time.time()),
            "chat": {"id": p["chat_id"], "type": "private"},
            "text": "(edited)",
        }


# --------------------------------------------------------------------------- update builders

_message_ids = iter(range(1, 1_000_000))


def user(chat_id: int) -> dict[str, Any]:
    return {"id": chat_id, "is_bot": False, "first_name": "Ivan", "language_code": "en"}


def message(
    chat_id: int, text: str | None = None, *, chat_type: str = "private", **extra: Any
) -> dict[str, Any]:
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
    chat.update({"first_name": "Ivan"} if chat_type == "private" else {"title": "Friends"})
    out: dict[str, Any] = {
        "message_id": next(_message_ids),
        "date": int(time.time()),
        "chat": chat,
        "from": user(abs(chat_id)),
        **extra,
    }
    if text is not None:
        out["text"] = text
        if text.startswith("/"):
            out["entities"] = [{"type": "bot_command", "offset": 0, "length": len(text.split()[0])}]
    return out


def text_update(chat_id: int, text: str, **kw: Any) -> dict[str, Any]:
    return {"message": message(chat_id, text, **kw)}


def callback_update(chat_id: int, sent: dict[str, Any], data: str) -> dict[str, Any]:
    bot_message = {k: sent[k] for k in ("message_id", "date", "chat", "text")}
    return {
        "callback_query": {
            "id": f"cbq-{next(_message_ids)}",
            "from": user(chat_id),
            "chat_instance": "42",
            "data": data,
            "message": bot_message,
        }
    }


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeBotAPI]:
    api = FakeBotAPI({TOKEN, WEBHOOK_TOKEN})
    with LiveServer(api.app) as live:
        api.url = live.url  # type: ignore[attr-defined]
        yield api


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("tg")) as url:
        yield url


@pytest.fixture(scope="module")
def settings(database_url: str, bot_settings, fake_api: FakeBotAPI):  # type: ignore[no-untyped-def]
    return bot_settings(database_url)


@pytest.fixture(scope="module")
def webhook_server(settings, fake_api: FakeBotAPI, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    """``clerk serve`` with Telegram configured: the webhook lives on the app."""
    import dataclasses

    from bot.app import build, create_app

    configured = dataclasses.replace(
        settings,
        telegram_token=WEBHOOK_TOKEN,
        telegram_base_url=fake_api.url,  # type: ignore[attr-defined]
        telegram_webhook_url="https://clerk.example/webhooks/telegram",
    )
    parts = build(configured, encoder=shared_encoder)
    with LiveServer(create_app(parts)) as live:
        live.channel = next(c for c in parts.channels if isinstance(c, TelegramChannel))  # type: ignore[attr-defined]
        yield live


@pytest.fixture(scope="module")
def polling_server(settings, fake_api: FakeBotAPI, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from bot.app import build, create_app

    parts = build(settings, encoder=shared_encoder)
    channel = TelegramChannel(
        parts.manager,
        token=TOKEN,
        base_url=fake_api.url,  # type: ignore[attr-defined]
        polling=True,
        poll_timeout=1,
    )
    parts.channels.append(channel)
    with LiveServer(create_app(parts)) as live:
        live.channel = channel  # type: ignore[attr-defined]
        yield live


_webhook_update_ids = iter(range(1, 1_000_000))


def deliver(
    server: LiveServer, update: dict[str, Any], secret: str | None = None
) -> httpx.Response:
    """What Telegram does with a webhook: POST the update with the secret token header."""
    body = {"update_id": next(_webhook_update_ids), **update}
    headers = {SECRET_HEADER: secret if secret is not None else derived_secret(WEBHOOK_TOKEN)}
    return httpx.post(server.url + "/webhooks/telegram", json=body, headers=headers)


def plain(replies: list[dict[str, Any]]) -> str:
    return "\n".join(r["text"] for r in replies).lower()


# --------------------------------------------------------------------------- webhook


def test_startup_checks_the_token_and_registers_the_webhook(
    webhook_server: LiveServer, fake_api: FakeBotAPI
) -> None:
    assert fake_api.calls_to("getMe", WEBHOOK_TOKEN)
    [registered] = fake_api.calls_to("setWebhook", WEBHOOK_TOKEN)
    assert registered["url"] == "https://clerk.example/webhooks/telegram"
    assert registered["secret_token"] == derived_secret(WEBHOOK_TOKEN)
    assert set(registered["allowed_updates"]) >= {"message", "callback_query"}


def test_webhook_round_trip(
    webhook_server: LiveServer, fake_api: FakeBotAPI, database_url: str
) -> None:
    chat = 7001
    assert deliver(webhook_server, text_update(chat, "/start")).status_code == 200
    [greeting] = fake_api.replies(chat)
    assert "clerk" in greeting["text"].lower()
    assert any(
        p["chat_id"] == chat and p["action"] == "typing"
        for p in fake_api.calls_to("sendChatAction")
    )
    db = Database(database_url)
    with db.session() as s:
        conv = s.get(Conversation, f"tg:{chat}")
        assert conv is not None and conv.channel == "telegram"
        texts = list(
            s.scalars(
                select(ConversationEvent.data).where(
                    ConversationEvent.conversation_id == f"tg:{chat}",
                    ConversationEvent.type == "user",
                )
            )
        )
    db.dispose()
    assert [t["text"] for t in texts] == ["hello"]  # /start greets


def test_webhook_refuses_a_wrong_or_missing_secret(
    webhook_server: LiveServer, fake_api: FakeBotAPI
) -> None:
    chat = 7002
    assert deliver(webhook_server, text_update(chat, "hello"), secret="guess").status_code == 403
    missing = httpx.post(
        webhook_server.url + "/webhooks/telegram",
        json={"update_id": 5, **text_update(chat, "hello")},
    )
    assert missing.status_code == 403
    bad = httpx.post(
        webhook_server.url + "/webhooks/telegram",
        content=b"{not json",
        headers={SECRET_HEADER: derived_secret(WEBHOOK_TOKEN)},
    )
    assert bad.status_code == 400
    time.sleep(0.3)
    assert fake_api.sent_to(chat) == []  # nothing reached the bot


def test_an_order_check_is_escaped_for_markdown(
    webhook_server: LiveServer, fake_api: FakeBotAPI
) -> None:
    chat = 7003
    deliver(webhook_server, text_update(chat, "where is my order #W6893533?"))
    assert "email" in plain(fake_api.replies(chat, 1))
    deliver(webhook_server, text_update(chat, "ivan.santos3158@example.com"))
    replies = fake_api.replies(chat, 3)
    text = plain(replies[1:])
    assert "#w6893533" in text and "delivered" in text and "$95.08" in text
    assert "tracking number: 262530041486" in text
    assert "\\#W6893533" in replies[-1]["raw"] and "\\." in replies[-1]["raw"]
    assert fake_api.errors == []  # Telegram parsed every message


def test_a_button_press_is_answered_and_handled(
    webhook_server: LiveServer, fake_api: FakeBotAPI
) -> None:
    chat = 7004
    deliver(webhook_server, text_update(chat, "what can you do?"))
    [menu] = fake_api.replies(chat)
    keyboard = menu["reply_markup"]["inline_keyboard"]
    assert keyboard[0] == [{"text": "Where is my order?", "callback_data": "/order_status"}]
    press = callback_update(chat, menu, keyboard[0][0]["callback_data"])
    deliver(webhook_server, press)
    reply = fake_api.replies(chat, 2)[-1]
    assert "email" in reply["text"].lower()
    assert any(
        p["callback_query_id"] == press["callback_query"]["id"]
        for p in fake_api.calls_to("answerCallbackQuery")
    )
    [edit] = [p for p in fake_api.calls_to("editMessageReplyMarkup") if p["chat_id"] == chat]
    assert edit["message_id"] == menu["message_id"] and not edit.get("reply_markup")


def test_an_expired_button_is_answered_politely(
    webhook_server: LiveServer, fake_api: FakeBotAPI
) -> None:
    chat = 7005
    sent = {"message_id": 1, "date": 0, "chat": {"id": chat, "type": "private"}, "text": "x"}
    press = callback_update(chat, sent, "#h:000000000000000000000000")
    deliver(webhook_server, press)
    answer = fake_api.wait_for(
        lambda: [
            p
            for p in fake_api.calls_to("answerCallbackQuery")
            if p["callback_query_id"] == press["callback_query"]["id"]
        ]
    )
    assert answer[0]["text"] == EXPIRED_BUTTON
    assert fake_api.sent_to(chat) == []


def test_non_text_updates_get_a_polite_reply_or_are_ignored(
    webhook_server: LiveServer, fake_api: FakeBotAPI, database_url: str
) -> None:
    sticker = {
        "file_id": "s1",
        "file_unique_id": "u1",
        "type": "regular",
        "width": 512,
        "height": 512,
        "is_animated": False,
        "is_video": False,
    }
    photo = [{"file_id": "p1", "file_unique_id": "u2", "width": 90, "height": 90}]
    voice = {"file_id": "v1", "file_unique_id": "u3", "duration": 2}
    for chat, extra in (
        (7101, {"sticker": sticker}),
        (7102, {"photo": photo}),
        (7103, {"voice": voice}),
    ):
        assert deliver(webhook_server, {"message": message(chat, **extra)}).status_code == 200
        [reply] = fake_api.replies(chat)
        assert reply["text"] == TEXT_ONLY
    # ignored on purpose: an edit, a channel post, group chatter
    edited = message(7104, "yes", edit_date=int(time.time()))
    deliver(webhook_server, {"edited_message": edited})
    post = message(-1007105, "news", chat_type="channel")
    post.pop("from")
    post["sender_chat"] = {"id": -1007105, "type": "channel", "title": "Store news"}
    deliver(webhook_server, {"channel_post": post})
    deliver(webhook_server, text_update(-7106, "hello everyone", chat_type="group"))
    # ...but a command in a group gets a pointer to a private chat
    deliver(webhook_server, text_update(-7107, f"/start@{BOT_USERNAME}", chat_type="group"))
    [pointer] = fake_api.replies(-7107)
    assert f"@{BOT_USERNAME}" in pointer["text"] and "directly" in pointer["text"]
    # and a shopper still gets answers: nothing crashed
    deliver(webhook_server, text_update(7108, "hello"))
    assert "clerk" in plain(fake_api.replies(7108))
    for chat in (7104, -1007105, -7106):
        assert fake_api.sent_to(chat) == []
    assert webhook_server.channel.errors == 0  # type: ignore[attr-defined]
    db = Database(database_url)
    with db.session() as s:  # stickers and edits never reached the dialogue
        assert s.get(Conversation, "tg:7101") is None and s.get(Conversation, "tg:7104") is None
    db.dispose()


def test_flood_control_is_honoured(webhook_server: LiveServer, fake_api: FakeBotAPI) -> None:
    chat = 7201
    fake_api.fail_next("sendMessage", 429, retry_after=1)
    deliver(webhook_server, text_update(chat, "hello"))
    [greeting] = fake_api.replies(chat)
    assert "clerk" in greeting["text"].lower()
    attempts = [
        (p, t) for _, m, p, t in fake_api.calls if m == "sendMessage" and p["chat_id"] == chat
    ]
    assert len(attempts) == 2 and attempts[0][0]["text"] == attempts[1][0]["text"]
    assert attempts[1][1] - attempts[0][1] >= 1.0  # waited the retry_after out
    assert len(fake_api.sent_to(chat)) == 1  # delivered once


def test_a_reply_telegram_cannot_parse_is_resent_as_plain_text(
    webhook_server: LiveServer, fake_api: FakeBotAPI
) -> None:
    chat = 7202
    fake_api.fail_next(
        "sendMessage",
        400,
        description="Bad Request: can't parse entities: "
        "Character '.' is reserved and must be escaped with the preceding '\\'",
    )
    deliver(webhook_server, text_update(chat, "are you a bot?"))
    [reply] = fake_api.replies(chat)
    assert "bot" in reply["text"].lower() and "\\" not in reply["raw"]  # plain, unescaped
    assert webhook_server.channel.markdown_fallbacks == 1  # type: ignore[attr-defined]


def test_a_channel_that_cannot_start_keeps_trying(fake_api: FakeBotAPI) -> None:
    class Echo:
        async def handle(self, m: Message) -> list[Reply]:
            return [Reply(text=f"echo: {m.text}")]

    token = "999:not-yet-valid"
    channel = TelegramChannel(
        Echo(),
        token=token,
        base_url=fake_api.url,  # type: ignore[attr-defined]
        retry_start_after=0.2,
    )
    app = Starlette(routes=channel.routes(), lifespan=lambda app: channel.running())
    with LiveServer(app) as live:  # the rest of the app serves meanwhile
        update = {"update_id": 1, **text_update(7301, "hi")}
        headers = {SECRET_HEADER: derived_secret(token)}
        assert (
            httpx.post(live.url + "/webhooks/telegram", json=update, headers=headers).status_code
            == 503
        )  # Telegram will redeliver
        fake_api.tokens.add(token)
        fake_api.wait_for(lambda: channel.ready, timeout=10)
        assert (
            httpx.post(live.url + "/webhooks/telegram", json=update, headers=headers).status_code
            == 200
        )
        assert fake_api.replies(7301)[0]["text"] == "echo: hi"


# --------------------------------------------------------------------------- polling


def test_polling_round_trip_with_offsets(polling_server: LiveServer, fake_api: FakeBotAPI) -> None:
    assert fake_api.calls_to("deleteWebhook", TOKEN)
    chat = 8001
    first = fake_api.push(TOKEN, text_update(chat, "hello"))
    assert "clerk" in plain(fake_api.replies(chat))
    second = fake_api.push(TOKEN, text_update(chat, "are you a bot?"))
    assert "bot" in plain(fake_api.replies(chat, 2)[1:])
    # each update was fetched once, then confirmed by a getUpdates with a higher offset
    fake_api.wait_for(
        lambda: any(p.get("offset") == second + 1 for p in fake_api.calls_to("getUpdates", TOKEN))
    )
    assert fake_api.delivered[first] == 1 and fake_api.delivered[second] == 1
    offsets = [p.get("offset") for p in fake_api.calls_to("getUpdates", TOKEN)]
    assert first + 1 in offsets
    assert all(p["token"] == TOKEN for p in fake_api.sent_to(chat))


def test_polling_buttons_and_a_sticker(polling_server: LiveServer, fake_api: FakeBotAPI) -> None:
    chat = 8002
    fake_api.push(TOKEN, text_update(chat, "what can you do?"))
    [menu] = fake_api.replies(chat)
    human = next(
        row[0]
        for row in menu["reply_markup"]["inline_keyboard"]
        if row[0]["callback_data"] == "/human_handoff"
    )
    fake_api.push(TOKEN, callback_update(chat, menu, human["callback_data"]))
    assert "i'm passing you to a human colleague now" in plain(fake_api.replies(chat, 2)[1:])
    sticker = {
        "file_id": "s",
        "file_unique_id": "u",
        "type": "regular",
        "width": 1,
        "height": 1,
        "is_animated": False,
        "is_video": False,
    }
    fake_api.push(TOKEN, {"message": message(chat, sticker=sticker)})
    assert fake_api.replies(chat, 3)[-1]["text"] == TEXT_ONLY
    assert polling_server.channel.errors == 0  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- rendering


def test_long_replies_are_split_at_telegrams_limit() -> None:
    paragraph = "Our return policy (see wiki.md) covers items #1-#5! Refunds take 5-7 days. "
    text = "\n\n".join(paragraph * 12 for _ in range(6))  # ~5,500 characters
    messages = render_markdown(Reply(text=text))
    assert len(messages) == 2
    plains = [parse_markdown_v2(m)[0] for m in messages]
    assert all(utf16_len(p) <= 4096 for p in plains)
    assert "\n\n".join(plains).split() == text.split()  # nothing lost, nothing added
    one_line = "word " * 2000  # no paragraph breaks: cut between words
    pieces = split_text(one_line)
    assert [len(p) <= 4096 for p in pieces] == [True, True, True]
    assert all(not p.startswith(" ") and not p.endswith("wor") for p in pieces)
    emoji = "🛒" * 3000  # two UTF-16 units each
    assert [utf16_len(p) for p in split_text(emoji)] == [4096, 1904]


def test_product_cards_and_links_render_as_markdown() -> None:
    reply = Reply(
        text="Here are speakers:\n• Bluetooth Speaker (blue), $289.69\n• Other",
        custom={
            "type": "product_cards",
            "products": [
                {
                    "name": "Bluetooth Speaker",
                    "options": {"color": "blue", "battery life": "10 hours"},
                    "price": 289.69,
                    "available": True,
                },
                {"name": "Tea Kettle (glass)", "options": {}, "price": 94.01, "available": False},
            ],
        },
        image="https://img.example/a_(1).png",
    )
    [md] = render_markdown(reply)
    text, bold = parse_markdown_v2(md)
    assert bold == ["Bluetooth Speaker", "Tea Kettle (glass)"]
    assert text.startswith(
        "Here are speakers:\n\nBluetooth Speaker\ncolor: blue, battery life: "
        "10 hours\n$289.69 · in stock"
    )
    assert "Tea Kettle (glass)\n$94.01 · out of stock" in text
    assert "•" not in text  # the cards replace the text's bullet list
    assert "[Image](https://img.example/a_(1\\).png)" in md


def test_long_button_payloads_travel_as_keys() -> None:
    class Nobody:
        async def handle(self, m: Message) -> list[Reply]:
            return []

    channel = TelegramChannel(Nobody(), token="1:x", base_url="http://127.0.0.1:9")
    short = channel._keyboard((Button("Yes", "/affirm"),))
    assert short.inline_keyboard[0][0].callback_data == "/affirm"
    payload = '/inform{"order_id": "#W6893533", "item_ids": ["1008292230", "2509076505"]}'
    long = channel._keyboard((Button("Return both", payload),))
    key = long.inline_keyboard[0][0].callback_data
    assert key.startswith("#h:") and len(key.encode()) <= 64
    assert channel._payloads[key] == payload


# --------------------------------------------------------------------------- the command


@pytest.mark.slow
def test_clerk_telegram_polling_command(settings, fake_api: FakeBotAPI) -> None:  # type: ignore[no-untyped-def]
    token = "777:TEST-cli"
    fake_api.tokens.add(token)
    env = {
        **os.environ,
        "CLERK_DATABASE_URL": settings.database_url,
        "CLERK_TELEGRAM_TOKEN": token,
        "CLERK_TELEGRAM_BASE_URL": fake_api.url,  # type: ignore[attr-defined]
        "PYTHONPATH": str(ROOT),
    }
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "bot.cli",
            "--home",
            str(settings.home),
            "--config",
            str(settings.home / "none.yml"),
            "telegram",
            "--polling",
        ],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        fake_api.wait_for(lambda: fake_api.calls_to("getUpdates", token), timeout=120)
        fake_api.push(token, text_update(9001, "hello"))
        assert "clerk" in plain(fake_api.replies(9001))
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    output = proc.stdout.read().decode() if proc.stdout else ""
    assert f"polling as @{BOT_USERNAME}" in output


@pytest.mark.slow
def test_clerk_telegram_set_webhook_command(fake_api: FakeBotAPI, tmp_path) -> None:  # type: ignore[no-untyped-def]
    token = "778:TEST-set"
    fake_api.tokens.add(token)
    env = {
        **os.environ,
        "CLERK_HOME": str(tmp_path),
        "CLERK_TELEGRAM_TOKEN": token,
        "CLERK_TELEGRAM_BASE_URL": fake_api.url,
        "PYTHONPATH": str(ROOT),
    }  # type: ignore[attr-defined]

    def clerk(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "--config",
                str(tmp_path / "none.yml"),
                "telegram",
                *args,
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    done = clerk("--set-webhook", "https://clerk.example/webhooks/telegram")
    assert done.returncode == 0, done.stderr
    [call] = fake_api.calls_to("setWebhook", token)
    assert call["url"] == "https://clerk.example/webhooks/telegram"
    assert call["secret_token"] == derived_secret(token)
    usage = clerk()
    assert usage.returncode == 2 and "--polling" in usage.stderr
    fake_api.tokens.discard(token)
    refused = clerk("--set-webhook", "https://clerk.example/x")
    assert refused.returncode == 2 and "clerk: error" in refused.stderr


def test_product_cards_show_the_stores_currency_exactly() -> None:
    reply = Reply(
        text="Try these:",
        custom={
            "type": "product_cards",
            "products": [
                {
                    "name": "Merino Wool Beanie",
                    "options": {"color": "mustard"},
                    "price": 1024.1,
                    "available": True,
                },
                {"name": "Tea Kettle", "options": {}, "price": 0.29, "available": False},
            ],
        },
    )
    text, _ = parse_markdown_v2(render_markdown(reply, currency="EUR")[0])
    assert "€1,024.10 · in stock" in text and "€0.29 · out of stock" in text
    assert "$" not in text
