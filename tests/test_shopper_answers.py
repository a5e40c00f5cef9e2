"""Answers a shopper can read: agent-facing policy text rewritten for shoppers at ingest,
yes/no questions answered yes or no first (the same rule the fact guard holds a model to),
and FAQ answers preferred where they cover the question."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bot.app import answer_wording
from bot.generation.extractive import ExtractiveWriter
from bot.generation.yesno import decide, is_yes_no_question, reply_polarity
from bot.knowledge.answerer import KnowledgeAnswerer
from bot.knowledge.audience import addresses_agents, rewrite_sentence, speaks_to_agents
from bot.knowledge.catalog import CatalogResolver
from bot.knowledge.index import KnowledgeIndex
from bot.knowledge.passages import build_passages, policy_passages
from bot.knowledge.retriever import HybridRetriever

WORDING = answer_wording()

# ----------------------------------------------------------------- agent-facing policies

# Written like another store's agent handbook, not like the demo's.
HANDBOOK = """# Support handbook

As a support agent, you help customers with returns and warranty claims.

## Returns

- A customer may return an unworn item within 45 days of delivery, and you must check the
  delivery date before taking the action.
- The customer needs to send the item back in its original box. Remember to remind the
  customer to include the packing slip.
- Refunds reach the customer's card within 10 business days.

## Tools

- Call the refund tool only once per order, and never respond to the customer while a
  tool call is running.
