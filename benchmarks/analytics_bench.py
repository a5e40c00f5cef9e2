"""The support report (``bot.analytics``) on about a million tracker events.

Generates ~100,000 conversations (~1,100,000 events) over 90 days with a realistic mix
(greetings, order questions, knowledge answers written by a model or replaced by the
guard, misunderstood messages and rephrasings, offers of a human and handoffs, agents'
conversations, ratings, tickets), seeded, as Clerk stores them (Rasa-shaped event JSON
from ``bot.types``), and bulk-inserts them into a SQLite file and into a fresh PostgreSQL
database, both migrated to the newest schema (revision 0005's indexes included).

The tables grow in time order, as a served bot's do. Then, for the whole 90 days (every
event) and the last 30 and 7 days, it times (median of ``--runs``):

* **report**: ``build_report`` (the SQL aggregates) with the indexes;
* **no 0005 indexes**: the same statements after dropping revision 0005's indexes;
* **Python baseline**: loading the rows the figures need (the window's events streamed in
  conversation order, its conversations, handoffs, tickets) and computing the same figures in Python — a second,
  independent implementation of the report's definitions: its figures must equal the
  SQL report's, which the script checks on every window.

Prints the figures and writes ``benchmarks/results/analytics_bench.json``.

Usage::

    python benchmarks/analytics_bench.py [--conversations 100000] [--runs 5]
        [--pg postgresql://postgres@127.0.0.1:5432/postgres] [--no-pg] [--no-sqlite]
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session
from tqdm import tqdm

from bot.analytics import build_report
from bot.analytics.report import (
    DEFAULT_LOW_CONFIDENCE,
    HANDOFF_LOOKAHEAD,
    MARGIN_S,
    MISS_HANDOFFS,
    TOP,
)
from bot.nlu.config import FALLBACK_INTENT
from bot.store import migrate
from bot.store.db import Database
from bot.store.models import Conversation, ConversationEvent, Handoff, Ticket
from bot.store.personal_data import CLOSED_TICKET_STATUSES
from bot.types import (
    MISS_ACTIONS,
    ActionExecuted,
    BotUttered,
    Event,
    FeedbackGiven,
    HandoffEvent,
    SessionStarted,
    UserUttered,
)

END = dt.datetime(2026, 11, 30, tzinfo=dt.UTC)
DAYS = 90  # of history; the report's windows are the last 90, 30 and 7 days
INDEXES_0005 = {
    "ix_tickets_created_at": ("tickets", "created_at"),
    "ix_tickets_resolved_at": ("tickets", "resolved_at"),
    "ix_conversations_created_at": ("conversations", "created_at"),
    "ix_conversation_events_type_timestamp": ("conversation_events", "type, timestamp"),
    "ix_handoffs_requested_at": ("handoffs", "requested_at"),
}
CHANNELS = (("web", 0.5), ("telegram", 0.2), ("rest", 0.2), ("socketio", 0.1))
INTENTS = (
    ("greet", 0.18, "utter_greet"),
    ("order_status", 0.2, "action_order_status"),
    ("product_question", 0.16, "action_knowledge_answer"),
    ("policy_question", 0.1, "action_knowledge_answer"),
    ("cancel_order", 0.07, "action_cancel_order"),
    ("return_items", 0.06, "action_return_items"),
    ("complaint", 0.04, "action_create_ticket"),
    ("ticket_status", 0.03, "action_ticket_status"),
    ("recommend", 0.05, "action_recommend"),
    ("thank", 0.06, "utter_thank"),
    ("human_handoff", 0.02, "action_handoff"),
    ("goodbye", 0.03, "utter_goodbye"),
)
WRITERS = (
    (None, "openai:gpt-4o-mini", 0.55),
    ("guard", "extractive", 0.2),
    ("timeout", "extractive", 0.05),
    ("error", "extractive", 0.02),
    ("declined", "extractive", 0.03),
    (None, "extractive", 0.15),
)
TRIGGER_REASONS = {
    "asked": "shopper asked for a human",
    "misses": "bot misunderstood 2 messages in a row",
    "complaint": "complaint is strongly negative",
    "action_failed": "action action_cancel_order failed",
    "out_of_scope": "request outside the bot's scope",
}


# -------------------------------------------------------------------------- generating


def _pick(rng: random.Random, weighted: tuple[tuple[Any, ...], ...], at: int) -> tuple[Any, ...]:
    """One item, drawn with the weight at position ``at`` of each."""
    r = rng.random() * sum(item[at] for item in weighted)
    for item in weighted:
        r -= item[at]
        if r <= 0:
            return item
    return weighted[-1]


def _user(
    rng: random.Random, intent: str, ts: float, channel: str, *, to_agent: bool = False
) -> UserUttered:
    confidence = round(rng.betavariate(8, 1.5), 4)
    guess = intent
    name = intent
    if confidence < 0.35:
        name = FALLBACK_INTENT
    ranking = [{"name": guess, "confidence": confidence}] + [
        {"name": other, "confidence": round((1 - confidence) / 3, 4)}
        for other, _, _ in rng.sample(INTENTS, 2)
    ]
    text = f"shopper message about {intent} ⟦email:{rng.getrandbits(40):010x}⟧"
    return UserUttered(
        text=text,
        parse_data={
            "text": text,
            "intent": {"name": name, "confidence": confidence},
            "entities": [],
            "intent_ranking": ranking,
        },
        input_channel=channel,
        message_id=f"{rng.getrandbits(64):016x}",
        metadata={"to_agent": True} if to_agent else {},  # as the turn stamps it
        timestamp=ts,
    )


def _bot(text: str, ts: float, **metadata: Any) -> BotUttered:
    return BotUttered(text=text, metadata={"utter_action": "utter_x", **metadata}, timestamp=ts)


def conversation(
    rng: random.Random, start: float, channel: str
) -> tuple[list[Event], list[tuple[str, str, float]], float | None]:
    """One conversation's events, its handoffs (trigger, reason, time) and, when it ended in
    a complaint ticket, the ticket's opening time."""
    t = start
    events: list[Event] = [
        ActionExecuted(name="action_session_start", timestamp=t),
        SessionStarted(timestamp=t),
        ActionExecuted(name="action_listen", timestamp=t),
    ]
    handoffs: list[tuple[str, str, float]] = []
    ticket_at: float | None = None
    if rng.random() < 0.06:  # opened the widget, never wrote
        return events, handoffs, None
    misses = 0
    handed = False
    for _ in range(rng.choice((1, 1, 1, 2, 2, 2, 3, 3, 4))):
        t += rng.uniform(5, 90)
        intent, _, action = _pick(rng, INTENTS, 1)
        u = _user(rng, intent, t, channel, to_agent=handed)
        events.append(u)
        t += rng.uniform(0.05, 2.0)
        if handed:  # an agent holds the conversation: relayed, no bot answer
            events.append(HandoffEvent(step="agent_message", data={"agent": "ana"}, timestamp=t))
            continue
        missed = u.intent == FALLBACK_INTENT or rng.random() < 0.04
        if missed:
            misses += 1
            name = "action_offer_handoff" if misses >= 2 else "action_default_fallback"
            events += [ActionExecuted(name=name, timestamp=t), _bot("Sorry?", t)]
        elif intent == "human_handoff" or (intent == "complaint" and rng.random() < 0.3):
            trigger = "asked" if intent == "human_handoff" else "complaint"
            events.append(ActionExecuted(name="action_handoff", timestamp=t))
            events.append(
                HandoffEvent(
                    step="requested",
                    reason=TRIGGER_REASONS[trigger],
                    data={"trigger": trigger},
                    timestamp=t,
                )
            )
            events.append(_bot("A colleague will join.", t))
            handoffs.append((trigger, TRIGGER_REASONS[trigger], t))
            handed = True
            if trigger == "complaint":
                ticket_at = t
        elif misses >= 2 and intent in ("greet", "thank") and rng.random() < 0.6:
            # "yes" to the offered human
            events.append(ActionExecuted(name="action_handoff", timestamp=t))
            events.append(
                HandoffEvent(step="requested", reason=TRIGGER_REASONS["misses"], timestamp=t)
            )
            handoffs.append(("misses", TRIGGER_REASONS["misses"], t))
            handed = True
        else:
            misses = 0
            events.append(ActionExecuted(name=action, timestamp=t))
            if action == "action_knowledge_answer":
                fallback, writer, _ = _pick(rng, WRITERS, 2)
                events.append(_bot("The answer [1].", t, writer=writer, fallback=fallback))
            else:
                events.append(_bot("Done.", t))
                if action == "action_create_ticket":
                    ticket_at = t
            if rng.random() < 0.005:  # a failing custom action
                events.append(
                    HandoffEvent(
                        step="requested", reason=TRIGGER_REASONS["action_failed"], timestamp=t
                    )
                )
                handoffs.append(("action_failed", TRIGGER_REASONS["action_failed"], t))
                handed = True
        events.append(ActionExecuted(name="action_listen", timestamp=t + 0.01))
    if handed:
        t += rng.uniform(30, 600)
        events.append(HandoffEvent(step="claimed", data={"agent": "ana"}, timestamp=t))
    if rng.random() < 0.3:
        t += rng.uniform(5, 60)
        events.append(FeedbackGiven(rating="up" if rng.random() < 0.78 else "down", timestamp=t))
        if rng.random() < 0.05:  # changed their mind
            events.append(FeedbackGiven(rating="down", timestamp=t + 3))
    return events, handoffs, ticket_at


