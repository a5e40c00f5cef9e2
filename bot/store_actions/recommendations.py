"""``action_recommend_products``: suggestions from ``bot.recommend``, each with its reason.

The action asks its ``Recommender`` (built by the composition root and passed to
``build_actions``; an action built without one, as rasa-sdk builds it, makes its own on
first use: ``recommender_from_env``) for suggestions for the verified shopper
(``customer_id`` slot), the shopper's latest messages about what they shop for
(``shopper_texts``: products, options and price ranges asked for) and the product asked
about now (``asked_product``: the latest message's ``product`` entity, or the slot when set
in this turn).

The reply is the response ``utter_suggestions`` with ``{intro}`` (one of ``utter_suggest_*``)
and ``{products}`` (one ``utter_suggestion_line`` per suggestion: the item and its reason),
plus a ``custom`` payload ``{"type": "product_cards", "products": [...]}`` of at most
``MAX_CARDS`` JSON-serialisable cards, each with its ``reason`` (a phrase the engine words
from the domain: ``utter_reason_*``; the payload carries ``bot.types.WORD_PHRASES`` to ask
for that, and the engine drops it).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from typing import Any

from rasa_sdk import Tracker
from rasa_sdk.events import EventType
from rasa_sdk.executor import CollectingDispatcher
from rasa_sdk.types import DomainDict

from bot.recommend.engine import Query, Reason, Recommendations, Recommender, Suggestion
from bot.store.db import Database, OwnSessions
from bot.store_actions import replies
from bot.store_actions.base import StoreAction, first_entity
from bot.types import WORD_PHRASES

log = logging.getLogger(__name__)

MAX_CARDS = 5
#: The shopper's messages the recommender reads, the latest last.
CONVERSATION_WINDOW = 6
#: The intents of messages about what a shopper is looking for (``shopper_texts``).
SHOPPING_INTENTS = frozenset({"recommend_products", "product_question", "inform"})

_env_lock = threading.Lock()
_env_recommenders: dict[str, Recommender] = {}


def recommender_from_env(db: Database) -> Recommender:
    """The process's ``Recommender`` over ``db`` (one per database URL) for an action
    server started alone: it embeds products with the encoder the settings give (the
    store's language's, ``bot.nlu.encoder.sentence_encoder``, as ``bot.app.make_encoder``).
    When the encoder cannot be built or run, recommendations use co-purchase and popularity only, with a
    logged warning."""
    with _env_lock:
        found = _env_recommenders.get(db.url)
        if found is None:
            encoder = _encoder_from_env()
            found = _env_recommenders[db.url] = (
                Recommender(db, encoder.encode, min_similar=encoder.min_similar)
                if encoder is not None
                else Recommender(db, None)
            )
        return found


def _encoder_from_env() -> Any:
    from bot.config import Settings
    from bot.errors import ClerkError
    from bot.nlu.encoder import sentence_encoder

    try:
        settings = Settings.load()
        encoder = sentence_encoder(settings.language, settings.home)
    except (ClerkError, OSError, ImportError) as exc:
        log.warning("recommendations without content similarity: no encoder (%s)", exc)
        return None
    return encoder


def shopper_texts(
    tracker: Tracker,
    limit: int = CONVERSATION_WINDOW,
    topic: frozenset[str] = SHOPPING_INTENTS,
) -> tuple[str, ...]:
    """The shopper's messages about what they are shopping for, oldest first: the latest
    message, and before it the ones in a row whose intent is in ``topic`` (at most
    ``limit`` in all, since the last restart). A message on another topic ("where is my
    order?", "I was charged over 200") ends the run: what was asked before it (a colour,
    a budget) no longer counts.

    Each text carries the catalog values of the ``option`` entities the NLU found in it
    ("黑色的" -> "黑色的 black"): a store's synonyms in another language name options the
    recommender reads in the catalog's words."""
    latest = str((tracker.latest_message or {}).get("text") or "")
    texts: list[str] = [_with_options(latest, tracker.latest_message)] if latest else []
    users = [e for e in (tracker.events or []) if e.get("event") in ("user", "restart")]
    if users and users[-1].get("event") == "user" and users[-1].get("text") == latest:
        users = users[:-1]  # the latest message, already taken
    for e in reversed(users):
        if len(texts) >= limit or e.get("event") == "restart" or not e.get("text"):
            break
        intent = ((e.get("parse_data") or {}).get("intent") or {}).get("name")
        if intent not in topic:
            break
        texts.append(_with_options(str(e["text"]), e.get("parse_data")))
    return tuple(reversed(texts))


def _with_options(text: str, parse: Any) -> str:
    """``text`` and the values of its parse's ``option`` entities not already in it."""
    entities = (parse.get("entities") or []) if isinstance(parse, dict) else []
    values = [
        str(e["value"])
        for e in entities
        if e.get("entity") == "option"
        and e.get("value")
        and str(e["value"]).lower() not in text.lower()
    ]
    return " ".join([text, *values])


def asked_product(tracker: Tracker) -> str | None:
    """The product the shopper asks about now: the ``product`` entity of the latest
    message, else the ``product`` slot when it was set in this turn (after the latest
    message). A slot left from an earlier question does not count."""
    entity = first_entity(tracker, "product")
    if entity:
        return str(entity)
    for e in reversed(tracker.events or []):
        if e.get("event") == "user":
            break
        if e.get("event") == "slot" and e.get("name") == "product" and e.get("value"):
            return str(e["value"])
    return None


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


class ActionRecommendProducts(StoreAction, OwnSessions):
    """Runs outside the turn's unit of work (``OwnSessions``): the recommender reads in
    short sessions of its own and embeds between them, on a thread (``asyncio.to_thread``)
    so that no event loop waits on it; inside a unit (a caller that opened one) it runs
    in place, on the unit's thread."""

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
        asked = asked_product(tracker)
        query = Query(
            customer_id=tracker.get_slot("customer_id") or None,
            texts=shopper_texts(tracker),
            product=asked,
            k=MAX_CARDS,
        )
        if self._recommender is not None and self._recommender.db.in_unit():
            recs = self._recommender.recommend(query)
        else:  # building one from the settings (first use) blocks too
            recs = await asyncio.to_thread(lambda: self.recommender.recommend(query))
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
