"""A store rewords its whole bot in ``domain.yml``.

The conversation tests run the demo project with every response (the demo domain's and
Clerk's shipped defaults) rewritten as ``«<name> #k» {same placeholders}``; every reply a
shopper gets must then be made of rewritten texts and values only. Unit tests cover the
rendering rules: variations, buttons, channel variants, conditions, missing values.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import random
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.dialogue.domain import Domain
from bot.dialogue.responses import default_responses
from bot.types import WORD_PHRASES, Message, Reply

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"\{\w+\}")
MARKER = re.compile(r"«utter_\w+ #\d+»")


# ------------------------------------------------------------------------- rewriting


def _rewrite(name: str, variants: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for k, variant in enumerate(variants):
        new = dict(variant)
        holes = " ".join(PLACEHOLDER.findall(str(variant.get("text") or "")))
        new["text"] = f"«{name} #{k}» {holes}".strip()
        new["buttons"] = [
            {**b, "title": f"«{name} #{k}» {i}"} for i, b in enumerate(variant.get("buttons") or [])
        ]
        out.append(new)
    return out


def _original_sentences() -> set[str]:
    """Fragments of every original text (4+ words between placeholders and line breaks)."""
    demo = yaml.safe_load((ROOT / "training_data" / "domain.yml").read_text())["responses"]
    texts = [
        str(v.get("text") or "")
        for vs in [*demo.values(), *default_responses().values()]
        for v in vs
    ]
    out = set()
    for text in texts:
        for piece in re.split(r"\{\w+\}|\n|•", text):
            piece = piece.strip(" .,;:—()")
            if len(piece.split()) >= 4:
                out.add(piece.lower())
    return out


@pytest.fixture(scope="module")
def reworded_project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the demo project (its knowledge shared) with every response rewritten."""
    root = tmp_path_factory.mktemp("reworded")
    folder = root / "training_data"
    shutil.copytree(ROOT / "training_data", folder)
    (root / "knowledge").symlink_to(ROOT / "knowledge", target_is_directory=True)
    domain = yaml.safe_load((folder / "domain.yml").read_text())
    every = {**default_responses(), **domain["responses"]}
    domain["responses"] = {name: _rewrite(name, vs) for name, vs in every.items()}
    (folder / "domain.yml").write_text(yaml.safe_dump(domain, allow_unicode=True))
    return root


@pytest.fixture(scope="module")
def bot(
    reworded_project: Path, module_database_url: str, bot_settings, shared_encoder
) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    from bot.app import build

    settings = dataclasses.replace(bot_settings(module_database_url), project_dir=reworded_project)
    parts = build(settings, encoder=shared_encoder)
    yield parts
    parts.manager.close()
    parts.db.dispose()


class Shopper:
    def __init__(self, parts: Any, sender: str) -> None:
        self.parts = parts
        self.cid = f"rest:{sender}"
        self.replies: list[Reply] = []

    def say(self, text: str) -> list[Reply]:
        message = Message(conversation_id=self.cid, text=text, channel="rest")  # type: ignore[arg-type]
        replies = asyncio.run(self.parts.manager.handle(message))
        self.replies.extend(replies)
        return replies


SCRIPT = [
    ("greeting", ["hello there"]),
    ("order status", ["where is my order #W6893533?", "ivan.santos3158@example.com"]),
    (
        "cancel",
        [
            "I'd like to cancel order #W8770097",
            "ivan.santos3158@example.com",
            "I ordered it by mistake",
            "yes",
        ],
    ),
    (
        "return",
        [
            "I want to return something from order #W4316152",
            "aarav.anderson9752@example.com",
            "all of them",
            "yes please",
        ],
    ),
    (
        "exchange",
        [
            "I need to exchange the hiking boots from order #W1304208",
            "yara.ito7353@example.com",
            "size 9 in leather",
            "yes",
        ],
    ),
    (
        "address",
        [
            "please change the shipping address of order #W9300146",
            "Aarav Anderson 19031",
            "12 Main Street, Apt 4, Springfield, IL 62704",
            "yes",
        ],
    ),
    (
        "complaint",
        [
            "I want to file a complaint",
            "#W1633718",
            "The coffee maker arrived broken and leaks water everywhere",
            "yusuf.hernandez6086@example.com",
        ],
    ),
    ("ticket status", ["what's the status of ticket T-000000?"]),
    ("recommendations", ["can you recommend something?"]),
    ("product question", ["how much is the T-Shirt in blue size M?"]),
    ("policy question", ["how long do I have to return something?"]),
    ("unanswerable question", ["do you sell rocket fuel for lunar landers?"]),
    ("fallback and offer", ["blorf snargle wib", "qwzx vlemp krrpt", "yes"]),
    ("handoff request", ["I want to talk to a real person"]),
    ("empty", ["   "]),
    ("goodbye", ["bye"]),
]


