"""Clerk's NLU model: intent classification plus rule-based entity extraction.

Features are the injected sentence ``Encoder``'s MiniLM embedding concatenated with TF-IDF
word (1-2) and char_wb (2-5) n-grams; the classifier is scikit-learn's
LogisticRegression. Below ``config.threshold`` the intent becomes ``nlu_fallback`` (the
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
training metrics. ``parse`` is thread-safe (the model is read-only after training).
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
    "IntentClassifier",
    "NLUConfig",
    "NLUModel",
    "ProgressFn",
    "cross_validate",
    "training_fingerprint",
]

FORMAT_VERSION = 1
FALLBACK_INTENT = "nlu_fallback"
RANKING_LENGTH = 10
FEATURIZERS = ("minilm", "tfidf_word", "tfidf_char")
#: Intents Rasa accepts in payloads even when no example trains them.
BUILTIN_PAYLOAD_INTENTS = frozenset({"restart", "session_start", "back", FALLBACK_INTENT})

ProgressFn = Callable[[str, int, int], None]
"""``progress(stage, done, total)``; stages: "encode", "fit", "done"."""

_META = "meta.json"
_ENTITIES = "entities.json"
_FEATURIZERS_FILE = "featurizers.joblib"
_CLASSIFIER_FILE = "classifier.joblib"


class IntentClassifier(Protocol):
    """The NLU boundary the dialogue manager depends on."""

    def parse(self, text: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class NLUConfig:
    """Settings of Clerk's NLU, read from the ``clerk: nlu:`` section of config.yml."""

    featurizers: tuple[str, ...] = FEATURIZERS
    classifier: str = "logreg"
    C: float = 10.0
    seed: int = 13
    threshold: float = 0.45
    max_iter: int = 3000
    #: Scales the (unit-length) sentence embedding against the TF-IDF blocks.
    embedding_weight: float = 2.0

    def __post_init__(self) -> None:
        unknown = [f for f in self.featurizers if f not in FEATURIZERS]
        if unknown or not self.featurizers:
            raise ConfigError(
                "clerk.nlu.featurizers", f"unknown or no featurizers {unknown}; use {FEATURIZERS}"
            )
        if self.classifier != "logreg":
            raise ConfigError("clerk.nlu.classifier", f"unknown classifier {self.classifier!r}")
        if not self.C > 0:
            raise ConfigError("clerk.nlu.C", "must be > 0")
        if not 0.0 <= self.threshold <= 1.0:
            raise ConfigError("clerk.nlu.threshold", "must be between 0 and 1")
        if not self.embedding_weight > 0:
            raise ConfigError("clerk.nlu.embedding_weight", "must be > 0")

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> NLUConfig:
        """Build from a parsed config.yml. Unset values keep their defaults.

        The threshold is ``clerk.nlu.threshold``, else ``clerk.fallback_threshold``, else the
        ``threshold`` of a ``FallbackClassifier`` in Rasa's ``pipeline``.
        """
        config = config or {}
        clerk = config.get("clerk") or {}
        nlu = dict(clerk.get("nlu") or {})
        kwargs: dict[str, Any] = {}
        try:
            if "featurizers" in nlu:
                kwargs["featurizers"] = tuple(str(f) for f in nlu["featurizers"])
            if "classifier" in nlu:
                kwargs["classifier"] = str(nlu["classifier"])
            for key, cast in (
                ("C", float),
                ("seed", int),
                ("max_iter", int),
                ("embedding_weight", float),
            ):
                if key in nlu:
                    kwargs[key] = cast(nlu[key])
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

    def to_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["featurizers"] = list(self.featurizers)
        return out


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
                ngram_range=(1, 2),
                sublinear_tf=True,
                token_pattern=r"(?u)\b\w+\b",
                lowercase=False,
                dtype=np.float32,
            ).fit(masked)
        if "tfidf_char" in self.config.featurizers:
            self.char = TfidfVectorizer(
                analyzer="char_wb",
                ngram_range=(2, 5),
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


def _fit_classifier(x: Any, y: Sequence[str], config: NLUConfig) -> Any:
    from sklearn.linear_model import LogisticRegression

    clf = LogisticRegression(C=config.C, max_iter=config.max_iter, random_state=config.seed)
    return clf.fit(x, list(y))


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
    extractor: EntityExtractor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.extractor = _extractor_from_tables(self.entity_tables)
        self._known = frozenset(self.labels) | BUILTIN_PAYLOAD_INTENTS
        # Pre-split the linear model so parse() does one small dense/sparse product.
        coef = np.asarray(self.classifier.coef_, dtype=np.float32)
        intercept = np.asarray(self.classifier.intercept_, dtype=np.float32)
        if coef.shape[0] == 1:  # binary LogisticRegression: one row for classes_[1]
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
        """Fit on ``data``. Raises ``TrainingDataError`` when there is nothing to learn."""
        config = config or NLUConfig()
        started = time.perf_counter()
        texts = [e.text for e in data.examples]
        labels = [e.intent for e in data.examples]
        counts = data.intent_counts()
        if len(counts) < 2:
            raise TrainingDataError(f"need examples of at least 2 intents, got {sorted(counts)}")
        embeddings = None
        if "minilm" in config.featurizers:
            if progress:
                progress("encode", 0, len(texts))
            embeddings = encoder.encode(texts)
            if progress:
                progress("encode", len(texts), len(texts))
        tables = _build_entity_tables(data, catalog)
        patterns = RegexEntityExtractor(tables["regexes"])
        featurizer = _Featurizer(config, patterns).fit(texts)
        x = featurizer.transform(texts, embeddings)
        if progress:
            progress("fit", 0, 1)
        clf = _fit_classifier(x, labels, config)
        if progress:
            progress("fit", 1, 1)
        train_accuracy = float(np.mean(clf.predict(x) == np.asarray(labels)))
        metrics = {
            "fingerprint": training_fingerprint(data, catalog, config),
            "train_size": len(texts),
            "intent_counts": counts,
            "n_features": int(x.shape[1]),
            "train_accuracy": round(train_accuracy, 4),
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
        )
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
            (tmp / _META).write_text(json.dumps(meta, indent=1), encoding="utf-8")
            (directory / _META).unlink(missing_ok=True)
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
        one the model was trained with.
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
            config = NLUConfig(
                **{**meta["config"], "featurizers": tuple(meta["config"]["featurizers"])}
            )
        except ModelNotTrainedError:
            raise
        except Exception as exc:
            log.warning("NLU model at %s cannot be read: %s", directory, exc)
            raise ModelNotTrainedError(str(directory)) from exc
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
            except (ValueError, TypeError) as exc:
                log.warning("ignoring malformed entities in payload %r: %s", stripped, exc)
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
