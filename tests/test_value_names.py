"""Display names of stored values: an order's status, a ticket's status and priority, a
cancel reason are stored in English and shown by the domain's ``utter_value_<kind>_<key>``
response (the Chinese demo store says 已送达), or as stored where the domain names none
(the English demo says "delivered", as before)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from bot.actions import InProcessActionRunner, RemoteActionRunner
from bot.dialogue.domain import Domain
from bot.dialogue.manager import DialogueManager
from bot.dialogue.responses import Filler, display_response, is_data_value
from bot.scaffold import PROJECTS
from bot.store.db import Database
from bot.store.models import Ticket
from bot.store_actions import build_actions
from bot.store_actions.replies import button, data_value
from bot.types import MAX_BUTTON_TITLE
from tests.test_actions import (
    ENGINE_DOMAIN,
    FLOWS,
    HANDOFF_POLICY,
    Bot,
    email,
    get_order,
    load_demo_subset,
    order_changes,
    order_entity,
    rasa_sdk_server,
)

ZH_DOMAIN = Domain.load(PROJECTS / "demo-store-zh" / "domain.yml")
ZH = {"language": "zh"}
ZH_CONDITION = {"type": "slot", "name": "language", "value": "zh"}


@dataclass
class ChineseBot(Bot):
    """The demo store's engine worded by the Chinese demo store's domain."""

    def __post_init__(self) -> None:
        self.manager = DialogueManager(
            domain=ZH_DOMAIN,
            policy=FLOWS,
            nlu=self.parser,
            actions=self.actions,
            db=self.db,
            handoff_policy=HANDOFF_POLICY,
        )


@pytest.fixture
def store(db: Database) -> Database:
    load_demo_subset(db)
    return db


@pytest.fixture
def zh_bot(store: Database) -> Iterator[ChineseBot]:
    engine = ChineseBot(store, InProcessActionRunner(build_actions(store), db=store))
    yield engine
    engine.close()


# ------------------------------------------------------------------------- the rule


def test_a_values_response_is_named_after_its_kind_and_its_key() -> None:
    assert display_response("order_status", "delivered") == "utter_value_order_status_delivered"
    assert (
        display_response("order_status", "return requested")
        == "utter_value_order_status_return_requested"
    )
    assert (
        display_response("order_status", "pending (items modified)")
        == "utter_value_order_status_pending_items_modified"
    )
    assert (
        display_response("cancel_reason", " Ordered by mistake ")
        == "utter_value_cancel_reason_ordered_by_mistake"
    )


def test_a_data_value_is_a_kind_and_a_stored_value_only() -> None:
    assert is_data_value(data_value("ticket_priority", "high"))
    assert not is_data_value({"value_kind": "ticket_priority", "value": "high", "x": 1})
    assert not is_data_value({"value": "high"})
    assert not is_data_value("high")


def test_per_language_display_names_and_the_stored_value_as_fallback() -> None:
    responses = {
        "utter_value_order_status_delivered": [
            {"text": "已送达", "condition": [ZH_CONDITION]},
            {"text": "delivered to you"},
        ],
        "utter_value_order_status_processed": [
            {"text": "已发货（{value}）", "condition": [ZH_CONDITION]},
        ],
    }
    delivered = data_value("order_status", "delivered")
    processed = data_value("order_status", "processed")
    chinese, english = Filler(responses, ZH), Filler(responses, {"language": "en"})
    assert chinese.shown(delivered) == "已送达"
    assert english.shown(delivered) == "delivered to you"
    assert chinese.shown(processed) == "已发货（processed）"  # the stored value as {value}
    assert english.shown(processed) == "processed"  # no variant fits: as stored
    assert chinese.shown(data_value("order_status", "on hold")) == "on hold"  # none named
    assert chinese.shown(data_value("order_status", None)) == ""


def test_the_english_demo_shows_stored_values_byte_for_byte() -> None:
    values = {"order_id": "#W4435622", "items": "• Boots", "address": "Springfield"}
    raw = ENGINE_DOMAIN.text("utter_order_status", {}, {**values, "status": "delivered"})
    typed = ENGINE_DOMAIN.text(
        "utter_order_status", {}, {**values, "status": data_value("order_status", "delivered")}
    )
    assert typed == raw and typed.startswith("Order #W4435622 is delivered.")
    done = ENGINE_DOMAIN.text(
        "utter_cancel_done",
        {},
        {"order_id": "#W1", "reason": data_value("cancel_reason", "no longer needed")},
    )
    assert "(reason: no longer needed)" in done


def test_the_chinese_demo_names_every_value_the_store_writes() -> None:
    order_statuses = (
        "pending",
        "pending (items modified)",
        "processed",
        "delivered",
        "cancelled",
        "return requested",
        "exchange requested",
    )
    kinds = {
        "order_status": order_statuses,
        "ticket_status": ("open", "pending", "solved"),
        "ticket_priority": ("low", "normal", "high"),
        "cancel_reason": ("no longer needed", "ordered by mistake"),
    }
    filler = Filler(ZH_DOMAIN.responses, {})
    for kind, values in kinds.items():
        for value in values:
            shown = filler.shown(data_value(kind, value))  # type: ignore[arg-type]
            assert shown != value and not any(c.isascii() and c.isalpha() for c in shown), (
                kind,
                value,
                shown,
            )
    assert filler.shown(data_value("order_status", "on hold")) == "on hold"


# --------------------------------------------------------------- through the engine


async def test_a_chinese_store_says_delivered_in_chinese_and_keeps_it_stored(
    zh_bot: ChineseBot, store: Database
) -> None:
    chat = zh_bot.chat()
    await chat.say("我的订单到哪了", intent="order_status")
    await chat.say("james.li4495@example.com", entities=email("james.li4495@example.com"))
    reply = await chat.say("W4435622")
    assert "订单 #W4435622 的状态：已送达。" in reply
    assert "delivered" not in reply
    assert get_order(store, "#W4435622").status == "delivered"


async def test_a_chinese_list_of_orders_and_its_buttons_name_the_status(
    zh_bot: ChineseBot,
) -> None:
    chat = zh_bot.chat()
    await chat.say("取消订单", intent="cancel_order")
    reply = await chat.say(
        "emma.smith3991@example.com", entities=email("emma.smith3991@example.com")
    )
    assert "• #W2417020（待发货）：Laptop" in reply
    assert {
        "title": "#W2417020（待发货）：Laptop",
        "payload": '/inform{"order_id": "#W2417020"}',
    } in chat.buttons
    assert "pending" not in reply and not any("pending" in b["title"] for b in chat.buttons)


def test_a_worded_button_title_is_cut_as_a_written_one() -> None:
    items = ", ".join(["Water Bottle"] * 10)
    summary = {
        "response": "utter_order_summary",
        "order_id": "#W1",
        "status": data_value("order_status", "pending"),
        "items": items,
    }
    written = button(f"#W1 (pending): {items}", "/x")
    message = {"text": "pick one", "buttons": [button(summary, "/x")]}
    [reply] = ENGINE_DOMAIN.render_message(message, {})
    assert reply.buttons[0].to_dict() == written
    assert len(written["title"]) == MAX_BUTTON_TITLE


async def test_a_chinese_refusal_names_the_status(zh_bot: ChineseBot, store: Database) -> None:
    chat = zh_bot.chat()
    await chat.say("取消订单", intent="cancel_order")
    await chat.say("noah.brown7922@example.com", entities=email("noah.brown7922@example.com"))
    reply = await chat.say("#W7678072", entities=order_entity("#W7678072"))
    assert "订单 #W7678072 的状态是已送达，只有待发货的订单才能取消。" in reply
    assert get_order(store, "#W7678072").status == "delivered"


async def test_a_chinese_cancellation_words_the_reason_and_stores_it_in_english(
    zh_bot: ChineseBot, store: Database
) -> None:
    chat = await zh_bot.chat("conv-zh-cancel").seed(
        form="cancel_order_form",
        customer_id="emma_smith_8564",
        order_id="#W2417020",
        requested_slot="cancel_reason",
    )
    reply = await chat.say("I ordered it by mistake")
    assert "• 原因：下错单了" in reply
    reply = await chat.say("是", intent="affirm")
    assert "订单 #W2417020 已取消（原因：下错单了）" in reply
    assert get_order(store, "#W2417020").status == "cancelled"
    [change] = order_changes(store, "#W2417020")
    assert change.data["reason"] == "ordered by mistake"


async def test_a_chinese_ticket_status_and_priority(zh_bot: ChineseBot, store: Database) -> None:
    with store.session() as s:
        s.add(
            Ticket(
                id="T-123456",
                status="pending",
                priority="low",
                text="The kettle leaks",
                created_at=dt.datetime(2026, 3, 5, tzinfo=dt.UTC),
            )
        )
    chat = zh_bot.chat()
    reply = await chat.say(
        "T-123456 怎么样了",
        intent="ticket_status",
        entities=[{"entity": "ticket_id", "value": "T-123456"}],
    )
    assert "工单 T-123456 的状态：等待您的回复（优先级：低）" in reply


async def test_display_names_on_a_real_rasa_sdk_action_server(tmp_path: Path) -> None:
    """The action server sends the stored value with its kind; Clerk's engine, which holds
    the domain, words it."""
    url = f"sqlite:///{tmp_path / 'server.db'}"
    db = Database(url)
    db.create_all()
    load_demo_subset(db)
    try:
        with rasa_sdk_server(url, tmp_path) as base:
            async with httpx.AsyncClient(timeout=30) as client:
                remote = ChineseBot(db, RemoteActionRunner(f"{base}/webhook", client))
                try:
                    chat = await remote.chat("conv-zh-remote").seed(
                        form="cancel_order_form",
                        customer_id="emma_smith_8564",
                        order_id="#W2417020",
                        cancel_reason="no longer needed",
                        requested_slot="confirmed",
                    )
                    reply = await chat.say("是", intent="affirm")
                finally:
                    remote.close()
        assert "订单 #W2417020 已取消（原因：不再需要）" in reply
        assert get_order(db, "#W2417020").status == "cancelled"
        [change] = order_changes(db, "#W2417020")
        assert change.data["reason"] == "no longer needed"
    finally:
        db.dispose()
