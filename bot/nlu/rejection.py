"""Out-of-scope rejection learned from the training data alone (held-out-intent simulation).

Most stores never label "out of scope", yet shoppers ask many things no intent covers. The
fallback threshold is therefore calibrated on a simulation of that situation, built from
the store's own examples: in each of up to ``MAX_ROUNDS`` rounds a share of the intents is
hidden (every intent is hidden in exactly one round), a model is fitted on the other intents'
training part, and it is scored on

* the known intents' held-out part (in-scope: a correct answer there should be kept), and
* every example of the hidden intents (out-of-scope: it should fall back).

The threshold is the ``quantile`` of the top confidence of the correctly classified
in-scope messages (``quantile_threshold``): about that share of right answers falls back.
The hidden intents' messages then give the out-of-scope recall that threshold buys, reported
in the training metrics with the in-scope figures (``RejectionEstimate``). Hidden intents
are usually much closer to the known ones than what shoppers ask off-topic, so that recall
is a pessimistic estimate.

This module is pure numpy: ``bot.nlu.fit`` supplies the fitting (``ScoreFn``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass

import numpy as np

from bot.nlu.splits import validation_split

__all__ = [
    "MAX_ROUNDS",
    "UNCALIBRATED_THRESHOLD",
    "RejectionEstimate",
    "heldout_rounds",
    "quantile_threshold",
    "simulate_rejection",
]

#: How many rounds the intents are split into (each round hides about 1/rounds of them).
MAX_ROUNDS = 4
#: The share of each known intent's examples held out as in-scope test messages per round.
IN_SCOPE_FRACTION = 0.2
#: The threshold when the data gives no evidence (no correct held-out answer): Rasa's
#: FallbackClassifier default.
UNCALIBRATED_THRESHOLD = 0.3

ScoreFn = Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, list[str]]]
"""``score(train_rows, test_rows)``: fit on the training rows, return the top confidence and
the predicted intent of each test row."""


@dataclass(frozen=True)
class Round:
    """One simulation round: rows to fit on, in-scope rows to test, hidden intents' rows."""

    train: np.ndarray
    in_scope: np.ndarray
    out_of_scope: np.ndarray


@dataclass(frozen=True)
class RejectionEstimate:
    """The calibrated threshold and what it did in the simulation (shares in 0..1)."""

    threshold: float
    rounds: int
    #: Correctly classified in-scope messages kept (above the threshold).
    in_scope_kept: float
    #: In-scope messages answered with the right intent (wrong or fallen back: not).
    in_scope_accuracy: float
    #: In-scope accuracy with no threshold (the classifier alone).
    in_scope_accuracy_without_rejection: float
    #: Hidden intents' messages that fall back; ``None`` when no intent could be hidden.
    out_of_scope_recall: float | None

    def to_dict(self) -> dict[str, float | int | None]:
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def quantile_threshold(top: np.ndarray, correct: np.ndarray, quantile: float) -> float | None:
    """The ``quantile`` of the top confidences of the correct answers (about that share of
    right answers falls below it); ``None`` when no answer is correct."""
    kept = np.asarray(top, dtype=np.float64)[np.asarray(correct, dtype=bool)]
    if not len(kept):
        return None
    return float(np.round(np.quantile(kept, quantile), 4))


def heldout_rounds(labels: Sequence[str], seed: int) -> list[Round]:
    """The simulation's rounds for ``labels`` (one per example). Intents are shuffled with
    ``seed`` and dealt into ``min(MAX_ROUNDS, intents)`` groups; a round hides one group and
    only runs when at least two intents stay known. With fewer than three intents there is
    one round that hides nothing (in-scope only)."""
    y = np.asarray([str(label) for label in labels])
    intents = sorted(set(y.tolist()))
    rng = np.random.RandomState(seed)
    rng.shuffle(intents)
    k = min(MAX_ROUNDS, len(intents))
    groups = [set(intents[i::k]) for i in range(k)] if len(intents) >= 3 else [set()]
    rounds: list[Round] = []
    for hidden in groups:
        if len(intents) - len(hidden) < 2:
            continue
        known = np.flatnonzero(~np.isin(y, list(hidden)))
        train_pos, test_pos = validation_split(y[known].tolist(), IN_SCOPE_FRACTION, seed)
        rounds.append(
            Round(
                train=known[train_pos],
                in_scope=known[test_pos],
                out_of_scope=np.flatnonzero(np.isin(y, list(hidden))),
            )
        )
    return rounds


def simulate_rejection(
    labels: Sequence[str],
    score: ScoreFn,
    *,
    quantile: float,
    seed: int,
    progress: Callable[[int, int], None] | None = None,
) -> RejectionEstimate:
    """Run the rounds (``heldout_rounds``) with ``score`` and calibrate the threshold (see
    the module docstring). ``progress(done, total)`` is called after each round."""
    y = np.asarray([str(label) for label in labels])
    rounds = heldout_rounds(labels, seed)
    in_top: list[np.ndarray] = []
    in_correct: list[np.ndarray] = []
    oos_top: list[np.ndarray] = []
    for done, r in enumerate(rounds, 1):
        test = np.concatenate([r.in_scope, r.out_of_scope])
        if len(test) and len(r.train):
            top, predicted = score(r.train, test)
            n = len(r.in_scope)
            in_top.append(top[:n])
            in_correct.append(np.asarray(predicted[:n]) == y[r.in_scope])
            oos_top.append(top[n:])
        if progress:
            progress(done, len(rounds))
    top_in = np.concatenate(in_top) if in_top else np.zeros(0)
    correct = np.concatenate(in_correct) if in_correct else np.zeros(0, dtype=bool)
    top_oos = np.concatenate(oos_top) if oos_top else np.zeros(0)
    threshold = quantile_threshold(top_in, correct, quantile)
    if threshold is None:
        threshold = UNCALIBRATED_THRESHOLD
    kept = top_in >= threshold
    return RejectionEstimate(
        threshold=threshold,
        rounds=len(rounds),
        in_scope_kept=float(np.mean(kept[correct])) if correct.any() else 0.0,
        in_scope_accuracy=float(np.mean(correct & kept)) if len(top_in) else 0.0,
        in_scope_accuracy_without_rejection=float(np.mean(correct)) if len(top_in) else 0.0,
        out_of_scope_recall=float(np.mean(top_oos < threshold)) if len(top_oos) else None,
    )
