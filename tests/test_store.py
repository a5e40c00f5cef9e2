"""Storage: migrations match the models, the demo store loads idempotently, money is exact,
and a failed turn leaves nothing behind. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import multiprocessing
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, func, inspect, select, text

from bot.errors import DataError, StoreError
from bot.knowledge.store_load import STAGES, load_store
from bot.store import migrate
from bot.store.db import Database, normalise_url
from bot.store.models import (
    Base,
    Conversation,
    Customer,
    Order,
    OrderItem,
    OutboxMessage,
    Product,
    Ticket,
    Variant,
)

# ------------------------------------------------------------------------- migrations


def schema_diff(url: str) -> list[Any]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn, opts={"compare_type": True, "compare_server_default": True}
            )
            return list(compare_metadata(context, Base.metadata))
    finally:
        engine.dispose()


def table_names(url: str) -> set[str]:
    engine = create_engine(normalise_url(url))
    try:
        with engine.connect() as conn:
            return set(inspect(conn).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_creates_exactly_the_models_schema(database_url: str) -> None:
    assert migrate.current(database_url) is None

    migrate.upgrade(database_url)

    assert migrate.current(database_url) == migrate.head_revision() == "0006"
    assert table_names(database_url) == set(Base.metadata.tables) | {"alembic_version"}
    assert schema_diff(database_url) == []


def test_schema_comparison_notices_a_missing_index_and_foreign_key(database_url: str) -> None:
    """Guards the test above: compare_metadata must see the kind of drift it is there for."""
    migrate.upgrade(database_url)
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as conn:
        conn.execute(text("DROP INDEX ix_customers_name_zip"))
        conn.execute(text("DROP TABLE order_items"))
        conn.execute(
            text(
                "CREATE TABLE order_items (id INTEGER PRIMARY KEY, order_id VARCHAR(20) NOT NULL,"
                " item_id VARCHAR(40) NOT NULL, product_id VARCHAR(40) NOT NULL,"
                " name VARCHAR(200) NOT NULL, price NUMERIC(10, 2) NOT NULL,"
                " options JSON NOT NULL)"
            )
        )
        conn.execute(text("CREATE INDEX ix_order_items_order_id ON order_items (order_id)"))
    engine.dispose()

    kinds = sorted(d[0] for d in schema_diff(database_url) if isinstance(d, tuple))
    assert kinds == ["add_fk", "add_index"]


def test_upgrade_twice_is_a_no_op(database_url: str) -> None:
    migrate.upgrade(database_url)
    db = Database(database_url)
    try:
        with db.session() as s:
            s.add(Conversation(id="c-1", channel="shell"))

        migrate.upgrade(database_url)

        assert migrate.current(database_url) == "0006"
        with db.session() as s:
            assert s.get(Conversation, "c-1") is not None
    finally:
        db.dispose()
    assert schema_diff(database_url) == []


def test_revision_0006_moves_a_feedback_requests_json_into_payload(database_url: str) -> None:
    """Before 0006 the CSAT request after a close kept ``{"text", "custom"}`` as JSON in
    ``outbox.text``; the upgrade splits it, so no worker ever sends the JSON."""
    migrate.upgrade(database_url, "0005")
    custom = {"type": "feedback_request", "ratings": [{"rating": "up", "label": "Good"}]}
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as conn:
        conn.execute(
            text(
                "INSERT INTO conversations (id, channel, handoff_status, created_at,"
                " updated_at, event_count) VALUES ('web:s', 'web', 'none', CURRENT_TIMESTAMP,"
                " CURRENT_TIMESTAMP, 0)"
            )
        )
        for message_id, kind, stored in (
            ("m1", "feedback", json.dumps({"text": "How did we do?", "custom": custom})),
            ("m2", "feedback", "{broken"),
            ("m3", "agent", json.dumps({"text": "an agent wrote JSON", "custom": {}})),
        ):
            conn.execute(
                text(
                    "INSERT INTO outbox (message_id, conversation_id, channel, kind, text,"
                    " created_at) VALUES (:m, 'web:s', 'web', :k, :t, CURRENT_TIMESTAMP)"
                ),
                {"m": message_id, "k": kind, "t": stored},
            )
    engine.dispose()

    migrate.upgrade(database_url)

    db = Database(database_url)
    try:
        with db.session() as s:
            rows = {
                r.message_id: (r.text, r.payload) for r in s.scalars(select(OutboxMessage)).all()
            }
    finally:
        db.dispose()
    assert rows["m1"] == ("How did we do?", custom)
    assert rows["m2"] == ("{broken", None)  # left alone; sent as text, counted
    assert rows["m3"][1] is None  # only feedback rows are touched


@pytest.mark.slow
def test_concurrent_upgrades_serialise(database_url: str) -> None:
    """Two app workers starting at once must not both try to create the tables (without
    the lock they deadlock on PostgreSQL, hence the join timeout)."""
    spawn = multiprocessing.get_context("spawn")
    workers = [spawn.Process(target=migrate.upgrade, args=(database_url,)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    stuck = [w for w in workers if w.is_alive()]
    for worker in stuck:
        worker.kill()

    assert stuck == []
    assert [w.exitcode for w in workers] == [0, 0]
    assert migrate.current(database_url) == "0006"
    assert schema_diff(database_url) == []


def test_downgrade_to_base_drops_everything_and_upgrade_restores_it(database_url: str) -> None:
    migrate.upgrade(database_url)
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as conn:
        cfg = migrate.alembic_config(database_url)
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    engine.dispose()

    assert table_names(database_url) == {"alembic_version"}
    assert migrate.current(database_url) is None

    migrate.upgrade(database_url)
    assert schema_diff(database_url) == []


def test_upgrade_adopts_a_schema_made_by_create_all(db: Database, database_url: str) -> None:
    with db.session() as s:
        s.add(Conversation(id="c-1"))

    migrate.upgrade(database_url)

    assert migrate.current(database_url) == "0006"
    with db.session() as s:
        assert s.get(Conversation, "c-1") is not None


def test_upgrade_refuses_an_unversioned_schema_that_differs(database_url: str) -> None:
    engine = create_engine(normalise_url(database_url))
    with engine.begin() as conn:
        conn.execute(text("CREATE TABLE products (product_id VARCHAR(40) PRIMARY KEY)"))
    engine.dispose()

    with pytest.raises(StoreError, match="differs from the models"):
        migrate.upgrade(database_url)

    assert table_names(database_url) == {"products"}


def test_current_does_not_create_a_sqlite_file(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "never.db"
    assert migrate.current(f"sqlite:///{path}") is None
    assert not path.exists()


# ------------------------------------------------------------------------- demo store


def count(db: Database, model: type[Any]) -> int:
    with db.session() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def test_load_store_loads_the_whole_demo_store(db: Database, knowledge_dir: Path) -> None:
    calls: list[tuple[str, int, int]] = []
    started = time.perf_counter()

    counts = load_store(db, knowledge_dir, progress=lambda *call: calls.append(call))

    elapsed = time.perf_counter() - started
    assert counts == {
        "products_inserted": 50,
        "products_updated": 0,
        "variants_inserted": 591,
        "variants_updated": 0,
        "customers_inserted": 500,
        "orders_inserted": 1000,
        "order_items_inserted": 2978,
    }
    assert [count(db, m) for m in (Product, Variant, Customer, Order, OrderItem)] == [
        50,
        591,
        500,
        1000,
        2978,
    ]
    assert elapsed < 10, f"demo store took {elapsed:.1f}s to load"
    # progress: stages in order, each ending with done == total
    assert [c[0] for c in calls] == sorted((c[0] for c in calls), key=STAGES.index)
    finals = {stage: (done, total) for stage, done, total in calls}
    assert finals == {
        "products": (50, 50),
        "variants": (591, 591),
        "customers": (500, 500),
        "orders": (1000, 1000),
    }

    with db.session() as s:
        noah = s.get(Customer, "noah_brown_6181")
        assert noah is not None
        assert (noah.first_name, noah.last_name) == ("Noah", "Brown")
        assert (noah.email, noah.zip) == ("noah.brown7922@example.com", "80279")
        assert noah.address["city"] == "Denver"
        assert noah.payment_methods["credit_card_7815826"]["last_four"] == "9212"

        order = s.get(Order, "#W2611340")
        assert order is not None
        assert (order.user_id, order.status) == ("james_li_5688", "processed")
        assert [(i.name, i.price) for i in order.items] == [
            ("Water Bottle", Decimal("47.84")),
            ("Office Chair", Decimal("488.81")),
        ]
        assert order.fulfillments[0]["tracking_id"] == ["357962501027"]
        assert order.payment_history[0]["payment_method_id"] == "gift_card_1725971"

        shirt = s.get(Variant, "9612497925")
        assert shirt is not None
        assert shirt.product.name == "T-Shirt"
        assert (shirt.price, shirt.available) == (Decimal("50.88"), True)
        assert shirt.options == {
            "color": "blue",
            "size": "M",
            "material": "cotton",
            "style": "crew neck",
        }


def test_load_store_twice_inserts_nothing_and_keeps_live_order_state(
    db: Database, knowledge_dir: Path
) -> None:
    load_store(db, knowledge_dir)
    with db.session() as s:
        pending = s.scalars(select(Order).where(Order.status == "pending").limit(1)).one()
        pending.status = "cancelled"
        cancelled_id = pending.order_id
        customer = s.get(Customer, "noah_brown_6181")
        assert customer is not None
        customer.address = {**customer.address, "address1": "1 New Street"}
        shirt = s.get(Variant, "9612497925")
        assert shirt is not None
        shirt.price = Decimal("1.00")  # the catalog file wins for catalog rows
        shirt.available = False

    counts = load_store(db, knowledge_dir)

    assert counts == {
        "products_inserted": 0,
        "products_updated": 0,
        "variants_inserted": 0,
        "variants_updated": 1,
        "customers_inserted": 0,
        "orders_inserted": 0,
        "order_items_inserted": 0,
    }
    assert [count(db, m) for m in (Product, Variant, Customer, Order, OrderItem)] == [
        50,
        591,
        500,
        1000,
        2978,
    ]
    with db.session() as s:
        assert s.get(Order, cancelled_id).status == "cancelled"  # type: ignore[union-attr]
        customer = s.get(Customer, "noah_brown_6181")
        assert customer is not None and customer.address["address1"] == "1 New Street"
        shirt = s.get(Variant, "9612497925")
        assert shirt is not None and (shirt.price, shirt.available) == (Decimal("50.88"), True)

    assert load_store(db, knowledge_dir)["variants_updated"] == 0


def test_loaded_prices_are_exactly_the_json_prices(db: Database, knowledge_dir: Path) -> None:
    load_store(db, knowledge_dir)
    raw = json.loads((knowledge_dir / "catalog" / "products.json").read_text())
    expected = {
        item_id: Decimal(str(v["price"]))
        for product in raw.values()
        for item_id, v in product["variants"].items()
    }
    orders = json.loads((knowledge_dir / "catalog" / "orders.json").read_text())
    expected_total = sum(
        (Decimal(str(i["price"])) for o in orders.values() for i in o["items"]), Decimal(0)
    )

    with db.session() as s:
        stored = {i: p for i, p in s.execute(select(Variant.item_id, Variant.price)).tuples()}
        item_prices = list(s.scalars(select(OrderItem.price)))

    assert stored == expected
    assert all(isinstance(p, Decimal) for p in stored.values())
    assert sum(item_prices, Decimal(0)) == expected_total


def write_catalog(root: Path, users: dict[str, Any], orders: dict[str, Any]) -> Path:
    catalog = root / "catalog"
    catalog.mkdir(parents=True)
    products = {
        "p1": {
            "name": "Mug",
            "product_id": "p1",
            "variants": {
                "i1": {
                    "item_id": "i1",
                    "options": {"color": "red"},
                    "available": True,
                    "price": 9.99,
                },
            },
        }
    }
    for name, data in (("products", products), ("users", users), ("orders", orders)):
        (catalog / f"{name}.json").write_text(json.dumps(data))
    return root


def test_load_store_rejects_an_order_of_an_unknown_user_and_writes_nothing(
    db: Database, tmp_path: Path
) -> None:
    order = {
        "order_id": "#W1",
        "user_id": "ghost_1",
        "address": {},
        "items": [],
        "fulfillments": [],
        "status": "pending",
        "payment_history": [],
    }
    knowledge = write_catalog(tmp_path, users={}, orders={"#W1": order})

    with pytest.raises(DataError, match="unknown users: ghost_1"):
        load_store(db, knowledge)

    assert count(db, Product) == 0
    assert count(db, Variant) == 0


def test_load_store_names_the_file_and_record_of_malformed_data(
    db: Database, tmp_path: Path
) -> None:
    knowledge = write_catalog(tmp_path, users={"u1": {"name": {"first_name": "A"}}}, orders={})

    with pytest.raises(DataError, match=r"users\.json: user 'u1'"):
        load_store(db, knowledge)


def test_load_store_rejects_a_missing_catalog(db: Database, tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no catalog"):
        load_store(db, tmp_path)


# -------------------------------------------------------------------- money, rollback


def test_decimal_prices_round_trip_exactly(db: Database) -> None:
    prices = ["0.01", "0.10", "19.99", "1234.56", "3289.46", "99999999.99"]
    with db.session() as s:
        s.add(Product(product_id="p", name="Price test"))
        for n, price in enumerate(prices):
            s.add(Variant(item_id=f"i{n}", product_id="p", options={}, price=Decimal(price)))

    with db.session() as s:
        stored = [s.get(Variant, f"i{n}").price for n in range(len(prices))]  # type: ignore[union-attr]

    assert stored == [Decimal(p) for p in prices]
    assert [str(p) for p in stored] == prices
    assert all(isinstance(p, Decimal) for p in stored)


def test_a_rolled_back_unit_of_work_leaves_nothing_written(db: Database) -> None:
    with pytest.raises(RuntimeError, match="action failed"), db.unit() as turn:
        turn.add(Conversation(id="c-rollback"))
        turn.flush()  # the rows reach the database before the failure
        with db.session() as joined:  # code inside the unit shares its session
            assert joined is turn
            joined.add(Ticket(id="T-000001", text="help", conversation_id="c-rollback"))
            joined.flush()
        raise RuntimeError("action failed")

    with db.session() as s:
        assert s.get(Conversation, "c-rollback") is None
        assert s.get(Ticket, "T-000001") is None
    assert count(db, Conversation) == 0
    assert count(db, Ticket) == 0
