"""``clerk train | evaluate | tune | data validate | model list/show/activate``.

``register(subparsers, settings, progress_bar)`` adds the subcommands to the ``clerk``
parser; ``bot.cli`` calls it, passing its Settings loader and progress-bar factory, so this
module does not import the CLI (and nothing on the serving path imports this module).
Commands return an exit status; bad inputs raise ``ClerkError`` (printed by ``bot.cli``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

__all__ = ["register"]


def register(sub: Any, settings: Callable[[argparse.Namespace], Any],
             progress_bar: Callable[[], Any]) -> None:
    def data_args(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--data", help="training data folder (default: CLERK_DATA_DIR, "
                                      "training_data/)")
        g.add_argument("--nlu", action="append",
                       help="an NLU file: Rasa 3 nlu.yml or a text,label CSV (repeatable)")

    p = sub.add_parser("train", help="train the NLU model (versioned artifact)")
    data_args(p)
    p.add_argument("--config", dest="nlu_config",
                   help="config.yml with a clerk: nlu: section (default: <data>/config.yml)")
    p.add_argument("--out", help="write the artifact to this folder (not activated)")
    p.add_argument("--no-activate", action="store_true",
                   help="store the version without making it the active model")
    p.set_defaults(func=lambda a: cmd_train(a, settings(a), progress_bar))

    p = sub.add_parser("evaluate", help="evaluate a trained NLU model on test data")
    p.add_argument("--nlu", required=True, action="append",
                   help="test file: Rasa nlu.yml or text,label CSV (repeatable)")
    p.add_argument("--model", help="model folder (default: the active model)")
    p.add_argument("--out", help="report folder (default: <model>/evaluation)")
    p.set_defaults(func=lambda a: cmd_evaluate(a, settings(a)))

    p = sub.add_parser("tune", help="hyperparameter search (Optuna)")
    data_args(p)
    p.add_argument("--search", choices=("grid", "random", "bayes"), default="bayes")
    p.add_argument("--trials", type=int, default=20, help="trials run by this process")
    p.add_argument("--space", help="search space YAML (default: built-in)")
    p.add_argument("--metric", choices=("macro_f1", "accuracy"), default="macro_f1")
    p.add_argument("--folds", type=int, default=3,
                   help="k-fold cross-validation (1: one validation split)")
    p.add_argument("--config", dest="nlu_config",
                   help="base config.yml (default: <data>/config.yml)")
    p.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host/db")
    p.add_argument("--study", help="study name (share it across processes)")
    p.add_argument("--out", help="output folder (default: $CLERK_HOME/tuning/<study>)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--seed", type=int, default=13)
    p.set_defaults(func=lambda a: cmd_tune(a, settings(a)))

    p = sub.add_parser("data", help="training data commands")
    dsub = p.add_subparsers(dest="data_command", required=True)
    v = dsub.add_parser("validate", help="check training data before training")
    data_args(v)
    v.add_argument("--test", action="append", help="test file to check for overlap")
    v.add_argument("--min-examples", type=int, default=5)
    v.add_argument("--imbalance-ratio", type=float, default=10.0)
    v.add_argument("--json", action="store_true", help="print the findings as JSON")
    v.set_defaults(func=lambda a: cmd_validate(a, settings(a)))

    p = sub.add_parser("model", help="trained models: list, show, activate")
    msub = p.add_subparsers(dest="model_command", required=True)
    m = msub.add_parser("list", help="stored model versions; * marks the active one")
    m.set_defaults(func=lambda a: cmd_model_list(a, settings(a)))
    m = msub.add_parser("show", help="one model's data, config and figures")
    m.add_argument("version", nargs="?", default="active")
    m.set_defaults(func=lambda a: cmd_model_show(a, settings(a)))
    m = msub.add_parser("activate", help="make a stored version the active model")
    m.add_argument("version")
    m.set_defaults(func=lambda a: cmd_model_activate(a, settings(a)))


def _data_paths(args: argparse.Namespace, settings: Any) -> list[Path]:
    if getattr(args, "nlu", None):
        return [Path(p) for p in args.nlu]
    return [Path(args.data) if getattr(args, "data", None) else settings.data_dir]


def _config_path(args: argparse.Namespace, paths: list[Path], settings: Any) -> Path | None:
    if getattr(args, "nlu_config", None):
        return Path(args.nlu_config)
    for p in paths:
        if p.is_dir() and (p / "config.yml").is_file():
            return p / "config.yml"
    default = settings.data_dir / "config.yml"
    return default if default.is_file() else None


def _encoder(settings: Any) -> Any:
    from bot.nlu.encoder import Encoder

    return Encoder(cache_dir=settings.home / "encoder")


def _catalog(settings: Any) -> list[dict[str, Any]]:
    from bot.app import _catalog_settings, catalog_products

    return catalog_products(settings.knowledge_dir, _catalog_settings(settings))


def cmd_train(args: argparse.Namespace, settings: Any, progress_bar: Callable[[], Any]) -> int:
    from bot.training.train import load_config, load_training_data, train

    paths = _data_paths(args, settings)
    data = load_training_data(paths)
    config_file = _config_path(args, paths, settings)
    config, text = load_config(config_file)
    print(f"training on {len(data.examples)} examples of {len(data.intents)} intents "
          f"({', '.join(map(str, paths))}); config: {config_file or 'defaults'}")
    t = time.perf_counter()
    with progress_bar() as report:
        result = train(
            data, encoder=_encoder(settings), config=config, config_text=text,
            models_dir=settings.models_dir, out=Path(args.out) if args.out else None,
            catalog=_catalog(settings), sources=[str(p) for p in paths],
            activate_model=not args.no_activate, progress=report,
        )
    m = result.model.metrics
    print(f"model {result.version} written to {result.directory}"
          f"{' (active)' if result.active else ''} in {time.perf_counter() - t:.1f} s")
    figures = {k: m[k] for k in ("train_accuracy", "validation_accuracy", "calibrated_threshold")
               if k in m}
    print("  " + ", ".join(f"{k}: {v}" for k, v in figures.items()))
    return 0


def cmd_evaluate(args: argparse.Namespace, settings: Any) -> int:
    from bot.nlu.model import NLUModel
    from bot.training.evaluate import evaluate
    from bot.training.train import load_training_data

    model_dir = Path(args.model) if args.model else settings.models_dir / "nlu"
    data = load_training_data([Path(p) for p in args.nlu])
    model = NLUModel.load(model_dir, _encoder(settings))
    out = Path(args.out) if args.out else model_dir / "evaluation"
    t = time.perf_counter()
    result = evaluate(model, data, out)
    print(f"model {model.metrics.get('version', model_dir)} on {', '.join(args.nlu)} "
          f"({time.perf_counter() - t:.1f} s)")
    print(result.summary())
    return 0


def cmd_tune(args: argparse.Namespace, settings: Any) -> int:
    from bot.training.train import load_config, load_training_data
    from bot.training.tune import load_space, tune

    paths = _data_paths(args, settings)
    data = load_training_data(paths)
    base, _ = load_config(_config_path(args, paths, settings))
    space = load_space(args.space)
    study = args.study or f"clerk-{args.search}-{time.strftime('%Y%m%d-%H%M%S')}"
    out = Path(args.out) if args.out else settings.home / "tuning" / study
    print(f"tuning on {len(data.examples)} examples, {args.search} search, {args.trials} "
          f"trials, {f'{args.folds}-fold CV' if args.folds >= 2 else 'validation split'}, "
          f"metric {args.metric}, study {study!r}"
          f"{' in ' + _redact(args.storage) if args.storage else ''}")
    result = tune(
        data, encoder=_encoder(settings), base=base, space=space, search=args.search,
        trials=args.trials, metric=args.metric, folds=args.folds, storage=args.storage,
        study_name=study, seed=args.seed, catalog=_catalog(settings), out_dir=out,
        show_progress=True, timeout=args.timeout,
    )
    print(result.table())
    print(f"\nbest {args.metric}: {result.best_value:.4f} with {result.best_params}")
    for name, path in result.files.items():
        print(f"  {name}: {path}")
    print(f"train with it: clerk train --config {result.files['best_config']}")
    return 0


def _redact(url: str) -> str:
    import re

    return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", url)


def cmd_validate(args: argparse.Namespace, settings: Any) -> int:
    from bot.training.train import load_training_data
    from bot.training.validate import validate

    paths = _data_paths(args, settings)
    data = load_training_data(paths)
    test = load_training_data([Path(p) for p in args.test]) if args.test else None
    folder = next((p for p in paths if p.is_dir()), None)
    domain_file = dialogue = None
    if folder is not None and (folder / "domain.yml").is_file():
        domain_file = folder / "domain.yml"
        dialogue = [f for f in (folder / "rules.yml", folder / "stories.yml") if f.is_file()]
    report = validate(data, test=test, domain_file=domain_file, dialogue_files=dialogue or (),
                      min_examples=args.min_examples, imbalance_ratio=args.imbalance_ratio)
    if args.json:
        print(json.dumps({"ok": report.ok, "stats": report.stats,
                          "issues": [i.__dict__ for i in report.issues]}, indent=1))
    else:
        print(report.render())
    return 0 if report.ok else 1


def cmd_model_list(args: argparse.Namespace, settings: Any) -> int:
    from bot.training.train import list_models

    models = list_models(settings.models_dir)
    if not models:
        print(f"no models in {settings.models_dir}; run `clerk train`")
        return 0
    print(f"{'':2}{'version':<28}{'trained at':<26}{'examples':>9}{'intents':>8}  "
          f"{'head':<7}{'val acc':>8}{'test acc':>9}{'test F1':>8}")
    for m in models:
        def f(v: Any) -> str:
            return "" if v is None else f"{v:.4f}"

        print(f"{'*' if m.get('active') else ' ':2}{m['version']:<28}{m['trained_at'] or '':<26}"
              f"{m['train_size'] or 0:>9}{m['intents']:>8}  {m['classifier'] or '':<7}"
              f"{f(m.get('validation_accuracy')):>8}{f(m.get('test_accuracy')):>9}"
              f"{f(m.get('test_macro_f1')):>8}")
    return 0


def cmd_model_show(args: argparse.Namespace, settings: Any) -> int:
    from bot.training.train import show_model

    info = show_model(settings.models_dir, args.version)
    print(json.dumps(info, indent=1, default=str))
    return 0


def cmd_model_activate(args: argparse.Namespace, settings: Any) -> int:
    from bot.training.train import activate

    path = activate(settings.models_dir, args.version)
    print(f"model {args.version} is active ({path})")
    return 0
