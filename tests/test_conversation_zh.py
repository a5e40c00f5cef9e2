"""A Chinese-speaking store end to end: ``clerk init --template demo-store-zh`` scaffolds the
project, which is trained (multilingual-e5-small + TF-IDF on its Chinese ``nlu.yml``),
indexed (its Chinese FAQ and policy, the catalog in CNY) and served as ``clerk serve`` does.
Shoppers write Chinese through the REST channel of a real server on 127.0.0.1 (SQLite and
PostgreSQL) and through the chat widget in a real Chromium: an order status after email
verification, a cancellation that waits for an explicit yes, a product's price and a policy
question. Replies are checked for the facts (ids, statuses, prices in ¥, days) and for
being Chinese; the database is checked afterwards."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import yaml
from starlette.applications import Starlette
from starlette.responses import HTMLResponse
from starlette.routing import Route

from bot.config import Settings
from bot.store.db import Database
from tests.conftest import on_loaded_database
from tests.live import Chat, LiveServer
from tests.test_conversations import changes, order

pytestmark = pytest.mark.slow

IVAN = "ivan.santos3158@example.com"
DELIVERED = "#W6893533"  # Ivan's, delivered: Garden Hose, Wireless Earbuds
HAN = re.compile(r"[\u4e00-\u9fff]")
ENGLISH_WORDING = {"the", "your", "you", "is", "are", "please", "sorry", "we", "our", "of", "to"}
PRICE = re.compile(r"¥\s?([\d,]+\.\d{2})")


@pytest.fixture(scope="module")
def zh_store(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, Any]:
    """The scaffolded Chinese demo store, trained and indexed once for the module."""
    from bot.app import make_encoder, prepare
    from bot.scaffold import scaffold

    root = tmp_path_factory.mktemp("zh-store")
    project = root / "store"
    scaffold("demo-store-zh", project)
    settings = Settings.load({"CLERK_HOME": str(root / "home"), "CLERK_PROJECT": str(project)})
    assert settings.language == "zh" and settings.currency == "CNY"
    encoder = make_encoder(settings)
    prepare(settings, encoder=encoder)
    return settings, encoder


@pytest.fixture(scope="module")
def server(zh_store: tuple[Settings, Any], module_database_url: str) -> Iterator[LiveServer]:
    from bot.app import build, create_app

    settings, encoder = zh_store
    parts = build(on_loaded_database(settings, module_database_url), encoder=encoder)
    with LiveServer(create_app(parts)) as live:
        yield live
    parts.manager.close()
    parts.db.dispose()


@pytest.fixture(scope="module")
def store(server: LiveServer, module_database_url: str) -> Iterator[Database]:
    db = Database(module_database_url)
    yield db
    db.dispose()


@pytest.fixture
def chat(server: LiveServer) -> Chat:
    return Chat(server.url)


def chinese(reply: str) -> bool:
    """The reply is worded in Chinese: Han characters and none of the English wording's
    words (product names, option values, statuses and ids stay as the catalog writes them,
    so the share of Latin words alone cannot tell)."""
    words = set(re.findall(r"[a-z]+", reply.lower()))
    return len(HAN.findall(reply)) >= 4 and not words & ENGLISH_WORDING


# ------------------------------------------------------------------------ REST channel


def test_order_status_after_email_verification(
    chat: Chat, store: Database, zh_store: tuple[Settings, Any]
) -> None:
    ask = chat.text(f"我的订单{DELIVERED}到哪了？")
    assert chinese(ask) and "邮箱" in ask  # verification comes first
    assert "garden hose" not in ask
    answer = chat.text(IVAN)
    assert chinese(answer) and DELIVERED.lower() in answer
    # the status by the store's display name; the database keeps "delivered"
    assert zh_words(zh_store[0], "utter_value_order_status_delivered") in answer
    assert "garden hose" in answer and "wireless earbuds" in answer
    assert order(store, DELIVERED).status == "delivered"  # looking changes nothing


def test_cancel_waits_for_an_explicit_yes(
    chat: Chat, store: Database, zh_store: tuple[Settings, Any]
) -> None:
    chat.text("我想取消订单#W8770097")
    chat.text(IVAN)
    summary = chat.text("不小心下错单了")
    assert chinese(summary) and "#w8770097" in summary and "office chair" in summary
    assert order(store, "#W8770097").status == "pending"  # nothing before the yes
    done = chat.text("是的")
    assert chinese(done)
    assert zh_words(zh_store[0], "utter_value_order_status_cancelled") in done
    o = order(store, "#W8770097")
    assert o.status == "cancelled"
    assert any(p.get("transaction_type") == "refund" for p in o.payment_history)
    [change] = changes(store, "#W8770097")
    assert change.kind == "cancel" and change.conversation_id == chat.conversation_id
    assert change.data.get("reason") == "ordered by mistake"


def test_no_at_the_confirmation_changes_nothing(chat: Chat, store: Database) -> None:
    chat.text("帮我取消一下订单 W3168895")
    chat.text("olivia.jackson2465@example.com")
    chat.text("不需要了")
    reply = chat.text("不用了，先不取消")
    assert chinese(reply)
    assert order(store, "#W3168895").status == "pending"
    assert changes(store, "#W3168895") == []


def test_a_products_price_is_the_catalogs_in_yuan(
    chat: Chat, zh_store: tuple[Settings, Any]
) -> None:
    reply = chat.text("T恤多少钱？")
    assert chinese(reply) and "t-shirt" in reply
    quoted = {float(p.replace(",", "")) for p in PRICE.findall(reply)}
    assert quoted, reply
    assert quoted <= catalog_prices(zh_store[0], "T-Shirt")  # never an invented price
    assert "$" not in reply


def test_a_policy_question_is_answered_from_the_policy(chat: Chat) -> None:
    reply = chat.text("订单取消以后，退款几天能到账？")
    assert chinese(reply)
    assert re.search(r"5\s*(到|至|-|~)\s*7\s*个?工作日", reply), reply


async def test_shoppers_writing_at_once_each_see_only_their_own_order(
    server: LiveServer, zh_store: tuple[Settings, Any]
) -> None:
    """Six shoppers ask about their orders at the same moment, each verified by email: each
    is told about their own order and nobody else's."""
    people = shoppers(zh_store[0], 6)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def ask(email: str, order_id: str) -> str:
            sender = f"zh-{uuid.uuid4().hex[:8]}"
            await say(client, sender, f"帮我查一下订单{order_id}的状态")
            return await say(client, sender, email)

        answers = await asyncio.gather(*(ask(email, oid) for email, oid in people))
    for (_, mine), answer in zip(people, answers, strict=True):
        assert mine in answer and chinese(answer)
        others = {oid for _, oid in people} - {mine}
        assert not any(o in answer for o in others)