@pytest.mark.parametrize(("topic", "lines"), SCRIPT, ids=[t for t, _ in SCRIPT])
def test_every_reply_uses_the_stores_wording(bot: Any, topic: str, lines: list[str]) -> None:
    shopper = Shopper(bot, f"wording-{topic.replace(' ', '-')}")
    for line in lines:
        shopper.say(line)
    assert shopper.replies, topic
    originals = _original_sentences()
    for reply in shopper.replies:
        text = reply.text or ""
        assert MARKER.search(text), f"{topic}: {text!r} is not the store's wording"
        lowered = text.lower()
        leaked = [s for s in originals if s in lowered]
        assert not leaked, f"{topic}: {text!r} holds original wording {leaked[:2]}"
        for button in reply.buttons:
            if not button.payload.startswith("/inform"):  # data choices are values
                assert MARKER.search(button.title), button


def test_the_request_for_a_rating_and_the_thanks_are_the_stores_words(bot: Any) -> None:
    shopper = Shopper(bot, "wording-feedback")
    request = shopper.say("bye")[-1]
    assert request.text == "«utter_ask_feedback #0»"
    assert request.custom is not None and request.custom["type"] == "feedback_request"
    assert [r["label"] for r in request.custom["ratings"]] == [
        "«utter_feedback_up #0»",
        "«utter_feedback_down #0»",
    ]
    record = bot.manager.record_feedback(shopper.cid, "up", channel="rest")
    [thanks] = asyncio.run(record)
    assert thanks.text == "«utter_thanks_for_feedback #0»"


KNOWLEDGE_QUESTIONS = [
    ("price", "how much is the T-Shirt in blue size M?", "product"),
    ("options", "what colours does the T-Shirt come in?", "product"),
    ("cheapest", "what's the cheapest laptop?", "product"),
    ("no such variant", "do you have the T-Shirt in green?", "product"),
    ("policy", "how long do I have to return something?", None),
]


def _catalog_words() -> set[str]:
    """Every word of the demo catalog's data: product names, option names and values."""
    products = json.loads((ROOT / "knowledge" / "catalog" / "products.json").read_text())
    text = " ".join(
        " ".join(
            [
                p["name"],
                *(f"{k} {x}" for v in p["variants"].values() for k, x in v["options"].items()),
            ]
        )
        for p in products.values()
    )
    return set(re.findall(r"[a-z]+", text.lower()))


@pytest.mark.parametrize(
    ("topic", "question", "kind"), KNOWLEDGE_QUESTIONS, ids=[t for t, _, _ in KNOWLEDGE_QUESTIONS]
)
def test_knowledge_answers_are_store_data_in_the_stores_wording(
    bot: Any, topic: str, question: str, kind: str | None
) -> None:
    """A grounded answer is the store's data (catalog facts, quoted passages, their titles
    and files) joined by the domain's responses: once those are taken out, no word is left."""
    [reply] = Shopper(bot, f"wording-knowledge-{topic.replace(' ', '-')}").say(question)
    custom = reply.custom or {}
    assert custom.get("type") == "answer" and custom.get("grounded"), reply
    citations = custom["citations"]
    assert citations and (kind is None or citations[0]["kind"] == kind), citations
    text = reply.text or ""
    assert MARKER.search(text), text
    rest = MARKER.sub(" ", text)
    for c in citations:
        quoted = [] if c["kind"] == "product" else [c["text"]]  # a product's is the answer
        for data in [*quoted, c["title"], c["source"]]:
            rest = rest.replace(data, " ")
    left = set(re.findall(r"[a-z]+", rest.lower())) - _catalog_words()
    assert not left, f"{topic}: {text!r} has words of its own: {sorted(left)}"


