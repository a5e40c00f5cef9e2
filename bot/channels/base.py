"""The channel contract: a channel turns its transport's messages into ``Message`` values,
hands them to the ``DialogueManager`` it holds, and renders the ``Reply`` values back."""

from __future__ import annotations

import abc
import contextlib
from collections.abc import AsyncIterator

from starlette.routing import BaseRoute


class Channel(abc.ABC):
    name: str = "channel"

    @abc.abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The HTTP/WebSocket routes this channel mounts on the app."""

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Held open while the app serves: start background work (a Telegram client, the
        widget's per-session workers) before yielding, stop it after. Default: nothing."""
        yield
