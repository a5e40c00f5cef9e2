"""A week of support with known answers for the analytics report, written through the
tracker store's own functions (``claim`` / ``commit``), as the bot writes them.

The window is ``[SINCE, UNTIL)``: two days, 2026-11-02 and 2026-11-03 (UTC). ``EXPECTED``
holds every figure of the report over that window, worked out by hand in the comments.
A conversation counts where its shopper wrote in the window, whenever it started: R is a
returning Telegram shopper whose conversation began in January, J one who only wrote to a
human agent during the window.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import update

from bot.store import conversations
from bot.store.db import Database
from bot.store.models import Conversation, Handoff, Ticket
from bot.types import (
    ActionExecuted,
    BotUttered,
    ConversationId,
    Event,
    FeedbackGiven,
    HandoffEvent,
    UserUttered,
)

UTC = dt.UTC
SINCE = dt.datetime(2026, 11, 2, tzinfo=UTC)
DAY2 = dt.datetime(2026, 11, 3, tzinfo=UTC)
UNTIL = dt.datetime(2026, 11, 4, tzinfo=UTC)

# texts shoppers wrote: none of them may appear in a report (one is a sealed email)
SHOPPER_TEXTS = (
    "hi there zebra",
    "where is my parcel quokka",
    "blorp wombat",
    "asdf ocelot",
    "cancel pls narwhal",
    "yes please axolotl",
    "I want a human ⟦email:AbCdEf0123⟧",
)


def at(moment: dt.datetime, **delta: float) -> float:
    return (moment + dt.timedelta(**delta)).timestamp()


def user(
    text: str,
    intent: str,
    confidence: float,
    ts: float,
    guess: str | None = None,
    *,
    to_agent: bool = False,
) -> UserUttered:
    """A shopper message; ``to_agent``: written while a human agent held the conversation,
    stamped as the turn stamps it."""
    ranking = [{"name": guess or intent, "confidence": confidence}]
    return UserUttered(
        text=text,
        parse_data={
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "intent_ranking": ranking,
            "entities": [],
        },
        metadata={"to_agent": True} if to_agent else {},
        timestamp=ts,
    )


def act(name: str, ts: float) -> ActionExecuted:
    return ActionExecuted(name=name, timestamp=ts)


def say(text: str, ts: float, **metadata: Any) -> BotUttered:
    return BotUttered(text=text, metadata={"utter_action": "utter_x", **metadata}, timestamp=ts)


def turn(u: UserUttered, *answer: Event) -> list[Event]:
    """A shopper message, the bot's answer, then listening."""
    last = answer[-1].timestamp if answer else u.timestamp
    return [u, *answer, act("action_listen", last + 0.01)]


def write(db: Database, cid: str, channel: str, started: dt.datetime, events: list[Event]) -> None:
    """One conversation, committed by the tracker store as a turn would; it started (its
    ``created_at``) at ``started``."""
    with db.session() as s:
        snap = conversations.claim(s, ConversationId(cid), channel, "scenario", 30.0)
        assert snap is not None
        assert conversations.commit(
            s, snap, "scenario", events, handoff_status="none", customer_id=None
        )
        s.execute(update(Conversation).where(Conversation.id == cid).values(created_at=started))


def handoff_row(db: Database, cid: str, trigger: str, reason: str, when: dt.datetime) -> None:
    with db.session() as s:
        s.add(
            Handoff(
                conversation_id=cid,
                status="requested",
                reason=reason,
                trigger=trigger,
                requested_at=when,
            )
        )


def ticket(
    db: Database,
    tid: str,
    priority: str,
    created: dt.datetime,
    resolved: dt.datetime | None = None,
) -> None:
    with db.session() as s:
        s.add(
            Ticket(
                id=tid,
                status="solved" if resolved else "open",
                priority=priority,
                text="my parcel never came quokka",
                created_at=created,
                updated_at=resolved or created,
                resolved_at=resolved,
            )
        )


