"""``clerk test``: the demo store's test stories pass; a failing story (a wrong action, a
wrong intent) fails the run, is printed with what the bot did instead and lands in the
report files; the store's database is not touched by running the stories."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from bot.cli import main
from bot.training.story_test import ANY_VALUE, load_test_stories

ROOT = Path(__file__).resolve().parent.parent
DEMO_STORIES = ROOT / "tests" / "stories" / "test_demo_stories.yml"

FAILING = """
version: "3.1"
stories:
  - story: greet passes
    steps:
      - user: |
          hello there
        intent: greet
      - action: utter_greet
  - story: greet answered with a goodbye
    steps:
      - user: |
          hello there
        intent: greet
      - action: utter_goodbye
      - user: |
          thanks a lot
        intent: thank
      - action: utter_you_are_welcome
  - story: a greeting expected to be a goodbye
    steps:
      - user: |
          hello there
        intent: goodbye
      - action: utter_greet
"""


def clerk_test(home: Path, out: Path, *args: str) -> int:
    return main(
        ["--home", str(home), "--config", str(home / "none.yml"), "test", *args, "--out", str(out)]
    )


def db_digest(settings: Any) -> str:
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    return hashlib.sha256(path.read_bytes()).hexdigest()


# ------------------------------------------------------------------------ reading stories


def test_the_project_finds_the_demo_stories_and_no_python() -> None:
    from bot.project import Project

    project = Project.find(ROOT)
    assert DEMO_STORIES in project.test_files
    assert all(f.suffix in (".yml", ".yaml") for f in project.test_files)
    assert project.nlu_test_files == ()


def test_steps_are_read_in_rasa_test_story_format(tmp_path: Path) -> None:
    f = tmp_path / "test_x.yml"
    f.write_text("""
