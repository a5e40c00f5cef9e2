"""``GuardedWriter``: an LLM writes the answer, the fact guard decides whether it is shown.

For each question:

1. the extractive writer answers first (milliseconds). When it finds no relevant evidence
   the question cannot be answered from the store's knowledge: that answer ("I don't know"
   plus the offer of a human) is final and the model is not asked at all;
2. otherwise the model gets the policy rules, the numbered passages (the product's catalog
   facts first, when the question named one) and the question, and streams its reply;
3. the reply is cut into sentences as it streams; a sentence is held until the group it
   belongs to has its ``[n]`` mark (or the reply ends), then the guard checks the group
   against the cited passages, the catalog and the extractive answer. Groups that pass are
   handed to ``on_token``; the first unsupported claim stops generation;
4. the model's answer is replaced by the extractive one when the guard stops it, when the
   backend fails or times out, when it declines ("I don't know") although the evidence is
   relevant, or when it says nothing. Each replacement is logged and counted in
   ``GenerationStats`` (``/health`` shows them).

Thread-safe when its LLM is; the stats are guarded by a lock.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bot.generation.base import Answer, AnswerWriter, Citation
from bot.generation.extractive import ExtractiveWriter, sources_line
from bot.generation.guard import (
    Evidence,
    FactGuard,
    GuardSession,
    citation_marks,
    is_decline,
    split_sentences,
)
from bot.generation.llm import LLM, GenerationParams, LLMError, LLMTimeout
from bot.generation.prompt import answer_messages, facts_passage_text
from bot.knowledge.catalog import ProductFacts
from bot.knowledge.retriever import Hit

log = logging.getLogger(__name__)

FALLBACK_REASONS = ("guard", "timeout", "error", "declined", "empty")


@dataclass
class GenerationStats:
    """Counters of the generation path, shared by the answer writer and the copy writer.

    ``llm_answers``: model answers shown to shoppers; ``guard_rejections``: model answers
    (or copy variants) the guard stopped; ``fallbacks``: model answers replaced by the
    extractive one, by reason; ``unanswerable``: questions answered "I don't know" without
    asking the model; ``copy_llm`` / ``copy_template``: marketing copy variants by source.
    """

    llm_answers: int = 0
    guard_rejections: int = 0
    unanswerable: int = 0
    fallbacks: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FALLBACK_REASONS, 0))
    copy_llm: int = 0
    copy_template: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            setattr(self, name, getattr(self, name) + n)

    def fallback(self, reason: str) -> None:
        with self._lock:
            self.fallbacks[reason] = self.fallbacks.get(reason, 0) + 1

    def as_dict(self) -> dict[str, Any]:
        with self._lock:
            return {
                "llm_answers": self.llm_answers,
                "guard_rejections": self.guard_rejections,
                "unanswerable": self.unanswerable,
                "fallbacks": dict(self.fallbacks),
                "fallbacks_total": sum(self.fallbacks.values()),
                "copy_llm": self.copy_llm,
                "copy_template": self.copy_template,
            }


def _ignore(piece: str) -> None:
    return None


class GuardedWriter(AnswerWriter):
    """``fallback`` answers first and replaces the model when needed; its ``wording`` (the
    store's) also writes the ``Sources:`` line of the model's answers."""

    def __init__(
        self,
        llm: LLM,
        guard: FactGuard,
        *,
        fallback: ExtractiveWriter,
        params: GenerationParams | None = None,
        stats: GenerationStats | None = None,
        max_passages: int = 3,
    ) -> None:
        self.llm = llm
        self.guard = guard
        self.fallback = fallback
        self.params = params or GenerationParams()
        self.stats = stats or GenerationStats()
        self.max_passages = max_passages

    # -- contract ------------------------------------------------------------------------

    def is_relevant(self, hit: Hit) -> bool:
        return self.fallback.is_relevant(hit)

    def write(self, question: str, hits: list[Hit], facts: ProductFacts | None) -> Answer:
        return self.write_stream(question, hits, facts, _ignore)

    def write_stream(
        self,
        question: str,
        hits: list[Hit],
        facts: ProductFacts | None,
        on_token: Callable[[str], None],
    ) -> Answer:
        base = self.fallback.write(question, hits, facts)
        if not base.grounded:
            self.stats.add("unanswerable")
            on_token(base.text)
            return base
        passages = self.prompt_passages(base, hits, facts)
        evidence = Evidence(tuple(passages), facts, support=_body(base), question=question)
        run = _GuardedRun(self.guard.session(evidence), on_token)
        started = time.perf_counter()
        reason: str | None = None
        params = replace(self.params, should_stop=run.stopped.is_set)
        try:
            stream = self.llm.stream(answer_messages(question, passages), params)
            try:
                for piece in stream:
                    run.feed(piece)
                    if run.failed:
                        break
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            if not run.failed:
                run.finish()
        except LLMTimeout as exc:
            reason = "timeout"
            log.warning("LLM timed out, answering extractively: %s", exc)
        except LLMError as exc:
            reason = "error"
            log.warning("LLM failed, answering extractively: %s", exc)
        if reason is None:
            if run.violations:
                reason = "guard"
                self.stats.add("guard_rejections")
                log.warning(
                    "fact guard stopped a %s answer: %s",
                    self.llm.name,
                    "; ".join(str(v) for v in run.violations[:5]),
                )
            elif run.declined:
                reason = "declined"
                log.info("%s declined although evidence was relevant", self.llm.name)
            elif not run.shown:
                reason = "empty"
        if reason is not None:
            self.stats.fallback(reason)
            if not run.shown:
                on_token(base.text)
            return replace(
                base,
                fallback=reason,
                violations=tuple(str(v) for v in run.violations),
            )
        citations = self._citations(run.marks, passages, base)
        tail = "\n\n" + sources_line(self.fallback.wording, citations) if citations else ""
        on_token(tail)
        self.stats.add("llm_answers")
        log.debug(
            "%s answer passed the guard in %.0f ms",
            self.llm.name,
            (time.perf_counter() - started) * 1000,
        )
        return Answer(
            text=run.text + tail,
            citations=citations,
            grounded=True,
            kind=citations[0].kind if citations else base.kind,
            writer=self.llm.name,
        )

    # -- evidence ------------------------------------------------------------------------

    def prompt_passages(
        self, base: Answer, hits: list[Hit], facts: ProductFacts | None
    ) -> list[Citation]:
        """The numbered passages the model sees: a product answer's catalog facts alone;
        otherwise the passages the extractive answer quoted, then other relevant ones."""
        if base.kind == "product" and base.citations:
            c = base.citations[0]
            if facts is None:
                hit = next((h for h in hits if h.passage_id == c.passage_id), None)
                facts = self.guard.catalog.facts_for(
                    str(hit.meta.get("product_id", "")) if hit else "", ""
                )
            text = facts_passage_text(facts) if facts is not None else c.text
            return [Citation(1, c.passage_id, c.title, c.source, "product", text)]
        by_id = {h.passage_id: h for h in hits}
        chosen: list[Hit] = [by_id[c.passage_id] for c in base.citations if c.passage_id in by_id]
        for h in hits:
            if len(chosen) >= self.max_passages:
                break
            if h not in chosen and self.fallback.is_relevant(h) and h.kind != "product":
                chosen.append(h)
        return [
            Citation(n, h.passage_id, h.title, h.source, h.kind, h.text)
            for n, h in enumerate(chosen, start=1)
        ]

    @staticmethod
    def _citations(marks: list[int], passages: list[Citation], base: Answer) -> list[Citation]:
        if not marks:
            return list(base.citations)
        by_index = {p.index: p for p in passages}
        out: list[Citation] = []
        for n in marks:
            if n in by_index and by_index[n] not in out:
                out.append(by_index[n])
        return sorted(out, key=lambda c: c.index)


class _GuardedRun:
    """One streamed reply: sentences in, guarded groups out to ``on_token``."""

    def __init__(self, session: GuardSession, on_token: Callable[[str], None]) -> None:
        self.session = session
        self.on_token = on_token
        self.buffer = ""
        self.pending: list[str] = []
        self.shown: list[str] = []
        self.marks: list[int] = []
        self.violations: list[Any] = []
        self.declined = False
        self.stopped = threading.Event()

    @property
    def failed(self) -> bool:
        return bool(self.violations) or self.declined

    @property
    def text(self) -> str:
        return " ".join(self.shown)

    def feed(self, piece: str) -> None:
        self.buffer += piece
        complete, self.buffer = split_sentences(self.buffer, final=False)
        for sentence in complete:
            self._take(sentence)
            if self.failed:
                self.stopped.set()
                return

    def finish(self) -> None:
        complete, self.buffer = split_sentences(self.buffer, final=True)
        for sentence in complete:
            self._take(sentence)
            if self.failed:
                return
        uncited = self.session.check_cited(self.marks, " ".join(self.shown + self.pending))
        if uncited:
            self.violations += uncited
            return
        if self.pending:
            self._release(self.marks)

    def _take(self, sentence: str) -> None:
        if is_decline(sentence):
            self.declined = True
            return
        self.pending.append(sentence)
        marks = citation_marks(sentence)
        if marks:
            self.marks += [n for n in marks if n not in self.marks]
            self._release(marks)

    def _release(self, marks: list[int]) -> None:
        verdict = self.session.check_group(self.pending, marks)
        if not verdict.ok:
            self.violations += verdict.violations
            return
        for sentence in self.pending:
            self.on_token((" " if self.shown else "") + sentence)
            self.shown.append(sentence)
        self.pending = []


def _body(answer: Answer) -> str:
    """A grounded extractive answer's text without its closing sources line (the last
    paragraph: the writer ends every answer that cites with it)."""
    if not answer.citations:
        return answer.text
    return answer.text.rsplit("\n\n", 1)[0]
