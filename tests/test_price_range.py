"""Price ranges a shopper states, in English and Chinese (``bot.lang.price_range``), and
the two readers that share the rule: the knowledge answerer's filters and the
recommender's wishes."""

from __future__ import annotations

import pytest

from bot.knowledge.filters import question_filters
from bot.lang.price_range import PriceRange, find_price_range


@pytest.mark.parametrize(
    ("text", "low", "high"),
    [
        ("500元以下", None, 500),
        ("有没有500块以下的耳机", None, 500),
        ("不超过200块", None, 200),
        ("不超过两百", None, 200),
        ("两百以内", None, 200),
        ("1.5千以内的手机", None, 1500),
        ("预算三百", None, 300),
        ("价格低于一千", None, 1000),
        ("¥99以下", None, 99),
        ("最多三百块钱", None, 300),
        ("100到300元之间", 100, 300),
        ("在100和300之间", 100, 300),
        ("100-300块的耳机", 100, 300),
        ("价格100-300的耳机", 100, 300),
        ("三百到一百块", 100, 300),
        ("1000元以上", 1000, None),
        ("超过五百元", 500, None),
        ("至少五十块", 50, None),
        ("不低于100元", 100, None),
        ("100元起", 100, None),
        ("两百以上一千以下", 200, 1000),
    ],
)
def test_chinese_price_ranges(text: str, low: float | None, high: float | None) -> None:
    assert find_price_range(text) == PriceRange(low, high)
    assert find_price_range(text, bare_amounts=True) == PriceRange(low, high)


@pytest.mark.parametrize(
    "text",
    [
        "30天以内可以退货吗",
        "3-5天能到吗",
        "不超过3件",
        "5公斤以下",
        "超过七天了",
        "我们一起买",
        "不到一半",
        "尺码8-10",
        "评分4以上的",
        "100-300的",  # bare numbers joined without a price word or 之间
        "一下",
    ],
)
def test_chinese_text_that_states_no_price(text: str) -> None:
    assert not find_price_range(text).stated
    assert not find_price_range(text, bare_amounts=True).stated


@pytest.mark.parametrize(
    ("text", "money_only", "with_bare"),
    [
        ("under $30", PriceRange(None, 30), PriceRange(None, 30)),
        ("between 20 and 50", PriceRange(), PriceRange(20, 50)),
        ("size 8-10", PriceRange(), PriceRange()),
        ("within 30 days", PriceRange(), PriceRange()),
        ("headphones under $100, 两百以上的不要", PriceRange(None, 100), PriceRange(None, 100)),
    ],
)
def test_english_ranges_are_read_as_before_and_win_over_chinese(
    text: str, money_only: PriceRange, with_bare: PriceRange
) -> None:
    assert find_price_range(text) == money_only
    assert find_price_range(text, bare_amounts=True) == with_bare


def test_the_knowledge_filters_read_chinese_bounds() -> None:
    filters = question_filters("100到300元之间有什么蓝牙音箱")
    assert (filters.min_price, filters.max_price) == (100, 300)
    filters = question_filters("退货要在30天以内吗")
    assert (filters.min_price, filters.max_price) == (None, None)


def test_the_recommenders_wishes_read_a_chinese_budget() -> None:
    from decimal import Decimal

    from bot.recommend.store import Catalog, CatalogProduct, CatalogVariant
    from bot.recommend.wishes import read_wishes

    variant = CatalogVariant("1", "p1", {"color": "black"}, Decimal(120), True)
    catalog = Catalog((CatalogProduct("p1", "Bluetooth Speaker", (variant,)),))
    assert read_wishes(["有推荐的音箱吗", "两百以内"], catalog).price == PriceRange(None, 200)
    # the latest message that states a range wins, in either language
    texts = ["under $50", "100到300元之间"]
    assert read_wishes(texts, catalog).price == PriceRange(100, 300)


@pytest.mark.parametrize(
    ("question", "in_stock"),
    [
        ("这款T恤有货吗", True),
        ("有现货的音箱", True),
        ("哪些缺货了", False),
        ("黑色的卖完了吗", False),
        ("没有货吗", None),
        ("T恤多少钱", None),
    ],
)
def test_the_knowledge_filters_read_chinese_stock_words(
    question: str, in_stock: bool | None
) -> None:
    assert question_filters(question).in_stock is in_stock
