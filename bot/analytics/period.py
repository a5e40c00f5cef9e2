"""Report windows from what a person types: ``7d``, ``24h``, ``2w``, ``90m`` (that long
before now), or a date / date-time in ISO 8601 (``2026-11-01``, ``2026-11-01T12:00``,
taken as UTC unless it names an offset). A window is at most ``MAX_WINDOW_DAYS`` long.
Relative windows end at ``now`` rounded up to the next whole minute, so the same preset
typed twice within a minute names the same window (and the console's cached report), and
that window holds everything written until now (rounding down would leave out the current
minute: a report run right after a conversation would not show it)."""

from __future__ import annotations

import datetime as dt
import re

from bot.errors import InputError

_SPAN = re.compile(r"^\s*(\d{1,5})\s*([mhdw])\s*$")
_UNITS = {"m": "minutes", "h": "hours", "d": "days", "w": "weeks"}
EXAMPLES = "7d, 24h, 2w, 90m, 2026-11-01 or 2026-11-01T12:00"
MAX_WINDOW_DAYS = 400


def parse_moment(text: str, now: dt.datetime) -> dt.datetime:
    """``text`` as an aware UTC datetime: a span before ``now`` or an ISO date/date-time.
    ``InputError`` naming the accepted forms otherwise."""
    raw = (text or "").strip()
    span = _SPAN.match(raw)
    if span:
        amount, unit = int(span.group(1)), span.group(2)
        if amount == 0:
            raise InputError(f"{text!r} is an empty span; use e.g. {EXAMPLES}")
        try:
            return now - dt.timedelta(**{_UNITS[unit]: amount})
        except OverflowError:
            raise InputError(f"{text!r} reaches before the year 1") from None
    try:
        moment = dt.datetime.fromisoformat(raw)
    except ValueError:
        raise InputError(f"{text!r} is not a span or a date; use e.g. {EXAMPLES}") from None
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    try:
        return moment.astimezone(dt.UTC)
    except OverflowError:  # 0001-01-01T00:00+05:00 is before the year 1 in UTC
        raise InputError(f"{text!r} is out of the calendar's range in UTC") from None


def parse_window(
    since: str, until: str | None = None, *, now: dt.datetime | None = None
) -> tuple[dt.datetime, dt.datetime]:
    """``[since, until)`` from their texts (``until``: now when not given; ``now`` is
    rounded up to the next whole minute). ``InputError`` when either does not parse, the window is
    empty or longer than ``MAX_WINDOW_DAYS``."""
    now = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    now = _whole_minute_up(now)
    start = parse_moment(since, now)
    end = parse_moment(until, now) if until else now
    if end <= start:
        raise InputError(
            f"the window is empty: {start.isoformat()} is not before {end.isoformat()}"
        )
    if end - start > dt.timedelta(days=MAX_WINDOW_DAYS):
        raise InputError(
            f"the window is {(end - start).days} days long; at most {MAX_WINDOW_DAYS} days"
        )
    return start, end


def _whole_minute_up(moment: dt.datetime) -> dt.datetime:
    """``moment`` itself on a whole minute, else the next whole minute."""
    floored = moment.replace(second=0, microsecond=0)
    return floored if floored == moment else floored + dt.timedelta(minutes=1)
