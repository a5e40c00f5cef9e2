"""``Recommender``: suggestions for one shopper, each with the reason it is suggested.

Contract:

- ``recommend(query)`` is blocking: call it on a thread, outside any unit of work
  (``bot.store_actions.recommendations`` does). It reads the store in two short
  ``db.session()`` blocks and computes between and after them, holding no session while
  it embeds; it never waits on a network call. The only slow step, embedding the
  catalog's product texts, runs once per catalog content (``content_key``: names and
  options; prices and stock do not count) in one caller, and its vectors are kept in this
  instance (``content_index``: others meanwhile use the previous ones, or none); its
  embedding of the shopper's text (for the kind of product asked about, when no word of a
  product name matched) is one short sentence. ``warm()`` computes the vectors at start.
- ``embed`` (texts -> one vector per text, e.g. ``Encoder.encode``) is optional: without
  it, or when it fails (logged as a warning, counted in ``content_failures``, not retried
  for ``FAILURE_BACKOFF_S`` and longer after each failure in a row), the recommender uses
  co-purchase and popularity only, and ``Recommendations.degraded`` says so.
- Safe to share between threads: the cached vectors are replaced whole, under a lock.

What it suggests (``Query`` -> ``Recommendations``):

- **anchors**: the products the shopper named in the conversation, then the ones they
  ordered (most recent order first). Candidates are scored from the anchors by
  co-purchase, content similarity and popularity (``bot.recommend.scoring``).
- **a product named**: its own variants first (up to ``same_product``), then related ones.
- **the kind of product asked about** (``Wishes.category``), or with no product named and
  no word matched, the products whose names are closest in meaning to the shopper's
  latest message (when close enough): only those, by popularity among them (and
  co-purchase with the shopper's products) — how a shopper nobody knows is served.
- **filters**: a variant must be in stock, not one the shopper ordered, within the price
  range asked for and have the options asked for (with a product named: those of its
  options); a product the shopper ordered is not suggested again unless they name it.
- each product is shown through its best variant (most ordered, then cheapest); for a
  kind of product asked about, the next best variants follow (``same_product`` at most),
  after one of each product. Each ``Suggestion`` has a ``Reason`` (data, not words: the
  caller words it).
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any, Literal

import numpy as np

from bot.errors import UnknownCustomer
from bot.lang.price_range import PriceRange
from bot.recommend.scoring import (
    MIN_SIMILAR,
    ContentIndex,
    Embed,
    Weights,
    product_text,
    score_products,
)
from bot.recommend.store import (
    Catalog,
    CatalogProduct,
    CatalogVariant,
    History,
    Purchases,
    customer_exists,
    read_catalog,
    read_history,
    read_purchases,
    variant_orders,
)
from bot.recommend.wishes import Lexicon, OptionWish, Wishes, read_wishes
from bot.store.db import Database

log = logging.getLogger(__name__)

#: With no word of a product name in the text, the products whose names are this close to
#: the text (cosine) and this near the closest one are the kind of product asked about.
#: On the demo catalog requests with no product in mind ("can you recommend something?",
#: "what goes well with my order") stay under 0.38; "something to listen to music" ->
#: Headphones 0.52, "I want to take photos on my trip" -> Digital Camera 0.45.
CONTENT_CATEGORY_MIN = 0.42
#: After the encoder fails, nobody retries it for this long; doubled with each failure
#: in a row, up to the maximum.
FAILURE_BACKOFF_S = 30.0
FAILURE_BACKOFF_MAX_S = 3600.0
_TEXT_KEY = "(the shopper's text)"
CONTENT_CATEGORY_NEAR = 0.06

Situation = Literal["asked_product", "unknown_product", "category", "personal", "popular"]
ReasonKind = Literal[
    "asked_for",
    "bought_with",
    "bought_with_yours",
    "similar_to",
    "similar_to_yours",
    "popular_in",
    "popular",
    "in_category",  # of the kind asked about; nobody ordered it yet
    "in_stock",  # nothing to say but that it is in stock; nobody ordered it yet
]


@dataclass(frozen=True)
class Query:
    """Who asks and what they said. ``texts``: the shopper's messages, oldest first;
    ``product``: the product entity or slot value, if any."""

    customer_id: str | None = None
    texts: tuple[str, ...] = ()
    product: str | None = None
    k: int = 5


@dataclass(frozen=True)
class Reason:
    """Why a product is suggested: ``kind`` with the product it refers to (``product``,
    a name) or the kind asked about (``category``), plus what it matches of the request
    (``options`` as the shopper said them, ``price``)."""

    kind: ReasonKind
    product: str | None = None
    category: str | None = None
    options: tuple[str, ...] = ()
    price: PriceRange = field(default_factory=PriceRange)


@dataclass(frozen=True)
class Suggestion:
    product_id: str
    item_id: str
    name: str
    options: dict[str, Any]
    price: Decimal
    available: bool
    reason: Reason


@dataclass(frozen=True)
class Recommendations:
    suggestions: tuple[Suggestion, ...]
    situation: Situation
    subject: str | None = None  # the product or kind asked about, as named
    related: bool = False  # with a product asked about: others are suggested with it
    narrowed: bool = False  # options or a price range were asked for
    degraded: bool = False  # content similarity was not available


class Recommender:
    """Recommends from ``db``; ``embed`` as in the module doc; ``weights`` of the blend;
    at most ``same_product`` variants of one product."""

    def __init__(
        self,
        db: Database,
        embed: Embed | None = None,
        *,
        weights: Weights | None = None,
        same_product: int = 3,
        min_similar: float = MIN_SIMILAR,
    ) -> None:
        """``min_similar``: the cosine from which a suggestion is "similar to" a product,
        the encoder's (``Encoder.min_similar``; ``bot.nlu.relevance``), as ``embed``'s
        cosines read it."""
        self.db = db
        self.min_similar = min_similar
        self.weights = weights or Weights()
        self.same_product = same_product
        self.content_failures = 0
        self._embed = embed
        self._lock = threading.Lock()
        self._building = threading.Lock()  # held by the one caller computing vectors
        self._content: tuple[str, ContentIndex] | None = None
        self._lexicon: tuple[str, Lexicon] | None = None
        # catalog content key (or _TEXT_KEY) -> (failures in a row, no retry before)
        self._failures: dict[str, tuple[int, float]] = {}

    # ------------------------------------------------------------------ content vectors

    def lexicon(self, catalog: Catalog, key: str | None = None) -> Lexicon:
        """The catalog's words indexed for reading messages (``wishes.Lexicon``), built
        once per catalog content (``key``: its ``content_key``)."""
        key = key or content_key(catalog)
        cached = self._lexicon
        if cached is not None and cached[0] == key:
            return cached[1]
        lexicon = Lexicon.build(catalog)
        self._lexicon = (key, lexicon)  # replaced whole: a racing caller built the same
        return lexicon

    def content_index(self, catalog: Catalog, key: str | None = None) -> ContentIndex | None:
        """The catalog's product vectors, computed once per catalog content; ``None``
        without an embedding function, while they cannot be had, or after a failure.

        One caller computes them; a caller that finds another one at it does not wait: it
        gets the previous catalog's vectors (products since added are missing from them)
        or ``None``. A failure is remembered per catalog content: no caller retries it
        before ``FAILURE_BACKOFF_S`` (doubling with each failure in a row, at most
        ``FAILURE_BACKOFF_MAX_S``)."""
        if self._embed is None:
            return None
        key = key or content_key(catalog)
        previous = self._content
        if previous is not None and previous[0] == key:
            return previous[1]
        stale = previous[1] if previous is not None else None
        if self._backing_off(key) or not self._building.acquire(blocking=False):
            return stale
        try:
            previous = self._content
            if previous is not None and previous[0] == key:
                return previous[1]
            try:
                index = ContentIndex.build(catalog, self._embed)
            except Exception as exc:  # noqa: BLE001 - an encoder that cannot load or run: degrade, logged
                wait = self._failed(key)
                log.warning(
                    "recommendations without content similarity (retry in %.0f s): %s", wait, exc
                )
                return stale
            self._failures.pop(key, None)
            self._content = (key, index)
            return index
        finally:
            self._building.release()

    def _backing_off(self, key: str) -> bool:
        failed = self._failures.get(key)
        return failed is not None and time.monotonic() < failed[1]

    def _failed(self, key: str) -> float:
        """Counts a failure for ``key``; the seconds before it may be tried again."""
        with self._lock:
            self.content_failures += 1
            n = self._failures.get(key, (0, 0.0))[0] + 1
            wait = min(FAILURE_BACKOFF_MAX_S, FAILURE_BACKOFF_S * 2 ** (n - 1))
            self._failures[key] = (n, time.monotonic() + wait)
            return wait

    def _text_scores(self, index: ContentIndex, text: str) -> dict[str, float]:
        assert self._embed is not None
        if self._backing_off(_TEXT_KEY):
            return {}
        try:
            scores = index.to_vector(np.asarray(self._embed([text]))[0])
        except Exception as exc:  # noqa: BLE001 - as above: degrade, logged and counted
            wait = self._failed(_TEXT_KEY)
            log.warning(
                "recommendations without the text's similarity (retry in %.0f s): %s", wait, exc
            )
            return {}
        self._failures.pop(_TEXT_KEY, None)
        return scores

    # -------------------------------------------------------------------- recommending

    def warm(self) -> None:
        """Compute the catalog's vectors and lexicon now (at start-up), not in a shopper's
        turn."""
        with self.db.session() as s:
            catalog = read_catalog(s)
        key = content_key(catalog)
        self.lexicon(catalog, key)
        self.content_index(catalog, key)

    def check_customer(self, customer_id: str) -> None:
        """``UnknownCustomer`` unless the store has this customer."""
        with self.db.session() as s:
            if not customer_exists(s, customer_id):
                raise UnknownCustomer(customer_id)

    def recommend(self, query: Query) -> Recommendations:
        with self.db.session() as s:
            catalog = read_catalog(s)
            history = read_history(s, query.customer_id) if query.customer_id else History()
        if not catalog.products:
            return Recommendations((), "popular", degraded=self._embed is None)
        key = content_key(catalog)
        wishes = _about_the_product_named(
            read_wishes(
                query.texts, catalog, named=query.product, lexicon=self.lexicon(catalog, key)
            ),
            catalog,
        )
        index = self.content_index(catalog, key)
        category, label = wishes.category, wishes.category_label
        guessed = False
        if not category and not wishes.products and index is not None:
            latest = query.texts[-1] if query.texts else ""
            if latest.strip():
                category, label = self._category_by_content(index, catalog, latest)
                guessed = bool(category)
        anchors = list(wishes.products) + [p for p in history.products if p not in wishes.products]
        with self.db.session() as s:
            purchases = read_purchases(s, anchors)
            ordered = variant_orders(s)
        ctx = _Context(
            catalog=catalog,
            history=history,
            wishes=wishes,
            anchors=tuple(anchors),
            purchases=purchases,
            ordered=ordered,
            similar=index.similar(anchors) if index is not None and anchors else None,
        )
        picks, asked_count = self._pick(ctx, category, label, query.k)
        if not picks and guessed:  # a kind guessed from meaning that has nothing asked for
            category, label = (), None
            picks, asked_count = self._pick(ctx, category, label, query.k)
        situation, subject = _situation(wishes, catalog, history, category, label)
        return Recommendations(
            suggestions=tuple(picks),
            situation=situation,
            subject=subject,
            related=len(picks) > asked_count > 0,
            narrowed=wishes.narrowing,
            degraded=self._embed is None or index is None,
        )

    def _pick(
        self, ctx: _Context, category: Sequence[str], label: str | None, k: int
    ) -> tuple[list[Suggestion], int]:
        """Up to ``k`` suggestions: the product named first, then the ranked ones (within
        ``category`` when given); and how many are of the product named."""
        owned = set(ctx.history.products) - set(ctx.wishes.products)
        pool = [
            pid
            for pid in (category or [p.product_id for p in ctx.catalog.products])
            if pid not in owned and pid not in ctx.wishes.products
        ]
        weights = self._weights(category, ctx.anchors)
        ranked = score_products(
            pool, ctx.anchors, ctx.purchases, ctx.similar, weights, min_similar=self.min_similar
        )
        picks: list[Suggestion] = []
        for pid in ctx.wishes.products[:1]:  # the product asked about, first
            product = ctx.catalog.by_id[pid]
            for v in self._variants(product, ctx)[: self.same_product]:
                picks.append(self._suggestion(product, v, Reason("asked_for", product.name), ctx))
        asked_count = len(picks)
        # one variant per product; for a kind of product asked about, then more of each
        rounds: list[list[Suggestion]] = []
        for scored in ranked:
            if len(picks) + len(rounds) >= k and not category:
                break
            product = ctx.catalog.by_id[scored.product_id]
            variants = self._variants(product, ctx)
            if variants:
                reason = self._reason(scored.signal, scored.anchor, ctx, label, category)
                rounds.append([self._suggestion(product, v, reason, ctx) for v in variants])
        for n in range(self.same_product if category else 1):
            picks.extend(r[n] for r in rounds if len(r) > n)
        return picks[:k], asked_count

    def _weights(self, category: Sequence[str], anchors: Sequence[str]) -> Weights:
        """The blend's weights; for a kind of product asked about, popularity among them
        (with co-purchase when the shopper has products); without anchors, popularity."""
        if category:
            return Weights(self.weights.co_purchase if anchors else 0.0, 0.0, 1.0)
        return self.weights if anchors else Weights(0.0, 0.0, 1.0)

    # ----------------------------------------------------------------------- the parts

    def _category_by_content(
        self, index: ContentIndex, catalog: Catalog, text: str
    ) -> tuple[tuple[str, ...], str | None]:
        """The products closest to ``text`` when it is close enough to any: the kind of
        product asked about, named after the closest."""
        scores = {p: v for p, v in self._text_scores(index, text).items() if p in catalog.by_id}
        best = max(scores.values(), default=0.0)
        if best < CONTENT_CATEGORY_MIN:
            return (), None
        near = sorted(
            (p for p in scores if scores[p] >= best - CONTENT_CATEGORY_NEAR),
            key=lambda p: -scores[p],
        )
        return tuple(near), catalog.name(near[0])

    def _reason(
        self,
        signal: str,
        anchor: str | None,
        ctx: _Context,
        label: str | None,
        category: Sequence[str],
    ) -> Reason:
        name = ctx.catalog.name(anchor) if anchor else None
        yours = anchor in ctx.history.products
        if signal == "bought_with" and name:
            return Reason("bought_with_yours" if yours else "bought_with", name)
        if signal == "similar_to" and name:
            return Reason("similar_to_yours" if yours else "similar_to", name)
        if category and label:
            return Reason("popular_in" if signal == "popular" else "in_category", category=label)
        return Reason("popular" if signal == "popular" else "in_stock")

    @staticmethod
    def _variants(product: CatalogProduct, ctx: _Context) -> list[CatalogVariant]:
        """The product's variants a shopper may be offered, best first."""
        fitting = [
            v
            for v in product.variants
            if v.available
            and v.item_id not in ctx.history.items
            and ctx.wishes.price.holds(float(v.price))
            and all(_has(v, o) for o in ctx.wishes.options)
        ]
        return sorted(fitting, key=lambda v: (-ctx.ordered.get(v.item_id, 0), v.price, v.item_id))

    @staticmethod
    def _suggestion(
        product: CatalogProduct, v: CatalogVariant, reason: Reason, ctx: _Context
    ) -> Suggestion:
        if ctx.wishes.narrowing:
            reason = Reason(
                reason.kind,
                reason.product,
                reason.category,
                options=tuple(o.said for o in ctx.wishes.options),
                price=ctx.wishes.price,
            )
        return Suggestion(
            product_id=product.product_id,
            item_id=v.item_id,
            name=product.name,
            options=dict(v.options),
            price=v.price,
            available=v.available,
            reason=reason,
        )


