"""The fact guard on Chinese answers: supported sentences pass, an invented price,
duration, number (also in Chinese numerals), product, option or policy claim is stopped;
Chinese and English read into the same claims, so mixed sentences and English catalogs
work; the extractive writer's Chinese answers always pass. (``benchmarks/guard_eval.py
--language zh`` measures the same on labelled cases.)"""

from __future__ import annotations

import pytest

from bot.app import answer_wording
from bot.generation.base import Citation
from bot.generation.claims_zh import latin_view
from bot.generation.extractive import ExtractiveWriter
from bot.generation.guard import Evidence, FactGuard, split_sentences
from bot.generation.prompt import facts_passage_text
from bot.knowledge.catalog import CatalogResolver
from bot.knowledge.money import format_money
from bot.knowledge.retriever import Hit


def _variant(item: str, color: str, size: str, price: str, available: bool = True) -> dict:
    return {
        "item_id": item,
        "options": {"color": color, "size": size},
        "price": price,
        "available": available,
    }


PRODUCTS = {
    "p1": {
        "product_id": "p1",
        "name": "T-Shirt",
        "currency": "CNY",
        "variants": {
            "1": _variant("1", "black", "M", "99.00"),
            "2": _variant("2", "blue", "M", "109.00"),
            "3": _variant("3", "red", "L", "99.00", available=False),
        },
    },
    "p2": {
        "product_id": "p2",
        "name": "Running Shoes",
        "currency": "CNY",
        "variants": {
            "4": _variant("4", "white", "42", "1299.00"),
            "5": _variant("5", "yellow", "43", "1299.00"),
        },
    },
}
RETURNS = Citation(
    1,
    "policy-returns",
    "退货政策",
    "policies/returns.md",
    "policy",
    "自签收之日起30天内可申请退货。退款将在7个工作日内退回原支付账户。商品需保持未使用状态。",
)
SHIPPING = Citation(
    2,
    "faq-shipping",
    "多久发货？",
    "faq.md",
    "faq",
    "订单一般在48小时内发货，快递送达需要3-5天。全场满199元包邮。",
)
CANCEL = Citation(
    3,
    "faq-cancel",
    "可以取消订单吗？",
    "faq.md",
    "faq",
    "只有待发货的订单可以取消。订单发货后无法取消，但签收后可以申请退货。",
)
HOURS = Citation(
    4, "faq-hours", "客服时间", "faq.md", "faq", "客服在线时间为每天上午9点到晚上9点。"
)
POLICY = Evidence((RETURNS, SHIPPING, CANCEL, HOURS))


@pytest.fixture(scope="module")
def catalog() -> CatalogResolver:
    return CatalogResolver(PRODUCTS)


@pytest.fixture(scope="module")
def guard(catalog: CatalogResolver) -> FactGuard:
    return FactGuard(catalog)


def product(catalog: CatalogResolver, question: str) -> Evidence:
    """What the guarded writer gives a product question: the facts as passage [1]. (The
    resolver reads English names between spaces: the question's Latin words are given.)"""
    facts = catalog.resolve(latin_view(question))
    assert facts is not None, question
    text = facts_passage_text(facts)
    return Evidence(
        (Citation(1, "product-1", facts.name, "catalog/products.json", "product", text),),
        facts,
        question=question,
    )


def kinds(guard: FactGuard, text: str, evidence: Evidence) -> set[str]:
    return {v.kind for v in guard.check(text, evidence).violations}


# ------------------------------------------------------------------------- supported


@pytest.mark.parametrize(
    "reply",
    [
        "签收后30天内可以申请退货【1】。",
        "您可以在收到商品后30天内申请退货，退款会在7个工作日内退回原支付账户[1]。",
        "订单一般在48小时内发货，快递送达需要3到5天[2]。",
        "一般四十八小时内发货[2]。",
        "只有待发货的订单可以取消[3]。",
        "订单发货后无法取消，但签收后可以申请退货[3]。",
        "客服在线时间为上午9点到晚上9点[4]。",
        "全场满199元包邮[2]。",
    ],
)
def test_supported_policy_sentences_pass(guard: FactGuard, reply: str) -> None:
    assert guard.check(reply, POLICY).ok, guard.check(reply, POLICY).violations


@pytest.mark.parametrize(
    ("question", "reply"),
    [
        ("T-Shirt多少钱", "这款T-Shirt售价¥99起[1]。"),
        ("T-Shirt多少钱", "黑色M码的T-Shirt售价九十九元[1]。"),
        ("蓝色M码的T-Shirt多少钱", "蓝色M码的T-Shirt是109元，目前有货[1]。"),
        ("T-Shirt有哪些颜色", "T-Shirt有3种颜色：黑色、蓝色和红色[1]。"),
        ("Running Shoes多少钱", "Running Shoes售价1,299元[1]。"),
        ("红色的T-Shirt有货吗", "红色的T-Shirt目前缺货[1]。"),
    ],
)
def test_supported_product_sentences_pass(
    guard: FactGuard, catalog: CatalogResolver, question: str, reply: str
) -> None:
    evidence = product(catalog, question)
    assert guard.check(reply, evidence).ok, guard.check(reply, evidence).violations


# -------------------------------------------------------------------------- rejected


