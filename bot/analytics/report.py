"""The support report: how the bot did over a window ``[since, until)``, from the tracker.

``build_report(session, since, until)`` runs a handful of SQL aggregates (SQLAlchemy Core,
the same statements on SQLite and PostgreSQL; window functions ``LAG``/``LEAD``/
``ROW_NUMBER`` exist in both) and returns a ``Report`` of frozen dataclasses. Nothing is
loaded row by row into Python: the database groups and counts, Python only folds a few
dozen grouped rows. It never reads what anyone wrote: no shopper or bot text, only event
types, action and intent names, confidences, ratings, handoff triggers and reasons
(written by Clerk), ticket priorities and times. Sealed transcripts therefore need no key.

Two populations, each stated with its figures:

* **the window's conversations**: conversations whose shopper wrote in ``[since, until)``
  (a ``user`` event there), whenever they started: a conversation's id may be permanent (a
  Telegram chat, a REST sender reusing its id; new sessions stay in the same row), so a
  returning shopper counts in every window they wrote in. Conversations, containment,
  handoff rate. **Handoffs** (episodes) and **CSAT** are counted by their own time in the
  window, of any conversation;
* **the window's events**: events whose ``timestamp`` is in ``[since, until)``, of any
  conversation. Shopper messages to the bot, fallback rate, intents, guard interventions.

Definitions. A *shopper message* is a ``user`` event; one written while a human agent held
the conversation (stamped ``metadata.to_agent`` by the turn, which the bot did not answer)
is a message **to an agent** and none of the bot's: it is left out of everything below but
**conversations**. A conversation's *steps* are its shopper messages to the bot, actions
other than ``action_listen`` and handoff steps, in ``seq`` order; the steps before and after
a message are looked up among the events from ``MARGIN_S`` (an hour) before the window to
an hour after it, so an answer just after ``until`` or a miss just before ``since`` is
seen. The bot's *answer* to a message is the step right after it.

* **conversations**: the window's conversations; **per day** (UTC) and channel: those whose
  shopper wrote that day, so a conversation written to on several days counts on each (the
  days can add up to more than the total);
* **engaged**: a window conversation with at least one shopper message to the bot in the
  window (not only to an agent);
* **handed off**: an engaged conversation with a ``handoffs`` row requested in the window;
  **containment** = (engaged - handed off) / engaged, **handoff rate** = handed off /
  engaged. **Handoffs** counts the episodes (rows) requested in the window, by ``trigger``
  (``bot.handoff.triggers.TriggerKind``) and ``reason``;
* **missed** (fallback): a shopper message whose answer is one of ``bot.types.MISS_ACTIONS``
  (the default fallback, out of scope, the offer of a human after misses), or a handoff
  the bot decided on in place of such an answer (``action_handoff`` recorded with policy
  ``HandoffPolicy:out_of_scope`` or ``HandoffPolicy:misses``: out of scope with
  ``handoff_on_out_of_scope``, the last miss of a row in misses mode ``handoff``; not a
  shopper accepting an offered human); **fallback rate** = missed / shopper messages;
* **top intents**: shopper messages by the intent the NLU recognised
  (``parse_data.intent.name``; ``nlu_fallback`` when it fell back);
* **misunderstood intents**, per *meant* intent: the recognised intent, or for a fallback
  the NLU's best guess (``intent_ranking[0]``). For each, messages that were
  **low confidence** (fell back, or intent confidence below ``low_confidence``),
  **missed**, **rephrased** (the message comes right after a miss: the step right before
  it is a miss action, the bot's answer to the shopper's previous message, so this one
  says it again) and **handed off** (a ``requested`` handoff step among the three steps
  after the message, before the shopper's next message: the bot's answer handed off).
  An intent's **troubled** count is its messages with at least one of these; the table
  lists the intents with the most troubled messages;
* **guard interventions**: knowledge answers (``bot`` events whose metadata names a
  ``writer``); a model's answer **replaced** by the extractive one has its ``fallback``
  reason (``guard``: the fact guard stopped it; ``timeout``, ``error``, ``declined``,
  ``empty``); **model answers** are those written by a model and shown;
* **tickets**: opened (``created_at`` in the window) by priority; resolved (``resolved_at``
  in the window, status solved): count, median and p90 of ``resolved_at - created_at``
  (nearest-rank percentiles);
* **CSAT**: per conversation its last rating (``feedback`` event, ``up``/``down``) given in
  the window; CSAT = up / (up + down).

Rates and percentiles are ``None`` when their denominator is empty.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
)
from sqlalchemy.orm import Session

from bot.nlu.config import FALLBACK_INTENT
from bot.store.models import Conversation, ConversationEvent, Handoff, Ticket
from bot.store.personal_data import CLOSED_TICKET_STATUSES
from bot.types import HANDOFF_POLICY, LISTEN, MISS_ACTIONS, MISS_HANDOFF_TRIGGERS

DEFAULT_LOW_CONFIDENCE = 0.5
TOP = 10  # rows of the intent and reason tables
HANDOFF_LOOKAHEAD = 3  # actions / handoff steps after a message that count as its answer
MARGIN_S = 3600.0  # neighbour steps of the window's messages are read this far around it
MISS_HANDOFFS = tuple(sorted(f"{HANDOFF_POLICY}:{kind}" for kind in MISS_HANDOFF_TRIGGERS))

Pairs = tuple[tuple[str, int], ...]


# ----------------------------------------------------------------------------- the report


@dataclass(frozen=True)
class DayChannel:
    day: dt.date
    channel: str
    conversations: int


@dataclass(frozen=True)
class IntentTrouble:
    """One meant intent's shopper messages and how many went wrong, by way (see module)."""

    intent: str
    messages: int
    low_confidence: int
    missed: int
    rephrased: int
    handed_off: int
    troubled: int