stories:
  - story: s
    steps:
      - user: |
          where is [#W6893533](order_id)?
        intent: order_status
      - action: order_status_form
      - active_loop: order_status_form
      - slot_was_set:
          - order_id: "#W6893533"
          - customer_id
      - intent: affirm
      - active_loop: null
""")
    [story] = load_test_stories([f])
    user, action, loop, slot, bare, intent_only, done = story.steps
    assert (user.kind, user.text, user.intent) == ("user", "where is #W6893533?", "order_status")
    assert [(e.entity, e.value) for e in user.entities] == [("order_id", "#W6893533")]
    assert (action.kind, action.name) == ("action", "order_status_form")
    assert (loop.kind, loop.name) == ("active_loop", "order_status_form")
    assert (slot.name, slot.value, bare.value) == ("order_id", "#W6893533", ANY_VALUE)
    assert (intent_only.text, intent_only.intent, intent_only.raw) == ("/affirm", "affirm", None)
    assert (done.kind, done.name) == ("active_loop", None)


# ------------------------------------------------------------------------- against the bot


def test_demo_stories_pass_and_leave_the_store_database_unchanged(
    prepared_home,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = prepared_home
    before = db_digest(settings)
    monkeypatch.chdir(ROOT)  # the repository root is the demo store's project
    assert clerk_test(settings.home, tmp_path, "core") == 0
    printed = capsys.readouterr().out
    assert "FAILED" not in printed and "9/9 passed" in printed
    report = json.loads((tmp_path / "story_report.json").read_text())
    assert report["conversation_accuracy"]["accuracy"] == 1.0
    assert all(s["passed"] for s in report["stories"])
    assert report["action_level"]["f1"] == pytest.approx(1.0)
    assert yaml.safe_load((tmp_path / "failed_test_stories.yml").read_text())["stories"] == []
    # the cancel story cancelled #W8770097 on a copy: the served database is byte-identical
    assert db_digest(settings) == before


def test_a_failing_story_fails_the_run_and_is_reported(
    prepared_home, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = prepared_home
    stories = tmp_path / "test_failing.yml"
    stories.write_text(FAILING)
    out = tmp_path / "results"
    assert clerk_test(settings.home, out, "core", "--stories", str(stories)) == 1

    printed = capsys.readouterr().out
    assert "FAILED greet answered with a goodbye" in printed
    assert "- action: utter_goodbye  # predicted: utter_greet" in printed
    assert "intent: goodbye  # predicted: greet: hello there" in printed
    assert "1/3 passed" in printed

    failed = yaml.safe_load((out / "failed_test_stories.yml").read_text())
    assert [s["story"] for s in failed["stories"]] == [
        "greet answered with a goodbye",
        "a greeting expected to be a goodbye",
    ]
    assert failed["stories"][0]["steps"][1] == {"action": "utter_goodbye"}
    text = (out / "failed_test_stories.yml").read_text()
    assert "# not run" in text  # the turn after the failed one

    report = json.loads((out / "story_report.json").read_text())
    by_name = {s["story"]: s for s in report["stories"]}
    assert by_name["greet passes"]["passed"] is True
    wrong_action = by_name["greet answered with a goodbye"]
    assert wrong_action["passed"] is False
    assert wrong_action["predicted_actions"] == ["utter_greet"]
    assert wrong_action["failures"] == ["expected action utter_goodbye, predicted utter_greet"]
    wrong_intent = by_name["a greeting expected to be a goodbye"]
    assert wrong_intent["passed"] is False
    assert wrong_intent["failures"] == ["expected intent goodbye, predicted greet: hello there"]
    assert report["conversation_accuracy"] == {
        "accuracy": pytest.approx(1 / 3),
        "correct": 1,
        "with_warnings": 0,
        "total": 3,
    }
    assert report["action_level"]["accuracy"] < 1.0
    assert report["actions"]["utter_goodbye"]["recall"] == 0.0


def test_no_test_stories_is_an_error(
    prepared_home, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    settings, _ = prepared_home
    monkeypatch.chdir(tmp_path)
    assert clerk_test(settings.home, tmp_path / "out", "core") == 2


def test_clerk_test_nlu_evaluates_a_test_file(prepared_home, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    settings, _ = prepared_home
    nlu = tmp_path / "nlu_test.yml"
    nlu.write_text("""
version: "3.1"
nlu:
  - intent: greet
    examples: |
      - hi there
      - good morning
  - intent: goodbye
    examples: |
      - see you later
""")
    out = tmp_path / "results"
    assert clerk_test(settings.home, out, "nlu", "--nlu", str(nlu)) == 0
    report = json.loads((out / "nlu" / "report.json").read_text())
    assert report["macro avg"]["support"] == 3


def test_cross_validate_scores_every_fold_with_evaluate(tmp_path: Path) -> None:
    from bot.nlu.data import parse_nlu_yaml
    from bot.training.evaluate import cross_validate

    data = parse_nlu_yaml(
        "nlu:\n"
        + "".join(
            f"  - intent: {name}\n    examples: |\n"
            + "".join(f"      - {name} {i}\n" for i in range(4))
            for name in ("a", "b")
        )
    )

    class FirstWord:  # a "model" that reads the intent off the text
        labels = ("a", "b")
        threshold = 0.0

        def accepts(self, text: str, confidence: float) -> bool:
            return confidence >= self.threshold

        def predict_proba(self, texts: list[str]) -> np.ndarray:
            return np.asarray([[1.0, 0.0] if t.startswith("a") else [0.0, 1.0] for t in texts])

    trained = []
    folds, mean = cross_validate(
        data, lambda d: trained.append(d) or FirstWord(), folds=2, out_dir=tmp_path
    )
    assert len(folds) == 2 and len(trained) == 2
    assert all(len(d.examples) == 4 for d in trained)
    assert mean == {"accuracy": 1.0, "macro_f1": 1.0}
    assert (tmp_path / "fold-1" / "report.json").is_file()
