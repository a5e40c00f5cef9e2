"""The recommendation engine (``bot.recommend``) on a small hand-made store whose right
answers are known, on SQLite and PostgreSQL, with the real encoder; ``clerk recommend``;
and many shoppers asking at once through a real server.

The store: hikers buy Hiking Boots with Trail Socks (three orders) and once with a Rain
Jacket; a Steel Water Flask nobody buys with anything is the content neighbour of the
Water Bottle; the Sold Out Lamp is the most ordered product and has no variant in stock;
two kettles make a kind of product to ask about.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest

from bot.lang.price_range import PriceRange
from bot.recommend.engine import Query, Reason, Recommender
from bot.recommend.scoring import Weights
from bot.store.db import Database
from bot.store.models import Customer, Order, OrderItem, Product, Variant

# product id -> name, [(item id, options, price, available)]
CATALOG: dict[str, tuple[str, list[tuple[str, dict[str, str], str, bool]]]] = {
    "boots": (
        "Hiking Boots",
        [
            ("boots-9", {"size": "9", "color": "brown"}, "120.00", True),
            ("boots-10", {"size": "10", "color": "black"}, "130.00", True),
        ],
    ),
    "socks": (
        "Trail Socks",
        [
            ("socks-m", {"size": "M", "color": "black"}, "15.00", True),
            ("socks-l", {"size": "L", "color": "grey"}, "14.00", True),
        ],
    ),
    "jacket": (
        "Rain Jacket",
        [
            ("jacket-black", {"color": "black", "size": "M"}, "90.00", True),
            ("jacket-red", {"color": "red", "size": "M"}, "95.00", False),
        ],
    ),
    "bottle": (
        "Water Bottle",
        [
            ("bottle-black", {"color": "black", "capacity": "750ml"}, "25.00", True),
            ("bottle-blue", {"color": "blue", "capacity": "500ml"}, "20.00", True),
        ],
    ),
    "flask": (
        "Steel Water Flask",
        [("flask-silver", {"color": "silver", "capacity": "1000ml"}, "35.00", True)],
    ),
    "lamp": ("Sold Out Lamp", [("lamp-1", {"color": "white"}, "40.00", False)]),
    "ekettle": (
        "Electric Kettle",
        [("ekettle-1", {"color": "white", "capacity": "1.5L"}, "60.00", True)],
    ),
    "tkettle": (
        "Tea Kettle",
        [("tkettle-1", {"color": "red", "material": "enamel"}, "45.00", True)],
    ),
    "puzzle": (
        "Jigsaw Puzzle",
        [("puzzle-1", {"pieces": "1000", "difficulty": "beginner"}, "19.00", True)],
    ),
    "daypack": (
        "Daypack",
        [("daypack-1", {"color": "green", "compartment": "bottle"}, "70.00", True)],
    ),
    "phones": ("Headphones", [("phones-1", {"color": "white"}, "80.00", True)]),
}

# order id -> (customer, status, [item ids])
ORDERS: dict[str, tuple[str, str, list[str]]] = {
    "#W0000001": ("alice", "delivered", ["boots-9"]),
    "#W0000002": ("bob", "delivered", ["bottle-black"]),
    "#W0000003": ("hiker1", "delivered", ["boots-10", "socks-m"]),
    "#W0000004": ("hiker2", "delivered", ["boots-9", "socks-l"]),
    "#W0000005": ("hiker3", "pending", ["boots-10", "socks-m", "jacket-black"]),
    "#W0000006": ("other1", "delivered", ["lamp-1", "puzzle-1"]),
    "#W0000007": ("other2", "delivered", ["lamp-1", "ekettle-1"]),
    "#W0000008": ("other3", "delivered", ["lamp-1", "tkettle-1"]),
    "#W0000009": ("other4", "delivered", ["lamp-1", "tkettle-1"]),
    "#W0000010": ("other5", "delivered", ["lamp-1", "puzzle-1"]),
    "#W0000011": ("carol", "cancelled", ["jacket-black"]),
}
CUSTOMERS = sorted({c for c, _, _ in ORDERS.values()} | {"dave"})


def load_store(db: Database) -> None:
    variants = {}
    with db.session() as s:
        for pid, (name, vs) in CATALOG.items():
            s.add(Product(product_id=pid, name=name))
            for item_id, options, price, available in vs:
                variants[item_id] = (pid, name, options, price)
                s.add(
                    Variant(
                        item_id=item_id,
                        product_id=pid,
                        options=options,
                        price=Decimal(price),
                        available=available,
                    )
                )
        for user in CUSTOMERS:
            s.add(
                Customer(
                    user_id=user,
                    first_name=user,
                    last_name="Test",
                    email=f"{user}@example.com",
                    zip="10001",
                    address={},
                    payment_methods={},
                )
            )
        s.flush()
        for order_id, (user, status, items) in ORDERS.items():
            order = Order(order_id=order_id, user_id=user, status=status, address={})
            order.items = [
                OrderItem(
                    item_id=i,
                    product_id=variants[i][0],
                    name=variants[i][1],
                    price=Decimal(variants[i][3]),
                    options=variants[i][2],
                )
                for i in items
            ]
            s.add(order)


@pytest.fixture
def store(db: Database) -> Database:
    load_store(db)
    return db


@pytest.fixture
def engine(store: Database, shared_encoder: Any) -> Recommender:
    return Recommender(store, shared_encoder.encode)


def names(recs: Any) -> list[str]:
    return [s.name for s in recs.suggestions]


def reason_of(recs: Any, name: str) -> Reason:
    [reason] = {s.reason for s in recs.suggestions if s.name == name}
    return reason


# ------------------------------------------------------------------------ the signals


def test_a_shopper_gets_what_is_bought_with_their_product(engine: Recommender) -> None:
    recs = engine.recommend(Query(customer_id="alice"))
    assert recs.situation == "personal" and not recs.degraded
    assert names(recs)[0] == "Trail Socks"
    assert reason_of(recs, "Trail Socks") == Reason("bought_with_yours", "Hiking Boots")


def test_a_product_named_in_the_conversation_anchors_the_suggestions(
    engine: Recommender,
) -> None:
    recs = engine.recommend(Query(texts=("what goes well with the hiking boots?",)))
    assert recs.situation == "asked_product" and recs.subject == "Hiking Boots"
    assert names(recs)[:3] == ["Hiking Boots", "Hiking Boots", "Trail Socks"]
    assert reason_of(recs, "Trail Socks") == Reason("bought_with", "Hiking Boots")
    assert recs.related


def test_bought_with_names_an_anchor_bought_with_it_in_enough_orders(
    engine: Recommender,
) -> None:
    """Hiker1 has the boots and the socks; the Rain Jacket was bought once with each
    (one order): twice over the anchors, but with neither of them "often"."""
    recs = engine.recommend(Query(customer_id="hiker1", k=10))
    assert reason_of(recs, "Rain Jacket").kind not in ("bought_with", "bought_with_yours")


def test_bought_with_rests_on_more_than_one_customer(engine: Recommender) -> None:
    """Dave bought the Water Bottle with the Steel Water Flask twice: one person's habit."""
    with engine.db.session() as s:
        for order_id in ("#W0000098", "#W0000099"):
            order = Order(order_id=order_id, user_id="dave", status="delivered", address={})
            order.items = [
                OrderItem(item_id=i, product_id=p, name=n, price=Decimal(1), options={})
                for i, p, n in (
                    ("bottle-blue", "bottle", "Water Bottle"),
                    ("flask-silver", "flask", "Steel Water Flask"),
                )
            ]
            s.add(order)
    recs = engine.recommend(Query(texts=("what goes with the water bottle?",), k=10))
    assert reason_of(recs, "Steel Water Flask").kind != "bought_with"


