"""What bad input must never leave behind: a traceback (or an unencodable line) in the log,
and a stored conversation event holding a string no client may send (NUL, lone surrogate)."""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator
from typing import Any

from sqlalchemy import select

from bot.store.db import Database
from bot.store.models import Conversation, ConversationEvent

BAD_CHARS = re.compile("[\x00\ud800-\udfff]")
# uvicorn's loggers do not propagate to the root logger: watch them by name
WATCHED = ("", "uvicorn", "uvicorn.error", "uvicorn.access", "socketio", "engineio")


class TracebackWatch(logging.Handler):
    """Collects log records that carry a traceback or are at ERROR and above, and any
    record whose message cannot be encoded as UTF-8 (it would end as "--- Logging error
    ---" on stderr)."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.problems: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
            message.encode("utf-8")
        except Exception as exc:  # noqa: BLE001 - exactly what we are looking for
            self.problems.append(f"{record.name}: unencodable log message ({exc!r})")
            return
        if record.exc_info or record.levelno >= logging.ERROR:
            self.records.append(record)
            self.problems.append(
                f"{record.name} {record.levelname}: {message}\n"
                f"{self.format(record) if record.exc_info else ''}"
            )

    def assert_clean(self) -> None:
        assert not self.problems, "\n".join(self.problems[:5])


@contextlib.contextmanager
def watch_tracebacks(debug_loggers: tuple[str, ...] = ()) -> Iterator[TracebackWatch]:
    """While open, every watched logger reports to one ``TracebackWatch``; the loggers in
    ``debug_loggers`` log at DEBUG so tracebacks logged quietly (a connection handler
    that ended on an exception) are seen too."""
    watch = TracebackWatch()
    watch.setFormatter(logging.Formatter())
    saved: dict[str, int] = {}
    for name in WATCHED:
        logging.getLogger(name).addHandler(watch)
    for name in debug_loggers:
        logger = logging.getLogger(name)
        saved[name] = logger.level
        logger.setLevel(logging.DEBUG)
    try:
        yield watch
    finally:
        for name in WATCHED:
            logging.getLogger(name).removeHandler(watch)
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _bad_strings(value: Any, path: str = "$") -> Iterator[str]:
    if isinstance(value, str):
        if BAD_CHARS.search(value):
            yield path
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _bad_strings(key, f"{path} (key)")
            yield from _bad_strings(item, f"{path}.{key}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            yield from _bad_strings(item, f"{path}[{i}]")


def half_written(db: Database) -> list[str]:
    """Every stored conversation id or event value holding a NUL or a lone surrogate."""
    found: list[str] = []
    with db.session() as s:
        for cid in s.scalars(select(Conversation.id)):
            if BAD_CHARS.search(cid):
                found.append(f"conversation id {cid!r}")
        for cid, seq, data in s.execute(
            select(ConversationEvent.conversation_id, ConversationEvent.seq, ConversationEvent.data)
        ):
            found.extend(f"{cid!r} event {seq}: {p}" for p in _bad_strings(data))
    return found
