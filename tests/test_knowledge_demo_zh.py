"""The Chinese demo store's knowledge (``bot/projects/demo-store-zh/knowledge``), ingested
with e5 and a CNY catalog as ``bot.app`` wires a ``zh`` store, answers Chinese shopper
questions through the extractive writer: a product's price in CNY, the return window, the
refund time; an off-topic question gets the not-found answer.

The catalog is three products of the demo catalog, so that ingesting stays quick."""

from __future__ import annotations

import json
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bot.app import answer_wording, relevance_of
from bot.generation.base import Answer
from bot.generation.extractive import ExtractiveWriter
from bot.knowledge.answerer import KnowledgeAnswerer
from bot.knowledge.catalog import CatalogResolver
from bot.knowledge.imports import CatalogSpec, read_catalog
from bot.knowledge.index import KnowledgeIndex, ingest
from bot.knowledge.money import format_money
from bot.knowledge.retriever import HybridRetriever
from bot.nlu.encoder import sentence_encoder
from bot.store.db import Database

ROOT = Path(__file__).resolve().parent.parent
ZH_KNOWLEDGE = ROOT / "bot" / "projects" / "demo-store-zh" / "knowledge"
DEMO_PRODUCTS = ROOT / "knowledge" / "catalog" / "products.json"
NAMES = ("T-Shirt", "Yoga Mat", "Sneakers")


def _products() -> dict[str, Any]:
    products = json.loads(DEMO_PRODUCTS.read_text(encoding="utf-8"))
    return {pid: p for pid, p in products.items() if p["name"] in NAMES}


@pytest.fixture(scope="module")
def answerer(tmp_path_factory: pytest.TempPathFactory) -> KnowledgeAnswerer:
    home = tmp_path_factory.mktemp("demo-zh")
    knowledge = home / "knowledge"
    shutil.copytree(ZH_KNOWLEDGE, knowledge, ignore=shutil.ignore_patterns("catalog"))
    (knowledge / "catalog").mkdir()
    (knowledge / "catalog" / "products.json").write_text(json.dumps(_products()), "utf-8")
    encoder = sentence_encoder("zh", home)
    catalog = read_catalog(knowledge, CatalogSpec("CNY"))
    db = Database(f"sqlite:///{home / 'clerk.db'}")
    db.create_all()
    try:
        ingest(db, knowledge, home / "index", encoder, catalog=catalog)
    finally:
        db.dispose()
    index = KnowledgeIndex.load(home / "index", encoder)
    writer = ExtractiveWriter(answer_wording(), relevance=relevance_of(encoder))
    resolver = CatalogResolver([p.to_dict() for p in catalog.products])
    return KnowledgeAnswerer(HybridRetriever(index), writer, resolver)


def _body(answer: Answer) -> str:
    return answer.text.split("\n\n")[0]


def test_the_chinese_faq_and_policy_split_into_passages_by_heading(
    answerer: KnowledgeAnswerer,
) -> None:
    index = answerer.retriever.index  # type: ignore[attr-defined]
    faq = {p.title for p in index.passages if p.kind == "faq"}
    policy = {p.title for p in index.passages if p.kind == "policy"}
    assert len(faq) == 14 and all(t.endswith("？") for t in faq)
    assert "退货期限是多久？" in faq
    assert "零售服务政策 > 修改待处理订单 > 修改商品" in policy
    assert sum(p.kind == "product" for p in index.passages) == len(NAMES)


def test_a_product_named_beside_chinese_text_is_answered_with_its_cny_prices(
    answerer: KnowledgeAnswerer,
) -> None:
    shirt = next(p for p in _products().values() if p["name"] == "T-Shirt")
    prices = [Decimal(str(v["price"])) for v in shirt["variants"].values()]
    answer = answerer.answer("T-Shirt多少钱？")
    assert answer.grounded and answer.kind == "product"
    assert format_money(min(prices), "CNY") in answer.text
    assert format_money(max(prices), "CNY") in answer.text
    # "10码" asks for size 10: only that variant's price is given
    sneakers = next(p for p in _products().values() if p["name"] == "Sneakers")
    size_10 = [v for v in sneakers["variants"].values() if v["options"]["size"] == "10"]
    others = [v for v in sneakers["variants"].values() if v["options"]["size"] != "10"]
    sized = _body(answerer.answer("Sneakers 10码多少钱？"))
    assert all(format_money(Decimal(str(v["price"])), "CNY") in sized for v in size_10)
    assert not any(format_money(Decimal(str(v["price"])), "CNY") in sized for v in others)


def test_a_chinese_colour_word_selects_the_english_catalog_colour(
    answerer: KnowledgeAnswerer,
) -> None:
    sneakers = next(p for p in _products().values() if p["name"] == "Sneakers")
    red = [v for v in sneakers["variants"].values() if v["options"]["color"] == "red"]
    others = [v for v in sneakers["variants"].values() if v["options"]["color"] != "red"]
    body = _body(answerer.answer("红色的Sneakers多少钱？"))
    assert all(format_money(Decimal(str(v["price"])), "CNY") in body for v in red)
    assert not any(format_money(Decimal(str(v["price"])), "CNY") in body for v in others)
    # a colour the product does not come in is said to be missing, not answered with others
    mat = _body(answerer.answer("Yoga Mat有黑色的吗？"))
    assert "black" in mat and "blue" in mat


@pytest.mark.parametrize(
    ("question", "fact"),
    [
        ("东西买了多久之内可以退？", "30天"),
        ("退款几天能到账？", "5到7个工作日"),
        ("运费怎么算？", "免运费"),
    ],
)
def test_policy_questions_are_answered_from_the_chinese_passages(
    answerer: KnowledgeAnswerer, question: str, fact: str
) -> None:
    answer = answerer.answer(question)
    assert answer.grounded
    assert fact in _body(answer)
    assert answer.citations[0].kind in ("faq", "policy")


@pytest.mark.parametrize("question", ["明天北京天气怎么样？", "帮我写一首关于猫的诗"])
def test_an_off_topic_question_gets_the_not_found_answer(
    answerer: KnowledgeAnswerer, question: str
) -> None:
    answer = answerer.answer(question)
    assert not answer.grounded
    assert answer.text == answer_wording().not_found()
    assert answer.citations == []
