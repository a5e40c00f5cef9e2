"""`clerk data validate`: each check finds what it should, errors fail, warnings do not."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.cli import main
from bot.nlu.data import parse_nlu_yaml
from bot.training.validate import validate

ROOT = Path(__file__).resolve().parent.parent

NLU = """
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - Hello!
    - good morning
    - hey
    - hiya
- intent: order_status
  examples: |
    - where is my order [#W1234567](order_id)
    - where is order [hello](order_id)
    - track my [ord](product)er
    - status of my order
    - has my order shipped
    - where is my package
    - when does my parcel arrive
    - hi there
- intent: rare
  examples: |
    - one example
    - two examples
"""

DOMAIN = """
version: "3.1"
intents: [greet, order_status, rare, goodbye]
entities: [order_id]
responses:
  utter_greet:
  - text: hi
actions: [action_check_order]
"""

RULES = """
version: "3.1"
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: order
  steps:
  - intent: order_status
  - action: action_check_order
  - action: utter_order_done
  - action: action_missing
"""


def _checks(report, severity: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {i.check for i in report.issues if i.severity == severity}


def test_every_check_reports_what_it_should(tmp_path: Path) -> None:
    (tmp_path / "domain.yml").write_text(DOMAIN)
    (tmp_path / "rules.yml").write_text(RULES)
    test = parse_nlu_yaml("nlu:\n- intent: greet\n  examples: |\n    - good morning\n    - yo\n")
    report = validate(
        parse_nlu_yaml(NLU),
        test=test,
        domain_file=tmp_path / "domain.yml",
        dialogue_files=[tmp_path / "rules.yml"],
        min_examples=3,
        imbalance_ratio=3.5,
    )
    errors, warnings = _checks(report, "error"), _checks(report, "warning")
    assert errors == {
        "conflicting-label",
        "undefined-response",
        "undefined-action",
        "entity-mismatch",
        "train-test-overlap",
    }
    assert {
        "duplicate",
        "too-few-examples",
        "class-imbalance",
        "entity-mismatch",
        "unknown-intent",
    } <= warnings
    messages = "\n".join(i.message for i in report.issues)
    assert "'hi there' is labelled ['greet', 'order_status']" in messages
    assert "'hello' appears 2 times in 'greet'" in messages  # "Hello!" normalises to "hello"
    assert "'hello' is annotated as order_id but does not look like one" in messages
    assert "cuts a word" in messages and "'product' is not declared" in messages
    assert "utter_order_done" in messages and "action_missing" in messages
    assert "'good morning' is in the test data" in messages
    assert "intent 'rare' has 2 examples" in messages
    assert "domain intent 'goodbye' has no NLU examples" in messages
    assert not report.ok and "FAILED" in report.render()


def test_near_duplicates_across_intents_are_warned() -> None:
    data = parse_nlu_yaml(
        "nlu:\n- intent: a\n  examples: |\n    - i want to cancel my order right now\n"
        "    - x\n- intent: b\n  examples: |\n    - i want to cancel my orders right now\n"
        "    - y\n"
    )
    report = validate(data)
    near = [i for i in report.issues if i.check == "near-duplicate-conflict"]
    assert len(near) == 1 and near[0].severity == "warning"


def test_clean_data_passes_and_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    good = tmp_path / "good.yml"
    good.write_text(
        "nlu:\n- intent: a\n  examples: |\n"
        + "".join(f"    - alpha sentence {w}\n" for w in ["one", "two", "three", "four", "five"])
        + "- intent: b\n  examples: |\n"
        + "".join(f"    - bravo phrase {w}\n" for w in ["six", "seven", "eight", "nine", "ten"])
    )
    assert main(["--home", str(tmp_path / "h"), "data", "validate", "--nlu", str(good)]) == 0
    assert "OK: 0 errors" in capsys.readouterr().out
    bad = tmp_path / "bad.yml"
    bad.write_text(NLU)
    assert main(["--home", str(tmp_path / "h"), "data", "validate", "--nlu", str(bad)]) == 1
    assert "ERROR conflicting-label" in capsys.readouterr().out


def test_demo_store_data_has_no_errors(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code = main(
        ["--home", str(tmp_path / "h"), "data", "validate", "--data", str(ROOT / "training_data")]
    )
    out = capsys.readouterr().out
    assert code == 0, out
