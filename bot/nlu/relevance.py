"""When a knowledge-search hit is relevant enough to answer from: cut-offs on its dense
(cosine) and lexical (BM25) scores that belong to the sentence encoder, whose cosines they
read. Each encoder carries its own (``Encoder.relevance``, ``E5Encoder.relevance``); the
answer writer receives them from ``bot.app`` and is the one place they are applied.

A hit is relevant when its cosine is at least ``min_dense``, or at least
``min_dense_with_terms`` with BM25 at least ``min_lexical``. ``source_margin``: how far
below the best relevant cosine another passage may be and still be quoted.

``MINILM``: calibrated on the English demo store (``bot.generation.extractive``).
``E5``: multilingual-e5-small puts every text close to every other (off-topic Chinese
questions score 0.82-0.90 against policy passages, relevant ones 0.87-0.94), calibrated on
``benchmarks/zh_relevance.json`` by ``benchmarks/zh_relevance.py``: 29 of 30 relevant
questions answered, 1 of 30 off-topic ones. An English question against Chinese passages
scores about 0.84 and is not answered with these cut-offs.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Relevance:
    min_dense: float
    min_dense_with_terms: float
    min_lexical: float
    source_margin: float

    def admits(self, dense: float, lexical: float) -> bool:
        if dense >= self.min_dense:
            return True
        return dense >= self.min_dense_with_terms and lexical >= self.min_lexical


#: The recommender's "similar to" cut-off on the cosine of two products' texts, per encoder
#: (``Encoder.min_similar``, ``E5Encoder.min_similar``). Measured on 32 labelled pairs of
#: the demo catalog by ``benchmarks/recommend_cutoffs.py``: MiniLM's alike pairs 0.29-0.83,
#: unlike 0.13-0.38 (0.5 calls 29 of 32 right, no unlike pair similar); e5's alike
#: 0.84-0.94, unlike 0.79-0.86, where 0.5 would call every pair similar and 0.84 calls
#: 31 of 32 right.
MINILM_SIMILAR = 0.5
E5_SIMILAR = 0.84

MINILM = Relevance(min_dense=0.45, min_dense_with_terms=0.25, min_lexical=2.0, source_margin=0.15)
E5 = Relevance(min_dense=0.88, min_dense_with_terms=0.865, min_lexical=0.7, source_margin=0.03)