async def test_shoppers_cancelling_and_asking_prices_at_once(
    server: LiveServer, zh_store: tuple[Settings, Any], store: Database
) -> None:
    """Six shoppers at the same moment: three cancel a pending order of their own (each
    verified, each cancellation waiting for its 是的), three ask a price. Each order is
    cancelled once, by its own conversation, with the reason its shopper gave; each price
    answer holds only the catalog's prices."""
    settings = zh_store[0]
    cancelling = pending_orders(settings, 3, skip=TAKEN)
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def cancel(email: str, order_id: str) -> tuple[str, str]:
            sender = f"zh-{uuid.uuid4().hex[:8]}"
            for text in (f"我要取消订单{order_id}", email, "不需要了"):
                await say(client, sender, text)
            return f"rest:{sender}", await say(client, sender, "是的")

        async def ask_price() -> str:
            return await say(client, f"zh-{uuid.uuid4().hex[:8]}", "T恤多少钱？")

        done, prices = await asyncio.gather(
            asyncio.gather(*(cancel(email, oid) for email, oid in cancelling)),
            asyncio.gather(*(ask_price() for _ in range(3))),
        )
    for (_, order_id), (conversation, reply) in zip(cancelling, done, strict=True):
        assert order_id in reply and chinese(reply)
        assert order(store, order_id).status == "cancelled"
        [change] = changes(store, order_id)
        assert change.conversation_id == conversation
        assert change.data.get("reason") == "no longer needed"
    for reply in prices:
        quoted = {float(p.replace(",", "")) for p in PRICE.findall(reply)}
        assert quoted and quoted <= catalog_prices(settings, "T-Shirt")


async def say(client: httpx.AsyncClient, sender: str, text: str) -> str:
    """One REST turn of ``sender``; the bot's replies joined."""
    resp = await client.post("/webhooks/rest/webhook", json={"sender": sender, "message": text})
    assert resp.status_code == 200, resp.text
    return "\n".join(r.get("text") or "" for r in resp.json())


def catalog(settings: Settings) -> dict[str, Any]:
    return json.loads((settings.knowledge_dir / "catalog" / "products.json").read_text())


def catalog_prices(settings: Settings, name: str) -> set[float]:
    [product] = [p for p in catalog(settings).values() if p["name"] == name]
    return {float(v["price"]) for v in product["variants"].values()}


def shoppers(settings: Settings, n: int) -> list[tuple[str, str]]:
    """``n`` customers of the demo database, each with one order: (email, order id)."""
    folder = settings.knowledge_dir / "catalog"
    users = json.loads((folder / "users.json").read_text())
    orders = json.loads((folder / "orders.json").read_text())
    found = []
    for user in users.values():
        mine = [o for o in user["orders"] if o in orders]
        if mine:
            found.append((user["email"], mine[0]))
    return found[:n]


#: Orders other tests of this module change.
TAKEN = frozenset({"#W8770097", "#W3168895", "#W5183325"})


