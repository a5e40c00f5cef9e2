"""Telegram, built on python-telegram-bot.

Two ways in, one set of handlers:

- polling (``clerk telegram --polling``, for development): getUpdates in a loop;
- webhook (``POST /webhooks/telegram`` on the ``clerk serve`` app): Telegram posts each
  update with the ``X-Telegram-Bot-Api-Secret-Token`` header; a request without the right
  secret gets 403 and is dropped. With ``webhook_url`` set, startup registers the webhook
  (setWebhook with that secret); the secret defaults to one derived from the token.

What a chat gets:

- each private chat is one conversation, ``tg:<chat_id>``; one turn at a time per chat;
- text goes to the dialogue manager (``/start`` greets, ``/help`` asks what the bot can do);
- buttons become an inline keyboard; pressing one answers the callback query, removes the
  keyboard (a choice is made once) and sends the button's payload as the shopper's message;
- a request for a rating (CSAT, ``custom.type == "feedback_request"``) becomes a 👍/👎
  inline keyboard with callback data ``#fb:up`` / ``#fb:down`` (a button payload of the
  store's own starting with ``#fb:`` travels hashed, so it can never pass for one); pressing
  one records the rating for that chat's conversation only, answers the callback query,
  removes the keyboard and sends the thanks. Callback data ``#fb:`` with anything else, a
  chat that was never asked, or one that is not private, gets the answer
  ``utter_feedback_refused`` and nothing is stored (the keyboard stays);
- replies are MarkdownV2 with every piece of text escaped, product cards as bold names with
  options, price and stock, and split into messages of at most 4096 characters at
  paragraph, line or word boundaries;
- stickers, photos, voice and other non-text messages get a polite "text only" reply, and so
  does text that breaks the rules of ``bot.inputs`` (NUL or other control characters);
  edited messages and channel posts are ignored on purpose (acting twice on an edited
  "yes" could cancel two orders); in groups the bot only answers commands and mentions
  with a pointer to a private chat;
- flood control: python-telegram-bot's ``AIORateLimiter`` waits out ``RetryAfter`` (Telegram's
  429 with ``retry_after``), holding back every other request meanwhile, and retries.

A webhook body that is not a Telegram update (not JSON, no integer ``update_id``, fields of
the wrong shape, a lone surrogate or NUL in any string) gets 400 and is dropped.

Failures: an unreachable Bot API at ``clerk serve`` startup is logged and retried in the
background while the rest of the app serves; the webhook answers 503 until then, so
Telegram redelivers. A failing turn is logged and the shopper told to try again.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import logging
import signal
import weakref
from collections import OrderedDict
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import BaseRoute, Route
from telegram import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    Update,
)
from telegram.constants import (
    ChatAction,
    ChatType,
    InlineKeyboardButtonLimit,
    MessageLimit,
    ParseMode,
)
from telegram.error import BadRequest, Forbidden, InvalidToken, TelegramError
from telegram.ext import (
    AIORateLimiter,
    Application,
    ApplicationBuilder,
    CallbackQueryHandler,
    ContextTypes,
    MessageHandler,
    TypeHandler,
    filters,
)
from telegram.helpers import escape_markdown

from bot.channels.base import CardWording, Channel, Say, card_price, clerk_say
from bot.channels.widget import TurnHandler
from bot.dialogue.feedback import REQUEST_TYPE as FEEDBACK_REQUEST
from bot.dialogue.feedback import checked_rating
from bot.errors import BadRating, ClerkError, FeedbackRefused, Unavailable
from bot.inputs import BadInput, client_string, first_bad_string, json_object, text_problem
from bot.ratelimit import LocalMessageLimits, MessageLimits
from bot.types import Button, Message, Reply

if TYPE_CHECKING:
    from bot.handoff.outbox import OutgoingMessage

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
MAX_TEXT = int(MessageLimit.MAX_TEXT_LENGTH)  # 4096, counted after entity parsing
MAX_CALLBACK_DATA = int(InlineKeyboardButtonLimit.MAX_CALLBACK_DATA)  # 64 bytes
ALLOWED_UPDATES = ["message", "edited_message", "channel_post", "callback_query"]
FEEDBACK_PREFIX = "#fb:"  # callback data of a rating button: #fb:up, #fb:down
THUMBS = {"up": "\U0001f44d", "down": "\U0001f44e"}


@dataclass(frozen=True)
class TelegramWording:
    """What the Telegram channel says on its own (``utter_telegram_*`` responses): to a
    message it cannot read, after a failed turn, to a stale button, and in a group chat."""

    text_only: str
    try_again: str
    expired_button: str
    group_notice: str  # ``{bot}``: the bot's username
    feedback_refused: str  # a rating button that cannot be recorded

    @classmethod
    def from_responses(cls, say: Say) -> TelegramWording:
        return cls(
            text_only=say("utter_telegram_text_only", {}),
            try_again=say("utter_telegram_try_again", {}),
            expired_button=say("utter_telegram_expired_button", {}),
            group_notice=say("utter_telegram_group_notice", {"bot": "{bot}"}),
            feedback_refused=say("utter_feedback_refused", {}),
        )

    @classmethod
    def clerk(cls) -> TelegramWording:
        return cls.from_responses(clerk_say("telegram"))


_CLERK_WORDING = TelegramWording.clerk()
TEXT_ONLY = _CLERK_WORDING.text_only  # Clerk's default words (what tests compare with)
TRY_AGAIN = _CLERK_WORDING.try_again
EXPIRED_BUTTON = _CLERK_WORDING.expired_button
COMMANDS = {"/start": "hello", "/help": "what can you do?"}


class TelegramStartError(ClerkError):
    """The Bot API could not be reached, or refused the token, at startup."""


def derived_secret(token: str) -> str:
    """A stable webhook secret for a token (Telegram allows A-Z a-z 0-9 _ -)."""
    return hmac.new(token.encode(), b"clerk-telegram-webhook", hashlib.sha256).hexdigest()


def api_base_url(base_url: str | None) -> str:
    """PTB's ``base_url``: the Bot API root with ``/bot`` (the token is appended)."""
    root = (base_url or "https://api.telegram.org").rstrip("/")
    return root if root.endswith("/bot") else root + "/bot"


