"""The turn runner: one shopper message applied to its conversation.

``TurnRunner.run(message)`` holds the conversation (``ConversationGate``), replays its
tracker, answers a client's retry from what is stored, starts a session when it expired,
parses the text, hands a severe complaint to a human, stays silent while an agent holds the
conversation, fills slots from the domain's mappings, and runs actions until the bot
listens: queued steps first, then a follow-up action, the active form, rules and stories
(``FlowPolicy``), the intent's rule action or the fallback, each decision routed through
the handoff policy; after a closing response it asks for a rating
(``bot.dialogue.feedback``). The turn's events are appended in one short, fenced transaction.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Protocol

from bot.dialogue.builtins import BuiltinActions, token_sink
from bot.dialogue.custom_actions import CustomActions
from bot.dialogue.domain import Domain
from bot.dialogue.feedback import Feedback
from bot.dialogue.forms import FormLoop
from bot.dialogue.gate import ConversationGate, Outcome
from bot.dialogue.handoff_router import HandoffRouter
from bot.dialogue.language import initial_slots, language_change
from bot.dialogue.policy import LISTEN, FlowPolicy
from bot.dialogue.slots import extract_slots
from bot.dialogue.steps import (
    CARRY_ON,
    ActionOutcome,
    After,
    Decision,
    QueuedStep,
    Reask,
    TurnStats,
)
from bot.dialogue.tracker import Tracker
from bot.dialogue.voice import Voice
from bot.lang import Language
from bot.types import (
    MAX_MESSAGE_CHARS,
    ActionExecuted,
    AllSlotsReset,
    BotUttered,
    ConversationId,
    Event,
    Message,
    Reply,
    SessionStarted,
    UserUttered,
    is_outside_turn,
)

MAX_ACTIONS_PER_TURN = 10
INTERRUPTION_POLICY = "FormInterruption"  # recorded policy of a queued step's action


class Parser(Protocol):
    """The NLU contract: ``parse(text)`` -> Rasa's parse data (``text``, ``intent``
    ``{name, confidence}``, ``entities``, ``intent_ranking``)."""

    def parse(self, text: str) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TurnResult:
    """What a turn produced: the ``replies`` to send; the ``events`` it stored (none for an
    empty message or a client's retry) and the conversation's handoff ``status`` after it."""

    replies: list[Reply]
    conversation_id: ConversationId | None = None
    status: str = "none"
    events: list[Event] = field(default_factory=list)


class TurnRunner:
    """Runs shopper turns over the dialogue parts; holds no state between turns but
    ``stats``."""

    def __init__(
        self,
        *,
        domain: Domain,
        flows: FlowPolicy,
        nlu: Parser,
        gate: ConversationGate,
        voice: Voice,
        router: HandoffRouter,
        forms: FormLoop,
        custom: CustomActions,
        builtins: BuiltinActions,
        stats: TurnStats,
        parsing: ThreadPoolExecutor,
        feedback: Feedback | None = None,
        language: Language = "en",
    ) -> None:
        """``feedback``: asks for a rating after the store's closing responses (none:
        never); ``language``: the store's, which a conversation starts in
        (``bot.dialogue.language``)."""
        self.domain = domain
        self.feedback = feedback
        self.flows = flows
        self.nlu = nlu
        self.gate = gate
        self.voice = voice
        self.router = router
        self.forms = forms
        self.custom = custom
        self.builtins = builtins
        self.stats = stats
        self.parsing = parsing
        self.language = language
        self.initial_slots = initial_slots(domain, language)

    async def run(
        self, message: Message, *, on_token: Callable[[str], Awaitable[None]] | None = None
    ) -> TurnResult:
        """Run one turn (see ``DialogueManager.handle``). Raises ``Unavailable`` (nothing
        stored) when the conversation or the database stays busy."""
        text = (message.text or "").strip()
        if not text:
            return TurnResult(
                self.domain.render(
                    "utter_empty_message", self.initial_slots, channel=message.channel
                )
            )
        cid = ConversationId(str(message.conversation_id))
        token = token_sink.set(on_token)
        try:
            async with self.gate.hold(cid, message.channel) as holding:
                tracker = Tracker.from_events(cid, self.initial_slots, holding.snapshot.events)
                tracker.channel = message.channel
                client_id = message.metadata.get("message_id")
                if client_id:
                    earlier = replies_to(tracker, str(client_id))
                    if earlier is not None:
                        return TurnResult(earlier)
                await self._turn(tracker, message, text)
                new = tracker.new_events
                await self.gate.finish(
                    holding,
                    lambda _session: Outcome(new, tracker.handoff_status, customer_of(tracker)),
                )
        finally:
            token_sink.reset(token)
        return TurnResult(
            [e.to_reply() for e in new if isinstance(e, BotUttered)],
            cid,
            tracker.handoff_status,
            new,
        )

    async def _turn(self, tracker: Tracker, message: Message, text: str) -> None:
        """Apply one shopper message to ``tracker``: nothing is written here; in-process
        actions and handoff steps commit their own short transactions off the loop."""
        self._maybe_start_session(tracker)
        if len(text) > MAX_MESSAGE_CHARS:
            # Refused: nothing of the message is stored, only the refusal.
            self.voice.utter(tracker, "utter_message_too_long")
            return
        self.stats.turns += 1
        loop = asyncio.get_running_loop()
        parse = await loop.run_in_executor(self.parsing, self.nlu.parse, text)
        to_agent = tracker.handoff_status == "claimed"
        user = UserUttered(
            text=text,
            parse_data=parse,
            input_channel=message.channel,
            message_id=str(message.metadata.get("message_id") or uuid.uuid4().hex),
            # stamped as written, so analytics needs no replay of the handoff steps
            metadata={"to_agent": True} if to_agent else {},
        )
        tracker.apply(user)
        changed = language_change(text, tracker.slots, self.language)
        if changed is not None:
            tracker.apply(changed)
        complaint = self.router.severe_complaint(tracker, user)
        if to_agent:
            return  # a human agent holds the conversation: the bot stays silent
        if complaint is not None:
            await self.router.complaint(tracker, complaint, text)
            return
        for ev in extract_slots(
            self.domain,
            user,
            active_loop=tracker.active_loop,
            requested_slot=tracker.slots.get("requested_slot"),
            current=tracker.slots,
        ):
            tracker.apply(ev)
        await self._run_until_listen(tracker)

    def _maybe_start_session(self, tracker: Tracker) -> None:
        if not tracker.session_over(self.domain.session_expiration_minutes * 60):
            return
        last = tracker.last_event_time()
        tracker.apply(ActionExecuted(name="action_session_start"))
        tracker.apply(SessionStarted())
        if last is not None and not self.domain.carry_over_slots:
            tracker.apply(AllSlotsReset())
        tracker.apply(ActionExecuted(name=LISTEN))

    # ------------------------------------------------------------------ the action loop
    async def _run_until_listen(self, tracker: Tracker) -> None:
        """Run at most ``MAX_ACTIONS_PER_TURN`` actions, then listen."""
        queued: list[QueuedStep] = []
        for _ in range(MAX_ACTIONS_PER_TURN):
            if queued:
                step = queued.pop(0)
                if isinstance(step, Reask):
                    await self.forms.reask(step, tracker)
                    break
                decision = Decision(step.name, INTERRUPTION_POLICY)
            else:
                decision = self._next(tracker)
            if decision.action == LISTEN:
                break
            outcome = await self._run(decision, tracker)
            if outcome.after is After.LISTEN:
                break
            queued.extend(outcome.queued)
        if self.feedback is not None and self.feedback.due(tracker):
            self.feedback.ask(tracker)  # the end of the conversation: rate it
        tracker.apply(ActionExecuted(name=LISTEN))

    def _next(self, tracker: Tracker) -> Decision:
        """The next action: a follow-up action, the active form after the shopper spoke,
        rules and stories, else the intent's rule action or the fallback right after the
        shopper spoke (otherwise listen); routed through the handoff policy."""
        if tracker.followup_action:
            return Decision(tracker.followup_action, "Followup")
        last = tracker.steps[-1] if tracker.steps else None
        if (
            tracker.active_loop
            and last is not None
            and last.kind in ("intent", "slot")
            and _last_non_slot(tracker) == "intent"
        ):
            return Decision(tracker.active_loop, "FormPolicy")
        prediction = self.flows.predict(tracker)
        if prediction is not None:
            decision = Decision.of(prediction)
        elif _last_non_slot(tracker) == "intent":
            intent = tracker.latest_message.intent if tracker.latest_message else None
            action = self.flows.rule_action_for_intent(intent) or "action_default_fallback"
            decision = Decision(action, "DefaultPolicy", 0.5)
        else:
            return Decision(LISTEN, "DefaultPolicy")
        return self.router.route(decision, tracker)

    async def _run(self, decision: Decision, tracker: Tracker) -> ActionOutcome:
        """Run the decided action: a form step, a response, a built-in or a custom action."""
        name = decision.action
        if self.domain.is_form(name):
            return await self.forms.run(name, tracker)
        executed = ActionExecuted(
            name=name, policy=decision.recorded_policy, confidence=decision.confidence
        )
        if self.domain.is_response(name):
            tracker.apply(executed)
            self.voice.utter(tracker, name)
            return CARRY_ON
        builtin = self.builtins.get(name)
        if builtin is not None:
            tracker.apply(executed)
            await builtin(tracker, decision)
            return CARRY_ON
        return await self.custom.run(name, tracker, executed=executed)


def _last_non_slot(tracker: Tracker) -> str | None:
    for s in reversed(tracker.steps):
        if s.kind != "slot":
            return s.kind
    return None


def customer_of(tracker: Tracker) -> str | None:
    """The verified shopper of the conversation (its ``customer_id`` slot), if any."""
    value = tracker.slots.get("customer_id")
    return str(value) if value else None


def replies_to(tracker: Tracker, message_id: str) -> list[Reply] | None:
    """The bot's replies to the stored shopper message ``message_id``, or ``None`` when no
    such message is stored (a client's retry is answered from here). What the bot said
    outside any turn in between (``is_outside_turn``: a rating's thanks, a request sent
    through the outbox) is no reply to it."""
    replies: list[Reply] | None = None
    for e in tracker.events:
        if isinstance(e, UserUttered):
            if replies is not None:
                break
            if e.message_id == message_id:
                replies = []
        elif replies is not None and isinstance(e, BotUttered) and not is_outside_turn(e):
            replies.append(e.to_reply())
    return replies
