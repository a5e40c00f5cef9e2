"""The fact guard on Chinese answers (``python benchmarks/guard_eval.py --language zh``).

A small Chinese store (``guard_store_zh.json``: five products with English names and
prices in yuan, ten policy and FAQ passages in Chinese) and hand-written replies to its
shoppers' questions (``guard_cases_zh.json``, the shape of ``guard_cases.json``): each is
``correct`` (true, cited) or ``wrong`` (one invented fact of one ``kind``). A reply cites
by content: ``{cite:48小时}`` becomes ``[n]``, n being the passage that holds "48小时";
``{badcite}`` cites a passage that was not given. The 20 cases styled ``holdout/`` were
written after the reader was fixed on the first 105, and measured as they came.

Each reply is checked as ``GuardedWriter`` checks a model's: ``FactGuard.check`` with the
evidence the prompt held (for a question naming a product, that product's catalog facts
as passage [1], then the store's passages). Unlike the English benchmark there is no fake
model server and no retrieval: every passage of the store is in the prompt, so this
measures the guard's reading, not the search.

Reported: precision and recall of rejection (a rejected wrong reply is a true positive),
correct replies shown, wrong replies shown (by kind), every misjudged reply with the
guard's violations, and the guard's time per sentence (best of ``--timing-rounds`` warm
runs, and the first run with the caches cleared).
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
import time
from collections import Counter
from pathlib import Path
from typing import Any

from bot.generation.base import Citation
from bot.generation.claims_zh import latin_view
from bot.generation.guard import Evidence, FactGuard, clear_caches, split_sentences
from bot.generation.prompt import facts_passage_text
from bot.knowledge.catalog import CatalogResolver

HERE = Path(__file__).resolve().parent
STORE = HERE / "guard_store_zh.json"
CASES = HERE / "guard_cases_zh.json"
_CITE = re.compile(r"(【?)\{cite:([^}]*)\}(】?)")


def load_store(path: Path = STORE) -> tuple[CatalogResolver, list[Citation]]:
    data = json.loads(path.read_text(encoding="utf-8"))
    products = {pid: {**p, "currency": data["currency"]} for pid, p in data["products"].items()}
    passages = [
        Citation(0, p["id"], p["title"], p["source"], p["kind"], p["text"])
        for p in data["passages"]
    ]
    return CatalogResolver(products), passages


def evidence_for(catalog: CatalogResolver, passages: list[Citation], question: str) -> Evidence:
    """The prompt's evidence: the products the question names (their catalog facts first;
    the facts of the question when it names one), then the store's passages, numbered."""
    named = catalog.resolve_all(latin_view(question))
    given = [
        Citation(0, f"product-{f.product_id}", f.name, "catalog", "product", facts_passage_text(f))
        for f in named
    ]
    given += passages
    facts = named[0] if len(named) == 1 else None
    numbered = tuple(
        Citation(i, c.passage_id, c.title, c.source, c.kind, c.text)
        for i, c in enumerate(given, start=1)
    )
    return Evidence(numbered, facts, question=question)


def resolve_marks(reply: str, evidence: Evidence) -> str:
    """``{cite:TEXT}`` -> ``[n]`` of the passage holding TEXT; ``{badcite}`` -> a passage
    that was not given."""

    def mark(m: re.Match[str]) -> str:
        wanted = m.group(2)
        for c in evidence.passages:
            if wanted in c.text or wanted == c.title:
                return f"【{c.index}】" if m.group(1) else f"[{c.index}]"
        raise ValueError(f"no passage holds {wanted!r}")

    missing = len(evidence.passages) + 1
    return _CITE.sub(mark, reply).replace("{badcite}", f"[{missing}]")


