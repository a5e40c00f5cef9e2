"""Clerk's built-in actions, registered by name.

``BuiltinActions`` maps an action name to an async callable ``(tracker, decision) -> None``
that applies what it does to the tracker (the turn records the action's ``ActionExecuted``
before calling it, and then carries on predicting). ``standard_builtins`` registers the
engine's own: ``action_listen``, ``action_restart``, ``action_session_start``,
``action_default_fallback``, ``action_deactivate_loop``, ``action_knowledge_answer``,
``action_handoff``, ``action_offer_handoff`` and ``action_ask_feedback`` (the CSAT request,
once a session: ``bot.dialogue.feedback``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Awaitable, Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

from bot.dialogue.feedback import ASK_ACTION, Feedback
from bot.dialogue.forms import FormLoop
from bot.dialogue.handoff_router import HandoffRouter
from bot.dialogue.policy import LISTEN
from bot.dialogue.steps import Decision, TurnStats
from bot.dialogue.tracker import Tracker
from bot.dialogue.voice import Voice
from bot.types import BotUttered, Restarted, SessionStarted

log = logging.getLogger(__name__)

BuiltinAction = Callable[[Tracker, Decision], Awaitable[None]]
TokenSink = Callable[[str], Awaitable[None]]

# The turn's streaming channel, if any: set by the turn runner around one turn.
token_sink: contextvars.ContextVar[TokenSink | None] = contextvars.ContextVar(
    "clerk_token_sink", default=None
)


class Answerer(Protocol):
    def answer(self, question: str, entities: list[dict[str, Any]] | None = None) -> Any: ...


class BuiltinActions:
    """A registry of built-in actions, keyed by action name."""

    def __init__(self) -> None:
        self._actions: dict[str, BuiltinAction] = {}

    def register(self, name: str, action: BuiltinAction) -> None:
        """Register ``action`` as ``name``; a name is registered once (``ValueError``)."""
        if name in self._actions:
            raise ValueError(f"built-in action {name!r} is already registered")
        self._actions[name] = action

    def get(self, name: str) -> BuiltinAction | None:
        """The built-in registered as ``name``, or ``None``."""
        return self._actions.get(name)

    def __contains__(self, name: object) -> bool:
        return name in self._actions

    def __iter__(self) -> Iterator[str]:
        return iter(self._actions)


def standard_builtins(
    *,
    voice: Voice,
    router: HandoffRouter,
    forms: FormLoop,
    knowledge: KnowledgeAnswerAction,
    feedback: Feedback,
    stats: TurnStats,
) -> BuiltinActions:
    """The engine's built-in actions, over the turn's parts."""

    async def listen(tracker: Tracker, decision: Decision) -> None:
        """Nothing: the turn runner stops at ``action_listen`` before running anything."""

    async def restart(tracker: Tracker, decision: Decision) -> None:
        tracker.apply(Restarted())

    async def session_start(tracker: Tracker, decision: Decision) -> None:
        tracker.apply(SessionStarted())

    async def default_fallback(tracker: Tracker, decision: Decision) -> None:
        stats.fallbacks += 1
        voice.utter(tracker, "utter_default")

    async def deactivate_loop(tracker: Tracker, decision: Decision) -> None:
        if tracker.active_loop:
            forms.deactivate(tracker.active_loop, tracker)

    async def handoff(tracker: Tracker, decision: Decision) -> None:
        await router.handoff_action(tracker, decision)

    async def offer_handoff(tracker: Tracker, decision: Decision) -> None:
        await router.offer(tracker)

    async def ask_feedback(tracker: Tracker, decision: Decision) -> None:
        if feedback.may_ask(tracker):
            feedback.ask(tracker)

    registry = BuiltinActions()
    registry.register(LISTEN, listen)
    registry.register("action_restart", restart)
    registry.register("action_session_start", session_start)
    registry.register("action_default_fallback", default_fallback)
    registry.register("action_deactivate_loop", deactivate_loop)
    registry.register("action_knowledge_answer", knowledge)
    registry.register("action_handoff", handoff)
    registry.register("action_offer_handoff", offer_handoff)
    registry.register(ASK_ACTION, ask_feedback)
    return registry


class KnowledgeAnswerAction:
    """``action_knowledge_answer``: the shopper's latest message answered from the store's
    knowledge on ``threads`` (streamed to the turn's ``token_sink`` when the answerer can);
    an ungrounded answer is worded by ``utter_knowledge_not_found``, no answerer at all by
    ``utter_out_of_scope``. The answer's ``BotUttered`` metadata records ``writer`` (what
    wrote the text: ``extractive`` or the LLM's name) and ``fallback`` (why a model's answer
    was replaced: ``guard``, ``timeout``, ``error``, ``declined``, ``empty``; else None)."""

    def __init__(
        self,
        *,
        knowledge: Answerer | None,
        voice: Voice,
        stats: TurnStats,
        threads: ThreadPoolExecutor,
    ) -> None:
        self.knowledge = knowledge
        self.voice = voice
        self.stats = stats
        self.threads = threads

    async def __call__(self, tracker: Tracker, decision: Decision) -> None:
        latest = tracker.latest_message
        question = latest.text if latest else ""
        if self.knowledge is None:
            self.stats.knowledge_unanswered += 1
            self.voice.utter(tracker, "utter_out_of_scope")
            return
        entities = latest.entities if latest else []
        sink = token_sink.get()
        stream = getattr(self.knowledge, "answer_stream", None)
        if sink is None or stream is None:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(
                self.threads, self.knowledge.answer, question, entities
            )
        else:
            answer = await _stream_from_thread(self.threads, stream, question, entities, sink)
        self.stats.knowledge_answers += 1
        citations = [_citation_dict(c) for c in getattr(answer, "citations", []) or []]
        data: dict[str, Any] = {
            "custom": {"type": "answer", "grounded": bool(answer.grounded), "citations": citations}
        }
        text = answer.text
        if not answer.grounded:
            # The store's data holds no answer: what the shopper reads is the domain's.
            self.stats.knowledge_unanswered += 1
            for reply in self.voice.replies(tracker, "utter_knowledge_not_found"):
                text = reply.text
                data["buttons"] = [b.to_dict() for b in reply.buttons]
        tracker.apply(
            BotUttered(
                text=text,
                data=data,
                metadata={
                    "utter_action": None if answer.grounded else "utter_knowledge_not_found",
                    # what wrote the text, and why a model's answer was replaced (analytics'
                    # guard interventions); never the guard's violations
                    "writer": str(getattr(answer, "writer", "extractive") or "extractive"),
                    "fallback": getattr(answer, "fallback", None),
                },
            )
        )


async def _stream_from_thread(
    threads: ThreadPoolExecutor,
    stream: Callable[..., Any],
    question: str,
    entities: list[dict[str, Any]],
    sink: TokenSink,
) -> Any:
    """Run a blocking ``answer_stream`` in a worker thread; hand its tokens to ``sink`` on
    this loop, one at a time and in order (a queue, not one task per token)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[str | None] = asyncio.Queue()

    def on_token(delta: str) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, delta)

    async def forward() -> None:
        while (delta := await queue.get()) is not None:
            try:
                await sink(delta)
            except Exception:  # a closed socket must not fail the turn
                log.debug("token sink failed", exc_info=True)

    forwarder = asyncio.create_task(forward())
    try:
        return await loop.run_in_executor(threads, stream, question, entities, on_token)
    finally:
        loop.call_soon_threadsafe(queue.put_nowait, None)
        await forwarder


def _citation_dict(c: Any) -> dict[str, Any]:
    if isinstance(c, dict):
        return c
    out = {}
    for key in ("index", "passage_id", "title", "source", "kind", "text"):
        if hasattr(c, key):
            out[key] = getattr(c, key)
    return out