def build(db: Database) -> None:
    d1, d2 = SINCE, DAY2
    # A (web, day 1): greeted, order status answered, rated up. Contained.
    a = d1 + dt.timedelta(hours=10)
    write(
        db,
        "web:a",
        "web",
        a,
        [
            *turn(
                user("hi there zebra", "greet", 0.95, at(a)), act("utter_greet", at(a, seconds=1))
            ),
            *turn(
                user("where is my parcel quokka", "order_status", 0.9, at(a, seconds=10)),
                act("action_order_status", at(a, seconds=11)),
                say("Your order W1 was delivered.", at(a, seconds=11)),
            ),
            FeedbackGiven(rating="up", timestamp=at(a, seconds=30)),
        ],
    )
    # B (telegram, day 1): missed (NLU fell back, best guess order_status), rephrased and
    # answered; rated down then up (the last rating counts). Contained.
    b = d1 + dt.timedelta(hours=11)
    write(
        db,
        "telegram:b",
        "telegram",
        b,
        [
            *turn(
                user("blorp wombat", "nlu_fallback", 0.2, at(b), guess="order_status"),
                act("action_default_fallback", at(b, seconds=1)),
                say("Sorry, I didn't get that.", at(b, seconds=1)),
            ),
            *turn(
                user("where is my parcel quokka", "order_status", 0.85, at(b, seconds=20)),
                act("action_order_status", at(b, seconds=21)),
            ),
            FeedbackGiven(rating="down", timestamp=at(b, seconds=40)),
            FeedbackGiven(rating="up", timestamp=at(b, seconds=50)),
        ],
    )
    # C (web, day 2): two misses (the second offers a human), "yes" hands off. Rated down.
    c = d2 + dt.timedelta(hours=9)
    write(
        db,
        "web:c",
        "web",
        c,
        [
            *turn(
                user("asdf ocelot", "nlu_fallback", 0.1, at(c), guess="cancel_order"),
                act("action_default_fallback", at(c, seconds=1)),
            ),
            *turn(
                user("cancel pls narwhal", "cancel_order", 0.4, at(c, seconds=10)),
                act("action_offer_handoff", at(c, seconds=11)),
            ),
            *turn(
                user("yes please axolotl", "affirm", 0.97, at(c, seconds=20)),
                act("action_handoff", at(c, seconds=21)),
                HandoffEvent(
                    step="requested",
                    reason="bot could not understand; shopper accepted a human",
                    data={"trigger": "misses"},
                    timestamp=at(c, seconds=21),
                ),
                say("A colleague will be with you shortly.", at(c, seconds=21)),
            ),
            FeedbackGiven(rating="down", timestamp=at(c, minutes=10)),
        ],
    )
    handoff_row(
        db,
        "web:c",
        "misses",
        "bot could not understand; shopper accepted a human",
        c + dt.timedelta(seconds=21),
    )
    # D (rest, day 2): asks for a human at once; then writes to the agent (no bot answer,
    # not one of the bot's messages).
    d = d2 + dt.timedelta(hours=12)
    write(
        db,
        "rest:d",
        "rest",
        d,
        [
            *turn(
                user("I want a human ⟦email:AbCdEf0123⟧", "human_handoff", 0.99, at(d)),
                act("action_handoff", at(d, seconds=1)),
                HandoffEvent(
                    step="requested",
                    reason="shopper asked for a human",
                    data={"trigger": "asked"},
                    timestamp=at(d, seconds=1),
                ),
            ),
            HandoffEvent(step="claimed", data={"agent": "ana"}, timestamp=at(d, minutes=2)),
            user("hi there zebra", "greet", 0.6, at(d, minutes=3), to_agent=True),
        ],
    )
    handoff_row(db, "rest:d", "asked", "shopper asked for a human", d + dt.timedelta(seconds=1))
    # E (web, day 2): four knowledge answers: a model's shown, one stopped by the guard,
    # one timed out, one extractive (no model); the last question had low confidence.
    e = d2 + dt.timedelta(hours=15)
    answers = [
        ("product_question", 0.8, "openai:scripted", None),
        ("policy_question", 0.7, "extractive", "guard"),
        ("policy_question", 0.75, "extractive", "timeout"),
        ("product_question", 0.45, "extractive", None),
    ]
    events: list[Event] = []
    for i, (intent, conf, writer, fallback) in enumerate(answers):
        t = at(e, minutes=i)
        events += turn(
            user(f"question {i} about the speaker", intent, conf, t),
            act("action_knowledge_answer", t + 1),
            say("The answer [1].", t + 1, writer=writer, fallback=fallback),
        )
    write(db, "web:e", "web", e, events)
    # F (web, day 2): opened the widget, never wrote. Not engaged.
    f = d2 + dt.timedelta(hours=16)
    write(
        db,
        "web:f",
        "web",
        f,
        [act("action_session_start", at(f)), act("action_listen", at(f, seconds=0.1))],
    )
    # G (web): started before the window; its message at SINCE exactly makes it one of the
    # window's conversations (on day 1), with its rating and handoff (both in the window).
    g = SINCE - dt.timedelta(seconds=30)
    write(
        db,
        "web:g",
        "web",
        g,
        [
            *turn(
                user("hi there zebra", "greet", 0.9, at(g)), act("utter_greet", at(g, seconds=1))
            ),
            *turn(
                user("hi there zebra", "greet", 0.9, at(SINCE)),
                act("utter_greet", at(SINCE, seconds=1)),
            ),
            FeedbackGiven(rating="down", timestamp=at(SINCE, seconds=5)),
        ],
    )
    handoff_row(db, "web:g", "complaint", "complaint is strongly negative", SINCE)
    # H (telegram): starts at UNTIL exactly: outside.
    write(
        db,
        "telegram:h",
        "telegram",
        UNTIL,
        turn(
            user("blorp wombat", "nlu_fallback", 0.1, at(UNTIL)),
            act("action_default_fallback", at(UNTIL, seconds=1)),
        ),
    )
    # I (web, day 2, last second): a greeting; handed off only after the window.
    i = UNTIL - dt.timedelta(seconds=1)
    write(
        db,
        "web:i",
        "web",
        i,
        turn(user("hi there zebra", "greet", 0.9, at(i)), act("utter_greet", at(i, seconds=0.5))),
    )
    handoff_row(db, "web:i", "out_of_scope", "request outside the bot's scope", UNTIL)

    # R (telegram): a returning shopper; the chat id is the conversation, started in
    # January (greeted, rated up, handed off then: none of it counts). In the window: an
    # order question on day 1; on day 2 asks for a human, writes to the agent (not the
    # bot's), the agent hands back, rated down.
    jan = dt.datetime(2026, 1, 10, 9, tzinfo=UTC)
    r1, r2 = d1 + dt.timedelta(hours=20), d2 + dt.timedelta(hours=8)
    write(
        db,
        "telegram:r",
        "telegram",
        jan,
        [
            *turn(
                user("hi there zebra", "greet", 0.9, at(jan)),
                act("utter_greet", at(jan, seconds=1)),
            ),
            FeedbackGiven(rating="up", timestamp=at(jan, seconds=30)),
            *turn(
                user("where is my parcel quokka", "order_status", 0.9, at(r1)),
                act("action_order_status", at(r1, seconds=1)),
            ),
            *turn(
                user("I want a human ⟦email:AbCdEf0123⟧", "human_handoff", 0.99, at(r2)),
                act("action_handoff", at(r2, seconds=1)),
                HandoffEvent(
                    step="requested",
                    reason="shopper asked for a human",
                    data={"trigger": "asked"},
                    timestamp=at(r2, seconds=1),
                ),
            ),
            HandoffEvent(step="claimed", data={"agent": "ana"}, timestamp=at(r2, minutes=5)),
            user("cancel pls narwhal", "cancel_order", 0.3, at(r2, minutes=6), to_agent=True),
            HandoffEvent(step="returned", data={"agent": "ana"}, timestamp=at(r2, minutes=20)),
            FeedbackGiven(rating="down", timestamp=at(r2, minutes=30)),
        ],
    )
    handoff_row(db, "telegram:r", "asked", "shopper asked for a human", jan)
    handoff_row(
        db, "telegram:r", "asked", "shopper asked for a human", r2 + dt.timedelta(seconds=1)
    )
    # J (web): handed off and claimed before the window; in it, only writes to the agent.
    # One of the window's conversations, but not engaged with the bot: not counted as
    # contained, nor as handed off (that was before).
    j = SINCE - dt.timedelta(hours=2)
    write(
        db,
        "web:j",
        "web",
        j,
        [
            *turn(
                user("I want a human ⟦email:AbCdEf0123⟧", "human_handoff", 0.99, at(j)),
                act("action_handoff", at(j, seconds=1)),
                HandoffEvent(
                    step="requested",
                    reason="shopper asked for a human",
                    data={"trigger": "asked"},
                    timestamp=at(j, seconds=1),
                ),
            ),
            HandoffEvent(step="claimed", data={"agent": "ana"}, timestamp=at(j, minutes=1)),
            user("blorp wombat", "nlu_fallback", 0.1, at(SINCE, hours=1), to_agent=True),
        ],
    )
    handoff_row(db, "web:j", "asked", "shopper asked for a human", j + dt.timedelta(seconds=1))

    # tickets: T1 2 h, T2 1 day, T4 4 days 10 h to resolution; T5 resolved after the window
    ticket(db, "T-000001", "high", d1 + dt.timedelta(hours=10), d1 + dt.timedelta(hours=12))
    ticket(db, "T-000002", "normal", d1 + dt.timedelta(hours=11), d2 + dt.timedelta(hours=11))
    ticket(db, "T-000003", "normal", d2 + dt.timedelta(hours=8))
    ticket(db, "T-000004", "low", SINCE - dt.timedelta(days=3), d2 + dt.timedelta(hours=10))
    ticket(db, "T-000005", "low", d2 + dt.timedelta(hours=10), UNTIL + dt.timedelta(hours=1))
    ticket(db, "T-000006", "low", SINCE - dt.timedelta(days=1))


