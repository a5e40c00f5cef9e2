"""A shopper's personal data: export, erasure, retention purge and its daily schedule, and
the `clerk privacy` commands. Every test runs on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import datetime as dt
import io
import json
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.cli import main
from bot.config import Settings
from bot.errors import ConfigError, InputError, UnknownCustomer
from bot.store import migrate
from bot.store.db import Database
from bot.store.models import (
    Base,
    Conversation,
    ConversationEvent,
    Customer,
    Handoff,
    Order,
    OrderChange,
    OrderItem,
    OutboxMessage,
    PrivacyAudit,
    Ticket,
)
from bot.store.personal_data import (
    ERASED,
    delete_customer,
    export_customer,
    parse_age,
    purge_older_than,
    retention_loop,
    retention_running,
    run_retention_once,
    subject_hash,
)

NOW = dt.datetime(2026, 6, 1, 12, 0, tzinfo=dt.UTC)
MIA = "mia_garcia_4516"
# Every piece of Mia's personal data the seed holds; none may survive her erasure.
MIA_SECRETS = (
    MIA,
    "garcia",
    "mia.garcia@example.com",
    "evergreen terrace",
    "springfield",
    "4242",
    "555-0199",
    "rest:mia",
    "web:mia-widget",
)


def days_ago(n: float) -> dt.datetime:
    return NOW - dt.timedelta(days=n)


def customer(
    user_id: str, first: str, last: str, email: str, street: str, city: str, card: str
) -> Customer:
    return Customer(
        user_id=user_id,
        first_name=first,
        last_name=last,
        email=email,
        zip="62704",
        address={"address1": street, "city": city, "zip": "62704", "country": "USA"},
        payment_methods={
            "credit_card_1": {"source": "credit_card", "brand": "visa", "last_four": card}
        },
    )


def conversation(
    cid: str, customer_id: str | None, texts: list[str], *, updated: dt.datetime = NOW, **kw: Any
) -> list[Any]:
    rows: list[Any] = [
        Conversation(
            id=cid,
            channel=cid.split(":")[0],
            customer_id=customer_id,
            created_at=updated,
            updated_at=updated,
            event_count=len(texts),
            **kw,
        )
    ]
    rows += [
        ConversationEvent(
            conversation_id=cid,
            seq=i,
            type="user",
            timestamp=updated.timestamp(),
            data={"event": "user", "text": t},
        )
        for i, t in enumerate(texts)
    ]
    return rows


def seed(db: Database) -> None:
    """Mia (two conversations, a verified one and one where she only left a ticket, two
    tickets, an order the bot changed the address of) and Noah, who must stay untouched."""
    mia_home = "742 Evergreen Terrace"
    with db.session() as s:
        s.add(
            customer(
                MIA, "Mia", "Garcia", "mia.garcia@example.com", mia_home, "Springfield", "4242"
            )
        )
        s.add(
            customer(
                "noah_kim_1111", "Noah", "Kim", "noah@example.com", "1 Oak Road", "Salem", "1111"
            )
        )
        s.flush()
        order = Order(
            order_id="#W1000001",
            user_id=MIA,
            status="pending",
            address={"address1": mia_home, "city": "Springfield", "zip": "62704"},
            fulfillments=[],
            payment_history=[
                {"transaction_type": "payment", "amount": 54.04, "payment_method_id": "cc_1"}
            ],
            updated_at=days_ago(3),
        )
        order.items.append(
            OrderItem(
                item_id="1",
                product_id="p1",
                name="T-Shirt",
                price=Decimal("54.04"),
                options={"size": "M"},
            )
        )
        order.changes.append(
            OrderChange(
                kind="address",
                data={"old": {"address1": "9 Elm St, Springfield"}, "new": {"address1": mia_home}},
                conversation_id="rest:mia",
            )
        )
        s.add(order)
        s.add(
            Order(
                order_id="#W2000002",
                user_id="noah_kim_1111",
                status="delivered",
                address={"address1": "1 Oak Road"},
                fulfillments=[],
                payment_history=[],
            )
        )
        s.add_all(
            conversation("rest:mia", MIA, ["hi, I'm Mia Garcia, mia.garcia@example.com", "ship it"])
        )
        s.add_all(conversation("web:mia-widget", None, ["call me at 555-0199"]))
        s.add_all(conversation("rest:noah", "noah_kim_1111", ["where is my order"]))
        s.flush()
        s.add(Handoff(conversation_id="rest:mia", status="closed", reason="r", trigger="asked"))
        s.add(
            OutboxMessage(
                message_id="m1",
                conversation_id="rest:mia",
                channel="rest",
                kind="agent",
                text="Hello Mia Garcia",
            )
        )
        s.add_all(
            [
                Ticket(
                    id="T-000001",
                    status="open",
                    customer_id=MIA,
                    order_id="#W1000001",
                    text="My parcel to 742 Evergreen Terrace never arrived",
                    contact="mia.garcia@example.com",
                    conversation_id="rest:mia",
                ),
                Ticket(  # raised before she was identified: found through the conversation
                    id="T-000002",
                    status="solved",
                    text="please call 555-0199",
                    contact="555-0199",
                    conversation_id="web:mia-widget",
                ),
                Ticket(
                    id="T-000003",
                    status="open",
                    customer_id="noah_kim_1111",
                    text="late parcel",
                    conversation_id="rest:noah",
                ),
            ]
        )
    with db.session() as s:  # the widget conversation turns out to be hers
        s.get(Conversation, "web:mia-widget").customer_id = MIA  # type: ignore[union-attr]


def every_row(db: Database) -> str:
    """Every row of every table, as one lower-case text."""
    out = []
    with db.engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            out += [repr(tuple(row)) for row in conn.execute(table.select())]
    return "\n".join(out).lower()


def audit_rows(db: Database, action: str | None = None) -> list[PrivacyAudit]:
    with db.session() as s:
        q = select(PrivacyAudit).order_by(PrivacyAudit.id)
        if action:
            q = q.where(PrivacyAudit.action == action)
        return list(s.scalars(q))


# ------------------------------------------------------------------------------ export


def test_export_holds_profile_conversations_tickets_and_orders(db: Database) -> None:
    seed(db)

    data = export_customer(db, MIA, now=NOW)

    json.dumps(data)  # JSON-ready as it is
    assert data["customer_id"] == MIA and data["exported_at"] == "2026-06-01T12:00:00+00:00"
    assert data["profile"]["email"] == "mia.garcia@example.com"
    assert data["profile"]["payment_methods"]["credit_card_1"]["last_four"] == "4242"
    by_id = {c["id"]: c for c in data["conversations"]}
    assert sorted(by_id) == ["rest:mia", "web:mia-widget"]
    assert [e["data"]["text"] for e in by_id["rest:mia"]["events"]] == [
        "hi, I'm Mia Garcia, mia.garcia@example.com",
        "ship it",
    ]
    assert by_id["rest:mia"]["updated_at"] == NOW.isoformat()
    assert [t["id"] for t in data["tickets"]] == ["T-000001", "T-000002"]
    [order] = data["orders"]
    assert order["order_id"] == "#W1000001"
    assert order["items"][0]["price"] == "54.04"  # money as an exact decimal string
    assert [c["kind"] for c in order["changes"]] == ["address"]
    assert "noah" not in json.dumps(data).lower()
    [audit] = audit_rows(db, "export")
    assert audit.subject == subject_hash(MIA) and MIA not in audit.subject
    assert audit.counts["conversations"] == 2 and audit.counts["events"] == 3


def test_export_of_an_unknown_id_is_an_error_and_audits_nothing(db: Database) -> None:
    seed(db)
    with pytest.raises(UnknownCustomer, match="no customer 'nobody_0000'"):
        export_customer(db, "nobody_0000")
    assert audit_rows(db) == []


# ------------------------------------------------------------------------------ erasure


def test_delete_leaves_no_personal_data_anywhere(db: Database) -> None:
    seed(db)
    before = every_row(db)
    assert all(secret in before for secret in MIA_SECRETS)  # the check below can see them

    erased = delete_customer(db, MIA, now=NOW)

    after = every_row(db)
    assert [secret for secret in MIA_SECRETS if secret in after] == []
    assert (erased.profile, erased.conversations, erased.events, erased.tickets) == (1, 2, 3, 2)
    assert (erased.orders, erased.order_changes, erased.already_erased) == (1, 1, False)
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(ConversationEvent)) == 1  # Noah's
        assert s.scalar(select(func.count()).select_from(Handoff)) == 0
        assert s.scalar(select(func.count()).select_from(OutboxMessage)) == 0
        # tickets stay, anonymised, with their status and order
        t1, t2 = s.get(Ticket, "T-000001"), s.get(Ticket, "T-000002")
        assert t1 is not None and t2 is not None
        assert (t1.text, t1.contact, t1.customer_id, t1.conversation_id) == (
            ERASED,
            None,
            None,
            None,
        )
        assert (t1.status, t1.order_id, t2.status, t2.text) == (
            "open",
            "#W1000001",
            "solved",
            ERASED,
        )
        # the order keeps what the accounts need, under a profile with no personal data
        order = s.get(Order, "#W1000001")
        assert order is not None and order.address == {} and order.user_id.startswith("erased-")
        assert [i.price for i in order.items] == [Decimal("54.04")]
        assert order.payment_history[0]["amount"] == 54.04
        owner = s.get(Customer, order.user_id)
        assert owner is not None and owner.email == ERASED and owner.payment_methods == {}
        # Noah is untouched
        assert s.get(Conversation, "rest:noah") is not None
        assert s.get(Ticket, "T-000003").text == "late parcel"  # type: ignore[union-attr]
        assert s.get(Order, "#W2000002").address == {"address1": "1 Oak Road"}  # type: ignore[union-attr]
    [audit] = audit_rows(db, "delete")
    assert audit.subject == subject_hash(MIA)
    assert audit.counts["conversations"] == 2 and audit.counts["already_erased"] is False


def test_delete_twice_says_nothing_is_left(db: Database) -> None:
    seed(db)
    delete_customer(db, MIA)

    again = delete_customer(db, MIA)

    assert again.already_erased and again.nothing_left
    assert [a.counts["already_erased"] for a in audit_rows(db, "delete")] == [False, True]


def test_delete_of_an_unknown_id_is_an_error(db: Database) -> None:
    seed(db)
    with pytest.raises(UnknownCustomer):
        delete_customer(db, "nobody_0000")
    assert audit_rows(db) == []


# ------------------------------------------------------------------------------ retention


def seed_ages(db: Database) -> None:
    with db.session() as s:
        s.add_all(conversation("rest:old", None, ["old news"], updated=days_ago(100)))
        s.add_all(conversation("rest:recent", None, ["fresh"], updated=days_ago(10)))
        s.add_all(
            conversation(
                "rest:waiting",
                None,
                ["a human please"],
                updated=days_ago(100),
                handoff_status="requested",
            )
        )
        s.add_all(
            conversation(
                "rest:with-agent", None, ["hello"], updated=days_ago(100), handoff_status="claimed"
            )
        )
        s.add_all(
            conversation(
                "rest:handed-back", None, ["thanks"], updated=days_ago(100), handoff_status="closed"
            )
        )
        for tid, status, age in (
            ("T-000011", "solved", 100),
            ("T-000012", "open", 100),
            ("T-000013", "solved", 10),
        ):
            s.add(
                Ticket(
                    id=tid,
                    status=status,
                    text=f"ticket {tid}",
                    contact="x@example.com",
                    created_at=days_ago(age),
                    updated_at=days_ago(age),
                )
            )


def conversation_ids(db: Database) -> list[str]:
    with db.session() as s:
        return sorted(s.scalars(select(Conversation.id)))


def test_purge_deletes_old_conversations_and_keeps_recent_ones_and_active_handoffs(
    db: Database,
) -> None:
    seed_ages(db)

    purged = purge_older_than(db, 90, now=NOW)

    assert (purged.conversations, purged.events, purged.tickets) == (2, 2, 1)
    assert purged.cutoff == days_ago(90)
    assert conversation_ids(db) == ["rest:recent", "rest:waiting", "rest:with-agent"]
    with db.session() as s:
        assert sorted(s.scalars(select(ConversationEvent.conversation_id))) == [
            "rest:recent",
            "rest:waiting",
            "rest:with-agent",
        ]
        texts = dict(s.execute(select(Ticket.id, Ticket.text)).tuples().all())
        assert texts == {
            "T-000011": ERASED,
            "T-000012": "ticket T-000012",
            "T-000013": "ticket T-000013",
        }
        old = s.get(Ticket, "T-000011")
        assert old is not None and old.contact is None and old.status == "solved"
    [audit] = audit_rows(db, "purge")
    assert audit.subject is None
    assert audit.counts == {
        "conversations": 2,
        "events": 2,
        "tickets": 1,
        "older_than_days": 90,
        "scheduled": False,
    }

    again = purge_older_than(db, 90, now=NOW)
    assert (again.conversations, again.tickets) == (0, 0)


def test_ages_parse_and_bad_ones_are_clear_errors() -> None:
    assert parse_age("90d") == 90 and parse_age("12w") == 84 and parse_age(" 24H ") == 1
    assert parse_age("36h") == 1.5
    for bad in ("90", "d", "90 days", "-3d", "0d", "1y", ""):
        with pytest.raises(InputError, match="90d, 12w or 24h|more than 0"):
            parse_age(bad)


# ------------------------------------------------------------------------- the schedule


def test_retention_runs_at_most_once_a_day(db: Database) -> None:
    seed_ages(db)

    assert run_retention_once(db, 0, NOW) is None  # retention off
    first = run_retention_once(db, 90, NOW)
    assert first is not None and first.conversations == 2
    assert run_retention_once(db, 90, NOW + dt.timedelta(hours=22)) is None  # done today
    later = run_retention_once(db, 90, NOW + dt.timedelta(hours=24))
    assert later is not None and later.conversations == 0
    assert [a.counts["scheduled"] for a in audit_rows(db, "purge")] == [True, True]


def test_of_workers_purging_at_once_exactly_one_purges(db: Database) -> None:
    seed_ages(db)
    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(lambda _: run_retention_once(db, 90, NOW), range(4)))
    assert sum(r is not None for r in results) == 1
    assert len(audit_rows(db, "purge")) == 1


def test_retention_loop_checks_without_blocking_and_purges_once(db: Database) -> None:
    seed_ages(db)

    async def serve_a_while() -> int:
        ticks = 0
        stop = asyncio.Event()

        async def other_work() -> None:  # the event loop stays free meanwhile
            nonlocal ticks
            while not stop.is_set():
                ticks += 1
                await asyncio.sleep(0.001)

        tasks = [
            asyncio.create_task(retention_loop(db, 90, stop, check_every=0.01, clock=lambda: NOW)),
            asyncio.create_task(other_work()),
        ]
        await asyncio.sleep(0.3)
        stop.set()
        await asyncio.wait_for(asyncio.gather(*tasks), 10)
        return ticks

    assert asyncio.run(serve_a_while()) > 10
    assert "rest:old" not in conversation_ids(db)
    assert len(audit_rows(db, "purge")) == 1  # checked many times, purged once


def test_serving_stops_the_retention_loop_promptly(db: Database) -> None:
    seed_ages(db)

    async def serve() -> None:
        async with retention_running(db, 90, check_every=0.005):
            await asyncio.sleep(0.1)

    for _ in range(20):  # a cancellation can arrive at any point of the loop
        asyncio.run(asyncio.wait_for(serve(), 10))
    assert len(audit_rows(db, "purge")) == 1


def test_retention_setting() -> None:
    assert Settings.load({}, config_file="/nonexistent.yml").retention_days == 0
    assert Settings.load({"CLERK_RETENTION_DAYS": "90"}, "/nonexistent.yml").retention_days == 90
    for bad in ("-1", "ninety"):
        with pytest.raises(ConfigError, match="retention_days"):
            Settings.load({"CLERK_RETENTION_DAYS": bad}, "/nonexistent.yml")


# ------------------------------------------------------------------------------ the CLI


@pytest.fixture
def cli_db(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Database:
    """The database `clerk` commands use (CLERK_DATABASE_URL), migrated and seeded."""
    monkeypatch.setenv("CLERK_DATABASE_URL", database_url)
    migrate.upgrade(database_url)
    database = Database(database_url)
    seed(database)
    yield database  # type: ignore[misc]
    database.dispose()


def test_clerk_privacy_export(
    cli_db: Database, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["privacy", "export", "--customer", MIA]) == 0
    assert json.loads(capsys.readouterr().out)["profile"]["first_name"] == "Mia"

    out = tmp_path / "mia.json"
    assert main(["privacy", "export", "--customer", MIA, "--out", str(out)]) == 0
    assert len(json.loads(out.read_text())["conversations"]) == 2

    assert main(["privacy", "export", "--customer", "nobody_0000"]) == 2
    captured = capsys.readouterr()
    assert captured.out == "" and "no customer 'nobody_0000'" in captured.err


def test_clerk_privacy_delete_asks_first(
    cli_db: Database, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("n\n"))
    assert main(["privacy", "delete", "--customer", MIA]) == 1
    assert "nothing deleted" in capsys.readouterr().err
    assert "mia.garcia@example.com" in every_row(cli_db)

    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))
    assert main(["privacy", "delete", "--customer", MIA]) == 0
    out = capsys.readouterr().out
    assert "2 conversations (3 events) deleted" in out and "2 tickets and 1 orders" in out
    assert "mia.garcia@example.com" not in every_row(cli_db)

    assert main(["privacy", "delete", "--customer", MIA, "--yes"]) == 0
    assert "already erased, nothing left" in capsys.readouterr().out
    assert main(["privacy", "delete", "--customer", "nobody_0000", "--yes"]) == 2
    assert "no customer 'nobody_0000'" in capsys.readouterr().err


def test_clerk_privacy_purge(cli_db: Database, capsys: pytest.CaptureFixture[str]) -> None:
    with cli_db.session() as s:
        s.add_all(
            conversation(
                "rest:ancient", None, ["old"], updated=dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
            )
        )

    assert main(["privacy", "purge", "--older-than", "520w"]) == 0  # ten years
    assert "1 conversations (1 events) deleted" in capsys.readouterr().out
    assert conversation_ids(cli_db) == ["rest:mia", "rest:noah", "web:mia-widget"]

    assert main(["privacy", "purge", "--older-than", "3 months"]) == 2
    assert "'3 months' is not an age" in capsys.readouterr().err


def test_a_served_bot_with_a_retention_period_purges_at_start(
    database_url: str,
    bot_settings,
    shared_encoder,  # type: ignore[no-untyped-def]
) -> None:
    """`clerk serve` with CLERK_RETENTION_DAYS runs the daily purge: its first check comes
    as the server starts, so the audit shows a purge by then."""
    import time

    from tests.live import bot_server

    settings = bot_settings(database_url, retention_days=30)
    db = Database(database_url)
    try:
        with bot_server(settings, shared_encoder):
            deadline = time.time() + 20
            while not audit_rows(db, "purge") and time.time() < deadline:
                time.sleep(0.1)
            assert audit_rows(db, "purge")
    finally:
        db.dispose()
