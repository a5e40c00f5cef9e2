"""Shared parts of ``benchmarks/load.py`` and ``benchmarks/faults.py``: scripted shoppers
talking to the bot over REST and the widget WebSocket, the servers they talk to (Clerk
started as a subprocess on a fresh home and database), figures, and the read-only check
of the transcripts in the database.

Nothing here is imported by Clerk; it imports Clerk only for the database schema
(``bot.store.models``) in the transcript check and, in a subprocess, to prepare a home.

Every shopper is a different demo-store customer with a pending order of their own, so the
cancellations and tickets of one shopper never touch another's. The demo store has 274
customers with a pending order: that bounds the shoppers of one server (``ShopperPool``).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results"
CATALOG = ROOT / "knowledge" / "catalog"
DEFAULT_HOME_CACHE = Path.home() / ".cache" / "clerk" / "load-home"
PG_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
REDIS_URL = "redis://127.0.0.1:6379/0"

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# ============================================================================ shoppers


@dataclass(frozen=True)
class Shopper:
    """One demo-store customer and what they will ask about."""

    index: int
    customer_id: str
    first_name: str
    email: str
    order_id: str  # a pending order of theirs: status, then cancel, then a complaint
    product: str
    option: str
    prices: tuple[str, ...]  # "$289.69" of every variant with that option value
    policy_q: str
    policy_expect: str


# Policy questions with a phrase their (extractive) answer must contain.
POLICY_QUESTIONS = (
    ("can I return an item after 30 days?", "30 days"),
    ("can I cancel a processed order?", "pending"),
    ("how long does a refund take?", "business days"),
    ("do you ship internationally?", "not at the moment"),
)

MILD_COMPLAINTS = (
    "The package arrived two days late and the box was dented",
    "The parcel came a week after the promised date",
    "The colour is a bit different from the photo on the website",
    "The delivery driver left the parcel at the wrong door",
)


class ShopperPool:
    """Customers with a pending order, in a fixed order; ``take(n)`` hands out the next
    ``n`` (each customer once per pool, so once per database)."""

    def __init__(self, seed: int = 7) -> None:
        users = json.loads((CATALOG / "users.json").read_text())
        orders = json.loads((CATALOG / "orders.json").read_text())
        products = list(json.loads((CATALOG / "products.json").read_text()).values())
        rows: list[tuple[str, dict[str, Any], str]] = []
        for uid, user in users.items():
            pending = [
                o
                for o in user.get("orders", [])
                if o in orders and orders[o]["status"] == "pending"
            ]
            if pending:
                rows.append((uid, user, pending[0]))
        random.Random(seed).shuffle(rows)
        self._shoppers: list[Shopper] = []
        for i, (uid, user, order_id) in enumerate(rows):
            product = products[i % len(products)]
            variants = list(product["variants"].values())
            opts = variants[0]["options"]
            key = "color" if "color" in opts else next(iter(opts))
            value = str(opts[key])
            prices = tuple(
                sorted(
                    {
                        f"${float(v['price']):.2f}"
                        for v in variants
                        if str(v["options"].get(key)) == value
                    }
                )
            )
            policy_q, policy_expect = POLICY_QUESTIONS[i % len(POLICY_QUESTIONS)]
            self._shoppers.append(
                Shopper(
                    index=i,
                    customer_id=uid,
                    first_name=user["name"]["first_name"],
                    email=user["email"],
                    order_id=order_id,
                    product=product["name"],
                    option=value,
                    prices=prices,
                    policy_q=policy_q,
                    policy_expect=policy_expect,
                )
            )
        self._next = 0

    def __len__(self) -> int:
        return len(self._shoppers)

    @property
    def left(self) -> int:
        return len(self._shoppers) - self._next

    def take(self, n: int) -> list[Shopper]:
        if n > self.left:
            raise SystemExit(
                f"only {self.left} demo customers with a pending order are left "
                f"for this database; asked for {n}"
            )
        out = self._shoppers[self._next : self._next + n]
        self._next += n
        return out

    def take_one(self) -> Shopper | None:
        return self.take(1)[0] if self.left else None

    def peek(self, i: int) -> Shopper:
        """Shopper ``i`` (modulo the pool) without handing it out: for conversations that
        change nothing (questions only)."""
        return self._shoppers[i % len(self._shoppers)]


# ============================================================================ scripts


Check = Callable[[str], "str | None"]  # joined reply text (lower case) -> problem or None


@dataclass(frozen=True)
class Turn:
    name: str
    text: str
    kind: str  # "intent" (intent + action/response) | "knowledge" (product/policy answer)
    check: Check
    uses: frozenset[str] = frozenset()  # components the turn needs: "actions", "llm"


def _contains(*needles: str) -> Check:
    def check(text: str) -> str | None:
        missing = [n for n in needles if n.lower() not in text]
        return f"expected {missing!r}" if missing else None

    return check


def _any_of(label: str, options: Iterable[str], also: Sequence[str] = ()) -> Check:
    opts = [o.lower() for o in options]

    def check(text: str) -> str | None:
        missing = [n for n in also if n.lower() not in text]
        if missing:
            return f"expected {missing!r}"
        if not any(o in text for o in opts):
            return f"expected one of the {label} {opts[:4]!r}"
        return None

    return check


def script(s: Shopper, *, knowledge: bool = True) -> list[Turn]:
    """The conversation of ``s`` (see tests/test_conversations.py for the dialogue):
    greet; a product question; a policy question; order status after authenticating by
    email; cancel that pending order (reason, then yes); a complaint that becomes a ticket.
    ``knowledge=False`` leaves the two knowledge questions out (the Rasa peer comparison)."""
    oid = s.order_id.lower()
    turns = [Turn("greet", "hi there", "intent", _contains("clerk"))]
    if knowledge:
        turns += [
            Turn(
                "product",
                f"how much is the {s.product} in {s.option}?",
                "knowledge",
                _any_of("prices", s.prices, also=(s.product, "[1]")),
                frozenset({"llm"}),
            ),
            Turn(
                "policy",
                s.policy_q,
                "knowledge",
                _contains(s.policy_expect, "[1]"),
                frozenset({"llm"}),
            ),
        ]
    complaint = MILD_COMPLAINTS[s.index % len(MILD_COMPLAINTS)]
    act = frozenset({"actions"})
    turns += [
        Turn("status_ask", f"where is my order {s.order_id}?", "intent", _contains("email"), act),
        Turn("status_auth", s.email, "intent", _contains(oid, "pending"), act),
        Turn(
            "cancel_ask",
            f"I'd like to cancel order {s.order_id}",
            "intent",
            _contains("why would you like to cancel"),
            act,
        ),
        Turn(
            "cancel_reason", "no longer needed", "intent", _contains(oid, "shall i go ahead"), act
        ),
        Turn("cancel_yes", "yes", "intent", _contains("done", oid, "cancelled"), act),
        Turn("complaint", "I want to file a complaint", "intent", _contains("which order"), act),
        Turn("complaint_order", s.order_id, "intent", _contains("what went wrong"), act),
        Turn("complaint_text", complaint, "intent", _contains("reach you"), act),
        Turn("complaint_contact", s.email, "intent", _contains("ticket t-"), act),
    ]
    return turns


# ============================================================================ clients


class TurnFailed(Exception):
    """The turn got no usable answer. ``kind``: http | timeout | connect | protocol."""

    def __init__(self, kind: str, detail: str, acked: bool = False) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.acked = acked  # widget: the server acknowledged the message before failing


class RestConversation:
    """One shopper's conversation through ``POST /webhooks/rest/webhook``."""

    channel = "rest"

    def __init__(
        self, client: httpx.AsyncClient, base_url: str, sender: str, timeout: float
    ) -> None:
        self.client = client
        self.url = base_url.rstrip("/") + "/webhooks/rest/webhook"
        self.sender = sender
        self.timeout = timeout

    @property
    def key(self) -> str:
        return self.sender

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def send(self, text: str, message_id: str) -> list[str]:
        body = {"sender": self.sender, "message": text, "metadata": {"message_id": message_id}}
        try:
            resp = await self.client.post(self.url, json=body, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise TurnFailed("timeout", type(exc).__name__) from exc
        except httpx.HTTPError as exc:
            raise TurnFailed("connect", f"{type(exc).__name__}: {exc}") from exc
        if resp.status_code != 200:
            raise TurnFailed("http", f"HTTP {resp.status_code}: {resp.text[:200]}")
        try:
            data = resp.json()
        except ValueError as exc:
            raise TurnFailed("protocol", f"not JSON: {resp.text[:200]}") from exc
        if not isinstance(data, list):
            raise TurnFailed("protocol", f"not a list: {str(data)[:200]}")
        return [str(r.get("text") or "") for r in data if isinstance(r, dict)]


class WidgetConversation:
    """One shopper's conversation over ``/widget/ws`` (protocol: bot/channels/widget.py):
    hello -> welcome; message{id,text} -> ack, typing on, bot frames, typing off."""

    channel = "web"

    def __init__(self, base_url: str, timeout: float) -> None:
        self.ws_url = base_url.rstrip("/").replace("http", "ws", 1) + "/widget/ws"
        self.timeout = timeout
        self.session: str | None = None
        self.ws: Any = None
        self.history: list[dict[str, Any]] = []  # the last welcome's

    @property
    def key(self) -> str:
        return self.session or ""

    async def open(self) -> None:
        from websockets.asyncio.client import connect

        try:
            self.ws = await asyncio.wait_for(
                connect(self.ws_url, open_timeout=self.timeout, max_size=2**22, ping_interval=None),
                self.timeout,
            )
            await self.ws.send(json.dumps({"type": "hello", "session": self.session}))
            deadline = time.monotonic() + self.timeout
            while True:
                frame = await self._recv(deadline)
                if frame.get("type") == "welcome":
                    self.session = str(frame["session"])
                    self.history = list(frame.get("history") or [])
                    return
        except TurnFailed:
            await self.close()
            raise
        except (TimeoutError, OSError, Exception) as exc:  # handshake refused, reset
            await self.close()
            raise TurnFailed("connect", f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self.ws is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self.ws.close(), 2)
        self.ws = None

    async def _recv(self, deadline: float, acked: bool = False) -> dict[str, Any]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise TurnFailed("timeout", "no reply in time", acked)
        try:
            raw = await asyncio.wait_for(self.ws.recv(), left)
        except TimeoutError as exc:
            raise TurnFailed("timeout", "no reply in time", acked) from exc
        except Exception as exc:  # ConnectionClosed and friends
            raise TurnFailed("connect", f"{type(exc).__name__}: {exc}", acked) from exc
        try:
            frame = json.loads(raw)
        except (TypeError, ValueError) as exc:
            raise TurnFailed("protocol", f"not JSON: {str(raw)[:200]}", acked) from exc
        return frame if isinstance(frame, dict) else {}

    async def send(self, text: str, message_id: str) -> list[str]:
        if self.ws is None:
            await self.open()
        deadline = time.monotonic() + self.timeout
        try:
            await self.ws.send(json.dumps({"type": "message", "id": message_id, "text": text}))
        except Exception as exc:
            raise TurnFailed("connect", f"{type(exc).__name__}: {exc}") from exc
        acked = False
        texts: list[str] = []
        while True:
            frame = await self._recv(deadline, acked)
            kind = frame.get("type")
            if kind == "ack" and frame.get("id") == message_id:
                acked = True
                if frame.get("duplicate"):
                    # a resend after a reconnect: if the turn finished, its replies are in
                    # the history the welcome brought; otherwise they arrive live
                    done = [
                        str(f.get("text") or "")
                        for f in self.history
                        if f.get("type") == "bot" and f.get("reply_to") == message_id
                    ]
                    if done:
                        return done
            elif kind == "error" and frame.get("id") in (message_id, None):
                raise TurnFailed("http", f"{frame.get('code')}: {frame.get('message')}", acked)
            elif kind == "bot" and frame.get("reply_to") == message_id:
                texts.append(str(frame.get("text") or ""))
            elif kind == "typing" and frame.get("on") is False and acked:
                return texts


# ============================================================================ records


@dataclass
class TurnRecord:
    shopper: int
    channel: str
    conversation: str  # REST sender or widget session
    name: str
    kind: str
    uses: list[str]
    message_id: str
    text: str
    start: float  # seconds since the run's t0
    latency: float  # seconds until the answer (or the failure), retries included
    outcome: str  # ok | wrong | http | timeout | connect | protocol
    detail: str = ""
    acked: bool = False  # HTTP 200 / widget ack + its replies: the server owns the turn
    attempts: int = 1
    target: str = ""
    first_error: str = ""  # the first attempt's failure when a retry succeeded

    @property
    def ok(self) -> bool:
        return self.outcome == "ok"


def percentile(values: Sequence[float], p: float) -> float | None:
    if not values:
        return None
    xs = sorted(values)
    k = (len(xs) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def latency_summary(records: Sequence[TurnRecord]) -> dict[str, Any]:
    ms = [r.latency * 1000 for r in records]
    return {
        "n": len(ms),
        "p50_ms": _r(percentile(ms, 50)),
        "p95_ms": _r(percentile(ms, 95)),
        "p99_ms": _r(percentile(ms, 99)),
        "mean_ms": _r(statistics.fmean(ms) if ms else None),
        "max_ms": _r(max(ms) if ms else None),
    }


def _r(x: float | None, nd: int = 1) -> float | None:
    return None if x is None else round(x, nd)


def summarise(records: Sequence[TurnRecord], wall_s: float, planned_turns: int) -> dict[str, Any]:
    ok = [r for r in records if r.ok]
    errors: dict[str, int] = {}
    for r in records:
        if not r.ok:
            errors[r.outcome] = errors.get(r.outcome, 0) + 1
    return {
        "turns_planned": planned_turns,
        "turns_sent": len(records),
        "turns_ok": len(ok),
        "turns_not_run": planned_turns - len(records),
        "errors": sum(errors.values()),
        "errors_by_kind": errors,
        "wall_s": round(wall_s, 2),
        "turns_per_s": round(len(ok) / wall_s, 2) if wall_s > 0 else None,
        "latency_all": latency_summary(ok),
        "latency_intent_action": latency_summary([r for r in ok if r.kind == "intent"]),
        "latency_knowledge": latency_summary([r for r in ok if r.kind == "knowledge"]),
        "by_channel": {
            ch: {
                "turns_ok": sum(1 for r in ok if r.channel == ch),
                "errors": sum(1 for r in records if r.channel == ch and not r.ok),
                "latency": latency_summary([r for r in ok if r.channel == ch]),
            }
            for ch in sorted({r.channel for r in records})
        },
        "error_examples": [
            {
                "shopper": r.shopper,
                "channel": r.channel,
                "turn": r.name,
                "outcome": r.outcome,
                "detail": r.detail[:300],
            }
            for r in [x for x in records if not x.ok][:10]
        ],
    }


def print_summary(label: str, s: dict[str, Any]) -> None:
    def lat(d: dict[str, Any]) -> str:
        if not d["n"]:
            return "n=0"
        return (
            f"p50 {d['p50_ms']:.0f} / p95 {d['p95_ms']:.0f} / p99 {d['p99_ms']:.0f} ms (n={d['n']})"
        )

    print(f"\n== {label}")
    print(
        f"   turns: {s['turns_ok']} ok of {s['turns_planned']} planned "
        f"({s['turns_sent']} sent, {s['turns_not_run']} not run) in {s['wall_s']} s "
        f"-> {s['turns_per_s']} turns/s"
    )
    print(f"   latency all           {lat(s['latency_all'])}")
    print(f"   latency intent+action {lat(s['latency_intent_action'])}")
    print(f"   latency knowledge     {lat(s['latency_knowledge'])}")
    print(f"   errors: {s['errors']} {s['errors_by_kind'] or ''}")
    for e in s["error_examples"][:5]:
        print(
            f"     - shopper {e['shopper']} {e['channel']} {e['turn']}: {e['outcome']} "
            f"{e['detail'][:160]!r}"
        )


# ============================================================================ running shoppers


@dataclass
class RunConfig:
    base_url: str
    timeout: float = 30.0  # per request (REST) / per turn (widget)
    deadline: float = 600.0  # the whole run
    stagger: float = 1.5  # shoppers start spread over this many seconds
    think: float = 0.0  # mean pause between a reply and the next message (0: none)
    retry: bool = False  # on a failed attempt, resend the same message id until turn_deadline
    turn_deadline: float = 60.0
    label: str = ""


@dataclass
class Outcome:
    """What one shopper did: its records and the messages the server acknowledged."""

    shopper: Shopper
    channel: str
    conversation: str = ""
    records: list[TurnRecord] = field(default_factory=list)
    acked: list[tuple[str, str]] = field(default_factory=list)  # (message id, text)
    sent_unacked: list[tuple[str, str]] = field(default_factory=list)
    confirmed_cancel: bool = False
    ticket_id: str | None = None
    completed: bool = False


async def run_conversation(
    conv: RestConversation | WidgetConversation,
    shopper: Shopper,
    turns: list[Turn],
    cfg: RunConfig,
    t0: float,
    stop_at: float,
    id_prefix: str,
    outcome: Outcome | None = None,
) -> Outcome:
    """Play ``turns`` through ``conv``; the conversation stops at the first failed or wrong
    turn (the dialogue's state is unknown afterwards). With ``cfg.retry`` a failed attempt
    (no answer, HTTP error) is first resent with the same message id (exactly-once is the
    server's job), the widget reconnecting to its session, until ``turn_deadline``."""
    rng = random.Random(f"{shopper.index}-{id_prefix}")
    out = outcome or Outcome(shopper, conv.channel)
    try:
        await conv.open()
    except TurnFailed as exc:
        if not cfg.retry:
            out.records.append(
                TurnRecord(
                    shopper.index,
                    conv.channel,
                    "",
                    "open",
                    "intent",
                    [],
                    "",
                    "",
                    time.monotonic() - t0,
                    0.0,
                    exc.kind,
                    exc.detail,
                    target=cfg.label,
                )
            )
            return out
    out.conversation = conv.key
    for n, turn in enumerate(turns):
        if time.monotonic() >= stop_at:
            break
        if cfg.think > 0 and n > 0:
            await asyncio.sleep(
                min(rng.uniform(0.5, 1.5) * cfg.think, max(0.0, stop_at - time.monotonic()))
            )
        mid = f"{id_prefix}-{n:02d}"
        start = time.monotonic()
        attempts, first_error, acked_once = 0, "", False
        rec: TurnRecord | None = None
        while True:
            attempts += 1
            try:
                texts = await conv.send(turn.text, mid)
            except TurnFailed as exc:
                acked_once = acked_once or exc.acked
                first_error = first_error or f"{exc.kind}: {exc.detail}"[:200]
                now = time.monotonic()
                if cfg.retry and now - start < cfg.turn_deadline:
                    if isinstance(conv, WidgetConversation):
                        await conv.close()  # reconnect with the same session on the resend
                    await asyncio.sleep(min(0.25 * attempts, 2.0))
                    continue
                rec = TurnRecord(
                    shopper.index,
                    conv.channel,
                    conv.key,
                    turn.name,
                    turn.kind,
                    sorted(turn.uses),
                    mid,
                    turn.text,
                    start - t0,
                    now - start,
                    exc.kind,
                    exc.detail,
                    acked=False,
                    attempts=attempts,
                    target=cfg.label,
                    first_error=first_error,
                )
                break
            now = time.monotonic()
            joined = "\n".join(texts).lower()
            problem = turn.check(joined)
            rec = TurnRecord(
                shopper.index,
                conv.channel,
                conv.key,
                turn.name,
                turn.kind,
                sorted(turn.uses),
                mid,
                turn.text,
                start - t0,
                now - start,
                "wrong" if problem else "ok",
                f"{problem}; got {joined[:240]!r}" if problem else "",
                acked=True,
                attempts=attempts,
                target=cfg.label,
                first_error=first_error if attempts > 1 else "",
            )
            if turn.name == "cancel_yes" and not problem:
                out.confirmed_cancel = True
            if turn.name == "complaint_contact" and "ticket t-" in joined:
                out.ticket_id = "T-" + joined.split("ticket t-", 1)[1][:6]
            break
        out.conversation = out.conversation or conv.key
        out.records.append(rec)
        if rec.acked:
            out.acked.append((mid, turn.text))
        else:
            out.sent_unacked.append((mid, turn.text))
        if not rec.ok:
            break  # a failed or wrong turn leaves the dialogue in an unknown state
    else:
        out.completed = True
    return out


async def run_shoppers(
    shoppers: Sequence[Shopper],
    cfg: RunConfig,
    *,
    channels: Sequence[str] | None = None,
    knowledge: bool = True,
    run_id: str | None = None,
) -> tuple[list[Outcome], float]:
    """All shoppers at once (started staggered over ``cfg.stagger``); each plays its
    script once on its channel (default: alternately REST and widget). Returns the
    outcomes and the wall time from the first start to the last answer."""
    run_id = run_id or secrets.token_hex(3)
    channels = list(channels or ["rest", "web"])
    limits = httpx.Limits(
        max_connections=len(shoppers) + 20, max_keepalive_connections=len(shoppers) + 20
    )
    async with httpx.AsyncClient(limits=limits, timeout=cfg.timeout) as client:
        t0 = time.monotonic()
        stop_at = t0 + cfg.deadline

        async def one(i: int, s: Shopper) -> Outcome:
            await asyncio.sleep(cfg.stagger * i / max(1, len(shoppers)))
            channel = channels[i % len(channels)]
            conv: RestConversation | WidgetConversation
            if channel == "rest":
                conv = RestConversation(
                    client, cfg.base_url, f"load-{run_id}-{s.index:03d}", cfg.timeout
                )
            else:
                conv = WidgetConversation(cfg.base_url, cfg.timeout)
            try:
                return await run_conversation(
                    conv,
                    s,
                    script(s, knowledge=knowledge),
                    cfg,
                    t0,
                    stop_at,
                    f"m{run_id}-{s.index:03d}",
                )
            finally:
                await conv.close()

        outcomes = await asyncio.gather(*(one(i, s) for i, s in enumerate(shoppers)))
        ends = [r.start + r.latency for o in outcomes for r in o.records]
        wall = max(ends) if ends else time.monotonic() - t0
    return list(outcomes), wall


# ============================================================================ transcript check


def conversation_ids(channel: str, key: str) -> list[str]:
    """The ids a shopper's conversation may be stored under, most specific first. REST
    conversations are moving from the bare sender to ``rest:<sender>``; widget ones are
    ``web:<session>``."""
    if channel == "rest":
        return [f"rest:{key}", key]
    if channel == "web":
        return [key if key.startswith("web:") else f"web:{key}"]
    return [key]


def find_conversation(session: Any, channel: str, key: str) -> str | None:
    """The stored conversation id of a shopper: ``rest:<sender>``, then ``<sender>``
    (REST), or ``web:<session>`` (widget); ``None`` if none is stored."""
    from bot.store.models import Conversation

    for cid in conversation_ids(channel, key):
        if session.get(Conversation, cid) is not None:
            return cid
    return None


def read_only_engine(database_url: str) -> Any:
    from sqlalchemy import create_engine

    from bot.store.db import normalise_url

    url = normalise_url(database_url)
    if url.startswith("sqlite:///"):
        path = url.removeprefix("sqlite:///")
        return create_engine(f"sqlite:///file:{path}?mode=ro&uri=true")
    return create_engine(
        url, connect_args={"options": "-c default_transaction_read_only=on"}, pool_pre_ping=True
    )


def check_transcripts(database_url: str, outcomes: Sequence[Outcome]) -> dict[str, Any]:
    """For every shopper: the user messages stored in its conversation, in order, equal
    the messages the server acknowledged (none lost, duplicated or reordered) and each is
    followed by a bot event; a confirmed cancellation left the order cancelled with one
    audit row; an announced ticket exists for that conversation."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from bot.store.models import ConversationEvent, Order, OrderChange, Ticket

    engine = read_only_engine(database_url)
    report: dict[str, Any] = {
        "shoppers": len(outcomes),
        "conversations_found": 0,
        "missing_conversations": 0,
        "acked_messages": 0,
        "lost": 0,
        "duplicated": 0,
        "reordered": 0,
        "without_bot_reply": 0,
        "unacked_but_stored": 0,
        "order_mismatches": 0,
        "ticket_mismatches": 0,
        "problems": [],
    }

    def problem(o: Outcome, what: str) -> None:
        if len(report["problems"]) < 30:
            report["problems"].append(
                f"shopper {o.shopper.index} ({o.channel} {o.conversation}): {what}"
            )

    try:
        with Session(engine) as s:
            for o in outcomes:
                report["acked_messages"] += len(o.acked)
                if not o.conversation:
                    if o.acked:
                        report["missing_conversations"] += 1
                        problem(o, "acknowledged messages but no conversation key")
                    continue
                cid = find_conversation(s, o.channel, o.conversation)
                if cid is None:
                    if o.acked:
                        report["missing_conversations"] += 1
                        report["lost"] += len(o.acked)
                        problem(o, "no stored conversation")
                    continue
                report["conversations_found"] += 1
                rows = list(
                    s.execute(
                        select(ConversationEvent.type, ConversationEvent.data)
                        .where(ConversationEvent.conversation_id == cid)
                        .order_by(ConversationEvent.seq)
                    )
                )
                users: list[tuple[str, str]] = []
                replied: list[bool] = []
                for kind, data in rows:
                    if kind == "user":
                        users.append((str(data.get("message_id") or ""), str(data.get("text"))))
                        replied.append(False)
                    elif kind == "bot" and replied:
                        replied[-1] = True
                stored_ids = [m for m, _ in users]
                acked_ids = [m for m, _ in o.acked]
                acked_set = set(acked_ids)
                counts: dict[str, int] = {}
                for m in stored_ids:
                    counts[m] = counts.get(m, 0) + 1
                lost = [m for m in acked_ids if m not in counts]
                dup = [m for m, c in counts.items() if c > 1]
                first_seen = list(dict.fromkeys(m for m in stored_ids if m in acked_set))
                expected = [m for m in acked_ids if m in counts]
                reordered = first_seen != expected
                texts_ok = all(t == dict(o.acked)[m] for m, t in users if m in acked_set)
                unacked = [m for m in dict.fromkeys(stored_ids) if m not in acked_set]
                no_reply = [
                    users[i][0] for i, r in enumerate(replied) if not r and users[i][0] in acked_set
                ]
                report["lost"] += len(lost)
                report["duplicated"] += len(dup)
                report["reordered"] += int(reordered or not texts_ok)
                report["unacked_but_stored"] += len(unacked)
                report["without_bot_reply"] += len(no_reply)
                if lost:
                    problem(o, f"lost {lost}")
                if dup:
                    problem(o, f"duplicated {dup}")
                if reordered or not texts_ok:
                    problem(o, f"stored order {stored_ids} != acknowledged {acked_ids}")
                if no_reply:
                    problem(o, f"no bot event after {no_reply}")
                # the shopper's order and ticket
                order = s.get(Order, o.shopper.order_id)
                n_cancel = s.scalar(
                    select(func.count())
                    .select_from(OrderChange)
                    .where(OrderChange.order_id == o.shopper.order_id, OrderChange.kind == "cancel")
                )
                if o.confirmed_cancel and (
                    order is None or order.status != "cancelled" or n_cancel != 1
                ):
                    report["order_mismatches"] += 1
                    problem(
                        o,
                        f"cancel confirmed but order status "
                        f"{order.status if order else None}, {n_cancel} cancel rows",
                    )
                if not o.confirmed_cancel and n_cancel and n_cancel > 1:
                    report["order_mismatches"] += 1
                    problem(o, f"{n_cancel} cancel rows")
                if o.ticket_id:
                    t = s.get(Ticket, o.ticket_id)
                    if t is None or t.conversation_id != cid:
                        report["ticket_mismatches"] += 1
                        problem(o, f"ticket {o.ticket_id} missing or on another conversation")
    finally:
        engine.dispose()
    report["ok"] = all(
        report[k] == 0
        for k in (
            "lost",
            "duplicated",
            "reordered",
            "without_bot_reply",
            "missing_conversations",
            "order_mismatches",
            "ticket_mismatches",
        )
    )
    return report


def print_transcripts(label: str, rep: dict[str, Any]) -> None:
    print(
        f"   transcripts ({label}): {rep['conversations_found']}/{rep['shoppers']} found, "
        f"{rep['acked_messages']} acknowledged messages: lost {rep['lost']}, duplicated "
        f"{rep['duplicated']}, reordered {rep['reordered']}, without bot reply "
        f"{rep['without_bot_reply']}, sent-unacknowledged-but-stored "
        f"{rep['unacked_but_stored']}; orders {rep['order_mismatches']} / tickets "
        f"{rep['ticket_mismatches']} mismatches -> {'OK' if rep['ok'] else 'FAIL'}"
    )
    for p in rep["problems"][:8]:
        print(f"     - {p}")


# ============================================================================ servers


def pg_admin(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


def pg_url(name: str) -> str:
    return f"postgresql://postgres@127.0.0.1:5432/{name}"


def create_database(name: str, template: str | None = None) -> str:
    pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    pg_admin(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    return pg_url(name)


def drop_database(name: str) -> None:
    with contextlib.suppress(Exception):
        pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


_PREPARE = """
import sys
from bot.app import prepare
from bot.config import Settings
r = prepare(Settings.load())
done = [k for k in ("store", "knowledge", "nlu_train_seconds") if k in r]
print("did: " + (", ".join(done) if done else "nothing (already prepared)"))
"""


def _clerk_env(
    home: Path, database_url: str | None = None, extra: dict[str, str] | None = None
) -> dict[str, str]:
    env = {
        **os.environ,
        "CLERK_HOME": str(home),
        "PYTHONPATH": str(ROOT),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "CLERK_LOG_LEVEL": "WARNING",
        "TOKENIZERS_PARALLELISM": "false",
    }
    env.pop("CLERK_DATABASE_URL", None)
    env.pop("CLERK_CONFIG", None)
    if database_url:
        env["CLERK_DATABASE_URL"] = database_url
    env.update(extra or {})
    return env


def ensure_home(cache: Path) -> Path:
    """A prepared SQLite home (demo store, knowledge index, trained NLU) to copy from.
    ``prepare`` does only what is missing, and retrains when the training data changed."""
    cache.mkdir(parents=True, exist_ok=True)
    log(f"preparing the reference home {cache} (first time: about a minute)")
    t = time.monotonic()
    proc = subprocess.run(
        [sys.executable, "-c", _PREPARE],
        cwd=ROOT,
        env=_clerk_env(cache),
        capture_output=True,
        text=True,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"preparing {cache} failed:\n{proc.stderr[-3000:]}")
    log(
        f"reference home ready in {time.monotonic() - t:.0f} s; "
        f"{(proc.stdout.strip().splitlines() or [''])[-1]}"
    )
    return cache


def copy_home(base: Path, dest: Path, *, with_db: bool) -> Path:
    """A fresh home: models/, index/ and the encoder cache of ``base`` (and, for SQLite,
    its pristine ``clerk.db``)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("models", "index", "encoder"):
        if (base / name).exists():
            shutil.copytree(base / name, dest / name, dirs_exist_ok=True)
    if with_db:
        shutil.copy2(base / "clerk.db", dest / "clerk.db")
    return dest


class PgTemplate:
    """A PostgreSQL database with the demo store and knowledge loaded once; every target
    gets a fresh copy (``CREATE DATABASE ... TEMPLATE``: seconds, not a re-ingest)."""

    def __init__(self, base_home: Path, work: Path, run_id: str) -> None:
        self.name = f"clerk_load_tpl_{run_id}"
        self.base_home = base_home
        self.home = copy_home(base_home, work / "tpl-home", with_db=False)
        self.ready = False
        self.copies: list[str] = []

    def make(self) -> None:
        if self.ready:
            return
        log(f"loading the demo store into PostgreSQL database {self.name}")
        t = time.monotonic()
        url = create_database(self.name)
        proc = subprocess.run(
            [sys.executable, "-c", _PREPARE],
            cwd=ROOT,
            env=_clerk_env(self.home, url),
            capture_output=True,
            text=True,
            check=False,
        )
        if proc.returncode != 0:
            raise SystemExit(f"loading {self.name} failed:\n{proc.stderr[-3000:]}")
        self.ready = True
        log(f"template database ready in {time.monotonic() - t:.0f} s")

    def copy(self, suffix: str) -> str:
        self.make()
        name = f"{self.name}_{suffix}"
        self.copies.append(name)
        return create_database(name, template=self.name)

    def drop_all(self) -> None:
        for name in self.copies:
            drop_database(name)
        drop_database(self.name)


def serve_supports_workers() -> bool:
    proc = subprocess.run(
        [sys.executable, "-m", "bot.cli", "serve", "--help"],
        cwd=ROOT,
        env=_clerk_env(Path(tempfile.gettempdir())),
        capture_output=True,
        text=True,
        check=False,
    )
    return "--workers" in proc.stdout


class ClerkServer:
    """``clerk serve`` in a subprocess (its own process group) on a free port."""

    def __init__(
        self,
        name: str,
        home: Path,
        *,
        database_url: str | None = None,
        workers: int | None = None,
        env: dict[str, str] | None = None,
        log_dir: Path,
    ) -> None:
        self.name = name
        self.home = home
        self.database_url = database_url or f"sqlite:///{home / 'clerk.db'}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.workers = workers
        self.env = _clerk_env(home, database_url, env)
        self.log_path = log_dir / f"{name}.log"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300.0) -> ClerkServer:
        cmd = [
            sys.executable,
            "-m",
            "bot.cli",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
        ]
        if self.workers:
            cmd += ["--workers", str(self.workers)]
        log(
            f"starting {self.name}: {' '.join(cmd[1:])}"
            + (
                f" (CLERK_REDIS_URL={self.env['CLERK_REDIS_URL']})"
                if "CLERK_REDIS_URL" in self.env
                else ""
            )
        )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log_path, "wb")  # noqa: SIM115 - closed with the process
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=self.env, stdout=fh, stderr=subprocess.STDOUT, start_new_session=True
        )
        fh.close()
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if self.proc.poll() is not None:
                tail = self.log_path.read_text(errors="replace")[-2500:]
                raise RuntimeError(f"{self.name} exited with {self.proc.returncode}:\n{tail}")
            if self.healthy():
                log(f"{self.name} ready at {self.url} in {time.monotonic() - t:.0f} s")
                return self
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{self.name} did not answer /health within {timeout:.0f} s")

    def healthy(self, timeout: float = 2.0) -> bool:
        try:
            return httpx.get(f"{self.url}/health", timeout=timeout).status_code == 200
        except httpx.HTTPError:
            return False

    def worker_pids(self) -> list[int]:
        """The processes serving requests: uvicorn's worker children of the serve process
        (multi-worker), or the serve process itself."""
        if self.proc is None:
            return []
        import psutil

        try:
            parent = psutil.Process(self.proc.pid)
            kids = [
                p
                for p in parent.children(recursive=True)
                if "resource_tracker" not in " ".join(p.cmdline())
            ]
        except psutil.Error:
            return []
        return [p.pid for p in kids] or [self.proc.pid]

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        else:  # the leader died: its group may still hold workers
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.proc.pid, signal.SIGKILL)


