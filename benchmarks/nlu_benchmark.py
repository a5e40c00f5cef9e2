"""NLU benchmark: train Clerk's NLU on a text,label CSV, score it on a held-out CSV.

    python benchmarks/nlu_benchmark.py --train ../shared/data/banking77/train.csv \
        --test ../shared/data/banking77/test.csv [--config benchmarks/banking77.yml] \
        [--peer rasa [--rasa-epochs N]]

Prints accuracy, macro-F1, training wall time, peak memory (max RSS of this process) and
single-sentence prediction latency (median and p95 of 500 ``parse`` calls on test
sentences, model loaded from its saved artifact as the server loads it, ONNX encoder).
The configuration was chosen by ``clerk tune`` on a split of the *training* file only;
the test file is read once, for the final figures.

``--peer rasa`` trains and tests Rasa Open Source 3.6 DIET on the same split, in a Python
3.10 virtualenv (created with ``python3.10 -m venv`` and ``pip install rasa==3.6.21`` when
missing; about 4 minutes). It is skipped with a message when no Python 3.10 is found.
DIET's default is 100 epochs at roughly 85-140 s each on two cores; ``--rasa-epochs``
sets a smaller count, which the output states.

Results are written to ``benchmarks/results/nlu_<name>.json``.
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

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def run_clerk(args: argparse.Namespace) -> dict:
    import numpy as np

    from bot.nlu.config import NLUConfig
    from bot.nlu.data import load_csv
    from bot.nlu.encoder import Encoder
    from bot.nlu.model import NLUModel
    from bot.training.evaluate import intent_report

    train = load_csv(args.train)
    config = NLUConfig.from_file(args.config)
    work = Path(tempfile.mkdtemp(prefix="clerk-bench-"))
    encoder = Encoder(cache_dir=work / "encoder")
    encoder.encode(["warm up"])  # the ONNX export is a one-off cost, not training
    print(
        f"training Clerk NLU on {len(train.examples)} examples "
        f"({len(train.intents)} intents), config {args.config}",
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
    served = NLUModel.load(work / "model", Encoder(cache_dir=work / "encoder"))

    test = load_csv(args.test)
    texts = [e.text for e in test.examples]
    gold = [e.intent for e in test.examples]
    probs = served.predict_proba(texts)
    predicted = [served.labels[i] for i in np.argmax(probs, axis=1)]
    report = intent_report(gold, predicted)

    sample = texts[: args.latency_n]
    served.parse(sample[0])
    timings = []
    for text in sample:
        t = time.perf_counter()
        served.parse(text)
        timings.append((time.perf_counter() - t) * 1000)
    shutil.rmtree(work, ignore_errors=True)
    return {
        "system": "clerk",
        "config": config.to_dict(),
        "train_examples": len(train.examples),
        "test_examples": len(texts),
        "accuracy": round(report["accuracy"], 4),
        "macro_f1": round(report["macro_f1"], 4),
        "train_seconds": round(train_seconds, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 0),
        "latency_ms_median": round(statistics.median(timings), 2),
        "latency_ms_p95": round(float(np.percentile(timings, 95)), 2),
        "latency_n": len(timings),
        "validation_accuracy": model.metrics.get("validation_accuracy"),
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


def _csv_to_rasa(path: Path, out: Path) -> int:
    by_intent: dict[str, list[str]] = {}
    with open(path, encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            label = row.get("label") or row.get("category") or row.get("intent")
            by_intent.setdefault(label, []).append(row["text"])
    lines = ['version: "3.1"', "nlu:"]
    for intent, texts in by_intent.items():
        lines += [f"- intent: {intent}", "  examples: |"]
        for t in texts:
            # Rasa would read [..](..) as entity annotations; banking77 has none
            lines.append("    - " + " ".join(t.replace("[", "(").replace("]", ")").split()))
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return sum(len(v) for v in by_intent.values())


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


def run_rasa(args: argparse.Namespace) -> dict | None:
    venv = ensure_rasa_venv(Path(args.rasa_venv))
    if venv is None:
        return None
    rasa = venv / "bin" / "rasa"
    work = Path(tempfile.mkdtemp(prefix="rasa-bench-"))
    (work / "data").mkdir()
    _csv_to_rasa(Path(args.train), work / "data" / "nlu.yml")
    _csv_to_rasa(Path(args.test), work / "test.yml")
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
    report = json.loads((work / "results" / "intent_report.json").read_text())
    latency = _rasa_latency(venv, work, args)
    shutil.rmtree(work, ignore_errors=True)
    accuracy = report.get("accuracy", report.get("micro avg", {}).get("f1-score"))
    return {
        "system": "rasa-3.6.21-diet",
        "epochs": args.rasa_epochs,
        "accuracy": round(float(accuracy), 4),
        "macro_f1": round(float(report["macro avg"]["f1-score"]), 4),
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
    p.add_argument("--config", default=str(ROOT / "benchmarks" / "banking77.yml"))
    p.add_argument("--name", default=None, help="results file name (default: from --train)")
    p.add_argument("--latency-n", type=int, default=500)
    p.add_argument("--peer", choices=("rasa",), action="append", default=[])
    p.add_argument("--rasa-epochs", type=int, default=100)
    p.add_argument("--rasa-venv", default=str(RASA_VENV))
    p.add_argument("--skip-clerk", action="store_true", help="run only the peers")
    args = p.parse_args(argv)
    name = args.name or Path(args.train).resolve().parent.name
    results: dict = {
        "dataset": name,
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    out = ROOT / "benchmarks" / "results" / f"nlu_{name}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}

    def save() -> None:  # after each system, so a long peer run never loses the first figures
        merged = dict(results)
        for key in ("clerk", "rasa"):  # keep the other system's figures from an earlier run
            if key not in merged and key in previous:
                merged[key] = previous[key]
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(merged, indent=1) + "\n")
        results.update(merged)

    if not args.skip_clerk:
        clerk = run_clerk(args)
        results["clerk"] = clerk
        print(json.dumps(clerk, indent=1), flush=True)
        save()
    if "rasa" in args.peer:
        rasa = run_rasa(args)
        if rasa is not None:
            results["rasa"] = rasa
            print(json.dumps(rasa, indent=1))
    save()
    print(f"\n{'system':<22}{'accuracy':>9}{'macro F1':>9}{'train s':>9}{'latency ms':>11}")
    for key in ("clerk", "rasa"):
        r = results.get(key)
        if r:
            print(
                f"{r['system']:<22}{r['accuracy']:>9.4f}{r['macro_f1']:>9.4f}"
                f"{r['train_seconds']:>9.0f}{(r.get('latency_ms_median') or float('nan')):>11.2f}"
            )
    print(f"written to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
