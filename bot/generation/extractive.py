"""``ExtractiveWriter``: a deterministic answer writer that only repeats its evidence.

No language model is involved, so nothing can be invented:

* **Product questions** (``facts`` given) are answered from the resolved catalog variants:
  prices, options and availability, copied from the catalog. Up to ``max_variants``
  variants are listed with their prices; more are summarised by count and price range.
* **Policy and FAQ questions** are answered with 1-3 sentences taken verbatim from the best
  passages, chosen by how much of the question's (IDF-weighted) terms they contain (a "how
  long" question, "几天", counts a stated duration as one of its terms; "not"/"不" count
  for nothing). A sentence opening with a yes or no ("Yes, ...", "可以，...") is quoted only
  when ``bot.generation.yesno`` settles the shopper's question that way. Each
  passage used is cited as ``[n]`` after its sentences, and a ``Sources:`` line follows.
* **Nothing relevant** — no hit clears the relevance threshold — gives ``grounded=False``
  and a reply that says so and offers a human colleague.

Every word the writer adds to the store's data (the ``Sources:`` line, the product
sentences, the not-found reply) comes from its ``AnswerWording``: the domain's responses.

The relevance threshold was calibrated on the demo knowledge base with the retrieval
questions of ``tests/test_knowledge.py`` (37 in-scope questions, 12 out-of-scope ones):
the 36 in-scope targets found in the top 5 had cosine >= 0.43, or cosine >= 0.30 with
BM25 >= 3.7; the top-5 hits of out-of-scope questions had cosine <= 0.32 with BM25 < 2, and
cosine <= 0.17 with BM25 >= 2 (a single common word such as "order" scores BM25 ~1.2
here). A hit is relevant when its cosine is at least ``min_dense`` (0.45), or at
least ``min_dense_with_terms`` (0.25) with BM25 at least ``min_lexical`` (2.0). BM25 scales
with the corpus, so a much larger knowledge base should re-check these numbers. These are
MiniLM's cut-offs (``bot.nlu.relevance.MINILM``, the default); another encoder's cosines
need its own (``relevance``: the encoder's, passed by ``bot.app``).
"""

from __future__ import annotations

import math
import re
from collections import Counter
from decimal import Decimal

from bot.generation import claims_zh as zh
from bot.generation.base import Answer, AnswerWriter, Citation
from bot.generation.claims import durations_in
from bot.generation.wording import AnswerWording
from bot.generation.yesno import GENERIC_TERMS, YesNo, decide, opening_reply
from bot.knowledge.catalog import CatalogProduct, ProductFacts, VariantFact
from bot.knowledge.passages import passage_id
from bot.knowledge.retriever import Hit
from bot.knowledge.text import sentences, terms
from bot.lang.script import has_han
from bot.nlu.relevance import MINILM, Relevance


