"""The fact guard lets a good model's answers through and stops every kind of invented
fact: correct replies phrased the many ways strong models phrase them pass; the same
replies with one invented fact of each kind the guard checks do not.
(``benchmarks/guard_eval.py`` measures the same on 769 labelled replies.)"""

from __future__ import annotations

import time

import pytest

from bot.generation.base import Citation
from bot.generation.guard import Evidence, FactGuard
from bot.generation.prompt import facts_passage_text
from bot.knowledge.catalog import CatalogResolver


def product(catalog: CatalogResolver, question: str) -> Evidence:
    """What the guarded writer gives a product question: the product's facts, narrowed
    to the options asked for, as passage [1]."""
    facts = catalog.resolve(question)
    assert facts is not None, question
    text = facts_passage_text(facts)
    return Evidence(
        (Citation(1, "product-1", facts.name, "catalog/products.json", "product", text),),
        facts,
        question=question,
    )


def faq(index: int, title: str, text: str) -> Citation:
    return Citation(index, f"faq-{index}", title, "faq.md", "faq", text)


# The demo FAQ's wording, wrapped as in faq.md.
SHIPPING_COST = faq(
    1,
    "How much does shipping cost?",
    "Shipping is free on every order. The total you pay is the sum of the item prices, with no\n"
    "shipping charge added.",
)
SHIPPING_TIME = faq(
    1,
    "How long does shipping take?",
    "Most orders leave our warehouse within 1 to 2 business days. Standard delivery inside the\n"
    "United States then takes 3 to 7 business days.",
)
ABROAD = faq(
    1,
    "Do you ship outside the United States?",
    "Not at the moment. We deliver to addresses in the United States only.",
)
PAYMENT = faq(
    1,
    "Which payment methods do you accept?",
    "We accept credit cards (Visa and Mastercard), PayPal, and our store gift cards. You can pay\n"
    "an order with one payment method; a gift card must have enough balance to cover the amount.",
)
CANCEL = faq(
    1,
    "Can I cancel my order?",
    'Yes, as long as it is still "pending". Tell us the order number and the reason: either you\n'
    "no longer need it or you ordered it by mistake. Once an order has shipped it can no longer\n"
    "be cancelled, but you can return it after it is delivered.",
)
RETURN_WINDOW = faq(
    1,
    "How long do I have to return something?",
    "Please request your return within 30 days of delivery.",
)
REFUNDS = faq(
    1,
    "When will I get my refund?",
    "Refunds go back to the original payment method (or, for a return, to a gift card of yours if\n"
    "you prefer). Money refunded to a gift card is available immediately; refunds to a credit\n"
    "card or PayPal account take 5 to 7 business days.",
)
EXCHANGE = faq(
    1,
    "Can I exchange an item for a different size or color?",
    "Yes, for delivered orders. Each item can be exchanged for an available item of the same\n"
    "product with different options; you cannot swap it for a different kind of product. List all\n"
    "the items you want to exchange at once, and we will email you instructions for sending the\n"
    "originals back. There is no need to place a new order.",
)
STATUSES = faq(
    1,
    "What do the order statuses mean?",
    '"Pending" means we have your order but have not shipped it yet. "Processed" means it has\n'
    'shipped. "Delivered" means it has arrived.',
)
CONTACT = faq(
    1,
    "How can I contact you, and when are you open?",
    "Our customer service team is available Monday to Friday, 9:00 to 18:00 Eastern Time, by chat\n"
    "or by email at support@example.com.",
)


def policy(passage: Citation, question: str) -> Evidence:
    return Evidence((passage,), question=question)


# ------------------------------------------------------------------- correct: shown

PRODUCT_REPLIES = [
    ("How much is the blue M T-Shirt?", "The blue M T-Shirt costs $50.88 in size M [1]."),
    ("How much is the blue M T-Shirt?", "It's 50.88 USD for size M [1]."),
    ("How much is the blue M T-Shirt?", "The blue M T-Shirt costs $50.88 [1]."),
    ("How much is the blue M T-Shirt?", "The T-Shirt (blue, size M) is $50.88 [1]."),
    ("How much is the blue M T-Shirt?", "It's 50.88 USD [1]."),
    ("How much is the blue M T-Shirt?", "The blue M T-Shirt costs USD 50.88 [1]."),
    ("How much is the blue M T-Shirt?", "The blue M T-Shirt is $50.88 USD and it's in stock [1]."),
    ("How much is the blue M T-Shirt?", "Sure! It sells for 50.88 dollars. [1]"),
    ("Is the blue M T-Shirt in stock?", "Yes, the blue M T-Shirt is in stock right now [1]."),
    ("What colors does the T-Shirt come in?", "It comes in black, blue, purple and red [1]."),
    ("What colors does the T-Shirt come in?", "The T-Shirt comes in 4 colors: black, blue, purple and red [1]."),
    ("What colors does the T-Shirt come in?", "You can choose from four colors: black, blue, purple, and red [1]."),
    ("What colors does the Laptop come in?", "It comes in black, silver and space grey [1]."),
    (
        "How much is the black Laptop?",
        (
            "The black Laptop comes in five configurations:\n- 17-inch, i7, 32GB, 1TB SSD: "
            "$2,508.06\n- 15-inch, i9, 32GB, 512GB SSD: $2,701.89 [1]"
        ),
    ),
    (
        "Is the 6mm Yoga Mat in stock?",
        (
            "The 6mm Yoga Mat in green PVC is in stock ($105.68), but the natural rubber "
            "versions (green and pink) are currently out of stock [1]."
        ),
    ),
]  # fmt: skip

