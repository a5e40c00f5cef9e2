"""Language: telling English from Chinese, and reading Chinese text.

- ``script``: ``detect_language`` (``"en"`` | ``"zh"``, by the share of Han characters),
  ``parse_language`` (a setting's value), ``han_runs``;
- ``segment``: Chinese word segmentation (``rjieba``, dictionary compiled in);
- ``numbers``: ``parse_chinese_number`` ("一百二十五", "两", "3万", "九十九点五");
- ``price_range``: ``find_price_range``, the price bounds a shopper states in English or
  Chinese ("under $30", "500元以下", "100到300元之间");
- ``answers``: tables of short answers (yes/no, "没有订单号", cancellation reasons) and the
  rules that read them;
- ``zh_entities``: order ids, mainland phone numbers, prices (¥/元/块), quantities and
  durations in Chinese text, as frozen dataclasses with spans; ``fold_width`` (full-width
  letters and digits to ASCII, one for one).

Pure functions, no state of Clerk's own; safe from any thread. It sits just above the
lowest layer so that the Chinese finders share ``bot.text_rules``' order-id rule, and below
everything that reads shopper or answer text (NLU, knowledge, generation).
"""

from bot.lang.numbers import parse_chinese_number
from bot.lang.script import LANGUAGES, Language, detect_language, han_runs, parse_language
from bot.lang.segment import segment, segment_spans
from bot.lang.zh_entities import (
    Duration,
    OrderId,
    Phone,
    Price,
    Quantity,
    ZhEntity,
    find_durations,
    find_entities,
    find_order_ids,
    find_phones,
    find_prices,
    find_quantities,
    fold_width,
)

__all__ = [
    "LANGUAGES",
    "Duration",
    "Language",
    "OrderId",
    "Phone",
    "Price",
    "Quantity",
    "ZhEntity",
    "detect_language",
    "find_durations",
    "find_entities",
    "find_order_ids",
    "find_phones",
    "find_prices",
    "find_quantities",
    "fold_width",
    "han_runs",
    "parse_chinese_number",
    "parse_language",
    "segment",
    "segment_spans",
]
