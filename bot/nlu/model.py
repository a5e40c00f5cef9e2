"""Clerk's NLU model: intent classification plus rule-based entity extraction.

Features are the injected sentence ``Encoder``'s MiniLM embedding concatenated with TF-IDF
word (1-2) and char_wb (2-5) n-grams by default; the classifier is scikit-learn's
LogisticRegression or a torch MLP head (``bot.nlu.heads``, served with numpy), optionally
after fine-tuning the sentence-transformer (``bot.nlu.finetune``). ``NLUConfig`` lists
every setting; ``clerk tune`` searches them. Below ``config.threshold`` the intent becomes ``nlu_fallback`` (the
top confidence is kept and ``intent_ranking`` still lists the real intents), like Rasa's
FallbackClassifier. Entities come from ``bot.nlu.entities`` (patterns, the catalog
gazetteer, reason synonyms).

``parse`` returns Rasa's parse shape::

    {"text": ..., "intent": {"name": ..., "confidence": ...},
     "entities": [...], "intent_ranking": [{"name": ..., "confidence": ...}, ...top 10]}

Button payloads (``/intent`` and ``/intent{"entity": "value"}``, optionally
``/intent@0.8``) bypass the model when the intent is one the model knows.

Ownership: ``NLUModel`` holds the encoder it was given but never saves it; the artifact
folder holds only the vectorisers, the classifier, labels, config, entity tables and
training metrics — plus ``encoder/``, the fine-tuned sentence-transformer, when the config
fine-tunes (the model then encodes with it, not with the encoder it was given). ``parse`` is thread-safe (the model is read-only after training).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from bot.errors import ConfigError, ModelNotTrainedError, TrainingDataError
from bot.nlu.data import NLUData
from bot.nlu.encoder import Encoder
from bot.nlu.entities import (
    CatalogGazetteer,
    EntityExtractor,
    ReasonExtractor,
    RegexEntityExtractor,
    resolve_overlaps,
)

log = logging.getLogger(__name__)

__all__ = [
    "FALLBACK_INTENT",
    "FORMAT_VERSION",
    "OUT_OF_SCOPE_INTENT",
    "IntentClassifier",
    "NLUConfig",
    "NLUModel",
    "ProgressFn",
    "calibrate_threshold",
    "cross_validate",
    "training_fingerprint",
]

FORMAT_VERSION = 1  # optional files were added compatibly (encoder/); version 1 loads
FALLBACK_INTENT = "nlu_fallback"
RANKING_LENGTH = 10
FEATURIZERS = ("minilm", "tfidf_word", "tfidf_char")
#: Intents Rasa accepts in payloads even when no example trains them.
BUILTIN_PAYLOAD_INTENTS = frozenset({"restart", "session_start", "back", FALLBACK_INTENT})

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: "fine-tune", "encode", "fit", "done"."""

_META = "meta.json"
_ENTITIES = "entities.json"
_FEATURIZERS_FILE = "featurizers.joblib"
_CLASSIFIER_FILE = "classifier.joblib"
_ENCODER_DIR = "encoder"


class IntentClassifier(Protocol):
    """The NLU boundary the dialogue manager depends on."""

    def parse(self, text: str) -> dict[str, Any]: ...


CLASSIFIERS = ("logreg", "mlp")
OUT_OF_SCOPE_INTENT = "out_of_scope"


