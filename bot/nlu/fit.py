"""Fitting the NLU: from NLU data, a catalog and an ``NLUConfig`` to a model's parts.

``fit_model`` is the body of ``NLUModel.train``: an optional stratified validation split
(``validation_split``), optional fine-tuning of the sentence-transformer
(``bot.nlu.finetune``), features (``bot.nlu.features``), the classifier head
(``fit_classifier``: scikit-learn's logistic regression or ``bot.nlu.heads``' MLP),
threshold calibration (by held-out-intent simulation, ``bot.nlu.rejection``, or, with
``out_of_scope`` examples, on the held-out part: ``calibrate_threshold``), a logistic
regression refitted on all data afterwards, and the training metrics, fingerprint included
(``training_fingerprint``). ``cross_validate`` scores a config by stratified k-fold.

Only training imports this module's heavy dependencies (scikit-learn, torch), inside the
functions; serving imports ``training_fingerprint`` to tell a stale model from a fresh one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import shutil
import tempfile
import time
import weakref
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from bot.errors import ConfigError, TrainingDataError
from bot.nlu.artifacts import ENCODER_DIR, FORMAT_VERSION
from bot.nlu.config import OUT_OF_SCOPE_INTENT, NLUConfig
from bot.nlu.data import NLUData
from bot.nlu.encoder import Encoder, TextEncoder
from bot.nlu.entities import RegexEntityExtractor
from bot.nlu.entity_tables import build_entity_tables, patterns_from_tables
from bot.nlu.features import Featurizer
from bot.nlu.rejection import ScoreFn, quantile_threshold, simulate_rejection
from bot.nlu.splits import validation_split

if TYPE_CHECKING:
    from bot.nlu.heads import FeatureMatrix, Head

__all__ = [
    "FittedModel",
    "ProgressFn",
    "calibrate_threshold",
    "class_probabilities",
    "fit_classifier",
    "fit_model",
    "remove_when_unused",
    "training_fingerprint",
    "validation_split",
]

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: "fine-tune", "encode", "fit", "done"."""


@dataclass(frozen=True)
class FittedModel:
    """What ``fit_model`` hands ``NLUModel``: its constructor's arguments."""

    labels: tuple[str, ...]
    #: The config asked for, with the calibrated threshold when calibration is on.
    config: NLUConfig
    #: The encoder the model encodes with: the one given, or the fine-tuned one.
    encoder: TextEncoder
    featurizer: Featurizer
    classifier: Head
    entity_tables: dict[str, Any]
    metrics: dict[str, Any]
    #: The temporary fine-tuned encoder folder, if any (see ``remove_when_unused``).
    encoder_dir: Path | None


