"""Evaluation metrics against hand-checked cases, and the report files of `clerk evaluate`."""

from __future__ import annotations

import json

import pytest

from bot.errors import DataError
from bot.nlu.config import NLUConfig
from bot.nlu.data import NLUData, TrainingExample, parse_nlu_yaml
from bot.nlu.model import NLUModel
from bot.training.evaluate import entity_scores, evaluate, intent_report, out_of_scope_scores

TFIDF = NLUConfig(featurizers=("tfidf_word", "tfidf_char"), C=20.0, threshold=0.0)


def test_intent_report_matches_hand_computed_figures() -> None:
    gold = ["a", "a", "a", "b", "b", "c"]
    pred = ["a", "a", "b", "b", "c", "c"]
    r = intent_report(gold, pred)
    # a: tp 2, fp 0, fn 1 -> p 1, r 2/3, f1 0.8
    assert r["a"]["precision"] == 1.0
    assert r["a"]["recall"] == pytest.approx(2 / 3)
    assert r["a"]["f1-score"] == pytest.approx(0.8)
    assert r["a"]["confused_with"] == {"b": 1}
    # b: tp 1, fp 1, fn 1 -> 0.5 / 0.5 / 0.5 ; c: tp 1, fp 1, fn 0 -> 0.5 / 1 / 2/3
    assert (r["b"]["precision"], r["b"]["recall"], r["b"]["f1-score"]) == (0.5, 0.5, 0.5)
    assert r["c"]["f1-score"] == pytest.approx(2 / 3)
    assert r["accuracy"] == pytest.approx(4 / 6)
    assert r["macro_f1"] == pytest.approx((0.8 + 0.5 + 2 / 3) / 3)
    assert r["weighted avg"]["f1-score"] == pytest.approx((3 * 0.8 + 2 * 0.5 + 2 / 3) / 6)
    assert r["macro avg"]["support"] == 6 and r["b"]["support"] == 2


def test_zero_division_gives_zero_not_nan() -> None:
    r = intent_report(["a", "b"], ["b", "b"])
    assert r["a"] == {
        "precision": 0.0,
        "recall": 0.0,
        "f1-score": 0.0,
        "support": 1,
        "confused_with": {"b": 1},
    }


def test_out_of_scope_counts_fallback_as_flagged() -> None:
    gold = ["out_of_scope", "out_of_scope", "greet", "greet"]
    pred = ["nlu_fallback", "greet", "out_of_scope", "greet"]
    s = out_of_scope_scores(gold, pred)
    assert (s["precision"], s["recall"], s["support"], s["flagged"]) == (0.5, 0.5, 2, 2)


def test_entity_scores_exact_spans() -> None:
    gold = [
        [{"entity": "order_id", "start": 0, "end": 8}, {"entity": "email", "start": 9, "end": 20}]
    ]
    pred = [
        [{"entity": "order_id", "start": 0, "end": 8}, {"entity": "email", "start": 10, "end": 20}]
    ]
    s = entity_scores(gold, pred)
    assert s["order_id"]["f1-score"] == 1.0
    assert s["email"]["precision"] == 0.0 and s["email"]["recall"] == 0.0
    assert s["micro avg"]["precision"] == 0.5 and s["micro avg"]["recall"] == 0.5


TRAIN_YML = """
nlu:
- intent: order_status
  examples: |
    - where is my order [#W1234567](order_id)
    - status of order [#W7654321](order_id)
    - track my order [#W1111111](order_id) please
    - has order [#W2222222](order_id) shipped
    - when will order [#W3333333](order_id) arrive
    - where is my package
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
    - hey
    - hello friend
    - hiya
- intent: out_of_scope
  examples: |
    - what is the capital of france
    - tell me a joke about cats
    - who won the football game
    - how tall is mount everest
    - what's the weather on mars
    - sing me a song
"""

TEST_YML = """
nlu:
- intent: order_status
  examples: |
    - where is order [#W9999999](order_id)
    - track order [#W8888888](order_id)
- intent: greet
  examples: |
    - hello there
    - hey hi
- intent: out_of_scope
  examples: |
    - what is the capital of spain
"""


@pytest.fixture(scope="module")
def tiny_model(encoder):  # type: ignore[no-untyped-def]
    data = parse_nlu_yaml(TRAIN_YML)
    return NLUModel.train(data, encoder=encoder, config=TFIDF)


def test_evaluate_writes_well_formed_files(tiny_model, tmp_path) -> None:  # type: ignore[no-untyped-def]
    result = evaluate(tiny_model, parse_nlu_yaml(TEST_YML), tmp_path)
    report = json.loads((tmp_path / "report.json").read_text())
    for key in (
        "order_status",
        "greet",
        "out_of_scope",
        "accuracy",
        "macro avg",
        "weighted avg",
        "macro_f1",
        "out_of_scope",
        "entities",
    ):
        assert key in report
    assert set(report["greet"]) == {"precision", "recall", "f1-score", "support", "confused_with"}
    assert report["macro avg"]["support"] == 5
    assert report["entities"]["order_id"]["support"] == 2
    assert report["entities"]["order_id"]["recall"] == 1.0
    errors = json.loads((tmp_path / "errors.json").read_text())
    assert isinstance(errors, list) and len(errors) == len(result.errors)
    assert round(report["accuracy"] * 5) == 5 - len(errors)
    for err in errors:
        assert err["intent"] != err["predicted"] and 0.0 <= err["confidence"] <= 1.0
    for png in ("confusion_matrix.png", "confidence_histogram.png"):
        assert (tmp_path / png).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "accuracy" in result.summary()


def test_unknown_label_in_test_set_is_a_clear_error(tiny_model) -> None:  # type: ignore[no-untyped-def]
    data = NLUData(
        (TrainingExample("cancel it", "cancel_order"), TrainingExample("hello", "greet"))
    )
    with pytest.raises(DataError, match="cancel_order"):
        evaluate(tiny_model, data)


def test_threshold_turns_low_confidence_into_out_of_scope(tiny_model) -> None:  # type: ignore[no-untyped-def]
    strict = tiny_model.with_threshold(0.999)
    result = evaluate(strict, parse_nlu_yaml(TEST_YML))
    # every prediction falls below 0.999, so everything is flagged out of scope
    assert result.report["out_of_scope"]["recall"] == 1.0
    assert result.report["out_of_scope"]["flagged"] == 5
    assert result.report["accuracy"] == pytest.approx(1 / 5)
