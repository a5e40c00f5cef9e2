"""A bilingual store answers each shopper in the language they write in.

Each message's language (``bot.lang.detect_language``) is kept in the built-in ``language``
slot, set by a ``SlotSet`` only when it changes; the domain's variants conditioned on it
choose the words. A small bilingual store runs in process through ``DialogueManager`` with
a scripted NLU, its stored events read back from the database; the demo project, every
response given zh/en variants, is built by ``bot.app.build`` with its trained NLU.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.actions import InProcessActionRunner
from bot.dialogue.domain import Domain
from bot.dialogue.manager import DialogueManager
from bot.dialogue.policy import FlowPolicy
from bot.dialogue.responses import choose_variants, default_responses
from bot.dialogue.stories import DialogueData
from bot.lang import Language
from bot.store.db import Database
from bot.types import ConversationId, Message
from tests.test_actions import Parse, ScriptedParser
from tests.test_feedback import stored

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{\w+\}")
MARKER = re.compile(r"«utter_\w+ (en|zh)»")
EN = [{"type": "slot", "name": "language", "value": "en"}]
ZH = [{"type": "slot", "name": "language", "value": "zh"}]

BILINGUAL = {
    "version": "3.1",
    "intents": ["greet", "order_status", "goodbye"],
    "entities": ["order_id"],
    "responses": {
        "utter_greet": [
            {"text": "Hi! How can I help?", "condition": EN},
            {"text": "您好！有什么可以帮您？", "condition": ZH},
        ],
        "utter_order_status": [
            {"text": "Let me look that order up.", "condition": EN},
            {"text": "我帮您查一下这个订单。", "condition": ZH},
        ],
        # no zh variant: the plain one is the fallback in either language
        "utter_goodbye": [{"text": "Bye!"}],
    },
}

RULES = """\
version: "3.1"
rules:
- rule: greet
  steps:
  - intent: greet
  - action: utter_greet
- rule: order
  steps:
  - intent: order_status
  - action: utter_order_status
- rule: bye
  steps:
  - intent: goodbye
  - action: utter_goodbye
"""

SCRIPT = {
    "hello": "greet",
    "hi there": "greet",
    "你好": "greet",
    "我的订单到哪了": "order_status",
    "where is my order": "order_status",
    "#W2611340": "order_status",
    "2611340": "order_status",
    "bye": "goodbye",
    "再见": "goodbye",
}


def _manager(tmp_path: Path, db: Database, domain: dict[str, Any], language: Language) -> Any:
    (tmp_path / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True))
    data = tmp_path / "data"
    data.mkdir(exist_ok=True)
    (data / "rules.yml").write_text(RULES)
    parser = ScriptedParser()
    for text, intent in SCRIPT.items():
        parser.script(text, Parse(intent))
    return DialogueManager(
        domain=Domain.load(tmp_path / "domain.yml"),
        policy=FlowPolicy(DialogueData.load(data)),
        nlu=parser,
        actions=InProcessActionRunner([], db=db),
        db=db,
        feedback_after=(),
        language=language,
    )


class Shop:
    """One conversation with the store: ``say`` returns the texts of the bot's replies."""

    def __init__(self, manager: DialogueManager, name: str) -> None:
        self.manager = manager
        self.cid = ConversationId(f"rest:{name}")

    async def say(self, text: str) -> list[str | None]:
        replies = await self.manager.handle(
            Message(conversation_id=self.cid, text=text, channel="rest")
        )
        return [r.text for r in replies]

    def language_events(self, db: Database) -> list[Any]:
        return [
            e["value"]
            for e in stored(db, self.cid)
            if e["event"] == "slot" and e["name"] == "language"
        ]


@pytest.fixture
def bilingual_en(tmp_path: Path, db: Database) -> Iterator[DialogueManager]:
    manager = _manager(tmp_path, db, BILINGUAL, "en")
    yield manager
    manager.close()


async def test_each_shopper_is_answered_in_the_language_they_write(
    bilingual_en: DialogueManager, db: Database
) -> None:
    english, chinese = Shop(bilingual_en, "en"), Shop(bilingual_en, "zh")
    assert await english.say("hello") == ["Hi! How can I help?"]
    assert await chinese.say("你好") == ["您好！有什么可以帮您？"]
    assert await chinese.say("我的订单到哪了") == ["我帮您查一下这个订单。"]
    assert await english.say("where is my order") == ["Let me look that order up."]
    # no zh variant: the variant without a condition is the fallback
    assert await chinese.say("再见") == ["Bye!"]
    # the English conversation is in the store's language already: no event at all
    assert english.language_events(db) == []
    assert chinese.language_events(db) == ["zh"]


async def test_a_message_without_letters_keeps_the_conversations_language(
    bilingual_en: DialogueManager, db: Database
) -> None:
    shop = Shop(bilingual_en, "switching")
    assert await shop.say("你好") == ["您好！有什么可以帮您？"]
    assert await shop.say("#W2611340") == ["我帮您查一下这个订单。"]  # an order id alone
    assert await shop.say("hi there") == ["Hi! How can I help?"]
    assert await shop.say("2611340") == ["Let me look that order up."]
    assert await shop.say("我的订单到哪了") == ["我帮您查一下这个订单。"]
    # once per change, right after the shopper's message that changed it
    assert shop.language_events(db) == ["zh", "en", "zh"]
    events = stored(db, shop.cid)
    for i, e in enumerate(events):
        if e["event"] == "slot" and e["name"] == "language":
            assert events[i - 1]["event"] == "user"