@dataclass(frozen=True)
class NLUConfig:
    """Settings of Clerk's NLU, read from the ``clerk: nlu:`` section of config.yml.

    Featurizers: ``minilm`` (the sentence embedding; from the fine-tuned encoder when
    ``finetune`` is not ``none``), ``tfidf_word`` (1..``word_ngram_max``-grams) and
    ``tfidf_char`` (char_wb ``char_ngram_min``..``char_ngram_max``-grams), concatenated.
    Classifiers: ``logreg`` (``C``) or ``mlp`` (``mlp_*``, ``lr_schedule`` ... see
    ``bot.nlu.heads``). ``validation_fraction`` of the data (stratified) is held out when
    the MLP needs early stopping or ``calibrate_threshold`` is on; a logistic regression
    is refitted on all data afterwards. ``calibrate_threshold`` replaces ``threshold`` by
    one chosen on that held-out part (see ``calibrate_threshold``).
    """

    featurizers: tuple[str, ...] = FEATURIZERS
    classifier: str = "logreg"
    C: float = 10.0
    seed: int = 13
    threshold: float = 0.45
    max_iter: int = 3000
    #: Scales the (unit-length) sentence embedding against the TF-IDF blocks.
    embedding_weight: float = 2.0
    word_ngram_max: int = 2
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    # -- MLP head (bot.nlu.heads) --
    mlp_hidden: int = 0
    mlp_dropout: float = 0.1
    mlp_lr: float = 3e-3
    mlp_weight_decay: float = 1e-4
    mlp_epochs: int = 60
    mlp_batch_size: int = 64
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    lr_gamma: float = 0.95
    lr_step_size: int = 100
    patience: int = 5
    label_smoothing: float = 0.0
    # -- end-to-end fine-tuning of the sentence-transformer (bot.nlu.finetune) --
    finetune: str = "none"
    finetune_epochs: int = 2
    finetune_lr: float = 1e-4
    finetune_batch_size: int = 32
    #: Train only the top N transformer layers (lower layers' outputs cached); 0: all.
    finetune_layers: int = 0
    # -- validation split, threshold calibration --
    validation_fraction: float = 0.1
    calibrate_threshold: bool = False
    #: Without out-of-scope examples: the share of correctly classified validation
    #: messages allowed to fall below the calibrated threshold.
    threshold_quantile: float = 0.05

    def __post_init__(self) -> None:
        from bot.nlu.finetune import FINETUNE_LOSSES
        from bot.nlu.heads import SCHEDULES

        unknown = [f for f in self.featurizers if f not in FEATURIZERS]
        if unknown or not self.featurizers:
            raise ConfigError(
                "clerk.nlu.featurizers", f"unknown or no featurizers {unknown}; use {FEATURIZERS}"
            )
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(
                "clerk.nlu.classifier", f"unknown classifier {self.classifier!r}; use {CLASSIFIERS}"
            )
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError("clerk.nlu.lr_schedule", f"unknown schedule; use {SCHEDULES}")
        if self.finetune not in FINETUNE_LOSSES:
            raise ConfigError("clerk.nlu.finetune", f"unknown value; use {FINETUNE_LOSSES}")
        positive = ("C", "embedding_weight", "mlp_lr", "finetune_lr", "max_iter", "mlp_epochs",
                    "mlp_batch_size", "finetune_batch_size", "word_ngram_max", "char_ngram_min")
        for key in positive:
            if not getattr(self, key) > 0:
                raise ConfigError(f"clerk.nlu.{key}", "must be > 0")
        for key in ("mlp_weight_decay", "mlp_hidden", "warmup_steps", "finetune_epochs",
                    "finetune_layers"):
            if getattr(self, key) < 0:
                raise ConfigError(f"clerk.nlu.{key}", "must be >= 0")
        if self.char_ngram_max < self.char_ngram_min:
            raise ConfigError("clerk.nlu.char_ngram_max", "must be >= char_ngram_min")
        for key in ("threshold", "mlp_dropout", "threshold_quantile", "label_smoothing"):
            if not 0.0 <= getattr(self, key) <= 1.0:
                raise ConfigError(f"clerk.nlu.{key}", "must be between 0 and 1")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ConfigError("clerk.nlu.validation_fraction", "must be between 0 and 0.5")

    @property
    def needs_validation(self) -> bool:
        return self.classifier == "mlp" or self.calibrate_threshold

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> NLUConfig:
        """Build from a parsed config.yml. Unset values keep their defaults.

        The threshold is ``clerk.nlu.threshold``, else ``clerk.fallback_threshold``, else the
        ``threshold`` of a ``FallbackClassifier`` in Rasa's ``pipeline``. Unknown keys in
        ``clerk.nlu`` are an error (a typo would otherwise be silently ignored).
        """
        config = config or {}
        if not isinstance(config, Mapping):
            raise ConfigError("config", "top level must be a mapping")
        clerk = config.get("clerk") or {}
        nlu = dict(clerk.get("nlu") or {})
        kwargs: dict[str, Any] = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(nlu) - set(fields))
        if unknown:
            raise ConfigError("clerk.nlu", f"unknown keys {unknown}")
        try:
            for key, value in nlu.items():
                if key == "threshold":
                    continue
                default = fields[key].default
                if key == "featurizers":
                    if isinstance(value, str):
                        value = [v.strip() for v in value.split("+")]
                    kwargs[key] = tuple(str(f) for f in value)
                elif isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise ValueError(f"{key} must be true or false")
                    kwargs[key] = value
                elif isinstance(default, int):
                    if float(value) != int(float(value)):
                        raise ValueError(f"{key} must be an integer")
                    kwargs[key] = int(float(value))
                else:
                    kwargs[key] = type(default)(value)
            threshold = nlu.get("threshold", clerk.get("fallback_threshold"))
            if threshold is None:
                for comp in config.get("pipeline") or []:
                    if isinstance(comp, Mapping) and comp.get("name") == "FallbackClassifier":
                        threshold = comp.get("threshold")
            if threshold is not None:
                kwargs["threshold"] = float(threshold)
        except (TypeError, ValueError) as exc:
            raise ConfigError("clerk.nlu", f"bad value ({exc})") from None
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> NLUConfig:
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError("config", f"{path} not found") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise TrainingDataError(
                f"malformed YAML: {exc}", str(path), mark.line + 1 if mark else None
            ) from None
        if not isinstance(data, Mapping):
            raise TrainingDataError("top level must be a mapping", str(path), 1)
        return cls.from_mapping(data)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NLUConfig:
        """Inverse of ``to_dict`` (keys this version does not know are dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        if "featurizers" in kwargs:
            kwargs["featurizers"] = tuple(kwargs["featurizers"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["featurizers"] = list(self.featurizers)
        return out


USED_RASA_COMPONENTS = frozenset({"FallbackClassifier"})
USED_RASA_KEYS = frozenset({"recipe", "language", "pipeline", "policies", "assistant_id", "clerk"})


def rasa_config_notes(config: Mapping[str, Any]) -> list[str]:
    """What of a Rasa ``config.yml`` Clerk does not use, as lines to report once per training:
    pipeline components and policies (Clerk's own NLU and dialogue engine replace them; the
    ``FallbackClassifier`` threshold is used), a language other than English, unknown keys."""
    notes = []

    def names(section: str) -> list[str]:
        return [str(c.get("name")) for c in config.get(section) or [] if isinstance(c, Mapping)]

    ignored = [n for n in names("pipeline") if n not in USED_RASA_COMPONENTS]
    if ignored:
        notes.append("pipeline components ignored (Clerk's NLU replaces them; a "
                     f"FallbackClassifier threshold is used): {', '.join(ignored)}")
    if names("policies"):
        notes.append("policies ignored (Clerk's dialogue engine follows the rules and stories): "
                     + ", ".join(names("policies")))
    language = str(config.get("language") or "en")
    if language != "en":
        notes.append(f"language {language!r}: Clerk's default NLU is English-only")
    unknown = sorted(str(k) for k in config if k not in USED_RASA_KEYS)
    if unknown:
        notes.append(f"unknown keys ignored: {', '.join(unknown)}")
    return notes


# ---------------------------------------------------------------------------------------
# Featurisation
# ---------------------------------------------------------------------------------------

_MASKS = {
    "order_id": " orderid ",
    "email": " emailaddress ",
    "phone": " phonenumber ",
    "zipcode": " zipcode ",
    "ticket_id": " ticketid ",
}


def _mask(text: str, patterns: RegexEntityExtractor) -> str:
    """Replace pattern entities by a placeholder word so TF-IDF sees their kind, not digits."""
    ents = [e for e in patterns.extract(text) if e["entity"] in _MASKS]
    if not ents:
        return text.lower()
    out, pos = [], 0
    for e in resolve_overlaps(ents):
        out.append(text[pos : e["start"]])
        out.append(_MASKS[e["entity"]])
        pos = e["end"]
    out.append(text[pos:])
    return "".join(out).lower()


class _FastTfidf:
    """TfidfVectorizer.transform for one short text, as (column indices, values).

    Same numbers as scikit-learn's transform (sublinear tf, idf, L2 norm) at a tenth of
    its per-call overhead, which dominates for single chat messages.
    """

    def __init__(self, vec: Any) -> None:
        self.analyze = vec.build_analyzer()
        self.vocab: dict[str, int] = vec.vocabulary_
        self.idf = np.asarray(vec.idf_, dtype=np.float32)
        self.sublinear = bool(vec.sublinear_tf)
        if vec.norm not in ("l2", None):
            raise ValueError(f"unsupported TF-IDF norm {vec.norm!r}")
        self.l2 = vec.norm == "l2"

    def __call__(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        counts: dict[int, int] = {}
        vocab = self.vocab
        for token in self.analyze(text):
            j = vocab.get(token)
            if j is not None:
                counts[j] = counts.get(j, 0) + 1
        if not counts:
            return np.zeros(0, dtype=np.intp), np.zeros(0, dtype=np.float32)
        idx = np.fromiter(counts.keys(), dtype=np.intp, count=len(counts))
        tf = np.fromiter(counts.values(), dtype=np.float32, count=len(counts))
        if self.sublinear:
            np.log(tf, out=tf)
            tf += 1.0
        values = tf * self.idf[idx]
        if self.l2:
            norm = float(np.sqrt(np.dot(values, values)))
            if norm > 0:
                values /= norm
        return idx, values


@dataclass
class _Featurizer:
    """Feature blocks, in this order: MiniLM embedding, TF-IDF words, TF-IDF char_wb."""

    config: NLUConfig
    patterns: RegexEntityExtractor
    word: Any = None
    char: Any = None

    def fit(self, texts: Sequence[str]) -> _Featurizer:
        from sklearn.feature_extraction.text import TfidfVectorizer

        masked = [_mask(t, self.patterns) for t in texts]
        if "tfidf_word" in self.config.featurizers:
            self.word = TfidfVectorizer(
                ngram_range=(1, self.config.word_ngram_max),
                sublinear_tf=True,
                token_pattern=r"(?u)\b\w+\b",
                lowercase=False,
                dtype=np.float32,
            ).fit(masked)
        if "tfidf_char" in self.config.featurizers:
            self.char = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(self.config.char_ngram_min, self.config.char_ngram_max),
                sublinear_tf=True,
                min_df=2,
                lowercase=False,
                dtype=np.float32,
            ).fit(masked)
        return self

    def transform(self, texts: Sequence[str], embeddings: np.ndarray | None) -> Any:
        """The full sparse feature matrix (training and batch evaluation)."""
        from scipy import sparse

        blocks = []
        if "minilm" in self.config.featurizers:
            assert embeddings is not None
            blocks.append(sparse.csr_matrix(embeddings * self.config.embedding_weight))
        if self.word is not None or self.char is not None:
            masked = [_mask(t, self.patterns) for t in texts]
            if self.word is not None:
                blocks.append(self.word.transform(masked))
            if self.char is not None:
                blocks.append(self.char.transform(masked))
        return sparse.hstack(blocks, format="csr", dtype=np.float32)


def _fit_classifier(
    x: Any,
    y: Sequence[str],
    config: NLUConfig,
    *,
    x_val: Any = None,
    y_val: Sequence[str] | None = None,
    progress: ProgressFn | None = None,
) -> Any:
    """A fitted head with ``classes_``, ``coef_``, ``intercept_`` and ``predict``."""
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
    return clf.fit(x, list(y))


def _probabilities(clf: Any, x: Any) -> np.ndarray:
    """Class probabilities of a fitted head, columns in ``clf.classes_`` order."""
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
    correct = top[predicted == gold_arr]
    if not len(correct):
        return 0.0
    return float(np.round(np.quantile(correct, quantile), 4))


def _validation_split(labels: Sequence[str], fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Stratified (train rows, validation rows); intents with fewer than 2 examples stay in
    training only; every intent keeps at least one training example."""
    rng = np.random.RandomState(seed)
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    train, val = [], []
    for label in sorted(by_label):
        rows = np.asarray(by_label[label])
        rng.shuffle(rows)
        k = round(len(rows) * fraction) if len(rows) >= 2 else 0
        k = min(max(k, 1 if len(rows) >= 2 else 0), len(rows) - 1)
        val.extend(rows[:k].tolist())
        train.extend(rows[k:].tolist())
    return np.asarray(sorted(train), dtype=np.intp), np.asarray(sorted(val), dtype=np.intp)