def generate(engine: Engine, conversations: int, seed: int, label: str) -> dict[str, int]:
    """Bulk-insert the seeded data set; the same rows for every database."""
    rng = random.Random(seed)
    first = (END - dt.timedelta(days=DAYS)).timestamp()
    # conversations in the order they start, each chunk's rows inserted in time order: the
    # tables grow in time order, as a served bot's do (so row order is time order)
    starts = sorted(first + rng.random() * DAYS * 86400 for _ in range(conversations))
    counts: Counter[str] = Counter()
    chunk = 2000
    with tqdm(total=conversations, desc=f"generating ({label})", unit="conv") as bar:
        for base in range(0, conversations, chunk):
            conv_rows, event_rows, handoff_rows, ticket_rows = [], [], [], []
            for n in range(base, min(base + chunk, conversations)):
                cid = f"c{n:07d}"
                start = starts[n]
                channel = _pick(rng, CHANNELS, 1)[0]
                events, handoffs, ticket_at = conversation(rng, start, channel)
                created = dt.datetime.fromtimestamp(start, dt.UTC)
                conv_rows.append(
                    {
                        "id": f"{channel}:{cid}",
                        "channel": channel,
                        "handoff_status": "claimed" if handoffs else "none",
                        "created_at": created,
                        "updated_at": dt.datetime.fromtimestamp(events[-1].timestamp, dt.UTC),
                        "event_count": len(events),
                    }
                )
                for seq, e in enumerate(events):
                    event_rows.append(
                        {
                            "conversation_id": f"{channel}:{cid}",
                            "seq": seq,
                            "type": e.type_name,
                            "timestamp": e.timestamp,
                            "data": e.to_dict(),
                        }
                    )
                for trigger, reason, when in handoffs:
                    handoff_rows.append(
                        {
                            "conversation_id": f"{channel}:{cid}",
                            "status": "claimed",
                            "reason": reason,
                            "trigger": trigger,
                            "requested_at": dt.datetime.fromtimestamp(when, dt.UTC),
                        }
                    )
                if ticket_at is not None:
                    opened = dt.datetime.fromtimestamp(ticket_at, dt.UTC)
                    solved = rng.random() < 0.7
                    took = dt.timedelta(hours=rng.lognormvariate(2.5, 1.0))
                    resolved = opened + took if solved and opened + took < END else None
                    ticket_rows.append(
                        {
                            "id": f"T-{n:07d}",
                            "status": "solved" if resolved else rng.choice(("open", "pending")),
                            "priority": rng.choice(("low", "normal", "normal", "high")),
                            "text": "my parcel never arrived",
                            "conversation_id": f"{channel}:{cid}",
                            "created_at": opened,
                            "updated_at": resolved or opened,
                            "resolved_at": resolved,
                        }
                    )
            event_rows.sort(key=lambda r: r["timestamp"])
            handoff_rows.sort(key=lambda r: r["requested_at"])
            ticket_rows.sort(key=lambda r: r["created_at"])
            with engine.begin() as conn:
                conn.execute(insert(Conversation), conv_rows)
                conn.execute(insert(ConversationEvent), event_rows)
                if handoff_rows:
                    conn.execute(insert(Handoff), handoff_rows)
                if ticket_rows:
                    conn.execute(insert(Ticket), ticket_rows)
            counts["conversations"] += len(conv_rows)
            counts["events"] += len(event_rows)
            counts["handoffs"] += len(handoff_rows)
            counts["tickets"] += len(ticket_rows)
            bar.update(len(conv_rows))
            bar.set_postfix(events=counts["events"])
    with engine.begin() as conn:
        conn.execute(text("ANALYZE"))
    return dict(counts)


