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
* Price and stock constraints in the question ("under $50", "between $20 and $40", "in
  stock") narrow the product's variants, and restrict retrieval to products that have a
  variant meeting them (``SearchFilters``: in stock, price range, product type) when no
  product is named.

``answer`` is the synchronous entry point; ``answer_stream`` shows the reply through a
callback as the writer produces it (see its docstring for the contract).

Built once in ``app.py``; thread-safe as long as its retriever and writer are.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bot.knowledge.catalog import CatalogResolver, ProductFacts
from bot.knowledge.filters import narrow_facts, question_filters
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


# Terms of a shopping question that may name no product ("what can I get under $40?").
_SHOPPING = frozenset(terms("buy get have sell anything something afford recommend gift shop"))


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
        """The answer to ``question``; synchronous (the dialogue engine runs it in a worker
        thread)."""
        return self._answer(question, entities, None)

    def answer_stream(
        self,
        question: str,
        entities: list[dict[str, Any]] | None,
        on_token: Callable[[str], None],
    ) -> Answer:
        """``answer``, showing the reply through ``on_token`` as it is written.

        Every piece passed to ``on_token`` has passed the writer's fact guard, in order.
        The returned ``Answer`` is final: if the pieces shown do not make up
        ``Answer.text`` (a later sentence failed the guard or the model failed, and the
        extractive answer replaced it; ``Answer.fallback`` says why), the channel shows
        ``Answer.text`` in their place. Runs in the caller's thread; ``on_token`` must
        not block for long."""
        return self._answer(question, entities, on_token)

    def _write(
        self,
        question: str,
        hits: list[Hit],
        facts: ProductFacts | None,
        on_token: Callable[[str], None] | None,
    ) -> Answer:
        if on_token is None:
            return self.writer.write(question, hits, facts)
        return self.writer.write_stream(question, hits, facts, on_token)

    def _answer(
        self,
        question: str,
        entities: list[dict[str, Any]] | None,
        on_token: Callable[[str], None] | None,
    ) -> Answer:
        started = time.perf_counter()
        facts = self.catalog.resolve(question, entities)
        constraints = question_filters(question)
        # a named product is narrowed by price only: "is the blue M T-shirt in stock?"
        # asks for the variant's stock status, not for in-stock variants alone
        price_only = SearchFilters(min_price=constraints.min_price, max_price=constraints.max_price)
        if facts is not None and price_only.product_only:
            facts = narrow_facts(facts, price_only)
        answer: Answer | None = None
        if self._procedural(question, facts):
            # "can I return my headphones?": the policy answers, not the catalog. The
            # product's name says nothing about the procedure and only blurs the query.
            query = question
            if facts is not None and facts.mention:
                query = re.sub(re.escape(facts.mention), "item", question, flags=re.IGNORECASE)
            hits = self.retriever.search(query, self.k, SearchFilters.of(kind=("policy", "faq")))
            if facts is None or any(self.writer.is_relevant(h) for h in hits):
                answer = self._write(question, hits, None, on_token)
            # else "noise cancelling earphones": about the product after all
        if answer is None and facts is not None:
            hits = self.retriever.search(question, self.k)
            answer = self._write(
                question, self._with_product_first(question, facts, hits), facts, on_token
            )
        elif answer is None:
            filters = constraints if constraints.product_only else None
            hits = self.retriever.search(question, self.k, filters)
            top = next((h for h in hits if self.writer.is_relevant(h)), None)
            if top is None and hits and filters is not None and set(terms(question)) & _SHOPPING:
                # "what can I buy for less than $40?": the budget is the question; the
                # best product within it answers, though no product word matched
                top = hits[0]
                hits = [top]
            elif top is None and filters is not None:
                hits = self.retriever.search(question, self.k)
                top = next((h for h in hits if self.writer.is_relevant(h)), None)
            if top is not None and top.kind == "product" and top.meta.get("product_id"):
                facts = self.catalog.facts_for(str(top.meta["product_id"]), question)
                if facts is not None and price_only.product_only:
                    facts = narrow_facts(facts, price_only)
            answer = self._write(question, hits, facts, on_token)
        log.debug(
            "knowledge answer in %.1f ms: kind=%s grounded=%s writer=%s fallback=%s citations=%s",
            (time.perf_counter() - started) * 1000,
            answer.kind,
            answer.grounded,
            getattr(answer, "writer", "?"),
            getattr(answer, "fallback", None),
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
