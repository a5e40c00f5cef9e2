"""Evaluation of a trained NLU model on annotated test data.

``intent_report`` has the keys of Rasa's ``intent_report.json`` (one entry per intent with
``precision``, ``recall``, ``f1-score``, ``support``, ``confused_with``; ``accuracy``,
``macro avg``, ``weighted avg``) plus ``macro_f1``. ``evaluate`` adds out-of-scope
precision/recall, entity precision/recall/F1, and writes the report files:

* ``report.json``: the intent report, ``out_of_scope`` and ``entities`` sections;
* ``errors.json``: misclassified examples with gold/predicted intent and confidences;
* ``confusion_matrix.png``, ``confidence_histogram.png``.

Predictions are the intent the model returns: below the model's threshold that is
``nlu_fallback``. When the test data has an ``out_of_scope`` intent, ``nlu_fallback``
counts as a prediction of ``out_of_scope``. ``accuracy_top1`` ignores the threshold.

Entities are compared as exact (entity, start, end) spans, value ignored: an extracted
span is a true positive when an annotation of the same entity type covers exactly it.

Contract: raises ``DataError`` when the test data names intents the model never learned
(other than ``out_of_scope``), so a typo in a label is not silently scored as an error.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import DataError
from bot.nlu.config import FALLBACK_INTENT, OUT_OF_SCOPE_INTENT
from bot.nlu.data import NLUData

__all__ = [
    "Evaluation",
    "cross_validate",
    "entity_scores",
    "evaluate",
    "intent_report",
    "out_of_scope_scores",
]


def intent_report(gold: Sequence[str], predicted: Sequence[str]) -> dict[str, Any]:
    """Per-intent precision/recall/F1/support and ``confused_with`` (the top 3 wrong
    predictions with counts), ``accuracy``, ``macro avg``, ``weighted avg``, ``macro_f1``.

    Labels are those in ``gold``; a prediction outside them is a false negative of the
    gold intent and counted in ``confused_with``. Division by zero gives 0.0.
    """
    if len(gold) != len(predicted):
        raise ValueError("gold and predicted differ in length")
    if not gold:
        raise DataError("no test examples to evaluate")
    labels = sorted(set(gold))
    gold_a, pred_a = np.asarray(gold, dtype=object), np.asarray(predicted, dtype=object)
    report: dict[str, Any] = {}
    precisions, recalls, f1s, supports = [], [], [], []
    for label in labels:
        tp = int(np.sum((gold_a == label) & (pred_a == label)))
        fp = int(np.sum((gold_a != label) & (pred_a == label)))
        fn = int(np.sum((gold_a == label) & (pred_a != label)))
        p = tp / (tp + fp) if tp + fp else 0.0
        r = tp / (tp + fn) if tp + fn else 0.0
        f = 2 * p * r / (p + r) if p + r else 0.0
        confused = Counter(str(x) for x in pred_a[(gold_a == label) & (pred_a != label)])
        report[label] = {
            "precision": p,
            "recall": r,
            "f1-score": f,
            "support": tp + fn,
            "confused_with": dict(confused.most_common(3)),
        }
        precisions.append(p)
        recalls.append(r)
        f1s.append(f)
        supports.append(tp + fn)
    w = np.asarray(supports, dtype=float) / sum(supports)
    total = int(sum(supports))
    report["accuracy"] = float(np.mean(gold_a == pred_a))
    report["macro avg"] = {
        "precision": float(np.mean(precisions)),
        "recall": float(np.mean(recalls)),
        "f1-score": float(np.mean(f1s)),
        "support": total,
    }
    report["weighted avg"] = {
        "precision": float(np.dot(w, precisions)),
        "recall": float(np.dot(w, recalls)),
        "f1-score": float(np.dot(w, f1s)),
        "support": total,
    }
    report["macro_f1"] = report["macro avg"]["f1-score"]
    return report


def out_of_scope_scores(
    gold: Sequence[str], predicted: Sequence[str], oos_label: str = OUT_OF_SCOPE_INTENT
) -> dict[str, Any]:
    """Out-of-scope detection as a binary task: a message is flagged when the model says
    ``oos_label`` or ``nlu_fallback``."""
    g = np.asarray([x == oos_label for x in gold])
    p = np.asarray([x in (oos_label, FALLBACK_INTENT) for x in predicted])
    tp, fp, fn = int(np.sum(g & p)), int(np.sum(~g & p)), int(np.sum(g & ~p))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {
        "precision": precision,
        "recall": recall,
        "f1-score": f1,
        "support": int(g.sum()),
        "flagged": int(p.sum()),
    }


def entity_scores(
    gold: Sequence[Sequence[dict[str, Any]]], predicted: Sequence[Sequence[dict[str, Any]]]
) -> dict[str, Any]:
    """Per-entity-type and micro-averaged precision/recall/F1 over exact spans."""
    tp: Counter[str] = Counter()
    fp: Counter[str] = Counter()
    fn: Counter[str] = Counter()
    for g_ents, p_ents in zip(gold, predicted, strict=True):
        g = Counter((e["entity"], e["start"], e["end"]) for e in g_ents)
        p = Counter((e["entity"], e["start"], e["end"]) for e in p_ents)
        for key in set(g) | set(p):
            hit = min(g[key], p[key])
            tp[key[0]] += hit
            fp[key[0]] += p[key] - hit
            fn[key[0]] += g[key] - hit

    def score(t: int, f_p: int, f_n: int) -> dict[str, Any]:
        precision = t / (t + f_p) if t + f_p else 0.0
        recall = t / (t + f_n) if t + f_n else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1-score": f1, "support": t + f_n}

    out: dict[str, Any] = {
        name: score(tp[name], fp[name], fn[name]) for name in sorted(set(tp) | set(fp) | set(fn))
    }
    out["micro avg"] = score(sum(tp.values()), sum(fp.values()), sum(fn.values()))
    return out


@dataclass
class Evaluation:
    report: dict[str, Any]
    errors: list[dict[str, Any]]
    files: dict[str, Path] = field(default_factory=dict)

    def summary(self) -> str:
        """One screen: headline figures and the ten weakest intents."""
        r = self.report
        lines = [
            (
                f"examples: {r['macro avg']['support']}   accuracy: {r['accuracy']:.4f}   "
                f"macro F1: {r['macro_f1']:.4f}   weighted F1: {r['weighted avg']['f1-score']:.4f}"
            ),
        ]
        if "accuracy_top1" in r:
            lines.append(
                f"top-1 accuracy (threshold ignored): {r['accuracy_top1']:.4f}   "
                f"threshold: {r.get('threshold', 0):.3f}   "
                f"fallbacks: {r.get('fallbacks', 0)}"
            )
        if "out_of_scope" in r:
            o = r["out_of_scope"]
            lines.append(
                f"out-of-scope: precision {o['precision']:.3f} recall {o['recall']:.3f} "
                f"(support {o['support']}, flagged {o['flagged']})"
            )
        if "entities" in r:
            e = r["entities"]["micro avg"]
            lines.append(
                f"entities: precision {e['precision']:.3f} recall {e['recall']:.3f} "
                f"F1 {e['f1-score']:.3f} (support {e['support']})"
            )
        intents = [(k, v) for k, v in r.items() if isinstance(v, dict) and "confused_with" in v]
        weakest = sorted(intents, key=lambda kv: (kv[1]["f1-score"], kv[0]))[:10]
        if weakest:
            lines.append(
                "weakest intents:          precision  recall     F1  support  confused with"
            )
            for name, v in weakest:
                confused = ", ".join(f"{k} ({n})" for k, n in v["confused_with"].items())
                lines.append(
                    f"  {name[:24]:<24} {v['precision']:9.3f} {v['recall']:7.3f} "
                    f"{v['f1-score']:6.3f} {v['support']:8d}  {confused}"
                )
        lines.append(f"errors: {len(self.errors)}")
        for name, path in self.files.items():
            lines.append(f"  {name}: {path}")
        return "\n".join(lines)


def evaluate(model: Any, data: NLUData, out_dir: Path | None = None) -> Evaluation:
    """Score ``model`` (an ``NLUModel``) on ``data``; write the report files to ``out_dir``."""
    if not data.examples:
        raise DataError("no test examples to evaluate")
    known = set(model.labels)
    unknown = sorted({e.intent for e in data.examples} - known - {OUT_OF_SCOPE_INTENT})
    if unknown:
        raise DataError(
            f"the test data has intents the model was not trained on: {unknown}; "
            "fix the labels or retrain with examples of them"
        )
    texts = [e.text for e in data.examples]
    gold = [e.intent for e in data.examples]
    probs = model.predict_proba(texts)
    labels = list(model.labels)
    top = probs.argmax(axis=1)
    confidence = probs[np.arange(len(texts)), top]
    top1 = [labels[i] for i in top]
    threshold = model.threshold
    has_oos = OUT_OF_SCOPE_INTENT in set(gold) or OUT_OF_SCOPE_INTENT in known
    predicted = []
    fallbacks = 0
    for text, name, conf in zip(texts, top1, confidence, strict=True):
        if not model.accepts(text, float(conf)):
            fallbacks += 1
            name = OUT_OF_SCOPE_INTENT if has_oos else FALLBACK_INTENT
        predicted.append(name)
    report = intent_report(gold, predicted)
    report["accuracy_top1"] = float(np.mean(np.asarray(top1) == np.asarray(gold)))
    report["threshold"] = threshold
    report["fallbacks"] = fallbacks
    if has_oos or threshold > 0:
        report["out_of_scope"] = out_of_scope_scores(gold, predicted)
    annotated = any(e.entities for e in data.examples)
    if annotated:
        gold_ents = [[a.to_dict() for a in e.entities] for e in data.examples]
        pred_ents = [model.extractor.extract(t) for t in texts]
        report["entities"] = entity_scores(gold_ents, pred_ents)
    errors = []
    for i, (g, p) in enumerate(zip(gold, predicted, strict=True)):
        if g != p:
            order = np.argsort(-probs[i])[:3]
            errors.append(
                {
                    "text": texts[i],
                    "intent": g,
                    "predicted": p,
                    "confidence": round(float(confidence[i]), 4),
                    "ranking": [
                        {"name": labels[j], "confidence": round(float(probs[i, j]), 4)}
                        for j in order
                    ],
                }
            )
    errors.sort(key=lambda e: -e["confidence"])
    result = Evaluation(report=report, errors=errors)
    if out_dir is not None:
        from bot.training.reports import (
            plot_confidence_histogram,
            plot_confusion_matrix,
            write_json,
        )

        out_dir = Path(out_dir)
        axis = sorted(set(gold) | set(predicted))
        index = {name: k for k, name in enumerate(axis)}
        matrix = np.zeros((len(axis), len(axis)), dtype=int)
        for g, p in zip(gold, predicted, strict=True):
            matrix[index[g], index[p]] += 1
        right = np.asarray(top1) == np.asarray(gold)
        result.files = {
            "report": write_json(out_dir / "report.json", report),
            "errors": write_json(out_dir / "errors.json", errors),
            "confusion_matrix": plot_confusion_matrix(
                out_dir / "confusion_matrix.png", matrix, axis
            ),
            "confidence_histogram": plot_confidence_histogram(
                out_dir / "confidence_histogram.png",
                confidence[right].tolist(),
                confidence[~right].tolist(),
                threshold,
            ),
        }
    return result


def cross_validate(
    data: NLUData, train_model: Any, *, folds: int = 5, seed: int = 13, out_dir: Path | None = None
) -> tuple[list[Evaluation], dict[str, float]]:
    """Stratified k-fold cross-validation: ``train_model(train_data)`` returns a model
    trained on the other folds, which ``evaluate`` scores on the held-out fold (its report
    files in ``out_dir/fold-<k>``). Returns the folds' evaluations and the mean
    ``accuracy`` and ``macro_f1``. Raises ``DataError`` when an intent has fewer than
    ``folds`` examples."""
    from sklearn.model_selection import StratifiedKFold

    from bot.training.tune import _subset

    labels = [e.intent for e in data.examples]
    counts = Counter(labels)
    if folds < 2 or not counts or min(counts.values()) < folds:
        raise DataError(
            f"{folds}-fold cross-validation needs at least {max(folds, 2)} "
            f"examples of every intent; the smallest has "
            f"{min(counts.values()) if counts else 0}"
        )
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    results = []
    for k, (train_rows, test_rows) in enumerate(
        splitter.split(np.zeros(len(labels)), labels), start=1
    ):
        model = train_model(_subset(data, train_rows))
        fold_dir = None if out_dir is None else Path(out_dir) / f"fold-{k}"
        results.append(evaluate(model, _subset(data, test_rows), fold_dir))
    mean = {
        key: float(np.mean([r.report[key] for r in results])) for key in ("accuracy", "macro_f1")
    }
    return results, mean