def test_cancelled_orders_count_for_no_purchase(store: Database) -> None:
    """Carol's only order, the Rain Jacket's, was cancelled: hiker3's order is its one."""
    from bot.recommend.store import read_purchases, variant_orders

    with store.session() as s:
        purchases = read_purchases(s, ["jacket"])
        ordered = variant_orders(s)
    assert purchases.popularity["jacket"] == 1
    assert ordered["jacket-black"] == 1


def test_a_shoppers_latest_order_comes_first_whatever_its_id(store: Database) -> None:
    """Order ids are random: Dave's second order has the smaller id."""
    from bot.recommend.store import read_history

    for order_id, item, pid, name in (
        ("#W9000000", "bottle-blue", "bottle", "Water Bottle"),
        ("#W1000000", "ekettle-1", "ekettle", "Electric Kettle"),
    ):
        with store.session() as s:
            order = Order(order_id=order_id, user_id="dave", status="delivered", address={})
            order.items = [
                OrderItem(item_id=item, product_id=pid, name=name, price=Decimal(1), options={})
            ]
            s.add(order)
    with store.session() as s:
        assert read_history(s, "dave").products == ("ekettle", "bottle")


def test_a_product_nobody_ordered_is_never_called_popular(engine: Recommender) -> None:
    recs = engine.recommend(Query(texts=("what would you recommend?",), k=20))
    assert reason_of(recs, "Daypack") == Reason("in_stock")
    assert reason_of(recs, "Hiking Boots") == Reason("popular")