@dataclass(frozen=True)
class GuardFigures:
    knowledge_answers: int
    model_answers: int
    replaced: Pairs  # (fallback reason, answers), most first

    @property
    def replaced_total(self) -> int:
        return sum(n for _, n in self.replaced)

    @property
    def guard_stopped(self) -> int:
        return dict(self.replaced).get("guard", 0)


@dataclass(frozen=True)
class TicketFigures:
    opened: Pairs  # (priority, tickets)
    resolved: int
    median_resolution_s: float | None
    p90_resolution_s: float | None

    @property
    def opened_total(self) -> int:
        return sum(n for _, n in self.opened)


@dataclass(frozen=True)
class Csat:
    up: int
    down: int

    @property
    def rated(self) -> int:
        return self.up + self.down

    @property
    def percent(self) -> float | None:
        return _pct(self.up, self.rated)


@dataclass(frozen=True)
class Report:
    since: dt.datetime
    until: dt.datetime
    # the window's conversations
    conversations: int
    by_day: tuple[DayChannel, ...]
    by_channel: Pairs
    engaged: int
    handed_off: int
    handoffs_by_trigger: Pairs
    handoffs_by_reason: Pairs
    csat: Csat
    # the window's events
    messages: int
    missed: int
    top_intents: Pairs
    misunderstood: tuple[IntentTrouble, ...]
    guard: GuardFigures
    tickets: TicketFigures
    low_confidence: float = DEFAULT_LOW_CONFIDENCE

    @property
    def contained(self) -> int:
        return self.engaged - self.handed_off

    @property
    def containment(self) -> float | None:
        return _pct(self.contained, self.engaged)

    @property
    def handoff_rate(self) -> float | None:
        return _pct(self.handed_off, self.engaged)

    @property
    def handoffs(self) -> int:
        return sum(n for _, n in self.handoffs_by_trigger)

    @property
    def fallback_rate(self) -> float | None:
        return _pct(self.missed, self.messages)

    def days(self) -> list[dt.date]:
        """Every day of the window (UTC), including days without conversations."""
        first, last = self.since.date(), (self.until - dt.timedelta(microseconds=1)).date()
        return [first + dt.timedelta(days=i) for i in range((last - first).days + 1)]

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-able values (``clerk report --json``)."""
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat(),
            "conversations": {
                "total": self.conversations,
                "by_channel": dict(self.by_channel),
                "by_day": [
                    {
                        "day": d.day.isoformat(),
                        "channel": d.channel,
                        "conversations": d.conversations,
                    }
                    for d in self.by_day
                ],
                "engaged": self.engaged,
                "contained": self.contained,
                "handed_off": self.handed_off,
                "containment_pct": self.containment,
                "handoff_rate_pct": self.handoff_rate,
            },
            "handoffs": {
                "total": self.handoffs,
                "by_trigger": dict(self.handoffs_by_trigger),
                "by_reason": dict(self.handoffs_by_reason),
            },
            "messages": {
                "total": self.messages,
                "missed": self.missed,
                "fallback_rate_pct": self.fallback_rate,
                "low_confidence_below": self.low_confidence,
            },
            "top_intents": dict(self.top_intents),
            "misunderstood_intents": [
                {
                    "intent": t.intent,
                    "messages": t.messages,
                    "troubled": t.troubled,
                    "low_confidence": t.low_confidence,
                    "missed": t.missed,
                    "rephrased": t.rephrased,
                    "handed_off": t.handed_off,
                }
                for t in self.misunderstood
            ],
            "guard": {
                "knowledge_answers": self.guard.knowledge_answers,
                "model_answers": self.guard.model_answers,
                "replaced": dict(self.guard.replaced),
                "replaced_total": self.guard.replaced_total,
            },
            "tickets": {
                "opened": dict(self.tickets.opened),
                "opened_total": self.tickets.opened_total,
                "resolved": self.tickets.resolved,
                "median_resolution_s": self.tickets.median_resolution_s,
                "p90_resolution_s": self.tickets.p90_resolution_s,
            },
            "csat": {
                "up": self.csat.up,
                "down": self.csat.down,
                "rated": self.csat.rated,
                "csat_pct": self.csat.percent,
            },
        }

    def rows(self) -> list[tuple[str, str, str]]:
        """The figures as ``(section, name, value)`` rows (the dashboard's CSV export)."""
        out: list[tuple[str, str, str]] = []

        def add(section: str, name: str, value: object) -> None:
            out.append((section, name, "" if value is None else _plain(value)))

        add("window", "since", self.since.isoformat())
        add("window", "until", self.until.isoformat())
        add("conversations", "total", self.conversations)
        add("conversations", "engaged", self.engaged)
        add("conversations", "contained", self.contained)
        add("conversations", "handed_off", self.handed_off)
        add("conversations", "containment_pct", self.containment)
        add("conversations", "handoff_rate_pct", self.handoff_rate)
        for channel, n in self.by_channel:
            add("conversations_by_channel", channel, n)
        for d in self.by_day:
            add("conversations_by_day", f"{d.day.isoformat()} {d.channel}", d.conversations)
        add("messages", "total", self.messages)
        add("messages", "missed", self.missed)
        add("messages", "fallback_rate_pct", self.fallback_rate)
        add("handoffs", "total", self.handoffs)
        for trigger, n in self.handoffs_by_trigger:
            add("handoffs_by_trigger", trigger, n)
        for reason, n in self.handoffs_by_reason:
            add("handoffs_by_reason", reason, n)
        for intent, n in self.top_intents:
            add("top_intents", intent, n)
        for t in self.misunderstood:
            for key in ("troubled", "low_confidence", "missed", "rephrased", "handed_off"):
                add("misunderstood_intents", f"{t.intent} {key}", getattr(t, key))
        add("guard", "knowledge_answers", self.guard.knowledge_answers)
        add("guard", "model_answers", self.guard.model_answers)
        for reason, n in self.guard.replaced:
            add("guard_replaced", reason, n)
        for priority, n in self.tickets.opened:
            add("tickets_opened", priority, n)
        add("tickets", "resolved", self.tickets.resolved)
        add("tickets", "median_resolution_s", self.tickets.median_resolution_s)
        add("tickets", "p90_resolution_s", self.tickets.p90_resolution_s)
        add("csat", "up", self.csat.up)
        add("csat", "down", self.csat.down)
        add("csat", "csat_pct", self.csat.percent)
        return out


def _pct(part: int, whole: int) -> float | None:
    return None if whole == 0 else round(100.0 * part / whole, 2)


def _plain(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.2f}"
    return str(value)


# ----------------------------------------------------------------------------- queries


def build_report(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    *,
    low_confidence: float = DEFAULT_LOW_CONFIDENCE,
) -> Report:
    """The report for ``[since, until)`` (aware datetimes; naive ones are taken as UTC).
    Read-only; a few aggregate statements in the caller's session."""
    since, until = _utc(since), _utc(until)
    if until <= since:
        raise ValueError("the window's end must come after its start")
    dialect = session.get_bind().dialect.name
    conv = _conversations(session, since, until, dialect)
    intents = _messages(session, since.timestamp(), until.timestamp(), low_confidence)
    return Report(
        since=since,
        until=until,
        conversations=conv["total"],
        by_day=conv["by_day"],
        by_channel=conv["by_channel"],
        engaged=conv["engaged"],
        handed_off=conv["handed_off"],
        handoffs_by_trigger=conv["by_trigger"],
        handoffs_by_reason=conv["by_reason"],
        csat=_csat(session, since, until),
        messages=intents["messages"],
        missed=intents["missed"],
        top_intents=intents["top"],
        misunderstood=intents["misunderstood"],
        guard=_guard(session, since.timestamp(), until.timestamp()),
        tickets=_tickets(session, since, until, dialect),
        low_confidence=low_confidence,
    )


def _utc(moment: dt.datetime) -> dt.datetime:
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.UTC)
    return moment.astimezone(dt.UTC)


