"""Clerk's NLU model: intent classification plus rule-based entity extraction, served.

``NLUModel`` is a trained model: built by ``train`` (``bot.nlu.fit``) or ``load``
(``bot.nlu.artifacts``), then asked to ``parse``. Features are the injected sentence
``Encoder``'s MiniLM embedding concatenated with TF-IDF word (1-2) and char_wb (2-5) n-grams
by default (``bot.nlu.features``); the classifier is scikit-learn's LogisticRegression or a
torch-trained MLP head (``bot.nlu.heads``), optionally after fine-tuning the
sentence-transformer (``bot.nlu.finetune``). ``NLUConfig`` (``bot.nlu.config``) lists every
setting; ``clerk tune`` searches them. Below ``config.threshold`` the intent becomes
``nlu_fallback`` (the top confidence is kept and ``intent_ranking`` still lists the real
intents), like Rasa's FallbackClassifier. Entities come from ``bot.nlu.entities``
(patterns, the catalog gazetteer, reason synonyms), built from the model's entity tables.

``parse`` returns Rasa's parse shape::

    {"text": ..., "intent": {"name": ..., "confidence": ...},
     "entities": [...], "intent_ranking": [{"name": ..., "confidence": ...}, ...top 10]}

Button payloads (``/intent`` and ``/intent{"entity": "value"}``, optionally
``/intent@0.8``) bypass the model when the intent is one the model knows.

Serving never calls scikit-learn or torch per message: ``FastTfidf`` computes each TF-IDF
block and ``FastHead`` the classifier's forward pass with numpy, giving the probabilities
the fitted head gives on ``Featurizer.transform``'s rows (``tests/test_nlu_fast_paths.py``).

Ownership: ``NLUModel`` holds the encoder it was given but never saves it; the artifact
folder holds only the vectorisers, the classifier, labels, config, entity tables and
training metrics — plus ``encoder/``, the fine-tuned sentence-transformer, when the config
fine-tunes (the model then encodes with it, not with the encoder it was given). ``parse`` is
thread-safe (the model is read-only after training).
"""

from __future__ import annotations

import dataclasses
import json
import logging
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from bot.errors import ConfigError, ModelNotTrainedError
from bot.nlu.artifacts import ENCODER_ONNX_DIR, Artifact, read_artifact, write_artifact
from bot.nlu.config import FALLBACK_INTENT, NLUConfig
from bot.nlu.data import NLUData
from bot.nlu.e5 import E5Encoder
from bot.nlu.encoder import Encoder, TextEncoder, encoder_id
from bot.nlu.entities import EntityExtractor
from bot.nlu.entity_tables import extractor_from_tables, patterns_from_tables
from bot.nlu.features import FastTfidf, Featurizer, mask_text
from bot.nlu.rejection import UNCALIBRATED_THRESHOLD

if TYPE_CHECKING:
    from bot.nlu.fit import ProgressFn
    from bot.nlu.heads import Head

log = logging.getLogger(__name__)

__all__ = ["FastHead", "IntentClassifier", "NLUModel"]

RANKING_LENGTH = 10
#: Intents Rasa accepts in payloads even when no example trains them.
BUILTIN_PAYLOAD_INTENTS = frozenset({"restart", "session_start", "back", FALLBACK_INTENT})

#: One text's TF-IDF features: (column indices, values) per TF-IDF block, as ``FastTfidf``
#: gives them.
SparseRow = Sequence[tuple[np.ndarray, np.ndarray]]


class IntentClassifier(Protocol):
    """The NLU boundary the dialogue manager depends on."""

    def parse(self, text: str) -> dict[str, Any]: ...


#: The word vectoriser's tokens; the unknown-words rule judges Latin-letter words only.
_WORD = re.compile(r"(?u)\b\w+\b")
_LATIN_WORD = re.compile(r"[a-z]+")

_PAYLOAD = re.compile(
    r"^/(?P<intent>[A-Za-z0-9_][A-Za-z0-9_\-/.]*?)(?:@(?P<confidence>[0-9]*\.?[0-9]+))?"
    r"(?P<entities>\{.*\})?\s*$",
    re.DOTALL,
)


