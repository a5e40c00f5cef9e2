"""Stratified splits of labelled examples, shared by training, tuning and rejection
calibration."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

__all__ = ["validation_split"]


def validation_split(
    labels: Sequence[str], fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train rows, validation rows), each sorted; intents with fewer than 2
    examples stay in training only; every intent keeps at least one training example.
    The same labels, fraction and seed give the same split."""
    rng = np.random.RandomState(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    train: list[int] = []
    val: list[int] = []
    for label in sorted(by_label):
        rows = np.asarray(by_label[label])
        rng.shuffle(rows)
        k = round(len(rows) * fraction) if len(rows) >= 2 else 0
        k = min(max(k, 1 if len(rows) >= 2 else 0), len(rows) - 1)
        val.extend(rows[:k].tolist())
        train.extend(rows[k:].tolist())
    return np.asarray(sorted(train), dtype=np.intp), np.asarray(sorted(val), dtype=np.intp)
