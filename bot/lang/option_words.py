"""Chinese words for the option values an English catalog writes: colours and sizes.

A Chinese shopper asks for "黑色的" or "大号" where the catalog says ``black`` or ``large``;
a Chinese answer says "蓝色" where the catalog says ``blue``. The knowledge answer's variant
narrowing (``bot.knowledge.catalog``) and the fact guard's reading of Chinese answers
(``bot.generation.claims_zh``) both read these tables, so a word means the same value in
questions and answers. A store whose catalog is written in Chinese needs none of them.
"""

from __future__ import annotations

__all__ = ["COLOUR_WORDS", "SIZE_WORDS", "words_for"]

#: Chinese colour word -> the English colour value.
COLOUR_WORDS: dict[str, str] = {
    "黑色": "black", "黑的": "black", "白色": "white", "白的": "white",
    "红色": "red", "红的": "red", "蓝色": "blue", "蓝的": "blue",
    "绿色": "green", "绿的": "green", "黄色": "yellow", "黄的": "yellow",
    "紫色": "purple", "紫的": "purple", "灰色": "grey", "灰的": "grey",
    "粉色": "pink", "粉红色": "pink", "粉的": "pink", "橙色": "orange",
    "棕色": "brown", "咖啡色": "brown", "米色": "beige",
    "藏青色": "navy", "藏青": "navy", "海军蓝": "navy",
    "金色": "gold", "玫瑰金": "rose gold", "银色": "silver", "深空灰": "space grey",
}  # fmt: skip

#: Chinese size word -> the English size value.
SIZE_WORDS: dict[str, str] = {"小号": "small", "中号": "medium", "大号": "large"}

_BY_VALUE: dict[str, tuple[str, ...]] = {}
for _word, _value in {**COLOUR_WORDS, **SIZE_WORDS}.items():
    _BY_VALUE[_value] = (*_BY_VALUE.get(_value, ()), _word)


def words_for(value: str) -> tuple[str, ...]:
    """The Chinese words for English option ``value`` ("black" -> ("黑色", "黑的")); none for
    a value the tables do not know."""
    return _BY_VALUE.get(value.lower(), ())
