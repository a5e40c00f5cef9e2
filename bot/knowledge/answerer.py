"""``KnowledgeAnswerer``: what the dialogue engine calls for product and policy questions.

It gathers the evidence and leaves the wording to an ``AnswerWriter``:

* A question about an order procedure (returns, cancelling, shipping, refunds...) that
  does not ask about a product's price, options or stock — "can I return my headphones?" —
  is answered from policy and FAQ passages only, searched with the product's name replaced
  by "item" (the name says nothing about the procedure and only blurs the query). If they
  hold nothing relevant and a product was named, the product's facts answer instead.
* A question naming a catalog product (in its text or in the NLU's ``product`` entity;
  other entities count as options) is answered from the product's catalog facts, with the
  product's passage placed first so the writer can cite it.
* Otherwise the retriever's passages decide; when the best relevant one is a product's,
  that product's facts (narrowed by any options the question names) go to the writer.

Built once in ``app.py``; thread-safe as long as its retriever and writer are.
"""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

from bot.knowledge.catalog import CatalogResolver, ProductFacts
from bot.knowledge.retriever import Hit, Retriever, SearchFilters
from bot.knowledge.text import terms

if TYPE_CHECKING:  # generation sits above knowledge; only its types are named here
    from bot.generation.base import Answer, AnswerWriter

log = logging.getLogger(__name__)

# Stemmed terms (``bot.knowledge.text.terms``) that mark a question about a procedure
# rather than about a product's facts, and those that mark a question about the product.
_PROCEDURE_TERMS = frozenset(
    terms(
        "return returns refund cancel cancellation exchange exchanging ship shipping delivery "
        "delivered track tracking warranty policy modify change swap replace payment pay "
        "broken damaged"
    )
)
_PRODUCT_TERMS = frozenset(
    terms(
        "price prices cost costs much cheap cheapest expensive stock available availability "
        "color colors colour size sizes option options variant variants sell buy carry offer "
        "model models version"
    )
)


class KnowledgeAnswerer:
    def __init__(
        self,
        retriever: Retriever,
        writer: AnswerWriter,
        catalog_products: Any,
        *,
        k: int = 5,
    ) -> None:
        """``catalog_products``: the ``products.json`` mapping or list, ``Product`` rows, or
        a ready ``CatalogResolver``."""
        self.retriever = retriever
        self.writer = writer
        self.catalog = (
            catalog_products
            if isinstance(catalog_products, CatalogResolver)
            else CatalogResolver(catalog_products)
        )
        self.k = k

    def answer(self, question: str, entities: list[dict[str, Any]] | None = None) -> Answer:
        started = time.perf_counter()
        facts = self.catalog.resolve(question, entities)
        answer: Answer | None = None
        if self._procedural(question, facts):
            # "can I return my headphones?": the policy answers, not the catalog. The
            # product's name says nothing about the procedure and only blurs the query.
            query = question
            if facts is not None and facts.mention:
                query = re.sub(re.escape(facts.mention), "item", question, flags=re.IGNORECASE)
            hits = self.retriever.search(query, self.k, SearchFilters.of(kind=("policy", "faq")))
            answer = self.writer.write(question, hits, None)
            if not answer.grounded and facts is not None:
                answer = None  # "noise cancelling earphones": about the product after all
        if answer is None and facts is not None:
            hits = self.retriever.search(question, self.k)
            answer = self.writer.write(
                question, self._with_product_first(question, facts, hits), facts
            )
        elif answer is None:
            hits = self.retriever.search(question, self.k)
            top = next((h for h in hits if self.writer.is_relevant(h)), None)
            if top is not None and top.kind == "product" and top.meta.get("product_id"):
                facts = self.catalog.facts_for(str(top.meta["product_id"]), question)
            answer = self.writer.write(question, hits, facts)
        log.debug(
            "knowledge answer in %.1f ms: kind=%s grounded=%s citations=%s",
            (time.perf_counter() - started) * 1000,
            answer.kind,
            answer.grounded,
            [c.passage_id for c in answer.citations],
        )
        return answer

    @staticmethod
    def _procedural(question: str, facts: ProductFacts | None) -> bool:
        """A question about an order procedure (returns, cancelling, shipping...) that does
        not ask about a product's price, options or stock."""
        if facts is not None and (facts.requested or facts.unmatched):
            return False
        q = set(terms(question))
        return bool(q & _PROCEDURE_TERMS) and not (q & _PRODUCT_TERMS)

    def _with_product_first(self, question: str, facts: ProductFacts, hits: list[Hit]) -> list[Hit]:
        own = [h for h in hits if h.meta.get("product_id") == facts.product_id]
        if not own:
            own = self.retriever.search(
                question, 1, SearchFilters.of(kind="product", product_type=facts.name)
            )
        return own + [h for h in hits if h not in own]