# --------------------------------------------------------------- the Python baseline


def _aware(value: dt.datetime | None) -> dt.datetime | None:
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


def python_report(engine: Engine, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    """The report's figures computed in Python from the rows (see ``bot.analytics.report``
    for the definitions); the same JSON shape as ``Report.to_dict()``."""
    low_bar = DEFAULT_LOW_CONFIDENCE
    s_ts, u_ts = since.timestamp(), until.timestamp()

    def is_miss(kind: str, data: dict[str, Any]) -> bool:
        if kind != "action":
            return False
        name = data.get("name")
        return name in MISS_ACTIONS or (
            name == "action_handoff" and data.get("policy") in MISS_HANDOFFS
        )

    with Session(engine) as s:
        channel_of = dict(s.execute(select(Conversation.id, Conversation.channel)).all())
        handoff_rows = s.execute(
            select(Handoff.conversation_id, Handoff.trigger, Handoff.reason).where(
                Handoff.requested_at >= since, Handoff.requested_at < until
            )
        ).all()
        tickets = s.execute(
            select(Ticket.priority, Ticket.status, Ticket.created_at, Ticket.resolved_at)
        ).all()
        active: set[str] = set()
        engaged: set[str] = set()
        days: Counter[tuple[dt.date, str]] = Counter()
        rating: dict[str, str] = {}
        top: Counter[str] = Counter()
        per: dict[str, list[int]] = {}
        guard: Counter[tuple[str, str | None]] = Counter()
        stream = s.execute(
            select(
                ConversationEvent.conversation_id,
                ConversationEvent.type,
                ConversationEvent.timestamp,
                ConversationEvent.data,
            )
            # the window's events, and an hour either side for the steps around them
            .where(
                ConversationEvent.timestamp >= s_ts - MARGIN_S,
                ConversationEvent.timestamp < u_ts + MARGIN_S,
            )
            .order_by(ConversationEvent.conversation_id, ConversationEvent.seq)
            .execution_options(stream_results=True, yield_per=20000)
        )

        def conversations() -> Iterator[tuple[str, list[tuple[str, float, dict[str, Any]]]]]:
            current, rows = None, []
            for cid, kind, ts, data in stream:
                if cid != current:
                    if current is not None:
                        yield current, rows
                    current, rows = cid, []
                rows.append((kind, ts, data))
            if current is not None:
                yield current, rows

        for cid, rows in conversations():
            seq = []
            written_days: set[dt.date] = set()
            for kind, ts, data in rows:
                inside = s_ts <= ts < u_ts
                to_agent = kind == "user" and bool((data.get("metadata") or {}).get("to_agent"))
                if inside and kind == "user":
                    active.add(cid)
                    written_days.add(dt.datetime.fromtimestamp(ts, dt.UTC).date())
                    if not to_agent:
                        engaged.add(cid)
                if inside and kind == "feedback":
                    rating[cid] = data.get("rating")
                if inside and kind == "bot":
                    writer = (data.get("metadata") or {}).get("writer")
                    if writer is not None:
                        guard[(writer, data["metadata"].get("fallback"))] += 1
                if kind == "action" and data.get("name") == "action_listen":
                    continue
                if kind in ("user", "action", "handoff") and not to_agent:
                    seq.append((kind, ts, data))
            for day in written_days:
                days[(day, channel_of[cid])] += 1
            for i, (kind, ts, data) in enumerate(seq):
                if kind != "user" or not s_ts <= ts < u_ts:
                    continue
                intent = data["parse_data"]["intent"]
                name = intent.get("name")
                meant = name
                if name == FALLBACK_INTENT:
                    meant = (data["parse_data"].get("intent_ranking") or [{}])[0].get(
                        "name"
                    ) or name
                prev = seq[i - 1] if i > 0 else None
                ahead = seq[i + 1 : i + 1 + HANDOFF_LOOKAHEAD]
                missed = bool(ahead) and is_miss(ahead[0][0], ahead[0][2])
                rephrased = prev is not None and is_miss(prev[0], prev[2])
                handed = False
                for k, _, d in ahead:
                    if k == "user":
                        break
                    if k == "handoff" and d.get("step") == "requested":
                        handed = True
                        break
                conf = intent.get("confidence")
                low = name == FALLBACK_INTENT or (conf is not None and conf < low_bar)
                top[str(name)] += 1
                acc = per.setdefault(str(meant), [0] * 6)
                for j, flag in enumerate(
                    (True, low, missed, rephrased, handed, low or missed or rephrased or handed)
                ):
                    acc[j] += int(flag)
    handed_off = {cid for cid, _, _ in handoff_rows if cid in engaged}
    triggers: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for _, trigger, reason in handoff_rows:
        triggers[trigger] += 1
        reasons[reason] += 1
    channels = Counter(channel_of[cid] for cid in active)
    durations = sorted(
        (_aware(r) - _aware(c)).total_seconds()  # type: ignore[operator]
        for _, status, c, r in tickets
        if status in CLOSED_TICKET_STATUSES and r is not None and since <= _aware(r) < until  # type: ignore[operator]
    )
    opened = Counter(p for p, _, c, _ in tickets if since <= _aware(c) < until)  # type: ignore[operator]
    troubled = sorted(
        ((m, acc) for m, acc in per.items() if acc[5]), key=lambda kv: (-kv[1][5], kv[0])
    )[:TOP]
    up = sum(1 for r in rating.values() if r == "up")
    down = sum(1 for r in rating.values() if r == "down")
    n_msgs = sum(acc[0] for acc in per.values())
    n_missed = sum(acc[2] for acc in per.values())
    replaced: Counter[str] = Counter()
    model = 0
    for (writer, fallback), n in guard.items():
        if fallback:
            replaced[fallback] += n
        elif writer != "extractive":
            model += n

    def pct(a: int, b: int) -> float | None:
        return None if b == 0 else round(100.0 * a / b, 2)

    def ranked(c: Counter[str], limit: int | None = None) -> dict[str, int]:
        items = sorted(c.items(), key=lambda kv: (-kv[1], kv[0]))
        return dict(items[:limit] if limit else items)

    def nearest(q_num: int, q_den: int) -> float | None:
        if not durations:
            return None
        rank = (len(durations) * q_num + q_den - 1) // q_den
        return round(durations[rank - 1], 3)

    return {
        "since": since.isoformat(),
        "until": until.isoformat(),
        "conversations": {
            "total": len(active),
            "by_channel": ranked(channels),
            "by_day": [
                {"day": d.isoformat(), "channel": c, "conversations": n}
                for (d, c), n in sorted(days.items())
            ],
            "engaged": len(engaged),
            "contained": len(engaged) - len(handed_off),
            "handed_off": len(handed_off),
            "containment_pct": pct(len(engaged) - len(handed_off), len(engaged)),
            "handoff_rate_pct": pct(len(handed_off), len(engaged)),
        },
        "handoffs": {
            "total": sum(triggers.values()),
            "by_trigger": ranked(triggers),
            "by_reason": ranked(reasons, TOP),
        },
        "messages": {
            "total": n_msgs,
            "missed": n_missed,
            "fallback_rate_pct": pct(n_missed, n_msgs),
            "low_confidence_below": low_bar,
        },
        "top_intents": ranked(top, TOP),
        "misunderstood_intents": [
            {
                "intent": m,
                "messages": acc[0],
                "troubled": acc[5],
                "low_confidence": acc[1],
                "missed": acc[2],
                "rephrased": acc[3],
                "handed_off": acc[4],
            }
            for m, acc in troubled
        ],
        "guard": {
            "knowledge_answers": sum(guard.values()),
            "model_answers": model,
            "replaced": ranked(replaced),
            "replaced_total": sum(replaced.values()),
        },
        "tickets": {
            "opened": ranked(opened),
            "opened_total": sum(opened.values()),
            "resolved": len(durations),
            "median_resolution_s": nearest(1, 2),
            "p90_resolution_s": nearest(9, 10),
        },
        "csat": {"up": up, "down": down, "rated": up + down, "csat_pct": pct(up, up + down)},
    }


def same_figures(sql: dict[str, Any], py: dict[str, Any]) -> list[str]:
    """Where the two differ (resolution times within 10 ms: SQLite's julianday rounds)."""
    problems = []
    for key, a in sql.items():
        b = py[key]
        if key == "tickets":
            for k in ("median_resolution_s", "p90_resolution_s"):
                x, y = a[k], b[k]
                if (x is None) != (y is None) or (x is not None and abs(x - y) > 0.01):
                    problems.append(f"tickets.{k}: {x} != {y}")
            a = {k: v for k, v in a.items() if not k.endswith("_s")}
            b = {k: v for k, v in b.items() if not k.endswith("_s")}
        if json.dumps(a, sort_keys=False) != json.dumps(b, sort_keys=False):
            problems.append(f"{key}: {json.dumps(a)[:300]} != {json.dumps(b)[:300]}")
    return problems


# ----------------------------------------------------------------------------- timing


def timed(fn: Callable[[], Any], runs: int) -> tuple[float, list[float], Any]:
    times, result = [], None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times), times, result