EXPECTED: dict[str, Any] = {
    "since": SINCE.isoformat(),
    "until": UNTIL.isoformat(),
    "conversations": {
        # where the shopper wrote in the window: A B C D E G I R J (F never wrote, H's
        # message is at UNTIL)
        "total": 9,
        "by_channel": {"web": 6, "telegram": 2, "rest": 1},
        "by_day": [  # by the day the shopper wrote: R on both days
            {"day": "2026-11-02", "channel": "telegram", "conversations": 2},  # B R
            {"day": "2026-11-02", "channel": "web", "conversations": 3},  # A G J
            {"day": "2026-11-03", "channel": "rest", "conversations": 1},  # D
            {"day": "2026-11-03", "channel": "telegram", "conversations": 1},  # R
            {"day": "2026-11-03", "channel": "web", "conversations": 3},  # C E I
        ],
        "engaged": 8,  # all but J (wrote only to the agent)
        "contained": 4,  # A B E I (I's handoff came after the window)
        "handed_off": 4,  # C D G R (R's January handoff does not count; J's was before)
        "containment_pct": 50.0,
        "handoff_rate_pct": 50.0,
    },
    "handoffs": {
        # requested in the window: C D G R
        "total": 4,
        "by_trigger": {"asked": 2, "complaint": 1, "misses": 1},
        "by_reason": {
            "shopper asked for a human": 2,
            "bot could not understand; shopper accepted a human": 1,
            "complaint is strongly negative": 1,
        },
    },
    "messages": {
        # to the bot: A2 B2 C3 D1 E4, G's at SINCE, I's, R2; not G's first, H's, R's of
        # January, nor those to an agent (D2, R3, J's)
        "total": 16,
        "missed": 3,  # B1 (fallback), C1 (fallback), C2 (offer of a human)
        "fallback_rate_pct": 18.75,
        "low_confidence_below": 0.5,
    },
    "top_intents": {
        "greet": 3,  # A1 G I
        "order_status": 3,  # A2 B2 R1
        "human_handoff": 2,  # D1 R2
        "nlu_fallback": 2,
        "policy_question": 2,
        "product_question": 2,
        "affirm": 1,
        "cancel_order": 1,
    },
    "misunderstood_intents": [
        # C1 (meant cancel_order: low, missed), C2 (0.4: low, missed, rephrased)
        {
            "intent": "cancel_order",
            "messages": 2,
            "troubled": 2,
            "low_confidence": 2,
            "missed": 2,
            "rephrased": 1,
            "handed_off": 0,
        },
        # D1 and R2 handed off
        {
            "intent": "human_handoff",
            "messages": 2,
            "troubled": 2,
            "low_confidence": 0,
            "missed": 0,
            "rephrased": 0,
            "handed_off": 2,
        },
        # A2 R1 fine, B1 (meant order_status: low, missed), B2 (rephrased)
        {
            "intent": "order_status",
            "messages": 4,
            "troubled": 2,
            "low_confidence": 1,
            "missed": 1,
            "rephrased": 1,
            "handed_off": 0,
        },
        # C3: after the offer (rephrased), handed off
        {
            "intent": "affirm",
            "messages": 1,
            "troubled": 1,
            "low_confidence": 0,
            "missed": 0,
            "rephrased": 1,
            "handed_off": 1,
        },
        # E4 at 0.45
        {
            "intent": "product_question",
            "messages": 2,
            "troubled": 1,
            "low_confidence": 1,
            "missed": 0,
            "rephrased": 0,
            "handed_off": 0,
        },
    ],
    "guard": {
        "knowledge_answers": 4,
        "model_answers": 1,
        "replaced": {"guard": 1, "timeout": 1},
        "replaced_total": 2,
    },
    "tickets": {
        "opened": {"normal": 2, "high": 1, "low": 1},  # T1 T2 T3 T5
        "opened_total": 4,
        "resolved": 3,  # T1 T2 T4
        "median_resolution_s": 86400.0,  # rank 2 of 3
        "p90_resolution_s": 381600.0,  # rank 3 of 3: T4, 4 days 10 hours
    },
    # rated in the window, the last rating each: A up, B up (last), C down, G down, R down
    # (its January up does not count)
    "csat": {"up": 2, "down": 3, "rated": 5, "csat_pct": 40.0},
}
