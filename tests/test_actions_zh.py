"""A Chinese shopper talks to the demo store's actions: verification by email, order ids,
cancel reasons and confirmations, complaints without an order, contacts by mobile number,
returns and order status, all read from Chinese messages.

As in ``tests/test_actions.py`` (whose engine and demo database these tests use),
the dialogue engine, the forms and the actions are real and the NLU's intent is scripted;
unlike there, the entities are not: each message's entities are what Clerk's own extractor
(built from the demo catalog and Chinese synonyms, as training builds it) finds in the
text. Replies are the English demo domain's (the Chinese domain's wording is tested with
that domain); the assertions look at slots and the database.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from bot.nlu.data import parse_nlu_yaml
from bot.nlu.entities import EntityExtractor
from bot.nlu.entity_tables import build_entity_tables, extractor_from_tables
from bot.store.db import Database
from bot.store.models import Ticket, Variant
from tests.test_actions import (
    CATALOG,
    Bot,
    Chat,
    get_order,
    in_process_bot,
    load_demo_subset,
    order_changes,
    package_bot,
)


@pytest.fixture
def store(db: Database) -> Database:
    load_demo_subset(db)
    return db


@pytest.fixture
def bot(store: Database) -> Iterator[Bot]:
    engine = in_process_bot(store)
    yield engine
    engine.close()


@pytest.fixture(params=["build_actions", "register_package"])
def any_bot(
    request: pytest.FixtureRequest,
    store: Database,
    database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> Iterator[Bot]:
    """Both registration paths: Clerk's in-process actions and rasa-sdk's package."""
    if request.param == "build_actions":
        engine = in_process_bot(store)
    else:
        engine = package_bot(store, database_url, monkeypatch, tmp_path)
    yield engine
    engine.close()


ZH_SYNONYMS = """
version: "3.1"
nlu:
- synonym: Laptop
  examples: |
    - 笔记本电脑
- synonym: Hiking Boots
  examples: |
    - 登山靴
- synonym: Water Bottle
  examples: |
    - 水杯
- synonym: black
  examples: |
    - 黑色
- synonym: white
  examples: |
    - 白色
    - 白
"""


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    catalog = list(json.loads((CATALOG / "products.json").read_text()).values())
    return extractor_from_tables(build_entity_tables(parse_nlu_yaml(ZH_SYNONYMS), catalog))


class ZhShopper:
    """One Chinese shopper's conversation: entities by the real extractor."""

    def __init__(self, chat: Chat, extractor: EntityExtractor) -> None:
        self.chat = chat
        self.extractor = extractor

    async def say(self, text: str, intent: str = "inform") -> str:
        entities: list[dict[str, Any]] = [
            {k: e[k] for k in ("entity", "value", "start", "end")}
            for e in self.extractor.extract(text)
        ]
        return await self.chat.say(text, intent=intent, entities=entities)

    @property
    def slots(self) -> dict[str, Any]:
        return self.chat.slots


async def test_cancel_an_order_in_chinese_with_a_reason_and_a_plain_yes(
    any_bot: Bot, store: Database, extractor: EntityExtractor
) -> None:
    shopper = ZhShopper(any_bot.chat("conv-zh-cancel"), extractor)
    await shopper.say("我想取消订单", intent="cancel_order")
    assert shopper.slots["requested_slot"] == "customer_id"

    await shopper.say("我的邮箱是emma.smith3991@example.com谢谢")
    assert shopper.slots["customer_id"] == "emma_smith_8564"

    await shopper.say("订单号是W2417020")
    assert shopper.slots["order_id"] == "#W2417020"
    assert shopper.slots["requested_slot"] == "cancel_reason"

    await shopper.say("不小心下错单了")
    assert shopper.slots["cancel_reason"] == "ordered by mistake"
    assert shopper.slots["requested_slot"] == "confirmed"

    # the classifier did not know "好的" (nlu_fallback): the form reads the yes itself
    reply = await shopper.say("好的", intent="nlu_fallback")
    assert "order #W2417020 is cancelled" in reply
    assert get_order(store, "#W2417020").status == "cancelled"
    [change] = order_changes(store, "#W2417020")
    assert change.data["reason"] == "ordered by mistake"


async def test_a_chinese_no_at_the_confirmation_changes_nothing(
    bot: Bot, store: Database, extractor: EntityExtractor
) -> None:
    shopper = ZhShopper(bot.chat(), extractor)
    await shopper.say("取消订单 #W2417020", intent="cancel_order")
    assert shopper.slots["order_id"] == "#W2417020"
    await shopper.say("邮箱：emma.smith3991@example.com")
    await shopper.say("不需要了")
    assert shopper.slots["cancel_reason"] == "no longer needed"
    reply = await shopper.say("算了，不要了", intent="nlu_fallback")
    assert "nothing changed" in reply
    assert get_order(store, "#W2417020").status == "pending"
    assert order_changes(store, "#W2417020") == []


async def test_an_order_number_given_as_bare_digits_after_an_order_word(
    bot: Bot, extractor: EntityExtractor
) -> None:
    shopper = ZhShopper(bot.chat(), extractor)
    await shopper.say("我的订单到哪了", intent="order_status")
    await shopper.say("我是emma.smith3991@example.com")
    assert shopper.slots["customer_id"] == "emma_smith_8564"
    reply = await shopper.say("单号：2417020")
    assert "#W2417020" in reply and "Laptop" in reply
    assert shopper.slots["order_id"] is None  # the status was told, the form is done


