"""``clerk train | evaluate | tune | test | data validate | model list/show/activate``.

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


def register(
    sub: Any, settings: Callable[[argparse.Namespace], Any], progress_bar: Callable[[], Any]
) -> None:
    def data_args(p: argparse.ArgumentParser) -> None:
        g = p.add_mutually_exclusive_group()
        g.add_argument("--data", help="training data folder (default: the project's NLU files)")
        g.add_argument(
            "--nlu",
            action="append",
            help="an NLU file: Rasa 3 nlu.yml or a text,label CSV (repeatable)",
        )

    p = sub.add_parser("train", help="train the NLU model (versioned artifact)")
    data_args(p)
    p.add_argument(
        "--config",
        dest="nlu_config",
        help="config.yml with a clerk: nlu: section (default: <data>/config.yml)",
    )
    p.add_argument("--out", help="write the artifact to this folder (not activated)")
    p.add_argument(
        "--no-activate",
        action="store_true",
        help="store the version without making it the active model",
    )
    p.add_argument(
        "--tune",
        metavar="DURATION",
        type=_duration,
        help="first search the NLU settings (bayes search over the default space of "
        "`clerk tune`, cross-validated on the same data, starting from the config) for "
        "DURATION (90s, 10m, 1h30m or seconds), then train with the best config found. "
        "No trial starts after DURATION; one in progress finishes",
    )
    p.set_defaults(func=lambda a: cmd_train(a, settings(a), progress_bar))

    p = sub.add_parser("evaluate", help="evaluate a trained NLU model on test data")
    p.add_argument(
        "--nlu",
        required=True,
        action="append",
        help="test file: Rasa nlu.yml or text,label CSV (repeatable)",
    )
    p.add_argument("--model", help="model folder (default: the active model)")
    p.add_argument("--out", help="report folder (default: <model>/evaluation)")
    p.set_defaults(func=lambda a: cmd_evaluate(a, settings(a)))

    p = sub.add_parser("tune", help="hyperparameter search (Optuna)")
    data_args(p)
    p.add_argument("--search", choices=("grid", "random", "bayes"), default="bayes")
    p.add_argument("--trials", type=int, default=20, help="trials run by this process")
    p.add_argument("--space", help="search space YAML (default: built-in)")
    p.add_argument("--metric", choices=("macro_f1", "accuracy"), default="macro_f1")
    p.add_argument(
        "--folds", type=int, default=3, help="k-fold cross-validation (1: one validation split)"
    )
    p.add_argument(
        "--config", dest="nlu_config", help="base config.yml (default: <data>/config.yml)"
    )
    p.add_argument("--storage", help="Optuna storage URL, e.g. postgresql://user@host/db")
    p.add_argument("--study", help="study name (share it across processes)")
    p.add_argument("--out", help="output folder (default: $CLERK_HOME/tuning/<study>)")
    p.add_argument("--timeout", type=float, help="stop starting trials after this many seconds")
    p.add_argument("--seed", type=int, default=13)
    p.set_defaults(func=lambda a: cmd_tune(a, settings(a)))

    p = sub.add_parser(
        "test",
        help="run the project's test stories (and NLU tests), like "
        "`rasa test`; exit 1 when a story fails",
    )
    test_args(p, None)
    tsub = p.add_subparsers(dest="test_command")
    for name, what in (
        ("core", "test stories only"),
        ("nlu", "NLU only: tests/nlu*.yml, else cross-validation"),
    ):
        test_args(tsub.add_parser(name, help=what), argparse.SUPPRESS)
    p.set_defaults(func=lambda a: cmd_test(a, settings(a), progress_bar))

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


def _duration(text: str) -> float:
    """``--tune``'s argument in seconds (``bot.training.tune.parse_duration``)."""
    from bot.training.tune import parse_duration

    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _explicit_data(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "nlu", None) or getattr(args, "data", None))


