"""The dialogue manager: one shopper message in, the bot's replies out.

``DialogueManager.handle(message)`` runs one turn:

1. hold the conversation (``ConversationGate``: an in-process lock and a lease on its row,
   so turns of one conversation never overlap, on any worker) and replay its tracker;
2. if a human agent holds the conversation, record the message and stop;
3. parse the text (intent, entities), fill slots from the domain's mappings;
4. predict and run actions until the bot listens again: an active form first, then rules
   and stories, knowledge questions to the grounded answerer, low confidence to the
   fallback (a human is offered after N misses in a row);
5. append the turn's events to the tracker in one short transaction, if the lease is still
   this turn's; no transaction or connection is held while models or actions run.

Each in-process action runs in its own unit of work: one that fails leaves no trace, the
shopper gets a polite reply, and the rest of the turn is kept. A turn whose events cannot be
stored stores none of them.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from bot.actions import PROTOCOL_VERSION, ActionRunner
from bot.dialogue.domain import Domain
from bot.dialogue.gate import ConversationGate, Outcome
from bot.dialogue.policy import LISTEN, FlowPolicy, Prediction
from bot.dialogue.slots import extract_slots
from bot.dialogue.tracker import MISS_ACTIONS, Tracker
from bot.errors import ActionError
from bot.handoff.desk import HandoffConflict, HandoffDesk
from bot.handoff.outbox import Change, Relay
from bot.handoff.triggers import ASKED, HandoffPolicy, Trigger, assess_complaint
from bot.store.db import Database
from bot.store.models import Conversation
from bot.types import (
    MAX_MESSAGE_CHARS,
    ActionExecuted,
    ActiveLoop,
    AllSlotsReset,
    BotUttered,
    ConversationId,
    Event,
    HandoffEvent,
    Message,
    Reply,
    SessionStarted,
    SlotSet,
    UserUttered,
    event_from_dict,
)

log = logging.getLogger(__name__)

MAX_ACTIONS_PER_TURN = 10
PARSE_THREADS = 2  # NLU encoding is CPU work: about one thread per core
ANSWER_THREADS = 16  # answers mostly wait on an LLM endpoint
NON_INTERRUPTING = {"inform", "affirm", "deny", "nlu_fallback", None}
REASK = "__reask__:"  # queued marker: ask the active form's question again
HANDOFF_POLICY = "HandoffPolicy:"  # ActionExecuted.policy of a handoff the bot decided on
T = TypeVar("T")


class Parser(Protocol):
    def parse(self, text: str) -> dict[str, Any]: ...


class Answerer(Protocol):
    def answer(self, question: str, entities: list[dict] | None = None) -> Any: ...


@dataclass
class TurnStats:
    """Counters a deployment watches (exposed on /health and in logs)."""

    turns: int = 0
    fallbacks: int = 0
    action_failures: int = 0
    handoffs: int = 0
    knowledge_answers: int = 0
    knowledge_unanswered: int = 0


class DialogueManager:
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
    ) -> None:
        """``handoff``: the desk that queues conversations for agents (without one, a
        handoff is only recorded in the tracker); ``handoff_policy``: when the bot hands
        off on its own (default: offer a human after ``max_misses``, hand off on failed
        actions, out-of-scope requests and severe complaints); ``relay``: where changes
        of conversations in handoff are published for the console; ``gate``: how turns
        take a conversation (default: leases in ``db``)."""
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
        self._domain_dict = domain.as_rasa_dict()
        self._initial_slots = domain.initial_slots()

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
        text = (message.text or "").strip()
        if not text:
            return self.domain.render("utter_empty_message", {}, channel=message.channel)
        cid = ConversationId(str(message.conversation_id))
        token = _token_sink.set(on_token)
        try:
            async with self.gate.hold(cid, message.channel) as holding:
                tracker = Tracker.from_events(cid, self._initial_slots, holding.snapshot.events)
                tracker.channel = message.channel
                client_id = message.metadata.get("message_id")
                if client_id:
                    earlier = replies_to(tracker, str(client_id))
                    if earlier is not None:
                        return earlier
                await self._turn(tracker, message, text)
                new = tracker.new_events
                await self.gate.finish(holding, lambda _session: Outcome(
                    new, tracker.handoff_status, _customer(tracker)))
        finally:
            _token_sink.reset(token)
        self._publish(cid, tracker.handoff_status, new)
        return [e.to_reply() for e in new if isinstance(e, BotUttered)]

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
            tracker = Tracker.from_events(cid, self._initial_slots, holding.snapshot.events)

            def write(session: Any) -> Outcome[T]:
                if guard is not None:
                    guard(session, cid)
                conv = session.get(Conversation, cid)
                result = step(session, conv, tracker)
                return Outcome(tracker.new_events, tracker.handoff_status, _customer(tracker),
                               result=result)

            outcome = await self.gate.finish(holding, write)
        self._publish(cid, tracker.handoff_status, outcome.events)
        return outcome.result  # type: ignore[return-value]

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
        self.relay.publish(Change(conversation_id=cid, status=status,
                                  kinds=tuple(dict.fromkeys(kinds))))

    async def _turn(self, tracker: Tracker, message: Message, text: str) -> None:
        """Apply one shopper message to ``tracker``: nothing is written here; in-process
        actions and handoff steps commit their own short transactions off the loop."""
        self._maybe_start_session(tracker)
        if len(text) > MAX_MESSAGE_CHARS:
            # Refused: nothing of the message is stored, only the refusal.
            self._utter(tracker, "utter_message_too_long")
            return
        self.stats.turns += 1
        loop = asyncio.get_running_loop()
        parse = await loop.run_in_executor(self._parsing, self.nlu.parse, text)
        user = UserUttered(
            text=text,
            parse_data=parse,
            input_channel=message.channel,
            message_id=str(message.metadata.get("message_id") or uuid.uuid4().hex),
        )
        tracker.apply(user)
        complaint = self._severe_complaint(tracker, user)
        if tracker.handoff_status == "claimed":
            return  # a human agent holds the conversation: the bot stays silent
        if complaint is not None:
            tracker.apply(ActionExecuted(name="action_handoff",
                                         policy=HANDOFF_POLICY + complaint.kind,
                                         confidence=1.0))
            await self._hand_off(tracker, complaint, ticket_text=text)
            tracker.apply(ActionExecuted(name=LISTEN))
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

    def _severe_complaint(self, tracker: Tracker, user: UserUttered) -> Trigger | None:
        """A complaint (or an answer inside the complaint form) naming a legal or safety
        issue, or strongly negative, when the policy hands those off."""
        if not self.handoff_policy.on_severe_complaint:
            return None
        if tracker.handoff_status in ("requested", "claimed"):
            return None
        if user.intent != "complaint" and tracker.active_loop != "complaint_form":
            return None
        return assess_complaint(user.text)

    def _maybe_start_session(self, tracker: Tracker) -> None:
        last = tracker.last_event_time()
        expiry = self.domain.session_expiration_minutes * 60
        if last is not None and (not expiry or time.time() - last < expiry):
            return
        tracker.apply(ActionExecuted(name="action_session_start"))
        tracker.apply(SessionStarted())
        if last is not None and not self.domain.carry_over_slots:
            tracker.apply(AllSlotsReset())
        tracker.apply(ActionExecuted(name=LISTEN))

    # ------------------------------------------------------------------ prediction
    async def _run_until_listen(self, tracker: Tracker) -> None:
        queued: list[str] = []
        for _ in range(MAX_ACTIONS_PER_TURN):
            if queued:
                action = queued.pop(0)
                pred = Prediction(action, "FormInterruption", 1.0)
                if action.startswith(REASK):
                    form = action[len(REASK):]
                    requested = tracker.slots.get("requested_slot")
                    if tracker.active_loop == form and requested:
                        await self._ask(form, str(requested), tracker)
                    break
            else:
                action, pred = self._next_action(tracker)
            if action == LISTEN:
                break
            follow = await self._run_action(action, tracker, pred)
            if follow is False:
                break
            if isinstance(follow, list):
                queued.extend(follow)
        tracker.apply(ActionExecuted(name=LISTEN))

    def _next_action(self, tracker: Tracker) -> tuple[str, Prediction]:
        if tracker.followup_action:
            return tracker.followup_action, Prediction(tracker.followup_action, "Followup", 1.0)
        last = tracker.steps[-1] if tracker.steps else None
        if (tracker.active_loop and last is not None and last.kind in ("intent", "slot")
                and _last_non_slot(tracker) == "intent"):
            return tracker.active_loop, Prediction(tracker.active_loop, "FormPolicy", 1.0)
        pred = self.policy.predict(tracker)
        if pred is None:
            if _last_non_slot(tracker) == "intent":
                intent = tracker.latest_message.intent if tracker.latest_message else None
                action = self.policy.rule_action_for_intent(intent) or "action_default_fallback"
                pred = Prediction(action, "DefaultPolicy", 0.5)
            else:
                return LISTEN, Prediction(LISTEN, "DefaultPolicy", 1.0)
        handoff = self.handoff_policy
        if (
            pred.action == "utter_out_of_scope"
            and handoff.on_out_of_scope
            and tracker.handoff_status not in ("requested", "claimed")
        ):
            pred = Prediction("action_handoff", HANDOFF_POLICY + "out_of_scope",
                              pred.confidence, pred.flow)
        elif pred.action in MISS_ACTIONS and (
            tracker.consecutive_fallbacks() + 1 >= self.max_misses
        ):
            if handoff.misses == "handoff" and tracker.handoff_status not in (
                "requested", "claimed"
            ):
                pred = Prediction("action_handoff", HANDOFF_POLICY + "misses", pred.confidence,
                                  pred.flow)
            else:
                pred = Prediction("action_offer_handoff", pred.policy, pred.confidence,
                                  pred.flow)
        return pred.action, pred

    # ------------------------------------------------------------------ execution
    async def _run_action(
        self, name: str, tracker: Tracker, pred: Prediction
    ) -> bool | list[str] | None:
        """Run one action. Returns False to stop the turn, a list of actions to run next,
        or None to carry on predicting."""
        if self.domain.is_form(name):
            return await self._run_form(name, tracker)
        executed = ActionExecuted(name=name, policy=pred.policy, confidence=pred.confidence)
        if self.domain.is_response(name):
            tracker.apply(executed)
            self._utter(tracker, name)
            return None
        builtin = getattr(self, f"_builtin_{name}", None)
        if builtin is not None:
            tracker.apply(executed)
            return await builtin(tracker)
        ok = await self._run_custom(name, tracker, executed=executed)
        return None if ok else False

    async def _run_custom(
        self,
        name: str,
        tracker: Tracker,
        *,
        executed: ActionExecuted | None,
        extra_events: list[dict[str, Any]] | None = None,
    ) -> bool:
        payload = self._payload(name, tracker, extra_events)
        try:
            result = await self._call_action(name, payload)
        except ActionError as exc:
            log.warning("action failed: %s", exc)
            self.stats.action_failures += 1
            if executed is not None:
                tracker.apply(ActionExecuted(name=name, policy="failed"))
            await self._action_failed(tracker, name)
            return False
        if executed is not None:
            tracker.apply(executed)
        self._apply_result(tracker, result)
        return True

    async def _call_action(self, name: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run a custom action. In process, it runs on a database thread in its own unit of
        work (a failed action leaves no trace); remotely, the action server commits its own
        changes. Either way no transaction of the turn is open meanwhile."""
        return await self.actions.run(name, payload)

    def _payload(
        self, name: str, tracker: Tracker, extra_events: list[dict[str, Any]] | None = None
    ) -> dict[str, Any]:
        state = tracker.to_rasa_state()
        if extra_events:
            state["events"] = state["events"] + extra_events
            for e in extra_events:
                if e.get("event") == "slot":
                    state["slots"][e["name"]] = e.get("value")
        return {
            "next_action": name,
            "sender_id": tracker.conversation_id,
            "tracker": state,
            "domain": self._domain_dict,
            "version": PROTOCOL_VERSION,
        }

    def _apply_result(self, tracker: Tracker, result: dict[str, Any]) -> list[Event]:
        applied: list[Event] = []
        for raw in result.get("events") or []:
            ev = event_from_dict(raw)
            tracker.apply(ev)
            applied.append(ev)
        for resp in result.get("responses") or []:
            name = resp.get("response") or resp.get("template")
            for r in self.domain.render_message(resp, tracker.slots, channel=tracker.channel):
                tracker.apply(_bot_event(r, name))
        return applied

    def _utter(self, tracker: Tracker, response: str, **values: Any) -> None:
        """Say response ``response`` on the turn's channel, ``values`` filling its
        placeholders over the slots."""
        for r in self._replies(tracker, response, **values):
            tracker.apply(_bot_event(r, response))

    def _replies(self, tracker: Tracker, response: str, **values: Any) -> list[Reply]:
        return self.domain.render(response, tracker.slots, values, channel=tracker.channel)

    def _phrase(self, tracker: Tracker, response: str, **values: Any) -> str:
        """The text of a response used as a value inside another one (say, the wait)."""
        return self.domain.text(response, tracker.slots, values, channel=tracker.channel)

    # ------------------------------------------------------------------ forms
    async def _run_form(self, form: str, tracker: Tracker) -> bool | list[str] | None:
        required = self.domain.forms[form]
        activating = tracker.active_loop != form
        latest = tracker.latest_message
        intent = latest.intent if latest else None

        # slot candidates: this turn's extracted values (and, on activation, prefilled slots)
        turn_slots = _slots_set_since_user(tracker)
        candidates = {k: v for k, v in turn_slots.items() if k in required}
        if activating:
            for s in required:
                if tracker.slots.get(s) is not None:
                    candidates.setdefault(s, tracker.slots[s])
        extra = [{"event": "slot", "name": k, "value": v, "timestamp": time.time()}
                 for k, v in candidates.items()]
        validator = f"validate_{form}"
        result: dict[str, Any] = {"events": [], "responses": []}
        if validator in self.domain.actions and self.actions.has_action(validator):
            payload_tracker = _TrackerWithLoop(tracker, form)
            payload = self._payload(validator, payload_tracker.view(), extra)
            try:
                result = await self._call_action(validator, payload)
            except ActionError as exc:
                log.warning("form validation failed: %s", exc)
                self.stats.action_failures += 1
                tracker.apply(ActionExecuted(name=form, policy="failed"))
                if tracker.active_loop == form:
                    tracker.apply(ActiveLoop(name=None))
                await self._action_failed(tracker, validator)
                return False

        slot_events = [e for e in result.get("events") or [] if e.get("event") == "slot"]
        filled = any(e["name"] in required and e.get("value") is not None for e in slot_events)
        rejected = any(
            e.get("event") == "action_execution_rejected" for e in result.get("events") or []
        )
        handled = (filled or bool(candidates) or bool(result.get("responses"))) and not rejected

        if not activating and not handled and intent not in NON_INTERRUPTING:
            return self._interrupt_form(form, tracker, intent)

        tracker.apply(ActionExecuted(name=form, policy="FormPolicy", confidence=1.0))
        if activating:
            tracker.apply(ActiveLoop(name=form))
        self._apply_result(
            tracker, {"events": [e for e in result.get("events") or []
                                 if e.get("event") != "action_execution_rejected"],
                      "responses": result.get("responses")}
        )
        requested_events = [e for e in slot_events if e["name"] == "requested_slot"]
        if requested_events:
            next_slot = requested_events[-1].get("value")
        else:
            next_slot = next((s for s in required if tracker.slots.get(s) is None), None)
        if next_slot is None:
            if tracker.slots.get("requested_slot") is not None:
                tracker.apply(SlotSet(key="requested_slot", value=None))
            tracker.apply(ActiveLoop(name=None))
            return None
        if tracker.slots.get("requested_slot") != next_slot:
            tracker.apply(SlotSet(key="requested_slot", value=next_slot))
        return await self._ask(form, str(next_slot), tracker)

    async def _ask(self, form: str, slot: str, tracker: Tracker) -> bool:
        ask = self.domain.ask_action_for(form, slot)
        if ask is None:
            log.warning("form %s has no question for slot %s", form, slot)
            self._utter(tracker, "utter_default")
            return False
        if self.domain.is_response(ask):
            self._utter(tracker, ask)
            return False
        await self._run_custom(ask, tracker, executed=None)
        return False

    def _interrupt_form(self, form: str, tracker: Tracker, intent: str | None) -> list[str]:
        """The shopper changed the subject while a form waited for an answer."""
        target = self.policy.rule_action_for_intent(intent)
        if intent == "stop" or target is None or self.domain.is_form(target) or intent in (
            "human_handoff",
        ):
            self._deactivate(form, tracker)
            return [target] if target else ["utter_ok_cancelled_request"]
        # Answer the side question, then ask again what the form waits for.
        return [target, f"{REASK}{form}"]

    def _deactivate(self, form: str, tracker: Tracker) -> None:
        tracker.apply(ActiveLoop(name=None))
        for slot in self.domain.forms[form]:
            if slot != "customer_id" and tracker.slots.get(slot) is not None:
                tracker.apply(SlotSet(key=slot, value=None))

    # ------------------------------------------------------------------ built-in actions
    async def _builtin_action_default_fallback(self, tracker: Tracker) -> None:
        self.stats.fallbacks += 1
        self._utter(tracker, "utter_default")

    async def _builtin_action_offer_handoff(self, tracker: Tracker) -> None:
        self.stats.fallbacks += 1
        self._utter(tracker, "utter_offer_handoff")

    async def _builtin_action_handoff(self, tracker: Tracker) -> None:
        last = tracker.events[-1] if tracker.events else None
        decided = (last.policy or "") if isinstance(last, ActionExecuted) else ""
        intent = tracker.latest_message.intent if tracker.latest_message else None
        if decided == HANDOFF_POLICY + "out_of_scope":
            trigger = Trigger("out_of_scope", "request outside the bot's scope")
            self._utter(tracker, "utter_handoff_out_of_scope")
        elif decided == HANDOFF_POLICY + "misses":
            trigger = Trigger("misses", f"bot misunderstood {self.max_misses} messages in a row")
            self._utter(tracker, "utter_handoff_misses")
        elif intent == "human_handoff":
            trigger = ASKED
        elif tracker.latest_action_name == "action_handoff" and _offered(tracker):
            trigger = Trigger("misses", "bot could not understand; shopper accepted a human")
        else:
            trigger = Trigger("unanswered", "bot could not help")
        await self._hand_off(tracker, trigger)

    async def _action_failed(self, tracker: Tracker, action: str) -> None:
        if not self.handoff_policy.on_action_failure:
            self._utter(tracker, "utter_action_failed")
            return
        self._utter(tracker, "utter_handoff_action_failed")
        await self._hand_off(tracker, Trigger("action_failed", f"action {action} failed"))

    async def _hand_off(
        self, tracker: Tracker, trigger: Trigger, *, ticket_text: str | None = None
    ) -> None:
        """Queue the conversation for a human agent (once) and tell the shopper what
        happens next and how long it should take."""
        if tracker.active_loop:
            self._deactivate(tracker.active_loop, tracker)
        waiting = tracker.handoff_status in ("requested", "claimed")
        wait = self._phrase(tracker, "utter_wait_unknown")
        ticket_id = None
        if self.handoff is not None:
            ticket_id, minutes = await self.db.call(self._request_handoff, tracker, trigger,
                                                    ticket_text)
            wait = self._phrase(
                tracker, "utter_wait_one_minute" if minutes == 1 else "utter_wait_minutes",
                minutes=minutes)
        elif not waiting:
            tracker.apply(HandoffEvent(step="requested", reason=trigger.reason,
                                       data={"trigger": trigger.kind}))
        if not waiting:
            self.stats.handoffs += 1
        if ticket_id:
            self._utter(tracker, "utter_handoff_complaint", ticket_id=ticket_id)
        self._utter(tracker, "utter_handoff", wait=wait)

    def _request_handoff(self, tracker: Tracker, trigger: Trigger, ticket_text: str | None
                         ) -> tuple[str | None, int]:
        """On a database thread: queue the conversation (its handoff row, a ticket) and
        estimate the wait. Its own short transaction, like an in-process action."""
        assert self.handoff is not None
        with self.db.session() as session:
            conv = session.get(Conversation, tracker.conversation_id)
            row = None
            if conv is not None:
                row = self.handoff.request(session, conv, tracker, trigger,
                                           ticket_text=ticket_text)
            ticket_id = row.ticket_id if row is not None else None
            return ticket_id, self.handoff.expected_wait_minutes(session)

    async def _builtin_action_restart(self, tracker: Tracker) -> None:
        from bot.types import Restarted

        tracker.apply(Restarted())

    async def _builtin_action_session_start(self, tracker: Tracker) -> None:
        tracker.apply(SessionStarted())

    async def _builtin_action_deactivate_loop(self, tracker: Tracker) -> None:
        if tracker.active_loop:
            self._deactivate(tracker.active_loop, tracker)

    async def _builtin_action_knowledge_answer(self, tracker: Tracker) -> None:
        latest = tracker.latest_message
        question = latest.text if latest else ""
        if self.knowledge is None:
            self.stats.knowledge_unanswered += 1
            self._utter(tracker, "utter_out_of_scope")
            return
        entities = latest.entities if latest else []
        sink = _token_sink.get()
        stream = getattr(self.knowledge, "answer_stream", None)
        if sink is None or stream is None:
            loop = asyncio.get_running_loop()
            answer = await loop.run_in_executor(self._answering, self.knowledge.answer,
                                                question, entities)
        else:
            answer = await _stream_from_thread(self._answering, stream, question, entities, sink)
        self.stats.knowledge_answers += 1
        citations = [_citation_dict(c) for c in getattr(answer, "citations", []) or []]
        data: dict[str, Any] = {"custom": {"type": "answer", "grounded": bool(answer.grounded),
                                           "citations": citations}}
        text = answer.text
        if not answer.grounded:
            # The store's data holds no answer: what the shopper reads is the domain's.
            self.stats.knowledge_unanswered += 1
            for reply in self._replies(tracker, "utter_knowledge_not_found"):
                text = reply.text
                data["buttons"] = [b.to_dict() for b in reply.buttons]
        tracker.apply(BotUttered(text=text, data=data, metadata={
            "utter_action": None if answer.grounded else "utter_knowledge_not_found"}))