def test_ticket_status_shows_values_in_the_stores_wording(bot: Any) -> None:
    shopper = Shopper(bot, "wording-ticket")
    for line in SCRIPT[6][1]:
        replies = shopper.say(line)
    ticket = re.search(r"T-\d{6}", " ".join(r.text or "" for r in replies))
    assert ticket is not None
    [status] = shopper.say(f"what's the status of ticket {ticket.group()}?")
    assert status.text is not None
    assert status.text.startswith("«utter_ticket_status #0»") and ticket.group() in status.text
    assert "None" not in status.text and "{" not in status.text


# ------------------------------------------------------------------------- rendering


def _domain(responses: dict[str, Any]) -> Domain:
    return Domain.from_dict({"slots": {"tier": {"type": "text"}}, "responses": responses})


def test_variations_are_chosen_at_random() -> None:
    domain = _domain({"utter_hi": [{"text": "Hi"}, {"text": "Hello"}, {"text": "Hey"}]})
    rng = random.Random(7)
    seen = {domain.render("utter_hi", {}, rng=rng)[0].text for _ in range(60)}
    assert seen == {"Hi", "Hello", "Hey"}


def test_buttons_fill_titles_and_keep_json_payloads() -> None:
    domain = _domain(
        {
            "utter_pick": [
                {
                    "text": "Pick {what}",
                    "buttons": [{"title": "Take {what}", "payload": '/inform{"item": "{item}"}'}],
                }
            ]
        }
    )
    [reply] = domain.render("utter_pick", {}, {"what": "a hat", "item": "h1"})
    assert reply.text == "Pick a hat"
    assert reply.buttons[0].title == "Take a hat"
    assert reply.buttons[0].payload == '/inform{"item": "h1"}'


def test_a_channel_variant_is_preferred_on_its_channel() -> None:
    domain = _domain(
        {"utter_hi": [{"text": "Hi"}, {"text": "Hi on Telegram", "channel": "telegram"}]}
    )
    assert domain.render("utter_hi", {}, channel="telegram")[0].text == "Hi on Telegram"
    assert domain.render("utter_hi", {}, channel="rest")[0].text == "Hi"
    assert domain.render("utter_hi", {})[0].text == "Hi"


def test_conditions_pick_the_variant_whose_slots_match() -> None:
    domain = _domain(
        {
            "utter_hi": [
                {"text": "Hi"},
                {
                    "text": "Welcome back, gold member",
                    "condition": [{"type": "slot", "name": "tier", "value": "gold"}],
                },
                {
                    "text": "Gold on Telegram",
                    "channel": "telegram",
                    "condition": [{"type": "slot", "name": "tier", "value": "gold"}],
                },
            ]
        }
    )
    assert domain.render("utter_hi", {"tier": "gold"})[0].text == "Welcome back, gold member"
    assert domain.render("utter_hi", {"tier": "silver"})[0].text == "Hi"
    assert domain.render("utter_hi", {"tier": "gold"}, channel="telegram")[0].text == (
        "Gold on Telegram"
    )
    assert domain.render("utter_hi", {"tier": "silver"}, channel="telegram")[0].text == "Hi"


def test_missing_values_show_nothing_and_values_are_never_reprs() -> None:
    domain = _domain({"utter_x": [{"text": "A {missing} B {none} C {items} D {address} E"}]})
    [reply] = domain.render(
        "utter_x", {"none": None}, {"items": ["a", "b"], "address": {"city": "Oslo", "zip": "0150"}}
    )
    assert reply.text == "A  B  C a, b D Oslo, 0150 E"