def _project(args: argparse.Namespace, settings: Any) -> Any:
    """The project; with ``--nlu``/``--data`` given, ``None`` where there is none (the data
    named on the command line is all a run needs)."""
    from bot.errors import ProjectNotFound

    try:
        return settings.project
    except ProjectNotFound:
        if _explicit_data(args):
            return None
        raise


def test_args(p: argparse.ArgumentParser, default: Any) -> None:
    """``clerk test``'s options, on ``test`` and on its subcommands (``default``
    SUPPRESS there, so an option given before the subcommand is kept)."""
    p.add_argument(
        "--stories",
        action="append",
        default=default,
        help="test stories file or folder (repeatable; default: "
        "tests/test_*.yml and tests/**/test_*.yml)",
    )
    p.add_argument(
        "--nlu",
        action="append",
        default=default,
        help="NLU test file (repeatable; default: tests/nlu*.yml)",
    )
    p.add_argument(
        "--folds",
        type=int,
        default=default,
        help="cross-validation folds when there is no NLU test file (default 5)",
    )
    p.add_argument(
        "--model",
        default=default,
        help="NLU model folder for the NLU tests (default: the active model)",
    )
    p.add_argument("--out", default=default, help="report folder (default: results/)")


def _data_paths(args: argparse.Namespace, settings: Any) -> list[Path]:
    """``--nlu FILE``s, else ``--data DIR``, else the project's NLU files."""
    if getattr(args, "nlu", None):
        return [Path(p) for p in args.nlu]
    if getattr(args, "data", None):
        return [Path(args.data)]
    return list(settings.project.nlu_files)


def _config_path(args: argparse.Namespace, paths: list[Path], settings: Any) -> Path | None:
    if getattr(args, "nlu_config", None):
        return Path(args.nlu_config)
    for p in paths:
        if p.is_dir() and (p / "config.yml").is_file():
            return p / "config.yml"
    project = _project(args, settings)
    return project.config_file if project else None


def _encoder(settings: Any) -> Any:
    """The NLU's encoder, as serving builds it."""
    from bot.app import nlu_encoder

    return nlu_encoder(settings)


def _catalog(args: argparse.Namespace, settings: Any) -> list[dict[str, Any]]:
    from bot.app import catalog_products, catalog_spec

    project = _project(args, settings)
    return catalog_products(project.knowledge_dir, catalog_spec(settings)) if project else []


def cmd_train(args: argparse.Namespace, settings: Any, progress_bar: Callable[[], Any]) -> int:
    from bot.training.train import load_config, load_training_data, train

    paths = _data_paths(args, settings)
    data = load_training_data(paths)
    config_file = _config_path(args, paths, settings)
    config, text = load_config(config_file)
    print(
        f"training on {len(data.examples)} examples of {len(data.intents)} intents "
        f"({', '.join(map(str, paths))}); config: {config_file or 'defaults'}"
    )
    for note in _config_notes(text):
        print(f"  config: {note}")
    encoder = _encoder(settings)
    catalog = _catalog(args, settings)
    tuned = None
    if getattr(args, "tune", None) is not None:
        config, tuned = _tune_before_training(data, config, encoder, catalog, args.tune)
    t = time.perf_counter()
    with progress_bar() as report:
        result = train(
            data,
            encoder=encoder,
            config=config,
            config_text=text,
            models_dir=settings.models_dir,
            out=Path(args.out) if args.out else None,
            catalog=catalog,
            sources=[str(p) for p in paths],
            activate_model=not args.no_activate,
            progress=report,
            tuned=tuned,
        )
    m = result.model.metrics
    print(
        f"model {result.version} written to {result.directory}"
        f"{' (active)' if result.active else ''} in {time.perf_counter() - t:.1f} s"
    )
    figures = {
        k: m[k] for k in ("train_accuracy", "validation_accuracy", "calibrated_threshold") if k in m
    }
    print("  " + ", ".join(f"{k}: {v}" for k, v in figures.items()))
    if tuned is not None:
        from bot.training.train import TUNED_CONFIG

        print(f"  tuned config: {result.directory / TUNED_CONFIG}")
        project = _project(args, settings)
        target = project.config_file if project and project.config_file else None
        if tuned["changed"] or config_file != target:
            print(
                f"  to keep it, copy its clerk: nlu: section into {target or 'config.yml'}: "
                "`clerk serve` and `clerk test` retrain the active model when the project's "
                "config.yml differs from the config it was trained with"
            )
    return 0