def _to_agent() -> ColumnElement[bool]:
    """A ``user`` event written while a human agent held the conversation (stamped by the
    turn, ``UserUttered.metadata["to_agent"]``): not a message the bot handled."""
    return ConversationEvent.data[("metadata", "to_agent")].as_boolean().is_(True)


def _epoch_day(column: Any, dialect: str) -> Any:
    """The UTC date of an epoch-seconds column (an event's ``timestamp``)."""
    if dialect == "postgresql":
        return func.date(func.timezone("UTC", func.to_timestamp(column)))
    return func.date(column, "unixepoch")


def _seconds_between(start: Any, end: Any, dialect: str) -> Any:
    if dialect == "postgresql":
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _conversations(
    session: Session, since: dt.datetime, until: dt.datetime, dialect: str
) -> dict[str, Any]:
    e = ConversationEvent
    # one row per conversation and UTC day on which its shopper wrote, and whether any of
    # those messages went to the bot (rather than to a human agent holding it)
    day = _epoch_day(e.timestamp, dialect).label("day")
    per_day = (
        select(
            e.conversation_id.label("cid"),
            day,
            func.max(case((_to_agent(), 0), else_=1)).label("to_bot"),
        )
        .where(e.type == "user", e.timestamp >= since.timestamp(), e.timestamp < until.timestamp())
        .group_by(e.conversation_id, day)
        .cte("per_day")
        .prefix_with("MATERIALIZED")  # read once, for both the days and the totals below
    )
    active = (
        select(per_day.c.cid, func.max(per_day.c.to_bot).label("engaged"))
        .group_by(per_day.c.cid)
        .subquery("active")
    )
    requested = and_(Handoff.requested_at >= since, Handoff.requested_at < until)
    handed = exists().where(Handoff.conversation_id == active.c.cid, requested)
    # one statement, two kinds of rows: per (day, channel) conversations, then per channel
    # conversations, engaged and handed off (day NULL)
    days_rows = (
        select(
            per_day.c.day,
            Conversation.channel,
            func.count().label("n"),
            literal(0).label("engaged"),
            literal(0).label("handed"),
        )
        .join(Conversation, Conversation.id == per_day.c.cid)
        .group_by(per_day.c.day, Conversation.channel)
    )
    channel_rows = (
        select(
            literal(None).label("day"),
            Conversation.channel,
            func.count(),
            func.sum(active.c.engaged),
            func.sum(case((and_(active.c.engaged == 1, handed), 1), else_=0)),
        )
        .join(Conversation, Conversation.id == active.c.cid)
        .group_by(Conversation.channel)
    )
    by_day_list: list[DayChannel] = []
    channels: Counter[str] = Counter()
    engaged = handed_off = 0
    for d, channel, n, engaged_n, handed_n in session.execute(
        days_rows.union_all(channel_rows)
    ).all():
        if d is None:
            channels[str(channel)] += int(n)
            engaged += int(engaged_n or 0)
            handed_off += int(handed_n or 0)
        else:
            by_day_list.append(DayChannel(_as_date(d), str(channel), int(n)))
    by_day = tuple(sorted(by_day_list, key=lambda r: (r.day, r.channel)))

    episodes = session.execute(
        select(Handoff.trigger, Handoff.reason, func.count())
        .where(requested)
        .group_by(Handoff.trigger, Handoff.reason)
    ).all()
    triggers: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for trigger, reason, n in episodes:
        triggers[str(trigger)] += int(n)
        reasons[str(reason)] += int(n)
    return {
        "total": sum(channels.values()),
        "by_day": by_day,
        "by_channel": _ranked(channels.items()),
        "engaged": engaged,
        "handed_off": handed_off,
        "by_trigger": _ranked(triggers.items()),
        "by_reason": _ranked(reasons.items(), TOP),
    }