class FastHead:
    """A fitted head's forward pass with its first linear layer split by feature block.

    The feature row is ``[embedding * embedding_weight | TF-IDF block 1 | block 2 ...]``
    (``Featurizer``'s order); ``sparse_widths`` are the TF-IDF blocks' widths and
    ``embedding_weight`` is ``None`` when there is no embedding block (else the embedding
    block is whatever columns the widths leave). ``probabilities`` takes the raw embeddings
    and each block's (indices, values) instead of the row, and returns what
    ``head.predict_proba`` returns on the row, float32, columns in ``head.classes_`` order.
    A binary logistic regression (one logit) is served as two logits ``-z/2, z/2``, whose
    softmax is its sigmoid. Raises ``ValueError`` when the widths do not fit the head.
    """

    def __init__(
        self, head: Head, *, sparse_widths: Sequence[int], embedding_weight: float | None
    ) -> None:
        coef = np.asarray(head.coef_, dtype=np.float32)
        intercept = np.asarray(head.intercept_, dtype=np.float32)
        self._head = getattr(head, "head_logits", None)
        if coef.shape[0] == 1 and self._head is None:  # binary LogisticRegression: one row
            coef = (np.vstack([-coef, coef]) / 2).astype(np.float32)
            intercept = (np.array([-intercept[0], intercept[0]]) / 2).astype(np.float32)
        self._intercept = intercept
        # Row slices of the transposed coefficient matrix ([features, units]) per block.
        coef_t = np.ascontiguousarray(coef.T)
        pos = 0
        self._w_emb: np.ndarray | None = None
        if embedding_weight is not None:
            dim = coef_t.shape[0] - sum(sparse_widths)
            if dim <= 0:
                raise ValueError("the classifier has no columns left for the embedding")
            self._w_emb = coef_t[:dim] * np.float32(embedding_weight)
            pos = dim
        self._sparse: list[np.ndarray] = []
        for width in sparse_widths:
            self._sparse.append(coef_t[pos : pos + width])
            pos += width
        if pos != coef_t.shape[0]:
            raise ValueError("the classifier's features do not match the featurizers")

    @property
    def embedding_dim(self) -> int:
        """The embedding block's width; 0 without one."""
        return 0 if self._w_emb is None else int(self._w_emb.shape[0])

    def probabilities(
        self, embeddings: np.ndarray | None, sparse: Sequence[SparseRow]
    ) -> np.ndarray:
        """Probabilities for ``len(sparse)`` rows: ``embeddings`` (one per row, unweighted;
        required exactly when there is an embedding block) and each row's TF-IDF blocks."""
        logits = np.tile(self._intercept, (len(sparse), 1))
        if self._w_emb is not None:
            if embeddings is None:
                raise ValueError("this head needs the texts' embeddings")
            logits += embeddings @ self._w_emb
        for row, blocks in enumerate(sparse):
            for (idx, values), weights in zip(blocks, self._sparse, strict=True):
                if len(idx):
                    logits[row] += values @ weights[idx]
        if self._head is not None:
            logits = self._head(logits)
        logits -= logits.max(axis=1, keepdims=True)
        p = np.exp(logits)
        p /= p.sum(axis=1, keepdims=True)
        return p