POLICY_REPLIES = [
    (SHIPPING_COST, "is shipping free?", "Yes! There's no shipping charge; you only pay for the items [1]."),
    (SHIPPING_COST, "do you charge for delivery?", "No, delivery is free on every order [1]."),
    (SHIPPING_TIME, "how long is delivery?", "Delivery takes 3-7 business days after your order leaves the warehouse [1]."),
    (ABROAD, "Do you ship to Canada?", "Unfortunately not — we currently deliver only to addresses in the United States [1]."),
    (ABROAD, "Do you ship to Canada?", "No, we only deliver to addresses in the United States [1]."),
    (PAYMENT, "can I pay with two cards?", "No, an order can be paid with one payment method only [1]."),
    (PAYMENT, "what can I pay with?", "We accept Visa, Mastercard, PayPal and store gift cards [1]."),
    (CANCEL, "can I cancel an order that has already shipped?", "No, only pending orders can be cancelled [1]."),
    (CANCEL, "can I cancel my order?", "Yes, as long as the order is still pending [1]."),
    (RETURN_WINDOW, "how long do I have to return something?", "You have thirty days from the delivery date [1]."),
    (RETURN_WINDOW, "how long do I have to return something?", "You can request a return up to 30 days after your order is delivered [1]."),
    (REFUNDS, "when will I get my refund?", "Gift card refunds are available immediately; card and PayPal refunds take 5 to 7 business days [1]."),
    (EXCHANGE, "do I need a new order for an exchange?", "You don't need to place a new order; we'll email you instructions for sending the originals back [1]."),
    (STATUSES, "what does pending mean?", "Pending means we've received your order but haven't shipped it yet [1]."),
    (CONTACT, "when are you open?", "Our team is available Monday–Friday, 9am–6pm ET [1]."),
    (CONTACT, "when are you open?", "Our customer service team is available weekdays from 9 a.m. to 6 p.m. Eastern Time [1]."),
    (CONTACT, "when are you open?", "We're here Monday to Friday, 9 AM to 6 PM ET [1]."),
    (CONTACT, "when are you open?", "The team answers from 9:00 AM to 6:00 PM Eastern Time, Monday to Friday [1]."),
    (ABROAD, "Do you ship to Canada?", "**No**, we deliver to addresses in the United States only [1]."),
    (CANCEL, "can I cancel my order?", "Yes, while it is still pending [1]. No order can be cancelled once it has shipped [1]."),
    (CANCEL, "can I cancel my order?", "No problem: you can cancel it while it is still pending [1]."),
]  # fmt: skip


@pytest.mark.parametrize(("question", "reply"), PRODUCT_REPLIES)
def test_correct_product_replies_are_shown(
    fact_guard: FactGuard, demo_catalog: CatalogResolver, question: str, reply: str
) -> None:
    verdict = fact_guard.check(reply, product(demo_catalog, question))
    assert verdict.ok, verdict.violations


@pytest.mark.parametrize(("passage", "question", "reply"), POLICY_REPLIES)
def test_correct_policy_replies_are_shown(
    fact_guard: FactGuard, passage: Citation, question: str, reply: str
) -> None:
    verdict = fact_guard.check(reply, policy(passage, question))
    assert verdict.ok, verdict.violations


# ------------------------------------------------------ one invented fact: stopped

INVENTED_PRODUCT_FACTS = [
    ("price", "How much is the blue M T-Shirt?", "The blue M T-Shirt costs $52.88 [1]."),
    ("price", "How much is the blue M T-Shirt?", "The blue M T-Shirt costs €50.88 [1]."),
    ("option", "What colors does the T-Shirt come in?", "It comes in black, blue, purple, red and turquoise [1]."),
    ("option", "How much is the blue M T-Shirt?", "The blue M T-Shirt costs $50.88, and it also comes in teal [1]."),
    ("option", "What colors does the T-Shirt come in?", "It comes in black, blue, purple, red and space grey [1]."),
    ("number", "What colors does the T-Shirt come in?", "The T-Shirt comes in 5 colors: black, blue, purple and red [1]."),
    ("number", "How much is the black Laptop?", "The black Laptop comes in 7 versions; the 17-inch i7 one is $2,508.06 [1]."),
    ("stock", "Is the 6mm Yoga Mat in stock?", "The 6mm Yoga Mat comes in 3 versions, all in stock [1]."),
    ("stock", "Is the blue M T-Shirt in stock?", "Sorry, the blue M T-Shirt is sold out [1]."),
    ("product", "How much is the blue M T-Shirt?", "The blue M T-Shirt costs $50.88, like the AeroLite Pro version [1]."),
]  # fmt: skip

