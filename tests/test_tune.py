"""Hyperparameter search: grid enumeration, random/Bayesian trial counts, outputs, search
space errors, and two `clerk tune` processes sharing one study on the real PostgreSQL."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_training import YML

from bot.errors import ConfigError
from bot.nlu.config import NLUConfig
from bot.nlu.data import parse_nlu_yaml
from bot.training.tune import grid_points, load_space, tune

ROOT = Path(__file__).resolve().parent.parent
BASE = NLUConfig(featurizers=("tfidf_word", "tfidf_char"), threshold=0.0, validation_fraction=0.25)


@pytest.fixture(scope="module")
def data():  # type: ignore[no-untyped-def]
    return parse_nlu_yaml(YML)


def test_grid_search_enumerates_the_grid(data, encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    space = load_space({"C": [1.0, 10.0], "char_ngram_max": {"low": 4, "high": 6, "step": 2}})
    expected = [{"C": c, "char_ngram_max": n} for c, n in itertools.product([1.0, 10.0], [4, 6])]
    assert grid_points(space) == expected
    result = tune(
        data,
        encoder=encoder,
        base=BASE,
        space=space,
        search="grid",
        trials=50,
        folds=1,
        out_dir=tmp_path,
    )
    seen = sorted((t["params"]["C"], t["params"]["char_ngram_max"]) for t in result.trials)
    assert seen == sorted((p["C"], p["char_ngram_max"]) for p in expected)
    assert all(t["state"] == "COMPLETE" for t in result.trials)
    assert result.best_value == max(t["value"] for t in result.trials)
    best = (tmp_path / "best_config.yml").read_text()
    assert NLUConfig.from_file(tmp_path / "best_config.yml") == result.best_config
    assert f"C: {result.best_params['C']}" in best
    assert len((tmp_path / "trials.csv").read_text().strip().splitlines()) == 1 + 4
    assert (tmp_path / "tuning_history.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("search", ["random", "bayes"])
def test_random_and_bayes_run_the_requested_trials(data, encoder, search: str) -> None:  # type: ignore[no-untyped-def]
    space = load_space(
        {
            "C": {"low": 0.5, "high": 50.0, "log": True},
            "featurizers": ["tfidf_word+tfidf_char", "tfidf_char"],
        }
    )
    result = tune(
        data, encoder=encoder, base=BASE, space=space, search=search, trials=4, folds=2, seed=3
    )
    assert len(result.trials) == 4
    cs = [t["params"]["C"] for t in result.trials]
    assert all(0.5 <= c <= 50.0 for c in cs) and len(set(cs)) == 4
    assert result.best_config.C == result.best_params["C"]


def test_search_space_errors_are_clear(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="grid search needs"):
        load_space({"C": {"low": 1.0, "high": 2.0}}).grid()
    with pytest.raises(ConfigError, match="not a clerk.nlu setting"):
        load_space({"learning_rate": [1, 2]})
    bad = tmp_path / "space.yml"
    bad.write_text("C: [1, 2\n")
    with pytest.raises(ConfigError, match="malformed YAML"):
        load_space(bad)


def test_folds_larger_than_smallest_intent_is_refused(data, encoder) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="examples per intent"):
        tune(data, encoder=encoder, base=BASE, space=load_space({"C": [1.0]}), folds=20)


@pytest.mark.postgres
def test_two_tune_processes_share_one_postgresql_study(tmp_path: Path) -> None:
    import optuna
    from conftest import fresh_database

    nlu = tmp_path / "nlu.yml"
    nlu.write_text(YML)
    cfg = tmp_path / "config.yml"
    cfg.write_text(
        "clerk:\n  nlu:\n    featurizers: [tfidf_word, tfidf_char]\n"
        "    threshold: 0.0\n    validation_fraction: 0.25\n"
    )
    space = tmp_path / "space.yml"
    space.write_text("C: {low: 0.5, high: 50.0, log: true}\nchar_ngram_max: [4, 5, 6]\n")
    with fresh_database("postgresql", tmp_path) as url:
        env = {**os.environ, "CLERK_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1"}
        procs = [
            subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "bot.cli",
                    "tune",
                    "--nlu",
                    str(nlu),
                    "--config",
                    str(cfg),
                    "--space",
                    str(space),
                    "--search",
                    "random",
                    "--trials",
                    "3",
                    "--folds",
                    "1",
                    "--seed",
                    str(seed),
                    "--storage",
                    url,
                    "--study",
                    "shared",
                    "--out",
                    str(tmp_path / f"out{seed}"),
                ],
                cwd=ROOT,
                env=env,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            for seed in (1, 2)
        ]
        outputs = [p.communicate(timeout=240)[0] for p in procs]
        for p, out in zip(procs, outputs, strict=True):
            assert p.returncode == 0, out
        storage = "postgresql+psycopg://" + url[len("postgresql://") :]
        study = optuna.load_study(study_name="shared", storage=storage)
        states = [t.state for t in study.trials]
        assert len(states) == 6 and all(s == optuna.trial.TrialState.COMPLETE for s in states)
        assert len({t.params["C"] for t in study.trials}) == 6
        # each process's table shows the trials of both
        rows = [
            len((tmp_path / f"out{s}" / "trials.csv").read_text().strip().splitlines()) - 1
            for s in (1, 2)
        ]
        assert max(rows) == 6 and min(rows) >= 3
        optuna.delete_study(study_name="shared", storage=storage)
