"""Hyperparameter search over ``NLUConfig`` with Optuna (``clerk tune``).

Search space (YAML or a mapping), one entry per ``clerk.nlu`` key::

    C: {low: 0.5, high: 50, log: true}        # float range (int when low/high are ints)
    mlp_hidden: {low: 0, high: 512, step: 128} # int range with a step
    classifier: [logreg, mlp]                  # a list: categorical
    featurizers: ["minilm+tfidf_word+tfidf_char", "minilm"]   # "+"-joined lists

``grid`` search needs every entry to be a list or an int range with ``step``; the grid is
their product and the search stops when it is exhausted (``--trials`` caps it).
``random`` and ``bayes`` (Optuna's TPE) run the requested trials.

Evaluation: ``folds >= 2`` is stratified k-fold cross-validation; after each fold the mean
so far is reported and Optuna's median pruner stops trials that are behind the median of
earlier trials at the same fold. ``folds == 1`` is a single stratified validation split
(``validation_fraction``), which cannot prune. Sentence embeddings are computed once per
text for the whole study (``CachingEncoder``).

``start_from_base`` enqueues ``base`` itself as the first trial (when each of its values
lies in the space; not for ``grid``), so the best configuration found is never worse on
the same folds than the one the search started from, and ``TuneResult.base_value`` is that
configuration's score.

``clerk train --tune DURATION`` runs a bayes search on the default space for at most that
long (``parse_duration``), with as many folds as the data allows (``fold_count``).

With a ``storage`` URL (``postgresql://...``, ``sqlite:///...``) processes on several
machines share one study by name: each runs its ``trials``, Optuna hands out different
parameters, and all see each other's results.
"""

from __future__ import annotations

import csv
import dataclasses
import itertools
import math
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ConfigError
from bot.nlu.config import NLUConfig
from bot.nlu.data import NLUData
from bot.nlu.fit import validation_split
from bot.nlu.model import NLUModel

__all__ = [
    "DEFAULT_SPACE",
    "CachingEncoder",
    "SearchSpace",
    "TuneResult",
    "fold_count",
    "grid_points",
    "load_space",
    "parse_duration",
    "trial_line",
    "tune",
]

SEARCHES = ("grid", "random", "bayes")
METRICS = ("macro_f1", "accuracy")

DEFAULT_SPACE: dict[str, Any] = {
    "C": {"low": 1.0, "high": 100.0, "log": True},
    "embedding_weight": {"low": 0.5, "high": 4.0},
    "char_ngram_max": [4, 5, 6],
    "featurizers": ["minilm+tfidf_word+tfidf_char", "minilm+tfidf_char", "minilm"],
}


_DURATION = re.compile(r"(?:(\d+(?:\.\d+)?)h)?(?:(\d+(?:\.\d+)?)m)?(?:(\d+(?:\.\d+)?)s)?")


def parse_duration(text: str) -> float:
    """Seconds in ``text``: ``"90s"``, ``"10m"``, ``"1h"``, ``"1h30m"`` (hours, minutes,
    seconds in that order, each optional) or plain seconds (``"600"``). ``ValueError``,
    with a message for the user, for anything else and for a duration that is not > 0."""
    s = text.strip().lower()
    try:
        seconds = float(s)
    except ValueError:
        match = _DURATION.fullmatch(s)
        if not s or match is None:
            raise ValueError(
                f"{text!r} is not a duration: use e.g. 90s, 10m, 1h, 1h30m or plain seconds"
            ) from None
        hours, minutes, secs = (float(g) if g else 0.0 for g in match.groups())
        seconds = hours * 3600 + minutes * 60 + secs
    if not math.isfinite(seconds) or seconds <= 0:
        raise ValueError(f"a duration must be more than 0 seconds, got {text!r}")
    return seconds


def fold_count(data: NLUData, wanted: int) -> int:
    """The most cross-validation folds, up to ``wanted``, that ``data`` allows: stratified
    k-fold needs k examples of every intent. 1 (one validation split) below 2."""
    smallest = min(data.intent_counts().values(), default=0)
    k = min(wanted, smallest)
    return k if k >= 2 else 1


