"""bot.lang: telling Chinese from English, segmenting, and reading Chinese numbers,
order ids, phone numbers, prices, quantities and durations as shoppers and policies write
them."""

from __future__ import annotations

import dataclasses
from decimal import Decimal

import pytest

from bot.lang import (
    Duration,
    OrderId,
    Phone,
    Price,
    Quantity,
    detect_language,
    find_durations,
    find_entities,
    find_order_ids,
    find_phones,
    find_prices,
    find_quantities,
    fold_width,
    parse_chinese_number,
    parse_language,
    segment,
    segment_spans,
)

# ----------------------------------------------------------------------------- language


@pytest.mark.parametrize(
    "text",
    [
        "我的订单在哪里",
        "订单号是W2611340，什么时候发货？",
        "AirPods Pro多少钱",  # an English product name in a Chinese question
        "iPhone 15 Pro Max 有货吗",  # a tie goes to Chinese
        "退货 policy",
        "我想退款 #W2611340",
        "XL码有吗",
        "可以用PayPal付款吗",
        "您好",
    ],
)
def test_chinese_messages_are_zh(text: str) -> None:
    assert detect_language(text) == "zh"


@pytest.mark.parametrize(
    "text",
    [
        "where is my order",
        "Do you ship to 北京?",  # more English words than Han characters
        "how do I return the 羽绒服",
        "I want a refund for #W2611340",
        "café au lait mug price",
        "ok",
    ],
)
def test_english_messages_are_en(text: str) -> None:
    assert detect_language(text) == "en"


@pytest.mark.parametrize("text", ["", "#W2611340", "13812345678", "👍", "?? 123", "W-2611340"])
def test_text_without_words_keeps_the_default(text: str) -> None:
    assert detect_language(text) == "en"
    assert detect_language(text, default="zh") == "zh"


@pytest.mark.parametrize(
    ("value", "expected"),
    [("zh", "zh"), ("zh-CN", "zh"), ("zh_Hans", "zh"), (" ZH ", "zh"), ("en", "en"),
     ("en-US", "en"), ("de", None), ("", None), ("chinese", None)],
)  # fmt: skip
def test_parse_language(value: str, expected: str | None) -> None:
    assert parse_language(value) == expected


# --------------------------------------------------------------------------- segmentation


def test_segment_cuts_chinese_into_words_and_keeps_latin_and_digits() -> None:
    assert segment("我的订单在哪里") == ["我", "的", "订单", "在", "哪里"]
    assert segment("退货需要30天 iPhone 15") == ["退货", "需要", "30", "天", "iPhone", "15"]
    assert segment("") == []


def test_search_segmentation_adds_the_words_inside_long_words() -> None:
    words = segment("这件羽绒服", for_search=True)
    assert "羽绒" in words and "羽绒服" in words
    assert segment("这件羽绒服") == ["这件", "羽绒服"]


def test_segment_spans_point_into_the_text() -> None:
    text = "我想退款 这件羽绒服"
    spans = segment_spans(text)
    assert [w for w, _, _ in spans] == ["我", "想", "退款", "这件", "羽绒服"]
    assert all(text[s:e] == w for w, s, e in spans)


# ------------------------------------------------------------------------------ numbers


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("一百二十五", "125"), ("两", "2"), ("十五", "15"), ("三万", "30000"), ("3万", "30000"),
        ("1.5万", "15000"), ("2万5千", "25000"), ("十", "10"), ("二十", "20"), ("九十九", "99"),
        ("一百零五", "105"), ("一千零一", "1001"), ("两千零二十六", "2026"),
        ("一万零五百", "10500"), ("五十五万", "550000"), ("一亿三千万", "130000000"),
        ("三千五", "3500"), ("两万五", "25000"), ("一百五", "150"),  # the shortened unit
        ("九十九点五", "99.5"), ("三点一四", "3.14"), ("壹佰贰拾伍", "125"), ("一十五", "15"),
        ("二〇二六", "2026"), ("幺三八", "138"), ("零", "0"),
        ("125", "125"), ("1,299", "1299"), ("99.5", "99.5"), ("１２", "12"), (" 七 ", "7"),
    ],
)  # fmt: skip
def test_parse_chinese_number(text: str, value: str) -> None:
    assert parse_chinese_number(text) == Decimal(value)


@pytest.mark.parametrize("text", ["", "万一", "一下", "abc", "三五百", "百千", "十五块", "点五"])
def test_what_is_not_one_number_is_none(text: str) -> None:
    assert parse_chinese_number(text) is None


