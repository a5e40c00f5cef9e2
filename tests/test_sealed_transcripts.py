"""Shoppers' personal data sealed in stored conversations (``CLERK_TRANSCRIPT_KEY``): the
database holds tokens, not the emails, phones, cards and addresses shoppers typed, while
the conversation's own later turns still get the real values. Conversations run through
the REST channel of a real server on 127.0.0.1, on SQLite and PostgreSQL."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import select

from bot.dialogue.sealing import Sealer, masked
from bot.errors import ConfigError
from bot.store.db import Database
from bot.store.models import ConversationEvent, Order, Ticket
from bot.types import BotUttered, SlotSet, UserUttered
from tests.live import Chat, LiveServer, bot_server

KEY = Fernet.generate_key().decode()
STREET = "12 Main Street"
EMAIL = "yusuf.hernandez6086@example.com"


# ------------------------------------------------------------------------------- sealer


def test_personal_data_is_sealed_and_opened_again() -> None:
    sealer = Sealer(KEY)
    said = f"write to {EMAIL} or call +1 415 555 0100; card 4111 1111 1111 1111"
    events = [
        UserUttered(said, {"entities": [{"entity": "email", "value": EMAIL}]}),
        BotUttered(f"I'll write to {EMAIL}."),
        SlotSet("contact", EMAIL),
    ]
    sealed = sealer.seal(events)
    stored = json.dumps([e.to_dict() for e in sealed])
    for secret in (EMAIL, "415 555 0100", "4111 1111 1111 1111"):
        assert secret not in stored
    assert sealer.open(sealed) == events  # the same events back, timestamps included
    assert masked(sealed[1].text or "") == "I'll write to <email>."
    # another key cannot read them
    assert Sealer(Fernet.generate_key().decode()).open_text(sealed[1].text or "") == (
        "I'll write to <email>."
    )


def test_a_bad_key_is_a_clear_configuration_error() -> None:
    with pytest.raises(ConfigError, match="CLERK_TRANSCRIPT_KEY"):
        Sealer("not a key")


# --------------------------------------------------------------- a conversation, stored


@pytest.fixture(scope="module")
def server(module_database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    settings = bot_settings(module_database_url, transcript_key=KEY)
    with bot_server(settings, shared_encoder) as live:
        yield live


@pytest.fixture(scope="module")
def store(server: LiveServer, module_database_url: str) -> Iterator[Database]:
    db = Database(module_database_url)
    yield db
    db.dispose()


def stored_events(db: Database, sender: str) -> str:
    with db.session() as s:
        rows = s.scalars(
            select(ConversationEvent.data)
            .where(ConversationEvent.conversation_id == sender)
            .order_by(ConversationEvent.seq)
        ).all()
    return json.dumps(list(rows), ensure_ascii=False)


def test_an_address_given_in_one_turn_is_used_in_the_next_but_stored_sealed(
    server: LiveServer, store: Database
) -> None:
    chat = Chat(server.url)
    chat.text("please change the shipping address of order #W9300146")
    chat.text("Aarav Anderson 19031")
    summary = chat.text(f"{STREET}, Apt 4, Springfield, IL 62704")
    assert "yes" in summary
    chat.text("yes")  # the next turn reads the address back from the stored conversation
    with store.session() as s:
        order = s.get(Order, "#W9300146")
        assert order is not None
        assert order.address["address1"].startswith(STREET)
        assert order.address["zip"] == "62704"
    raw = stored_events(store, chat.conversation_id)
    assert STREET not in raw and "\u27e6address:" in raw
    opened = [Sealer(KEY).open_data(d) for d in json.loads(raw)]
    assert any(STREET in (d.get("text") or "") for d in opened)


def test_an_email_for_a_complaint_reaches_the_ticket_but_not_the_transcript(
    server: LiveServer, store: Database
) -> None:
    chat = Chat(server.url)
    chat.text("I want to file a complaint")
    chat.text("#W1633718")
    chat.text("The coffee maker arrived broken and leaks water everywhere")
    reply = chat.text(EMAIL)
    ticket_id = "T-" + reply.split("t-", 1)[1][:6]
    with store.session() as s:
        ticket = s.get(Ticket, ticket_id)
        assert ticket is not None and ticket.customer_id == "yusuf_hernandez_6467"
    assert EMAIL not in stored_events(store, chat.conversation_id)


PERSONAL = {
    "email": "jane.doe+shop@example.com",
    "phone": "+1 415 555 0147",
    "card": "4111 1111 1111 1111",
    "street": "15 Rose Terrace",
}


@pytest.fixture
def log_output() -> Iterator[io.StringIO]:
    """Every record any logger writes during the test, as a handler formats it."""
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    try:
        yield out
    finally:
        root.removeHandler(handler)
        root.setLevel(level)


def test_a_conversation_full_of_personal_data_leaves_none_in_logs_or_transcripts(
    server: LiveServer, store: Database, log_output: io.StringIO
) -> None:
    """The shopper types an email, a phone number, a card number and a street address
    (into a complaint and into small talk); the logs and the stored conversation hold
    none of them in clear. The ticket keeps the complaint for the agent, by design."""
    chat = Chat(server.url)
    chat.text(f"hi, I'm Jane, my email is {PERSONAL['email']} and my phone {PERSONAL['phone']}")
    chat.text(f"I paid with card {PERSONAL['card']}, ship to {PERSONAL['street']}, Leeds LS1 4AP")
    chat.text("I want to file a complaint")
    chat.text("#W1633718")
    chat.text(f"The kettle leaks; call {PERSONAL['phone']} or write to {PERSONAL['email']}")
    chat.text(PERSONAL["email"])
    logging.getLogger("clerk.test").warning(
        "shopper said %s", f"{PERSONAL['street']} {PERSONAL['card']}"
    )
    logs = log_output.getvalue()
    transcript = stored_events(store, chat.conversation_id)
    assert "shopper said" in logs  # the capture works
    for kind, value in PERSONAL.items():
        assert value not in logs, kind
        assert value not in transcript, kind


def test_an_export_opens_the_sealed_values_for_the_shopper(
    server: LiveServer,
    store: Database,
    module_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`clerk privacy export` with the key gives the shopper their own words back."""
    from bot.cli import main

    chat = Chat(server.url)
    chat.text("I want to file a complaint")
    chat.text("#W1633718")
    chat.text("The kettle arrived dented")
    chat.text(EMAIL)  # identifies yusuf_hernandez_6467 and is the ticket's contact
    assert EMAIL not in stored_events(store, chat.conversation_id)
    monkeypatch.setenv("CLERK_DATABASE_URL", module_database_url)
    monkeypatch.setenv("CLERK_TRANSCRIPT_KEY", KEY)
    capsys.readouterr()
    assert main(["privacy", "export", "--customer", "yusuf_hernandez_6467"]) == 0
    exported = capsys.readouterr().out
    assert EMAIL in exported and "\u27e6" not in exported