def _messages(
    session: Session, since_ts: float, until_ts: float, low_confidence: float
) -> dict[str, Any]:
    """Shopper messages of the window with the step before and the steps after them (one
    letter each, ``action_listen`` left out), in one pass of window functions; grouped by
    (recognised, meant) intent."""
    e = ConversationEvent
    action = e.data["name"].as_string()
    recognised = e.data[("parse_data", "intent", "name")].as_string()
    best_guess = e.data[("parse_data", "intent_ranking", 0, "name")].as_string()
    confidence = e.data[("parse_data", "intent", "confidence")].as_float()
    policy = e.data["policy"].as_string()
    # each row in one letter: u shopper message, m miss action (or a handoff the bot
    # decided on instead of answering a miss), a other action, l action_listen,
    # h handoff requested, o other handoff step
    code = case(
        (e.type == "user", literal("u")),
        (
            e.type == "action",
            # a simple CASE: the action's name is read from the JSON once
            case(
                {
                    LISTEN: literal("l"),
                    **{name: literal("m") for name in sorted(MISS_ACTIONS)},
                    "action_handoff": case(
                        (policy.in_(MISS_HANDOFFS), literal("m")), else_=literal("a")
                    ),
                },
                value=action,
                else_=literal("a"),
            ),
        ),
        (e.data["step"].as_string() == "requested", literal("h")),
        else_=literal("o"),
    )
    # each event's JSON is read once, in this fenced (materialised) step: the database may
    # not copy these expressions into the window's projection or the filter below
    rows = (
        select(
            e.conversation_id,
            e.seq,
            e.timestamp.label("ts"),
            code.label("code"),
            case((e.type == "user", recognised), else_=None).label("intent"),
            case((e.type == "user", best_guess), else_=None).label("guess"),
            case((e.type == "user", confidence), else_=None).label("confidence"),
        )
        .where(
            e.type.in_(("user", "action", "handoff")),
            # neighbours from around the window: a message's answer may come after
            # ``until``, the miss it rephrases before ``since``
            e.timestamp >= since_ts - MARGIN_S,
            e.timestamp < until_ts + MARGIN_S,
            # a message to a human agent is no step of the bot's: the bot never answered it
            or_(e.type != "user", ~_to_agent()),
        )
        .cte("rows")
        .prefix_with("MATERIALIZED")
    )
    steps = select(rows).where(rows.c.code != "l").subquery("steps")  # listening is no step

    def over(fn: Any) -> Any:
        return fn.over(partition_by=steps.c.conversation_id, order_by=steps.c.seq)

    meant = case(
        (and_(steps.c.intent == FALLBACK_INTENT, steps.c.guess.is_not(None)), steps.c.guess),
        else_=steps.c.intent,
    )
    seen = select(
        steps.c.code,
        steps.c.ts,
        steps.c.intent,
        meant.label("meant"),
        steps.c.confidence,
        over(func.lag(steps.c.code)).label("before"),
        *(
            over(func.lead(steps.c.code, k)).label(f"after{k}")
            for k in range(1, HANDOFF_LOOKAHEAD + 1)
        ),
    ).subquery("seen")
    c = seen.c
    missed = c.after1 == "m"
    rephrased = c.before == "m"
    handoff_terms = []
    for k in range(1, HANDOFF_LOOKAHEAD + 1):
        earlier = [func.coalesce(c[f"after{j}"], "") != "u" for j in range(1, k)]
        handoff_terms.append(and_(*earlier, c[f"after{k}"] == "h"))
    handed_off = or_(*handoff_terms)
    low = or_(c.intent == FALLBACK_INTENT, c.confidence < low_confidence)

    def flag(condition: ColumnElement[bool]) -> Any:
        return func.sum(case((condition, 1), else_=0))

    grouped = session.execute(
        select(
            c.intent,
            c.meant,
            func.count(),
            flag(low),
            flag(missed),
            flag(rephrased),
            flag(handed_off),
            flag(or_(low, missed, rephrased, handed_off)),
        )
        .where(c.code == "u", c.ts >= since_ts, c.ts < until_ts)
        .group_by(c.intent, c.meant)
    ).all()
    top: Counter[str] = Counter()
    per_meant: dict[str, list[int]] = {}
    for intent, meant, *counts in grouped:
        n = [int(x or 0) for x in counts]
        top[str(intent or "(none)")] += n[0]
        acc = per_meant.setdefault(str(meant or "(none)"), [0] * 6)
        for i, value in enumerate(n):
            acc[i] += value
    troubled = sorted(
        (IntentTrouble(name, *acc) for name, acc in per_meant.items() if acc[5] > 0),
        key=lambda t: (-t.troubled, t.intent),
    )
    return {
        "messages": sum(acc[0] for acc in per_meant.values()),
        "missed": sum(acc[2] for acc in per_meant.values()),
        "top": _ranked(top.items(), TOP),
        "misunderstood": tuple(troubled[:TOP]),
    }