@dataclass
class NLUModel:
    """A trained NLU model. Build with ``train`` or ``load``; then call ``parse``.

    Construction raises ``ValueError`` when the classifier does not fit the featurizers.
    """

    labels: tuple[str, ...]
    config: NLUConfig
    encoder: TextEncoder = field(repr=False)
    featurizer: Featurizer = field(repr=False)
    classifier: Head = field(repr=False)
    entity_tables: dict[str, Any] = field(repr=False)
    metrics: dict[str, Any] = field(default_factory=dict, repr=False)
    #: The fine-tuned sentence-transformer folder ``encoder`` was built from, if any;
    #: ``save`` copies it into the artifact.
    encoder_dir: Path | None = field(default=None, repr=False)
    #: ``encoder_id`` of the encoder the model was trained with (the base model when
    #: fine-tuned); "" for a model that does not embed (TF-IDF only), which serves with
    #: any encoder, or one saved before ids were recorded.
    encoder_id: str = field(default="", repr=False)
    extractor: EntityExtractor = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.extractor = extractor_from_tables(self.entity_tables)
        self._known = frozenset(self.labels) | BUILTIN_PAYLOAD_INTENTS
        vectorizers = self.featurizer.vectorizers
        self._tfidf = [FastTfidf(vec) for vec in vectorizers]
        self._fast = FastHead(
            self.classifier,
            sparse_widths=[len(vec.vocabulary_) for vec in vectorizers],
            embedding_weight=(self.config.embedding_weight if self.config.embeds else None),
        )
        classes = tuple(str(c) for c in self.classifier.classes_)
        self._label_order = [classes.index(label) for label in self.labels]
        word = self.featurizer.word
        self._vocabulary: frozenset[str] | None = None
        if word is not None and self.config.unknown_words_fallback:
            self._vocabulary = frozenset(t for t in word.vocabulary_ if " " not in t)

    # -- training -------------------------------------------------------------------------

    @classmethod
    def train(
        cls,
        data: NLUData,
        *,
        encoder: TextEncoder,
        catalog: list[dict[str, Any]] | None = None,
        config: NLUConfig | None = None,
        progress: ProgressFn | None = None,
    ) -> NLUModel:
        """Fit on ``data`` (``bot.nlu.fit.fit_model``). Raises ``TrainingDataError`` when
        there is nothing to learn.

        With ``config.finetune`` the sentence-transformer is fine-tuned first (on the
        training part) and the returned model encodes with it (``encoder_dir`` holds it
        until ``save`` copies it into the artifact; it is deleted with the model).
        """
        from bot.nlu.fit import fit_model, remove_when_unused

        fitted = fit_model(
            data,
            encoder=encoder,
            catalog=catalog,
            config=config or NLUConfig(),
            progress=progress,
        )
        model = cls(
            labels=fitted.labels,
            config=fitted.config,
            encoder=fitted.encoder,
            featurizer=fitted.featurizer,
            classifier=fitted.classifier,
            entity_tables=fitted.entity_tables,
            metrics=fitted.metrics,
            encoder_dir=fitted.encoder_dir,
            encoder_id=encoder_id(encoder) if fitted.config.embeds else "",
        )
        if fitted.encoder_dir is not None:
            remove_when_unused(model, fitted.encoder_dir)
        if progress:
            progress("done", 1, 1)
        return model

    # -- persistence ----------------------------------------------------------------------

    def save(self, directory: str | Path) -> Path:
        """Write the artifact into ``directory`` (created; previous artifact replaced).

        Files are written to a temporary folder first and ``meta.json`` is moved last, so a
        reader never sees a half-written model (``bot.nlu.artifacts``).
        """
        artifact = Artifact(
            labels=self.labels,
            config=self.config,
            word=self.featurizer.word,
            char=self.featurizer.char,
            classifier=self.classifier,
            entity_tables=self.entity_tables,
            metrics=self.metrics,
            encoder_dim=self.encoder.dim,
            encoder_name=self.encoder.model_path.name,
            encoder_dir=self.encoder_dir,
            encoder_id=self.encoder_id,
        )
        return write_artifact(artifact, directory)

    @classmethod
    def load(cls, directory: str | Path, encoder: TextEncoder) -> NLUModel:
        """Load an artifact written by ``save``.

        Raises ``ModelNotTrainedError`` when the folder, a file, or a compatible format
        version is missing; ``ConfigError`` when the model embeds (``minilm``) and
        ``encoder`` is not the one it was trained with (another ``encoder_id``, e.g. MiniLM
        against e5: the store's language changed since training) or differs in dimension.
        A model with a fine-tuned encoder serves with its own (``encoder/`` in the
        artifact), on ``encoder``'s backend: ONNX (cached in ``.encoder-onnx/``) when
        ``encoder`` has a cache folder, else torch.
        """
        directory = Path(directory)
        artifact = read_artifact(directory)
        config = artifact.config
        if config.embeds:
            _check_encoder(artifact.encoder_id, encoder)
        if artifact.encoder_dir is not None:
            if getattr(encoder, "cache_dir", None) is not None:
                encoder = Encoder(
                    artifact.encoder_dir,
                    cache_dir=directory / ENCODER_ONNX_DIR,
                    precision=getattr(encoder, "precision", "fp32"),
                )
            else:
                encoder = Encoder(artifact.encoder_dir, backend="torch")
        trained_dim = artifact.encoder_dim
        if config.embeds and trained_dim and trained_dim != encoder.dim:
            raise ConfigError(
                "encoder",
                f"NLU model was trained with {trained_dim}-d embeddings, "
                f"the encoder gives {encoder.dim}-d; retrain with `clerk train`",
            )
        featurizer = Featurizer(
            config,
            patterns_from_tables(artifact.entity_tables),
            word=artifact.word,
            char=artifact.char,
        )
        try:
            return cls(
                labels=artifact.labels,
                config=config,
                encoder=encoder,
                featurizer=featurizer,
                classifier=artifact.classifier,
                entity_tables=artifact.entity_tables,
                metrics=artifact.metrics,
                encoder_dir=artifact.encoder_dir,
                encoder_id=artifact.encoder_id,
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

    @property
    def threshold(self) -> float:
        """The fallback threshold (a model built with none set uses Rasa's default)."""
        threshold = self.config.threshold
        return UNCALIBRATED_THRESHOLD if threshold is None else threshold

    def predict_proba(self, texts: Sequence[str]) -> np.ndarray:
        """Class probabilities (float32), one row per text, columns in ``self.labels``
        order."""
        texts = list(texts)
        embeddings = self.encoder.encode(texts) if self._fast.embedding_dim else None
        sparse = [self._tfidf_row(text) for text in texts]
        return self._fast.probabilities(embeddings, sparse)[:, self._label_order]

    def _tfidf_row(self, text: str) -> SparseRow:
        if not self._tfidf:
            return ()
        inputs = self.featurizer.inputs(mask_text(text, self.featurizer.patterns))
        return [tfidf(t) for tfidf, t in zip(self._tfidf, inputs, strict=True)]

    def accepts(self, text: str, confidence: float) -> bool:
        """Whether a message whose top intent has ``confidence`` keeps it (else it falls
        back): at least the threshold, and, with ``unknown_words_fallback``, not made only
        of Latin-letter words the training data never used with no entity in it."""
        if confidence < self.threshold:
            return False
        return self._vocabulary is None or not self._only_unknown_words(text, self._vocabulary)

    def _only_unknown_words(self, text: str, vocabulary: frozenset[str]) -> bool:
        # The raw words, not the TF-IDF path's masked text: ids and phone numbers hold
        # digits (not judged) and an email is an entity, so masking would change nothing.
        words = _WORD.findall(text.lower())
        if not words or not all(_LATIN_WORD.fullmatch(w) for w in words):
            return False  # numbers, other scripts: the rule does not judge them
        if any(w in vocabulary for w in words):
            return False
        return not self.extractor.extract(text)

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
        if not self.accepts(text, top["confidence"]):
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
                log.warning("ignoring malformed entities in payload %r: %s", stripped[:200], exc)
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


def _check_encoder(trained_with: str, encoder: TextEncoder) -> None:
    """``ConfigError`` naming both encoders when ``encoder`` is not the one a model was
    trained with (``trained_with``: its ``encoder_id``; "" for a model saved before ids were
    recorded, which only MiniLM made)."""
    serving = encoder_id(encoder)
    if not trained_with and isinstance(encoder, E5Encoder):
        trained_with = "MiniLM (all-MiniLM-L6-v2; the model predates recorded encoders)"
    if trained_with and trained_with != serving:
        raise ConfigError(
            "encoder",
            f"NLU model was trained with encoder {trained_with!r}, but is served with "
            f"{serving!r} (the store's language chooses the encoder: `language` in "
            "config.yml or CLERK_LANGUAGE); retrain with `clerk train`",
        )
