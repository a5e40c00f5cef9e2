"""``action_recommend_products``: suggestions from ``bot.recommend``, each with its reason.

The action asks its ``Recommender`` (built by the composition root and passed to
``build_actions``; an action built without one, as rasa-sdk builds it, makes its own on
first use: ``recommender_from_env``) for suggestions for the verified shopper
(``customer_id`` slot), the shopper's messages in this conversation (products, options and
price ranges asked for) and the ``product`` entity or slot.

The reply is the response ``utter_suggestions`` with ``{intro}`` (one of ``utter_suggest_*``)
and ``{products}`` (one ``utter_suggestion_line`` per suggestion: the item and its reason),
plus a ``custom`` payload ``{"type": "product_cards", "products": [...]}`` of at most
``MAX_CARDS`` JSON-serialisable cards, each with its ``reason`` (a phrase the engine words
from the domain: ``utter_reason_*``; the payload carries ``bot.types.WORD_PHRASES`` to ask
for that, and the engine drops it).
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.recommend.engine import Query, Reason, Recommendations, Recommender, Suggestion
from bot.store.db import Database
from bot.store_actions import replies
from bot.store_actions.base import StoreAction, first_entity
from bot.types import WORD_PHRASES

log = logging.getLogger(__name__)

MAX_CARDS = 5
#: The shopper's messages the recommender reads, the latest last.
CONVERSATION_WINDOW = 6

_env_lock = threading.Lock()
_env_recommenders: dict[str, Recommender] = {}


def recommender_from_env(db: Database) -> Recommender:
    """The process's ``Recommender`` over ``db`` (one per database URL) for an action
    server started alone: it embeds products with the encoder the settings give
    (``bot.app.make_encoder``'s: the ONNX export cached in the home). When the encoder
    cannot be built or run, recommendations use co-purchase and popularity only, with a
    logged warning."""
    with _env_lock:
        found = _env_recommenders.get(db.url)
        if found is None:
            found = _env_recommenders[db.url] = Recommender(db, _encoder_from_env())
        return found


def _encoder_from_env() -> Any:
    from bot.config import Settings
    from bot.errors import ClerkError
    from bot.nlu.encoder import Encoder

    try:
        encoder = Encoder(cache_dir=Settings.load().home / "encoder")
    except (ClerkError, OSError, ImportError) as exc:
        log.warning("recommendations without content similarity: no encoder (%s)", exc)
        return None
    return encoder.encode


def shopper_texts(tracker: Tracker, limit: int = CONVERSATION_WINDOW) -> tuple[str, ...]:
    """The shopper's last ``limit`` messages in the conversation, oldest first (since the
    last restart)."""
    texts: list[str] = []
    for e in reversed(tracker.events or []):
        if e.get("event") == "restart":
            break
        if e.get("event") == "user" and e.get("text"):
            texts.append(str(e["text"]))
            if len(texts) >= limit:
                break
    latest = str((tracker.latest_message or {}).get("text") or "")
    if latest and (not texts or texts[0] != latest):
        texts.insert(0, latest)
    return tuple(reversed(texts))


def reason_phrase(reason: Reason, currency: str) -> dict[str, Any]:
    """A suggestion's reason as a phrase (``utter_reason_<kind>``), after what it matches
    of the request (``utter_reason_matches*``) when options or a price were asked for."""
    because = replies.phrase(
        f"utter_reason_{reason.kind}", product=reason.product, category=reason.category
    )
    price = _price_phrase(reason, currency)
    options = ", ".join(reason.options)
    if options and price:
        match = replies.phrase("utter_reason_matches_options_price", options=options, price=price)
    elif options:
        match = replies.phrase("utter_reason_matches_options", options=options)
    elif price:
        match = replies.phrase("utter_reason_matches_price", price=price)
    else:
        return because
    return replies.phrase("utter_reason_both", match=match, because=because)


def _price_phrase(reason: Reason, currency: str) -> dict[str, Any] | None:
    low, high = reason.price.low, reason.price.high
    if low is not None and high is not None:
        return replies.phrase(
            "utter_reason_price_between",
            low=replies.price(low, currency),
            high=replies.price(high, currency),
        )
    if high is not None:
        return replies.phrase("utter_reason_price_under", high=replies.price(high, currency))
    if low is not None:
        return replies.phrase("utter_reason_price_over", low=replies.price(low, currency))
    return None


def card(s: Suggestion, reason: dict[str, Any]) -> dict[str, Any]:
    """A product card (``product_cards`` in the reply's custom data): ``price`` is a JSON
    number in the store's currency (``Settings.currency``); channels write it with
    ``format_money``; ``reason`` is a phrase the engine turns into its text."""
    return {
        "product_id": s.product_id,
        "item_id": s.item_id,
        "name": s.name,
        "options": dict(s.options),
        "price": float(s.price),
        "available": bool(s.available),
        "reason": reason,
    }


def intro(recs: Recommendations) -> dict[str, Any]:
    """The sentence before the list (``utter_suggest_*``), true of the reasons the cards
    give: "popular" only when one of them is popular, "for you" only when one of them
    comes from the shopper's orders."""
    kinds = {s.reason.kind for s in recs.suggestions}
    if recs.situation == "asked_product":
        asked = "asked_for" in kinds
        kind = (
            "in_stock_and_related"
            if asked and recs.related
            else "in_stock"
            if asked
            else "out_of_stock"
        )
        return replies.phrase(f"utter_suggest_{kind}", product=recs.subject)
    popular = bool(kinds & {"popular", "popular_in"})
    if recs.situation == "unknown_product":
        name = "utter_suggest_unknown_product" + ("" if popular else "_in_stock")
        return replies.phrase(name, product=recs.subject)
    if recs.situation == "category":
        name = "utter_suggest_category" + ("" if popular else "_in_stock")
        return replies.phrase(name, category=recs.subject)
    if kinds & {"bought_with_yours", "similar_to_yours"}:
        return replies.phrase("utter_suggest_for_you")
    return replies.phrase("utter_suggest_popular" if popular else "utter_suggest_in_stock_now")


class ActionRecommendProducts(StoreAction):
    def __init__(
        self,
        db: Database | None = None,
        *,
        currency: str | None = None,
        recommender: Recommender | None = None,
    ) -> None:
        super().__init__(db, currency=currency)
        self._recommender = recommender

    def name(self) -> str:
        return "action_recommend_products"

    @property
    def recommender(self) -> Recommender:
        if self._recommender is None:
            self._recommender = recommender_from_env(self.db)
        return self._recommender

    async def run(
        self, dispatcher: CollectingDispatcher, tracker: Tracker, domain: DomainDict
    ) -> list[EventType]:
        asked = first_entity(tracker, "product") or tracker.get_slot("product")
        recs = self.recommender.recommend(
            Query(
                customer_id=tracker.get_slot("customer_id") or None,
                texts=shopper_texts(tracker),
                product=str(asked) if asked else None,
                k=MAX_CARDS,
            )
        )
        if not recs.suggestions:
            nothing = "utter_no_suggestions_matching" if recs.narrowed else "utter_no_suggestions"
            dispatcher.utter_message(response=nothing)
            return []
        lines, cards = [], []
        for s in recs.suggestions:
            reason = reason_phrase(s.reason, self.currency)
            item = replies.item_text(s.name, s.options, s.price, self.currency)
            lines.append(replies.phrase("utter_suggestion_line", item=item, reason=reason))
            cards.append(card(s, reason))
        dispatcher.utter_message(
            response="utter_suggestions",
            intro=intro(recs),
            products=replies.lines(lines),
            json_message={"type": "product_cards", "products": cards, WORD_PHRASES: True},
        )
        return []