class ExtractiveWriter(AnswerWriter):
    def __init__(
        self,
        wording: AnswerWording,
        *,
        relevance: Relevance = MINILM,
        max_sentences: int = 3,
        max_sources: int = 2,
        extra_sentence_ratio: float = 0.75,
        max_variants: int = 5,
    ) -> None:
        """``wording``: the store's words around the data (``bot.app.answer_wording``);
        ``relevance``: the cut-offs of the encoder whose cosines the hits carry."""
        self.wording = wording
        self.relevance = relevance
        self.max_sentences = max_sentences
        self.max_sources = max_sources
        self.extra_sentence_ratio = extra_sentence_ratio
        self.max_variants = max_variants

    # -- contract ------------------------------------------------------------------------

    def write(self, question: str, hits: list[Hit], facts: ProductFacts | None) -> Answer:
        if facts is not None:
            return self._product_answer(facts, hits, question)
        relevant = [h for h in hits if self.is_relevant(h)]
        if not relevant:
            return self._not_found()
        if relevant[0].kind == "product":
            return self._product_answer(facts_from_hit(relevant[0]), [relevant[0]], question)
        return self._passage_answer(question, [h for h in relevant if h.kind != "product"])

    def is_relevant(self, hit: Hit) -> bool:
        return self.relevance.admits(hit.dense, hit.lexical)

    def _not_found(self) -> Answer:
        return Answer(text=self.wording.not_found(), citations=[], grounded=False, kind="none")

    # -- passages ------------------------------------------------------------------------

    def _passage_answer(self, question: str, relevant: list[Hit]) -> Answer:
        best = max(h.dense for h in relevant)
        sources = [h for h in relevant if h.dense >= best - self.relevance.source_margin]
        sources = _faq_first(sources, question)[: self.max_sources]
        verdict = self._yes_no(question, relevant)
        if verdict is not None and relevant[verdict.passage] not in sources:
            sources = [relevant[verdict.passage], *sources][: self.max_sources]
        pools = [sentences(h.text) for h in sources]
        forced: set[tuple[int, int]] = set()
        banned: set[tuple[int, int]] = set()
        for i, pool in enumerate(pools):
            for j, sentence in enumerate(pool):
                said = opening_reply(sentence)
                if verdict is not None and sentence == verdict.sentence:
                    forced.add((i, j))
                elif said is not None and (verdict is None or said != verdict.yes):
                    banned.add((i, j))  # a "Yes, ..." nobody confirmed for this question
        chosen = self._choose_sentences(question, pools, sources, forced, banned)
        parts: list[str] = []
        citations: list[Citation] = []
        seen: set[str] = set()
        for hit, chosen_here in zip(sources, chosen, strict=True):
            picked = [s for s in chosen_here if _key(s) not in seen]
            seen.update(_key(s) for s in picked)
            if not picked:
                continue
            n = len(citations) + 1
            snippet = " ".join(picked)
            parts.append(f"{snippet} [{n}]")
            citations.append(Citation(n, hit.passage_id, hit.title, hit.source, hit.kind, snippet))
        if not citations:  # passages without any sentence to quote
            return self._not_found()
        body = " ".join(parts)
        if verdict is not None and opening_reply(body) != verdict.yes:
            body = f"{self.wording.reply(verdict.yes)} {body}"
        text = body + "\n\n" + sources_line(self.wording, citations)
        return Answer(text=text, citations=citations, grounded=True, kind=citations[0].kind)

    def _yes_no(self, question: str, relevant: list[Hit]) -> YesNo | None:
        """The yes or no the passages give a yes/no question (``bot.generation.yesno``);
        ``passage`` indexes ``relevant``."""
        texts = [h for h in relevant if h.kind != "product"]
        found = decide(question, [(h.title, h.text) for h in texts])
        if found is None:
            return None
        return YesNo(found.yes, relevant.index(texts[found.passage]), found.sentence)

    def _choose_sentences(
        self,
        question: str,
        pools: list[list[str]],
        sources: list[Hit],
        forced: set[tuple[int, int]],
        banned: set[tuple[int, int]],
    ) -> list[list[str]]:
        """Per source, the sentences to quote (in passage order): the ``forced`` ones,
        never the ``banned`` ones. The first source always gives at least one sentence;
        the budget is ``max_sentences`` in all."""
        q_terms = set(terms(question)) - _NEGATION_TERMS
        if _ASKS_HOW_LONG.search(question):
            q_terms.add(_A_DURATION)  # "how long...?": a sentence stating one answers it

        def sentence_terms(s: str) -> set[str]:
            found = set(terms(s))
            if durations_in(s) or (has_han(s) and zh.duration_spans(s)):
                found.add(_A_DURATION)
            return found & q_terms

        doc_freq: Counter[str] = Counter()
        total = 0
        for pool in pools:
            for s in pool:
                doc_freq.update(sentence_terms(s))
                total += 1
        weight = {t: math.log(1 + (total + 1) / (doc_freq[t] + 0.5)) for t in q_terms}

        def score(s: str) -> float:
            return sum(weight[t] for t in sentence_terms(s))

        # (score, earlier source first, earlier sentence first, source, sentence)
        scored = [
            [(score(s), -i, -j, i, j) for j, s in enumerate(pool) if (i, j) not in banned]
            for i, pool in enumerate(pools)
        ]
        picked: set[tuple[int, int]] = set(forced)
        best = max((r[0] for rows in scored for r in rows), default=0.0)
        bar = max(self.extra_sentence_ratio * best, 1e-9)
        for i, rows in enumerate(scored):
            if not rows:
                continue
            top = max(rows)
            if any(p[0] == i for p in forced):
                if i == 0 and sources[0].kind == "faq" and rows[0][4] == 0:
                    picked.add((0, 0))  # the FAQ's own reply agrees: "Yes, for delivered..."
                continue
            if i == 0:
                # the best source always speaks: its best sentence, or its opening when it
                # matched by meaning rather than by words; a FAQ answer leads with the
                # direct answer, so its opening comes too (unless it is a reply to
                # another question: "Yes, as long as...")
                first = rows[0]
                picked.add((0, top[4] if top[0] > 0 else first[4]))
                if sources[0].kind == "faq" and first[4] == 0:
                    picked.add((0, 0))
            elif top[0] >= bar:
                picked.add((i, top[4]))
        rest = sorted(
            (r for rows in scored for r in rows if (r[3], r[4]) not in picked), reverse=True
        )
        for value, _, _, i, j in rest:
            if len(picked) >= self.max_sentences or value < bar:
                break
            picked.add((i, j))
        while len(picked) > self.max_sentences:  # drop from the weakest source first
            droppable = [p for p in picked if p not in forced]
            if not droppable:
                break
            picked.remove(max(droppable))
        return [
            [pools[i][j] for j in range(len(pools[i])) if (i, j) in picked]
            for i in range(len(pools))
        ]

    # -- products ------------------------------------------------------------------------

    def _product_answer(self, facts: ProductFacts, hits: list[Hit], question: str = "") -> Answer:
        hit = next(
            (
                h
                for h in hits
                if h.kind == "product" and h.meta.get("product_id") == facts.product_id
            ),
            None,
        )
        citation = Citation(
            1,
            hit.passage_id
            if hit
            else passage_id("product", facts.product.source, facts.product_id),
            hit.title if hit else facts.name,
            hit.source if hit else facts.product.source,
            "product",
        )
        body = self._product_text(facts, _price_order(question))
        citation = Citation(
            citation.index,
            citation.passage_id,
            citation.title,
            citation.source,
            citation.kind,
            body,
        )
        text = body + "\n\n" + sources_line(self.wording, [citation])
        return Answer(text=text, citations=[citation], grounded=True, kind="product")

    def _product_text(self, facts: ProductFacts, order: str | None = None) -> str:
        """``order``: ``"asc"`` when the question asks for the cheapest, ``"desc"`` for the
        most expensive; variants are then listed by price and the extreme one named. The
        sentences are the wording's; names, options and prices are the catalog's."""
        say = self.wording
        currency = facts.product.currency
        options = facts.product.option_values()
        if facts.unmatched:
            colour_keys = [k for k in options if "color" in k.lower() or "colour" in k.lower()]
            return say.not_in(facts, _options_text({k: options[k] for k in colour_keys}))
        variants = list(facts.variants)
        if order is not None:
            variants.sort(key=lambda v: v.price, reverse=order == "desc")
        if facts.requested and not variants:
            return say.no_match(facts, _options_text(options))
        if not facts.requested:
            head = say.product_summary(facts, variants, _options_text(options))
            if len(variants) <= self.max_variants:
                return (
                    head
                    + "\n"
                    + "\n".join(_variant_line(say, v, set(), currency) for v in variants)
                )
            if order is not None:
                head += " " + say.extreme(variants[0], currency, cheapest=order == "asc")
            return head
        if len(variants) == 1:
            return say.one_variant(facts, variants[0])
        fixed = {k for k, vals in facts.requested.items() if "/" not in k and len(vals) == 1}
        lines = [say.matches(facts, variants)]
        shown = variants[: self.max_variants]
        lines += [_variant_line(say, v, fixed, currency) for v in shown]
        if len(variants) > len(shown):
            lines.append(say.more_variants(variants[len(shown) :], currency))
        return "\n".join(lines)