async def test_a_reason_outside_the_policy_is_refused_then_a_chinese_one_taken(
    bot: Bot, extractor: EntityExtractor
) -> None:
    chat = await bot.chat().seed(
        form="cancel_order_form",
        customer_id="emma_smith_8564",
        order_id="#W2417020",
        requested_slot="cancel_reason",
    )
    shopper = ZhShopper(chat, extractor)
    reply = await shopper.say("太贵了")
    assert "either 'no longer needed' or was 'ordered by mistake'" in reply
    assert shopper.slots["cancel_reason"] is None
    await shopper.say("其实是买错了")
    assert shopper.slots["cancel_reason"] == "ordered by mistake"


async def test_a_complaint_without_an_order_and_a_mobile_number_as_contact(
    bot: Bot, store: Database, extractor: EntityExtractor
) -> None:
    shopper = ZhShopper(bot.chat(), extractor)
    await shopper.say("我要投诉", intent="complaint")
    await shopper.say("没有订单号")
    assert shopper.slots["order_id"] == "none"
    await shopper.say("你们的网站一直让我重新登录，太麻烦了")
    await shopper.say("我的手机号是13812345678")
    with store.session() as s:
        ticket = s.scalars(select(Ticket)).one()
    assert ticket.order_id is None and ticket.contact == "13812345678"
    assert "网站" in ticket.text


async def test_a_complaint_about_an_order_named_in_chinese(
    bot: Bot, store: Database, extractor: EntityExtractor
) -> None:
    shopper = ZhShopper(bot.chat(), extractor)
    await shopper.say("我要投诉", intent="complaint")
    await shopper.say("订单号W7678072")
    assert shopper.slots["order_id"] == "#W7678072"
    await shopper.say("水壶收到的时候就坏了，很失望")
    await shopper.say("邮箱noah.brown7922@example.com")
    with store.session() as s:
        ticket = s.scalars(select(Ticket)).one()
    assert ticket.order_id == "#W7678072" and ticket.contact == "noah.brown7922@example.com"


async def test_return_a_named_item_of_a_delivered_order_in_chinese(
    any_bot: Bot, store: Database, extractor: EntityExtractor
) -> None:
    shopper = ZhShopper(any_bot.chat("conv-zh-return"), extractor)
    await shopper.say("我想退货", intent="return_order")
    await shopper.say("james.li4495@example.com是我的邮箱")
    assert shopper.slots["customer_id"] == "james_li_5688"
    await shopper.say("订单#W4435622")
    assert shopper.slots["requested_slot"] == "return_items"
    await shopper.say("只退水杯")  # 水杯: the store's synonym of Water Bottle
    assert shopper.slots["return_items"] == ["6777246137"]
    await shopper.say("确认", intent="nlu_fallback")
    assert get_order(store, "#W4435622").status == "return requested"
    [change] = order_changes(store, "#W4435622")
    assert change.data["item_ids"] == ["6777246137"]


async def test_return_everything_said_in_chinese(bot: Bot, extractor: EntityExtractor) -> None:
    chat = await bot.chat().seed(
        form="return_order_form",
        customer_id="james_li_5688",
        order_id="#W4435622",
        requested_slot="return_items",
    )
    shopper = ZhShopper(chat, extractor)
    await shopper.say("全部退掉")
    assert sorted(shopper.slots["return_items"]) == ["4694984344", "6777246137"]


async def test_exchange_for_a_colour_named_in_chinese(
    bot: Bot, store: Database, extractor: EntityExtractor
) -> None:
    shopper = ZhShopper(bot.chat(), extractor)
    await shopper.say("我想换货", intent="exchange_order")
    await shopper.say("olivia.smith9157@example.com")
    await shopper.say("订单号W3794101")
    assert shopper.slots["exchange_item"] == "3339188619"  # the order's only item
    await shopper.say("换成白色的")
    assert shopper.slots["exchange_variant"] == "8591113813"
    await shopper.say("好的", intent="nlu_fallback")
    assert get_order(store, "#W3794101").status == "exchange requested"


@pytest.mark.parametrize("text", ["我叫Noah Brown，邮编80279", "姓名：Brown Noah，邮编：80279"])
async def test_a_shopper_is_verified_by_name_and_zip_in_chinese(
    bot: Bot, extractor: EntityExtractor, text: str
) -> None:
    shopper = ZhShopper(bot.chat(), extractor)
    await shopper.say(f"{text}，我的订单到哪了", intent="order_status")
    assert shopper.slots["customer_id"] == "noah_brown_6181"


async def test_recommendations_for_a_colour_and_a_budget_said_in_chinese(
    bot: Bot, store: Database, extractor: EntityExtractor
) -> None:
    shopper = ZhShopper(bot.chat(), extractor)
    await shopper.say("你好", intent="greet")
    await shopper.say("推荐点黑色的东西，一百块以内", intent="recommend_products")
    [custom] = [r["custom"] for r in shopper.chat.responses if r.get("custom")]
    cards = custom["products"]
    assert cards
    with store.session() as s:
        for c in cards:
            v = s.get(Variant, c["item_id"])
            assert v is not None and v.price <= 100
            assert "black" in {str(value).lower() for value in v.options.values()}
