"""Shoppers' personal data sealed in stored conversations (``CLERK_TRANSCRIPT_KEY``).

Which was chosen and why: **field-level encryption of the personal data in each stored
event**, not plain masking. Every email, phone number, card number and street address in
an event (what ``bot.privacy.personal_spans`` finds, in the shopper's text, the bot's
replies, the NLU's entities and the slots) is replaced in the database by
``⟦email:<token>⟧``, the token being the value encrypted with the store's key (Fernet:
AES-128-CBC + HMAC-SHA256). Masking would lose the values for good, and a form that asks
for a new address in one turn and changes the order after the shopper confirms in the
next reads that address back from the stored conversation: masked, it would write
"<address>" into the order. Sealed, the next turn opens it, and:

* the database, its backups and anyone reading ``conversation_events`` see no personal
  data, only tokens;
* the conversation's own turns (``ConversationGate``) get the real values back, so the
  store's actions work as before;
* the agent console and the widget's history show what an agent or the shopper needs
  (opened, for the key holder's own processes);
* ``clerk privacy delete`` / retention purging remove the rows; dropping the key makes
  every sealed value unreadable at once.

Without a key nothing is sealed. A token that cannot be opened (another key, damaged)
reads as ``<email>``. Thread-safe: a ``Sealer`` holds only its key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from cryptography.fernet import Fernet, InvalidToken

from bot.errors import ConfigError
from bot.privacy import personal_spans
from bot.types import Event, event_from_dict

_SEALED = re.compile(r"\u27e6(email|phone|card|address):([A-Za-z0-9_\-=]+)\u27e7")


class Sealer:
    """Seals personal data in event texts with ``key`` and opens it again."""

    def __init__(self, key: str) -> None:
        try:
            self._fernet = Fernet(key.encode() if isinstance(key, str) else key)
        except (ValueError, TypeError) as exc:
            raise ConfigError(
                "CLERK_TRANSCRIPT_KEY",
                "must be a Fernet key (32 url-safe base64 bytes); "
                'make one with: python -c "from cryptography.fernet import Fernet; '
                'print(Fernet.generate_key().decode())"',
            ) from exc

    # -- text ----------------------------------------------------------------------------

    def seal_text(self, text: str) -> str:
        out, pos = [], 0
        for start, end, mask in personal_spans(text):
            token = self._fernet.encrypt(text[start:end].encode()).decode()
            out += [text[pos:start], f"\u27e6{mask.strip('<>')}:{token}\u27e7"]
            pos = end
        out.append(text[pos:])
        return "".join(out)

    def open_text(self, text: str) -> str:
        return _SEALED.sub(self._open_one, text) if "\u27e6" in text else text

    def _open_one(self, m: re.Match[str]) -> str:
        try:
            return self._fernet.decrypt(m.group(2).encode()).decode()
        except InvalidToken:
            return f"<{m.group(1)}>"

    # -- events --------------------------------------------------------------------------

    def seal(self, events: Iterable[Event]) -> list[Event]:
        return [event_from_dict(_map_strings(e.to_dict(), self.seal_text)) for e in events]

    def open(self, events: Iterable[Event]) -> list[Event]:
        return [event_from_dict(_map_strings(e.to_dict(), self.open_text)) for e in events]

    def open_data(self, data: dict[str, Any]) -> dict[str, Any]:
        """A stored event's JSON, opened."""
        return _map_strings(data, self.open_text)  # type: ignore[no-any-return]


def masked(text: str) -> str:
    """Sealed values shown as ``<email>`` (for whoever holds no key)."""
    return _SEALED.sub(lambda m: f"<{m.group(1)}>", text)


def _map_strings(value: Any, f: Any) -> Any:
    """``value`` with ``f`` applied to every string in it (dict keys aside)."""
    if isinstance(value, str):
        return f(value)
    if isinstance(value, dict):
        return {k: _map_strings(v, f) for k, v in value.items()}
    if isinstance(value, list):
        return [_map_strings(v, f) for v in value]
    return value