def test_phrases_are_responses_inside_responses() -> None:
    domain = _domain(
        {
            "utter_refund": [{"text": "{amount} back to {payment}."}],
            "utter_card": [{"text": "your card"}],
            "utter_done": [{"text": "Done. {refunds}"}],
        }
    )
    phrase = {"response": "utter_refund", "amount": "$5.00", "payment": {"response": "utter_card"}}
    [reply] = domain.render("utter_done", {}, {"refunds": [phrase, phrase]})
    assert reply.text == "Done. $5.00 back to your card. $5.00 back to your card."


def test_an_actions_message_fills_the_response_with_its_values() -> None:
    domain = _domain(
        {
            "utter_status": [
                {
                    "text": "Order {order_id} is {tier}.",
                    "buttons": [{"title": "Help", "payload": "/help"}],
                }
            ]
        }
    )
    message = {
        "text": None,
        "buttons": [{"title": "#W1", "payload": "/inform"}],
        "elements": [],
        "custom": {},
        "template": "utter_status",
        "response": "utter_status",
        "image": None,
        "attachment": None,
        "order_id": "#W1",
    }
    [reply] = domain.render_message(message, {"tier": "pending"})
    assert reply.text == "Order #W1 is pending."
    assert [b.title for b in reply.buttons] == ["Help", "#W1"]


def test_an_actions_own_payload_passes_through_unchanged() -> None:
    """A store action's poll has "response" keys of its own: no phrase is read into it."""
    domain = _domain({"utter_yes": [{"text": "Sure"}]})
    poll = {"type": "poll", "choices": [{"title": "Yes", "response": "yes"}, {"response": "x"}]}
    [reply] = domain.render_message({"text": "Happy?", "custom": poll}, {})
    assert reply.custom == poll
    # Clerk's own cards ask for their phrases to be worded, and lose the marker
    cards = {"type": "product_cards", "products": [{"reason": {"response": "utter_yes"}}]}
    [reply] = domain.render_message({"custom": {**cards, WORD_PHRASES: True}}, {})
    assert reply.custom == {"type": "product_cards", "products": [{"reason": "Sure"}]}


def test_the_projects_responses_replace_the_defaults_by_name() -> None:
    domain = _domain({"utter_default": [{"text": "Pardon?"}]})
    assert domain.render("utter_default", {})[0].text == "Pardon?"
    assert domain.render("utter_order_unknown", {})[0].text  # a default still there


def test_clerk_ships_a_default_for_every_word_of_a_knowledge_answer() -> None:
    from bot.generation.wording import RESPONSES

    assert set(RESPONSES) <= set(default_responses())


# ------------------------------------------------------------------ the chat surfaces' words


@pytest.fixture(scope="module")
def euro_channels(bot: Any) -> dict[str, Any]:
    """The reworded bot's widget and Telegram channels, for a store selling in euros."""
    from bot.app import web_and_telegram_channels

    settings = dataclasses.replace(
        bot.settings,
        currency="EUR",
        telegram_token="1:x",
        telegram_base_url="http://127.0.0.1:9",
        channels=("telegram",),
    )
    channels = web_and_telegram_channels(settings, bot.manager, bot.db, bot.domain)
    return {channel.name: channel for channel in channels}


def _baked(script: str, name: str) -> Any:
    return json.loads(re.search(rf"var {name} = (\{{.*?\}});", script).group(1))


def test_the_widget_script_carries_the_stores_words_and_currency(euro_channels: Any) -> None:
    from starlette.applications import Starlette
    from starlette.testclient import TestClient

    from bot.channels.widget import WIDGET_STRINGS

    with TestClient(Starlette(routes=euro_channels["web"].routes())) as client:
        script = client.get("/widget/clerk.js").text
    wording = _baked(script, "WORDING")
    assert wording["currency"] == "EUR"
    assert set(wording["strings"]) == set(WIDGET_STRINGS)
    for key, holes in WIDGET_STRINGS.items():  # the widget fills the holes in the browser
        expected = " ".join([f"«utter_widget_{key} #0»", *(f"{{{h}}}" for h in holes)])
        assert wording["strings"][key] == expected
    assert _baked(script, "DEFAULTS")["greeting"] == "«utter_widget_greeting #0»"