def _guard(session: Session, since_ts: float, until_ts: float) -> GuardFigures:
    e = ConversationEvent
    writer = e.data[("metadata", "writer")].as_string()
    fallback = e.data[("metadata", "fallback")].as_string()
    rows = session.execute(
        select(writer, fallback, func.count())
        .where(e.type == "bot", e.timestamp >= since_ts, e.timestamp < until_ts)
        .where(writer.is_not(None))
        .group_by(writer, fallback)
    ).all()
    answers = model = 0
    replaced: Counter[str] = Counter()
    for name, reason, n in rows:
        answers += int(n)
        if reason:
            replaced[str(reason)] += int(n)
        elif name != "extractive":
            model += int(n)
    return GuardFigures(answers, model, _ranked(replaced.items()))


def _tickets(
    session: Session, since: dt.datetime, until: dt.datetime, dialect: str
) -> TicketFigures:
    opened = session.execute(
        select(Ticket.priority, func.count())
        .where(Ticket.created_at >= since, Ticket.created_at < until)
        .group_by(Ticket.priority)
    ).all()
    took = _seconds_between(Ticket.created_at, Ticket.resolved_at, dialect)
    ranked = (
        select(
            took.label("took"),
            func.row_number().over(order_by=took).label("rank"),
            func.count().over().label("n"),
        )
        .where(
            Ticket.status.in_(CLOSED_TICKET_STATUSES),
            Ticket.resolved_at >= since,
            Ticket.resolved_at < until,
        )
        .subquery("ranked")
    )
    # nearest rank: the p-th percentile is the value of rank ceil(p * n), in integers
    median_rank = (ranked.c.n + 1) // 2
    p90_rank = (ranked.c.n * 9 + 9) // 10
    resolved, median, p90 = session.execute(
        select(
            func.max(ranked.c.n),
            func.max(case((ranked.c.rank == median_rank, ranked.c.took), else_=None)),
            func.max(case((ranked.c.rank == p90_rank, ranked.c.took), else_=None)),
        ).select_from(ranked)
    ).one()
    return TicketFigures(
        opened=_ranked((str(p), int(n)) for p, n in opened),
        resolved=int(resolved or 0),
        median_resolution_s=_seconds(median),
        p90_resolution_s=_seconds(p90),
    )


def _csat(session: Session, since: dt.datetime, until: dt.datetime) -> Csat:
    e = ConversationEvent
    last = (
        select(
            e.data["rating"].as_string().label("rating"),
            func.row_number()
            .over(partition_by=e.conversation_id, order_by=e.seq.desc())
            .label("nth"),
        )
        .where(
            e.type == "feedback",
            e.timestamp >= since.timestamp(),
            e.timestamp < until.timestamp(),
        )
        .subquery("last")
    )
    counts: dict[str, int] = dict(
        session.execute(
            select(last.c.rating, func.count())
            .where(last.c.nth == literal(1))
            .group_by(last.c.rating)
        ).all()
    )
    return Csat(up=int(counts.get("up", 0)), down=int(counts.get("down", 0)))


def _ranked(items: Iterable[tuple[str, int]], limit: int | None = None) -> Pairs:
    out = sorted(((str(k), int(v)) for k, v in items if v), key=lambda kv: (-kv[1], kv[0]))
    return tuple(out[:limit] if limit else out)


def _as_date(value: Any) -> dt.date:
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    return dt.date.fromisoformat(str(value))


def _seconds(value: Any) -> float | None:
    return None if value is None else round(float(value), 3)