class CachingEncoder:
    """An ``Encoder`` that remembers each text's vector (one study encodes a text once)."""

    def __init__(self, encoder: Any) -> None:
        self.inner = encoder
        self.model_path = encoder.model_path
        self.cache_dir = getattr(encoder, "cache_dir", None)
        self._cache: dict[str, np.ndarray] = {}

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def encode(self, texts: list[str], **kwargs: Any) -> np.ndarray:
        missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            for t, v in zip(missing, self.inner.encode(missing, **kwargs), strict=True):
                self._cache[t] = v
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._cache[t] for t in texts]).astype(np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # categorical | int | float
    choices: tuple[Any, ...] = ()
    low: float = 0.0
    high: float = 0.0
    step: float | None = None
    log: bool = False


@dataclass(frozen=True)
class SearchSpace:
    params: tuple[Param, ...]

    def suggest(self, trial: Any) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for p in self.params:
            if p.kind == "categorical":
                out[p.name] = trial.suggest_categorical(p.name, list(p.choices))
            elif p.kind == "int":
                out[p.name] = trial.suggest_int(
                    p.name, int(p.low), int(p.high), step=int(p.step or 1), log=p.log
                )
            else:
                out[p.name] = trial.suggest_float(p.name, p.low, p.high, step=p.step, log=p.log)
        return out

    def point_of(self, config: NLUConfig) -> dict[str, Any] | None:
        """``config``'s values of the space's parameters, as ``suggest`` would give them;
        ``None`` when one lies outside the space."""
        values = config.to_dict()
        point: dict[str, Any] = {}
        for p in self.params:
            value = values[p.name]
            if p.kind == "categorical":
                same = [c for c in p.choices if _same(_as_config_value(p.name, c), value)]
                if not same:
                    return None
                point[p.name] = same[0]
                continue
            if isinstance(value, bool) or not isinstance(value, int | float):
                return None
            if not p.low <= value <= p.high:
                return None
            offset = (value - p.low) / p.step if p.step else 0.0
            if abs(offset - round(offset)) > 1e-9:
                return None
            if p.kind == "int":
                if value != int(value):
                    return None
                point[p.name] = int(value)
            else:
                point[p.name] = float(value)
        return point

    def grid(self) -> dict[str, list[Any]]:
        """Every parameter's grid values; ``ConfigError`` for a continuous range."""
        grid: dict[str, list[Any]] = {}
        for p in self.params:
            if p.kind == "categorical":
                grid[p.name] = list(p.choices)
            elif p.kind == "int":
                grid[p.name] = list(range(int(p.low), int(p.high) + 1, int(p.step or 1)))
            elif p.step is not None:
                n = round((p.high - p.low) / p.step)
                grid[p.name] = [round(p.low + k * p.step, 10) for k in range(n + 1)]
            else:
                raise ConfigError(
                    f"space.{p.name}", "grid search needs a list of values or a range with a step"
                )
        return grid


def load_space(source: str | Path | Mapping[str, Any] | None) -> SearchSpace:
    """Parse a search space (file path, mapping, or ``None`` for ``DEFAULT_SPACE``)."""
    import yaml

    if source is None:
        raw: Any = DEFAULT_SPACE
    elif isinstance(source, Mapping):
        raw = source
    else:
        path = Path(source)
        try:
            raw = yaml.safe_load(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError("space", f"{path} not found") from None
        except yaml.YAMLError as exc:
            raise ConfigError("space", f"{path}: malformed YAML ({exc})") from None
    if not isinstance(raw, Mapping) or not raw:
        raise ConfigError("space", "the search space must be a non-empty mapping")
    known = {f.name for f in NLUConfig.__dataclass_fields__.values()}
    params = []
    for name, spec in raw.items():
        if name not in known:
            raise ConfigError(f"space.{name}", f"not a clerk.nlu setting ({sorted(known)})")
        if isinstance(spec, list):
            if not spec:
                raise ConfigError(f"space.{name}", "empty list of choices")
            params.append(Param(name, "categorical", tuple(spec)))
        elif isinstance(spec, Mapping) and "values" in spec:
            params.append(Param(name, "categorical", tuple(spec["values"])))
        elif isinstance(spec, Mapping) and "low" in spec and "high" in spec:
            low, high = spec["low"], spec["high"]
            if not high >= low:
                raise ConfigError(f"space.{name}", "high must be >= low")
            is_int = (
                isinstance(low, int)
                and isinstance(high, int)
                and not isinstance(spec.get("step", 1), float)
            )
            params.append(
                Param(
                    name,
                    "int" if is_int else "float",
                    (),
                    float(low),
                    float(high),
                    spec.get("step"),
                    bool(spec.get("log", False)),
                )
            )
        else:
            raise ConfigError(
                f"space.{name}", "use a list of values or a mapping with low/high (step, log)"
            )
    return SearchSpace(tuple(params))


def grid_points(space: SearchSpace) -> list[dict[str, Any]]:
    grid = space.grid()
    names = list(grid)
    return [dict(zip(names, combo, strict=True)) for combo in itertools.product(*grid.values())]


def _as_config_value(name: str, value: Any) -> Any:
    """A space value as the config holds it (``"a+b"`` featurizers are a list)."""
    if name == "featurizers" and isinstance(value, str):
        return [v.strip() for v in value.split("+")]
    return value


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, list | tuple) or isinstance(b, list | tuple):
        return isinstance(a, list | tuple) and isinstance(b, list | tuple) and list(a) == list(b)
    return bool(a == b)


def _config_with(base: NLUConfig, params: Mapping[str, Any]) -> NLUConfig:
    values = base.to_dict()
    for key, value in params.items():
        values[key] = _as_config_value(key, value)
    return NLUConfig.from_dict(values)


def _score(gold: Sequence[str], predicted: Sequence[str], metric: str) -> float:
    from sklearn.metrics import f1_score

    if metric == "accuracy":
        return float(np.mean(np.asarray(gold) == np.asarray(predicted)))
    return float(f1_score(list(gold), list(predicted), average="macro", zero_division=0))


def _subset(data: NLUData, rows: Sequence[int]) -> NLUData:
    return NLUData(tuple(data.examples[i] for i in rows), data.synonyms, data.lookups, data.regexes)


@dataclass
class TuneResult:
    best_params: dict[str, Any]
    best_value: float
    best_config: NLUConfig
    trials: list[dict[str, Any]] = field(default_factory=list)
    files: dict[str, Path] = field(default_factory=dict)
    #: the score of the configuration the search started from (``start_from_base``)
    base_value: float | None = None

    def table(self) -> str:
        names = sorted({k for t in self.trials for k in t["params"]})
        head = ["#", "state", "value", "seconds", *names]
        rows = [head]
        for t in self.trials:
            rows.append(
                [
                    str(t["number"]),
                    t["state"],
                    "" if t["value"] is None else f"{t['value']:.4f}",
                    "" if t["seconds"] is None else f"{t['seconds']:.1f}",
                    *[_fmt(t["params"].get(n)) for n in names],
                ]
            )
        widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
        return "\n".join(
            "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) for r in rows
        )


def trial_line(row: Mapping[str, Any], metric: str = "macro_f1") -> str:
    """One trial (a row of ``TuneResult.trials``, as ``on_trial`` gets it) on one line."""
    value = "" if row["value"] is None else f" {metric} {row['value']:.4f}"
    seconds = "" if row["seconds"] is None else f" in {row['seconds']:.1f} s"
    params = " ".join(f"{k}={_fmt(v)}" for k, v in sorted(row["params"].items()))
    return f"trial {row['number']}: {row['state'].lower()}{value}{seconds}  {params}"


def _fmt(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def _storage(url: str | None) -> Any:
    if not url:
        return None
    import optuna

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    # Processes started together on a fresh database race to create Optuna's tables; the
    # loser's CREATE fails with a unique violation, and a retry finds the tables in place.
    import random

    from sqlalchemy.exc import SQLAlchemyError

    for attempt in range(6):
        try:
            return optuna.storages.RDBStorage(url, heartbeat_interval=60, grace_period=120)
        except SQLAlchemyError:
            if attempt == 5:
                raise
            time.sleep(0.3 * (attempt + 1) + random.random() * 0.3)
    raise AssertionError("unreachable")


def tune(
    data: NLUData,
    *,
    encoder: Any,
    base: NLUConfig,
    space: SearchSpace,
    search: str = "bayes",
    trials: int = 20,
    metric: str = "macro_f1",
    folds: int = 3,
    storage: str | None = None,
    study_name: str | None = None,
    seed: int = 13,
    catalog: list[dict[str, Any]] | None = None,
    out_dir: Path | None = None,
    show_progress: bool = False,
    timeout: float | None = None,
    on_trial: Callable[[dict[str, Any]], None] | None = None,
    start_from_base: bool = False,
) -> TuneResult:
    """Run the search; return the best configuration (and write files into ``out_dir``:
    ``best_config.yml``, ``trials.csv``, ``tuning_history.png``). ``timeout``: no trial
    starts after that many seconds (one in progress finishes). ``start_from_base``: the
    first trial is ``base`` itself, when the space holds it (see the module's notes)."""
    import optuna

    if search not in SEARCHES:
        raise ConfigError("tune.search", f"use one of {SEARCHES}")
    if metric not in METRICS:
        raise ConfigError("tune.metric", f"use one of {METRICS}")
    if trials < 1:
        raise ConfigError("tune.trials", "must be >= 1")
    counts = data.intent_counts()
    if len(counts) < 2:
        raise ConfigError("tune", f"need at least 2 intents, got {sorted(counts)}")
    labels = [e.intent for e in data.examples]
    if folds >= 2:
        from sklearn.model_selection import StratifiedKFold

        smallest = min(counts.values())
        if fold_count(data, folds) < folds:
            raise ConfigError(
                "tune.folds",
                f"{folds}-fold cross-validation needs >= {folds} examples per "
                f"intent; the smallest intent has {smallest}",
            )
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = [(tr, va) for tr, va in splitter.split(np.zeros(len(labels)), labels)]
    else:
        tr, va = validation_split(labels, base.validation_fraction, seed)
        splits = [(tr, va)]
    cached = encoder if isinstance(encoder, CachingEncoder) else CachingEncoder(encoder)

    if search == "grid":
        grid = space.grid()
        sampler: Any = optuna.samplers.GridSampler(grid, seed=seed)
        trials = min(trials, math.prod(len(v) for v in grid.values()))
    elif search == "random":
        sampler = optuna.samplers.RandomSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed, n_startup_trials=min(5, trials))
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=0)
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        study_name=study_name or f"clerk-{search}",
        storage=_storage(storage),
        sampler=sampler,
        pruner=pruner,
        direction="maximize",
        load_if_exists=True,
    )
    base_point = space.point_of(base) if start_from_base and search != "grid" else None
    if base_point is not None:
        study.enqueue_trial(base_point, user_attrs={"clerk_base": True})

    def objective(trial: Any) -> float:
        params = space.suggest(trial)
        try:
            config = _config_with(base, params)
        except ConfigError as exc:
            raise optuna.TrialPruned(f"invalid combination: {exc}") from None
        # Trials score the top intent, which the fallback threshold does not change: fix it
        # rather than calibrate it (several extra fits) in every fold.
        scored = dataclasses.replace(config, threshold=0.0, calibrate_threshold=False)
        scores = []
        for k, (tr, va) in enumerate(splits):
            model = NLUModel.train(
                _subset(data, tr), encoder=cached, catalog=catalog, config=scored
            )
            gold = [labels[i] for i in va]
            probs = model.predict_proba([data.examples[i].text for i in va])
            predicted = [model.labels[j] for j in probs.argmax(axis=1)]
            scores.append(_score(gold, predicted, metric))
            trial.report(float(np.mean(scores)), k)
            if k < len(splits) - 1 and trial.should_prune():
                raise optuna.TrialPruned()
        return float(np.mean(scores))

    def callback(study: Any, frozen: Any) -> None:
        if on_trial is not None:
            on_trial(_trial_row(frozen))

    study.optimize(
        objective,
        n_trials=trials,
        timeout=timeout,
        callbacks=[callback],
        show_progress_bar=show_progress,
        gc_after_trial=True,
    )
    rows = [_trial_row(t) for t in study.trials]
    complete = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    if not complete:
        raise ConfigError("tune", "no trial completed; widen the search space")
    best = study.best_trial
    assert best.value is not None  # a completed trial has its value
    result = TuneResult(
        best_params=dict(best.params),
        best_value=float(best.value),
        best_config=_config_with(base, best.params),
        trials=rows,
    )
    base_trials = [t for t in complete if t.user_attrs.get("clerk_base")]
    if base_point is not None and base_trials and base_trials[0].value is not None:
        result.base_value = float(base_trials[0].value)
    if out_dir is not None:
        result.files = _write(result, Path(out_dir), metric, search, folds)
    return result


