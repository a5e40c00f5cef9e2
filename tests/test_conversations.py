"""Conversations with the demo store's bot through the REST channel of a real server on
127.0.0.1, asserting on the replies and on the database afterwards. Every test runs on
SQLite and on PostgreSQL (one database per backend for this module; each test uses its own
shoppers and orders)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.store.db import Database
from bot.store.models import (
    Conversation,
    ConversationEvent,
    Order,
    OrderChange,
    Ticket,
)
from tests.live import Chat, LiveServer, bot_server


@pytest.fixture(scope="module")
def server(module_database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]

    with bot_server(bot_settings(module_database_url), shared_encoder) as live:
        yield live


@pytest.fixture(scope="module")
def store(server: LiveServer, module_database_url: str) -> Iterator[Database]:
    db = Database(module_database_url)
    yield db
    db.dispose()


@pytest.fixture
def chat(server: LiveServer) -> Chat:
    return Chat(server.url)


def order(db: Database, order_id: str) -> Order:
    with db.session() as s:
        o = s.get(Order, order_id)
        assert o is not None
        s.expunge(o)
        return o


def changes(db: Database, order_id: str) -> list[OrderChange]:
    with db.session() as s:
        return list(s.scalars(select(OrderChange).where(OrderChange.order_id == order_id)))


def events(db: Database, sender: str) -> list[dict[str, Any]]:
    with db.session() as s:
        return list(
            s.scalars(
                select(ConversationEvent.data)
                .where(ConversationEvent.conversation_id == sender)
                .order_by(ConversationEvent.seq)
            )
        )


# --------------------------------------------------------------------------- small talk


def test_small_talk(chat: Chat) -> None:
    assert "clerk" in chat.text("hello there")
    assert "bot" in chat.text("are you a bot?")
    what = chat.say("what can you do?")
    assert "order" in what[0]["text"].lower() and what[0]["buttons"]
    assert "welcome" in chat.text("thanks a lot")
    assert "bye" in chat.text("bye!")


# ------------------------------------------------------------------------ order status


def test_order_status_after_email_authentication(chat: Chat, store: Database) -> None:
    ask = chat.text("where is my order #W6893533?")
    assert "email" in ask and "zip" in ask  # authentication comes first
    answer = chat.text("ivan.santos3158@example.com")
    assert "#w6893533" in answer and "delivered" in answer
    assert "garden hose" in answer and "wireless earbuds" in answer
    assert order(store, "#W6893533").status == "delivered"  # looking changes nothing


def test_order_status_after_name_and_zip_authentication(chat: Chat) -> None:
    chat.text("I want to check the status of my order")
    reply = chat.text("Aarav Anderson, 19031")
    assert "thanks, aarav" in reply and "#w9300146" in reply  # verified; the order offered
    answer = chat.text("#W9300146")
    assert "#w9300146" in answer and "pending" in answer and "desk lamp" in answer


def test_another_customers_order_is_never_shown(chat: Chat) -> None:
    chat.text("what's the status of order #W6893533")
    reply = chat.text("sofia.li7352@example.com")  # Sofia, not Ivan who owns the order
    # nothing of Ivan's order: its items, tracking number or address
    for secret in ("garden hose", "262530041486", "willow lane", "232.49"):
        assert secret not in reply
    assert "i can't find order #w6893533 on your account" in reply


def test_wrong_credentials_are_refused(chat: Chat) -> None:
    chat.text("where is my order #W6893533?")
    reply = chat.text("nobody.here@example.com")
    assert "couldn't find an account with the email address nobody.here@example.com" in reply
    assert "garden hose" not in reply


# ------------------------------------------------------------------------------ cancel


def test_cancel_a_pending_order_after_an_explicit_yes(chat: Chat, store: Database) -> None:
    chat.text("I'd like to cancel order #W8770097")
    chat.text("ivan.santos3158@example.com")
    summary = chat.text("I ordered it by mistake")
    assert "#w8770097" in summary and "office chair" in summary and "yes" in summary
    assert order(store, "#W8770097").status == "pending"  # nothing before the yes
    done = chat.text("yes")
    assert "cancelled" in done
    o = order(store, "#W8770097")
    assert o.status == "cancelled"
    assert any(p.get("transaction_type") == "refund" for p in o.payment_history)
    [change] = changes(store, "#W8770097")
    assert change.kind == "cancel" and change.conversation_id == chat.conversation_id
    assert change.data.get("reason") == "ordered by mistake"


def test_no_at_the_confirmation_changes_nothing(chat: Chat, store: Database) -> None:
    chat.text("cancel my order #W3168895 please")
    chat.text("olivia.jackson2465@example.com")
    chat.text("no longer needed")
    reply = chat.text("no")
    assert "nothing changed" in reply
    assert order(store, "#W3168895").status == "pending"
    assert changes(store, "#W3168895") == []


def test_a_delivered_order_cannot_be_cancelled(chat: Chat, store: Database) -> None:
    chat.text("cancel order #W7736708")
    reply = chat.text("raj.sanchez2046@example.com")
    assert "delivered" in reply
    assert order(store, "#W7736708").status == "delivered"


# --------------------------------------------------------------------- return/exchange


def test_return_items_of_a_delivered_order(chat: Chat, store: Database) -> None:
    chat.text("I want to return something from order #W4316152")
    chat.text("aarav.anderson9752@example.com")
    summary = chat.text("all of them")
    assert "tea kettle" in summary and "yes" in summary
    done = chat.text("yes please")
    assert "return" in done
    assert order(store, "#W4316152").status == "return requested"
    [change] = changes(store, "#W4316152")
    assert change.kind == "return"


def test_exchange_for_another_variant_of_the_same_product(chat: Chat, store: Database) -> None:
    chat.text("I need to exchange the hiking boots from order #W1304208")
    chat.text("yara.ito7353@example.com")
    summary = chat.text("size 9 in leather")
    assert "hiking boots" in summary and "9" in summary
    chat.text("yes")
    assert order(store, "#W1304208").status == "exchange requested"
    [change] = changes(store, "#W1304208")
    assert change.kind == "exchange"
    assert "9" in str(change.data)


def test_change_the_address_of_a_pending_order(chat: Chat, store: Database) -> None:
    chat.text("please change the shipping address of order #W9300146")
    chat.text("Aarav Anderson 19031")
    summary = chat.text("12 Main Street, Apt 4, Springfield, IL 62704")
    assert "springfield" in summary and "yes" in summary
    chat.text("yes")
    o = order(store, "#W9300146")
    assert o.address["city"] == "Springfield" and o.address["zip"] == "62704"
    assert o.status == "pending"


# ----------------------------------------------------------------------------- tickets


def test_complaint_creates_a_ticket_whose_status_can_be_asked(chat: Chat, store: Database) -> None:
    chat.text("I want to file a complaint")
    chat.text("#W1633718")
    chat.text("The coffee maker arrived broken and leaks water everywhere")
    reply = chat.text("yusuf.hernandez6086@example.com")
    assert "t-" in reply
    ticket_id = "T-" + reply.split("t-", 1)[1][:6]
    with store.session() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None
        assert ticket.status == "open" and ticket.order_id == "#W1633718"
        assert ticket.customer_id == "yusuf_hernandez_6467"
        assert ticket.priority == "high"  # "broken"
        assert "leaks water" in ticket.text
    status = chat.text(f"what's the status of ticket {ticket_id}?")
    assert ticket_id.lower() in status and "open" in status
    unknown = chat.text("what's the status of ticket T-000000?")
    assert "i can't find ticket t-000000" in unknown


# ----------------------------------------------------------------------------- knowledge


def test_product_question_is_answered_from_the_catalog_with_citations(chat: Chat) -> None:
    replies = chat.say("how much is the Bluetooth Speaker in blue?")
    text = replies[0]["text"]
    for price in ("289.69", "271.89", "305.45", "302.67"):  # the blue speakers' prices
        assert price in text
    assert "[1]" in text
    assert replies[0]["custom"]["citations"]


def test_policy_question_cites_the_policy(chat: Chat) -> None:
    replies = chat.say("can I cancel a processed order?")
    text = replies[0]["text"].lower()
    assert "pending" in text and "[" in text
    sources = {c.get("source") for c in replies[0]["custom"]["citations"]}
    assert any("policy" in (s or "") or "faq" in (s or "") for s in sources)


def test_recommendations_are_real_in_stock_products(chat: Chat) -> None:
    replies = chat.say("can you recommend something?")
    cards = [r["custom"] for r in replies if r.get("custom")]
    assert cards and cards[0]["type"] == "product_cards"
    assert 1 <= len(cards[0]["products"]) <= 5
    assert all(p["available"] for p in cards[0]["products"])


# ------------------------------------------------------------------------------ handoff


def test_asking_for_a_human_marks_the_conversation(chat: Chat, store: Database) -> None:
    reply = chat.text("I want to talk to a real person")
    assert "i'm passing you to a human colleague now" in reply
    with store.session() as s:
        conv = s.get(Conversation, chat.conversation_id)
        assert conv is not None and conv.handoff_status == "requested"
    assert any(
        e["event"] == "handoff" and e["step"] == "requested"
        for e in events(store, chat.conversation_id)
    )


def test_two_misses_in_a_row_offer_a_human(chat: Chat, store: Database) -> None:
    first = chat.text("blorf snargle wib")
    assert "sorry, i didn't quite understand that" in first
    offer = chat.say("qwzx vlemp krrpt")
    assert "human" in offer[0]["text"].lower()
    assert {"/affirm", "/deny"} <= {b["payload"] for b in offer[0]["buttons"]}
    with store.session() as s:
        assert s.get(Conversation, chat.conversation_id).handoff_status == "none"
    chat.text("yes")
    with store.session() as s:
        assert s.get(Conversation, chat.conversation_id).handoff_status == "requested"


def test_declining_the_offered_human_keeps_the_bot(chat: Chat, store: Database) -> None:
    chat.text("blorf snargle wib")
    chat.text("qwzx vlemp krrpt")
    reply = chat.text("/deny")
    assert "please try rephrasing your question" in reply
    with store.session() as s:
        assert s.get(Conversation, chat.conversation_id).handoff_status == "none"


# ---------------------------------------------------------------------------- bad input


def test_malformed_requests_get_400_and_store_nothing(server: LiveServer, store: Database) -> None:
    url = f"{server.url}/webhooks/rest/webhook"
    assert httpx.post(url, content=b"{not json", timeout=10).status_code == 400
    assert httpx.post(url, json=["a list"], timeout=10).status_code == 400
    assert httpx.post(url, json={"message": "hi"}, timeout=10).status_code == 400
    r = httpx.post(url, json={"sender": "bad-1"}, timeout=10)
    assert r.status_code == 400 and "message" in r.json()["error"]
    assert httpx.post(url, json={"sender": "bad-2", "message": 5}, timeout=10).status_code == 400
    assert httpx.post(f"{server.url}/model/parse", content=b"[", timeout=10).status_code == 400
    assert events(store, "bad-1") == [] and events(store, "bad-2") == []


def test_empty_message_prompts_and_stores_nothing(chat: Chat, store: Database) -> None:
    reply = chat.text("   ")
    assert "your message was empty" in reply
    assert events(store, chat.conversation_id) == []


def test_huge_message_is_refused_and_only_the_refusal_is_stored(
    chat: Chat, store: Database
) -> None:
    reply = chat.text("x" * 4001)
    assert "too long" in reply
    stored = events(store, chat.conversation_id)
    assert not any(e["event"] == "user" for e in stored)
    assert any(e["event"] == "bot" and "too long" in e["text"] for e in stored)
    assert not any("x" * 100 in str(e) for e in stored)


def test_unknown_order_id_gets_a_clear_reply(chat: Chat) -> None:
    chat.text("where is order #W0000000?")
    reply = chat.text("ivan.santos3158@example.com")
    assert "i can't find order #w0000000 on your account" in reply


def test_parse_endpoint_returns_rasa_shape(server: LiveServer) -> None:
    r = httpx.post(f"{server.url}/model/parse", json={"text": "cancel order #W8770097"}, timeout=10)
    data = r.json()
    assert data["intent"]["name"] == "cancel_order"
    assert 0 < data["intent"]["confidence"] <= 1
    assert {"entity": "order_id", "value": "#W8770097"}.items() <= data["entities"][0].items()
    assert data["intent_ranking"][0]["name"] == "cancel_order"
    assert httpx.get(f"{server.url}/health", timeout=10).json()["status"] == "ok"


def test_events_of_a_turn_are_one_consistent_sequence(chat: Chat, store: Database) -> None:
    chat.text("hi")
    chat.text("thanks")
    seqs = [e for e in events(store, chat.conversation_id)]
    kinds = [e["event"] for e in seqs]
    assert kinds.count("user") == 2
    assert kinds[-1] == "action" and seqs[-1]["name"] == "action_listen"