# ---------------------------------------------------------------------------------------
# Entity extraction built from training data and catalog
# ---------------------------------------------------------------------------------------


def _build_entity_tables(
    data: NLUData, catalog: Iterable[Mapping[str, Any]] | None
) -> dict[str, Any]:
    """Everything the extractors need, as plain JSON (saved with the model)."""
    synonyms = {k: v for k, v in data.synonyms.items()}
    products = list(catalog or [])
    base = CatalogGazetteer.from_products(products, aliases=synonyms)
    extra_products: list[str] = []
    extra_options: list[str] = []
    for entity, bucket in (("product", extra_products), ("option", extra_options)):
        for value in list(data.lookups.get(entity, ())) + data.entity_values(entity):
            canonical = synonyms.get(value.lower(), value)
            if base._lookup(value) is None and base._lookup(canonical) is None:
                bucket.append(canonical)
    gazetteer = CatalogGazetteer.from_products(
        products, aliases=synonyms, extra_products=extra_products, extra_options=extra_options
    )
    reasons = ReasonExtractor.with_defaults(synonyms, data.entity_values("reason"))
    # nlu.yml regexes add patterns only for entities without a built-in pattern: the
    # built-ins normalise values and avoid false hits the usual Rasa regexes allow.
    extra_regexes = {
        name: list(patterns)
        for name, patterns in data.regexes.items()
        if name not in RegexEntityExtractor.ENTITIES
    }
    return {
        "gazetteer": gazetteer.to_dict(),
        "reasons": reasons.phrases,
        "regexes": extra_regexes,
        "synonyms": synonyms,
    }