def test_an_empty_catalog_gets_no_suggestions_and_no_encoder_failure(
    db: Database, shared_encoder: Any, caplog: pytest.LogCaptureFixture
) -> None:
    engine = Recommender(db, shared_encoder.encode)
    recs = engine.recommend(Query(texts=("something to listen to music",)))
    assert recs.suggestions == () and engine.content_failures == 0
    assert "without" not in caplog.text


def test_content_similarity_finds_what_nobody_bought_together(
    store: Database, shared_encoder: Any
) -> None:
    """Bob's Water Bottle was never bought with the Steel Water Flask; only its content
    says they are alike."""
    recs = Recommender(store, shared_encoder.encode).recommend(Query(customer_id="bob", k=10))
    assert reason_of(recs, "Steel Water Flask") == Reason("similar_to_yours", "Water Bottle")
    content_only = Recommender(store, shared_encoder.encode, weights=Weights(0.0, 1.0, 0.0))
    assert names(content_only.recommend(Query(customer_id="bob")))[0] == "Steel Water Flask"


def test_the_similar_to_cut_off_is_the_encoders(store: Database, shared_encoder: Any) -> None:
    """e5's cosines are all high: its cut-off sits where its unlike pairs stop
    (``benchmarks/recommend_cutoffs.py``); MiniLM keeps 0.5. A cut-off above the flask's
    cosine leaves it no "similar to" reason."""
    from bot.nlu.e5 import E5Encoder
    from bot.nlu.encoder import Encoder
    from bot.recommend.scoring import MIN_SIMILAR

    assert Encoder.min_similar == MIN_SIMILAR == 0.5
    assert E5Encoder.min_similar > 0.8
    strict = Recommender(store, shared_encoder.encode, min_similar=0.999)
    reason = reason_of(strict.recommend(Query(customer_id="bob", k=10)), "Steel Water Flask")
    assert reason.kind != "similar_to_yours"


def test_vectors_are_computed_once_per_catalog_content(
    store: Database, shared_encoder: Any
) -> None:
    calls: list[int] = []

    def embed(texts: list[str]) -> Any:
        calls.append(len(texts))
        return shared_encoder.encode(texts)

    engine = Recommender(store, embed)
    engine.recommend(Query(customer_id="bob"))
    engine.recommend(Query(customer_id="alice"))
    assert len(calls) == 1
    with store.session() as s:  # a price change is not content; a new option value is
        s.get(Variant, "flask-silver").price = Decimal("30.00")  # type: ignore[union-attr]
    engine.recommend(Query(customer_id="bob"))
    assert len(calls) == 1
    with store.session() as s:
        s.get(Variant, "flask-silver").options = {"color": "gold", "capacity": "1000ml"}  # type: ignore[union-attr]
    engine.recommend(Query(customer_id="bob"))
    assert len(calls) == 2


