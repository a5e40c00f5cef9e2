"""Chinese yes/no questions: ``bot.generation.yesno`` reads "…吗？", "能不能…", "是不是…"
and replies such as "可以，" and "目前不能。" by the same rules as English. A yes or no
is said only when the store's words settle the question asked: the extractive writer
never quotes a "可以，..." written for another question, and the fact guard stops an
answer that opens with the opposite of what the passages settle.

Passages are the Chinese demo store's FAQ (``bot/projects/demo-store-zh/knowledge``);
the writer tests run the real e5 encoder through ``tests/test_knowledge_demo_zh.py``'s
fixture."""

from __future__ import annotations

import re

import pytest

from bot.generation.base import Citation
from bot.generation.guard import Evidence, FactGuard
from bot.generation.yesno import decide, is_yes_no_question, opening_reply
from bot.knowledge.answerer import KnowledgeAnswerer
from bot.knowledge.catalog import CatalogResolver
from bot.knowledge.index import day_terms
from bot.knowledge.text import terms
from tests.test_knowledge_demo_zh import ZH_KNOWLEDGE, answerer  # noqa: F401 (fixture)


def _faq() -> list[tuple[str, str]]:
    text = (ZH_KNOWLEDGE / "faq.md").read_text(encoding="utf-8")
    entries = re.split(r"^## ", text, flags=re.MULTILINE)[1:]
    return [(e.split("\n", 1)[0].strip(), e.split("\n", 1)[1].strip()) for e in entries]


FAQ = _faq()


@pytest.mark.parametrize(
    "question",
    ["能寄到加拿大吗？", "能不能换颜色", "可不可以取消订单", "是不是免运费？", "有没有运费"],
)
def test_chinese_yes_no_questions_are_recognised(question: str) -> None:
    assert is_yes_no_question(question)


@pytest.mark.parametrize("question", ["运费是多少？", "能告诉我多少钱吗", "怎么退货？"])
def test_chinese_open_questions_are_not_yes_no(question: str) -> None:
    assert not is_yes_no_question(question)


@pytest.mark.parametrize(
    ("sentence", "said"),
    [
        ("可以，只要订单仍是“待处理”状态。", True),
        ("是的，我们免运费。", True),
        ("目前不能。", False),
        ("不可以，每个订单只能用一种付款方式。", False),
        ("可以修改收货地址。", None),
        ("Yes, as long as it is pending.", True),
    ],
)
def test_opening_replies(sentence: str, said: bool | None) -> None:
    assert opening_reply(sentence) is said


def test_a_state_outside_the_condition_is_a_no() -> None:
    found = decide("已经发货了还能取消订单吗？", FAQ)
    assert found is not None and found.yes is False
    assert "不能再取消" in found.sentence  # not the FAQ's "可以，只要…待处理"


def test_a_duration_inside_or_beyond_the_window() -> None:
    late = decide("签收40天了还能退货吗？", FAQ)
    early = decide("签收20天了还能退货吗？", FAQ)
    assert late is not None and late.yes is False
    assert early is not None and early.yes is True


def test_the_faq_asking_the_same_question_answers_it() -> None:
    found = decide("你们能寄到美国以外的地方吗？", FAQ)
    assert found is not None and found.yes is False


def test_an_unsettled_question_gets_no_yes_or_no() -> None:
    # the FAQ's "可以，..." answers "can I cancel", not "can I pay with two cards"
    assert decide("一个订单可以分两张卡付吗？", FAQ) is None


def test_guard_stops_a_yes_the_policy_denies() -> None:
    cancel = next(i for i, (title, _) in enumerate(FAQ) if "取消" in title)
    title, text = FAQ[cancel]
    evidence = Evidence(
        (Citation(1, "faq-cancel", title, "faq.md", "faq", text),),
        question="已经发货了还能取消订单吗？",
    )
    guard = FactGuard(CatalogResolver([]))
    said_yes = guard.check("可以，订单可以取消【1】。", evidence)
    said_no = guard.check("不能，订单一旦发货就不能再取消【1】。", evidence)
    assert any("policy says otherwise" in v.claim for v in said_yes.violations)
    assert said_no.ok, said_no.violations


def test_writer_quotes_no_yes_written_for_another_question(
    answerer: KnowledgeAnswerer,  # noqa: F811 (fixture)
) -> None:
    answer = answerer.answer("一个订单可以分两张卡付吗？")
    assert answer.grounded
    assert opening_reply(answer.text) is None, answer.text


def test_writer_says_no_for_a_shipped_order(
    answerer: KnowledgeAnswerer,  # noqa: F811 (fixture)
) -> None:
    answer = answerer.answer("已经发货了还能取消订单吗？")
    assert opening_reply(answer.text) is False, answer.text
    assert "不能再取消" in answer.text
    assert "可以，只要" not in answer.text


def test_an_faq_reply_not_confirmed_leaves_its_answer(
    answerer: KnowledgeAnswerer,  # noqa: F811 (fixture)
) -> None:
    # the FAQ's "可以，" is not quoted (the question is not the FAQ's); its answer is, not
    # a sentence that only shares the shopper's "不"
    answer = answerer.answer("衣服尺码不合适能换吗？")
    assert "同一商品" in answer.text, answer.text
    assert opening_reply(answer.text) is None, answer.text


def test_a_how_long_question_quotes_the_durations(
    answerer: KnowledgeAnswerer,  # noqa: F811 (fixture)
) -> None:
    answer = answerer.answer("快递一般几天能到")
    assert "3到7个工作日" in answer.text, answer.text


def test_months_and_weeks_are_searched_as_days() -> None:
    assert day_terms("收到货一个月了还能退吗？") == terms("30天")
    assert day_terms("两周") == terms("14天")
    assert day_terms("三天") == [] and day_terms("one month") == []


def test_a_window_in_months_finds_the_window_in_days(
    answerer: KnowledgeAnswerer,  # noqa: F811 (fixture)
) -> None:
    answer = answerer.answer("收到货一个月了还能退吗？")
    assert "30天" in answer.text, answer.text