def _extractor_from_tables(tables: Mapping[str, Any]) -> EntityExtractor:
    return EntityExtractor(
        patterns=RegexEntityExtractor(tables.get("regexes") or {}),
        gazetteer=CatalogGazetteer.from_dict(tables.get("gazetteer") or {}),
        reasons=ReasonExtractor(tables.get("reasons") or {}),
    )


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


# ---------------------------------------------------------------------------------------
# The model
# ---------------------------------------------------------------------------------------

def _finetuned_encoder(
    encoder: Encoder,
    texts: Sequence[str],
    labels: Sequence[str],
    config: NLUConfig,
    progress: ProgressFn | None,
) -> tuple[Encoder, Path]:
    """Fine-tune ``encoder``'s model into a temporary folder; an encoder serving it."""
    from bot.nlu.finetune import FinetuneSettings, finetune_encoder

    folder = Path(tempfile.mkdtemp(prefix="clerk-finetune-")) / _ENCODER_DIR
    base = Path(encoder.model_path)
    settings = FinetuneSettings(
        loss=config.finetune,
        epochs=config.finetune_epochs,
        lr=config.finetune_lr,
        batch_size=config.finetune_batch_size,
        train_layers=config.finetune_layers,
        seed=config.seed,
    )
    finetune_encoder(base, texts, labels, settings, folder, progress)
    return Encoder(folder, backend="torch"), folder


