"""The report as plain-text tables (``clerk report``)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from bot.analytics.report import Report


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}%"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "n/a"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 86400 * 2:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def table(title: str, header: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A titled table with aligned columns (numbers right-aligned)."""
    cells = [[str(h) for h in header]] + [[str(c) for c in r] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    numeric = [
        all(isinstance(r[i], int | float) for r in rows) and bool(rows) for i in range(len(header))
    ]

    def line(row: Sequence[str]) -> str:
        return "  ".join(
            c.rjust(w) if numeric[i] else c.ljust(w)
            for i, (c, w) in enumerate(zip(row, widths, strict=True))
        ).rstrip()

    out = [title, line(cells[0]), "  ".join("-" * w for w in widths)]
    out += [line(r) for r in cells[1:]] if rows else ["(none)"]
    return "\n".join(out)


def format_report(report: Report) -> str:
    r = report
    days: dict[dt.date, dict[str, int]] = {}
    for d in r.by_day:
        days.setdefault(d.day, {})[d.channel] = d.conversations
    channels = [c for c, _ in r.by_channel]
    parts = [
        f"Support report {r.since:%Y-%m-%d %H:%M} to {r.until:%Y-%m-%d %H:%M} UTC",
        table(
            "Summary",
            ("figure", "value"),
            [
                ("conversations (the shopper wrote)", r.conversations),
                ("engaged (wrote to the bot)", r.engaged),
                ("containment", _pct(r.containment)),
                ("handed off", r.handed_off),
                ("handoff rate", _pct(r.handoff_rate)),
                ("handoffs requested", r.handoffs),
                ("shopper messages to the bot", r.messages),
                ("missed (fallback)", r.missed),
                ("fallback rate", _pct(r.fallback_rate)),
                ("CSAT", f"{_pct(r.csat.percent)} ({r.csat.up} up, {r.csat.down} down)"),
            ],
        ),
        table(
            "Conversations per day (UTC, the days the shopper wrote)",
            ("day", *channels, "total"),
            [
                (
                    day.isoformat(),
                    *(days.get(day, {}).get(c, 0) for c in channels),
                    sum(days.get(day, {}).values()),
                )
                for day in r.days()
            ]
            if channels
            else [],
        ),
        table("Conversations per channel", ("channel", "conversations"), list(r.by_channel)),
        table("Handoffs by trigger", ("trigger", "handoffs"), list(r.handoffs_by_trigger)),
        table("Handoffs by reason", ("reason", "handoffs"), list(r.handoffs_by_reason)),
        table("Top intents", ("intent", "messages"), list(r.top_intents)),
        table(
            f"Misunderstood intents (low confidence: below {r.low_confidence:g} or fallback)",
            ("intent", "messages", "troubled", "low conf.", "missed", "rephrased", "handed off"),
            [
                (
                    t.intent,
                    t.messages,
                    t.troubled,
                    t.low_confidence,
                    t.missed,
                    t.rephrased,
                    t.handed_off,
                )
                for t in r.misunderstood
            ],
        ),
        table(
            "Knowledge answers and guard interventions",
            ("figure", "answers"),
            [
                ("knowledge answers", r.guard.knowledge_answers),
                ("model answers shown", r.guard.model_answers),
                *((f"replaced: {reason}", n) for reason, n in r.guard.replaced),
            ],
        ),
        table(
            "Tickets",
            ("figure", "value"),
            [
                *((f"opened: {p}", n) for p, n in r.tickets.opened),
                ("opened", r.tickets.opened_total),
                ("resolved", r.tickets.resolved),
                ("time to resolution, median", _duration(r.tickets.median_resolution_s)),
                ("time to resolution, p90", _duration(r.tickets.p90_resolution_s)),
            ],
        ),
    ]
    return "\n\n".join(parts) + "\n"
