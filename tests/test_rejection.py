"""Out-of-scope rejection calibrated without out-of-scope examples (bot.nlu.rejection)."""

from __future__ import annotations

import numpy as np
import pytest

from bot.nlu.config import FALLBACK_INTENT, NLUConfig
from bot.nlu.data import NLUData, TrainingExample
from bot.nlu.model import NLUModel
from bot.nlu.rejection import (
    MAX_ROUNDS,
    UNCALIBRATED_THRESHOLD,
    heldout_rounds,
    quantile_threshold,
    simulate_rejection,
)

TFIDF_ONLY = {"featurizers": ("tfidf_word", "tfidf_char")}


def test_every_intent_is_hidden_exactly_once_and_rounds_never_leak() -> None:
    labels = [f"intent{i % 9}" for i in range(90)]
    rounds = heldout_rounds(labels, seed=3)
    assert len(rounds) == MAX_ROUNDS
    hidden = [sorted({labels[i] for i in r.out_of_scope}) for r in rounds]
    assert sorted(x for h in hidden for x in h) == sorted(set(labels))
    for r, h in zip(rounds, hidden, strict=True):
        train_intents = {labels[i] for i in r.train}
        assert not train_intents & set(h)  # a hidden intent is never trained on
        assert len(train_intents) >= 2
        assert not set(r.train) & set(r.in_scope)
        assert {labels[i] for i in r.in_scope} <= train_intents
    assert [r.train.tolist() for r in heldout_rounds(labels, seed=3)] == [
        r.train.tolist() for r in rounds
    ]


def test_two_intents_give_one_in_scope_round() -> None:
    rounds = heldout_rounds(["a"] * 5 + ["b"] * 5, seed=0)
    assert len(rounds) == 1 and len(rounds[0].out_of_scope) == 0 and len(rounds[0].in_scope) == 2


def test_three_intents_hide_one_at_a_time() -> None:
    rounds = heldout_rounds(["a"] * 4 + ["b"] * 4 + ["c"] * 4, seed=0)
    assert [len(r.out_of_scope) for r in rounds] == [4, 4, 4]


def test_quantile_threshold_hand_checked() -> None:
    top = np.array([0.9, 0.8, 0.7, 0.6, 0.2])
    correct = np.array([True, True, True, True, False])
    assert quantile_threshold(top, correct, 0.0) == 0.6
    assert quantile_threshold(top, correct, 0.5) == 0.75
    assert quantile_threshold(top, np.zeros(5, dtype=bool), 0.05) is None


def test_simulation_with_a_scripted_scorer() -> None:
    labels = [f"i{k}" for k in range(6) for _ in range(10)]
    y = np.asarray(labels)

    def score(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, list[str]]:
        known = set(y[train].tolist())
        top = np.array([0.9 if y[i] in known else 0.35 for i in test])
        predicted = [y[i] if y[i] in known else min(known) for i in test]
        return top, predicted

    seen: list[tuple[int, int]] = []
    estimate = simulate_rejection(
        labels, score, quantile=0.05, seed=1, progress=lambda d, t: seen.append((d, t))
    )
    assert estimate.threshold == 0.9
    assert estimate.out_of_scope_recall == 1.0
    assert estimate.in_scope_kept == 1.0 and estimate.in_scope_accuracy == 1.0
    assert seen[-1] == (estimate.rounds, estimate.rounds) == (4, 4)
    assert estimate.to_dict()["threshold"] == 0.9


def test_no_evidence_gives_rasas_default_threshold() -> None:
    def wrong(train: np.ndarray, test: np.ndarray) -> tuple[np.ndarray, list[str]]:
        return np.full(len(test), 0.99), ["nothing"] * len(test)

    estimate = simulate_rejection(["a", "a", "b", "b", "c", "c"], wrong, quantile=0.05, seed=0)
    assert estimate.threshold == UNCALIBRATED_THRESHOLD
    assert estimate.in_scope_accuracy == 0.0


