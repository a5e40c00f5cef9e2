"""Shoppers' personal data in logs: a logging filter that masks emails, phone numbers,
card-like numbers and street addresses before any record is written.

What counts as each is ``bot.text_rules``', the rules the NLU and the store actions read
text by, set to mask rather than to understand: every email-*like* candidate (valid or
not), every phone number the NLU would find plus bare numbers of 10 or more digits without
a cue word, every 13-19 digit card-like number (Luhn-valid or not), and "12 Main Street"-like
street addresses in any case. Masking is by span: ``<email>``, ``<phone>``, ``<card>``,
``<address>``; where spans overlap the longer (then earlier) one is masked.

Installed on the root logger by ``app.py``/``cli.py``; every handler sees masked text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from bot import text_rules
from bot.text_rules import Match

_FINDERS: tuple[tuple[Callable[[str], list[Match]], str], ...] = (
    (lambda text: text_rules.find_emails(text, validate=False), "<email>"),
    (text_rules.find_card_numbers, "<card>"),
    (lambda text: text_rules.find_phones(text, bare_needs_cue=False), "<phone>"),
    (text_rules.find_street_addresses, "<address>"),
)


def personal_spans(text: str) -> list[tuple[int, int, str]]:
    """``(start, end, mask)`` of the personal data in ``text``: sorted, not overlapping."""
    found = [(m.start, m.end, mask) for finder, mask in _FINDERS for m in finder(text)]
    kept: list[tuple[int, int, str]] = []
    for start, end, mask in sorted(found, key=lambda f: (f[0] - f[1], f[0])):
        if all(end <= s or start >= e for s, e, _ in kept):
            kept.append((start, end, mask))
    return sorted(kept)


def redact(text: str) -> str:
    """``text`` with every email, phone number, card number and street address masked."""
    out, pos = [], 0
    for start, end, mask in personal_spans(text):
        out += [text[pos:start], mask]
        pos = end
    out.append(text[pos:])
    return "".join(out)


class RedactingFilter(logging.Filter):
    """Masks a record's formatted message (``redact``); lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a broken format string is not ours to fix here
            return True
        record.msg = redact(message)
        record.args = None
        return True


def install(logger: logging.Logger | None = None) -> None:
    """Add a ``RedactingFilter`` to ``logger`` (the root logger) and its handlers, once."""
    target = logger or logging.getLogger()
    if not any(isinstance(f, RedactingFilter) for f in target.filters):
        target.addFilter(RedactingFilter())
    for handler in target.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