def _remove_when_unused(model: NLUModel, folder: Path) -> None:
    """Delete a temporary fine-tuning folder once its model is garbage-collected
    (``save`` has copied it by then, or the model was thrown away, as in tuning)."""
    import weakref

    weakref.finalize(model, shutil.rmtree, str(folder.parent), True)


_PAYLOAD = re.compile(
    r"^/(?P<intent>[A-Za-z0-9_][A-Za-z0-9_\-/.]*?)(?:@(?P<confidence>[0-9]*\.?[0-9]+))?"
    r"(?P<entities>\{.*\})?\s*$",
    re.DOTALL,
)


@dataclass
class NLUModel:
    """A trained NLU model. Build with ``train`` or ``load``; then call ``parse``."""

    labels: tuple[str, ...]
    config: NLUConfig
    encoder: Encoder = field(repr=False)
    featurizer: _Featurizer = field(repr=False)
    classifier: Any = field(repr=False)
    entity_tables: dict[str, Any] = field(repr=False)
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The fine-tuned sentence-transformer folder ``encoder`` was built from, if any;
    #: ``save`` copies it into the artifact.
    encoder_dir: Path | None = field(default=None, repr=False)
    extractor: EntityExtractor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.extractor = _extractor_from_tables(self.entity_tables)
        self._known = frozenset(self.labels) | BUILTIN_PAYLOAD_INTENTS
        # Pre-split the (first) linear layer so parse() does one small dense/sparse product;
        # an MLP head maps that layer's output to logits with ``head_logits``.
        coef = np.asarray(self.classifier.coef_, dtype=np.float32)
        intercept = np.asarray(self.classifier.intercept_, dtype=np.float32)
        self._head = getattr(self.classifier, "head_logits", None)
        if coef.shape[0] == 1 and self._head is None:  # binary LogisticRegression: one row
            coef = (np.vstack([-coef, coef]) / 2).astype(np.float32)
            intercept = (np.array([-intercept[0], intercept[0]]) / 2).astype(np.float32)
        self._intercept = intercept
        self._classes = tuple(str(c) for c in self.classifier.classes_)
        # Column slices of the coefficient matrix per feature block (transposed, [F, K]).
        coef_t = np.ascontiguousarray(coef.T)
        pos = 0
        self._w_emb = None
        if "minilm" in self.config.featurizers:
            dim = coef_t.shape[0] - sum(
                len(v.vocabulary_) for v in (self.featurizer.word, self.featurizer.char) if v
            )
            self._w_emb = coef_t[:dim] * np.float32(self.config.embedding_weight)
            pos = dim
        self._sparse_blocks: list[tuple[_FastTfidf, np.ndarray]] = []
        for vec in (self.featurizer.word, self.featurizer.char):
            if vec is not None:
                width = len(vec.vocabulary_)
                self._sparse_blocks.append((_FastTfidf(vec), coef_t[pos : pos + width]))
                pos += width
        if pos != coef_t.shape[0]:
            raise ValueError("the classifier's features do not match the featurizers")
        self._label_order = [self._classes.index(label) for label in self.labels]

    # -- training -------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        data: NLUData,
        *,
        encoder: Encoder,
        catalog: list[dict[str, Any]] | None = None,
        config: NLUConfig | None = None,
        progress: ProgressFn | None = None,
    ) -> NLUModel:
        """Fit on ``data``. Raises ``TrainingDataError`` when there is nothing to learn.

        With ``config.finetune`` the sentence-transformer is fine-tuned first (on the
        training part) and the returned model encodes with it (``encoder_dir`` holds it
        until ``save`` copies it into the artifact).
        """
        config = config or NLUConfig()
        started = time.perf_counter()
        texts = [e.text for e in data.examples]
        labels = [e.intent for e in data.examples]
        counts = data.intent_counts()
        if len(counts) < 2:
            raise TrainingDataError(f"need examples of at least 2 intents, got {sorted(counts)}")
        if config.needs_validation:
            train_rows, val_rows = _validation_split(labels, config.validation_fraction, config.seed)
        else:
            train_rows, val_rows = np.arange(len(texts)), np.zeros(0, dtype=np.intp)
        train_texts = [texts[i] for i in train_rows]
        train_labels = [labels[i] for i in train_rows]
        encoder_dir = None
        if config.finetune != "none" and "minilm" in config.featurizers:
            encoder, encoder_dir = _finetuned_encoder(
                encoder, train_texts, train_labels, config, progress
            )
        embeddings = None
        if "minilm" in config.featurizers:
            if progress:
                progress("encode", 0, len(texts))
            embeddings = encoder.encode(texts)
            if progress:
                progress("encode", len(texts), len(texts))
        tables = _build_entity_tables(data, catalog)
        patterns = RegexEntityExtractor(tables["regexes"])
        featurizer = _Featurizer(config, patterns).fit(train_texts)
        x = featurizer.transform(texts, embeddings)
        y = np.asarray(labels, dtype=object)
        if progress:
            progress("fit", 0, 1)
        x_val = x[val_rows] if len(val_rows) else None
        y_val = [labels[i] for i in val_rows] if len(val_rows) else None
        clf = _fit_classifier(
            x[train_rows], train_labels, config, x_val=x_val, y_val=y_val, progress=progress
        )
        extra: dict[str, Any] = {}
        if len(val_rows):
            val_probs = _probabilities(clf, x_val)
            val_pred = np.asarray(clf.classes_)[val_probs.argmax(axis=1)]
            extra["validation_size"] = len(val_rows)
            extra["validation_accuracy"] = round(float(np.mean(val_pred == y[val_rows])), 4)
            if config.calibrate_threshold:
                threshold = calibrate_threshold(
                    val_probs, y_val or [], [str(c) for c in clf.classes_],
                    quantile=config.threshold_quantile,
                )
                extra["calibrated_threshold"] = threshold
            if config.classifier == "logreg":  # refit on everything now the split did its job
                featurizer = _Featurizer(config, patterns).fit(texts)
                x = featurizer.transform(texts, embeddings)
                clf = _fit_classifier(x, labels, config)
        if progress:
            progress("fit", 1, 1)
        # The fingerprint names the configuration asked for, before calibration changes it.
        fingerprint = training_fingerprint(data, catalog, config)
        if "calibrated_threshold" in extra:
            config = dataclasses.replace(config, threshold=extra["calibrated_threshold"])
        if getattr(clf, "history", None):
            extra["history"] = clf.history
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
        model = cls(
            labels=tuple(str(c) for c in clf.classes_),
            config=config,
            encoder=encoder,
            featurizer=featurizer,
            classifier=clf,
            entity_tables=tables,
            metrics=metrics,
            encoder_dir=encoder_dir,
        )
        if encoder_dir is not None:
            _remove_when_unused(model, encoder_dir)
        if progress:
            progress("done", 1, 1)
        return model

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the artifact into ``directory`` (created; previous artifact replaced).

        Files are written to a temporary folder first and ``meta.json`` is moved last, so a
        reader never sees a half-written model.
        """
        import joblib

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".nlu-", dir=directory))
        try:
            joblib.dump(
                {"word": self.featurizer.word, "char": self.featurizer.char},
                tmp / _FEATURIZERS_FILE,
            )
            joblib.dump(self.classifier, tmp / _CLASSIFIER_FILE)
            (tmp / _ENTITIES).write_text(
                json.dumps(self.entity_tables, ensure_ascii=False, indent=1), encoding="utf-8"
            )
            meta = {
                "format_version": FORMAT_VERSION,
                "labels": list(self.labels),
                "config": self.config.to_dict(),
                "encoder": {"dim": self.encoder.dim, "model": self.encoder.model_path.name},
                "metrics": self.metrics,
            }
            if self.encoder_dir is not None:
                meta["encoder"]["finetuned"] = True
                if Path(self.encoder_dir).resolve() != (directory / _ENCODER_DIR).resolve():
                    shutil.copytree(
                        self.encoder_dir, tmp / _ENCODER_DIR,
                        ignore=shutil.ignore_patterns(".onnx*", "onnx", "*.onnx"),
                    )
            (tmp / _META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            (directory / _META).unlink(missing_ok=True)
            if (tmp / _ENCODER_DIR).exists():
                shutil.rmtree(directory / _ENCODER_DIR, ignore_errors=True)
                shutil.rmtree(directory / ".encoder-onnx", ignore_errors=True)
                os.replace(tmp / _ENCODER_DIR, directory / _ENCODER_DIR)
            elif self.encoder_dir is None:
                shutil.rmtree(directory / _ENCODER_DIR, ignore_errors=True)
            for name in (_FEATURIZERS_FILE, _CLASSIFIER_FILE, _ENTITIES, _META):
                os.replace(tmp / name, directory / name)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return directory

    @classmethod
    def load(cls, directory: str | Path, encoder: Encoder) -> NLUModel:
        """Load an artifact written by ``save``.

        Raises ``ModelNotTrainedError`` when the folder, a file, or a compatible format
        version is missing; ``ConfigError`` when ``encoder`` differs in dimension from the
        one the model was trained with. A model with a fine-tuned encoder serves with its
        own (``encoder/`` in the artifact), on ``encoder``'s backend: ONNX (cached in
        ``.encoder-onnx/``) when ``encoder`` has a cache folder, else torch.
        """
        import joblib

        directory = Path(directory)
        meta_file = directory / _META
        files = [
            meta_file,
            directory / _FEATURIZERS_FILE,
            directory / _CLASSIFIER_FILE,
            directory / _ENTITIES,
        ]
        if not all(f.is_file() for f in files):
            raise ModelNotTrainedError(str(directory))
        try:
            meta = json.loads(meta_file.read_text(encoding="utf-8"))
            if meta.get("format_version") != FORMAT_VERSION:
                log.warning(
                    "NLU model at %s has format %s, this Clerk reads %s",
                    directory,
                    meta.get("format_version"),
                    FORMAT_VERSION,
                )
                raise ModelNotTrainedError(str(directory))
            tables = json.loads((directory / _ENTITIES).read_text(encoding="utf-8"))
            vecs = joblib.load(directory / _FEATURIZERS_FILE)
            clf = joblib.load(directory / _CLASSIFIER_FILE)
            config = NLUConfig.from_dict(meta["config"])
        except ModelNotTrainedError:
            raise
        except Exception as exc:
            log.warning("NLU model at %s cannot be read: %s", directory, exc)
            raise ModelNotTrainedError(str(directory)) from exc
        encoder_dir = None
        if meta.get("encoder", {}).get("finetuned"):
            encoder_dir = directory / _ENCODER_DIR
            if not (encoder_dir / "config.json").is_file():
                raise ModelNotTrainedError(str(directory))
            if getattr(encoder, "cache_dir", None) is not None:
                encoder = Encoder(encoder_dir, cache_dir=directory / ".encoder-onnx")
            else:
                encoder = Encoder(encoder_dir, backend="torch")
        trained_dim = int(meta.get("encoder", {}).get("dim") or 0)
        if "minilm" in config.featurizers and trained_dim and trained_dim != encoder.dim:
            raise ConfigError(
                "encoder",
                f"NLU model was trained with {trained_dim}-d embeddings, "
                f"the encoder gives {encoder.dim}-d; retrain with `clerk train`",
            )
        featurizer = _Featurizer(
            config,
            RegexEntityExtractor(tables.get("regexes") or {}),
            word=vecs.get("word"),
            char=vecs.get("char"),
        )
        try:
            return cls(
                labels=tuple(meta["labels"]),
                config=config,
                encoder=encoder,
                featurizer=featurizer,
                classifier=clf,
                entity_tables=tables,
                metrics=dict(meta.get("metrics") or {}),
                encoder_dir=encoder_dir,
            )
        except (KeyError, ValueError, AttributeError) as exc:
            log.warning("NLU model at %s is inconsistent: %s", directory, exc)
            raise ModelNotTrainedError(str(directory)) from exc

    def with_threshold(self, threshold: float) -> NLUModel:
        """The same model with another fallback threshold (e.g. from Settings)."""
        return dataclasses.replace(
            self, config=dataclasses.replace(self.config, threshold=threshold)
        )

    # -- inference ------------------------------------------------------------------------

    @property
    def intents(self) -> tuple[str, ...]:
        return self.labels

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities, columns in ``self.labels`` order."""
        texts = list(texts)
        logits = np.tile(self._intercept, (len(texts), 1))
        if self._w_emb is not None:
            logits += self.encoder.encode(texts) @ self._w_emb
        if self._sparse_blocks:
            patterns = self.featurizer.patterns
            for row, text in enumerate(texts):
                masked = _mask(text, patterns)
                for tfidf, weights in self._sparse_blocks:
                    idx, values = tfidf(masked)
                    if len(idx):
                        logits[row] += values @ weights[idx]
        if self._head is not None:
            logits = self._head(logits)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return p[:, self._label_order]

    def parse(self, text: str) -> dict[str, Any]:
        text = "" if text is None else str(text)
        stripped = text.strip()
        if not stripped:
            return {
                "text": text,
                "intent": {"name": FALLBACK_INTENT, "confidence": 0.0},
                "entities": [],
                "intent_ranking": [],
            }
        if stripped.startswith("/"):
            parsed = self._parse_payload(text, stripped)
            if parsed is not None:
                return parsed
        probs = self.predict_proba([text])[0]
        order = np.argsort(-probs, kind="stable")[:RANKING_LENGTH]
        ranking = [{"name": self.labels[i], "confidence": float(probs[i])} for i in order]
        top = ranking[0]
        intent = dict(top)
        if top["confidence"] < self.config.threshold:
            intent = {"name": FALLBACK_INTENT, "confidence": top["confidence"]}
        return {
            "text": text,
            "intent": intent,
            "entities": self.extractor.extract(text),
            "intent_ranking": ranking,
        }

    def _parse_payload(self, text: str, stripped: str) -> dict[str, Any] | None:
        m = _PAYLOAD.match(stripped)
        if m is None or m.group("intent") not in self._known:
            return None
        intent = m.group("intent")
        confidence = 1.0
        if m.group("confidence"):
            confidence = min(1.0, max(0.0, float(m.group("confidence"))))
        entities: list[dict[str, Any]] = []
        raw = m.group("entities")
        if raw:
            offset = text.index(stripped) + m.start("entities")
            try:
                data = json.loads(raw)
                if not isinstance(data, dict):
                    raise TypeError("entities must be a JSON object")
            except (ValueError, TypeError, RecursionError) as exc:  # Recursion: too deep
                log.warning("ignoring malformed entities in payload %r: %s", stripped[:200],
                            exc)
                data = {}
            for name, values in data.items():
                for value in values if isinstance(values, list) else [values]:
                    entities.append(
                        {
                            "entity": str(name),
                            "value": value,
                            "start": offset,
                            "end": offset + len(raw),
                        }
                    )
        return {
            "text": text,
            "intent": {"name": intent, "confidence": confidence},
            "entities": entities,
            "intent_ranking": [{"name": intent, "confidence": confidence}],
        }