# --------------------------------------------------------------------------- rendering


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units."""
    return len(text.encode("utf-16-le")) // 2


def split_text(text: str, limit: int = MAX_TEXT) -> list[str]:
    """Pieces of at most ``limit`` (UTF-16 units), cut at a paragraph, line or word boundary
    when one lies in the second half of the window, else hard."""
    pieces: list[str] = []
    rest = text
    while utf16_len(rest) > limit:
        end = 0
        units = 0
        for i, ch in enumerate(rest):
            units += 2 if ord(ch) > 0xFFFF else 1
            if units > limit:
                break
            end = i + 1
        window = rest[:end]
        cut = -1
        for sep in ("\n\n", "\n", " "):
            at = window.rfind(sep)
            if at >= end // 2:
                cut = at
                break
        if cut <= 0:
            cut = end
        piece = rest[:cut].rstrip()
        if piece:
            pieces.append(piece)
        rest = rest[cut:].lstrip()
    if rest.strip() or not pieces:
        pieces.append(rest)
    return pieces


@dataclass(frozen=True)
class Span:
    text: str
    style: str = "plain"  # plain | bold | italic | link
    url: str = ""

    def markdown(self) -> str:
        if self.style == "bold":
            return "*" + escape_markdown(self.text, version=2) + "*"
        if self.style == "italic":
            return "_" + escape_markdown(self.text, version=2) + "_"
        if self.style == "link":
            url = escape_markdown(self.url, version=2, entity_type="text_link")
            return "[" + escape_markdown(self.text, version=2) + "](" + url + ")"
        return escape_markdown(self.text, version=2)


Block = list[Span]


def card_intro(text: str) -> str:
    """With product cards, the text's bullet list repeats them: keep its introduction."""
    intro: list[str] = []
    for line in text.split("\n"):
        if line.lstrip().startswith(("• ", "- ", "* ")):
            break
        intro.append(line)
    return "\n".join(intro).strip()