def test_the_greeting_setting_wins_over_the_domain(bot: Any) -> None:
    from bot.app import web_and_telegram_channels

    settings = dataclasses.replace(bot.settings, widget_greeting="Hoi!", channels=())
    [widget] = web_and_telegram_channels(settings, bot.manager, bot.db, bot.domain)
    assert widget.look.greeting == "Hoi!"


def test_telegram_cards_use_the_stores_words_and_currency(euro_channels: Any) -> None:
    from bot.channels.telegram import render_messages

    channel = euro_channels["telegram"]
    reply = Reply(
        text="«utter_x #0»",
        custom={
            "type": "product_cards",
            "products": [
                {
                    "name": "Tea Kettle",
                    "price": 1024.1,
                    "available": True,
                    "options": {"color": "red"},
                },
                {"price": 0.29, "available": False},
            ],
        },
    )
    [message] = render_messages(reply, currency=channel.currency, cards=channel.cards)
    assert "Tea Kettle\ncolor: red\n€1,024.10 · «utter_card_in_stock #0»" in message.plain
    assert "«utter_card_product #0»\n€0.29 · «utter_card_out_of_stock #0»" in message.plain


def test_telegrams_own_notices_use_the_stores_words(euro_channels: Any) -> None:
    from bot.channels.telegram import render_messages

    wording = euro_channels["telegram"].wording
    assert wording.text_only.startswith("«utter_telegram_text_only #0»")
    assert wording.try_again.startswith("«utter_telegram_try_again #0»")
    assert wording.expired_button.startswith("«utter_telegram_expired_button #0»")
    assert wording.group_notice.startswith("«utter_telegram_group_notice #0» {bot}")
    assert wording.feedback_refused.startswith("«utter_feedback_refused #0»")
    reply = Reply(text="«utter_x #0»", image="https://shop.example/kettle.png")
    [message] = render_messages(reply, currency="EUR", cards=euro_channels["telegram"].cards)
    assert "«utter_image_link #0»" in message.plain


def test_shell_cards_use_the_stores_words(bot: Any) -> None:
    from bot.channels.base import CardWording, domain_say
    from bot.channels.shell import render_reply

    cards = CardWording.from_responses(domain_say(bot.domain, "shell"))
    reply = Reply(
        text="«utter_x #0»",
        custom={"type": "product_cards", "products": [{"price": 5, "available": True}]},
    )
    assert render_reply(reply, "EUR", cards).endswith(
        "• «utter_card_product #0» () — €5.00 — «utter_card_in_stock #0»"
    )


def test_clerk_ships_a_default_for_every_word_of_the_chat_surfaces() -> None:
    """Each of the widget's words is a default response, and the script's fallback for a
    key the server does not send is that same default."""
    from bot.channels.base import CardWording, clerk_say
    from bot.channels.widget import WEB_DIR, WIDGET_STRINGS, WidgetWording

    names = {f"utter_widget_{key}" for key in WIDGET_STRINGS} | {
        "utter_widget_greeting",
        "utter_card_in_stock",
        "utter_card_out_of_stock",
        "utter_card_product",
        "utter_image_link",
        "utter_telegram_text_only",
        "utter_telegram_try_again",
        "utter_telegram_expired_button",
        "utter_telegram_group_notice",
        "utter_ask_feedback",
        "utter_feedback_up",
        "utter_feedback_down",
        "utter_thanks_for_feedback",
        "utter_feedback_refused",
    }
    assert names <= set(default_responses())
    script = (WEB_DIR / "static" / "clerk-widget.js").read_text(encoding="utf-8")
    baked = re.search(r"var FALLBACK = (\{.*?\});", script, re.DOTALL)
    fallback = json.loads(baked.group(1))
    assert fallback == dict(WidgetWording.from_responses(clerk_say("web")).strings)
    assert CardWording.clerk() == CardWording("in stock", "out of stock", "Product")
