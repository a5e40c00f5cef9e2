"""Scoring candidate products from three signals, and why each one scores.

- **co-purchase**: for a candidate, the orders that hold it together with an *anchor*
  (a product the shopper bought or named), summed over the anchors;
- **content**: the candidate's highest cosine to an anchor's vector (``ContentIndex``);
- **popularity**: the orders that hold it.

Each signal is scaled to [0, 1] over the candidates (divided by its maximum; cosines
min-max scaled), and the score is their weighted sum (``Weights``). A candidate's *signal*
is what its reason says, the most personal one that clearly holds: bought with the anchor
it names by at least ``MIN_TOGETHER`` customers (``Purchases.buyers``) and in the upper half of the shopper's
co-purchase counts; else a cosine of at least ``min_similar`` to an anchor (the
encoder's cut-off, ``bot.nlu.relevance``; ``MIN_SIMILAR``, MiniLM's, by default); else popular
when anybody ordered it; else ``none`` (nothing to say but that it is there).
Pure functions over plain values: the same code ranks for a shopper and in
``benchmarks/recs_eval.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bot.nlu.relevance import MINILM_SIMILAR
from bot.recommend.store import Catalog, CatalogProduct, Purchases

Signal = Literal["bought_with", "similar_to", "popular", "none"]
Embed = Callable[[list[str]], np.ndarray]

#: Ties are broken by popularity, at a weight no real signal reaches.
_TIE_BREAK = 1e-6
#: What a reason needs to say "often bought with" / "similar to" (see the module doc).
MIN_TOGETHER = 2
MIN_SIMILAR = MINILM_SIMILAR


@dataclass(frozen=True)
class Weights:
    """How much each signal counts. On the demo store's orders (``benchmarks/recs_eval.py``)
    the validation split prefers popularity alone by a hair (NDCG@10 0.192 vs 0.189), and
    on the held-out orders these defaults are level with it (no significant difference);
    they keep co-purchase and content so that a known shopper's suggestions, and their
    reasons, come from what the shopper bought. A store with real co-purchase structure
    should rerun the benchmark on its own orders."""

    co_purchase: float = 0.25
    content: float = 0.1
    popularity: float = 1.0


@dataclass(frozen=True)
class Scored:
    product_id: str
    score: float
    signal: Signal
    anchor: str | None  # the product the signal points to (bought with / similar to)


def product_text(product: CatalogProduct) -> str:
    """What a product's content vector is computed from: its name and its options with
    their values (``"T-Shirt. color: blue, red; size: M, L"``)."""
    values: dict[str, list[str]] = {}
    for v in product.variants:
        for key, value in v.options.items():
            seen = values.setdefault(str(key), [])
            if str(value) not in seen:
                seen.append(str(value))
    options = "; ".join(f"{k}: {', '.join(vs)}" for k, vs in values.items())
    return f"{product.name}. {options}" if options else product.name


@dataclass(frozen=True)
class ContentIndex:
    """Unit vectors of a catalog's products, row ``i`` for ``ids[i]``: ``vectors`` of
    ``product_text`` (product to product), ``name_vectors`` of the names alone (a
    shopper's text to products: options in a product's text make any sentence about
    sizes or colours look close to it). Immutable; safe to share between threads."""

    ids: tuple[str, ...]
    vectors: np.ndarray
    name_vectors: np.ndarray

    @classmethod
    def build(cls, catalog: Catalog, embed: Embed) -> ContentIndex:
        """One ``embed`` call for the products' texts and names."""
        ids = tuple(p.product_id for p in catalog.products)
        if not ids:
            empty = np.zeros((0, 1), dtype=np.float32)
            return cls(ids, empty, empty)
        texts = [product_text(p) for p in catalog.products] + [p.name for p in catalog.products]
        vectors = np.asarray(embed(texts), dtype=np.float32)
        vectors = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
        return cls(ids, vectors[: len(ids)], vectors[len(ids) :])

    def similar(self, anchors: Collection[str]) -> dict[str, tuple[float, str]]:
        """For every product, its highest cosine to one of ``anchors`` (itself excluded)
        and that anchor."""
        row = {pid: i for i, pid in enumerate(self.ids)}
        known = [a for a in anchors if a in row]
        if not known:
            return {}
        sims = self.vectors @ self.vectors[[row[a] for a in known]].T  # (products, anchors)
        for j, a in enumerate(known):
            sims[row[a], j] = -np.inf
        best = np.argmax(sims, axis=1)
        return {
            pid: (float(sims[i, best[i]]), known[int(best[i])])
            for i, pid in enumerate(self.ids)
            if np.isfinite(sims[i, best[i]])
        }

    def to_vector(self, vector: np.ndarray) -> dict[str, float]:
        """Every product name's cosine to ``vector`` (a shopper's text's embedding)."""
        if not self.ids:
            return {}
        v = np.asarray(vector, dtype=np.float32).reshape(-1)
        v = v / max(float(np.linalg.norm(v)), 1e-12)
        return {pid: float(s) for pid, s in zip(self.ids, self.name_vectors @ v, strict=True)}


