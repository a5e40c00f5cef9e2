"""The channel contract: a channel turns its transport's messages into ``Message`` values,
hands them to the ``DialogueManager`` it holds, and renders the ``Reply`` values back.

Conversation ids are made here, server-side: ``key_prefix`` + ``:`` + the id the client
uses within the channel (a REST ``sender``, a widget session, a Telegram chat). A client
can only ever name conversations of the channel it is talking to: a REST sender
``tg:12345`` is the conversation ``rest:tg:12345``, never Telegram chat 12345's."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

from starlette.routing import BaseRoute

from bot.knowledge.money import format_money
from bot.types import ConversationId

if TYPE_CHECKING:
    from bot.dialogue.domain import Domain
    from bot.handoff.outbox import ShopperDelivery


def card_price(product: Mapping[str, Any], currency: str) -> str | None:
    """A product card's ``price`` as a shopper reads it, in the store's ``currency``
    (``Settings.currency``), written by ``format_money`` with thousands grouped as in the
    reply's own item lines (``$1,299.00``, ``€19.90``). The JSON number is read back from
    its shortest text (``289.69``), never through float arithmetic. ``None`` without one."""
    price = product.get("price")
    if price is None:
        return None
    return format_money(str(price), currency, thousands=True)


#: ``say(name, values)``: domain response ``name`` as one plain text, its ``{placeholders}``
#: filled from ``values`` (``Domain.text`` on the channel's name, so a store's channel
#: variants apply). The composition root (``bot.app``) builds it from the project's domain.
Say = Callable[[str, Mapping[str, Any]], str]


def domain_say(domain: Domain, channel: str | None = None) -> Say:
    """``Say`` over ``domain``'s responses, choosing variants for ``channel``."""
    return lambda name, values: domain.text(name, {}, values, channel=channel)


@cache
def clerk_say(channel: str | None = None) -> Say:
    """``Say`` over Clerk's default responses alone: the wording of a channel built without
    a project (tests, a bare channel)."""
    from bot.dialogue.domain import Domain

    return domain_say(Domain.from_dict({}), channel)


@dataclass(frozen=True)
class CardWording:
    """The words a reply written as text (Telegram, shell) puts around the store's data:
    a product card's stock labels, the name of a product without one (``utter_card_*``) and
    the label of an image link (``utter_image_link``)."""

    in_stock: str
    out_of_stock: str
    unnamed: str
    image_link: str = "Image"

    @classmethod
    def from_responses(cls, say: Say) -> CardWording:
        return cls(
            in_stock=say("utter_card_in_stock", {}),
            out_of_stock=say("utter_card_out_of_stock", {}),
            unnamed=say("utter_card_product", {}),
            image_link=say("utter_image_link", {}),
        )

    @classmethod
    def clerk(cls, channel: str | None = None) -> CardWording:
        """Clerk's default wording."""
        return cls.from_responses(clerk_say(channel))

    def stock(self, product: Mapping[str, Any]) -> str:
        """``product``'s stock label (its ``available`` flag)."""
        return self.in_stock if product.get("available") else self.out_of_stock

    def name(self, product: Mapping[str, Any]) -> str:
        """``product``'s name, or the unnamed label."""
        return str(product.get("name") or self.unnamed)


class Channel(abc.ABC):
    name: str = "channel"  # stored as ``Conversation.channel``; outbox deliveries key on it
    key_prefix: str = "channel"  # conversation ids are ``<key_prefix>:<client's id>``

    @classmethod
    def conversation_id(cls, local_id: str) -> ConversationId:
        """The conversation a client's own id names within this channel."""
        return ConversationId(f"{cls.key_prefix}:{local_id}")

    @classmethod
    def local_id(cls, conversation_id: str) -> str:
        """The client's own id within this channel: ``conversation_id`` without the
        channel's ``<key_prefix>:``."""
        return str(conversation_id).removeprefix(f"{cls.key_prefix}:")

    @abc.abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The HTTP/WebSocket routes this channel mounts on the app."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Held open while the app serves: start background work (a Telegram client, the
        widget's per-session workers) before yielding, stop it after. Default: nothing."""
        yield

    def delivery(self) -> ShopperDelivery | None:
        """How messages that answer no shopper turn (a human agent's reply, "Ana joined")
        reach this channel's shoppers: a ``bot.handoff.outbox.ShopperDelivery`` the
        composition root registers with the outbox under ``name``. A channel that can push
        (the widget, Socket.IO, Telegram) implements ``deliver`` itself and returns itself.
        Default ``None``: the channel cannot push, its clients take the messages when they
        poll (REST)."""
        return None