# ------------------------------------------------------------------------------- helpers


def facts_from_hit(hit: Hit) -> ProductFacts:
    """All of a product passage's variants as facts (its ``meta`` holds them)."""
    variants = tuple(
        VariantFact(
            item_id=str(v["item_id"]),
            options={str(k): str(x) for k, x in v.get("options", {}).items()},
            price=Decimal(str(v["price"])),
            available=bool(v.get("available")),
        )
        for v in hit.meta.get("variants", [])
    )
    product = CatalogProduct(
        str(hit.meta.get("product_id", "")),
        hit.title,
        variants,
        currency=str(hit.meta.get("currency") or "USD"),
        source=hit.source,
    )
    return ProductFacts(product, variants)


_CHEAPEST = re.compile(
    r"\b(?:cheap(?:er|est)?|lowest[\s-]price[ds]?|least expensive|inexpensive|budget)\b"
)
_DEAREST = re.compile(r"\b(?:most expensive|priciest|highest[\s-]price[ds]?)\b")


def _price_order(question: str) -> str | None:
    """``asc`` for "the cheapest ...", ``desc`` for "the most expensive ...", else None."""
    q = question.lower()
    if _CHEAPEST.search(q):
        return "asc"
    if _DEAREST.search(q):
        return "desc"
    return None


