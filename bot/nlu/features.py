"""The NLU's features: MiniLM embedding, TF-IDF words, TF-IDF char_wb, in this order.

``Featurizer`` fits the TF-IDF vectorisers (scikit-learn) and builds the full sparse feature
matrix for training and batch evaluation. ``FastTfidf`` is the serving path's copy of one
fitted vectoriser's ``transform`` for a single text: the same numbers (up to float32
rounding) without scikit-learn's per-call overhead; ``tests/test_nlu_fast_paths.py`` holds
it to scikit-learn. Both see texts through ``mask_text``: pattern entities (order ids,
emails, phones, zip codes, ticket ids) become a placeholder word, so TF-IDF learns their
kind, not their digits.

Chinese has no spaces between words. The word block reads each run of Han characters cut
into words (``word_text``: "我想退款" -> "我 想 退款"), so its 1-2-grams are words and word
pairs rather than whole sentences; the char block reads the run unsegmented, so its
char_wb n-grams are the run's character n-grams, across word boundaries. Text without Han
characters reads exactly as before, so English models are unchanged.

Contract: the vectorisers' settings below are part of the saved artifact (they are pickled
with it); changing them changes what a retrained model computes, not what a saved one does.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from bot.lang import han_runs, segment
from bot.nlu.config import NLUConfig
from bot.nlu.entities import RegexEntityExtractor, resolve_overlaps

if TYPE_CHECKING:
    from scipy.sparse import csr_matrix
    from sklearn.feature_extraction.text import TfidfVectorizer

__all__ = ["FastTfidf", "Featurizer", "mask_text", "word_text"]

_MASKS = {
    "order_id": " orderid ",
    "email": " emailaddress ",
    "phone": " phonenumber ",
    "zipcode": " zipcode ",
    "ticket_id": " ticketid ",
}


def mask_text(text: str, patterns: RegexEntityExtractor) -> str:
    """``text`` lower-cased, with each pattern entity replaced by a placeholder word (so
    TF-IDF sees its kind, not its digits); overlapping matches resolved as the extractor
    resolves them."""
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


def word_text(masked: str) -> str:
    """What the word block reads of a masked text: each run of Han characters cut into
    words, with spaces around them; everything else as it is."""
    parts: list[str] = []
    done = 0
    for start, end in han_runs(masked):
        parts.append(masked[done:start])
        parts.append(" " + " ".join(segment(masked[start:end])) + " ")
        done = end
    if not parts:
        return masked
    parts.append(masked[done:])
    return "".join(parts)


class FastTfidf:
    """``TfidfVectorizer.transform`` for one short text, as (column indices, values).

    Same numbers as scikit-learn's transform (raw or sublinear tf, idf, L2 or no norm), in
    float32, at a tenth of its per-call overhead, which dominates for single chat messages.
    Indices are unique but unordered; a text with no known term gives two empty arrays.
    Raises ``ValueError`` for a norm other than ``"l2"`` or ``None``. The vectoriser must
    count terms (``binary=False``, ``use_idf=True``), as ``Featurizer``'s do.
    """

    def __init__(self, vec: TfidfVectorizer) -> None:
        if vec.norm not in ("l2", None):
            raise ValueError(f"unsupported TF-IDF norm {vec.norm!r}")
        if vec.binary or not vec.use_idf:
            raise ValueError("only counting, idf-weighted TF-IDF vectorisers are supported")
        self.analyze: Callable[[str], list[str]] = vec.build_analyzer()
        self.vocab: dict[str, int] = vec.vocabulary_
        self.idf = np.asarray(vec.idf_, dtype=np.float32)
        self.sublinear = bool(vec.sublinear_tf)
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
class Featurizer:
    """Feature blocks, in this order: MiniLM embedding (times ``config.embedding_weight``),
    TF-IDF words, TF-IDF char_wb; each present when ``config.featurizers`` names it.

    ``word``/``char`` are the fitted vectorisers (``None`` when not used or not fitted);
    ``fit`` sets them, ``load`` passes the saved ones in.
    """

    config: NLUConfig
    patterns: RegexEntityExtractor
    word: TfidfVectorizer | None = None
    char: TfidfVectorizer | None = None

    def fit(self, texts: Sequence[str]) -> Featurizer:
        """Fit the TF-IDF vectorisers the config names on ``texts`` (masked); ``self``."""
        from sklearn.feature_extraction.text import TfidfVectorizer

        masked = [mask_text(t, self.patterns) for t in texts]
        if "tfidf_word" in self.config.featurizers:
            self.word = TfidfVectorizer(
                ngram_range=(1, self.config.word_ngram_max),
                sublinear_tf=True,
                token_pattern=r"(?u)\b\w+\b",
                lowercase=False,
                dtype=np.float32,
            ).fit([word_text(t) for t in masked])
        if "tfidf_char" in self.config.featurizers:

            def char_vectorizer(min_df: int) -> TfidfVectorizer:
                return TfidfVectorizer(
                    analyzer="char_wb",
                    ngram_range=(self.config.char_ngram_min, self.config.char_ngram_max),
                    sublinear_tf=True,
                    min_df=min_df,
                    lowercase=False,
                    dtype=np.float32,
                )

            # n-grams of a single text are noise, unless no two texts share any (a handful
            # of examples): then every n-gram is kept rather than none.
            shared = char_vectorizer(2)
            try:
                self.char = shared.fit(masked)
            except ValueError:  # scikit-learn: "no terms remain"
                self.char = char_vectorizer(1).fit(masked)
        return self

    @property
    def vectorizers(self) -> list[TfidfVectorizer]:
        """The fitted TF-IDF vectorisers in feature-block order."""
        return [v for v in (self.word, self.char) if v is not None]

    def inputs(self, masked: str) -> list[str]:
        """What each fitted vectoriser reads of a masked text, in ``vectorizers`` order:
        ``word_text`` for the word block, the masked text itself for the char block."""
        return ([word_text(masked)] if self.word is not None else []) + (
            [masked] if self.char is not None else []
        )

    def transform(self, texts: Sequence[str], embeddings: np.ndarray | None) -> csr_matrix:
        """The full sparse float32 feature matrix, one row per text (training and batch
        evaluation). ``embeddings`` (one row per text) is required when the config uses
        ``minilm`` and ignored otherwise."""
        from scipy import sparse

        blocks = []
        if self.config.embeds:
            if embeddings is None:
                raise ValueError("the minilm featurizer needs the texts' embeddings")
            blocks.append(sparse.csr_matrix(embeddings * self.config.embedding_weight))
        if self.vectorizers:
            inputs = [self.inputs(mask_text(t, self.patterns)) for t in texts]
            blocks.extend(
                vec.transform([row[i] for row in inputs]) for i, vec in enumerate(self.vectorizers)
            )
        return sparse.hstack(blocks, format="csr", dtype=np.float32)
