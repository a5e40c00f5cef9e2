"""A Chinese store's knowledge answers with e5's relevance cut-offs: its Chinese policy
and FAQ answer the questions they cover, and the weather, chit-chat and other businesses
get the not-found answer, through the real retriever, answerer and extractive writer. An
English store keeps MiniLM's cut-offs exactly."""

from __future__ import annotations

from typing import Any

import pytest

from bot.app import answer_wording, relevance_of
from bot.generation.extractive import ExtractiveWriter
from bot.knowledge.answerer import KnowledgeAnswerer
from bot.knowledge.index import KnowledgeIndex
from bot.knowledge.retriever import HybridRetriever
from bot.nlu import relevance
from bot.nlu.e5 import E5Encoder
from bot.nlu.encoder import Encoder
from tests.test_knowledge_zh import FAQ, POLICY

WORDING = answer_wording()
NOT_FOUND = WORDING.not_found()


@pytest.fixture(scope="module")
def e5() -> E5Encoder:
    return E5Encoder()


@pytest.fixture(scope="module")
def answerer(e5: E5Encoder) -> KnowledgeAnswerer:
    from bot.knowledge.passages import faq_passages, policy_passages

    passages = policy_passages(POLICY, "policies/售后政策.md") + faq_passages(FAQ, "faq.md")
    index, _ = KnowledgeIndex.build(passages, e5)
    writer = ExtractiveWriter(WORDING, relevance=relevance_of(e5))
    return KnowledgeAnswerer(HybridRetriever(index), writer, {})


@pytest.mark.parametrize(
    ("question", "expected"),
    [
        ("退款多久能到账", "7个工作日"),
        ("可以用支付宝付款吗", "支付宝"),
        ("羽绒服怎么洗", "手洗"),
        ("快递几天到", "3-5天"),
        ("多少天内可以退货", "30天"),
    ],
)
def test_a_chinese_question_the_knowledge_covers_is_answered(
    answerer: KnowledgeAnswerer, question: str, expected: str
) -> None:
    answer = answerer.answer(question)
    assert answer.grounded and expected in answer.text


@pytest.mark.parametrize(
    "question",
    ["今天天气怎么样", "你们老板是谁", "讲个笑话吧", "附近有什么好吃的餐厅", "我想看电影"],
)
def test_an_off_topic_chinese_question_gets_the_not_found_answer(
    answerer: KnowledgeAnswerer, question: str
) -> None:
    answer = answerer.answer(question)
    assert not answer.grounded and answer.text == NOT_FOUND


def test_each_encoder_carries_its_own_cut_offs(e5: E5Encoder, minilm: Any) -> None:
    assert relevance_of(e5) is relevance.E5
    assert relevance_of(minilm) is relevance.MINILM
    # MiniLM's, as calibrated on the English demo store, are the writer's default.
    assert relevance.MINILM == relevance.Relevance(
        min_dense=0.45, min_dense_with_terms=0.25, min_lexical=2.0, source_margin=0.15
    )
    assert ExtractiveWriter(WORDING).relevance is relevance.MINILM
    assert relevance_of(object()) is relevance.MINILM  # a stand-in encoder: MiniLM's


@pytest.fixture(scope="module")
def minilm() -> Encoder:
    return Encoder()