def pending_orders(settings: Settings, n: int, skip: frozenset[str]) -> list[tuple[str, str]]:
    """``n`` pending orders of different customers, none in ``skip``: (email, order id)."""
    folder = settings.knowledge_dir / "catalog"
    users = json.loads((folder / "users.json").read_text())
    orders = json.loads((folder / "orders.json").read_text())
    found = []
    for user in users.values():
        mine = [
            o
            for o in user["orders"]
            if o not in skip and orders.get(o, {}).get("status") == "pending"
        ]
        if mine:
            found.append((user["email"], mine[0]))
    return found[:n]


# ------------------------------------------------------------------ the widget, in Chromium


def zh_words(settings: Settings, response: str, **values: str) -> str:
    """The store's own wording of ``response`` (its first variant), ``{holes}`` filled."""
    domain = yaml.safe_load(settings.project.domain.read_text(encoding="utf-8"))
    text = str(domain["responses"][response][0]["text"])
    return re.sub(r"\{(\w+)\}", lambda m: values.get(m.group(1), m.group(0)), text)


class ChineseStorePage:
    """The store's own site (another origin, in Chinese), with the widget's one script tag
    pointing at Clerk."""

    def __init__(self) -> None:
        self.clerk_url = ""
        self.server = LiveServer(Starlette(routes=[Route("/", self.page)]))
        self.url = self.server.url

    async def page(self, request: Any) -> HTMLResponse:
        return HTMLResponse(
            "<!doctype html><html lang=zh-CN><head><meta charset=utf-8><title>好物小店</title>"
            "</head><body><h1>好物小店</h1><p>有问题？点右下角问问我们的客服。</p>"
            f'<script src="{self.clerk_url}/widget/clerk.js"></script></body></html>'
        )


@pytest.fixture(scope="module")
def store_site(
    zh_store: tuple[Settings, Any], module_database_url: str
) -> Iterator[ChineseStorePage]:
    """The store's page, and Clerk serving its widget to that page's origin."""
    from bot.app import build, create_app

    site = ChineseStorePage()
    settings, encoder = zh_store
    with site.server:
        loaded = on_loaded_database(settings, module_database_url, widget_origins=(site.url,))
        parts = build(loaded, encoder=encoder)
        with LiveServer(create_app(parts)) as clerk:
            site.clerk_url = clerk.url
            yield site
        parts.manager.close()
        parts.db.dispose()


def test_a_shopper_talks_chinese_in_the_widget(
    store_site: ChineseStorePage, zh_store: tuple[Settings, Any], store: Database
) -> None:
    """On the store's own Chinese page, the widget speaks the store's language (its labels,
    read by screen readers, are the domain's Chinese ones) and carries a whole
    conversation: order status after verification, a cancellation confirmed with 是的, a
    price and a policy answer."""
    from tests.test_widget_browser import TIMEOUT_MS, chromium, playwright_api, screenshot

    settings = zh_store[0]
    expect = playwright_api.expect
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1280, "height": 800}, locale="zh-CN")
        page = context.new_page()
        page.set_default_timeout(TIMEOUT_MS)
        errors: list[str] = []
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        page.goto(store_site.url + "/")
        opener = zh_words(settings, "utter_widget_open_chat", title="Clerk")
        page.get_by_role("button", name=opener).click()
        expect(page.get_by_role("dialog", name="Clerk")).to_be_visible()
        log = zh_words(settings, "utter_widget_conversation", title="Clerk")
        expect(page.get_by_role("log", name=log)).to_be_visible()
        online = zh_words(settings, "utter_widget_online")
        expect(page.get_by_role("status").filter(has_text=online)).to_be_visible()
        box = page.get_by_role("textbox", name=zh_words(settings, "utter_widget_message"))

        def say(text: str) -> str:
            """Type ``text``; the bot's answer once it is on screen."""
            before = page.locator(".msg.bot").count()
            box.fill(text)
            box.press("Enter")
            expect(page.locator(".msg.user").last).to_have_text(text)
            page.locator(".msg.bot").nth(before).wait_for()
            page.wait_for_timeout(300)  # a turn's later messages follow the first at once
            return "\n".join(page.locator(".msg.bot").all_inner_texts()[before:])

        ask = say("我的订单W6893533现在到哪了")
        assert chinese(ask) and "邮箱" in ask
        status = say(IVAN)
        assert chinese(status) and DELIVERED in status and "Garden Hose" in status

        say("我要取消订单#W5183325")
        say(IVAN)
        summary = say("买错了")
        assert "#W5183325" in summary and chinese(summary)
        assert order(store, "#W5183325").status == "pending"
        done = say("是的")
        assert chinese(done)
        assert order(store, "#W5183325").status == "cancelled"

        price = say("T恤多少钱")
        quoted = {float(p.replace(",", "")) for p in PRICE.findall(price)}
        assert quoted and quoted <= catalog_prices(settings, "T-Shirt")
        policy = say("买了东西多久之内能退？")
        assert chinese(policy) and re.search(r"30\s*天", policy), policy
        screenshot(page, "widget-zh-conversation.png")
        context.close()
        assert errors == []  # no JavaScript error on the way