def _scaled(
    raw: Mapping[str, float], candidates: Sequence[str], *, shift: bool
) -> dict[str, float]:
    values = [raw[c] for c in candidates if c in raw]
    if not values:
        return {}
    low = min(values) if shift else 0.0
    span = max(values) - low
    if span <= 0:
        return {c: (1.0 if raw.get(c, 0) > 0 else 0.0) for c in candidates if c in raw}
    return {c: (raw[c] - low) / span for c in candidates if c in raw}


def score_products(
    candidates: Sequence[str],
    anchors: Sequence[str],
    purchases: Purchases,
    similar: Mapping[str, tuple[float, str]] | None,
    weights: Weights,
    *,
    min_similar: float = MIN_SIMILAR,
) -> list[Scored]:
    """``candidates`` scored and sorted, best first (ties: product id). ``anchors``: the
    shopper's products, the one to name first first; ``similar`` is
    ``ContentIndex.similar(anchors)`` (``None``: no content signal); ``min_similar``: the
    cosine a reason needs to say "similar to" (the encoder's, ``bot.nlu.relevance``)."""
    co_raw: dict[str, float] = {}
    co_anchor: dict[str, tuple[int, str]] = {}
    for c in candidates:
        counts = [(purchases.together.get(a, {}).get(c, 0), a) for a in anchors]
        total = sum(n for n, _ in counts)
        if total:  # the anchor bought with it most often; the first of equals
            co_raw[c] = float(total)
            co_anchor[c] = max(counts, key=lambda na: na[0])
    co = _scaled(co_raw, candidates, shift=False)
    content = (
        _scaled({c: similar[c][0] for c in candidates if c in similar}, candidates, shift=True)
        if similar
        else {}
    )
    pop = _scaled(
        {c: float(purchases.popularity.get(c, 0)) for c in candidates}, candidates, shift=False
    )
    out = []
    for c in candidates:
        score = (
            weights.co_purchase * co.get(c, 0.0)
            + weights.content * content.get(c, 0.0)
            + weights.popularity * pop.get(c, 0.0)
            + _TIE_BREAK * pop.get(c, 0.0)
        )
        _, anchor = co_anchor.get(c, (0, ""))
        often = bool(anchor) and purchases.buyers(anchor, c) >= MIN_TOGETHER
        if weights.co_purchase and often and co.get(c, 0) >= 0.5:
            out.append(Scored(c, score, "bought_with", anchor))
        elif weights.content and similar and c in similar and similar[c][0] >= min_similar:
            out.append(Scored(c, score, "similar_to", similar[c][1]))
        elif purchases.popularity.get(c, 0) > 0:
            out.append(Scored(c, score, "popular", None))
        else:
            out.append(Scored(c, score, "none", None))
    out.sort(key=lambda s: (-s.score, s.product_id))
    return out