# ---------------------------------------------------------------------------- order ids


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("订单号是W2611340", "W2611340"),
        ("#W2611340到哪了", "#W2611340"),
        ("我的订单#W2611340还没发货", "#W2611340"),
        ("帮我查一下w-2611340", "w-2611340"),
        ("订单号：2611340", "2611340"),
        ("订单号为 2611340，谢谢", "2611340"),
        ("单号 2611340", "2611340"),
        ("订单2611340什么时候到", "2611340"),
        ("订单编号是#2611340", "#2611340"),
        ("＃2611340", "＃2611340"),
    ],
)
def test_order_ids_in_chinese_text(text: str, span: str) -> None:
    found = find_order_ids(text)
    assert [o.value for o in found] == ["#W2611340"]
    assert text[found[0].start : found[0].end] == span


@pytest.mark.parametrize(
    "text", ["我有2611340元", "订单号是26113401", "电话13812345678", "订单号13812345678"]
)
def test_digits_without_an_order_word_or_mark_are_no_order_id(text: str) -> None:
    assert find_order_ids(text) == []


def test_two_order_ids_in_one_message() -> None:
    assert [o.value for o in find_order_ids("订单W2611340和订单号7309535都没到")] == [
        "#W2611340",
        "#W7309535",
    ]


# ------------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("text", "span"),
    [
        ("我的电话是13812345678", "13812345678"),
        ("手机：138 1234 5678", "138 1234 5678"),
        ("联系我138-1234-5678谢谢", "138-1234-5678"),
        ("+86 138 1234 5678", "+86 138 1234 5678"),
        ("+8613812345678", "+8613812345678"),
        ("008613812345678", "008613812345678"),
    ],
)
def test_mainland_mobile_numbers(text: str, span: str) -> None:
    (phone,) = find_phones(text)
    assert (phone.value, phone.e164) == ("13812345678", "+8613812345678")
    assert text[phone.start : phone.end] == span


def test_every_mobile_prefix_13_to_19() -> None:
    found = find_phones("13012345678 15912345678 19912345678 12012345678")
    assert [p.value[:2] for p in found] == ["13", "15", "19"]


@pytest.mark.parametrize(
    "text", ["12345678901", "10012345678", "1381234567", "订单号1381234567890", "W2611340"]
)
def test_what_is_no_mobile_number(text: str) -> None:
    assert find_phones(text) == []


# ------------------------------------------------------------------------------- prices


@pytest.mark.parametrize(
    ("text", "amount", "span"),
    [
        ("¥99", "99", "¥99"),
        ("价格是￥1,299.00", "1299", "￥1,299.00"),
        ("99元", "99", "99元"),
        ("这个99块", "99", "99块"),
        ("才99块钱", "99", "99块钱"),
        ("九十九元", "99", "九十九元"),
        ("99.5元", "99.5", "99.5元"),
        ("九十九点五元", "99.5", "九十九点五元"),
        ("三块五", "3.5", "三块五"),
        ("两块五毛", "2.5", "两块五毛"),
        ("99元5角", "99.5", "99元5角"),
        ("3万元", "30000", "3万元"),
        ("人民币200元", "200", "人民币200元"),
        ("RMB 99", "99", "RMB 99"),
        ("这件100块的吗", "100", "100块"),
        ("大概100块左右", "100", "100块"),
        ("一百二十五块", "125", "一百二十五块"),
        ("¥99元", "99", "¥99元"),
    ],
)
def test_prices_in_yuan(text: str, amount: str, span: str) -> None:
    (price,) = find_prices(text)
    assert price.amount == Decimal(amount)
    assert price.currency == "CNY"
    assert text[price.start : price.end] == span


@pytest.mark.parametrize("text", ["两块手表", "99美元", "50日元", "一块蛋糕", "第99名", "99"])
def test_what_is_no_price_in_yuan(text: str) -> None:
    assert find_prices(text) == []


def test_several_prices() -> None:
    prices = find_prices("原价199元，现在¥149，便宜了五十块")
    assert [p.amount for p in prices] == [Decimal(199), Decimal(149), Decimal(50)]


# --------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("text", "count", "unit"),
    [
        ("我要两件", 2, "件"),
        ("买3个", 3, "个"),
        ("一双鞋", 1, "双"),
        ("五盒", 5, "盒"),
        ("十二瓶", 12, "瓶"),
        ("要 2 条", 2, "条"),
    ],
)
def test_quantities(text: str, count: int, unit: str) -> None:
    (q,) = find_quantities(text)
    assert (q.count, q.unit) == (count, unit)


