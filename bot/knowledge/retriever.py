"""Retrieval over the knowledge base.

``Retriever`` is the contract the answerer depends on: one method, ``search``. The
built-in ``HybridRetriever`` ranks passages twice — BM25 over ``terms`` of the passage text
and cosine similarity of MiniLM embeddings — and fuses the two rankings by reciprocal rank
fusion (score = sum of 1 / (rrf_k + rank)). A passage only enters the BM25 ranking when it
shares a term with the query.

Fused scores order hits but say nothing about relevance on their own; each ``Hit`` therefore
also carries its raw ``dense`` (cosine) and ``lexical`` (BM25) scores, which the answer
writer compares against its calibrated threshold.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bot.knowledge.index import KnowledgeIndex
from bot.knowledge.passages import Passage


@dataclass(frozen=True)
class Hit:
    passage_id: str
    title: str
    text: str
    kind: str  # product | policy | faq
    score: float  # the fused rank score: higher is better, comparable within one search
    meta: Mapping[str, Any] = field(default_factory=dict)
    source: str = ""
    dense: float = 0.0  # cosine similarity of query and passage
    lexical: float = 0.0  # BM25 score of the passage for the query


def _as_set(value: str | Iterable[str] | None) -> frozenset[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return frozenset({value.lower()})
    return frozenset(v.lower() for v in value)


@dataclass(frozen=True)
class SearchFilters:
    """Restrictions on what ``search`` may return; ``None`` means no restriction.

    ``kinds`` restricts passage kinds. The product filters (``in_stock``, ``min_price``,
    ``max_price``, ``product_types``) admit only product passages: one with at least one
    variant that is in stock (when asked) within the price range, whose product type (the
    product's name, case-insensitive) is listed.
    """

    kinds: frozenset[str] | None = None
    in_stock: bool | None = None
    min_price: float | None = None
    max_price: float | None = None
    product_types: frozenset[str] | None = None

    @classmethod
    def of(
        cls,
        *,
        kind: str | Iterable[str] | None = None,
        in_stock: bool | None = None,
        min_price: float | None = None,
        max_price: float | None = None,
        product_type: str | Iterable[str] | None = None,
    ) -> SearchFilters:
        return cls(_as_set(kind), in_stock, min_price, max_price, _as_set(product_type))

    @property
    def product_only(self) -> bool:
        return (
            self.in_stock is not None
            or self.min_price is not None
            or self.max_price is not None
            or self.product_types is not None
        )

    def admits(self, passage: Passage) -> bool:
        if self.kinds is not None and passage.kind not in self.kinds:
            return False
        if not self.product_only:
            return True
        if passage.kind != "product":
            return False
        meta = passage.meta
        product_type = str(meta.get("product_type", passage.title)).lower()
        if self.product_types is not None and product_type not in self.product_types:
            return False
        for v in meta.get("variants", []):
            price = float(v.get("price", 0))
            if self.in_stock is not None and bool(v.get("available")) != self.in_stock:
                continue
            if self.min_price is not None and price < self.min_price:
                continue
            if self.max_price is not None and price > self.max_price:
                continue
            return True
        return False


class Retriever(ABC):
    """Finds the passages most relevant to a query. Implementations must be thread-safe;
    they raise ``KnowledgeError`` when their index cannot be used."""

    @abstractmethod
    def search(self, query: str, k: int = 5, filters: SearchFilters | None = None) -> list[Hit]:
        """At most ``k`` hits admitted by ``filters``, best first."""


class HybridRetriever(Retriever):
    def __init__(
        self, index: KnowledgeIndex, *, rrf_k: int = 60, dense_weight: float = 1.0
    ) -> None:
        self.index = index
        self.rrf_k = rrf_k
        self.dense_weight = dense_weight

    def search(self, query: str, k: int = 5, filters: SearchFilters | None = None) -> list[Hit]:
        passages = self.index.passages
        if k <= 0 or not passages or not query.strip():
            return []
        mask = np.ones(len(passages), dtype=bool)
        if filters is not None:
            mask = np.fromiter((filters.admits(p) for p in passages), bool, len(passages))
        candidates = np.flatnonzero(mask)
        if candidates.size == 0:
            return []
        lexical = self.index.lexical_scores(query)
        dense = self.index.dense_scores(query)
        fused = np.zeros(len(passages), dtype=np.float64)
        by_dense = candidates[np.argsort(-dense[candidates], kind="stable")]
        fused[by_dense] += self.dense_weight / (self.rrf_k + np.arange(1, by_dense.size + 1))
        matched = candidates[lexical[candidates] > 0]
        by_lexical = matched[np.argsort(-lexical[matched], kind="stable")]
        fused[by_lexical] += 1.0 / (self.rrf_k + np.arange(1, by_lexical.size + 1))
        order = sorted(candidates.tolist(), key=lambda i: (-fused[i], -dense[i]))[:k]
        return [
            Hit(
                passage_id=passages[i].id,
                title=passages[i].title,
                text=passages[i].text,
                kind=passages[i].kind,
                score=float(fused[i]),
                meta=passages[i].meta,
                source=passages[i].source,
                dense=float(dense[i]),
                lexical=float(lexical[i]),
            )
            for i in order
        ]
