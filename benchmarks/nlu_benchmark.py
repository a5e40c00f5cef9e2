"""NLU benchmark: Clerk's NLU with its default config on a text,label CSV pair, three ways.

    python benchmarks/nlu_benchmark.py --train ../shared/data/banking77/train.csv \
        --test ../shared/data/banking77/test.csv [--scenario full|fewshot|oos ...] \
        [--config config.yml] [--peer rasa [--rasa-epochs N]]

Scenarios (all by default; the draws are seeded and fixed, never tuned):

* ``full``: the whole training file.
* ``fewshot``: ``FEWSHOT_PER_INTENT`` (10) training examples of each intent.
* ``oos``: ``OOS_KNOWN_INTENTS`` (67) intents' training examples only; the test queries of
  the other intents are out of scope (no out-of-scope example is trained on).

Each prints closed-set accuracy and macro-F1 (the top intent, as published figures count
it), accuracy with the calibrated fallback (a fallback counts as wrong), for ``oos``
in-scope accuracy and out-of-scope recall, training wall time, peak memory, and for
``full`` single-message ``parse`` latency (median and p95 of 500 calls, the model loaded
from its saved artifact as the server loads it, ONNX encoder at ``--precision``). Without
``--config`` the config is ``NLUConfig()``'s defaults: what ``clerk init`` gives a store.
The test file is read once, for the final figures; nothing was tuned on it.

``--peer rasa`` trains and tests Rasa Open Source 3.6 DIET on the same scenarios, in a
Python 3.10 virtualenv (created with ``python3.10 -m venv`` and ``pip install rasa==3.6.21``
when missing; about 4 minutes), its fallback at Rasa's FallbackClassifier default (0.3).
It is skipped with a message when no Python 3.10 is found. DIET's default is 100 epochs at
roughly 85-140 s each on two cores for the full set; ``--rasa-epochs`` sets a smaller
count, which the output states.

Results are written to ``benchmarks/results/nlu_<name>.json`` (``runs``, one entry per
system and scenario; a later run replaces only its own entries).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


SCENARIOS = ("full", "fewshot", "oos")
FEWSHOT_PER_INTENT = 10
OOS_KNOWN_INTENTS = 67
SPLIT_SEED = 0  # the few-shot draw and the out-of-scope intents: fixed, never tuned


def fewshot_rows(labels: list[str], per_intent: int, seed: int = SPLIT_SEED) -> list[int]:
    """A seeded draw of ``per_intent`` training rows of every intent (all when fewer)."""
    import numpy as np

    rng = np.random.RandomState(seed)
    rows: list[int] = []
    for label in sorted(set(labels)):
        mine = np.flatnonzero(np.asarray(labels) == label)
        rng.shuffle(mine)
        rows.extend(int(i) for i in mine[:per_intent])
    return sorted(rows)


def known_intents(labels: list[str], n_known: int, seed: int = SPLIT_SEED) -> set[str]:
    """``n_known`` intents drawn with ``seed``; the others are out of scope."""
    import numpy as np

    intents = sorted(set(labels))
    rng = np.random.RandomState(seed)
    rng.shuffle(intents)
    return set(intents[:n_known])


def scenario_data(scenario: str, train_csv: Path, test_csv: Path) -> tuple[Any, Any, set[str]]:
    """(training NLUData, test NLUData, out-of-scope intents) of a scenario: ``full`` (the
    training file), ``fewshot`` (``FEWSHOT_PER_INTENT`` a intent, seeded), ``oos`` (the
    ``OOS_KNOWN_INTENTS`` seeded intents' training rows; the other intents' test queries
    are out of scope and no out-of-scope example is trained on)."""
    from bot.nlu.data import NLUData, load_csv

    train, test = load_csv(train_csv), load_csv(test_csv)
    labels = [e.intent for e in train.examples]
    if scenario == "fewshot":
        rows = fewshot_rows(labels, FEWSHOT_PER_INTENT)
        return NLUData(examples=tuple(train.examples[i] for i in rows)), test, set()
    if scenario == "oos":
        known = known_intents(labels, min(OOS_KNOWN_INTENTS, len(set(labels)) - 1))
        kept = tuple(e for e in train.examples if e.intent in known)
        return NLUData(examples=kept), test, set(labels) - known
    return train, test, set()


def run_clerk(args: argparse.Namespace, scenario: str) -> dict:
    import numpy as np

    from bot.nlu.config import NLUConfig
    from bot.nlu.encoder import Encoder
    from bot.nlu.model import NLUModel

    train, test, out_of_scope = scenario_data(scenario, Path(args.train), Path(args.test))
    config = NLUConfig.from_file(args.config) if args.config else NLUConfig()
    work = Path(tempfile.mkdtemp(prefix="clerk-bench-"))
    encoder = Encoder(cache_dir=work / "encoder", precision=args.precision)
    encoder.encode(["warm up"])  # the ONNX export is a one-off cost, not training
    print(
        f"[{scenario}] training Clerk NLU on {len(train.examples)} examples "
        f"({len(train.intents)} intents), config {args.config or 'default'}",
        flush=True,
    )
    last = {"stage": None}

    def progress(stage: str, done: int, total: int) -> None:
        if stage != last["stage"] or done == total or done % 100 == 0:
            print(f"  {stage}: {done}/{total}  ({time.perf_counter() - t0:.0f} s)", flush=True)
            last["stage"] = stage

    t0 = time.perf_counter()
    model = NLUModel.train(train, encoder=encoder, config=config, progress=progress)
    train_seconds = time.perf_counter() - t0
    model.save(work / "model")
    served = NLUModel.load(
        work / "model", Encoder(cache_dir=work / "encoder", precision=args.precision)
    )

    texts = [e.text for e in test.examples]
    probs = served.predict_proba(texts)
    result: dict[str, Any] = {
        "system": "clerk",
        "scenario": scenario,
        "config": config.to_dict(),
        "train_examples": len(train.examples),
        "train_intents": len(train.intents),
        "test_examples": len(texts),
        **score(
            [e.intent for e in test.examples],
            np.asarray(served.labels)[np.argmax(probs, axis=1)].tolist(),
            [served.accepts(t, float(c)) for t, c in zip(texts, probs.max(axis=1), strict=True)],
            out_of_scope,
        ),
        "threshold": served.threshold,
        "finetune": model.metrics.get("finetune"),
        "rejection_estimate": model.metrics.get("rejection"),
        "train_seconds": round(train_seconds, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 0),
    }
    if scenario == "full":
        result.update(_latency(served, texts[: args.latency_n]))
    shutil.rmtree(work, ignore_errors=True)
    return result


def score(
    gold: list[str], predicted: list[str], kept: list[bool], out_of_scope: set[str]
) -> dict[str, Any]:
    """The figures of one system on one scenario. ``accuracy``/``macro_f1``: closed-set, the
    top intent on the in-scope queries, as published intent-detection figures count it.
    ``accuracy_with_fallback``: what a shopper gets, a fallback (``kept`` false: the system
    answered its fallback) counting as wrong. With ``out_of_scope`` intents: ``in_scope_accuracy``
    (that same figure on in-scope queries) and ``out_of_scope_recall`` (the share of the
    out-of-scope intents' queries that fall back)."""
    import numpy as np

    from bot.training.evaluate import intent_report

    gold_a, pred_a, kept_a = np.asarray(gold), np.asarray(predicted), np.asarray(kept)
    in_scope = ~np.isin(gold_a, sorted(out_of_scope))
    report = intent_report(gold_a[in_scope].tolist(), pred_a[in_scope].tolist())
    out: dict[str, Any] = {
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "accuracy_with_fallback": round(float(np.mean(((pred_a == gold_a) & kept_a)[in_scope])), 4),
    }
    if out_of_scope:
        out["out_of_scope_intents"] = sorted(out_of_scope)
        out["in_scope_accuracy"] = out["accuracy_with_fallback"]
        out["out_of_scope_recall"] = round(float(np.mean(~kept_a[~in_scope])), 4)
    return out


def _latency(served: Any, sample: list[str]) -> dict[str, Any]:
    """Single-message ``parse`` latency of the served model (median, p95)."""
    import numpy as np

    served.parse(sample[0])
    timings = []
    for text in sample:
        t = time.perf_counter()
        served.parse(text)
        timings.append((time.perf_counter() - t) * 1000)
    return {
        "latency_ms_median": round(statistics.median(timings), 2),
        "latency_ms_p95": round(float(np.percentile(timings, 95)), 2),
        "latency_n": len(timings),
    }


# -- Rasa DIET peer ------------------------------------------------------------------------

RASA_CONFIG = """recipe: default.v1
language: en
assistant_id: clerk-benchmark-peer
pipeline:
  - name: WhitespaceTokenizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: DIETClassifier
    epochs: {epochs}
    constrain_similarities: true
    random_seed: 13
policies: []
"""


def _find_python310() -> str | None:
    for candidate in [
        shutil.which("python3.10"),
        *sorted(Path.home().glob(".pyenv/versions/3.10*/bin/python3.10")),
    ]:
        if not candidate:
            continue
        try:
            out = subprocess.run(
                [str(candidate), "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired):
            continue
        if out.returncode == 0 and "3.10" in out.stdout + out.stderr:
            return str(candidate)
    return None


def _rasa_yaml(data: Any, out: Path) -> int:
    """Write NLU data as Rasa training YAML; the number of examples written."""
    by_intent: dict[str, list[str]] = {}
    for e in data.examples:
        by_intent.setdefault(e.intent, []).append(e.text)
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in by_intent.items():
        lines += [f"- intent: {intent}", "  examples: |"]
        for t in texts:
            # Rasa would read [..](..) as entity annotations; banking77 has none
            lines.append("    - " + " ".join(t.replace("[", "(").replace("]", ")").split()))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sum(len(v) for v in by_intent.values())


#: Rasa's FallbackClassifier default threshold, applied to DIET's confidence.
RASA_FALLBACK_THRESHOLD = 0.3


RASA_VENV = Path.home() / ".cache" / "clerk" / "rasa-3.6"  # shared with benchmarks/load.py


def ensure_rasa_venv(venv: Path) -> Path | None:
    """``venv`` with Rasa Open Source 3.6.21 installed (created when missing); ``None``
    when no Python 3.10 is found."""
    rasa = venv / "bin" / "rasa"
    if rasa.exists():
        return venv
    python = _find_python310()
    if python is None:
        print("peer rasa: skipped - no Python 3.10 found (Rasa 3.6 needs it)")
        return None
    print(f"peer rasa: creating {venv} and installing rasa==3.6.21 (about 4 minutes)")
    subprocess.run([python, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "rasa==3.6.21"], check=True)
    return venv


def run_rasa(args: argparse.Namespace, scenario: str) -> dict | None:
    venv = ensure_rasa_venv(Path(args.rasa_venv))
    if venv is None:
        return None
    rasa = venv / "bin" / "rasa"
    work = Path(tempfile.mkdtemp(prefix="rasa-bench-"))
    (work / "data").mkdir()
    train, test, out_of_scope = scenario_data(scenario, Path(args.train), Path(args.test))
    _rasa_yaml(train, work / "data" / "nlu.yml")
    _rasa_yaml(test, work / "test.yml")
    (work / "config.yml").write_text(RASA_CONFIG.format(epochs=args.rasa_epochs))
    (work / "domain.yml").write_text('version: "3.1"\n')
    note = (
        ""
        if args.rasa_epochs >= 100
        else (f" (reduced from DIET's default 100 epochs to {args.rasa_epochs})")
    )
    print(f"peer rasa: training DIET, {args.rasa_epochs} epochs{note}", flush=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    cmd = [
        str(rasa),
        "train",
        "nlu",
        "--config",
        "config.yml",
        "--nlu",
        "data/nlu.yml",
        "--out",
        "models",
        "--fixed-model-name",
        "diet",
    ]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, check=False)
    train_seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        print(proc.stdout[-3000:], proc.stderr[-3000:])
        raise SystemExit("peer rasa: training failed")
    test = subprocess.run(
        [
            str(rasa),
            "test",
            "nlu",
            "--nlu",
            "test.yml",
            "--model",
            "models/diet.tar.gz",
            "--out",
            "results",
            "--no-plot",
            "--successes",
        ],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if test.returncode != 0:
        print(test.stdout[-3000:], test.stderr[-3000:])
        raise SystemExit("peer rasa: testing failed")
    rows = []
    for name in ("intent_successes.json", "intent_errors.json"):
        path = work / "results" / name
        if path.exists():
            rows += json.loads(path.read_text())
    latency = _rasa_latency(venv, work, args) if scenario == "full" else None
    shutil.rmtree(work, ignore_errors=True)
    return {
        "system": "rasa-3.6.21-diet",
        "scenario": scenario,
        "epochs": args.rasa_epochs,
        "train_examples": len(train.examples),
        **score(
            [r["intent"] for r in rows],
            [r["intent_prediction"]["name"] for r in rows],
            [float(r["intent_prediction"]["confidence"]) >= RASA_FALLBACK_THRESHOLD for r in rows],
            out_of_scope,
        ),
        "threshold": RASA_FALLBACK_THRESHOLD,
        "train_seconds": round(train_seconds, 1),
        "latency_ms_median": latency,
        "note": note.strip(" ()") or None,
    }


_RASA_LATENCY = """
import asyncio, json, statistics, sys, time
from rasa.core.agent import Agent
agent = Agent.load(sys.argv[1])
texts = json.loads(open(sys.argv[2]).read())
async def main():
    await agent.parse_message(texts[0])
    t = []
    for x in texts:
        s = time.perf_counter(); await agent.parse_message(x); t.append((time.perf_counter() - s) * 1000)
    print(json.dumps(statistics.median(t)))
asyncio.run(main())
"""


def _rasa_latency(venv: Path, work: Path, args: argparse.Namespace) -> float | None:
    with open(args.test, encoding="utf-8") as fh:
        texts = [r["text"] for r in csv.DictReader(fh)][: min(args.latency_n, 200)]
    (work / "texts.json").write_text(json.dumps(texts))
    (work / "latency.py").write_text(_RASA_LATENCY)
    proc = subprocess.run(
        [str(venv / "bin" / "python"), "latency.py", "models/diet.tar.gz", "texts.json"],
        cwd=work,
        capture_output=True,
        text=True,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
        check=False,
    )
    try:
        return round(float(proc.stdout.strip().splitlines()[-1]), 2)
    except (ValueError, IndexError):
        return None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--train", required=True)
    p.add_argument("--test", required=True)
    p.add_argument(
        "--config", default=None, help="a config.yml (default: Clerk's defaults, untuned)"
    )
    p.add_argument("--scenario", choices=SCENARIOS, action="append", default=[])
    p.add_argument("--precision", choices=("int8", "fp32"), default="int8")
    p.add_argument("--name", default=None, help="results file name (default: from --train)")
    p.add_argument("--latency-n", type=int, default=500)
    p.add_argument("--peer", choices=("rasa",), action="append", default=[])
    p.add_argument("--rasa-epochs", type=int, default=100)
    p.add_argument("--rasa-venv", default=str(RASA_VENV))
    p.add_argument("--skip-clerk", action="store_true", help="run only the peers")
    args = p.parse_args(argv)
    scenarios = args.scenario or list(SCENARIOS)
    name = args.name or Path(args.train).resolve().parent.name
    out = ROOT / "benchmarks" / "results" / f"nlu_{name}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    results: dict = {"runs": previous.get("runs", {})}  # a later run replaces its own entries
    results.update(
        {
            "dataset": name,
            "machine": {
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
    )
    runs: dict = results["runs"]

    def save() -> None:  # after each run, so a long peer run never loses the first figures
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=1) + "\n")

    for scenario in scenarios:
        if not args.skip_clerk:
            runs[f"clerk/{scenario}"] = run_clerk(args, scenario)
            print(json.dumps(runs[f"clerk/{scenario}"], indent=1), flush=True)
            save()
        if "rasa" in args.peer:
            rasa = run_rasa(args, scenario)
            if rasa is not None:
                runs[f"rasa/{scenario}"] = rasa
                print(json.dumps(rasa, indent=1), flush=True)
                save()
    print(table(runs))
    print(f"written to {out}")
    return 0


def _cell(run: dict, name: str, width: int, fmt: str = ".4f") -> str:
    value = run.get(name)
    return f"{value:>{width}{fmt}}" if isinstance(value, (int, float)) else f"{'-':>{width}}"


def table(runs: dict) -> str:
    """The runs as a text table."""
    head = (
        f"{'run':<18}{'accuracy':>9}{'w/ fallback':>12}{'in-scope':>9}{'OOS rec.':>9}"
        f"{'train s':>8}{'p50 ms':>8}{'p95 ms':>8}"
    )
    lines = [head]
    for key, r in runs.items():
        lines.append(
            f"{key:<18}{_cell(r, 'accuracy', 9)}{_cell(r, 'accuracy_with_fallback', 12)}"
            f"{_cell(r, 'in_scope_accuracy', 9)}{_cell(r, 'out_of_scope_recall', 9)}"
            f"{_cell(r, 'train_seconds', 8, '.0f')}{_cell(r, 'latency_ms_median', 8, '.2f')}"
            f"{_cell(r, 'latency_ms_p95', 8, '.2f')}"
        )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