def test_without_an_encoder_it_degrades_to_co_purchase_and_popularity_and_says_so(
    store: Database, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(texts: list[str]) -> Any:
        raise OSError("model files missing")

    engine = Recommender(store, broken)
    recs = engine.recommend(Query(customer_id="alice"))
    assert recs.degraded and engine.content_failures == 1
    assert "without content similarity" in caplog.text
    assert reason_of(recs, "Trail Socks") == Reason("bought_with_yours", "Hiking Boots")
    assert Recommender(store).recommend(Query(customer_id="alice")).degraded


def test_an_encoder_failure_is_not_retried_every_turn(store: Database) -> None:
    calls: list[int] = []

    def broken(texts: list[str]) -> Any:
        calls.append(len(texts))
        raise OSError("model files missing")

    engine = Recommender(store, broken)
    for _ in range(3):
        assert engine.recommend(Query(customer_id="alice")).degraded
    assert len(calls) == 1 and engine.content_failures == 1


def test_one_caller_computes_the_vectors_while_others_go_on_without(
    store: Database, shared_encoder: Any
) -> None:
    import threading

    started, release = threading.Event(), threading.Event()
    calls: list[int] = []

    def slow(texts: list[str]) -> Any:
        calls.append(len(texts))
        started.set()
        assert release.wait(30)
        return shared_encoder.encode(texts)

    engine = Recommender(store, slow)
    first = threading.Thread(target=engine.recommend, args=(Query(customer_id="bob"),))
    first.start()
    try:
        assert started.wait(30)
        recs = engine.recommend(Query(customer_id="alice"))  # does not wait for the first
        assert recs.degraded and names(recs)[0] == "Trail Socks"
    finally:
        release.set()
        first.join(30)
    assert not engine.recommend(Query(customer_id="alice")).degraded
    assert len(calls) == 1


# ------------------------------------------------------------------------------ filters


def test_out_of_stock_and_owned_products_are_never_suggested(engine: Recommender) -> None:
    for customer in CUSTOMERS:
        recs = engine.recommend(Query(customer_id=customer, k=20))
        shown = {s.item_id for s in recs.suggestions}
        assert "lamp-1" not in shown and "jacket-red" not in shown  # the lamp is the most ordered
        assert all(s.available for s in recs.suggestions)
        owned = {
            i
            for _, (user, status, items) in ORDERS.items()
            if user == customer and status != "cancelled"
            for i in items
        }
        owned_products = {i.split("-")[0] for i in owned}
        assert not {s.product_id for s in recs.suggestions} & owned_products, customer
    # a cancelled order does not make the product Carol's
    assert "Rain Jacket" in names(engine.recommend(Query(customer_id="carol", k=20)))


def test_price_bounds_asked_for_are_honoured(engine: Recommender) -> None:
    recs = engine.recommend(Query(customer_id="alice", texts=("anything under $50?",), k=20))
    assert recs.suggestions and all(s.price <= 50 for s in recs.suggestions)
    assert all(s.reason.price == PriceRange(None, 50.0) for s in recs.suggestions)
    recs = engine.recommend(Query(texts=("something between 20 and 50",), k=20))
    assert {s.name for s in recs.suggestions} == {"Water Bottle", "Steel Water Flask", "Tea Kettle"}
    assert all(20 <= s.price <= 50 for s in recs.suggestions)


def test_options_asked_for_in_the_conversation_are_honoured(engine: Recommender) -> None:
    recs = engine.recommend(
        Query(texts=("hi", "I'd like something in black", "size M please"), k=20)
    )
    assert {(s.name, s.item_id) for s in recs.suggestions} == {
        ("Trail Socks", "socks-m"),
        ("Rain Jacket", "jacket-black"),
    }
    assert all(s.reason.options == ("black", "size M") for s in recs.suggestions)
    # a later colour replaces the earlier one
    recs = engine.recommend(Query(texts=("in black", "actually, blue"), k=20))
    assert [s.item_id for s in recs.suggestions] == ["bottle-blue"]


def test_words_of_product_names_and_other_products_options_do_not_narrow(
    engine: Recommender,
) -> None:
    """ "bottle" names the Water Bottle, not the Daypack's bottle compartment; a water
    bottle "for a beginner" is not narrowed by the puzzle's difficulty."""
    recs = engine.recommend(Query(texts=("any good bottle for my hikes?",), k=20))
    assert recs.situation == "category"
    assert {s.name for s in recs.suggestions} == {"Water Bottle"}
    assert all(not s.reason.options for s in recs.suggestions)
    recs = engine.recommend(Query(texts=("recommend a water bottle for a beginner",), k=20))
    assert recs.situation == "asked_product"
    assert [s.item_id for s in recs.suggestions][:2] == ["bottle-black", "bottle-blue"]
    assert recs.suggestions[0].reason == Reason("asked_for", "Water Bottle")
    recs = engine.recommend(Query(texts=("something with a compartment bottle",), k=20))
    assert [s.name for s in recs.suggestions] == ["Daypack"]


# --------------------------------------------------------------------- unknown shoppers


def test_an_unknown_shopper_gets_the_popular_ones_of_the_kind_asked_about(
    engine: Recommender,
) -> None:
    recs = engine.recommend(Query(texts=("do you have any kettles?",)))
    assert recs.situation == "category" and recs.subject == "kettles"
    assert names(recs) == ["Tea Kettle", "Electric Kettle"]  # two orders, then one
    assert all(s.reason == Reason("popular_in", category="kettles") for s in recs.suggestions)


def test_with_no_name_word_the_kind_is_found_by_content(engine: Recommender) -> None:
    recs = engine.recommend(Query(texts=("something to listen to music",)))
    assert recs.situation == "category" and recs.subject == "Headphones"
    assert names(recs) == ["Headphones"]
    # nobody ordered them: of the kind asked about, never "popular"
    assert recs.suggestions[0].reason == Reason("in_category", category="Headphones")


def test_an_unknown_shopper_asking_nothing_in_particular_gets_popular_products(
    engine: Recommender,
) -> None:
    recs = engine.recommend(Query(texts=("what would you recommend?",)))
    assert recs.situation == "popular"
    assert names(recs)[:2] == ["Hiking Boots", "Trail Socks"]  # the lamp: out of stock
    assert all(s.reason == Reason("popular") for s in recs.suggestions)


def test_reading_a_turn_against_a_large_catalog_looks_words_up(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """5,000 products, 4 variants each: the catalog's lexicon is built once, then a turn's
    six messages are read by looking their words up (the figure is printed, not
    asserted: timings vary by machine)."""
    import time

    from bot.recommend.store import Catalog, CatalogProduct, CatalogVariant
    from bot.recommend.wishes import Lexicon, read_wishes

    kinds = ["Kettle", "Lamp", "Backpack", "Jacket", "Speaker", "Mug", "Chair", "Boots"]
    colors = ["black", "red", "blue", "green", "white"]
    products = []
    for i in range(5000):
        pid = f"p{i:05d}"
        variants = tuple(
            CatalogVariant(
                f"{pid}-{j}",
                pid,
                {"color": colors[(i + j) % 5], "size": str(j + 8), "style": f"model {i}"},
                Decimal(10 + (i * 7 + j) % 300),
                True,
            )
            for j in range(4)
        )
        products.append(CatalogProduct(pid, f"Brand{i} {kinds[i % len(kinds)]}", variants))
    catalog = Catalog(tuple(products))
    texts = (
        "hi, I need a present",
        "something for my brother who hikes",
        "do you have boots in black?",
        "size 10 please",
        "ideally under $150",
        "what would you recommend?",
    )
    started = time.perf_counter()
    lexicon = Lexicon.build(catalog)
    built = time.perf_counter() - started
    started = time.perf_counter()
    wishes = read_wishes(texts, catalog, lexicon=lexicon)
    turn = time.perf_counter() - started
    with capsys.disabled():
        print(
            f"\n5,000 products: lexicon built in {built * 1000:.0f} ms (once per catalog), "
            f"a six-message turn read in {turn * 1000:.1f} ms"
        )
    assert wishes.category_label == "boots" and len(wishes.category) == 625
    assert {o.said for o in wishes.options} == {"black", "size 10"}
    assert wishes.price == PriceRange(None, 150.0)


def test_an_unknown_customer_id_is_an_error(engine: Recommender) -> None:
    from bot.errors import UnknownCustomer

    with pytest.raises(UnknownCustomer):
        engine.check_customer("nobody_123")


# --------------------------------------------------------------------------------- CLI


def test_clerk_recommend_prints_suggestions_and_exits_2_for_an_unknown_customer(
    store: Database,
    database_url: str,
    prepared_home: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Any,
) -> None:
    from bot.cli import main

    home = prepared_home[0].home  # its encoder export is there already
    monkeypatch.setenv("CLERK_DATABASE_URL", database_url)
    monkeypatch.setenv("CLERK_CONFIG", str(tmp_path / "none.yml"))
    assert main(["--home", str(home), "recommend", "--customer", "alice", "--k", "3"]) == 0
    out = capsys.readouterr().out
    lines = [line for line in out.splitlines() if re.match(r"\d+\. ", line)]
    assert len(lines) == 3
    assert (
        lines[0]
        == "1. Trail Socks (size M, color black), $15.00 — often bought with your Hiking Boots"
    )
    assert main(["--home", str(home), "recommend", "--customer", "nobody_123"]) == 2
    assert "no customer 'nobody_123'" in capsys.readouterr().err


# ------------------------------------------------------------------ the channels' cards


def test_the_channels_show_each_cards_reason() -> None:
    from bot.channels.shell import render_reply
    from bot.channels.telegram import render_messages
    from bot.channels.widget import WEB_DIR
    from bot.types import Reply

    card = {"name": "Trail Socks", "price": 15.0, "available": True, "options": {"size": "M"}}
    reply = Reply(
        text="Picked for you:",
        custom={
            "type": "product_cards",
            "products": [{**card, "reason": "often bought with your Hiking Boots"}],
        },
    )
    assert "often bought with your Hiking Boots" in render_reply(reply)
    [message] = render_messages(reply)
    assert "_often bought with your Hiking Boots_" in message.markdown
    script = (WEB_DIR / "static" / "clerk-widget.js").read_text(encoding="utf-8")
    assert 'p.reason ? el("p", { class: "reason"' in script


# ----------------------------------------------------------- many shoppers at once, live


SHOPPERS = {  # demo store shoppers: email, one of their orders
    "ivan_santos_6635": ("ivan.santos3158@example.com", "#W6893533"),
    "anya_garcia_3271": ("anya.garcia2061@example.com", "#W4140680"),
    "yara_li_8961": ("yara.li6570@example.com", "#W2497857"),
    "aarav_anderson_8794": ("aarav.anderson9752@example.com", "#W4316152"),
    "isabella_sanchez_2068": ("isabella.sanchez6218@example.com", "#W4386313"),
    "raj_sanchez_2970": ("raj.sanchez2046@example.com", "#W7736708"),
}


@pytest.fixture
def demo_server(database_url: str, bot_settings: Any, shared_encoder: Any) -> Iterator[Any]:
    from tests.live import bot_server

    with bot_server(bot_settings(database_url), shared_encoder) as live:
        # as `clerk serve` does (bot.app.warm): shoppers asking before the vectors are
        # computed would get suggestions without content similarity meanwhile
        live.parts.recommender.warm()
        yield live
        live.parts.manager.close()
        live.parts.db.dispose()


async def test_shoppers_asking_at_once_each_get_their_own_suggestions(
    demo_server: Any,
) -> None:
    async def shopper(client: httpx.AsyncClient, customer: str) -> tuple[str, list[str], list[Any]]:
        email, order = SHOPPERS[customer]
        texts = [f"where is my order {order}?", email, "can you recommend something?"]
        replies: list[Any] = []
        for text in texts:
            r = await client.post(
                "/webhooks/rest/webhook", json={"sender": f"recs-{customer}", "message": text}
            )
            assert r.status_code == 200, r.text
            replies = r.json()
        return customer, texts, replies

    async with httpx.AsyncClient(base_url=demo_server.url, timeout=120) as client:
        results = await asyncio.gather(*(shopper(client, c) for c in SHOPPERS))
    engine = Recommender(demo_server.parts.db, demo_server.parts.search_encoder.encode)
    seen = set()
    for customer, texts, replies in results:
        [cards] = [r["custom"]["products"] for r in replies if r.get("custom")]
        # the order question and the email are another topic: the request is read alone
        expected = engine.recommend(Query(customer_id=customer, texts=tuple(texts[-1:])))
        assert [c["item_id"] for c in cards] == [s.item_id for s in expected.suggestions], customer
        assert "Picked for you" in replies[0]["text"]
        history = engine.recommend(Query(customer_id=customer, k=50))
        with demo_server.parts.db.session() as s:
            from bot.recommend.store import read_history

            owned = set(read_history(s, customer).products)
        assert owned and not owned & {c["product_id"] for c in cards}
        assert all(isinstance(c["reason"], str) and c["reason"] for c in cards)
        assert history.situation == "personal"
        seen.add(tuple(c["item_id"] for c in cards))
    assert len(seen) > 1  # personalised: not everyone got the same list
