"""Figures and files written by ``clerk evaluate`` and ``clerk tune`` (matplotlib, Agg).

Each function writes one file and returns its path; none of them shows a window.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "plot_confidence_histogram",
    "plot_confusion_matrix",
    "plot_tuning_history",
    "write_json",
]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def write_json(path: Path, payload: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False, default=float), "utf-8")
    return path


def plot_confusion_matrix(
    path: Path, matrix: np.ndarray, labels: Sequence[str], title: str = "Intent confusion"
) -> Path:
    """Row-normalised confusion matrix (rows: true intent, columns: predicted)."""
    plt = _pyplot()
    n = len(labels)
    size = min(40.0, max(6.0, 0.28 * n + 3))
    fig, ax = plt.subplots(figsize=(size, size))
    rows = matrix.sum(axis=1, keepdims=True).astype(float)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix, dtype=float), where=rows > 0)
    im = ax.imshow(norm, cmap="Blues", vmin=0.0, vmax=1.0)
    ax.set_xticks(range(n), labels, rotation=90, fontsize=max(4, 10 - n // 15))
    ax.set_yticks(range(n), labels, fontsize=max(4, 10 - n // 15))
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    if n <= 25:
        for i in range(n):
            for j in range(n):
                if matrix[i, j]:
                    ax.text(
                        j,
                        i,
                        str(int(matrix[i, j])),
                        ha="center",
                        va="center",
                        fontsize=7,
                        color="white" if norm[i, j] > 0.5 else "black",
                    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_confidence_histogram(
    path: Path,
    correct: Sequence[float],
    wrong: Sequence[float],
    threshold: float | None = None,
) -> Path:
    """Histogram of top-intent confidence for right and wrong predictions."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    bins = np.linspace(0.0, 1.0, 26)
    ax.hist(
        [list(correct), list(wrong)],
        bins=bins,
        label=["correct", "wrong"],
        color=["#2b8a3e", "#c92a2a"],
        stacked=False,
    )
    if threshold is not None and threshold > 0:
        ax.axvline(threshold, color="black", linestyle="--", label=f"threshold {threshold:.2f}")
    ax.set_xlabel("confidence of the predicted intent")
    ax.set_ylabel("examples")
    ax.set_yscale("log")
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def plot_tuning_history(path: Path, trials: Sequence[Mapping[str, Any]], metric: str) -> Path:
    """Each trial's value (pruned trials marked) and the best value so far."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    done = [(t["number"], t["value"]) for t in trials if t["state"] == "COMPLETE"]
    pruned = [
        (t["number"], t["value"])
        for t in trials
        if t["state"] == "PRUNED" and t["value"] is not None
    ]
    if done:
        xs, ys = zip(*done, strict=True)
        ax.scatter(xs, ys, label="complete", color="#1c7ed6")
        best, running = [], -np.inf
        for _, y in sorted(done):
            running = max(running, y)
            best.append(running)
        ax.step(sorted(xs), best, where="post", color="#e8590c", label="best so far")
    if pruned:
        xs, ys = zip(*pruned, strict=True)
        ax.scatter(xs, ys, marker="x", color="#868e96", label="pruned (last report)")
    ax.set_xlabel("trial")
    ax.set_ylabel(metric)
    ax.legend()
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
