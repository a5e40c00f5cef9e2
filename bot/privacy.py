"""Shoppers' personal data in logs: every log record is masked where it is made, before any
logger, filter or handler sees it: its message, its traceback, its stack, and warnings.

What counts as personal data is ``bot.text_rules``', the rules the NLU and the store actions
read text by, set to mask rather than to understand: every email-*like* candidate (valid or
not), every phone number the NLU would find plus bare numbers of 10 or more digits without
a cue word, mainland China mobile numbers (``1[3-9]`` and 9 digits, ``+86`` optional, as
``bot.lang.find_phones`` reads them, in Chinese text too), every 13-19 digit card-like
number (Luhn-valid or not), and street addresses, flat/unit numbers and postcodes
(``find_street_addresses``). Masking is by span: ``<email>``,
``<phone>``, ``<card>``, ``<address>``; where spans overlap the longer (then earlier) one is
masked.

What a masked record holds (``redact_record``, ``RedactingFilter``):

- the message: when it holds nothing personal, ``msg`` and ``args`` are left alone (the
  common case, and formatters that read ``args``, like uvicorn's access log, keep working);
  else each string argument is masked, and when that is not enough (the data is in a
  non-string argument or spans the template) ``msg`` becomes the masked message and
  ``args`` None;
- the traceback: ``exc_text`` is the masked traceback, which ``logging.Formatter`` prints
  instead of formatting ``exc_info`` again; ``exc_info`` is replaced by a ``RedactedTraceback``
  carrying that same masked text, so it is still there for handlers that ask whether a
  record has a traceback, and a formatter that formats ``exc_info`` itself prints only the
  masked text. The live exception object is not reachable from the record;
- ``stack_info``, and ``message`` when a formatter set it already.

``install()`` (called by ``app.py`` and ``cli.py``) makes the log record factory mask every
record as it is made, so every logger is covered — uvicorn's, which do not propagate to the
root logger, and loggers and handlers configured after ``install()`` (uvicorn configures its
own when it starts, pytest adds its own) — and routes ``warnings.warn`` through the
``py.warnings`` logger (``logging.captureWarnings``). ``RedactingFilter`` masks a record the
same way for a handler fed by records not made in this process (a ``QueueListener``, a
socket receiver). A record that cannot be masked (a bug in a rule) is logged as a notice
that says so, never in clear.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from bot import text_rules
from bot.lang import find_phones as find_mobile_phones
from bot.text_rules import Match


def _mobile_phones(text: str) -> list[Match]:
    """Mainland China mobile numbers (``bot.lang``): "13812345678", "+86 138 1234 5678",
    also where Chinese text runs into them without a space."""
    return [Match("phone", p.e164, p.start, p.end) for p in find_mobile_phones(text)]


_FINDERS: tuple[tuple[Callable[[str], list[Match]], str], ...] = (
    (lambda text: text_rules.find_emails(text, validate=False), "<email>"),
    (text_rules.find_card_numbers, "<card>"),
    (lambda text: text_rules.find_phones(text, bare_needs_cue=False), "<phone>"),
    (_mobile_phones, "<phone>"),
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
    spans = personal_spans(text)
    if not spans:
        return text
    out, pos = [], 0
    for start, end, mask in spans:
        out += [text[pos:start], mask]
        pos = end
    out.append(text[pos:])
    return "".join(out)


class RedactedTraceback(Exception):
    """Stands in a masked record's ``exc_info`` for the exception that was logged; its
    message is the masked traceback text."""


_PLAIN = logging.Formatter()


def _masked_args(record: logging.LogRecord) -> Any:
    """The record's args with every string masked; None when that does not mask the message."""
    args = record.args
    if isinstance(args, Mapping):
        masked: Any = {k: redact(v) if isinstance(v, str) else v for k, v in args.items()}
    elif isinstance(args, tuple):
        masked = tuple(redact(a) if isinstance(a, str) else a for a in args)
    else:
        return None
    try:
        message = str(record.msg) % masked
    except Exception:  # noqa: BLE001 - masking changed what the template accepts
        return None
    return masked if not personal_spans(message) else None


def _mask_message(record: logging.LogRecord) -> None:
    try:
        message = record.getMessage()
    except Exception:  # noqa: BLE001 - a broken format string: keep its parts, masked
        record.msg, record.args = redact(f"{record.msg!s} {record.args!r}"), None
        return
    if not personal_spans(message):
        return
    masked = _masked_args(record) if record.args else None
    if masked is not None:
        record.args = masked
    else:
        record.msg, record.args = redact(message), None


def redact_record(record: logging.LogRecord) -> None:
    """Mask ``record`` in place (see the module docstring for what that leaves in it)."""
    try:
        _mask_message(record)
        exc_info = record.exc_info
        if exc_info and not isinstance(exc_info[1], RedactedTraceback) and not record.exc_text:
            record.exc_text = _PLAIN.formatException(exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
            record.exc_info = (RedactedTraceback, RedactedTraceback(record.exc_text), None)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        if "message" in record.__dict__:
            record.message = redact(str(record.message))
    except Exception as exc:  # noqa: BLE001 - fail closed: nothing unmasked goes out
        record.msg = f"<log record not masked: {type(exc).__name__} in the masking rules>"
        record.args = None
        record.exc_info = record.exc_text = record.stack_info = None
        record.__dict__.pop("message", None)


class RedactingFilter(logging.Filter):
    """Masks every record it sees (``redact_record``); lets every record through."""

    def filter(self, record: logging.LogRecord) -> bool:
        redact_record(record)
        return True


def _redacting_factory(make: Callable[..., logging.LogRecord]) -> Callable[..., logging.LogRecord]:
    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make(*args, **kwargs)
        redact_record(record)
        return record

    factory.clerk_redacting = True  # type: ignore[attr-defined]
    return factory


def install() -> None:
    """Mask every log record made from now on in this process, and log warnings (once;
    calling it again changes nothing)."""
    current = logging.getLogRecordFactory()
    if not getattr(current, "clerk_redacting", False):
        logging.setLogRecordFactory(_redacting_factory(current))
    logging.captureWarnings(True)