#: the metric and search ``clerk train --tune`` uses; trials are bounded by time only
TRAIN_TUNE_METRIC = "macro_f1"
TRAIN_TUNE_FOLDS = 3
TRAIN_TUNE_TRIALS = 1_000_000


def _tune_before_training(
    data: Any, base: Any, encoder: Any, catalog: list[dict[str, Any]], budget: float
) -> tuple[Any, dict[str, Any]]:
    """``clerk train --tune``: a bayes search over the default space, starting from
    ``base``, for ``budget`` seconds; the best config and the record of the search."""
    from bot.training.tune import fold_count, load_space, trial_line, tune

    metric = TRAIN_TUNE_METRIC
    folds = fold_count(data, TRAIN_TUNE_FOLDS)
    print(_tune_banner(len(data.examples), "bayes", f"trials for {budget:g} s", folds, metric))
    started = time.perf_counter()
    result = tune(
        data,
        encoder=encoder,
        base=base,
        space=load_space(None),
        search="bayes",
        trials=TRAIN_TUNE_TRIALS,
        metric=metric,
        folds=folds,
        catalog=catalog,
        timeout=budget,
        on_trial=lambda row: print("  " + trial_line(row, metric)),
        start_from_base=True,
    )
    seconds = time.perf_counter() - started
    before, after = base.to_dict(), result.best_config.to_dict()
    changed = {k: [before[k], after[k]] for k in after if after[k] != before.get(k)}
    completed = sum(row["state"] == "COMPLETE" for row in result.trials)
    scored = f"{_folds_text(folds)} {metric} {result.best_value:.4f}"
    if not changed:
        what = f"the starting config scored best ({scored})"
    else:
        what = "; ".join(f"{k} {_show(old)} -> {_show(new)}" for k, (old, new) in changed.items())
        if result.base_value is not None:
            what += f" ({scored} vs {result.base_value:.4f} for the starting config)"
        else:
            what += f" ({scored}; the starting config lies outside the search space: not scored)"
    print(f"best of {len(result.trials)} trials ({completed} completed) in {seconds:.1f} s: {what}")
    record = {
        "budget_s": budget,
        "seconds": round(seconds, 2),
        "search": "bayes",
        "metric": metric,
        "folds": folds,
        "trials": len(result.trials),
        "completed": completed,
        "best_score": result.best_value,
        "base_score": result.base_value,
        "changed": changed,
    }
    return result.best_config, record


def _show(value: Any) -> str:
    if isinstance(value, list | tuple):
        return "+".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _folds_text(folds: int) -> str:
    return f"{folds}-fold CV" if folds >= 2 else "validation split"


def _tune_banner(examples: int, search: str, trials: str, folds: int, metric: str) -> str:
    return (
        f"tuning on {examples} examples, {search} search, {trials}, "
        f"{_folds_text(folds)}, metric {metric}"
    )