def content_key(catalog: Catalog) -> str:
    """What the catalog's vectors depend on: its products' ids and texts (names and
    options; prices and stock do not count)."""
    return hashlib.sha256(
        "\n".join(f"{p.product_id}\t{product_text(p)}" for p in catalog.products).encode()
    ).hexdigest()


@dataclass(frozen=True)
class _Context:
    """What one request reads before picking: the store's side and the shopper's."""

    catalog: Catalog
    history: History
    wishes: Wishes
    anchors: tuple[str, ...]
    purchases: Purchases
    ordered: Mapping[str, int]
    similar: Mapping[str, tuple[float, str]] | None


def _has(v: CatalogVariant, wish: OptionWish) -> bool:
    """The variant has the option asked for (a product without that option has not)."""
    return any(str(v.options.get(key, "")).lower() == wish.value for key in wish.keys)


def _situation(
    wishes: Wishes,
    catalog: Catalog,
    history: History,
    category: Sequence[str],
    label: str | None,
) -> tuple[Situation, str | None]:
    """What the suggestions answer, and the product or kind it is about."""
    if wishes.products:
        return "asked_product", catalog.name(wishes.products[0])
    if wishes.unknown_product:
        return "unknown_product", wishes.unknown_product
    if category:
        return "category", label
    return ("personal" if history.products else "popular"), None


def _about_the_product_named(wishes: Wishes, catalog: Catalog) -> Wishes:
    """With a product named, only the options it has count ("a yoga mat for a beginner":
    ``beginner`` is a puzzle's difficulty, not a wish about yoga mats)."""
    if not wishes.products:
        return wishes
    product = catalog.by_id[wishes.products[0]]
    keys = {k for v in product.variants for k in v.options}
    return replace(wishes, options=tuple(o for o in wishes.options if set(o.keys) & keys))