@pytest.mark.parametrize(
    ("reply", "kind"),
    [
        ("签收后60天内可以申请退货[1]。", "duration"),
        ("退款会在两周内退回原支付账户[1]。", "duration"),
        ("订单一般在二十四小时内发货[2]。", "duration"),
        ("全场满九十九元包邮[2]。", "price"),
        ("客服在线时间为上午8点到晚上9点[4]。", "number"),
        ("已发货的订单也可以取消[3]。", "policy"),
        ("订单发货后可以取消[3]。", "policy"),
        ("退货时我们会送您一张优惠券[1]。", "commitment"),
        ("退款会在7个工作日内退回原支付账户[5]。", "citation"),
    ],
)
def test_invented_policy_claims_are_stopped(guard: FactGuard, reply: str, kind: str) -> None:
    assert kind in kinds(guard, reply, POLICY)


@pytest.mark.parametrize(
    ("question", "reply", "kind"),
    [
        ("T-Shirt多少钱", "T-Shirt售价89元[1]。", "price"),
        ("T-Shirt多少钱", "T-Shirt售价八十九元[1]。", "price"),
        ("T-Shirt多少钱", "T-Shirt售价三块五[1]。", "price"),
        ("蓝色M码的T-Shirt多少钱", "蓝色M码的T-Shirt是99元[1]。", "price"),
        ("T-Shirt多少钱", "T-Shirt售价99美元[1]。", "price"),
        ("T-Shirt有哪些颜色", "T-Shirt有五种颜色[1]。", "number"),
        ("T-Shirt有哪些颜色", "T-Shirt也有绿色款[1]。", "option"),
        ("T-Shirt有哪些颜色", "我们也有Nike的T-Shirt[1]。", "product"),
        ("黑色的T-Shirt有货吗", "黑色M码的T-Shirt目前缺货[1]。", "stock"),
    ],
)
def test_invented_product_claims_are_stopped(
    guard: FactGuard, catalog: CatalogResolver, question: str, reply: str, kind: str
) -> None:
    assert kind in kinds(guard, reply, product(catalog, question))


def test_an_unknown_product_named_in_chinese_text_is_stopped(guard: FactGuard) -> None:
    reply = "如果想要更轻便的，可以看看我们的Trail Runner Pro[2]。"
    assert "product" in kinds(guard, reply, POLICY)


# ----------------------------------------------------------------------------- mixed


def test_english_and_chinese_read_into_the_same_claims(guard: FactGuard) -> None:
    english = Evidence(
        (
            Citation(
                1,
                "policy-1",
                "Returns",
                "policy.md",
                "policy",
                "Refunds take 5 to 7 business days.",
            ),
        )
    )
    # durations cross languages (the policy's wording does not: see the guard's notes)
    assert "duration" not in kinds(guard, "退款需要5-7个工作日[1]。", english)
    assert "duration" in kinds(guard, "退款需要10个工作日[1]。", english)
    # and an English sentence in a Chinese store's answer is read as English
    assert "duration" in kinds(guard, "Returns are accepted within 60 days [1].", POLICY)


def test_mixed_sentences_check_both_scripts(guard: FactGuard, catalog: CatalogResolver) -> None:
    evidence = product(catalog, "Running Shoes多少钱")
    assert guard.check("Running Shoes的white款售价¥1,299[1]。", evidence).ok
    assert "price" in kinds(guard, "Running Shoes的white款售价¥1,199[1]。", evidence)
    assert "option" in kinds(guard, "Running Shoes的green款售价¥1,299[1]。", evidence)


def test_chinese_sentences_are_split_and_citation_marks_are_no_claims() -> None:
    done, rest = split_sentences(
        "退货期为30天【1】。退款在7个工作日内到账。[2]还有问题吗？好", final=False
    )
    assert done == ["退货期为30天【1】。", "退款在7个工作日内到账。[2]", "还有问题吗？"]
    assert rest == "好"


def test_a_citation_mark_is_not_a_number(guard: FactGuard) -> None:
    # 【4】 names a passage; the sentence's only claim is the 30 days
    evidence = Evidence((RETURNS, SHIPPING, CANCEL, HOURS))
    assert guard.check("签收后30天内可以申请退货【1】【4】。", evidence).ok


def test_yuan_is_written_as_the_yuan_sign() -> None:
    assert format_money("19.99", "CNY") == "¥19.99"
    assert format_money("1299", "CNY", thousands=True) == "¥1,299.00"


# ------------------------------------------------------------------------ extractive


@pytest.mark.parametrize(
    "question",
    [
        "可以退货吗",
        "退款多久到账",
        "多久发货",
        "订单发货后还能取消吗",
        "客服几点上班",
        "包邮吗",
    ],
)
def test_the_extractive_writers_chinese_answers_are_never_stopped(
    guard: FactGuard, question: str
) -> None:
    hits = [
        Hit(
            c.passage_id,
            c.title,
            c.text,
            c.kind,
            1.0 - i / 10,
            source=c.source,
            dense=0.95,
            lexical=3.0,
        )
        for i, c in enumerate(POLICY.passages)
    ]
    answer = ExtractiveWriter(answer_wording()).write(question, hits, None)
    assert answer.grounded
    body = answer.text.split("\n\n")[0]  # the sources line is the writer's own
    evidence = Evidence(tuple(answer.citations))
    assert guard.check(body, evidence).ok, (body, guard.check(body, evidence).violations)
