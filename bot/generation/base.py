"""The answer-writer contract: turn retrieved passages and catalog facts into a reply.

The dialogue engine asks ``KnowledgeAnswerer`` for an ``Answer``; the answerer gathers the
evidence (``Hit`` passages from a ``Retriever``, ``ProductFacts`` from the catalog) and an
``AnswerWriter`` writes the text. A writer owns two promises:

* every fact in ``Answer.text`` comes from the evidence it was given, and each passage the
  text uses is listed in ``citations`` (numbered as the ``[n]`` marks in the text);
* when the evidence does not answer the question, ``grounded`` is False and the text says
  so (the engine then offers a human), instead of guessing.

Writers may be slow (an LLM) but must be thread-safe; the engine calls them from a worker
thread. They raise ``bot.errors.ClerkError`` subclasses only.

Streaming (``write_stream``): ``on_token(piece)`` is called with pieces of the answer as
they become safe to show, in order. Every piece has passed the fact guard; nothing
unsupported is ever passed to ``on_token``. The returned ``Answer`` is final and
authoritative: when the pieces shown so far do not make up ``Answer.text`` (a later
sentence failed the guard, or the backend failed, and the extractive answer replaced the
model's), a channel replaces what it showed with ``Answer.text``; ``Answer.fallback`` then
says why. ``on_token`` is called from the writer's thread and must not block for long.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass

from bot.knowledge.catalog import ProductFacts
from bot.knowledge.retriever import Hit

ANSWER_KINDS = ("product", "policy", "faq", "none")


@dataclass(frozen=True)
class Citation:
    """One source the answer text cites as ``[index]``; ``text`` is what was used of it."""

    index: int
    passage_id: str
    title: str
    source: str
    kind: str
    text: str = ""

    def to_dict(self) -> dict[str, object]:
        return {
            "index": self.index,
            "passage_id": self.passage_id,
            "title": self.title,
            "source": self.source,
            "kind": self.kind,
            "text": self.text,
        }


@dataclass(frozen=True)
class Answer:
    """``kind`` is the kind of evidence the answer rests on (``product``, ``policy``,
    ``faq``), or ``none`` when it is not grounded. ``writer`` names what wrote the text
    (``extractive``, or the LLM backend, e.g. ``transformers:SmolLM2``); ``fallback`` is
    why a model's answer was replaced by the extractive one (``guard``, ``timeout``,
    ``error``, ``declined``, ``empty``), ``None`` when it was not; ``violations`` are the
    unsupported claims the guard found (for logs and metrics, never shown to shoppers)."""

    text: str
    citations: list[Citation]
    grounded: bool
    kind: str
    writer: str = "extractive"
    fallback: str | None = None
    violations: tuple[str, ...] = ()


class AnswerWriter(ABC):
    @abstractmethod
    def write(self, question: str, hits: list[Hit], facts: ProductFacts | None) -> Answer:
        """Answer ``question`` from ``facts`` (the catalog's word on the product the
        question names, when the answerer resolved one) and ``hits`` (retrieved passages,
        best first)."""

    def write_stream(
        self,
        question: str,
        hits: list[Hit],
        facts: ProductFacts | None,
        on_token: Callable[[str], None],
    ) -> Answer:
        """``write``, showing the answer through ``on_token`` as it becomes safe to show
        (see the module docstring). The default writes first, then shows it whole."""
        answer = self.write(question, hits, facts)
        on_token(answer.text)
        return answer

    def is_relevant(self, hit: Hit) -> bool:
        """Whether ``hit`` is evidence enough to answer from. The answerer asks before it
        lets a retrieved product passage stand for the product a question means. Writers
        with a calibrated relevance threshold override this; the default trusts the
        retriever."""
        return True