INVENTED_POLICY_FACTS = [
    ("duration", SHIPPING_TIME, "how long is delivery?", "Standard delivery inside the United States takes 2 to 3 business days [1]."),
    ("duration", SHIPPING_TIME, "how long is delivery?", "Standard delivery takes 3 to 7 calendar days [1]."),
    ("duration", RETURN_WINDOW, "how long do I have to return something?", "You can request a return within 30 business days of delivery [1]."),
    ("duration", RETURN_WINDOW, "how long do I have to return something?", "You have 60 days to return an item [1]."),
    ("policy", RETURN_WINDOW, "how long do I have to return something?", "You have 30 days from the order date to return it [1]."),
    ("policy", SHIPPING_TIME, "how long is delivery?", "Orders leave our warehouse within 1 to 2 business days, and express delivery is available on request [1]."),
    ("policy", PAYMENT, "what can I pay with?", "We accept credit cards, PayPal, gift cards and cash on delivery [1]."),
    ("product", PAYMENT, "what can I pay with?", "We accept credit cards, PayPal, store gift cards and Apple Pay [1]."),
    ("policy", REFUNDS, "when will I get my refund?", "Refunds to PayPal are available immediately [1]."),
    ("policy", STATUSES, "what does processed mean?", '"Processed" means your order is still being packed and hasn\'t shipped yet [1].'),
    ("policy", CANCEL, "is it possible to cancel my order?", "Yes, you can cancel it even after it has shipped [1]."),
    ("policy", CANCEL, "can I cancel an order that is already processed?", "Yes, you can cancel it as long as you tell us the reason [1]."),
    ("policy", EXCHANGE, "does an exchange require a new order?", "Yes, you need to place a new order for the replacement item [1]."),
    ("policy", EXCHANGE, "how do exchanges work?", "You can swap items for a different kind of product once your order is delivered [1]."),
    ("policy", CANCEL, "can I return an order?", "You can return an order before it's delivered [1]."),
    ("commitment", SHIPPING_COST, "is shipping free?", "Shipping is free, and you also get a 10% discount on your next order [1]."),
    ("commitment", EXCHANGE, "how do exchanges work?", "We'll send you a prepaid return label for the originals [1]."),
    ("contact", CONTACT, "how can I contact you?", "Email us at help@example.com [1]."),
    ("contact", CONTACT, "how can I contact you?", "Visit https://example.com/help to chat with us [1]."),
    ("number", CONTACT, "when are you open?", "Our team is available Monday to Friday, 9:00 to 20:00 Eastern Time [1]."),
    ("product", CONTACT, "when are you open?", "Our team is available Monday to Saturday, 9:00 to 18:00 Eastern Time [1]."),
    ("citation", RETURN_WINDOW, "how long do I have to return something?", "Please request your return within 30 days of delivery [7]."),
]  # fmt: skip


@pytest.mark.parametrize(("kind", "question", "reply"), INVENTED_PRODUCT_FACTS)
def test_an_invented_product_fact_is_stopped(
    fact_guard: FactGuard, demo_catalog: CatalogResolver, kind: str, question: str, reply: str
) -> None:
    verdict = fact_guard.check(reply, product(demo_catalog, question))
    assert kind in {v.kind for v in verdict.violations}, verdict.violations


@pytest.mark.parametrize(("kind", "passage", "question", "reply"), INVENTED_POLICY_FACTS)
def test_an_invented_policy_fact_is_stopped(
    fact_guard: FactGuard, kind: str, passage: Citation, question: str, reply: str
) -> None:
    verdict = fact_guard.check(reply, policy(passage, question))
    assert kind in {v.kind for v in verdict.violations}, verdict.violations


def test_a_long_enumeration_is_read_in_linear_time(fact_guard: FactGuard) -> None:
    """An answer listing many items (a model that rambles, or a shopper's words echoed)
    must not make the guard's patterns backtrack: 60 items are read at once."""
    states = ", ".join(f"State{n}" for n in range(60))
    reply = f"We deliver to {states} within 3 to 7 business days [1]."
    started = time.perf_counter()
    verdict = fact_guard.check(reply, policy(SHIPPING_TIME, "where do you ship?"))
    assert time.perf_counter() - started < 1.0
    assert not verdict.ok  # the invented names are caught, too