class ActionServerProc:
    """``python -m rasa_sdk --actions actions`` (Python 3.11, this checkout) on a free port,
    against ``database_url``."""

    def __init__(
        self, database_url: str, log_dir: Path, name: str = "action-server", port: int | None = None
    ) -> None:
        self.database_url = database_url
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhook"
        self.log_path = log_dir / f"{name}.log"
        self.name = name
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 90.0) -> ActionServerProc:
        env = _clerk_env(Path(tempfile.gettempdir()), self.database_url)
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        fh = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "rasa_sdk",
                "--actions",
                "bot.store_actions",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"{self.name} exited: {self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    log(f"{self.name} ready on port {self.port}")
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        self.stop()
        raise RuntimeError(f"{self.name} did not become healthy")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def work_dir(keep: bool = False) -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="clerk-load-"))
    try:
        yield path
    finally:
        if not keep:
            shutil.rmtree(path, ignore_errors=True)


def machine() -> dict[str, Any]:
    import platform

    try:
        load = os.getloadavg()
    except OSError:
        load = (0.0, 0.0, 0.0)
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "loadavg_at_start": [round(x, 2) for x in load],
    }


def records_json(outcomes: Sequence[Outcome]) -> list[dict[str, Any]]:
    return [asdict(r) for o in outcomes for r in o.records]


def write_json(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=1, default=str) + "\n")
