"""The channel contract: a channel turns its transport's messages into ``Message`` values,
hands them to the ``DialogueManager`` it holds, and renders the ``Reply`` values back.

Conversation ids are made here, server-side: ``key_prefix`` + ``:`` + the id the client
uses within the channel (a REST ``sender``, a widget session, a Telegram chat). A client
can only ever name conversations of the channel it is talking to: a REST sender
``tg:12345`` is the conversation ``rest:tg:12345``, never Telegram chat 12345's."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Mapping
from typing import Any

from starlette.routing import BaseRoute

from bot.knowledge.money import format_money
from bot.types import ConversationId


def card_price(product: Mapping[str, Any], currency: str) -> str | None:
    """A product card's ``price`` as a shopper reads it, in the store's ``currency``
    (``Settings.currency``), written by ``format_money`` with thousands grouped as in the
    reply's own item lines (``$1,299.00``, ``€19.90``). The JSON number is read back from
    its shortest text (``289.69``), never through float arithmetic. ``None`` without one."""
    price = product.get("price")
    if price is None:
        return None
    return format_money(str(price), currency, thousands=True)


class Channel(abc.ABC):
    name: str = "channel"  # stored as ``Conversation.channel``; outbox deliveries key on it
    key_prefix: str = "channel"  # conversation ids are ``<key_prefix>:<client's id>``

    @classmethod
    def conversation_id(cls, local_id: str) -> ConversationId:
        """The conversation a client's own id names within this channel."""
        return ConversationId(f"{cls.key_prefix}:{local_id}")

    @abc.abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The HTTP/WebSocket routes this channel mounts on the app."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Held open while the app serves: start background work (a Telegram client, the
        widget's per-session workers) before yielding, stop it after. Default: nothing."""
        yield
