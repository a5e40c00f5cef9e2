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
"""

from __future__ import annotations

from abc import ABC, abstractmethod
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
    ``faq``), or ``none`` when it is not grounded."""

    text: str
    citations: list[Citation]
    grounded: bool
    kind: str


class AnswerWriter(ABC):
    @abstractmethod
    def write(self, question: str, hits: list[Hit], facts: ProductFacts | None) -> Answer:
        """Answer ``question`` from ``facts`` (the catalog's word on the product the
        question names, when the answerer resolved one) and ``hits`` (retrieved passages,
        best first)."""

    def is_relevant(self, hit: Hit) -> bool:
        """Whether ``hit`` is evidence enough to answer from. The answerer asks before it
        lets a retrieved product passage stand for the product a question means. Writers
        with a calibrated relevance threshold override this; the default trusts the
        retriever."""
        return True