def run_chinese(args: argparse.Namespace) -> dict[str, Any]:
    catalog, passages = load_store()
    guard = FactGuard(catalog)
    cases = json.loads(CASES.read_text(encoding="utf-8"))
    rows: list[dict[str, Any]] = []
    warm_ms: list[float] = []
    cold_ms: list[float] = []
    for n, case in enumerate(cases):
        evidence = evidence_for(catalog, passages, case["question"])
        reply = resolve_marks(case["reply"], evidence)
        sentences = max(len(split_sentences(reply)[0]), 1)
        clear_caches()
        started = time.perf_counter()
        verdict = guard.check(reply, evidence)
        cold_ms.append((time.perf_counter() - started) * 1000 / sentences)
        best = min(_timed(guard, reply, evidence) for _ in range(max(args.timing_rounds, 1)))
        warm_ms.append(best * 1000 / sentences)
        rows.append(
            {
                "id": f"zh{n:03d}",
                "question": case["question"],
                "label": case["label"],
                "kind": case.get("kind", ""),
                "topic": case["topic"],
                "style": case["style"],
                "reply": reply,
                "shown": verdict.ok,
                "violations": [str(v) for v in verdict.violations],
            }
        )
    summary = summarise(rows, warm_ms, cold_ms)
    print_report(summary, rows)
    return {
        "summary": summary,
        "rejected_correct": [r for r in rows if r["label"] == "correct" and not r["shown"]],
        "wrong_shown": [r for r in rows if r["label"] == "wrong" and r["shown"]],
        "rows": [{k: r[k] for k in ("id", "label", "kind", "style", "shown")} for r in rows],
    }


def _timed(guard: FactGuard, reply: str, evidence: Evidence) -> float:
    started = time.perf_counter()
    guard.check(reply, evidence)
    return time.perf_counter() - started


def _pct(part: int, whole: int) -> float:
    return round(100 * part / whole, 2) if whole else 0.0


def summarise(
    rows: list[dict[str, Any]], warm_ms: list[float], cold_ms: list[float]
) -> dict[str, Any]:
    correct = [r for r in rows if r["label"] == "correct"]
    wrong = [r for r in rows if r["label"] == "wrong"]
    caught = sum(not r["shown"] for r in wrong)  # true positives: wrong and rejected
    rejected = sum(not r["shown"] for r in rows)
    by_kind: dict[str, dict[str, int]] = {}
    for r in wrong:
        entry = by_kind.setdefault(r["kind"], {"n": 0, "shown": 0})
        entry["n"] += 1
        entry["shown"] += r["shown"]
    by_topic: dict[str, dict[str, Any]] = {}
    for r in correct:
        entry = by_topic.setdefault(r["topic"], {"n": 0, "shown": 0})
        entry["n"] += 1
        entry["shown"] += r["shown"]
    return {
        "cases": len(rows),
        "by_label": dict(Counter(r["label"] for r in rows)),
        "rejection": {
            "precision": round(caught / rejected, 4) if rejected else None,
            "recall": round(caught / len(wrong), 4) if wrong else None,
            "rejected": rejected,
            "wrong_rejected": caught,
        },
        "correct": {
            "n": len(correct),
            "shown": sum(r["shown"] for r in correct),
            "shown_pct": _pct(sum(r["shown"] for r in correct), len(correct)),
            "by_topic": dict(sorted(by_topic.items())),
        },
        "wrong": {
            "n": len(wrong),
            "shown": sum(r["shown"] for r in wrong),
            "by_kind": dict(sorted(by_kind.items())),
        },
        "guard_timing": {
            "ms_per_sentence_mean": round(statistics.fmean(warm_ms), 4),
            "ms_per_sentence_p95": round(sorted(warm_ms)[int(0.95 * (len(warm_ms) - 1))], 4),
            "cold_ms_per_sentence_mean": round(statistics.fmean(cold_ms), 4),
            "method": "FactGuard.check on the whole reply / its sentences; warm: best of "
            "--timing-rounds runs; cold: first run after clear_caches()",
        },
    }


def print_report(summary: dict[str, Any], rows: list[dict[str, Any]]) -> None:
    rej, cor, wr = summary["rejection"], summary["correct"], summary["wrong"]
    print(
        f"{summary['cases']} Chinese cases: rejection precision {rej['precision']}, "
        f"recall {rej['recall']}; correct shown {cor['shown']}/{cor['n']} "
        f"({cor['shown_pct']}%); wrong shown {wr['shown']}/{wr['n']}; "
        f"{summary['guard_timing']['ms_per_sentence_mean']} ms a sentence"
    )
    for r in rows:
        if r["shown"] != (r["label"] == "correct"):
            what = "REJECTED correct" if r["label"] == "correct" else f"SHOWN wrong ({r['kind']})"
            print(f"- {what}: {r['reply']}")
            for v in r["violations"][:3]:
                print(f"    {v}")
