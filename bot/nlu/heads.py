"""Classifier heads trained with torch, served with numpy.

``train_mlp`` fits a small feed-forward head (``hidden`` units, ReLU, dropout; ``hidden=0``
is a softmax regression) on a feature matrix with AdamW, weight decay, a learning-rate
schedule and early stopping on a validation split. The result is an ``MLPHead`` holding
plain numpy arrays: serving never imports torch for it.

Learning-rate schedules (``learning_rate``), per optimiser step ``s`` (0-based), base rate
``lr``, ``W`` warm-up steps and ``T`` total steps:

* ``constant``:     ``lr``
* ``exponential``:  ``lr * gamma ** s``
* ``step``:         ``lr * gamma ** (s // step_size)``
* ``cosine``:       ``lr * (s + 1) / W`` while ``s < W``, then
  ``lr * 0.5 * (1 + cos(pi * (s - W) / (T - W)))``

A warm-up (linear, as for ``cosine``) applies to every schedule when ``W > 0``.

Contract (``Head``): ``MLPHead`` exposes ``classes_``, ``coef_`` ([units, features]) and
``intercept_`` of its first linear layer, and ``head_logits(z)`` maps that layer's output to
class logits. ``bot.nlu.model.FastHead`` splits ``coef_`` per feature block exactly as it
does for a logistic regression, so the two heads serve through the same code.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

if TYPE_CHECKING:
    from typing import TypeAlias

    from scipy.sparse import spmatrix

    #: Rows of features: dense, or a scipy sparse matrix (as ``Featurizer.transform`` gives).
    FeatureMatrix: TypeAlias = np.ndarray | spmatrix

__all__ = ["SCHEDULES", "Head", "MLPHead", "MLPSettings", "learning_rate", "train_mlp"]

SCHEDULES = ("constant", "exponential", "step", "cosine")


class Head(Protocol):
    """A fitted classifier head as the NLU trains, saves and serves it: scikit-learn's
    ``LogisticRegression`` or an ``MLPHead``.

    ``coef_`` ([units, features]) and ``intercept_`` ([units]) are its first linear layer
    (a binary logistic regression has one unit: the positive class's logit); an optional
    ``head_logits(z)`` maps that layer's output to class logits. ``predict_proba`` columns
    follow ``classes_``.
    """

    classes_: np.ndarray
    coef_: np.ndarray
    intercept_: np.ndarray

    def predict(self, x: FeatureMatrix) -> np.ndarray: ...

    def predict_proba(self, x: FeatureMatrix) -> np.ndarray: ...


def learning_rate(
    schedule: str,
    step: int,
    *,
    lr: float,
    total_steps: int,
    warmup_steps: int = 0,
    gamma: float = 0.95,
    step_size: int = 100,
) -> float:
    """The learning rate at optimiser step ``step`` (0-based); see the module docstring."""
    if schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {schedule!r}; use one of {SCHEDULES}")
    if step < 0:
        raise ValueError("step must be >= 0")
    if warmup_steps > 0 and step < warmup_steps:
        return lr * (step + 1) / warmup_steps
    if schedule == "constant":
        return lr
    if schedule == "exponential":
        return lr * gamma**step
    if schedule == "step":
        return lr * gamma ** (step // max(1, step_size))
    span = max(1, total_steps - warmup_steps)
    progress = min(1.0, (step - warmup_steps) / span)
    return lr * 0.5 * (1.0 + math.cos(math.pi * progress))


@dataclass(frozen=True)
class MLPSettings:
    hidden: int = 0
    dropout: float = 0.1
    lr: float = 3e-3
    weight_decay: float = 1e-4
    epochs: int = 60
    batch_size: int = 64
    schedule: str = "cosine"
    warmup_steps: int = 0
    gamma: float = 0.95
    step_size: int = 100
    patience: int = 5
    label_smoothing: float = 0.0
    seed: int = 13


@dataclass
class MLPHead:
    """A trained head as numpy arrays (see the module docstring for the contract)."""

    classes_: np.ndarray
    coef_: np.ndarray
    intercept_: np.ndarray
    w2: np.ndarray | None = None
    b2: np.ndarray | None = None
    history: list[dict[str, float]] = field(default_factory=list)

    def head_logits(self, z: np.ndarray) -> np.ndarray:
        if self.w2 is None or self.b2 is None:
            return z
        return np.maximum(z, 0.0) @ self.w2 + self.b2

    def decision_function(self, x: Any) -> np.ndarray:
        z = np.asarray(x @ self.coef_.T, dtype=np.float32) + self.intercept_
        return self.head_logits(z)

    def predict_proba(self, x: Any) -> np.ndarray:
        logits = self.decision_function(x)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(axis=1, keepdims=True)

    def predict(self, x: Any) -> np.ndarray:
        return self.classes_[np.argmax(self.decision_function(x), axis=1)]


def _to_tensor(x: Any, rows: np.ndarray) -> Any:
    import torch

    block = x[rows]
    if hasattr(block, "toarray"):
        block = block.toarray()
    return torch.from_numpy(np.ascontiguousarray(block, dtype=np.float32))


def train_mlp(
    x: Any,
    y: Sequence[str],
    settings: MLPSettings,
    *,
    x_val: Any = None,
    y_val: Sequence[str] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> MLPHead:
    """Fit the head on ``x`` (dense or scipy sparse rows). With a validation set, training
    stops after ``patience`` epochs without a lower validation loss and keeps the best
    epoch's weights; without one it runs all ``epochs``."""
    import torch

    if settings.schedule not in SCHEDULES:
        raise ValueError(f"unknown schedule {settings.schedule!r}; use one of {SCHEDULES}")
    torch.manual_seed(settings.seed)
    rng = np.random.RandomState(settings.seed)
    classes = np.asarray(sorted(set(y)))
    index = {c: i for i, c in enumerate(classes)}
    target = torch.tensor([index[c] for c in y], dtype=torch.long)
    n, features = x.shape
    layers: list[Any] = []
    if settings.hidden > 0:
        layers += [
            torch.nn.Linear(features, settings.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(settings.dropout),
            torch.nn.Linear(settings.hidden, len(classes)),
        ]
    else:
        layers += [torch.nn.Dropout(settings.dropout), torch.nn.Linear(features, len(classes))]
    net = torch.nn.Sequential(*layers)
    opt = torch.optim.AdamW(net.parameters(), lr=settings.lr, weight_decay=settings.weight_decay)
    steps_per_epoch = max(1, math.ceil(n / settings.batch_size))
    total = steps_per_epoch * settings.epochs
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=settings.label_smoothing)

    val = None
    if x_val is not None and y_val is not None and len(y_val):
        known = np.asarray([c in index for c in y_val])
        rows = np.flatnonzero(known)
        if len(rows):
            val = (
                _to_tensor(x_val, rows),
                torch.tensor([index[y_val[i]] for i in rows.tolist()], dtype=torch.long),
            )
    best_loss, best_state, stale, step = float("inf"), None, 0, 0
    history: list[dict[str, float]] = []
    for epoch in range(settings.epochs):
        net.train()
        order = rng.permutation(n)
        total_loss = 0.0
        for start in range(0, n, settings.batch_size):
            rows = order[start : start + settings.batch_size]
            for group in opt.param_groups:
                group["lr"] = learning_rate(
                    settings.schedule,
                    step,
                    lr=settings.lr,
                    total_steps=total,
                    warmup_steps=settings.warmup_steps,
                    gamma=settings.gamma,
                    step_size=settings.step_size,
                )
            loss = loss_fn(net(_to_tensor(x, rows)), target[rows])
            opt.zero_grad()
            loss.backward()
            opt.step()
            total_loss += float(loss.detach()) * len(rows)
            step += 1
        record = {"epoch": epoch + 1, "train_loss": total_loss / n}
        if val is not None:
            net.eval()
            with torch.no_grad():
                logits = net(val[0])
                val_loss = float(torch.nn.functional.cross_entropy(logits, val[1]))
                record["val_loss"] = val_loss
                record["val_accuracy"] = float((logits.argmax(1) == val[1]).float().mean())
            if val_loss < best_loss - 1e-5:
                best_loss, stale = val_loss, 0
                best_state = {k: v.detach().clone() for k, v in net.state_dict().items()}
            else:
                stale += 1
        history.append(record)
        if progress:
            progress("fit", epoch + 1, settings.epochs)
        if val is not None and stale >= settings.patience:
            break
    if best_state is not None:
        net.load_state_dict(best_state)
    if progress:
        progress("fit", settings.epochs, settings.epochs)
    linears = [m for m in net if isinstance(m, torch.nn.Linear)]
    first = linears[0]
    head = MLPHead(
        classes_=classes,
        coef_=first.weight.detach().numpy().astype(np.float32),
        intercept_=first.bias.detach().numpy().astype(np.float32),
        history=history,
    )
    if len(linears) == 2:
        head.w2 = np.ascontiguousarray(linears[1].weight.detach().numpy().T, dtype=np.float32)
        head.b2 = linears[1].bias.detach().numpy().astype(np.float32)
    return head
