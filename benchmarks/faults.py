"""Fault benchmark: what shoppers notice when a part fails under a moderate load.

    python benchmarks/faults.py [--fault worker-kill pg-restart llm-hang action-hang
                                 action-kill] [--shoppers 30] [--workers 2]

Each fault runs against a fresh ``clerk serve`` on PostgreSQL (a copy of a template
database) with ``--workers 2`` and Redis (``CLERK_REDIS_URL``); when this checkout's
``clerk serve`` has no ``--workers`` yet it runs one worker and says so. ``--shoppers``
lanes (half REST, half widget) play conversations one after another, pausing ``--think``
seconds (on average) between turns: two lanes in three the whole script of
``benchmarks/load.py``, a different customer each time; every third lane only questions
(greet, product, policy), so that some shoppers always need neither custom actions nor
(for greet) the LLM. A client does what a well-behaved client does: a failed attempt
(connection error, HTTP 5xx, timeout) is resent with the same message id, the widget
reconnects to its session first, until the turn has taken ``--turn-deadline`` seconds.

Timeline: ``--before`` seconds of normal load (the baseline), then the fault, which lasts
``--fault-for`` seconds where it has a duration, then ``--after`` seconds.

- ``worker-kill``: ``kill -9`` of one uvicorn worker process (the serve process itself
  with one worker: then nothing can bring it back, and the figures say so);
- ``pg-restart``: ``pg_ctlcluster <ver> <cluster> restart`` of the PostgreSQL at
  127.0.0.1:5432 (it disconnects every client of that server, not only Clerk: run it where
  that is acceptable). PostgreSQL is checked, and started if need be, afterwards;
- ``llm-hang``: Clerk runs with ``CLERK_LLM=openai`` against a fake OpenAI-compatible
  endpoint of this script; it answers ("I don't know.", which the guard replaces with the
  extractive answer) until the fault, then accepts connections and never answers, for
  ``--fault-for`` seconds. ``CLERK_LLM_TIMEOUT`` is ``--llm-timeout``;
- ``action-hang``: Clerk's ``CLERK_ACTION_ENDPOINT`` goes through a proxy of this script
  to a rasa-sdk action server; during the fault the proxy swallows requests (never
  answers);
- ``action-kill``: ``kill -9`` of the rasa-sdk action server; it is started again on the
  same port after ``--fault-for`` seconds (as its supervisor would).

Per fault it prints: acknowledged turns lost (an acknowledged turn got HTTP 200, or a
widget ack and its replies; the stored transcripts are read back: goal 0), duplicated or
reordered messages, turns that failed for good; the p95 latency of the turns that do not
need the failed part (all turns for a worker kill or a PostgreSQL restart; intent+action
turns for the LLM; turns without custom actions for the action server) before and during
the fault, and of those that do; and the seconds from the fault (and from its end) until
service recovered without restarting Clerk: the start of the first turn needing the failed
part (any turn for a worker kill or a PostgreSQL restart) after which no turn failed, got a
wrong reply or needed a resend, and no turn needing the failed part took over
``max(2 s, 3 x the baseline p95 of its kind)`` (at most 80 % of that part's timeout:
``--llm-timeout``, Clerk's 10 s for the action server). The p95 of all turns from 2 s after the fault ended shows
whether latency came back to the baseline.

Results: ``benchmarks/results/faults.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from benchmarks import loadlib as L

FAULTS = ("worker-kill", "pg-restart", "llm-hang", "action-hang", "action-kill")


# ============================================================================ fakes


class FakeLLM:
    """An OpenAI-compatible ``/v1/chat/completions`` on 127.0.0.1 that answers a short
    streamed reply, or, while ``hang`` is set, accepts and never answers."""

    def __init__(self) -> None:
        self.port = L.free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.hang = False
        self.requests = 0
        self.hung = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 30)
            length = 0
            for line in head.decode("latin-1").split("\r\n"):
                if line.lower().startswith("content-length:"):
                    length = int(line.split(":", 1)[1])
            if length:
                await asyncio.wait_for(reader.readexactly(length), 30)
            self.requests += 1
            if self.hang:
                self.hung += 1
                # never answer: wait until the client gives up (bounded)
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(reader.read(), 600)
                return
            chunks = ["I don't", " know."]
            body = (
                "".join(
                    "data: "
                    + json.dumps({"choices": [{"index": 0, "delta": {"content": c}}]})
                    + "\n\n"
                    for c in chunks
                )
                + "data: [DONE]\n\n"
            )
            data = body.encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
                b"Connection: close\r\nContent-Length: "
                + str(len(data)).encode()
                + b"\r\n\r\n"
                + data
            )
            await writer.drain()
        except (
            TimeoutError,
            asyncio.IncompleteReadError,
            ConnectionError,
            asyncio.LimitOverrunError,
            ValueError,
        ):
            pass
        finally:
            with contextlib.suppress(Exception):
                writer.close()


class HangProxy:
    """A TCP proxy to ``upstream_port``; while ``hang`` is set it forwards nothing to the
    upstream (new and kept-alive connections alike), so requests are never answered."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.port = L.free_port()
        self.hang = False
        self.swallowed = 0
        self._server: asyncio.AbstractServer | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 2)

    async def _swallow(self, reader: asyncio.StreamReader) -> None:
        self.swallowed += 1
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader.read(), 600)  # until the client gives up

    async def _handle(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        uwriter: asyncio.StreamWriter | None = None
        try:
            if self.hang:
                await self._swallow(creader)
                return
            try:
                ureader, uwriter = await asyncio.open_connection("127.0.0.1", self.upstream_port)
            except OSError:
                return

            async def up() -> None:
                while True:
                    data = await creader.read(65536)
                    if not data:
                        break
                    if self.hang:
                        await self._swallow(creader)
                        break
                    uwriter.write(data)
                    await uwriter.drain()

            async def down() -> None:
                while True:
                    data = await ureader.read(65536)
                    if not data:
                        break
                    cwriter.write(data)
                    await cwriter.drain()

            tasks = [asyncio.create_task(up()), asyncio.create_task(down())]
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for t in pending:
                t.cancel()
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (cwriter, uwriter):
                if w is not None:
                    with contextlib.suppress(Exception):
                        w.close()


# ============================================================================ PostgreSQL


def pg_cluster() -> tuple[str, str]:
    out = subprocess.run(["pg_lsclusters", "-h"], capture_output=True, text=True, check=True)
    for line in out.stdout.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[2] == "5432":
            return parts[0], parts[1]
    raise RuntimeError("no PostgreSQL cluster on port 5432 in pg_lsclusters")


def pg_ready() -> bool:
    return (
        subprocess.run(
            ["pg_isready", "-h", "127.0.0.1", "-p", "5432", "-q"], check=False
        ).returncode
        == 0
    )


def restart_postgres() -> str:
    ver, cluster = pg_cluster()
    proc = subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", ver, cluster, "restart"],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    return f"pg_ctlcluster {ver} {cluster} restart -> rc {proc.returncode} {proc.stderr[-300:]}"


def ensure_postgres_running(wait: float = 60.0) -> bool:
    """PostgreSQL up again after the fault: wait for it, start it if it stays down."""
    t = time.monotonic()
    while time.monotonic() - t < wait / 2:
        if pg_ready():
            return True
        time.sleep(0.5)
    ver, cluster = pg_cluster()
    L.log(f"PostgreSQL is not answering: pg_ctlcluster {ver} {cluster} start")
    subprocess.run(
        ["pg_ctlcluster", "--skip-systemctl-redirect", ver, cluster, "start"],
        check=False,
        timeout=120,
    )
    while time.monotonic() - t < wait:
        if pg_ready():
            return True
        time.sleep(0.5)
    return False


# ============================================================================ the load


@dataclass
class LoadState:
    t0: float = 0.0
    outcomes: list[L.Outcome] = field(default_factory=list)
    conversations: int = 0


async def lanes(
    url: str,
    pool: L.ShopperPool,
    n: int,
    cfg: L.RunConfig,
    stop_at: float,
    state: LoadState,
    run_id: str,
) -> None:
    """``n`` lanes playing conversations back to back until ``stop_at``; lane i uses REST
    when i is even, the widget when odd. Two lanes in three play the whole script, a new
    customer each time; every third lane asks only questions (greet, product, policy: no
    custom action, nothing changed), so that some shoppers are always at a stage that does
    not need the part a fault takes away."""
    import httpx

    questions = L.ShopperPool(seed=12)
    limits = httpx.Limits(max_connections=n + 10, max_keepalive_connections=n + 10)
    async with httpx.AsyncClient(limits=limits, timeout=cfg.timeout) as client:

        async def lane(i: int) -> None:
            await asyncio.sleep(cfg.stagger * i / max(1, n))
            k = 0
            asks_only = i % 3 == 2
            while time.monotonic() < stop_at:
                if asks_only:
                    shopper = questions.peek(i * 100 + k)
                    turns = [t for t in L.script(shopper) if "actions" not in t.uses]
                else:
                    taken = pool.take_one()
                    if taken is None:
                        return
                    shopper, turns = taken, L.script(taken)
                k += 1
                state.conversations += 1
                tag = f"{run_id}-{i:02d}-{k:02d}"
                conv: L.RestConversation | L.WidgetConversation
                if i % 2 == 0:
                    conv = L.RestConversation(client, url, f"fault-{tag}", cfg.timeout)
                else:
                    conv = L.WidgetConversation(url, cfg.timeout)
                out = L.Outcome(shopper, conv.channel)
                state.outcomes.append(out)
                try:
                    await L.run_conversation(
                        conv, shopper, turns, cfg, state.t0, stop_at, f"f{tag}", out
                    )
                finally:
                    await conv.close()
                if cfg.think:
                    await asyncio.sleep(cfg.think)

        await asyncio.gather(*(lane(i) for i in range(n)))


# ============================================================================ faults


@dataclass
class Scenario:
    name: str
    unaffected: Callable[[L.TurnRecord], bool]
    unaffected_label: str
    env: dict[str, str] = field(default_factory=dict)


def _all(_: L.TurnRecord) -> bool:
    return True


def _not_llm(r: L.TurnRecord) -> bool:
    return r.kind == "intent"


def _no_actions(r: L.TurnRecord) -> bool:
    return "actions" not in r.uses


SCENARIOS = {
    "worker-kill": Scenario("worker-kill", _all, "all turns"),
    "pg-restart": Scenario("pg-restart", _all, "all turns"),
    "llm-hang": Scenario("llm-hang", _not_llm, "intent+action turns (no LLM)"),
    "action-hang": Scenario("action-hang", _no_actions, "turns without custom actions"),
    "action-kill": Scenario("action-kill", _no_actions, "turns without custom actions"),
}


def run_fault(
    name: str,
    args: argparse.Namespace,
    base_home: Path,
    template: L.PgTemplate,
    work: Path,
    workers: int,
    run_id: str,
) -> dict[str, Any]:
    scenario = SCENARIOS[name]
    db_url = template.copy(name.replace("-", "_"))
    home = L.copy_home(base_home, work / name, with_db=False)
    env: dict[str, str] = {}
    if workers > 1:
        env["CLERK_REDIS_URL"] = L.REDIS_URL
    result: dict[str, Any] = {"fault": name, "workers": workers}

    async def main() -> None:
        fake_llm: FakeLLM | None = None
        proxy: HangProxy | None = None
        actions: L.ActionServerProc | None = None
        server: L.ClerkServer | None = None
        try:
            if name == "llm-hang":
                fake_llm = FakeLLM()
                await fake_llm.start()
                env.update(
                    {
                        "CLERK_LLM": "openai",
                        "CLERK_LLM_BASE_URL": fake_llm.base_url,
                        "CLERK_LLM_TIMEOUT": str(args.llm_timeout),
                    }
                )
                result["llm_timeout_s"] = args.llm_timeout
            if name in ("action-hang", "action-kill"):
                actions = await asyncio.to_thread(
                    L.ActionServerProc(db_url, work / "logs", name=f"actions-{name}").start
                )
                endpoint = actions.url
                if name == "action-hang":
                    proxy = HangProxy(actions.port)
                    await proxy.start()
                    endpoint = f"http://127.0.0.1:{proxy.port}/webhook"
                env["CLERK_ACTION_ENDPOINT"] = endpoint
            server = L.ClerkServer(
                f"fault-{name}",
                home,
                database_url=db_url,
                workers=workers if workers > 1 else None,
                env=env,
                log_dir=work / "logs",
            )
            await asyncio.to_thread(server.start)
            await asyncio.to_thread(_warm, server.url)
            result["workers_seen"] = len(server.worker_pids())

            pool = L.ShopperPool(seed=11)
            cfg = L.RunConfig(
                base_url=server.url,
                timeout=args.timeout,
                stagger=2.0,
                think=args.think,
                retry=True,
                turn_deadline=args.turn_deadline,
                label=name,
            )
            state = LoadState(t0=time.monotonic())
            total = args.before + args.fault_for + args.after
            stop_at = state.t0 + total
            load = asyncio.create_task(
                lanes(server.url, pool, args.shoppers, cfg, stop_at, state, run_id)
            )
            await asyncio.sleep(args.before)
            t_fault = time.monotonic() - state.t0
            L.log(f"{name}: injecting the fault at t={t_fault:.1f} s")
            notes: list[str] = []
            lifted: float | None = None
            if name == "worker-kill":
                pids = server.worker_pids()
                victim = pids[0]
                os.kill(victim, signal.SIGKILL)
                notes.append(
                    f"SIGKILL worker pid {victim} of {pids}"
                    + (
                        " (the only process: nothing restarts it)"
                        if victim == server.proc.pid
                        else ""
                    )
                )  # type: ignore[union-attr]
                lifted = t_fault
            elif name == "pg-restart":
                try:
                    notes.append(await asyncio.to_thread(restart_postgres))
                finally:
                    ok = await asyncio.to_thread(ensure_postgres_running)
                    notes.append(f"PostgreSQL answering afterwards: {ok}")
                lifted = time.monotonic() - state.t0
            elif name == "llm-hang":
                assert fake_llm is not None
                fake_llm.hang = True
                await asyncio.sleep(args.fault_for)
                fake_llm.hang = False
                lifted = time.monotonic() - state.t0
                notes.append(f"LLM requests {fake_llm.requests}, left hanging {fake_llm.hung}")
            elif name == "action-hang":
                assert proxy is not None
                proxy.hang = True
                await asyncio.sleep(args.fault_for)
                proxy.hang = False
                lifted = time.monotonic() - state.t0
                notes.append(f"action requests swallowed: {proxy.swallowed}")
            elif name == "action-kill":
                assert actions is not None
                actions.kill()
                notes.append(f"SIGKILL action server pid {actions.proc.pid}")  # type: ignore[union-attr]
                await asyncio.sleep(args.fault_for)
                lifted = time.monotonic() - state.t0  # the restart begins: the fault's end
                await asyncio.to_thread(actions.start)
                notes.append(
                    f"action server started again on the same port at "
                    f"t={lifted:.1f} s, healthy at "
                    f"t={time.monotonic() - state.t0:.1f} s"
                )
            result["notes"] = notes
            L.log(f"{name}: fault over at t={lifted:.1f} s; load continues")
            await load
            result["timeline"] = {
                "fault_at_s": round(t_fault, 2),
                "fault_lifted_s": round(lifted or t_fault, 2),
                "load_end_s": round(total, 2),
            }
            result["server_alive_after"] = await asyncio.to_thread(server.healthy)
            result["worker_pids_after"] = server.worker_pids()
            result["conversations"] = state.conversations
            part_timeout = {
                "llm-hang": args.llm_timeout,
                "action-hang": ACTION_TIMEOUT_S,
                "action-kill": ACTION_TIMEOUT_S,
            }.get(name)
            result.update(analyse(scenario, state, t_fault, lifted or t_fault, args, part_timeout))
            if not pg_ready():
                await asyncio.to_thread(ensure_postgres_running)
            rep = await asyncio.to_thread(L.check_transcripts, db_url, state.outcomes)
            result["transcripts"] = rep
            result["acked_turns_lost"] = rep["lost"]
            result["records"] = L.records_json(state.outcomes) if args.records else None
        finally:
            if server is not None:
                await asyncio.to_thread(server.stop)
            if actions is not None:
                await asyncio.to_thread(actions.stop)
            if proxy is not None:
                await proxy.stop()
            if fake_llm is not None:
                await fake_llm.stop()

    asyncio.run(main())
    return result


def _warm(url: str) -> None:
    from benchmarks.load import warm_up

    warm_up(url)


# Clerk's RemoteActionRunner waits this long for the action server (bot/actions.py)
ACTION_TIMEOUT_S = 10.0


def analyse(
    sc: Scenario,
    state: LoadState,
    t_fault: float,
    lifted: float,
    args: argparse.Namespace,
    part_timeout: float | None = None,
) -> dict[str, Any]:
    recs = [r for o in state.outcomes for r in o.records]
    window_end = max(lifted, t_fault + args.fault_for)
    # the baseline: turns over before the fault (one that started just before it and ran
    # into it is not a baseline turn)
    base = [r for r in recs if 3.0 <= r.start and r.start + r.latency < t_fault and r.ok]
    during = [r for r in recs if t_fault <= r.start < window_end]
    # A turn shows the fault when it failed, was wrong or needed a resend; or, for a fault
    # with turns that do not depend on the failed part, when a turn that does took over
    # max(2 s, 3 x the baseline p95 of its kind): it waited on the hanging part.
    slow = {
        kind: max(2.0, 3 * (L.percentile([r.latency for r in base if r.kind == kind], 95) or 0.5))
        for kind in ("intent", "knowledge")
    }
    if part_timeout:  # a turn that waited most of the part's timeout waited on the fault
        slow = {k: max(2.0, min(v, 0.8 * part_timeout)) for k, v in slow.items()}
    partial = sc.unaffected is not _all

    def shows_fault(r: L.TurnRecord) -> bool:
        if not r.ok or r.attempts > 1:
            return True
        return partial and not sc.unaffected(r) and r.latency > slow[r.kind]

    after = sorted((r for r in recs if r.start >= t_fault), key=lambda r: r.start)
    bad = [i for i, r in enumerate(after) if shows_fault(r)]
    # recovered: at the start of the first turn needing the failed part (any turn for a
    # worker kill or a PostgreSQL restart) after the last one that showed the fault; every
    # later turn was fine
    rest = [
        r for r in (after[bad[-1] + 1 :] if bad else after) if not partial or not sc.unaffected(r)
    ]
    recovered = max(0.0, rest[0].start - t_fault) if rest else None
    settled = [r for r in recs if r.start >= lifted + 2.0]
    fails = [r for r in recs if not r.ok]

    def lat(rs: list[L.TurnRecord]) -> dict[str, Any]:
        return L.latency_summary([r for r in rs if r.ok])

    out: dict[str, Any] = {
        "turns": len(recs),
        "turns_ok": sum(1 for r in recs if r.ok),
        "turns_retried": sum(1 for r in recs if r.attempts > 1),
        "turns_failed_for_good": sum(1 for r in fails if r.outcome != "wrong"),
        "wrong_replies": sum(1 for r in fails if r.outcome == "wrong"),
        "wrong_examples": [f"{r.name}: {r.detail[:200]}" for r in fails if r.outcome == "wrong"][
            :5
        ],
        "failure_examples": [
            f"{r.channel} {r.name}: {r.outcome} {r.detail[:160]}"
            for r in fails
            if r.outcome != "wrong"
        ][:5],
        "first_attempt_errors": sorted(
            {r.first_error.split(":")[0] for r in recs if r.first_error}
        ),
        "unaffected": sc.unaffected_label,
        "unaffected_before": lat([r for r in base if sc.unaffected(r)]),
        "unaffected_during": lat([r for r in during if sc.unaffected(r)]),
        "affected_during": lat([r for r in during if not sc.unaffected(r)]),
        "affected_started_during": sum(1 for r in during if not sc.unaffected(r)),
        "errors_during": {
            "unaffected": sum(1 for r in during if sc.unaffected(r) and not r.ok),
            "affected": sum(1 for r in during if not sc.unaffected(r) and not r.ok),
        },
        "slow_threshold_s": {k: round(v, 3) for k, v in slow.items()} if partial else None,
        "turns_showing_fault": len(bad),
        "all_before": lat(base),
        "all_after_fault_ended": lat(settled),
        "recovered_s": None if recovered is None else round(recovered, 2),
        # negative: turns needing the part were served fine again before the fault ended
        "recovered_after_lift_s": None
        if recovered is None
        else round(recovered - (lifted - t_fault), 2),
    }
    b, d = out["unaffected_before"]["p95_ms"], out["unaffected_during"]["p95_ms"]
    out["unaffected_delay_p95_ms"] = round(d - b, 1) if b is not None and d is not None else None
    return out


def print_fault(r: dict[str, Any]) -> None:
    print(
        f"\n== fault {r['fault']} (workers: {r['workers']}, processes seen {r.get('workers_seen')})"
    )
    for n in r.get("notes", []):
        print(f"   {n}")
    tl = r["timeline"]
    print(
        f"   fault at {tl['fault_at_s']} s, over at {tl['fault_lifted_s']} s, load until "
        f"{tl['load_end_s']} s; {r['conversations']} conversations, {r['turns']} turns "
        f"({r['turns_ok']} ok, {r['turns_retried']} needed a resend)"
    )
    t = r["transcripts"]
    print(
        f"   acknowledged turns lost: {r['acked_turns_lost']} (goal 0); duplicated "
        f"{t['duplicated']}, reordered {t['reordered']}, without bot reply "
        f"{t['without_bot_reply']}, order/ticket mismatches {t['order_mismatches']}/"
        f"{t['ticket_mismatches']}"
    )
    print(
        f"   turns failed for good: {r['turns_failed_for_good']}, wrong replies: "
        f"{r['wrong_replies']}; first-attempt errors: {r['first_attempt_errors'] or 'none'}"
    )
    for e in r["failure_examples"][:3] + r["wrong_examples"][:3]:
        print(f"     - {e}")

    def p(d: dict[str, Any]) -> str:
        return f"p50 {d['p50_ms']:.0f} / p95 {d['p95_ms']:.0f} ms (n={d['n']})" if d["n"] else "n=0"

    print(
        f"   {r['unaffected']}: before {p(r['unaffected_before'])}; during "
        f"{p(r['unaffected_during'])} -> p95 delayed by {r['unaffected_delay_p95_ms']} ms; "
        f"errors during {r['errors_during']['unaffected']}"
    )
    print(
        f"   turns needing the failed part, started during: {r['affected_started_during']}; "
        f"ok ones {p(r['affected_during'])}; failed or wrong {r['errors_during']['affected']}"
    )
    print(
        f"   all turns: before {p(r['all_before'])}; from 2 s after the fault ended "
        f"{p(r['all_after_fault_ended'])}"
    )
    rec, after = r["recovered_s"], r["recovered_after_lift_s"]
    if rec is None:
        when = (
            "NO (still failing or slow at the end of the load, or no turn needing the "
            "failed part was seen fine afterwards)"
        )
    elif after is not None and after < 0:
        when = (
            f"{rec} s after the fault, {-after} s BEFORE it ended (turns needing the part "
            "were served normally again while it was still failing)"
        )
    else:
        when = f"{rec} s after the fault ({after} s after it ended)"
    print(
        "   recovered without restarting Clerk: "
        + when
        + f"; server healthy afterwards: {r['server_alive_after']}"
    )
    for p_ in t["problems"][:5]:
        print(f"     - {p_}")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--fault", nargs="+", choices=FAULTS, default=list(FAULTS))
    p.add_argument("--shoppers", type=int, default=30, help="concurrent lanes")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--before", type=float, default=12.0)
    p.add_argument("--fault-for", type=float, default=10.0)
    p.add_argument("--after", type=float, default=20.0)
    p.add_argument("--think", type=float, default=0.5, help="mean pause between turns (s)")
    p.add_argument("--timeout", type=float, default=15.0, help="seconds per attempt")
    p.add_argument(
        "--turn-deadline",
        type=float,
        default=45.0,
        help="seconds of resending before a turn counts as failed",
    )
    p.add_argument("--llm-timeout", type=float, default=5.0, help="CLERK_LLM_TIMEOUT")
    p.add_argument("--home-cache", default=str(L.DEFAULT_HOME_CACHE))
    p.add_argument("--records", action="store_true", help="every turn in the JSON")
    p.add_argument("--out", default=str(L.RESULTS / "faults.json"))
    p.add_argument("--keep", action="store_true")
    args = p.parse_args(argv)

    run_id = secrets.token_hex(3)
    workers = args.workers
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "machine": L.machine(),
        "settings": {
            k: getattr(args, k)
            for k in (
                "shoppers",
                "workers",
                "before",
                "fault_for",
                "after",
                "think",
                "timeout",
                "turn_deadline",
                "llm_timeout",
            )
        },
        "faults": {},
    }
    if workers > 1 and not L.serve_supports_workers():
        print(
            f"NOTE: this checkout's `clerk serve` has no --workers option yet: running every "
            f"fault with ONE worker instead of {workers}"
        )
        workers = 1
    results["workers_used"] = workers
    with L.work_dir(keep=args.keep) as work:
        L.log(f"work dir {work}")
        base_home = L.ensure_home(Path(args.home_cache))
        template = L.PgTemplate(base_home, work, run_id)
        try:
            for name in args.fault:
                try:
                    r = run_fault(name, args, base_home, template, work, workers, run_id)
                except Exception as exc:  # noqa: BLE001 - one fault failing to run is reported
                    print(f"\n== fault {name}: could not be run - {type(exc).__name__}: {exc}")
                    results["faults"][name] = {"error": f"{type(exc).__name__}: {exc}"[:2000]}
                else:
                    print_fault(r)
                    results["faults"][name] = r
                L.write_json(Path(args.out), results)
        finally:
            if not pg_ready():
                ensure_postgres_running()
            if not args.keep:
                template.drop_all()
    L.write_json(Path(args.out), results)
    print(f"\nwritten to {args.out}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    sys.exit(main())
