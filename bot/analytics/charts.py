"""The report's charts as PNG images (matplotlib's Agg canvas, no pyplot).

Each chart is drawn on its own ``Figure`` with no global state, so the console can draw
them on worker threads while other requests are served. ``render(report)`` gives every
chart's PNG bytes by name; ``write_charts(report, folder)`` writes them as ``NAME.png``.
Blocking and CPU-bound: async code runs them on a thread.
"""

from __future__ import annotations

import io
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.analytics.report import Report

CHARTS = ("conversations", "rates", "handoffs", "intents", "csat")
#: what each chart shows, for captions and alt texts
CAPTIONS = {
    "conversations": "Conversations per day (the shopper wrote), by channel",
    "rates": "Containment, handoff, fallback and CSAT rates",
    "handoffs": "Handoffs by trigger and by reason",
    "intents": "Top intents and the intents most often misunderstood",
    "csat": "Shopper ratings (last rating per conversation)",
}
_COLOURS = ("#4c72b0", "#dd8452", "#55a868", "#c44e52", "#8172b3", "#937860", "#da8bc3")


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _whole_counts(axis: Any) -> None:
    """Ticks at whole numbers only: the axis counts conversations, messages or handoffs."""
    from matplotlib.ticker import MaxNLocator

    axis.set_major_locator(MaxNLocator(integer=True))


def _empty(ax: Any, what: str) -> None:
    ax.text(0.5, 0.5, f"no {what} in this period", ha="center", va="center", color="#666")
    ax.set_xticks([])
    ax.set_yticks([])


def _barh(ax: Any, pairs: list[tuple[str, float]], title: str, colour: str, what: str) -> None:
    ax.set_title(title)
    if not pairs:
        _empty(ax, what)
        return
    labels = [_short(k) for k, _ in pairs][::-1]
    values = [v for _, v in pairs][::-1]
    ax.barh(labels, values, color=colour)
    _whole_counts(ax.xaxis)
    for y, v in enumerate(values):
        ax.text(v, y, f" {v:g}", va="center", fontsize=8)
    ax.margins(x=0.15)


def _short(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def conversations_chart(report: Report) -> bytes:
    days = report.days()
    channels = [c for c, _ in report.by_channel]
    fig = _figure(max(6.0, min(16.0, 0.35 * len(days) + 3)), 4.0)
    ax = fig.add_subplot()
    ax.set_title(CAPTIONS["conversations"])
    if not channels:
        _empty(ax, "conversations")
        return _png(fig)
    counts = {(d.day, d.channel): d.conversations for d in report.by_day}
    bottom = [0] * len(days)
    x = list(range(len(days)))
    for i, channel in enumerate(channels):
        values = [counts.get((day, channel), 0) for day in days]
        ax.bar(x, values, bottom=bottom, label=channel, color=_COLOURS[i % len(_COLOURS)])
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    step = max(1, len(days) // 14)
    ax.set_xticks(x[::step], [d.strftime("%m-%d") for d in days][::step], rotation=45)
    ax.set_ylabel("conversations")
    _whole_counts(ax.yaxis)
    ax.legend(fontsize=8)
    return _png(fig)


def rates_chart(report: Report) -> bytes:
    fig = _figure(7.0, 3.2)
    ax = fig.add_subplot()
    ax.set_title(CAPTIONS["rates"])
    rates = [
        ("containment", report.containment),
        ("handoff rate", report.handoff_rate),
        ("fallback rate", report.fallback_rate),
        ("CSAT", report.csat.percent),
    ]
    labels = [name for name, _ in rates][::-1]
    values = [v or 0.0 for _, v in rates][::-1]
    ax.barh(labels, values, color=[_COLOURS[3], _COLOURS[2], _COLOURS[1], _COLOURS[0]])
    for y, (_, v) in enumerate(rates[::-1]):
        ax.text(v or 0.0, y, " n/a" if v is None else f" {v:.1f}%", va="center", fontsize=9)
    ax.set_xlim(0, 110)
    ax.set_xlabel("%")
    return _png(fig)


def handoffs_chart(report: Report) -> bytes:
    fig = _figure(11.0, 3.8)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _barh(left, list(report.handoffs_by_trigger), "Handoffs by trigger", _COLOURS[1], "handoffs")
    _barh(right, list(report.handoffs_by_reason), "Handoffs by reason", _COLOURS[4], "handoffs")
    return _png(fig)


def intents_chart(report: Report) -> bytes:
    fig = _figure(12.0, 4.5)
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    _barh(left, list(report.top_intents), "Top intents (messages)", _COLOURS[0], "messages")
    right.set_title("Misunderstood intents (messages)")
    troubles = list(report.misunderstood)
    if not troubles:
        _empty(right, "misunderstood messages")
        return _png(fig)
    kinds = ("low_confidence", "missed", "rephrased", "handed_off")
    y = list(range(len(troubles)))[::-1]
    height = 0.2
    for i, kind in enumerate(kinds):
        right.barh(
            [v - 0.3 + i * height for v in y],
            [getattr(t, kind) for t in troubles],
            height=height,
            label=kind.replace("_", " "),
            color=_COLOURS[i + 1],
        )
    right.set_yticks(y, [_short(t.intent) for t in troubles])
    _whole_counts(right.xaxis)
    right.legend(fontsize=8)
    return _png(fig)


def csat_chart(report: Report) -> bytes:
    fig = _figure(5.0, 3.2)
    ax = fig.add_subplot()
    percent = report.csat.percent
    ax.set_title(
        "CSAT "
        + ("n/a" if percent is None else f"{percent:.1f}%")
        + f" ({report.csat.rated} rated)"
    )
    ax.bar(["up", "down"], [report.csat.up, report.csat.down], color=[_COLOURS[2], _COLOURS[3]])
    ax.set_ylabel("conversations")
    _whole_counts(ax.yaxis)
    return _png(fig)


_DRAW: dict[str, Callable[[Report], bytes]] = {
    "conversations": conversations_chart,
    "rates": rates_chart,
    "handoffs": handoffs_chart,
    "intents": intents_chart,
    "csat": csat_chart,
}


def render(report: Report, name: str) -> bytes:
    """One chart's PNG (``name`` in ``CHARTS``; ``KeyError`` otherwise)."""
    return _DRAW[name](report)


def write_charts(report: Report, folder: Path) -> list[Path]:
    """Every chart as ``folder/NAME.png``; the paths written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name in CHARTS:
        path = folder / f"{name}.png"
        path.write_bytes(render(report, name))
        written.append(path)
    return written