"""

AGENT_WORDS = re.compile(
    r"\bthe (?:user|customer)\b|\byou (?:should|must) check\b|\btool\b|\bremember to\b"
    r"|\bas an? [\w ]*agent\b|\bdatabase\b",
    re.IGNORECASE,
)


def test_an_agent_handbook_is_rewritten_for_shoppers_keeping_every_fact() -> None:
    assert speaks_to_agents(HANDBOOK)
    passages = policy_passages(HANDBOOK, "policies/handbook.md")
    text = "\n".join(p.text for p in passages)
    assert not AGENT_WORDS.search(text), text
    returns = next(p for p in passages if p.title.endswith("Returns"))
    assert "You may return an unworn item within 45 days of delivery." in returns.text
    assert "You need to send the item back in its original box." in returns.text
    assert "Refunds reach your card within 10 business days." in returns.text
    assert returns.meta["original"].startswith("- A customer may return")
    # a section holding only instructions for the agent is no passage at all
    assert not any(p.title.endswith("Tools") for p in passages)
    assert passages[0].text == "We help you with returns and warranty claims."


@pytest.mark.parametrize(
    ("sentence", "expected"),
    [
        (
            (
                "An order can only be cancelled if its status is 'pending', and you should check "
                "its status before taking the action."
            ),
            "An order can only be cancelled if its status is 'pending'.",
        ),
        (
            "The user needs to confirm the order id and the reason for cancellation.",
            "You need to confirm the order id and the reason for cancellation.",
        ),
        (
            "If the user provides a gift card, it must have enough balance to cover the total.",
            "If you provide a gift card, it must have enough balance to cover the total.",
        ),
        (
            (
                "After user confirmation, the user will receive an email regarding how to return "
                "items."
            ),
            "After your confirmation, you will receive an email regarding how to return items.",
        ),
        (
            "You should at most make one tool call at a time.",
            "",
        ),
        (
            "The agent will not be able to modify the order anymore.",
            "We will not be able to modify the order anymore.",
        ),
        (
            "Customers can pay with PayPal; their refunds go back to PayPal.",
            "You can pay with PayPal; your refunds go back to PayPal.",
        ),
    ],
)
def test_agent_sentences_become_shopper_sentences(sentence: str, expected: str) -> None:
    assert rewrite_sentence(sentence) == expected


def test_a_shopper_policy_speaking_of_customers_keeps_its_you() -> None:
    """Third-person "customers" in a policy written for shoppers become "you"; its own
    "you" is the shopper already and stays (it is not an agent)."""
    text = (
        "# Returns\n\nYou can return items within 30 days. The customer pays the return "
        "shipping. Customers outside the US send items to our EU warehouse. A customer who "
        "paid by gift card is refunded to the card, the rest to the customer's original payment "
        "method.\n"
    )
    assert speaks_to_agents(text) and not addresses_agents(text)
    (passage,) = policy_passages(text, "policies/returns.md")
    assert passage.text.startswith("You can return items within 30 days. You pay the return")
    assert "We can return" not in passage.text
    assert addresses_agents(HANDBOOK)


def test_shopper_facing_text_is_stored_as_written(knowledge_dir: Path) -> None:
    faq = (knowledge_dir / "faq.md").read_text()
    assert not speaks_to_agents(faq)
    shopper_policy = "# Returns\n\nYou can return items within 30 days. We refund you in 5 days.\n"
    assert not speaks_to_agents(shopper_policy)
    (passage,) = policy_passages(shopper_policy, "policies/returns.md")
    assert passage.text == "You can return items within 30 days. We refund you in 5 days."
    assert "original" not in passage.meta


def test_the_demo_policy_keeps_its_rules_for_shoppers(knowledge_dir: Path) -> None:
    """Every number, duration and quoted status of a kept sentence survives the rewrite."""
    passages = [p for p in build_passages(knowledge_dir) if p.kind == "policy"]
    assert passages and all(p.meta.get("original") for p in passages)
    for p in passages:
        assert not AGENT_WORDS.search(p.text), p.text
        for quoted in re.findall(r"'[a-z ]+'", p.text):
            assert quoted in p.meta["original"]
    text = "\n".join(p.text for p in passages)
    for fact in ("5 to 7 business days", "'pending'", "'delivered'", "'exchange requested'"):
        assert fact in text
    assert not speaks_to_agents(text)  # so the rewritten text would be stored as it is


# --------------------------------------------------------------------------- yes or no

STORE = [
    ("Can I cancel my order?", ('Yes, as long as it is still "pending". Once an order has '
     "shipped it can no longer be cancelled.")),
    ("Returns", ("You can return an item within 45 days of delivery, only if its status is "
     "'delivered'.")),
    ("Do you ship abroad?", "Not at the moment. We deliver to addresses in Germany only."),
    ("Payment", ("You can pay an order with one payment method. Shipping is free on every "
     "order.")),
    ("Changing an order", "Item changes can be made only once per order."),
]  # fmt: skip


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("Can I cancel my order?", True),
        ("can I cancel an order that is already processed?", False),
        ("Can I cancel an order that has already shipped?", False),
        ("Can I cancel a pending order?", True),
        ("Can I return an item after 60 days?", False),
        ("Can I return something after 2 weeks?", True),
        ("Can I return a pending order?", False),
        ("Do you ship to Austria?", False),
        ("Do you ship to Germany?", True),
        ("Do you ship outside Germany?", False),
        ("Can I split the payment over two payment methods?", False),
        ("Is shipping free?", True),
        ("Can I change the items in my order twice?", False),
        ("Do you sell gift cards?", None),  # nothing settles it: neither yes nor no
        ("How long do I have to return an item?", None),  # not a yes/no question
        ("Can you tell me how returns work?", None),
    ],
)
def test_yes_or_no_comes_from_the_store_words(question: str, expected: bool | None) -> None:
    found = decide(question, STORE)
    assert (None if found is None else found.yes) is expected


def test_replies_and_yes_no_questions_are_recognised() -> None:
    assert is_yes_no_question("Is the blue M T-shirt in stock?")
    assert not is_yes_no_question("Can you explain the return policy?")
    assert reply_polarity("No, only pending orders can be cancelled [1].") is False
    assert reply_polarity("Not at the moment.") is False
    assert reply_polarity("Yes, as long as it is pending.") is True
    assert reply_polarity("Nothing is charged for shipping.") is None


# ------------------------------------------------------------------ extractive answers


@pytest.fixture(scope="module")
def answerer(prepared_home, knowledge_dir: Path) -> KnowledgeAnswerer:  # type: ignore[no-untyped-def]
    settings, encoder = prepared_home
    retriever = HybridRetriever(KnowledgeIndex.load(settings.index_dir, encoder))
    catalog = CatalogResolver.from_json(knowledge_dir / "catalog" / "products.json")
    return KnowledgeAnswerer(retriever, ExtractiveWriter(WORDING), catalog)


@pytest.mark.parametrize(
    ("question", "opening"),
    [
        ("can I cancel an order that is already processed?", "No."),
        ("Can I cancel an order that has already shipped?", "No."),
        ("Can I cancel my order?", "Yes, as long as it is still"),
        ("Can I return a pending order?", "No."),
        ("Can I return an item after 40 days?", "No."),
        ("Do you ship to Canada?", "Not at the moment."),
        ("Is shipping free?", "Yes."),
        ("Can I pay with two payment methods?", "No."),
    ],
)
def test_yes_no_questions_get_yes_or_no_first(
    answerer: KnowledgeAnswerer, question: str, opening: str
) -> None:
    answer = answerer.answer(question)
    assert answer.grounded and answer.citations
    assert answer.text.startswith(opening), answer.text
    body = answer.text.split("\n\n")[0]
    assert re.search(r"\[1\]", body)
    opposite = "No" if opening.startswith("Yes") else "Yes"
    assert not re.search(rf"(?:^|\. ){opposite}[,.]", body), body


def test_other_questions_get_no_stray_yes(answerer: KnowledgeAnswerer) -> None:
    answer = answerer.answer("What reasons can I give for cancelling an order?")
    assert not answer.text.startswith(("Yes", "No")), answer.text
    assert "no longer need" in answer.text


@pytest.mark.parametrize(
    "question",
    [
        "How do exchanges work?",
        "Can I modify my order?",
        "What do I need to confirm to cancel an order?",
        "How do returns work?",
        "Can I change the payment method of my order?",
    ],
)
def test_policy_answers_speak_to_the_shopper(answerer: KnowledgeAnswerer, question: str) -> None:
    answer = answerer.answer(question)
    assert answer.grounded
    assert not AGENT_WORDS.search(answer.text), answer.text