def fit_model(
    data: NLUData,
    *,
    encoder: TextEncoder,
    catalog: Iterable[Mapping[str, Any]] | None = None,
    config: NLUConfig,
    progress: ProgressFn | None = None,
) -> FittedModel:
    """Fit on ``data`` (see the module docstring). Raises ``TrainingDataError`` when there
    is nothing to learn (fewer than two intents). Reports the stages "fine-tune" (when
    fine-tuning), "encode" (with ``minilm``) and "fit"; the caller reports "done"."""
    started = time.perf_counter()
    texts = [e.text for e in data.examples]
    labels = [e.intent for e in data.examples]
    counts = data.intent_counts()
    if len(counts) < 2:
        raise TrainingDataError(f"need examples of at least 2 intents, got {sorted(counts)}")
    # Asked for with out_of_scope examples (calibrate_threshold), the threshold is chosen on
    # a validation split (macro F1); otherwise, when none is set, by held-out-intent
    # simulation after the final fit (bot.nlu.rejection), out_of_scope being one intent.
    split_calibration = config.calibrate_threshold and OUT_OF_SCOPE_INTENT in counts
    if config.classifier == "mlp" or split_calibration:
        train_rows, val_rows = validation_split(labels, config.validation_fraction, config.seed)
    else:
        train_rows, val_rows = np.arange(len(texts)), np.zeros(0, dtype=np.intp)
    train_texts = [texts[i] for i in train_rows]
    train_labels = [labels[i] for i in train_rows]
    base_encoder = encoder
    encoder_dir = None
    finetunable = _finetunable(encoder)
    loss = config.finetune_loss(len(train_texts), finetunable=finetunable)
    if loss != "none" and not finetunable:
        raise ConfigError(
            "clerk.nlu.finetune",
            f"{loss}: the encoder {Path(str(encoder.model_path)).name} is not a "
            "transformers model folder and cannot be fine-tuned (e5 of Chinese-speaking "
            "stores); use none or auto",
        )
    if loss != "none":
        encoder, encoder_dir = finetuned_encoder(
            encoder, train_texts, train_labels, config, loss, progress
        )
    embeddings = None
    if config.embeds:
        if progress:
            progress("encode", 0, len(texts))
        embeddings = encoder.encode(texts)
        if progress:
            progress("encode", len(texts), len(texts))
    tables = build_entity_tables(data, catalog)
    patterns = patterns_from_tables(tables)
    featurizer = Featurizer(config, patterns).fit(train_texts)
    x = featurizer.transform(texts, embeddings)
    y = np.asarray(labels, dtype=object)
    if progress:
        progress("fit", 0, 1)
    x_val = x[val_rows] if len(val_rows) else None
    y_val = [labels[i] for i in val_rows] if len(val_rows) else None
    clf = fit_classifier(
        x[train_rows], train_labels, config, x_val=x_val, y_val=y_val, progress=progress
    )
    extra: dict[str, Any] = {"finetune": loss}
    threshold = config.threshold
    if x_val is not None and y_val is not None:
        val_probs = class_probabilities(clf, x_val)
        val_pred = np.asarray(clf.classes_)[val_probs.argmax(axis=1)]
        extra["validation_size"] = len(val_rows)
        extra["validation_accuracy"] = round(float(np.mean(val_pred == y[val_rows])), 4)
        if split_calibration:
            threshold = calibrate_threshold(
                val_probs,
                y_val,
                [str(c) for c in clf.classes_],
                quantile=config.threshold_quantile,
            )
        if config.classifier == "logreg":  # refit on everything now the split did its job
            featurizer = Featurizer(config, patterns).fit(texts)
            x = featurizer.transform(texts, embeddings)
            clf = fit_classifier(x, labels, config)
    if config.calibrates and not split_calibration:
        base_embeddings = embeddings if loss == "none" else None
        estimate = simulate_rejection(
            labels,
            _round_scorer(texts, labels, config, patterns, base_encoder, base_embeddings),
            quantile=config.threshold_quantile,
            seed=config.seed,
            progress=(lambda d, t: progress("calibrate", d, t)) if progress else None,
        )
        threshold = estimate.threshold
        extra["rejection"] = estimate.to_dict()
    if config.calibrates:
        extra["calibrated_threshold"] = threshold
    if progress:
        progress("fit", 1, 1)
    # The fingerprint names the configuration asked for, before calibration changes it.
    fingerprint = training_fingerprint(data, catalog, config)
    if threshold != config.threshold:
        config = dataclasses.replace(config, threshold=threshold)
    history = getattr(clf, "history", None)  # an MLP's per-epoch losses
    if history:
        extra["history"] = history
    train_accuracy = float(np.mean(clf.predict(x) == y))
    metrics = {
        "version": time.strftime("%Y%m%d-%H%M%S") + "-" + fingerprint[:8],
        "fingerprint": fingerprint,
        "train_size": len(texts),
        "intent_counts": counts,
        "n_features": int(x.shape[1]),
        "train_accuracy": round(train_accuracy, 4),
        **extra,
        "training_seconds": round(time.perf_counter() - started, 3),
        "trained_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    return FittedModel(
        labels=tuple(str(c) for c in clf.classes_),
        config=config,
        encoder=encoder,
        featurizer=featurizer,
        classifier=clf,
        entity_tables=tables,
        metrics=metrics,
        encoder_dir=encoder_dir,
    )


def fit_classifier(
    x: FeatureMatrix,
    y: Sequence[str],
    config: NLUConfig,
    *,
    x_val: FeatureMatrix | None = None,
    y_val: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> Head:
    """A fitted head (``config.classifier``) on rows ``x`` labelled ``y``; the validation
    rows are used for the MLP's early stopping only."""
    if config.classifier == "mlp":
        from bot.nlu.heads import MLPSettings, train_mlp

        settings = MLPSettings(
            hidden=config.mlp_hidden,
            dropout=config.mlp_dropout,
            lr=config.mlp_lr,
            weight_decay=config.mlp_weight_decay,
            epochs=config.mlp_epochs,
            batch_size=config.mlp_batch_size,
            schedule=config.lr_schedule,
            warmup_steps=config.warmup_steps,
            gamma=config.lr_gamma,
            step_size=config.lr_step_size,
            patience=config.patience,
            label_smoothing=config.label_smoothing,
            seed=config.seed,
        )
        return train_mlp(x, list(y), settings, x_val=x_val, y_val=y_val, progress=progress)
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=config.C, max_iter=config.max_iter, random_state=config.seed)
    fitted: Head = clf.fit(x, list(y))
    return fitted


def class_probabilities(clf: Head, x: FeatureMatrix) -> np.ndarray:
    """Class probabilities (float64) of a fitted head, columns in ``clf.classes_`` order."""
    return np.asarray(clf.predict_proba(x), dtype=np.float64)


