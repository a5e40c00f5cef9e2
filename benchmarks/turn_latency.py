"""Turn latency through the REST channel of a running `clerk serve`.

Prepares a CLERK_HOME (ingest + train; not timed), then measures:
- cold start: launching `clerk serve` on the prepared home until /health answers;
- a few hundred scripted turns over real HTTP (greet, authenticated order status, cancel with
  confirmation, product question), p50/p95 per turn type;
- the server's resident memory after the run.

Usage: python benchmarks/turn_latency.py [--conversations 40] [--home DIR] [--json OUT]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def shoppers(knowledge: Path) -> list[dict]:
    users = json.loads((knowledge / "catalog" / "users.json").read_text())
    orders = json.loads((knowledge / "catalog" / "orders.json").read_text())
    out = []
    for u in users.values():
        pending = [o for o in u["orders"] if orders.get(o, {}).get("status") == "pending"]
        if len(pending) >= 2:
            out.append(
                {"email": u["email"], "status_order": pending[0], "cancel_order": pending[1]}
            )
    return out


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=40)
    ap.add_argument("--home", help="an existing CLERK_HOME to reuse (default: a fresh temp one)")
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "turn_latency.json"))
    args = ap.parse_args()

    home = Path(args.home or tempfile.mkdtemp(prefix="clerk-bench-"))
    env = {**os.environ, "CLERK_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    env.pop("CLERK_ACTION_ENDPOINT", None)
    print(f"preparing {home} (ingest + train, not timed)…", flush=True)
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "ingest"],
        env=env,
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )

    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        while True:
            try:
                if httpx.get(f"{base}/health", timeout=0.5).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if proc.poll() is not None or time.perf_counter() - t0 > 120:
                raise SystemExit("server did not start")
            time.sleep(0.05)
        cold_start = time.perf_counter() - t0
        print(f"cold start (trained model present): {cold_start:.2f} s", flush=True)

        client = httpx.Client(base_url=base, timeout=30)
        times: dict[str, list[float]] = {}

        def turn(kind: str, sender: str, text: str) -> list[dict]:
            t = time.perf_counter()
            r = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
            times.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            return r.json()

        people = shoppers(ROOT / "knowledge")
        random.Random(7).shuffle(people)
        questions = [
            "how much is the Bluetooth Speaker in blue?",
            "what colors does the T-Shirt come in?",
            "can I cancel a processed order?",
            "is the Garden Hose available?",
            "how long do refunds to a credit card take?",
        ]
        # warm-up turn (not counted)
        turn("warmup", "warmup", "hello")
        times.pop("warmup")
        for i, p in enumerate(people[: args.conversations]):
            s = f"bench-{i}"
            turn("greet", s, "hi there")
            turn("order_status", s, f"where is my order {p['status_order']}?")
            turn("order_status", s, p["email"])
            turn("cancel", s, f"I want to cancel order {p['cancel_order']}")
            turn("cancel", s, "ordered by mistake")
            turn("cancel", s, "yes")
            turn("product_question", s, questions[i % len(questions)])
        memory = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    report = {
        "cold_start_s": round(cold_start, 2),
        "server_rss_mb": round(memory, 1),
        "turns": {
            k: {
                "n": len(v),
                "p50_ms": round(percentile(v, 0.5), 1),
                "p95_ms": round(percentile(v, 0.95), 1),
            }
            for k, v in times.items()
        },
    }
    intent_action = times["order_status"] + times["cancel"] + times["greet"]
    report["intent_action_turns"] = {
        "n": len(intent_action),
        "p50_ms": round(percentile(intent_action, 0.5), 1),
        "p95_ms": round(percentile(intent_action, 0.95), 1),
    }
    print(f"{'turn type':<20}{'n':>6}{'p50 ms':>10}{'p95 ms':>10}")
    for k, v in {**report["turns"], "intent+action (all)": report["intent_action_turns"]}.items():
        print(f"{k:<20}{v['n']:>6}{v['p50_ms']:>10}{v['p95_ms']:>10}")
    print(f"server memory (RSS): {report['server_rss_mb']} MB")
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(report, indent=2))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
