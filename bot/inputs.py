"""The rules every value a client sends must pass before Clerk uses it: one place, shared by
the HTTP endpoints, the console API and the socket channels (it sits below them, so every
one of them may import it).

A client string is refused when it holds a lone surrogate (``json.loads`` turns ``"\\ud800"``
into one; it fails later, when encoded to UTF-8 for the database or a response), a NUL
(PostgreSQL refuses it in text) or another C0 control character (``\\n``, ``\\r`` and ``\\t``
are allowed in free text, not in ids), or when it is too long. The error names the field and
never repeats the value, so the refusal itself is always safe to encode and log.

Contract: functions here raise ``BadInput`` (an ``InputError``), never anything else, for
any JSON value or bytes; callers answer ``exc.status`` (400, or 413 for a body over its
limit) with ``{"error": ...}`` holding ``str(exc)``. They do no I/O.
"""

from __future__ import annotations

import json
import re
from typing import Any

from bot.errors import InputError

_SURROGATE = re.compile("[\ud800-\udfff]")
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f]")
_CONTROL_IN_LINE = re.compile("[\x00-\x1f]")


class BadInput(InputError):
    """A client value that breaks a rule. ``field``: what the client sent it as;
    ``status``: the HTTP status to answer with."""

    def __init__(self, field: str, problem: str, status: int = 400) -> None:
        super().__init__(f"{field!r} {problem}" if field else problem)
        self.field = field
        self.problem = problem
        self.status = status


def text_problem(value: str, *, single_line: bool = False) -> str | None:
    """What is wrong with the characters of ``value`` (``None`` when nothing is)."""
    if _SURROGATE.search(value):
        return "holds an unpaired surrogate (invalid Unicode)"
    if "\x00" in value:
        return "holds a NUL character"
    if (_CONTROL_IN_LINE if single_line else _CONTROL_IN_TEXT).search(value):
        return "holds a control character"
    return None


def client_string(
    value: object,
    field: str,
    *,
    max_chars: int,
    min_chars: int = 0,
    single_line: bool = False,
    strip: bool = False,
) -> str:
    """``value`` as a string that passes the rules, else ``BadInput`` naming ``field``.
    ``single_line``: an id or a name (no line breaks or tabs); ``strip``: surrounding
    whitespace is removed after the characters and ``max_chars`` are checked (so the rules
    read the same as a schema's ``pattern`` and ``maxLength``), before ``min_chars``."""
    if value is None:
        raise BadInput(field, "is required")
    if not isinstance(value, str):
        raise BadInput(field, "must be a string")
    problem = text_problem(value, single_line=single_line)
    if problem is not None:
        raise BadInput(field, problem)
    if len(value) > max_chars:
        raise BadInput(field, f"must have at most {max_chars} characters")
    if strip:
        value = value.strip()
    if len(value) < min_chars:
        raise BadInput(
            field,
            "must not be empty" if min_chars == 1 else f"must have at least {min_chars} characters",
        )
    return value


def client_id(value: object, field: str, *, max_chars: int, numbers: bool = True) -> str:
    """An identifier a client names (a sender, a product, a message): a non-empty single-line
    string or, with ``numbers``, an integer (Rasa clients send numeric senders) as its
    decimal text."""
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return client_string(
        value, field, max_chars=max_chars, min_chars=1, single_line=True, strip=True
    )


def optional_string(
    data: dict[str, Any], key: str, *, max_chars: int, single_line: bool = False
) -> str | None:
    """``data[key]`` checked as a client string, or ``None`` when absent or null."""
    value = data.get(key)
    if value is None:
        return None
    return client_string(value, key, max_chars=max_chars, single_line=single_line)


def json_object(body: bytes, *, max_bytes: int) -> dict[str, Any]:
    """A request body as a JSON object. Over ``max_bytes``: ``BadInput`` with status 413;
    not UTF-8, not JSON (including nesting too deep to parse and integers too long to
    convert), or not an object: status 400. Strings inside are not checked here: each
    field is checked where it is read, so the error can name it."""
    if len(body) > max_bytes:
        raise BadInput("", f"request body over {max_bytes} bytes", status=413)
    try:
        data = json.loads(body or b"null")
    except UnicodeDecodeError:
        raise BadInput("", "malformed JSON: the body is not UTF-8") from None
    except json.JSONDecodeError as exc:
        raise BadInput(
            "", f"malformed JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (ValueError, RecursionError):
        # ValueError: an integer over Python's digit limit; RecursionError: too deeply nested
        raise BadInput("", "malformed JSON: a number too long or nesting too deep") from None
    if not isinstance(data, dict):
        raise BadInput("", "the body must be a JSON object")
    return data


def first_bad_string(value: object, path: str = "$", *, depth: int = 0) -> str | None:
    """The path of the first string (key or value) in a parsed JSON document that holds a
    lone surrogate or a NUL, or ``None``. For documents stored or relayed whole (a
    Telegram update) whose fields are not each checked by name."""
    if depth > 100:
        return path
    if isinstance(value, str):
        return path if _SURROGATE.search(value) or "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str) or _SURROGATE.search(key) or "\x00" in key:
                return f"{path} (a key)"
            found = first_bad_string(item, f"{path}.{key}", depth=depth + 1)
            if found is not None:
                return found
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found = first_bad_string(item, f"{path}[{i}]", depth=depth + 1)
            if found is not None:
                return found
    return None
