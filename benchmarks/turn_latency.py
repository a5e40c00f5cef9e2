"""Turn latency through the REST channel of a running `clerk serve`, for the English demo
store and its Chinese version (`clerk init --template demo-store-zh`: e5 encoder, segmented
BM25, Chinese domain) in the same run, one after the other.

For each language, prepares a CLERK_HOME (ingest + train; not timed), then measures:
- cold start: launching `clerk serve` on the prepared home until /health answers;
- a few hundred scripted turns over real HTTP (greet, authenticated order status, cancel with
  confirmation, product question), p50/p95 per turn type;
- the server's resident memory after the run.

Usage: python benchmarks/turn_latency.py [--conversations 40] [--language en zh] [--json OUT]
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Script:
    """What the shoppers of one language say: the project they talk to and their lines."""

    greet: str
    status: str  # "{order}" is replaced by an order id
    cancel: str
    reason: str
    yes: str
    questions: tuple[str, ...]


SCRIPTS = {
    "en": Script(
        greet="hi there",
        status="where is my order {order}?",
        cancel="I want to cancel order {order}",
        reason="ordered by mistake",
        yes="yes",
        questions=(
            "how much is the Bluetooth Speaker in blue?",
            "what colors does the T-Shirt come in?",
            "can I cancel a processed order?",
            "is the Garden Hose available?",
            "how long do refunds to a credit card take?",
        ),
    ),
    "zh": Script(
        greet="你好",
        status="我的订单{order}到哪了？",
        cancel="我要取消订单{order}",
        reason="不小心下错单了",
        yes="是的",
        questions=(
            "蓝色的蓝牙音箱多少钱？",
            "T恤有哪些颜色？",
            "已经处理的订单还能取消吗？",
            "花园水管有货吗？",
            "退款到信用卡要多久？",
        ),
    ),
}


def project_of(language: str, scratch: Path) -> Path:
    """The English demo is the repository itself; the Chinese one is scaffolded as a store
    would (``clerk init --template demo-store-zh``)."""
    if language == "en":
        return ROOT
    project = scratch / "demo-store-zh"
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "init", str(project), "--template", "demo-store-zh"],
        cwd=ROOT,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return project


def measure(language: str, conversations: int, scratch: Path) -> dict:
    script = SCRIPTS[language]
    project = project_of(language, scratch)
    home = scratch / f"home-{language}"
    env = {
        **os.environ,
        "CLERK_HOME": str(home),
        "CLERK_PROJECT": str(project),
        "HF_HUB_OFFLINE": "1",
    }
    env.pop("CLERK_ACTION_ENDPOINT", None)
    env.pop("CLERK_LANGUAGE", None)
    print(f"[{language}] preparing {home} (ingest + train, not timed)…", flush=True)
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "train"],
        env=env,
        cwd=project,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    subprocess.run(
        [sys.executable, "-m", "bot.cli", "ingest"],
        env=env,
        cwd=project,
        check=True,
        stdout=subprocess.DEVNULL,
    )

    port = free_port()
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot.cli", "serve", "--port", str(port)],
        env=env,
        cwd=project,
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
            if proc.poll() is not None or time.perf_counter() - t0 > 180:
                raise SystemExit(f"[{language}] server did not start")
            time.sleep(0.05)
        cold_start = time.perf_counter() - t0
        print(f"[{language}] cold start (trained model present): {cold_start:.2f} s", flush=True)

        client = httpx.Client(base_url=base, timeout=30)
        times: dict[str, list[float]] = {}

        def turn(kind: str, sender: str, text: str) -> list[dict]:
            t = time.perf_counter()
            r = client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
            times.setdefault(kind, []).append((time.perf_counter() - t) * 1000)
            r.raise_for_status()
            return r.json()

        people = shoppers(project / "knowledge")
        random.Random(7).shuffle(people)
        # warm-up turn (not counted)
        turn("warmup", "warmup", script.greet)
        times.pop("warmup")
        for i, p in enumerate(people[:conversations]):
            s = f"bench-{i}"
            turn("greet", s, script.greet)
            turn("order_status", s, script.status.format(order=p["status_order"]))
            turn("order_status", s, p["email"])
            turn("cancel", s, script.cancel.format(order=p["cancel_order"]))
            turn("cancel", s, script.reason)
            turn("cancel", s, script.yes)
            turn("product_question", s, script.questions[i % len(script.questions)])
        memory = rss_mb(proc.pid)
    finally:
        proc.terminate()
        proc.wait(timeout=20)

    report: dict = {
        "cold_start_s": round(cold_start, 2),
        "server_rss_mb": round(memory, 1),
        "turns": {k: summary(v) for k, v in times.items()},
    }
    report["intent_action_turns"] = summary(
        times["order_status"] + times["cancel"] + times["greet"]
    )
    return report


def summary(values: list[float]) -> dict:
    return {
        "n": len(values),
        "p50_ms": round(percentile(values, 0.5), 1),
        "p95_ms": round(percentile(values, 0.95), 1),
    }


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--conversations", type=int, default=40)
    ap.add_argument("--language", nargs="+", choices=sorted(SCRIPTS), default=["en", "zh"])
    ap.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "turn_latency.json"))
    args = ap.parse_args()

    with tempfile.TemporaryDirectory(prefix="clerk-bench-") as scratch:
        reports = {lang: measure(lang, args.conversations, Path(scratch)) for lang in args.language}

    print(
        f"{'turn type':<20}"
        + "".join(f"{lang + ' p50':>10}{lang + ' p95':>10}" for lang in reports)
    )
    kinds = ["greet", "order_status", "cancel", "product_question"]
    rows = {k: {lang: r["turns"].get(k) for lang, r in reports.items()} for k in kinds}
    rows["intent+action (all)"] = {lang: r["intent_action_turns"] for lang, r in reports.items()}
    for kind, per_language in rows.items():
        cells = "".join(
            f"{v['p50_ms']:>10}{v['p95_ms']:>10}" if v else f"{'-':>10}{'-':>10}"
            for v in per_language.values()
        )
        print(f"{kind:<20}{cells}")
    for lang, r in reports.items():
        print(
            f"[{lang}] cold start {r['cold_start_s']} s, server memory (RSS) {r['server_rss_mb']} MB"
        )
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(reports, indent=2))
    print(f"written {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