def reply_blocks(
    reply: Reply, currency: str = "USD", cards: CardWording | None = None
) -> list[Block]:
    """A reply as blocks of styled text; product cards show prices in ``currency``, the
    store's ``cards`` wording (Clerk's default responses when not given) and, in italics,
    each card's ``reason`` (worded by the engine)."""
    cards = cards or CardWording.clerk("telegram")
    custom = reply.custom or {}
    products = custom.get("products") if custom.get("type") == "product_cards" else None
    blocks: list[Block] = []
    text = reply.text or ""
    if products:
        text = card_intro(text) or text
    if text.strip():
        blocks.extend([[Span(p)] for p in text.strip().split("\n\n") if p.strip()])
    for p in products or []:
        options = ", ".join(f"{k}: {v}" for k, v in (p.get("options") or {}).items())
        price = card_price(p, currency)
        line = []
        if price is not None:
            line.append(price)
        line.append(cards.stock(p))
        block = [Span(cards.name(p), "bold")]
        if options:
            block.append(Span("\n" + options))
        block.append(Span("\n" + " · ".join(line)))
        reason = p.get("reason")
        if isinstance(reason, str) and reason:  # worded by the engine from the domain
            block.extend([Span("\n"), Span(reason, "italic")])
        blocks.append(block)
    if reply.image and reply.image.startswith(("http://", "https://")):
        blocks.append([Span(cards.image_link, "link", reply.image)])
    return blocks


@dataclass(frozen=True)
class Rendered:
    """One Telegram message: its MarkdownV2 text and the same text plain."""

    markdown: str
    plain: str


def render_messages(
    reply: Reply, limit: int = MAX_TEXT, *, currency: str = "USD", cards: CardWording | None = None
) -> list[Rendered]:
    """A reply as Telegram messages, each at most ``limit`` characters once parsed; product
    card prices in the store's ``currency``, cards in its ``cards`` wording."""
    blocks: list[Block] = []
    for block in reply_blocks(reply, currency, cards):
        visible = sum(utf16_len(s.text) for s in block)
        if visible <= limit:
            blocks.append(block)
            continue
        # only plain text grows this long: cut its words, never an escape or an entity
        plain = "".join(s.text for s in block)
        blocks.extend([[Span(piece)] for piece in split_text(plain, limit)])
    messages: list[Rendered] = []
    current: list[Block] = []
    size = 0
    for block in blocks:
        visible = sum(utf16_len(s.text) for s in block)
        extra = visible + (2 if current else 0)
        if current and size + extra > limit:
            messages.append(_join(current))
            current, size = [], 0
            extra = visible
        current.append(block)
        size += extra
    if current:
        messages.append(_join(current))
    return messages


def _join(blocks: list[Block]) -> Rendered:
    return Rendered(
        markdown="\n\n".join("".join(s.markdown() for s in b) for b in blocks),
        plain="\n\n".join("".join(s.text for s in b) for b in blocks),
    )


def render_markdown(
    reply: Reply, limit: int = MAX_TEXT, *, currency: str = "USD", cards: CardWording | None = None
) -> list[str]:
    return [m.markdown for m in render_messages(reply, limit, currency=currency, cards=cards)]


# --------------------------------------------------------------------------- the channel