def _config_notes(text: str) -> list[str]:
    """What of a Rasa config.yml Clerk ignores (``bot.nlu.config.rasa_config_notes``)."""
    import yaml

    from bot.nlu.config import rasa_config_notes

    data = yaml.safe_load(text) if text else None
    return rasa_config_notes(data) if isinstance(data, dict) else []


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
    print(
        f"model {model.metrics.get('version', model_dir)} on {', '.join(args.nlu)} "
        f"({time.perf_counter() - t:.1f} s)"
    )
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
    print(
        _tune_banner(
            len(data.examples), args.search, f"{args.trials} trials", args.folds, args.metric
        )
        + f", study {study!r}{' in ' + _redact(args.storage) if args.storage else ''}"
    )
    result = tune(
        data,
        encoder=_encoder(settings),
        base=base,
        space=space,
        search=args.search,
        trials=args.trials,
        metric=args.metric,
        folds=args.folds,
        storage=args.storage,
        study_name=study,
        seed=args.seed,
        catalog=_catalog(args, settings),
        out_dir=out,
        show_progress=True,
        timeout=args.timeout,
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


def _validation_domain(
    args: argparse.Namespace, paths: list[Path], settings: Any
) -> tuple[Path | None, list[Path]]:
    """The domain and rule/story files to check the NLU data against: the project's, or
    those in a ``--data`` folder of the repository's layout (none for ``--nlu`` files)."""
    if not _explicit_data(args):
        project = settings.project
        return project.domain, list(project.dialogue_files)
    folder = next((p for p in paths if p.is_dir()), None)
    if folder is None or not (folder / "domain.yml").is_file():
        return None, []
    return folder / "domain.yml", [
        f for f in (folder / "rules.yml", folder / "stories.yml") if f.is_file()
    ]


def cmd_validate(args: argparse.Namespace, settings: Any) -> int:
    from bot.training.train import load_training_data
    from bot.training.validate import validate

    paths = _data_paths(args, settings)
    data = load_training_data(paths)
    test = load_training_data([Path(p) for p in args.test]) if args.test else None
    domain_file, dialogue = _validation_domain(args, paths, settings)
    report = validate(
        data,
        test=test,
        domain_file=domain_file,
        dialogue_files=dialogue,
        min_examples=args.min_examples,
        imbalance_ratio=args.imbalance_ratio,
    )
    if args.json:
        print(
            json.dumps(
                {
                    "ok": report.ok,
                    "stats": report.stats,
                    "issues": [i.__dict__ for i in report.issues],
                },
                indent=1,
            )
        )
    else:
        print(report.render())
    return 0 if report.ok else 1


def cmd_model_list(args: argparse.Namespace, settings: Any) -> int:
    from bot.training.train import list_models

    models = list_models(settings.models_dir)
    if not models:
        print(f"no models in {settings.models_dir}; run `clerk train`")
        return 0
    print(
        f"{'':2}{'version':<28}{'trained at':<26}{'examples':>9}{'intents':>8}  "
        f"{'head':<7}{'val acc':>8}{'test acc':>9}{'test F1':>8}"
    )
    for m in models:

        def f(v: Any) -> str:
            return "" if v is None else f"{v:.4f}"

        print(
            f"{'*' if m.get('active') else ' ':2}{m['version']:<28}{m['trained_at'] or '':<26}"
            f"{m['train_size'] or 0:>9}{m['intents']:>8}  {m['classifier'] or '':<7}"
            f"{f(m.get('validation_accuracy')):>8}{f(m.get('test_accuracy')):>9}"
            f"{f(m.get('test_macro_f1')):>8}"
        )
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


# ----------------------------------------------------------------------------- clerk test
#
# `clerk test` = the test stories, plus the NLU evaluation when the project has NLU test
# files (cheap); `clerk test core` = stories only; `clerk test nlu` = NLU only, on the test
# files, or by cross-validation (trains a model per fold) when there are none.


def _story_paths(args: argparse.Namespace, settings: Any) -> list[Path]:
    if not getattr(args, "stories", None):
        return list(settings.project.test_files)
    out: list[Path] = []
    for given in map(Path, args.stories):
        if given.is_dir():
            out += sorted(p for ext in ("yml", "yaml") for p in given.glob(f"**/test_*.{ext}"))
        else:
            out.append(given)
    return out


def cmd_test(args: argparse.Namespace, settings: Any, progress_bar: Callable[[], Any]) -> int:
    project = settings.project
    root = project.root
    which = getattr(args, "test_command", None) or "all"
    out = Path(args.out) if getattr(args, "out", None) else root / "results"
    status = 0
    if which in ("all", "core"):
        status = _test_core(_story_paths(args, settings), settings, out, progress_bar)
    if which in ("all", "nlu"):
        nlu_files = (
            [Path(p) for p in args.nlu]
            if getattr(args, "nlu", None)
            else list(project.nlu_test_files)
        )
        if nlu_files or which == "nlu":
            _test_nlu(args, nlu_files, settings, out / "nlu")
        else:
            print("NLU: no tests/nlu*.yml; `clerk test nlu` cross-validates instead")
    return status


def _test_core(files: list[Path], settings: Any, out: Path, progress_bar: Callable[[], Any]) -> int:
    """Play the stories against the prepared bot, on a copy of its database."""
    import asyncio

    from bot.app import build, make_encoder, prepare
    from bot.errors import DataError
    from bot.training.story_test import (
        isolated_settings,
        load_test_stories,
        run_story_tests,
        write_report,
    )

    if not files:
        raise DataError("no test stories: add tests/test_*.yml or pass --stories PATH")
    stories = load_test_stories(files)
    encoder = make_encoder(settings)  # the bot's: prepare and build derive the NLU's from it
    with progress_bar() as report:
        prepared = prepare(settings, report, encoder=encoder)
    if settings.action_endpoint:
        print(
            f"note: the store actions run in process on a copy of the database, not on "
            f"the action server {settings.action_endpoint}"
        )
    with isolated_settings(settings) as test_settings:
        parts = build(test_settings, encoder=encoder, nlu=prepared.get("nlu"))

        async def play() -> Any:
            try:
                return await run_story_tests(parts.manager, stories)
            finally:
                await parts.actions.aclose()

        try:
            result = asyncio.run(play())
        finally:
            parts.manager.close()
            parts.db.dispose()
    write_report(result, out)
    print(f"{len(stories)} test stories from {', '.join(map(str, files))}")
    print(result.render())
    return 1 if result.failed else 0


def _test_nlu(args: argparse.Namespace, files: list[Path], settings: Any, out: Path) -> None:
    """``evaluate`` on the test files, or k-fold cross-validation on the training data."""
    from bot.nlu.model import NLUModel
    from bot.training.evaluate import cross_validate, evaluate
    from bot.training.train import load_config, load_training_data

    encoder = _encoder(settings)
    if files:
        model_dir = (
            Path(args.model) if getattr(args, "model", None) else settings.models_dir / "nlu"
        )
        model = NLUModel.load(model_dir, encoder)
        result = evaluate(model, load_training_data(files), out)
        print(
            f"NLU: model {model.metrics.get('version', model_dir)} on {', '.join(map(str, files))}"
        )
        print(result.summary())
        return
    paths = list(settings.project.nlu_files)
    data = load_training_data(paths)
    config, _ = load_config(_config_path(args, paths, settings))
    folds = getattr(args, "folds", None) or 5
    catalog = _catalog(args, settings)
    print(
        f"NLU: {folds}-fold cross-validation on {len(data.examples)} examples "
        f"({', '.join(map(str, paths))})"
    )

    def train_model(train_data: Any) -> Any:
        return NLUModel.train(train_data, encoder=encoder, catalog=catalog, config=config)

    results, mean = cross_validate(data, train_model, folds=folds, out_dir=out)
    for k, r in enumerate(results, start=1):
        print(f"fold {k}: accuracy {r.report['accuracy']:.4f}  macro F1 {r.report['macro_f1']:.4f}")
    print(
        f"mean: accuracy {mean['accuracy']:.4f}  macro F1 {mean['macro_f1']:.4f}  "
        f"(reports in {out})"
    )