def sql_report(db: Database, since: dt.datetime, until: dt.datetime) -> dict[str, Any]:
    """The production path: one read-only snapshot through ``Database.read()``."""
    with db.read() as s:
        return build_report(s, since, until).to_dict()


def drop_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for name in INDEXES_0005:
            conn.execute(text(f"DROP INDEX IF EXISTS {name}"))
        conn.execute(text("ANALYZE"))


def create_indexes(engine: Engine) -> None:
    with engine.begin() as conn:
        for name, (table, columns) in INDEXES_0005.items():
            conn.execute(text(f"CREATE INDEX IF NOT EXISTS {name} ON {table} ({columns})"))
        conn.execute(text("ANALYZE"))


def bench(database: Database, label: str, runs: int, baseline_runs: int) -> dict[str, Any]:
    engine = database.engine
    windows = {
        f"{DAYS} days (all events)": (END - dt.timedelta(days=DAYS), END),
        "30 days": (END - dt.timedelta(days=30), END),
        "7 days": (END - dt.timedelta(days=7), END),
    }
    out: dict[str, Any] = {}
    for name, (since, until) in windows.items():
        print(f"[{label}] {name}: report with indexes ({runs} runs)...", flush=True)
        with_idx, runs_idx, figures = timed(lambda: sql_report(database, since, until), runs)  # noqa: B023
        print(f"[{label}] {name}: Python baseline ({baseline_runs} runs)...", flush=True)
        py_median, py_runs, py_figures = timed(
            lambda: python_report(engine, since, until),  # noqa: B023
            baseline_runs,
        )
        problems = same_figures(figures, py_figures)
        out[name] = {
            "report_s": round(with_idx, 3),
            "report_runs_s": [round(t, 3) for t in runs_idx],
            "python_baseline_s": round(py_median, 3),
            "python_baseline_runs_s": [round(t, 3) for t in py_runs],
            "speedup_vs_python": round(py_median / with_idx, 1),
            "figures_agree": not problems,
            "disagreements": problems,
            "figures": {
                "conversations": figures["conversations"]["total"],
                "messages": figures["messages"]["total"],
                "containment_pct": figures["conversations"]["containment_pct"],
                "fallback_rate_pct": figures["messages"]["fallback_rate_pct"],
                "handoffs": figures["handoffs"]["total"],
                "csat_pct": figures["csat"]["csat_pct"],
                "guard_replaced": figures["guard"]["replaced_total"],
                "tickets_resolved": figures["tickets"]["resolved"],
            },
        }
    drop_indexes(engine)
    try:
        for name, (since, until) in windows.items():
            print(f"[{label}] {name}: report without 0005's indexes ({runs} runs)...", flush=True)
            no_idx, runs_no, _ = timed(lambda: sql_report(database, since, until), runs)  # noqa: B023
            out[name]["report_without_0005_indexes_s"] = round(no_idx, 3)
            out[name]["report_without_0005_indexes_runs_s"] = [round(t, 3) for t in runs_no]
    finally:
        create_indexes(engine)
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--conversations", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline-runs", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg", default="postgresql://postgres@127.0.0.1:5432/postgres")
    parser.add_argument("--pg-database", default="clerk_analytics_bench", help="created, dropped")
    parser.add_argument("--no-pg", action="store_true")
    parser.add_argument("--no-sqlite", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the databases afterwards")
    parser.add_argument("--json", default=str(ROOT / "benchmarks/results/analytics_bench.json"))
    args = parser.parse_args()

    results: dict[str, Any] = {
        "conversations": args.conversations,
        "seed": args.seed,
        "runs": args.runs,
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs (shared)",
        "python": platform.python_version(),
        "databases": {},
    }
    folder = Path(tempfile.mkdtemp(prefix="clerk-analytics-bench-"))
    targets: list[tuple[str, str, Callable[[], None]]] = []
    if not args.no_sqlite:
        path = folder / "bench.db"
        targets.append(("sqlite", f"sqlite:///{path}", lambda: path.unlink(missing_ok=True)))
    if not args.no_pg:
        import psycopg

        name = args.pg_database
        admin = args.pg

        def pg(sql: str) -> None:
            with psycopg.connect(admin, autocommit=True) as conn:
                conn.execute(sql)

        pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        pg(f'CREATE DATABASE "{name}"')
        base = admin.rsplit("/", 1)[0]
        targets.append(
            (
                "postgresql",
                f"{base}/{name}",
                lambda: pg(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'),
            )
        )
    for label, url, cleanup in targets:
        migrate.upgrade(url)
        database = Database(url)  # Clerk's own engine settings (SQLite: WAL, synchronous=NORMAL)
        engine = database.engine
        try:
            started = time.perf_counter()
            counts = generate(engine, args.conversations, args.seed, label)
            load_s = time.perf_counter() - started
            print(f"[{label}] inserted {counts} in {load_s:.0f} s", flush=True)
            figures = bench(database, label, args.runs, args.baseline_runs)
            results["databases"][label] = {"rows": counts, "load_s": round(load_s, 1), **figures}
        finally:
            database.dispose()
            if not args.keep:
                cleanup()

    print()
    print(
        f"{'database':<11} {'window':<22} {'report':>8} {'no 0005 idx':>12} {'Python':>8} {'speedup':>8}  agree"
    )
    for label, data in results["databases"].items():
        for window, w in data.items():
            if not isinstance(w, dict) or "report_s" not in w:
                continue
            print(
                f"{label:<11} {window:<22} {w['report_s']:>7.2f}s "
                f"{w['report_without_0005_indexes_s']:>11.2f}s {w['python_baseline_s']:>7.2f}s "
                f"{w['speedup_vs_python']:>7.1f}x  {w['figures_agree']}"
            )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(results, indent=2) + "\n", "utf-8")
    print(f"\nwritten {args.json}")
    ok = all(
        w.get("figures_agree", True)
        for data in results["databases"].values()
        for w in data.values()
        if isinstance(w, dict)
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
