"""Report windows from what a person types: ``7d``, ``24h``, ``2w``, ``90m`` (that long
before now), or a date / date-time in ISO 8601 (``2026-11-01``, ``2026-11-01T12:00``,
taken as UTC unless it names an offset)."""

from __future__ import annotations

import datetime as dt
import re

from bot.errors import InputError

_SPAN = re.compile(r"^\s*(\d{1,5})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EXAMPLES = "7d, 24h, 2w, 90m, 2026-11-01 or 2026-11-01T12:00"


def parse_moment(text: str, now: dt.datetime) -> dt.datetime:
    """``text`` as an aware UTC datetime: a span before ``now`` or an ISO date/date-time.
    ``InputError`` naming the accepted forms otherwise."""
    raw = (text or "").strip()
    span = _SPAN.match(raw)
    if span:
        amount, unit = int(span.group(1)), span.group(2)
        if amount == 0:
            raise InputError(f"{text!r} is an empty span; use e.g. {EXAMPLES}")
        return now - dt.timedelta(**{_UNITS[unit]: amount})
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{text!r} is not a span or a date; use e.g. {EXAMPLES}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def parse_window(
    since: str, until: str | None = None, *, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """``[since, until)`` from their texts (``until``: now when not given). ``InputError``
    when either does not parse or the window is empty."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    start = parse_moment(since, now)
    end = parse_moment(until, now) if until else now
    if end <= start:
        raise InputError(
            f"the window is empty: {start.isoformat()} is not before {end.isoformat()}"
        )
    return start, end