async def test_a_chinese_store_starts_in_chinese(tmp_path: Path, db: Database) -> None:
    manager = _manager(tmp_path, db, BILINGUAL, "zh")
    try:
        shop = Shop(manager, "zh-store")
        assert await shop.say("2611340") == ["我帮您查一下这个订单。"]  # no letters: the store's
        assert await shop.say("你好") == ["您好！有什么可以帮您？"]
        assert shop.language_events(db) == []
        assert await shop.say("hello") == ["Hi! How can I help?"]
        assert shop.language_events(db) == ["en"]
    finally:
        manager.close()


async def test_an_english_store_without_zh_variants_is_unchanged(
    tmp_path: Path, db: Database
) -> None:
    plain = {
        **BILINGUAL,
        "responses": {
            "utter_greet": [{"text": "Hi! How can I help?"}],
            "utter_order_status": [{"text": "Let me look that order up."}],
            "utter_goodbye": [{"text": "Bye!"}],
        },
    }
    manager = _manager(tmp_path, db, plain, "en")
    try:
        shop = Shop(manager, "plain")
        assert await shop.say("hello") == ["Hi! How can I help?"]
        assert await shop.say("where is my order") == ["Let me look that order up."]
        assert await shop.say("bye") == ["Bye!"]
        assert shop.language_events(db) == []
        # a Chinese shopper still gets the store's only words
        other = Shop(manager, "plain-zh")
        assert await other.say("你好") == ["Hi! How can I help?"]
        assert other.language_events(db) == ["zh"]
    finally:
        manager.close()


def test_language_is_a_built_in_slot_a_rasa_domain_need_not_declare() -> None:
    domain = Domain.from_dict({"version": "3.1", "intents": ["greet"]})
    assert domain.slots["language"].influence_conversation is False
    # the domain an action server gets is the project's own
    assert "language" not in domain.as_rasa_dict()["slots"]
    declared = Domain.from_dict(
        {
            "version": "3.1",
            "slots": {
                "language": {
                    "type": "categorical",
                    "values": ["en", "zh"],
                    "initial_value": "zh",
                    "mappings": [{"type": "custom"}],
                }
            },
        }
    )
    assert declared.slots["language"].type == "categorical"
    assert declared.initial_slots()["language"] == "zh"
    assert declared.as_rasa_dict()["slots"]["language"]["type"] == "categorical"


def test_the_variant_of_the_shoppers_language_beats_the_plain_fallback() -> None:
    variants = [
        {"text": "plain"},
        {"text": "Hi", "condition": EN},
        {"text": "您好", "condition": ZH},
    ]
    for language, text in (("en", "Hi"), ("zh", "您好"), (None, "plain")):
        chosen = choose_variants(variants, {"language": language}, "rest")
        assert [v["text"] for v in chosen] == [text]


# ----------------------------------------------------------------- the demo store, served


def _bilingual(name: str, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every response in two languages, told apart by a marker: ``«name en»``, ``«name zh»``
    (the first variant's placeholders, buttons and payload kept)."""
    first = dict(variants[0]) if variants else {}
    first.pop("channel", None)
    holes = " ".join(PLACEHOLDER.findall(str(first.get("text") or "")))
    return [
        {**first, "text": f"«{name} {lang}» {holes}".strip(), "condition": cond}
        for lang, cond in (("en", EN), ("zh", ZH))
    ]


@pytest.fixture(scope="module")
def bilingual_demo(
    tmp_path_factory: pytest.TempPathFactory, module_database_url: str, bot_settings, shared_encoder
) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    """The demo project (its trained NLU, its knowledge) with every response given an
    English and a Chinese variant, built by ``bot.app.build`` as ``clerk serve`` does."""
    from bot.app import build

    root = tmp_path_factory.mktemp("bilingual")
    folder = root / "training_data"
    shutil.copytree(ROOT / "training_data", folder)
    (root / "knowledge").symlink_to(ROOT / "knowledge", target_is_directory=True)
    domain = yaml.safe_load((folder / "domain.yml").read_text())
    every = {**default_responses(), **domain["responses"]}
    domain["responses"] = {name: _bilingual(name, vs) for name, vs in every.items()}
    (folder / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True))
    settings = dataclasses.replace(bot_settings(module_database_url), project_dir=root)
    assert settings.language == "en"
    parts = build(settings, encoder=shared_encoder)
    yield parts
    parts.manager.close()
    parts.db.dispose()


def test_the_served_demo_store_answers_in_the_shoppers_language(bilingual_demo: Any) -> None:
    """Whatever the English NLU makes of a Chinese message (here: out of scope, so a
    handoff), every word the shopper gets is the Chinese variant's, engine messages too."""
    shop = Shop(bilingual_demo.manager, "served")

    def markers(text: str) -> set[str]:
        replies = asyncio.run(shop.say(text))
        return {m.group(1) for t in replies for m in MARKER.finditer(t or "")}

    assert markers("hello there") == {"en"}
    assert markers("你好") == {"zh"}
    assert markers("#W6893533") <= {"zh"}  # an order id alone keeps Chinese
    assert markers("bye") == {"en"}
    assert shop.language_events(bilingual_demo.db) == ["zh", "en"]
