"""The generation layer wired into the served bot: a shopper talks to Clerk through the
REST channel while Clerk's LLM is a fake OpenAI-compatible server on 127.0.0.1 with
scripted replies; ``/health`` counts what the fact guard stopped, the tracker records who
wrote each knowledge answer (and why a model's was replaced) and the support report counts
it; ``POST /api/copy`` and ``clerk copy`` write product copy."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import select

from bot.analytics import build_report
from bot.cli import main
from bot.store.db import Database
from bot.store.models import ConversationEvent
from tests.fake_llm import FakeOpenAI, Scripted
from tests.live import Chat, LiveServer

TSHIRT = "9523456873"


@pytest.fixture(scope="module")
def fake_llm() -> Iterator[FakeOpenAI]:
    with FakeOpenAI() as server:
        yield server


@pytest.fixture(scope="module")
def server(  # type: ignore[no-untyped-def]
    tmp_path_factory: pytest.TempPathFactory, bot_settings, shared_encoder, fake_llm: FakeOpenAI
) -> Iterator[LiveServer]:
    from bot.app import build, create_app

    url = f"sqlite:///{tmp_path_factory.mktemp('gen-app') / 'clerk.db'}"
    settings = bot_settings(
        url,
        llm="openai",
        llm_base_url=fake_llm.base_url,
        llm_model_name="scripted",
        llm_timeout=10.0,
    )
    parts = build(settings, encoder=shared_encoder)
    with LiveServer(create_app(parts)) as live:
        live.database_url = url  # type: ignore[attr-defined]
        yield live


def test_a_shopper_gets_the_models_answer_only_when_the_facts_hold(
    server: LiveServer, fake_llm: FakeOpenAI
) -> None:
    fake_llm.script(
        "An order can only be cancelled while its status is pending [1].",
        Scripted("The blue Bluetooth Speaker costs $19.99 and ships free [1]."),
    )
    started = dt.datetime.now(dt.UTC)
    chat = Chat(server.url)
    replies = chat.say("can I cancel a processed order?")
    assert replies[0]["text"].startswith(
        "An order can only be cancelled while its status is pending [1]."
    )
    assert replies[0]["custom"]["citations"][0]["kind"] in ("policy", "faq")
    assert fake_llm.requests[-1]["body"]["model"] == "scripted"

    replies = chat.say("how much is the Bluetooth Speaker in blue?")
    text = replies[0]["text"]
    assert "19.99" not in text and "free" not in text  # the model's invention was stopped
    for price in ("289.69", "271.89", "305.45", "302.67"):  # the catalog's blue speakers
        assert price in text

    health = httpx.get(f"{server.url}/health").json()["generation"]
    assert health["backend"] == "openai:scripted"
    assert health["llm_answers"] == 1 and health["guard_rejections"] == 1
    assert health["fallbacks"]["guard"] == 1

    # the tracker says who wrote each answer and why the model's second one was replaced,
    # never what the guard objected to; the support report counts the intervention
    db = Database(server.database_url)  # type: ignore[attr-defined]
    try:
        with db.session() as s:
            said = s.scalars(
                select(ConversationEvent.data)
                .where(
                    ConversationEvent.conversation_id == chat.conversation_id,
                    ConversationEvent.type == "bot",
                )
                .order_by(ConversationEvent.seq)
            ).all()
            report = build_report(s, started, dt.datetime.now(dt.UTC) + dt.timedelta(seconds=1))
    finally:
        db.dispose()
    answers = [d["metadata"] for d in said if "writer" in d["metadata"]]
    assert answers == [
        {"utter_action": None, "writer": "openai:scripted", "fallback": None},
        {"utter_action": None, "writer": "extractive", "fallback": "guard"},
    ]
    assert "19.99" not in json.dumps([d["metadata"] for d in said])
    assert report.guard.knowledge_answers == 2 and report.guard.model_answers == 1
    assert report.guard.replaced == (("guard", 1),)


def test_copy_endpoint(server: LiveServer, fake_llm: FakeOpenAI) -> None:
    fake_llm.script(
        "Our crew neck T-Shirt comes in black, blue, purple and red.",
        "Now 50% off for runners, today only!",
    )
    resp = httpx.post(
        f"{server.url}/api/copy",
        json={"product_id": TSHIRT, "audience": "runners", "tone": "bold", "n": 2},
    )
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["name"] == "T-Shirt" and len(body["copies"]) == 2
    first, second = body["copies"]
    assert first["source"] == "openai:scripted" and "purple" in first["text"]
    assert second["source"] == "template" and second["fallback"] == "guard"
    assert "50%" not in second["text"] and "$46.66" in second["text"]
    for payload, status in (
        ({"product_id": "0000000000"}, 404),
        ({"product_id": TSHIRT, "audience": "people over 40"}, 400),
        ({"product_id": TSHIRT, "n": 12}, 400),
        ({"audience": "runners"}, 400),
    ):
        assert httpx.post(f"{server.url}/api/copy", json=payload).status_code == status


def test_clerk_copy_command(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("CLERK_LLM", "CLERK_LLM_MODEL", "CLERK_LLM_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    rc = main(
        [
            "--home",
            str(tmp_path),
            "--config",
            str(tmp_path / "none.yml"),
            "copy",
            "--product",
            TSHIRT,
            "--audience",
            "busy parents",
            "--tone",
            "premium",
            "--n",
            "2",
        ]
    )
    out = capsys.readouterr().out
    assert rc == 0
    assert "T-Shirt (product 9523456873), for busy parents" in out
    assert "1. [template] Discover the T-Shirt, made for busy parents" in out
    assert "2. [template] Discover the T-Shirt, priced from $46.66 to $54.84" in out
    assert main(["--home", str(tmp_path), "copy", "--product", "42"]) == 2