#: A question asking how long something takes ("how long", "几天", "多久").
_ASKS_HOW_LONG = re.compile(
    r"\bhow (?:long|soon|many (?:business |working )?(?:days|weeks|months|hours))\b"
    r"|几(?:个)?(?:天|周|个?星期|个?月|个?工作日|小时)|多久|多长时间|多少天",
    re.IGNORECASE,
)
#: The term a duration stands for when a question asks how long.
_A_DURATION = "\u0000duration"
#: Words that say no but not what about: a sentence is not chosen for sharing them.
_NEGATION_TERMS = frozenset(terms("not no never cannot 不 没 别 无"))


def _faq_first(hits: list[Hit], question: str) -> list[Hit]:
    """FAQ entries whose question shares a term with the shopper's come before policy
    text of about the same relevance: they are written for shoppers."""
    asked = set(terms(question)) - GENERIC_TERMS
    return sorted(hits, key=lambda h: not (h.kind == "faq" and asked & set(terms(h.title))))


def _key(sentence: str) -> str:
    return " ".join(sentence.lower().split())


def _variant_line(say: AnswerWording, v: VariantFact, omit: set[str], currency: str) -> str:
    opts = ", ".join(f"{k} {x}" for k, x in v.options.items() if k not in omit)
    return say.variant_line(opts or v.describe(), v.price, currency, v.available)


def _options_text(options: dict[str, list[str]]) -> str:
    """The catalog's options as data: ``color: black, blue; size: S, M``."""
    return "; ".join(f"{k}: {', '.join(vals)}" for k, vals in options.items())


def sources_line(wording: AnswerWording, citations: list[Citation]) -> str:
    """The line an answer ends with, naming each cited passage (``[n] title (file)``);
    every writer ends its answers with it."""
    return wording.sources(
        [
            f"[{c.index}] {c.title} ({c.source})" if c.source else f"[{c.index}] {c.title}"
            for c in citations
        ]
    )


_CITATION_MARK = re.compile(r"\[(\d+)\]")


def cited_indices(text: str) -> set[int]:
    """The ``[n]`` marks in an answer text (for checks that every mark has a citation)."""
    return {int(m) for m in _CITATION_MARK.findall(text)}