TOPICS = {
    "order_status": ["where is my order", "track my package", "has my parcel shipped yet",
                     "when will my order arrive", "order tracking please", "status of my delivery",
                     "is my package on the way", "my order has not arrived"],
    "cancel": ["cancel my order", "i want to cancel", "please cancel the purchase",
               "stop my order", "cancel order now", "i changed my mind cancel it",
               "can you cancel what i bought", "cancel the order i placed"],
    "refund": ["i want my money back", "refund please", "how do i get a refund",
               "return the money to my card", "refund my purchase", "give me a refund",
               "when will i get my refund", "money back for the order"],
    "greet": ["hello", "hi there", "good morning", "hey", "hello bot", "hi",
              "good evening", "hey there"],
    "size": ["what size should i pick", "does it run small", "size chart please",
             "which size fits me", "is medium too big", "what are the sizes",
             "size guide", "do you have it in large"],
}  # fmt: skip


def _data() -> NLUData:
    return NLUData(
        examples=tuple(
            TrainingExample(text=t, intent=intent) for intent, ts in TOPICS.items() for t in ts
        )
    )


def test_default_training_calibrates_rejection_without_out_of_scope_examples() -> None:
    config = NLUConfig(**TFIDF_ONLY)  # type: ignore[arg-type]
    assert config.threshold is None and config.calibrates
    model = NLUModel.train(_data(), encoder=None, config=config)  # type: ignore[arg-type]
    rejection = model.metrics["rejection"]
    assert model.threshold == model.config.threshold == rejection["threshold"]
    assert model.metrics["calibrated_threshold"] == model.threshold
    assert 0.0 < model.threshold < 1.0
    assert rejection["rounds"] == 4 and rejection["out_of_scope_recall"] is not None
    assert model.parse("where is my order")["intent"]["name"] == "order_status"
    for text in ("tell me a joke", "weather tomorrow"):
        off_topic = model.parse(text)
        assert off_topic["intent"]["name"] == FALLBACK_INTENT
        assert off_topic["intent_ranking"][0]["name"] in TOPICS  # the ranking stays real
    # Training is reproducible: the same data and config give the same threshold.
    again = NLUModel.train(_data(), encoder=None, config=config)  # type: ignore[arg-type]
    assert again.threshold == model.threshold


@pytest.mark.parametrize("threshold", [0.0, 0.6])
def test_a_set_threshold_is_kept(threshold: float) -> None:
    config = NLUConfig(**TFIDF_ONLY, threshold=threshold)  # type: ignore[arg-type]
    model = NLUModel.train(_data(), encoder=None, config=config)  # type: ignore[arg-type]
    assert model.threshold == threshold and "rejection" not in model.metrics


def test_threshold_auto_reads_as_calibrated() -> None:
    config = NLUConfig.from_mapping(
        {"pipeline": [{"name": "FallbackClassifier"}], "clerk": {"nlu": {"threshold": "auto"}}}
    )
    assert config.threshold is None
    rasa = NLUConfig.from_mapping({"pipeline": [{"name": "FallbackClassifier", "threshold": 0.7}]})
    assert rasa.threshold == 0.7


def test_messages_of_only_never_seen_words_fall_back_unless_they_hold_an_entity() -> None:
    config = NLUConfig(**TFIDF_ONLY, threshold=0.0)  # type: ignore[arg-type]
    model = NLUModel.train(_data(), encoder=None, config=config)  # type: ignore[arg-type]
    for mashing in ("blorf snargle wib", "qwzx vlemp"):
        parsed = model.parse(mashing)
        assert parsed["intent"]["name"] == FALLBACK_INTENT
        assert parsed["intent_ranking"][0]["name"] in TOPICS  # the ranking stays real
        assert not model.accepts(mashing, 1.0)
    # One known word is enough; an entity (here an email) or digits, too; other scripts and
    # numbers are not judged by this rule.
    for kept in ("blorf my order", "sarah@example.com", "W1234567", "我的订单在哪里"):
        assert model.accepts(kept, 0.5), kept
    off = NLUModel.train(
        _data(),
        encoder=None,  # type: ignore[arg-type]
        config=NLUConfig(**TFIDF_ONLY, threshold=0.0, unknown_words_fallback=False),  # type: ignore[arg-type]
    )
    assert off.parse("blorf snargle wib")["intent"]["name"] != FALLBACK_INTENT