def test_the_agent_console_shows_the_sealed_values_opened(
    server: LiveServer, store: Database
) -> None:
    """What an agent needs: the console's conversation view opens sealed values (its
    desk is given the key); without the key it would show only tokens."""
    from bot.handoff.desk import HandoffDesk
    from bot.handoff.outbox import Outbox, Relay

    chat = Chat(server.url)
    chat.text(f"hello, my email is {EMAIL}")

    def desk(reveal):  # type: ignore[no-untyped-def]
        return HandoffDesk(store, Outbox(store, Relay()), notices=lambda *a, **k: "", reveal=reveal)

    opened = json.dumps(desk(Sealer(KEY).open_data).conversation(chat.conversation_id))
    sealed = json.dumps(desk(None).conversation(chat.conversation_id), ensure_ascii=False)
    assert EMAIL in opened
    assert EMAIL not in sealed and "\u27e6email:" in sealed


async def test_concurrent_shoppers_each_get_their_own_sealed_values_back(
    server: LiveServer, store: Database
) -> None:
    """16 shoppers at once (``httpx.AsyncClient`` + ``asyncio.gather``), each typing their
    own email and phone over two turns: nothing of theirs is stored in clear, and each
    conversation opens to that shopper's values only."""
    import asyncio

    import httpx

    def email(n: int) -> str:
        return f"shopper.{n}.sealed@example.com"

    async def shopper(client: httpx.AsyncClient, n: int) -> None:
        sender = f"sealed-{n}-{KEY[:6]}"
        for text in (f"hi, my email is {email(n)}", f"and my phone is +1 415 555 01{n:02d}"):
            r = await client.post(
                "/webhooks/rest/webhook", json={"sender": sender, "message": text}
            )
            assert r.status_code == 200, r.text

    async with httpx.AsyncClient(base_url=server.url, timeout=120) as client:
        await asyncio.gather(*(shopper(client, n) for n in range(16)))
    sealer = Sealer(KEY)
    for n in range(16):
        raw = stored_events(store, f"rest:sealed-{n}-{KEY[:6]}")
        assert email(n) not in raw and f"555 01{n:02d}" not in raw
        opened = json.dumps([sealer.open_data(d) for d in json.loads(raw)])
        assert email(n) in opened
        assert not any(email(m) in opened for m in range(16) if m != n)