@pytest.mark.parametrize("text", ["第一个", "这个", "一个月", "3个工作日", "两个小时", "1.5个"])
def test_what_is_no_quantity(text: str) -> None:
    assert find_quantities(text) == []


# ---------------------------------------------------------------------------- durations


@pytest.mark.parametrize(
    ("text", "amount", "unit", "upto", "span"),
    [
        ("30天内可以退货", "30", "day", None, "30天"),
        ("三十天无理由退货", "30", "day", None, "三十天"),
        ("7天无理由", "7", "day", None, "7天"),
        ("30日内", "30", "day", None, "30日"),
        ("7个工作日内退款", "7", "business_day", None, "7个工作日"),
        ("3-5个工作日", "3", "business_day", "5", "3-5个工作日"),
        ("三到五天送达", "3", "day", "5", "三到五天"),
        ("7至15天", "7", "day", "15", "7至15天"),
        ("两周", "2", "week", None, "两周"),
        ("两个星期", "2", "week", None, "两个星期"),
        ("一个礼拜", "1", "week", None, "一个礼拜"),
        ("三个月", "3", "month", None, "三个月"),
        ("两年质保", "2", "year", None, "两年"),
        ("24小时内发货", "24", "hour", None, "24小时"),
        ("两个钟头", "2", "hour", None, "两个钟头"),
        ("十分钟", "10", "minute", None, "十分钟"),
        ("半个月", "0.5", "month", None, "半个月"),
        ("一个半月", "1.5", "month", None, "一个半月"),
        ("一年半", "1.5", "year", None, "一年半"),
        ("半年", "0.5", "year", None, "半年"),
        ("半小时内回复", "0.5", "hour", None, "半小时"),
        ("一个半小时", "1.5", "hour", None, "一个半小时"),
    ],
)
def test_durations(text: str, amount: str, unit: str, upto: str | None, span: str) -> None:
    (d,) = find_durations(text)
    assert (d.amount, d.unit) == (Decimal(amount), unit)
    assert d.upto == (Decimal(upto) if upto else None)
    assert text[d.start : d.end] == span


@pytest.mark.parametrize("text", ["2026年", "3月5日", "周一周二", "星期一", "3月", "第三天"])
def test_what_is_no_duration(text: str) -> None:
    assert find_durations(text) == []


# ---------------------------------------------------------------------------- together


def test_a_whole_message() -> None:
    text = "订单号是W2611340，我买了两件，一共198元，7天了还没到，电话13812345678"
    assert find_entities(text) == [
        OrderId("#W2611340", 4, 12),
        Quantity(2, "件", 16, 18),
        Price(Decimal(198), 21, 25),
        Duration(Decimal(7), "day", 26, 28),
        Phone("13812345678", "+8613812345678", 35, 46),
    ]


def test_a_policy_sentence() -> None:
    text = "收到商品后30天内可退货，退款将在3-5个工作日内退回，运费10元由买家承担。"
    kinds = [(type(e).__name__, text[e.start : e.end]) for e in find_entities(text)]
    assert kinds == [
        ("Duration", "30天"),
        ("Duration", "3-5个工作日"),
        ("Price", "10元"),
    ]


def test_a_duration_is_not_also_a_quantity() -> None:
    assert find_entities("三个月") == [Duration(Decimal(3), "month", 0, 3)]


def test_full_width_letters_and_digits_read_as_ascii_with_spans_into_the_text() -> None:
    text = "订单号是Ｗ２６１１３４０，电话１３８１２３４５６７８，买了３件，共９９元，３０天内"
    assert fold_width(text) == "订单号是W2611340，电话13812345678，买了3件，共99元，30天内"
    found = find_entities(text)
    assert [type(e).__name__ for e in found] == [
        "OrderId", "Phone", "Quantity", "Price", "Duration",
    ]  # fmt: skip
    assert [text[e.start : e.end] for e in found] == [
        "Ｗ２６１１３４０", "１３８１２３４５６７８", "３件", "９９元", "３０天",
    ]  # fmt: skip
    assert found[0] == OrderId("#W2611340", 4, 12)
    assert find_order_ids("＃２６１１３４０")[0].value == "#W2611340"


def test_the_full_width_comma_is_no_thousands_separator() -> None:
    assert [p.amount for p in find_prices("买了3，99元的")] == [Decimal(99)]


def test_values_are_frozen() -> None:
    price = Price(Decimal(1), 0, 2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        price.amount = Decimal(2)  # type: ignore[misc]