def calibrate_threshold(
    probs: np.ndarray,
    gold: Sequence[str],
    classes: Sequence[str],
    *,
    quantile: float = 0.05,
    oos_label: str = OUT_OF_SCOPE_INTENT,
) -> float:
    """A fallback threshold chosen on held-out predictions.

    With ``oos_label`` examples among ``gold``: the threshold in 0, 0.01 .. 0.99 that
    maximises macro F1 when predictions below it count as ``oos_label`` (ties: the lowest).
    Without: the ``quantile`` of the top confidence of the correctly classified examples,
    so about that share of right answers would fall back. 0.0 when nothing is correct.
    """
    from sklearn.metrics import f1_score

    gold_arr = np.asarray([str(g) for g in gold])
    top = probs.max(axis=1)
    predicted = np.asarray(classes)[probs.argmax(axis=1)]
    if oos_label in set(gold_arr):
        best_t, best_f1 = 0.0, -1.0
        for t in np.round(np.arange(0.0, 1.0, 0.01), 2):
            pred = np.where(top < t, oos_label, predicted)
            f1 = float(f1_score(gold_arr, pred, average="macro", zero_division=0))
            if f1 > best_f1 + 1e-12:
                best_t, best_f1 = float(t), f1
        return best_t
    threshold = quantile_threshold(top, predicted == gold_arr, quantile)
    return 0.0 if threshold is None else threshold


def training_fingerprint(
    data: NLUData, catalog: Iterable[Mapping[str, Any]] | None, config: NLUConfig
) -> str:
    """A short hash of everything training reads; saved in the model's metrics so a caller
    can tell whether ``nlu.yml``, the catalog or the config changed since training."""
    payload = {
        "format": FORMAT_VERSION,
        "examples": sorted(
            (e.text, e.intent, [a.to_dict() for a in e.entities]) for e in data.examples
        ),
        "synonyms": sorted(data.synonyms.items()),
        "lookups": sorted((k, list(v)) for k, v in data.lookups.items()),
        "regexes": sorted((k, list(v)) for k, v in data.regexes.items()),
        "catalog": list(catalog or []),
        "config": config.to_dict(),
    }
    blob = json.dumps(payload, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def _finetunable(encoder: TextEncoder | None) -> bool:
    """Whether ``encoder`` serves a transformers model folder that can be fine-tuned."""
    path = getattr(encoder, "model_path", None)
    return path is not None and (Path(path) / "config.json").is_file()


def _round_scorer(
    texts: Sequence[str],
    labels: Sequence[str],
    config: NLUConfig,
    patterns: RegexEntityExtractor,
    encoder: TextEncoder,
    embeddings: np.ndarray | None,
) -> ScoreFn:
    """The rejection simulation's ``score``: features and head as ``fit_model`` builds them,
    on the rows given. Embeddings come from the base encoder (``embeddings`` when already
    computed): a fine-tuned one has seen every intent, the hidden ones included."""
    if embeddings is None and config.embeds:
        embeddings = encoder.encode(list(texts))

    def score(train_rows: np.ndarray, test_rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
        rows = np.concatenate([train_rows, test_rows])
        featurizer = Featurizer(config, patterns).fit([texts[i] for i in train_rows])
        x = featurizer.transform(
            [texts[i] for i in rows], None if embeddings is None else embeddings[rows]
        )
        n = len(train_rows)
        clf = fit_classifier(x[:n], [labels[i] for i in train_rows], config)
        probs = class_probabilities(clf, x[n:])
        classes = np.asarray([str(c) for c in clf.classes_])
        return probs.max(axis=1), classes[probs.argmax(axis=1)].tolist()

    return score


def finetuned_encoder(
    encoder: TextEncoder,
    texts: Sequence[str],
    labels: Sequence[str],
    config: NLUConfig,
    loss: str,
    progress: ProgressFn | None,
) -> tuple[TextEncoder, Path]:
    """Fine-tune ``encoder``'s model with ``loss`` into a temporary ``.../encoder`` folder;
    an encoder serving it (torch) and the folder. The caller owns the folder's parent (see
    ``remove_when_unused``)."""
    from bot.nlu.finetune import FinetuneSettings, finetune_encoder

    folder = Path(tempfile.mkdtemp(prefix="clerk-finetune-")) / ENCODER_DIR
    base = Path(encoder.model_path)
    settings = FinetuneSettings(
        loss=loss,
        epochs=config.finetune_epochs,
        lr=config.finetune_lr,
        batch_size=config.finetune_batch_size,
        train_layers=config.finetune_layers,
        seed=config.seed,
    )
    finetune_encoder(base, texts, labels, settings, folder, progress)
    return Encoder(folder, backend="torch"), folder


def remove_when_unused(owner: object, folder: Path) -> None:
    """Delete a temporary fine-tuning folder (``folder``'s parent) once ``owner`` is
    garbage-collected (``save`` has copied it by then, or the model was thrown away, as in
    tuning)."""
    weakref.finalize(owner, shutil.rmtree, str(folder.parent), True)
