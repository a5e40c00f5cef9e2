"""``clerk shell``: talk to the bot in the terminal, one conversation per run."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable

from bot.channels.base import CardWording, card_price
from bot.dialogue.manager import DialogueManager
from bot.types import ConversationId, Message, Reply


def render_reply(reply: Reply, currency: str = "USD", cards: CardWording | None = None) -> str:
    """A reply as terminal text; product card prices in the store's ``currency``, cards in
    its ``cards`` wording (Clerk's default responses when not given), each card's
    ``reason`` (already worded by the engine) on the line under it."""
    cards = cards or CardWording.clerk("shell")
    lines = [reply.text or ""]
    for i, b in enumerate(reply.buttons, 1):
        lines.append(f"   [{i}] {b.title}")
    if reply.custom and reply.custom.get("type") == "product_cards":
        for p in reply.custom.get("products", []):
            opts = ", ".join(f"{k}: {v}" for k, v in (p.get("options") or {}).items())
            price = card_price(p, currency) or ""
            line = f"   • {cards.name(p)} ({opts}) — {price} — {cards.stock(p)}"
            reason = p.get("reason")
            lines.append(f"{line}\n     {reason}" if isinstance(reason, str) and reason else line)
    return "\n".join(x for x in lines if x)


class ShellChannel:
    name = "shell"
    key_prefix = "shell"

    def __init__(
        self,
        manager: DialogueManager,
        *,
        sender: str | None = None,
        currency: str = "USD",
        cards: CardWording | None = None,
    ) -> None:
        """``currency``: the store's (``Settings.currency``), for product card prices;
        ``cards``: the domain's words on product cards (Clerk's defaults when not given)."""
        self.manager = manager
        self.currency = currency
        self.cards = cards or CardWording.clerk(self.name)
        self.sender = sender or f"shell-{uuid.uuid4().hex[:8]}"

    async def say(self, text: str) -> list[Reply]:
        return await self.manager.handle(
            Message(
                conversation_id=ConversationId(f"{self.key_prefix}:{self.sender}"),
                text=text,
                channel=self.name,
            )
        )

    def run(self, read: Callable[[str], str] = input, write: Callable[[str], None] = print) -> None:
        write("Clerk shell — type your message; /quit to leave. Buttons: type their number.")
        last: list[Reply] = []

        async def loop() -> None:
            nonlocal last
            while True:
                try:
                    text = read("you> ")
                except (EOFError, KeyboardInterrupt):
                    write("")
                    return
                if text.strip() in ("/quit", "/exit"):
                    return
                buttons = [b for r in last for b in r.buttons]
                if text.strip().isdigit() and 0 < int(text.strip()) <= len(buttons):
                    text = buttons[int(text.strip()) - 1].payload
                last = await self.say(text)
                for r in last:
                    write("bot> " + render_reply(r, self.currency, self.cards))

        asyncio.run(loop())