class TelegramChannel(Channel):
    """Holds the dialogue manager and a python-telegram-bot ``Application``."""

    name = "telegram"
    key_prefix = "tg"

    def __init__(
        self,
        manager: TurnHandler,
        *,
        token: str,
        base_url: str | None = None,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        polling: bool = False,
        poll_timeout: float = 10.0,
        max_retries: int = 3,
        retry_start_after: float = 30.0,
        path: str = "/webhooks/telegram",
        currency: str = "USD",
        cards: CardWording | None = None,
        wording: TelegramWording | None = None,
        rate_limit: int = 20,
        limits: MessageLimits | None = None,
    ) -> None:
        """``currency``: the store's (``Settings.currency``), for product card prices;
        ``cards``/``wording``: the domain's words on product cards and the channel's own
        notices (Clerk's defaults when not given); ``limits``: how many ratings a chat may
        press (default ``rate_limit`` a minute in this process; ``bot.app`` passes the
        chat channels' limits)."""
        self.manager = manager
        self.limiter = limits or LocalMessageLimits(rate_limit)
        self.currency = currency
        self.cards = cards or CardWording.clerk(self.name)
        self.wording = wording or _CLERK_WORDING
        self.token = token
        self.base_url = api_base_url(base_url)
        self.webhook_url = webhook_url
        self.secret = webhook_secret or derived_secret(token)
        self.polling = polling
        self.poll_timeout = poll_timeout
        self.retry_start_after = retry_start_after
        self.path = path
        self.ready = False
        self.errors = 0  # handler errors, for /health and tests
        self.markdown_fallbacks = 0  # replies Telegram could not parse, resent as plain text
        self._payloads: OrderedDict[str, str] = OrderedDict()
        self._chat_locks: weakref.WeakValueDictionary[int, asyncio.Lock] = (
            weakref.WeakValueDictionary()
        )
        self._seen_updates: OrderedDict[int, None] = OrderedDict()
        self._starter: asyncio.Task[None] | None = None
        builder = (
            ApplicationBuilder()
            .token(token)
            .base_url(self.base_url)
            .base_file_url(self.base_url.removesuffix("/bot") + "/file/bot")
            .rate_limiter(AIORateLimiter(max_retries=max_retries))
            .concurrent_updates(16)
            .job_queue(None)
        )
        if not polling:
            builder = builder.updater(None)
        self.application: Application[Any, Any, Any, Any, Any, Any] = builder.build()
        self._add_handlers(self.application)

    def routes(self) -> list[BaseRoute]:
        return [] if self.polling else [Route(self.path, self.webhook, methods=["POST"])]

    # ------------------------------------------------------------------ lifecycle
    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        if self.polling:
            await self._start()  # development: fail loudly
        else:
            try:
                await self._start()
            except TelegramStartError as exc:
                log.error("Telegram is not available yet: %s; retrying in the background", exc)
                self._starter = asyncio.create_task(self._keep_starting())
        try:
            yield
        finally:
            if self._starter is not None:
                self._starter.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await self._starter
            await self._stop()

    async def _start(self) -> None:
        app = self.application
        try:
            await app.initialize()  # getMe: checks the token
            if self.polling:
                assert app.updater is not None
                await app.updater.start_polling(
                    poll_interval=0.0,
                    timeout=int(self.poll_timeout),
                    allowed_updates=ALLOWED_UPDATES,
                    drop_pending_updates=False,
                )
            elif self.webhook_url:
                await app.bot.set_webhook(
                    self.webhook_url, secret_token=self.secret, allowed_updates=ALLOWED_UPDATES
                )
            await app.start()
        except InvalidToken as exc:
            raise TelegramStartError(f"the Bot API refused the token: {exc}") from exc
        except TelegramError as exc:
            with contextlib.suppress(Exception):
                await app.shutdown()
            raise TelegramStartError(str(exc)) from exc
        self.ready = True
        log.info(
            "Telegram channel ready (%s) as @%s",
            "polling" if self.polling else "webhook",
            app.bot.username,
        )

    async def _keep_starting(self) -> None:
        delay = self.retry_start_after
        while not self.ready:
            await asyncio.sleep(delay)
            try:
                await self._start()
            except TelegramStartError as exc:
                log.error("Telegram still not available: %s", exc)
                delay = min(delay * 2, 600.0)

    async def _stop(self) -> None:
        app = self.application
        self.ready = False
        if app.updater is not None and app.updater.running:
            await app.updater.stop()
        if app.running:
            await app.stop()
        await app.shutdown()

    async def serve_polling(self) -> None:
        """``clerk telegram --polling``: run until SIGINT or SIGTERM."""
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        async with self.running():
            print(
                f"Telegram: polling as @{self.application.bot.username}; Ctrl-C to stop", flush=True
            )
            await stop.wait()

    # ------------------------------------------------------------------ webhook
    async def webhook(self, request: Request) -> Response:
        supplied = request.headers.get(SECRET_HEADER, "")
        if not hmac.compare_digest(supplied.encode(), self.secret.encode()):
            log.warning("Telegram webhook call without the right secret token refused")
            return JSONResponse({"error": "wrong secret token"}, status_code=403)
        if not self.ready:
            return JSONResponse({"error": "Telegram channel starting"}, status_code=503)
        try:
            update = self._update(json_object(await request.body(), max_bytes=1_000_000))
        except BadInput as exc:
            return JSONResponse({"error": str(exc)}, status_code=exc.status)
        if update.update_id in self._seen_updates:
            return Response(status_code=200)  # Telegram redelivered it
        self._seen_updates[update.update_id] = None
        while len(self._seen_updates) > 10_000:
            self._seen_updates.popitem(last=False)
        await self.application.update_queue.put(update)
        return Response(status_code=200)

    def _update(self, data: dict[str, Any]) -> Update:
        """A webhook body as an ``Update``; ``BadInput`` when it is not one."""
        update_id = data.get("update_id")
        if not isinstance(update_id, int) or isinstance(update_id, bool):
            raise BadInput("update_id", "must be an integer")
        bad = first_bad_string(data)
        if bad is not None:
            raise BadInput(
                "", f"not a Telegram update: a string at {bad} holds a lone surrogate or a NUL"
            )
        try:
            update = Update.de_json(data, self.application.bot)
        except Exception:  # noqa: BLE001 - PTB builds objects from whatever it is given and
            update = None  # raises what the shape provokes (KeyError, TypeError, Overflow...)
        if update is None:
            raise BadInput("", "not a Telegram update")
        message = update.effective_message
        if message is not None and not isinstance(message.text, str | None):
            raise BadInput("message.text", "must be a string")
        if update.callback_query is not None and not isinstance(
            update.callback_query.data, str | None
        ):
            raise BadInput("callback_query.data", "must be a string")
        return update

    # ------------------------------------------------------------------ handlers
    def _add_handlers(self, app: Application[Any, Any, Any, Any, Any, Any]) -> None:
        # order matters: the first matching handler wins
        app.add_handler(
            MessageHandler(
                filters.UpdateType.EDITED | filters.UpdateType.CHANNEL_POSTS, self._ignore
            )
        )
        app.add_handler(CallbackQueryHandler(self._on_button))
        app.add_handler(MessageHandler(filters.ChatType.GROUPS, self._on_group_message))
        app.add_handler(MessageHandler(filters.ChatType.PRIVATE & filters.TEXT, self._on_text))
        app.add_handler(
            MessageHandler(
                filters.ChatType.PRIVATE & ~filters.StatusUpdate.ALL, self._on_unsupported
            )
        )
        app.add_handler(TypeHandler(Update, self._ignore))
        app.add_error_handler(self._on_error)

    async def _ignore(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        log.debug("Telegram update %s ignored on purpose", update.update_id)

    async def _on_text(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        if msg is None or msg.text is None:
            return
        try:
            text = client_string(msg.text, "text", max_chars=MAX_TEXT * 4)
        except BadInput:
            await self._send_plain(msg.chat_id, self.wording.text_only)
            return
        command = text.split()[0].split("@")[0].lower() if text.startswith("/") else ""
        text = COMMANDS.get(command, text)
        await self._turn(msg.chat_id, text, f"tg{msg.message_id}")

    async def _on_button(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        query = update.callback_query
        if query is None:
            return
        if (query.data or "").startswith(FEEDBACK_PREFIX):
            await self._on_feedback(update)
            return
        payload = (
            self._payloads.get(query.data or "")
            if (query.data or "").startswith("#h:")
            else query.data
        )
        message = query.message
        if (
            not payload
            or message is None
            or message.chat.type != ChatType.PRIVATE
            or text_problem(payload)
        ):
            await query.answer(self.wording.expired_button)
            return
        await query.answer()
        with contextlib.suppress(TelegramError):
            await query.edit_message_reply_markup(reply_markup=None)
        await self._turn(message.chat.id, payload, f"tgcb{query.id}")

    async def _on_feedback(self, update: Update) -> None:
        """A 👍/👎 press: the rating of this private chat's conversation, and nothing else.

        The callback is answered first, as ``_on_button`` does (Telegram refuses an answer
        to a query that waited too long, and a rating may wait on the conversation); a
        press that is no rating of a private chat gets the refusal as that answer. The
        rating is then recorded and thanked under the chat's lock, in order with its turns;
        a refusal the store decides (never asked, ...) is said in the chat."""
        query = update.callback_query
        assert query is not None
        message = query.message
        try:
            rating = checked_rating((query.data or "").removeprefix(FEEDBACK_PREFIX))
        except BadRating:
            rating = None
        if rating is None or message is None or message.chat.type != ChatType.PRIVATE:
            with contextlib.suppress(TelegramError):
                await query.answer(self.wording.feedback_refused)
            return
        chat_id = message.chat.id
        if await self.limiter.check(self.conversation_id(str(chat_id))):
            with contextlib.suppress(TelegramError):
                await query.answer(self.wording.try_again)
            return
        with contextlib.suppress(TelegramError):
            await query.answer()
        async with self._chat_lock(chat_id):
            try:
                thanks = await self.manager.record_feedback(
                    self.conversation_id(str(chat_id)), rating, channel=self.name
                )
            except FeedbackRefused as exc:
                log.info("Telegram rating refused (%s)", exc.reason)
                await self._send_plain(chat_id, self.wording.feedback_refused)
                return
            except Unavailable:
                await self._send_plain(chat_id, self.wording.try_again)
                return
            with contextlib.suppress(TelegramError):
                await query.edit_message_reply_markup(reply_markup=None)
            for reply in thanks:
                await self.send_reply(chat_id, reply)

    async def _on_unsupported(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = update.effective_chat
        if chat is not None:
            await self._send_plain(chat.id, self.wording.text_only)

    async def _on_group_message(self, update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        msg = update.effective_message
        me = self.application.bot.username or ""
        text = (msg.text or "") if msg else ""
        addressed = text.startswith("/") or (me and f"@{me}".lower() in text.lower())
        if msg is None or not addressed:
            return  # group chatter is not for the store's bot
        await self._send_plain(msg.chat_id, self.wording.group_notice.replace("{bot}", me))

    async def _on_error(self, update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
        self.errors += 1
        log.error("Telegram update failed", exc_info=context.error)

    # ------------------------------------------------------------------ turns
    def _chat_lock(self, chat_id: int) -> asyncio.Lock:
        """The lock that orders what the bot does for one chat (turns, ratings)."""
        lock = self._chat_locks.get(chat_id)
        if lock is None:
            lock = self._chat_locks[chat_id] = asyncio.Lock()
        return lock

    async def _turn(self, chat_id: int, text: str, message_id: str) -> None:
        async with self._chat_lock(chat_id):
            with contextlib.suppress(TelegramError):
                await self.application.bot.send_chat_action(chat_id, ChatAction.TYPING)
            try:
                replies = await self.manager.handle(
                    Message(
                        conversation_id=self.conversation_id(str(chat_id)),
                        text=text,
                        channel=self.name,
                        metadata={"message_id": message_id},
                    )
                )
            except Exception:
                log.exception("Telegram turn failed")
                replies = [Reply(text=self.wording.try_again)]
            for reply in replies:
                await self.send_reply(chat_id, reply)

    def delivery(self) -> TelegramChannel:
        return self

    async def deliver(self, message: OutgoingMessage) -> bool:
        """A human agent's message (signed with the agent's name) or a handoff notice,
        through the Bot API (``sendMessage``). ``False`` (kept pending) before the channel
        is ready; a Bot API error keeps it pending too, and the outbox retries."""
        chat = self.local_id(message.conversation_id)
        if not self.ready or not chat.lstrip("-").isdigit():
            return False
        if message.custom is not None:  # a structured message: a request for a rating
            await self.send_reply(int(chat), message.to_reply())
            return True
        signed = message.kind == "agent" and message.sender
        text = f"{message.sender}: {message.text}" if signed else message.text
        await self.send_reply(int(chat), Reply(text=text))
        return True

    async def send_reply(self, chat_id: int, reply: Reply) -> None:
        messages = render_messages(reply, currency=self.currency, cards=self.cards)
        keyboard = self._feedback_keyboard(reply) or self._keyboard(reply.buttons)
        for i, message in enumerate(messages):
            markup = keyboard if i == len(messages) - 1 else None
            try:
                try:
                    await self.application.bot.send_message(
                        chat_id,
                        message.markdown,
                        parse_mode=ParseMode.MARKDOWN_V2,
                        reply_markup=markup,
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                    )
                except BadRequest as exc:
                    if "parse" not in str(exc).lower():
                        raise
                    # never leave the shopper without the answer over formatting
                    self.markdown_fallbacks += 1
                    log.error("Telegram refused our MarkdownV2 (%s); sent as plain text", exc)
                    await self.application.bot.send_message(
                        chat_id,
                        message.plain,
                        reply_markup=markup,
                        link_preview_options=LinkPreviewOptions(is_disabled=True),
                    )
            except Forbidden:
                log.info("Telegram chat %s blocked the bot; reply dropped", chat_id)
                return

    async def _send_plain(self, chat_id: int, text: str) -> None:
        await self.application.bot.send_message(
            chat_id, escape_markdown(text, version=2), parse_mode=ParseMode.MARKDOWN_V2
        )

    def _keyboard(self, buttons: tuple[Button, ...]) -> InlineKeyboardMarkup | None:
        if not buttons:
            return None
        return InlineKeyboardMarkup(
            [
                [
                    InlineKeyboardButton(
                        b.title[:64] or b.payload[:64],
                        callback_data=self._callback_data(b.payload or b.title),
                    )
                ]
                for b in buttons
            ]
        )

    @staticmethod
    def _feedback_keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
        """A request for a rating as one row of 👍/👎 buttons with the domain's labels."""
        custom = reply.custom or {}
        if custom.get("type") != FEEDBACK_REQUEST:
            return None
        row = [
            InlineKeyboardButton(
                f"{THUMBS[r['rating']]} {r.get('label') or ''}".strip()[:64],
                callback_data=FEEDBACK_PREFIX + r["rating"],
            )
            for r in custom.get("ratings") or []
            if isinstance(r, dict) and r.get("rating") in THUMBS
        ]
        return InlineKeyboardMarkup([row]) if row else None

    def _callback_data(self, payload: str) -> str:
        """Telegram carries at most 64 bytes; longer payloads travel as a key to a map (and
        so do payloads that would read as a key or a rating)."""
        if len(payload.encode()) <= MAX_CALLBACK_DATA and not payload.startswith(
            ("#h:", FEEDBACK_PREFIX)
        ):
            return payload
        key = "#h:" + hashlib.sha256(payload.encode()).hexdigest()[:24]
        self._payloads[key] = payload
        self._payloads.move_to_end(key)
        while len(self._payloads) > 5000:
            self._payloads.popitem(last=False)
        return key
