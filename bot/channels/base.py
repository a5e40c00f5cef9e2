"""The channel contract: a channel turns its transport's messages into ``Message`` values,
hands them to the ``DialogueManager`` it holds, and renders the ``Reply`` values back."""

from __future__ import annotations

import abc

from starlette.routing import BaseRoute


class Channel(abc.ABC):
    name: str = "channel"

    @abc.abstractmethod
    def routes(self) -> list[BaseRoute]:
        """The HTTP/WebSocket routes this channel mounts on the app."""
