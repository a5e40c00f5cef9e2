"""Human handoff through real servers on 127.0.0.1: every trigger, the queue, the race
between two agents taking over, messages both ways (REST polling, the widget's WebSocket,
Telegram through a fake Bot API), hand-back with slots, closing, tickets, and the tracker
recording every step. Runs on SQLite and PostgreSQL (one database per backend for the
module; each test uses its own shoppers). The console's auth and escaping are in
test_console.py; the two-browser test is test_console_browser.py."""

from __future__ import annotations

import dataclasses
import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route
from websockets.sync.client import connect

from bot.config import Settings
from bot.errors import ActionError, ConfigError
from bot.handoff.agents import AgentAccounts
from bot.handoff.desk import HandoffConflict, HandoffDesk
from bot.handoff.triggers import assess_complaint, negativity
from bot.store.db import Database
from bot.store.models import Conversation, ConversationEvent, Handoff, OutboxMessage, Ticket
from bot.types import ConversationId, Message
from tests.live import Chat, LiveServer, bot_server

PASSWORD = "correct horse battery"


# --------------------------------------------------------------------------- helpers


class Agent:
    """One agent logged in to the console over HTTP (cookie session + CSRF token)."""

    def __init__(self, base_url: str, name: str, password: str = PASSWORD) -> None:
        self.base_url = base_url
        self.name = name
        self.http = httpx.Client(base_url=base_url, timeout=30, follow_redirects=False)
        page = self.http.get("/console/login")
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
        r = self.http.post(
            "/console/login",
            data={"name": name, "password": password, "csrf_token": token, "next": "/console"},
        )
        assert r.status_code == 303, r.text
        queue = self.http.get("/console")
        assert queue.status_code == 200
        self.csrf = re.search(r'name="csrf-token" content="([^"]+)"', queue.text).group(1)  # type: ignore[union-attr]

    def get(self, path: str, **params: Any) -> Any:
        r = self.http.get(f"/console/api/{path}", params=params)
        assert r.status_code == 200, r.text
        return r.json()

    def post(self, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.http.post(
            f"/console/api/{path}",
            json=body,
            headers={"X-CSRF-Token": self.csrf, "Origin": self.base_url},
        )

    def do(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        r = self.post(path, body)
        assert r.status_code == 200, r.text
        return r.json()

    def queue(self) -> list[dict[str, Any]]:
        return self.get("queue")["queue"]

    def entry(self, conversation_id: str) -> dict[str, Any] | None:
        return next((q for q in self.queue() if q["conversation_id"] == conversation_id), None)

    def view(self, conversation_id: str) -> dict[str, Any]:
        return self.get("conversation", id=conversation_id)


def poll(base_url: str, sender: str) -> list[dict[str, Any]]:
    r = httpx.get(f"{base_url}/webhooks/rest/messages", params={"sender": sender}, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def steps(db: Database, sender: str) -> list[str]:
    with db.session() as s:
        data = s.scalars(
            select(ConversationEvent.data)
            .where(ConversationEvent.conversation_id == sender, ConversationEvent.type == "handoff")
            .order_by(ConversationEvent.seq)
        ).all()
    return [d["step"] for d in data]


def status(db: Database, sender: str) -> str:
    with db.session() as s:
        conv = s.get(Conversation, sender)
        assert conv is not None
        return conv.handoff_status


def wait_until(check: Any, timeout: float = 10.0) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError("timed out")


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def server(module_database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    with bot_server(bot_settings(module_database_url), shared_encoder) as live:
        accounts = AgentAccounts(live.parts.db)  # type: ignore[attr-defined]
        for name, role in (("ana", "agent"), ("ben", "agent"), ("root", "admin")):
            accounts.add(name, PASSWORD, role)
        yield live


@pytest.fixture(scope="module")
def store(server: LiveServer, module_database_url: str) -> Iterator[Database]:
    db = Database(module_database_url)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def ana(server: LiveServer) -> Agent:
    return Agent(server.url, "ana")


@pytest.fixture(scope="module")
def ben(server: LiveServer) -> Agent:
    return Agent(server.url, "ben")


@pytest.fixture
def chat(server: LiveServer) -> Chat:
    return Chat(server.url)


# --------------------------------------------------------------------------- triggers


def test_asking_for_a_human_queues_the_conversation_with_a_wait(
    chat: Chat, ana: Agent, store: Database
) -> None:
    chat.text("hi")
    reply = chat.text("I want to talk to a real person")
    assert "human colleague" in reply and re.search(r"expected wait is about \d+ minutes?", reply)
    entry = ana.entry(chat.conversation_id)
    assert entry is not None
    assert entry["status"] == "requested" and entry["reason"] == "shopper asked for a human"
    assert entry["channel"] == "rest" and entry["trigger"] == "asked"
    assert entry["last_message"] == "I want to talk to a real person"
    assert time.time() - entry["requested_at"] < 60
    assert steps(store, chat.conversation_id) == ["requested"]
    # asking again while waiting queues nothing new
    chat.text("I want to talk to a real person")
    assert steps(store, chat.conversation_id) == ["requested"]


def test_two_misses_offer_a_human_and_yes_hands_off(chat: Chat, ana: Agent) -> None:
    chat.text("blorf snargle wib")
    offer = chat.say("qwzx vlemp krrpt")
    assert "human" in offer[0]["text"].lower()
    assert ana.entry(chat.conversation_id) is None
    reply = chat.text("yes")
    assert "expected wait" in reply
    entry = ana.entry(chat.conversation_id)
    assert entry is not None and entry["trigger"] == "misses"


def test_a_severe_complaint_goes_to_a_human_with_an_urgent_ticket(
    chat: Chat, ana: Agent, store: Database
) -> None:
    reply = chat.text("I want to complain: the heater I bought caught fire and burned my hand")
    ticket_id = re.search(r"urgent ticket (t-\d{6})", reply).group(1).upper()  # type: ignore[union-attr]
    assert "expected wait" in reply
    entry = ana.entry(chat.conversation_id)
    assert entry is not None and entry["trigger"] == "complaint"
    assert "safety" in entry["reason"] and entry["ticket_id"] == ticket_id
    with store.session() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.priority == "high" and ticket.status == "open"
        assert ticket.conversation_id == chat.conversation_id and "caught fire" in ticket.text
    view = ana.view(chat.conversation_id)
    assert view["work_on_ticket"] == ticket_id


def test_a_strongly_negative_or_legal_complaint_goes_to_a_human(
    server: LiveServer, ana: Agent
) -> None:
    angry = Chat(server.url)
    angry.text("This is absolutely unacceptable, the worst service ever, I'm furious!!")
    assert ana.entry(angry.conversation_id)["reason"] == "complaint is strongly negative"  # type: ignore[index]
    legal = Chat(server.url)
    legal.text("I want to file a complaint, my lawyer will be in touch about this")
    assert "legal" in ana.entry(legal.conversation_id)["reason"]  # type: ignore[index]


def test_an_ordinary_complaint_stays_with_the_bot(chat: Chat, ana: Agent) -> None:
    reply = chat.text("I want to make a complaint")
    assert "which order" in reply
    assert ana.entry(chat.conversation_id) is None


def test_a_request_outside_the_bots_scope_goes_to_a_human(chat: Chat, ana: Agent) -> None:
    reply = chat.text("can you book me a flight to Paris?")
    assert "outside what i can help with" in reply and "expected wait" in reply
    entry = ana.entry(chat.conversation_id)
    assert entry is not None and entry["trigger"] == "out_of_scope"


class _FailingActions:
    """Wraps the real runner; ``action_order_status`` fails as a crashing server would."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner

    def has_action(self, action: str) -> bool:
        return self.inner.has_action(action)

    async def run(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if action == "action_order_status":
            raise ActionError(action, "simulated crash")
        return await self.inner.run(action, payload)

    async def aclose(self) -> None:
        await self.inner.aclose()


async def test_a_failed_action_goes_to_a_human(server: LiveServer, shared_encoder) -> None:  # type: ignore[no-untyped-def]
    from bot.actions import InProcessActionRunner
    from bot.app import build
    from bot.store_actions import build_actions

    base = server.parts  # type: ignore[attr-defined]
    parts = build(
        base.settings,
        encoder=shared_encoder,
        nlu=base.nlu,
        actions=_FailingActions(InProcessActionRunner(build_actions(base.db), db=base.db)),
    )
    cid = ConversationId(f"failing-{uuid.uuid4().hex[:8]}")

    async def say(text: str) -> str:
        replies = await parts.manager.handle(Message(conversation_id=cid, text=text))
        return "\n".join(r.text or "" for r in replies).lower()

    await say("where is my order #W6893533?")
    reply = await say("ivan.santos3158@example.com")
    assert "went wrong" in reply and "nothing was changed" in reply and "expected wait" in reply
    queue = parts.handoff.desk.queue()
    entry = next(q for q in queue if q.conversation_id == cid)
    assert entry.trigger == "action_failed" and "action_order_status" in entry.reason
    parts.db.dispose()


async def test_misses_can_hand_off_directly(server: LiveServer, shared_encoder) -> None:  # type: ignore[no-untyped-def]
    from bot.app import build

    base = server.parts  # type: ignore[attr-defined]
    direct = dataclasses.replace(base.settings, handoff_on_misses="handoff")
    parts = build(direct, encoder=shared_encoder, nlu=base.nlu)
    cid = ConversationId(f"misses-{uuid.uuid4().hex[:8]}")

    async def say(text: str) -> str:
        replies = await parts.manager.handle(Message(conversation_id=cid, text=text))
        return "\n".join(r.text or "" for r in replies).lower()

    assert "rephrase" in await say("blorf snargle wib")
    reply = await say("qwzx vlemp krrpt")
    assert "misunderstanding" in reply and "expected wait" in reply
    entry = next(q for q in parts.handoff.desk.queue() if q.conversation_id == cid)
    assert entry.trigger == "misses" and "2 messages in a row" in entry.reason
    parts.db.dispose()


def test_complaint_assessment() -> None:
    assert assess_complaint("the charger sparked and gave me an electric shock").kind == "complaint"  # type: ignore[union-attr]
    assert "legal" in assess_complaint("I will sue you").reason  # type: ignore[union-attr]
    assert assess_complaint("my package arrived a day late") is None
    assert assess_complaint("the box was a bit dented, not a big deal") is None
    assert negativity("TERRIBLE, absolutely disgusting service!!") >= 2
    assert negativity("thanks, all good") == 0


def test_handoff_settings_are_read_and_checked() -> None:
    s = Settings.load(
        {
            "CLERK_HANDOFF_ON_MISSES": "handoff",
            "CLERK_HANDOFF_ON_OUT_OF_SCOPE": "false",
            "CLERK_CONSOLE_CANNED_REPLIES": "One moment please|Done!",
        },
        config_file="/nonexistent/clerk.yml",
    )
    assert s.handoff_on_misses == "handoff" and s.handoff_on_out_of_scope is False
    assert s.console_canned_replies == ("One moment please", "Done!")
    with pytest.raises(ConfigError):
        Settings.load({"CLERK_HANDOFF_ON_MISSES": "sometimes"}, config_file="/nonexistent/x.yml")
    with pytest.raises(ConfigError):
        Settings.load({"CLERK_HANDOFF_ON_ACTION_FAILURE": "maybe"}, config_file="/nonexistent/x")


# --------------------------------------------------------------------------- claiming


def test_two_agents_taking_over_at_once_exactly_one_wins(
    server: LiveServer, ana: Agent, ben: Agent, store: Database
) -> None:
    for _ in range(4):
        chat = Chat(server.url)
        chat.text("I want to talk to a human")
        barrier = threading.Barrier(2)
        results: dict[str, int] = {}

        def take(
            agent: Agent, sender: str, barrier: threading.Barrier, results: dict[str, int]
        ) -> None:
            barrier.wait()
            results[agent.name] = agent.post("claim", {"id": sender}).status_code

        threads = [
            threading.Thread(target=take, args=(a, chat.conversation_id, barrier, results))
            for a in (ana, ben)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert sorted(results.values()) == [200, 409], results
        winner = next(n for n, code in results.items() if code == 200)
        assert steps(store, chat.conversation_id) == ["requested", "claimed"]
        assert ana.entry(chat.conversation_id)["agent"] == winner  # type: ignore[index]
        with store.session() as s:
            [h] = s.scalars(
                select(Handoff).where(Handoff.conversation_id == chat.conversation_id)
            ).all()
            assert h.status == "claimed" and h.agent == winner


@pytest.mark.parametrize("rounds", [3])
def test_the_database_decides_a_claim_race_between_processes(
    server: LiveServer, module_database_url: str, rounds: int
) -> None:
    """Two separate connections (as two server processes would have) run the claim's
    conditional UPDATE at the same moment; exactly one changes the row."""
    for _ in range(rounds):
        chat = Chat(server.url)
        chat.text("I want to talk to a human")
        dbs = [Database(module_database_url) for _ in range(2)]
        barrier = threading.Barrier(2)
        outcomes: list[str] = []

        def claim(
            db: Database, sender: str, barrier: threading.Barrier, outcomes: list[str]
        ) -> None:
            with db.session() as s:
                barrier.wait()
                try:
                    HandoffDesk.claim_guard(s, sender)
                    time.sleep(0.2)  # hold the row a moment, as a real claim does
                    outcomes.append("won")
                except HandoffConflict:
                    outcomes.append("lost")

        threads = [
            threading.Thread(target=claim, args=(d, chat.conversation_id, barrier, outcomes))
            for d in dbs
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        for d in dbs:
            d.dispose()
        assert sorted(outcomes) == ["lost", "won"]


def test_only_a_waiting_conversation_can_be_taken(chat: Chat, ana: Agent) -> None:
    chat.text("hello")
    r = ana.post("claim", {"id": chat.conversation_id})
    assert r.status_code == 409 and r.json()["status"] == "none"
    assert ana.post("claim", {"id": "no-such-conversation"}).status_code == 409


# --------------------------------------------------------------------------- the relay


def test_rest_shopper_and_agent_talk_then_the_bot_takes_back_with_the_customer_set(
    server: LiveServer, chat: Chat, ana: Agent, ben: Agent, store: Database
) -> None:
    chat.text("can I cancel a processed order?")
    chat.text("I need to speak to an agent")
    # why the bot said what it said: intents with confidences, the passages it cited
    before = ana.view(chat.conversation_id)["transcript"]
    asked = next(t for t in before if t["type"] == "user")
    assert asked["intent"] == "policy_question" and 0 < asked["confidence"] <= 1
    answer = next(t for t in before if t["type"] == "bot")
    assert answer["citations"] and answer["citations"][0]["title"]
    ana.do("claim", {"id": chat.conversation_id})
    joined = poll(server.url, chat.sender)
    assert [m["custom"]["type"] for m in joined] == ["handoff_notice"]
    assert "ana from our team has joined" in joined[0]["text"].lower()

    # the bot is silent; the shopper's messages reach the agent
    assert chat.say("hi, my order #W6893533 never arrived") == []
    view = ana.view(chat.conversation_id)
    assert view["transcript"][-1]["type"] == "user"
    assert view["transcript"][-1]["text"] == "hi, my order #W6893533 never arrived"
    assert view["transcript"][-1]["intent"]

    # only the holder may reply; the reply is delivered once
    assert ben.post("message", {"id": chat.conversation_id, "text": "hello"}).status_code == 409
    ana.do("message", {"id": chat.conversation_id, "text": "Sorry about that! Let me check."})
    ana.do("note", {"id": chat.conversation_id, "text": "verified Ivan by phone"})
    got = poll(server.url, chat.sender)
    assert [(m["text"], m["custom"]["agent"]) for m in got] == [
        ("Sorry about that! Let me check.", "ana")
    ]
    assert poll(server.url, chat.sender) == []  # taken once
    assert all("verified" not in json.dumps(m) for m in got)  # notes stay internal

    # hand back with the verified customer: the bot answers again, without asking who
    ana.do("return", {"id": chat.conversation_id, "slots": {"customer_id": "ivan_santos_6635"}})
    assert "back with clerk" in poll(server.url, chat.sender)[0]["text"].lower()
    assert status(store, chat.conversation_id) == "none"
    answer = chat.text("where is my order #W6893533?")
    assert "delivered" in answer and "garden hose" in answer
    assert steps(store, chat.conversation_id) == [
        "requested",
        "claimed",
        "agent_message",
        "note",
        "returned",
    ]
    assert ana.entry(chat.conversation_id) is None
    # only the message written while ana held the conversation is stamped as to the agent
    # (analytics leaves it out of the bot's messages)
    with store.session() as s:
        written = s.scalars(
            select(ConversationEvent.data)
            .where(
                ConversationEvent.conversation_id == chat.conversation_id,
                ConversationEvent.type == "user",
            )
            .order_by(ConversationEvent.seq)
        ).all()
    assert [bool((d.get("metadata") or {}).get("to_agent")) for d in written] == [
        False,
        False,
        True,
        False,
    ]


def test_closing_with_a_resolution(
    server: LiveServer, chat: Chat, ana: Agent, store: Database
) -> None:
    chat.text("let me talk to a human please")
    ana.do("claim", {"id": chat.conversation_id})
    r = ana.post("close", {"id": chat.conversation_id, "resolution": "refund issued for the lamp"})
    assert r.status_code == 200
    notices = poll(server.url, chat.sender)
    assert "closed this conversation" in notices[-2]["text"]
    assert notices[-1]["custom"]["type"] == "feedback_request"  # the end: rate it (CSAT)
    assert status(store, chat.conversation_id) == "closed"
    view = ana.view(chat.conversation_id)
    assert view["handoff"]["resolution"] == "refund issued for the lamp"
    closed, asked = view["transcript"][-2:]  # the close, then the request for a rating
    assert closed == {**closed, "step": "closed", "reason": "refund issued for the lamp"}
    assert asked["type"] == "bot" and asked["text"] == notices[-1]["text"]
    # after a close the bot answers again, and a new handoff can start
    assert "bot" in chat.text("are you a bot?")
    chat.text("I want to talk to a human")
    assert ana.entry(chat.conversation_id)["status"] == "requested"  # type: ignore[index]
    assert steps(store, chat.conversation_id) == ["requested", "claimed", "closed", "requested"]


def test_hand_back_refuses_unknown_slots_and_customers(chat: Chat, ana: Agent) -> None:
    chat.text("I want a human")
    ana.do("claim", {"id": chat.conversation_id})
    assert (
        ana.post("return", {"id": chat.conversation_id, "slots": {"confirmed": "true"}}).status_code
        == 409
    )
    assert (
        ana.post(
            "return", {"id": chat.conversation_id, "slots": {"customer_id": "nobody_1"}}
        ).status_code
        == 409
    )
    assert ana.post("message", {"id": chat.conversation_id, "text": "   "}).status_code == 400
    assert ana.do("return", {"id": chat.conversation_id})["status"] == "none"


def test_the_widget_gets_agent_messages_live_and_in_its_history(
    server: LiveServer, ana: Agent
) -> None:
    ws_url = server.url.replace("http://", "ws://") + "/widget/ws"

    def frames_until(ws: Any, pred: Any) -> list[dict[str, Any]]:
        seen = []
        while True:
            frame = json.loads(ws.recv(timeout=20))
            seen.append(frame)
            if pred(frame):
                return seen

    with connect(ws_url, proxy=None) as ws:
        ws.send(json.dumps({"type": "hello", "session": None}))
        session = json.loads(ws.recv(timeout=20))["session"]
        ws.send(json.dumps({"type": "message", "id": "m1", "text": "I want to talk to a human"}))
        frames_until(ws, lambda f: f == {"type": "typing", "on": False})
        cid = f"web:{session}"
        ana.do("claim", {"id": cid})
        frames_until(ws, lambda f: f.get("custom", {}).get("type") == "handoff_notice")
        ana.do("message", {"id": cid, "text": "Hi, I'm Ana. <b>How</b> can I help?"})
        got = frames_until(ws, lambda f: f.get("custom", {}).get("type") == "agent_message")
        assert got[-1]["text"] == "Hi, I'm Ana. <b>How</b> can I help?"
        assert got[-1]["custom"]["agent"] == "ana" and got[-1]["id"].startswith("agent:")
        ws.send(json.dumps({"type": "message", "id": "m2", "text": "my parcel is lost"}))
        after = frames_until(ws, lambda f: f == {"type": "typing", "on": False})
        assert not [f for f in after if f.get("type") == "bot"]  # the bot stays silent
    assert wait_until(lambda: ana.view(cid)["transcript"][-1].get("text") == "my parcel is lost")
    with connect(ws_url, proxy=None) as ws:  # a reload: the history has the agent's message
        ws.send(json.dumps({"type": "hello", "session": session}))
        history = json.loads(ws.recv(timeout=20))["history"]
        texts = [h.get("text") for h in history]
        assert "Hi, I'm Ana. <b>How</b> can I help?" in texts
        assert texts.index("Hi, I'm Ana. <b>How</b> can I help?") < texts.index("my parcel is lost")


def test_an_undeliverable_push_stays_pending_and_is_retried(
    server: LiveServer, ana: Agent, store: Database, request: pytest.FixtureRequest
) -> None:
    outbox = server.parts.handoff.outbox  # type: ignore[attr-defined]
    failures = outbox.failures
    outbox.retry_every = 0.3  # the worker picks it up at its next change
    request.addfinalizer(lambda: setattr(outbox, "retry_every", 5.0))
    with connect(server.url.replace("http://", "ws://") + "/widget/ws", proxy=None) as ws:
        ws.send(json.dumps({"type": "hello", "session": None}))
        cid = "web:" + json.loads(ws.recv(timeout=20))["session"]
        ws.send(json.dumps({"type": "message", "id": "m1", "text": "I want a human"}))
        while json.loads(ws.recv(timeout=20)) != {"type": "typing", "on": False}:
            pass
    # the shopper closed the page: nothing can be pushed now
    ana.do("claim", {"id": cid})
    ana.do("message", {"id": cid, "text": "are you still there?"})
    wait_until(lambda: outbox.failures >= failures + 2)
    with store.session() as s:
        rows = s.scalars(select(OutboxMessage).where(OutboxMessage.conversation_id == cid)).all()
        assert len(rows) == 2 and all(r.delivered_at is None for r in rows)
    assert poll(server.url, cid) == []  # polling never takes a pushing channel's messages
    # the shopper comes back: the history has both, and the retry delivers them
    with connect(server.url.replace("http://", "ws://") + "/widget/ws", proxy=None) as ws:
        ws.send(json.dumps({"type": "hello", "session": cid.removeprefix("web:")}))
        history = json.loads(ws.recv(timeout=20))["history"]
        assert "are you still there?" in [h.get("text") for h in history]
        pushed = json.loads(ws.recv(timeout=20))  # the outbox retries within seconds
        assert pushed["type"] == "bot" and pushed["id"].startswith("agent:")

    def marked() -> bool:  # marked delivered right after the push
        with store.session() as s:
            rows = s.scalars(
                select(OutboxMessage).where(OutboxMessage.conversation_id == cid)
            ).all()
            return any(r.delivered_at is not None for r in rows)

    assert wait_until(marked, timeout=5)


# --------------------------------------------------------------------------- tickets


def test_tickets_are_listed_filtered_changed_and_assigned(
    chat: Chat, ana: Agent, store: Database
) -> None:
    chat.text("I want to make a complaint")
    chat.text("no order")
    chat.text("The lamp I got is the wrong colour")
    reply = chat.text("reach me at ivan.santos3158@example.com")
    ticket_id = re.search(r"T-\d{6}", reply, re.IGNORECASE).group(0).upper()  # type: ignore[union-attr]
    listed = ana.get("tickets", status="open", priority="normal")["tickets"]
    assert ticket_id in [t["id"] for t in listed]
    assert all(t["status"] == "open" and t["priority"] == "normal" for t in listed)
    assert ticket_id not in [t["id"] for t in ana.get("tickets", priority="high")["tickets"]]

    ana.do("ticket", {"id": ticket_id, "status": "pending", "assignee": "me"})
    changed = ana.get("tickets", status="pending")["tickets"]
    assert next(t for t in changed if t["id"] == ticket_id)["assignee"] == "ana"
    assert ana.post("ticket", {"id": ticket_id, "status": "lost"}).status_code == 400
    assert ana.post("ticket", {"id": "T-000000x"}).status_code == 404

    # the page form: solve it and hand it to ben
    r = ana.http.post(
        "/console/tickets/update",
        data={"csrf_token": ana.csrf, "id": ticket_id, "status": "solved", "assignee": "ben"},
        headers={"Origin": ana.base_url},
    )
    assert r.status_code == 303
    page = ana.http.get("/console/tickets", params={"status": "solved"}).text
    assert ticket_id in page and "Saved ticket" not in page
    with store.session() as s:
        t = s.get(Ticket, ticket_id)
        assert t is not None and t.status == "solved" and t.assignee == "ben"
    # the shopper asks the bot
    assert f"{ticket_id.lower()} is solved" in chat.text(
        f"what's the status of ticket {ticket_id}?"
    )


# --------------------------------------------------------------------------- Telegram


class FakeTelegram:
    """The Bot API methods the channel uses, on 127.0.0.1; records what the bot sent."""

    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []
        self.app = Starlette(
            routes=[Route("/bot{token}/{method}", self.endpoint, methods=["GET", "POST"])]
        )

    async def endpoint(self, request: Request) -> JSONResponse:
        from urllib.parse import parse_qsl

        method = request.path_params["method"]
        raw = (await request.body()).decode()
        params = (
            json.loads(raw)
            if request.headers.get("content-type", "").startswith("application/json")
            else dict(parse_qsl(raw))
        )
        if method == "getMe":
            result: Any = {
                "id": 42,
                "is_bot": True,
                "first_name": "Clerk",
                "username": "clerk_test_bot",
            }
        elif method == "sendMessage":
            result = {
                "message_id": len(self.sent) + 1,
                "date": int(time.time()),
                "chat": {"id": int(params["chat_id"]), "type": "private"},
                "text": params["text"],
            }
            self.sent.append(
                {"chat_id": int(params["chat_id"]), "text": re.sub(r"\\(.)", r"\1", params["text"])}
            )
        else:  # setWebhook, sendChatAction, ...
            result = True
        return JSONResponse({"ok": True, "result": result})

    def texts(self, chat_id: int) -> list[str]:
        return [m["text"] for m in self.sent if m["chat_id"] == chat_id]


def test_telegram_shopper_and_agent_talk_through_the_bot_api(
    server: LiveServer,
    shared_encoder,
    module_database_url: str,
    store: Database,  # type: ignore[no-untyped-def]
) -> None:
    from bot.app import build, create_app
    from bot.channels.telegram import SECRET_HEADER, derived_secret

    fake = FakeTelegram()
    token = "777:TEST-handoff"
    with LiveServer(fake.app) as api:
        settings = dataclasses.replace(
            server.parts.settings,
            telegram_token=token,  # type: ignore[attr-defined]
            telegram_base_url=api.url,
            telegram_webhook_url="https://clerk.example/webhooks/telegram",
        )
        parts = build(settings, encoder=shared_encoder, nlu=server.parts.nlu)  # type: ignore[attr-defined]
        with LiveServer(create_app(parts)) as tg:
            chat_id = 900_000 + int(uuid.uuid4().int % 99_999)
            update_ids = iter(range(int(time.time() * 1000) % 10**9, 10**10))

            def shopper(text: str) -> None:
                r = httpx.post(
                    f"{tg.url}/webhooks/telegram",
                    headers={SECRET_HEADER: derived_secret(token)},
                    json={
                        "update_id": next(update_ids),
                        "message": {
                            "message_id": next(update_ids) % 10**6,
                            "date": int(time.time()),
                            "chat": {"id": chat_id, "type": "private", "first_name": "Ivan"},
                            "from": {"id": chat_id, "is_bot": False, "first_name": "Ivan"},
                            "text": text,
                        },
                    },
                    timeout=10,
                )
                assert r.status_code == 200

            agent = Agent(tg.url, "ana")
            cid = f"tg:{chat_id}"
            shopper("I want to talk to a human")
            wait_until(lambda: any("expected wait" in t for t in fake.texts(chat_id)))
            assert agent.entry(cid)["channel"] == "telegram"  # type: ignore[index]
            agent.do("claim", {"id": cid})
            wait_until(lambda: any("ana from our team" in t.lower() for t in fake.texts(chat_id)))
            before = len(fake.texts(chat_id))
            shopper("my blender arrived broken")
            wait_until(
                lambda: agent.view(cid)["transcript"][-1].get("text") == "my blender arrived broken"
            )
            time.sleep(0.3)
            assert len(fake.texts(chat_id)) == before  # the bot stays silent
            agent.do(
                "message", {"id": cid, "text": "So sorry! A replacement is on its way (2-3 days)."}
            )
            wait_until(
                lambda: (
                    "ana: So sorry! A replacement is on its way (2-3 days)." in fake.texts(chat_id)
                )
            )
            agent.do("return", {"id": cid})
            wait_until(lambda: any("back with clerk" in t.lower() for t in fake.texts(chat_id)))
            shopper("are you a bot?")
            wait_until(lambda: any("i'm a bot" in t.lower() for t in fake.texts(chat_id)))
        assert steps(store, cid) == ["requested", "claimed", "agent_message", "returned"]
        with store.session() as s:
            rows = s.scalars(
                select(OutboxMessage).where(OutboxMessage.conversation_id == cid)
            ).all()
            assert rows and all(r.delivered_at is not None for r in rows)


# --------------------------------------------------------------------------- schema


def test_revision_0002_upgrades_a_0001_database_in_place(database_url: str) -> None:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine
    from sqlalchemy import text as sa_text

    from bot.store import migrate
    from bot.store.db import normalise_url
    from bot.store.models import Base

    migrate.upgrade(database_url, "0001")
    db = Database(database_url)
    try:
        with db.session() as s:  # the columns of revision 0001 only
            s.execute(
                sa_text(
                    "INSERT INTO conversations (id, channel, handoff_status, "
                    "created_at, updated_at, event_count) VALUES ('kept', 'rest', "
                    "'requested', CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 0)"
                )
            )
        migrate.upgrade(database_url)
        assert migrate.current(database_url) == "0006"
        with db.session() as s:
            assert s.get(Conversation, "kept").handoff_status == "requested"  # type: ignore[union-attr]
            s.add(Handoff(conversation_id="kept", status="requested", reason="r", trigger="asked"))
    finally:
        db.dispose()
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, Base.metadata) == []
    finally:
        engine.dispose()


def test_socketio_shopper_gets_the_agents_messages(server: LiveServer, ana: Agent) -> None:
    import socketio

    client = socketio.SimpleClient()
    client.connect(server.url, transports=["websocket"])
    try:
        client.emit("session_request", {"session_id": None})
        event, session_id = client.receive(timeout=10)
        assert event == "session_confirm"
        client.emit(
            "user_uttered", {"message": "I want to talk to a human", "session_id": session_id}
        )
        event, data = client.receive(timeout=30)
        assert event == "bot_uttered" and "human colleague" in data["text"]
        cid = f"sio:{session_id}"
        ana.do("claim", {"id": cid})
        ana.do("message", {"id": cid, "text": "Hello from Ana"})
        texts = []
        while "Hello from Ana" not in texts:
            event, data = client.receive(timeout=10)
            texts.append(data.get("text"))
        assert any("ana from our team" in (t or "").lower() for t in texts)
    finally:
        client.disconnect()


def test_an_agent_on_one_worker_reaches_a_shopper_on_another(
    server: LiveServer,
    shared_encoder,
    bot_settings,
    module_database_url: str,  # type: ignore[no-untyped-def]
    redis_url: str,
) -> None:
    """Two workers (separate processes' worth of parts: their own relays, outboxes and
    sockets) share the database and Redis: the shopper's widget is connected to worker A,
    the agent's console to worker B, and the agent's messages arrive live, through the
    Redis change feed, long before any periodic retry."""
    from bot.app import build, create_app

    settings = dataclasses.replace(bot_settings(module_database_url), redis_url=redis_url)
    workers = [
        build(settings, encoder=shared_encoder, nlu=server.parts.nlu)  # type: ignore[attr-defined]
        for _ in range(2)
    ]
    for parts in workers:
        parts.handoff.outbox.retry_every = 60.0  # so only the live path can deliver
    with LiveServer(create_app(workers[0])) as a, LiveServer(create_app(workers[1])) as b:
        agent = Agent(b.url, "ben")
        with connect(a.url.replace("http://", "ws://") + "/widget/ws", proxy=None) as ws:
            ws.send(json.dumps({"type": "hello", "session": None}))
            cid = "web:" + json.loads(ws.recv(timeout=20))["session"]
            ws.send(json.dumps({"type": "message", "id": "m1", "text": "I want a human"}))
            while json.loads(ws.recv(timeout=20)) != {"type": "typing", "on": False}:
                pass
            assert wait_until(lambda: agent.entry(cid))  # B's queue shows A's handoff
            agent.do("claim", {"id": cid})
            t = time.monotonic()
            agent.do("message", {"id": cid, "text": "Ben here, from the other worker."})
            texts = []
            while "Ben here, from the other worker." not in texts:
                frame = json.loads(ws.recv(timeout=10))
                texts.append(frame.get("text"))
            assert time.monotonic() - t < 5.0
            agent.do("return", {"id": cid})
    for parts in workers:
        parts.db.dispose()