def _trial_row(t: Any) -> dict[str, Any]:
    seconds = None
    if t.datetime_start and t.datetime_complete:
        seconds = (t.datetime_complete - t.datetime_start).total_seconds()
    value = t.value
    if value is None and t.intermediate_values:
        value = t.intermediate_values[max(t.intermediate_values)]
    return {
        "number": t.number,
        "state": t.state.name,
        "value": value,
        "params": dict(t.params),
        "seconds": seconds,
    }


def _write(result: TuneResult, out: Path, metric: str, search: str, folds: int) -> dict[str, Path]:
    import yaml

    from bot.training.reports import plot_tuning_history

    out.mkdir(parents=True, exist_ok=True)
    best = out / "best_config.yml"
    header = (
        f"# written by `clerk tune --search {search}` on {time.strftime('%Y-%m-%d %H:%M')}\n"
        f"# best {metric} {result.best_value:.4f} "
        f"({f'{folds}-fold CV' if folds >= 2 else 'validation split'})\n"
        "# use it with: clerk train --config " + str(best) + "\n"
    )
    config = result.best_config.to_dict()
    best.write_text(
        header + yaml.safe_dump({"clerk": {"nlu": config}}, sort_keys=False), encoding="utf-8"
    )
    table = out / "trials.csv"
    names = sorted({k for t in result.trials for k in t["params"]})
    with table.open("w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["number", "state", metric, "seconds", *names])
        for t in result.trials:
            w.writerow(
                [
                    t["number"],
                    t["state"],
                    t["value"],
                    t["seconds"],
                    *[t["params"].get(n) for n in names],
                ]
            )
    (out / "trials.txt").write_text(result.table() + "\n", encoding="utf-8")
    history = plot_tuning_history(out / "tuning_history.png", result.trials, metric)
    return {"best_config": best, "trials": table, "history": history}
