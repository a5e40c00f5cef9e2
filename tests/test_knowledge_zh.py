"""Chinese knowledge: Chinese policy and FAQ text becomes passages of their own, and BM25
finds them from a Chinese question, with the Chinese runs of a text segmented into words
while English (and a bilingual catalog's English) keeps its terms."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.knowledge.index import KnowledgeIndex
from bot.knowledge.passages import Passage, faq_passages, policy_passages
from bot.knowledge.text import sentences, terms

POLICY = """# 售后政策

## 退货

收到商品后30天内可以无理由退货，商品需保持原包装、未使用。退货运费由买家承担。

## 退款

退货验收后，退款将在7个工作日内原路退回到您的付款账户。

## 发货

下单后48小时内发货，普通快递3-5天送达，偏远地区可能需要更长时间。

## 取消订单

只有待处理（未发货）的订单可以取消；已发货的订单请收货后申请退货。
"""

FAQ = """# 常见问题

## 支付

### 支持哪些付款方式？

我们支持支付宝、微信支付和银联卡，也接受PayPal。

## 会员

### 如何修改收货地址？

在"我的账户"里修改默认收货地址；已发货的订单无法修改地址。

### 羽绒服怎么洗？

羽绒服建议手洗或干洗，不要用洗衣机甩干。
"""

ENGLISH = """# Store policy

## Returns

Items can be returned within 30 days of delivery in their original packaging.

## Shipping

Orders ship within 2 business days.
"""


class NoEncoder:
    """Dense scores are not under test: every passage gets the same vector."""

    model_path = "no-encoder"
    dim = 4

    def encode(self, texts: list[str], **kw: Any) -> np.ndarray:
        return np.ones((len(texts), self.dim), dtype=np.float32) / 2

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


@pytest.fixture(scope="module")
def passages() -> list[Passage]:
    return (
        policy_passages(POLICY, "policies/售后.md")
        + faq_passages(FAQ, "faq.md")
        + policy_passages(ENGLISH, "policies/store.md")
    )


@pytest.fixture(scope="module")
def index(passages: list[Passage]) -> KnowledgeIndex:
    built, _ = KnowledgeIndex.build(passages, NoEncoder())
    return built


def best(index: KnowledgeIndex, query: str) -> str:
    scores = index.lexical_scores(query)
    assert scores.max() > 0, f"no term of {query!r} is in the index"
    return index.passages[int(scores.argmax())].title


def test_chinese_sections_and_questions_are_passages_with_their_own_ids(
    passages: list[Passage],
) -> None:
    titles = [p.title for p in passages]
    assert "售后政策 > 退货" in titles and "售后政策 > 取消订单" in titles
    assert "支持哪些付款方式？" in titles and "羽绒服怎么洗？" in titles  # full-width ？
    assert len({p.id for p in passages}) == len(passages)


@pytest.mark.parametrize(
    ("question", "title"),
    [
        ("买了不喜欢可以退货吗？", "售后政策 > 退货"),
        ("退款多久能到账", "售后政策 > 退款"),
        ("下单以后多久发货？快递几天送达？", "售后政策 > 发货"),
        ("我想取消订单", "售后政策 > 取消订单"),
        ("可以用微信支付吗", "支持哪些付款方式？"),
        ("收货地址填错了怎么修改", "如何修改收货地址？"),
        ("这件羽绒服可以机洗吗", "羽绒服怎么洗？"),  # 羽绒服 meets 羽绒服 and 羽绒
        ("能用PayPal付款吗", "支持哪些付款方式？"),  # an English word in a Chinese question
    ],
)
def test_a_chinese_question_finds_its_passage_by_bm25(
    index: KnowledgeIndex, question: str, title: str
) -> None:
    assert best(index, question) == title


def test_english_questions_still_find_english_passages_in_a_bilingual_index(
    index: KnowledgeIndex,
) -> None:
    assert best(index, "can I return an item after 30 days?") == "Store policy > Returns"
    assert best(index, "how fast do orders ship") == "Store policy > Shipping"


def test_english_terms_are_unchanged() -> None:
    assert terms("Cancelled orders can't be refunded; deliveries take 5 days.") == [
        "cancel", "order", "not", "refund", "deliver", "take", "5", "day",
    ]  # fmt: skip


def test_chinese_runs_are_segmented_and_stop_words_dropped() -> None:
    assert terms("你好，请问这件羽绒服多少钱？") == ["这件", "羽绒", "羽绒服", "钱"]
    assert terms("我的订单在哪里") == ["订单"]
    mixed = terms("iPhone 15 Pro的退款需要几天")
    assert mixed[:3] == ["iphon", "15", "pro"] and "退款" in mixed
    assert "的" not in mixed and "需要" not in mixed


def test_a_passage_folder_with_chinese_file_names_loads(tmp_path: Path) -> None:
    from bot.knowledge.passages import build_passages

    (tmp_path / "policies").mkdir()
    (tmp_path / "policies" / "售后.md").write_text(POLICY, encoding="utf-8")
    (tmp_path / "faq.md").write_text(FAQ, encoding="utf-8")
    built = build_passages(tmp_path)
    assert {p.kind for p in built} == {"policy", "faq"}
    assert len({p.id for p in built}) == len(built)


def test_chinese_passages_split_into_sentences_at_their_own_marks() -> None:
    assert sentences("收到商品后30天内可以退货。退款7个工作日内到账！有问题吗？联系客服") == [
        "收到商品后30天内可以退货。",
        "退款7个工作日内到账！",
        "有问题吗？",
        "联系客服",
    ]
    assert sentences("Returns are free. 退货免费。Shipping takes 2 days.") == [
        "Returns are free.",
        "退货免费。",
        "Shipping takes 2 days.",
    ]
    # a line wrapped inside a Chinese paragraph is joined without a space
    assert sentences("退货政策如下，请\n仔细阅读：商品需未使用。\n\n- 第一条：保留包装。") == [
        "退货政策如下，请仔细阅读：商品需未使用。",
        "第一条：保留包装。",
    ]
    assert sentences("可以吗?可以") == ["可以吗?", "可以"]


def test_english_sentences_are_unchanged() -> None:
    text = "Orders ship in 2 days. Returns are\nfree within 30 days! Questions? e.g. sizes"
    assert sentences(text) == [
        "Orders ship in 2 days.",
        "Returns are free within 30 days!",
        "Questions? e.g. sizes",
    ]