# ---------------------------------------------------------------------------------------
# Evaluation
# ---------------------------------------------------------------------------------------


def cross_validate(
    data: NLUData,
    *,
    encoder: Encoder,
    config: NLUConfig | None = None,
    folds: int = 5,
) -> dict[str, Any]:
    """Stratified k-fold intent accuracy and macro F1 (each text encoded once).

    Returns ``{"accuracy", "macro_f1", "folds", "errors": [(text, gold, predicted), ...]}``.
    """
    from sklearn.metrics import f1_score
    from sklearn.model_selection import StratifiedKFold

    config = config or NLUConfig()
    texts = [e.text for e in data.examples]
    labels = np.asarray([e.intent for e in data.examples])
    emb = encoder.encode(texts) if "minilm" in config.featurizers else None
    patterns = RegexEntityExtractor()
    predicted = np.empty(len(texts), dtype=object)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=config.seed)
    for train_idx, test_idx in splitter.split(texts, labels):
        feat = _Featurizer(config, patterns).fit([texts[i] for i in train_idx])
        x_train = feat.transform(
            [texts[i] for i in train_idx], None if emb is None else emb[train_idx]
        )
        clf = _fit_classifier(x_train, labels[train_idx], config)
        x_test = feat.transform(
            [texts[i] for i in test_idx], None if emb is None else emb[test_idx]
        )
        predicted[test_idx] = clf.predict(x_test)
    errors = [
        (texts[i], str(labels[i]), str(predicted[i]))
        for i in range(len(texts))
        if labels[i] != predicted[i]
    ]
    return {
        "accuracy": float(np.mean(predicted == labels)),
        "macro_f1": float(f1_score(labels, predicted.astype(str), average="macro")),
        "folds": folds,
        "errors": errors,
    }
