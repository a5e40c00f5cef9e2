"""The dialogue manager: one shopper message in, the bot's replies out.

``DialogueManager`` is the public entry channels, the console and the app hold. It builds
the dialogue's parts, each with one job, and hands each turn to the turn runner:

- ``TurnRunner`` (``bot/dialogue/turns.py``): hold the conversation and replay its tracker,
  parse, fill slots, run actions until the bot listens, store the turn's events in one
  short fenced transaction (no transaction or connection is held while models or actions
  run);
- ``FormLoop`` (``forms.py``): form activation, validation, questions, re-asking after a
  side question, completion;
- ``HandoffRouter`` (``handoff_router.py``): when the bot offers or requests a human, as
  typed ``HandoffTrigger`` values;
- ``BuiltinActions`` (``builtins.py``): the engine's own actions, registered by name;
- ``CustomActions`` (``custom_actions.py``) and ``Voice`` (``voice.py``): custom actions
  through the action runner, domain responses rendered onto the tracker.

Each in-process action runs in its own unit of work: one that fails leaves no trace, the
shopper gets a polite reply, and the rest of the turn is kept. A turn whose events cannot be
stored stores none of them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from bot.actions import ActionRunner
from bot.dialogue.builtins import Answerer, KnowledgeAnswerAction, standard_builtins
from bot.dialogue.custom_actions import CustomActions
from bot.dialogue.domain import Domain
from bot.dialogue.feedback import (
    DEFAULT_ASK_AFTER,
    Feedback,
    asked_in_session,
    checked_rating,
    ever_asked,
)
from bot.dialogue.forms import FormLoop
from bot.dialogue.gate import ConversationGate, Outcome
from bot.dialogue.handoff_router import HandoffRouter
from bot.dialogue.language import initial_slots
from bot.dialogue.policy import FlowPolicy
from bot.dialogue.steps import TurnStats
from bot.dialogue.tracker import Tracker
from bot.dialogue.turns import Parser, TurnRunner, customer_of, replies_to
from bot.dialogue.voice import Voice
from bot.errors import FeedbackNotAsked, FeedbackTooLate, UnknownConversation
from bot.handoff.desk import HandoffConflict, HandoffDesk
from bot.handoff.outbox import Change, Outbox, Relay
from bot.handoff.triggers import HandoffPolicy
from bot.lang import Language
from bot.store.db import Database
from bot.store.models import Conversation
from bot.types import (
    ActionExecuted,
    BotUttered,
    ConversationId,
    Event,
    HandoffEvent,
    Message,
    Reply,
)

__all__ = ["Answerer", "DialogueManager", "Parser", "TurnStats", "replies_to"]

PARSE_THREADS = 2  # NLU encoding is CPU work: about one thread per core
ANSWER_THREADS = 16  # answers mostly wait on an LLM endpoint
T = TypeVar("T")


class DialogueManager:
    """One bot's dialogue: ``handle`` runs a shopper's turn, ``run_external`` an agent's
    step, ``record_feedback`` keeps a shopper's rating (CSAT), ``stats`` counts what
    happened, ``close`` stops the threads."""

    def __init__(
        self,
        *,
        domain: Domain,
        policy: FlowPolicy,
        nlu: Parser,
        actions: ActionRunner,
        db: Database,
        knowledge: Answerer | None = None,
        max_misses: int = 2,
        handoff: HandoffDesk | None = None,
        handoff_policy: HandoffPolicy | None = None,
        relay: Relay | None = None,
        gate: ConversationGate | None = None,
        feedback_after: Iterable[str] = DEFAULT_ASK_AFTER,
        language: Language = "en",
    ) -> None:
        """``handoff``: the desk that queues conversations for agents (without one, a
        handoff is only recorded in the tracker); ``handoff_policy``: when the bot hands
        off on its own (default: offer a human after ``max_misses``, hand off on failed
        actions, out-of-scope requests and severe complaints); ``relay``: where changes
        of conversations in handoff are published for the console; ``gate``: how turns
        take a conversation (default: leases in ``db``); ``feedback_after``: the closing
        responses after which the bot asks the shopper to rate the conversation
        (``bot.dialogue.feedback``; empty: only ``action_ask_feedback`` and a handoff
        closed by an agent ask); ``language``: the store's (``Settings.language``), which
        each conversation starts in until the shopper writes in another
        (``bot.dialogue.language``)."""
        self.domain = domain
        self.policy = policy
        self.nlu = nlu
        self.actions = actions
        self.db = db
        self.knowledge = knowledge
        self.handoff_policy = handoff_policy or HandoffPolicy(max_misses=max_misses)
        self.max_misses = self.handoff_policy.max_misses
        self.handoff = handoff
        self.relay = relay
        self.stats = TurnStats()
        self.gate = gate or ConversationGate(db)
        # Separate thread pools, so a hung LLM endpoint (answers wait for it) never delays
        # the NLU parse every other shopper's turn needs; database work has its own too.
        self._parsing = ThreadPoolExecutor(PARSE_THREADS, thread_name_prefix="clerk-nlu")
        self._answering = ThreadPoolExecutor(ANSWER_THREADS, thread_name_prefix="clerk-answer")
        self.initial_slots = initial_slots(domain, language)
        voice = Voice(domain)
        self.router = HandoffRouter(
            policy=self.handoff_policy, desk=handoff, db=db, voice=voice, stats=self.stats
        )
        custom = CustomActions(
            runner=actions,
            domain_dict=domain.as_rasa_dict(),
            voice=voice,
            router=self.router,
            stats=self.stats,
        )
        self.forms = FormLoop(
            domain=domain,
            flows=policy,
            voice=voice,
            custom=custom,
            router=self.router,
            stats=self.stats,
        )
        answer = KnowledgeAnswerAction(
            knowledge=knowledge, voice=voice, stats=self.stats, threads=self._answering
        )
        self.feedback = Feedback(domain, feedback_after)
        self.builtins = standard_builtins(
            voice=voice,
            router=self.router,
            forms=self.forms,
            knowledge=answer,
            feedback=self.feedback,
            stats=self.stats,
        )
        self.turns = TurnRunner(
            domain=domain,
            flows=policy,
            nlu=nlu,
            gate=self.gate,
            voice=voice,
            router=self.router,
            forms=self.forms,
            custom=custom,
            builtins=self.builtins,
            stats=self.stats,
            parsing=self._parsing,
            feedback=self.feedback,
            language=language,
        )

    def close(self) -> None:
        """Stop the manager's threads (at shutdown; turns still running finish first)."""
        self._parsing.shutdown(wait=False, cancel_futures=True)
        self._answering.shutdown(wait=False, cancel_futures=True)

    # ------------------------------------------------------------------ entry point
    async def handle(
        self, message: Message, *, on_token: Callable[[str], Awaitable[None]] | None = None
    ) -> list[Reply]:
        """Run one turn. ``on_token``: a channel that can show a reply as it is written gets
        the knowledge answer's text piece by piece, in order, on this event loop (each piece
        already passed the fact guard). The returned replies are complete either way; if the
        guard replaced the streamed text, the final reply holds the text to show.

        A message whose ``metadata["message_id"]`` is already stored in the conversation (a
        client's retry) is not handled again: the replies it got are returned. Raises
        ``Unavailable`` (nothing stored) when the conversation or the database stays busy."""
        result = await self.turns.run(message, on_token=on_token)
        if result.conversation_id is not None:
            self._publish(result.conversation_id, result.status, result.events)
        return result.replies

    async def run_external(
        self,
        conversation_id: str,
        step: Callable[[Any, Conversation, Tracker], T],
        *,
        guard: Callable[[Any, str], None] | None = None,
    ) -> T:
        """Run a step from outside the shopper's turns (an agent's action) like a turn:
        holding the conversation, in one transaction, with the replayed tracker.
        ``guard(session, id)`` runs first in the transaction and may raise to abort (the
        race-free claim). The events ``step`` applies are appended, the derived columns
        updated, and the change published. Raises ``HandoffConflict`` for an unknown
        conversation."""
        cid = ConversationId(str(conversation_id))
        async with self.gate.hold(cid, "rest", create=False) as holding:
            if not holding.snapshot.existed:
                raise HandoffConflict(f"no conversation {cid!r}")
            tracker = Tracker.from_events(cid, self.initial_slots, holding.snapshot.events)

            def write(session: Any) -> Outcome[T]:
                if guard is not None:
                    guard(session, cid)
                conv = session.get(Conversation, cid)
                result = step(session, conv, tracker)
                self._ask_after_close(session, conv, tracker)
                return Outcome(
                    tracker.new_events, tracker.handoff_status, customer_of(tracker), result=result
                )

            outcome = await self.gate.finish(holding, write)
        self._publish(cid, tracker.handoff_status, outcome.events)
        return outcome.result  # type: ignore[return-value]

    def _ask_after_close(self, session: Any, conv: Conversation, tracker: Tracker) -> None:
        """A human agent closed the conversation's handoff in this step: the end of the
        conversation, so the shopper is asked for a rating (once a session), through the
        outbox in the step's own transaction, right after the closing notice."""
        closed = any(isinstance(e, HandoffEvent) and e.step == "closed" for e in tracker.new_events)
        if not closed or not self.feedback.may_ask(tracker):
            return
        request = self.feedback.request(tracker.slots, conv.channel)
        out = Outbox.add_reply(session, conv.id, conv.channel, request, kind="feedback")
        self.feedback.ask(tracker, request, message_id=out.id)

    async def record_feedback(
        self, conversation_id: ConversationId, rating: object, *, channel: str
    ) -> list[Reply]:
        """Record the shopper's rating of conversation ``conversation_id`` of ``channel``
        (``Channel.name``; the id made by that channel from the client's own id), without
        a bot turn: ``FeedbackGiven(rating)`` and the thanks appended in one short
        transaction under the conversation's lease. Returns the thanks to show.

        Refused, nothing stored (``FeedbackRefused``): ``BadRating`` (not "up" or "down"),
        ``UnknownConversation`` (none with that id, or it belongs to another channel),
        ``FeedbackNotAsked`` (the bot never asked it), ``FeedbackTooLate`` (asked in a
        session that has since expired or been followed by another: the rating's events
        would otherwise carry on an old session). A different rating is stored too
        (the last one counts); the same rating again stores nothing and returns the thanks
        it got. Raises ``Unavailable`` when the conversation stays busy."""
        rating = checked_rating(rating)
        cid = ConversationId(str(conversation_id))
        async with self.gate.hold(cid, channel, create=False) as holding:
            snapshot = holding.snapshot
            if not snapshot.existed or snapshot.channel != channel:
                raise UnknownConversation(cid)
            if not ever_asked(snapshot.events):
                raise FeedbackNotAsked(cid)
            tracker = Tracker.from_events(cid, self.initial_slots, snapshot.events)
            if not asked_in_session(snapshot.events) or tracker.session_over(
                self.feedback.domain.session_expiration_minutes * 60
            ):
                raise FeedbackTooLate(cid)
            again = self.feedback.thanks_for_same(snapshot.events, rating)
            if again is not None:  # released unfinished: nothing written
                return [e.to_reply() for e in again]
            new = self.feedback.rate(tracker, rating, channel=channel)
            await self.gate.finish(
                holding,
                lambda _session: Outcome(new, tracker.handoff_status, customer_of(tracker)),
            )
        self.stats.ratings += 1
        self._publish(cid, tracker.handoff_status, new)
        return [e.to_reply() for e in new if isinstance(e, BotUttered)]

    def _publish(self, cid: ConversationId, status: str, new: list[Event]) -> None:
        """Tell the console what changed in a conversation (and the outbox about messages
        queued for the shopper). Cheap: a few small values per turn and subscriber."""
        if self.relay is None or not new:
            return
        steps = [e for e in new if isinstance(e, HandoffEvent)]
        kinds = [e.type_name for e in new if not isinstance(e, HandoffEvent | ActionExecuted)]
        kinds += [f"handoff:{e.step}" for e in steps]
        if any(e.data.get("message_id") for e in steps):
            kinds.append("outbox")
        self.relay.publish(
            Change(conversation_id=cid, status=status, kinds=tuple(dict.fromkeys(kinds)))
        )