_token_sink: contextvars.ContextVar[Callable[[str], Awaitable[None]] | None] = (
    contextvars.ContextVar("clerk_token_sink", default=None)
)


async def _stream_from_thread(
    threads: ThreadPoolExecutor,
    stream: Callable[..., Any],
    question: str,
    entities: list[dict[str, Any]],
    sink: Callable[[str], Awaitable[None]],
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


class _TrackerWithLoop:
    """A tracker view whose ``active_loop`` is the form being validated (on activation the
    validation runs before the ActiveLoop event is logged, as in Rasa)."""

    def __init__(self, tracker: Tracker, form: str) -> None:
        self._t = tracker
        self._form = form

    def view(self) -> Tracker:
        clone = Tracker(
            conversation_id=self._t.conversation_id,
            initial_slots=self._t.initial_slots,
            events=self._t.events,
            slots=self._t.slots,
            active_loop=self._form,
            latest_message=self._t.latest_message,
            latest_action_name=self._t.latest_action_name,
            followup_action=self._t.followup_action,
            handoff_status=self._t.handoff_status,
            channel=self._t.channel,
        )
        return clone


def _bot_event(reply: Reply, response: str | None = None) -> BotUttered:
    data: dict[str, Any] = {}
    if reply.buttons:
        data["buttons"] = [b.to_dict() for b in reply.buttons]
    if reply.custom is not None:
        data["custom"] = reply.custom
    if reply.image is not None:
        data["image"] = reply.image
    return BotUttered(text=reply.text, data=data,
                      metadata={"utter_action": response} if response else {})


def _offered(tracker: Tracker) -> bool:
    """Whether the bot offered a human just before the shopper's latest message."""
    seen_user = False
    for e in reversed(tracker.events):
        if isinstance(e, UserUttered):
            seen_user = True
        elif seen_user and isinstance(e, ActionExecuted) and e.name != LISTEN:
            return e.name == "action_offer_handoff"
    return False


def _slots_set_since_user(tracker: Tracker) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for e in reversed(tracker.events):
        if isinstance(e, UserUttered):
            break
        if isinstance(e, SlotSet):
            out.setdefault(e.key, e.value)
    return {k: v for k, v in out.items() if v is not None}


def _last_non_slot(tracker: Tracker) -> str | None:
    for s in reversed(tracker.steps):
        if s.kind != "slot":
            return s.kind
    return None


def _citation_dict(c: Any) -> dict[str, Any]:
    if isinstance(c, dict):
        return c
    out = {}
    for key in ("index", "passage_id", "title", "source", "kind", "text"):
        if hasattr(c, key):
            out[key] = getattr(c, key)
    return out


def _customer(tracker: Tracker) -> str | None:
    value = tracker.slots.get("customer_id")
    return str(value) if value else None


def replies_to(tracker: Tracker, message_id: str) -> list[Reply] | None:
    """The bot's replies to the stored shopper message ``message_id``, or ``None`` when no
    such message is stored (a client's retry is answered from here)."""
    replies: list[Reply] | None = None
    for e in tracker.events:
        if isinstance(e, UserUttered):
            if replies is not None:
                break
            if e.message_id == message_id:
                replies = []
        elif replies is not None and isinstance(e, BotUttered):
            replies.append(e.to_reply())
    return replies
