"""Which language a text is written in, told by its script.

Clerk serves English and Chinese (``Language``). A message is Chinese when it has at least
as many Han characters as English words: a Han character weighs as much as a word, because
Chinese messages often carry English product names ("AirPods Pro多少钱", "iPhone 15 Pro Max
有货吗" are Chinese) while English messages rarely carry more Chinese than English ("do you
ship to 北京" is English). Ties go to Chinese. Only Latin words of two letters or more count,
and not when glued to digits: an order id ("W2611340"), a size ("XL" counts, "3XL" does not)
or a lone "I" does not outvote a Chinese sentence. A text with neither (digits, emoji, an
order id alone) has no language of its own: ``detect_language`` returns ``default``, which a
bilingual conversation sets to the language it is already in.

Pure functions over strings; safe from any thread. Imports nothing of ``bot``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Literal

from bot.text_rules import HAN

Language = Literal["en", "zh"]
LANGUAGES: tuple[Language, ...] = ("en", "zh")

# HAN: Han ideographs (``bot.text_rules.HAN``, the one definition). ``〇`` (the Han zero)
# is a symbol, not among them.
_HAN_CHAR = re.compile(f"[{HAN}]")
_HAN_RUN = re.compile(f"[{HAN}]+")
_LATIN_WORD = re.compile(
    r"(?<![A-Za-z0-9\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\u00c0-\u024f])"
    r"[A-Za-z\uff21-\uff3a\uff41-\uff5a\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f]{2,}"
    r"(?![A-Za-z0-9\uff10-\uff19\uff21-\uff3a\uff41-\uff5a\u00c0-\u024f])"
)


def han_count(text: str) -> int:
    """How many Han characters ``text`` holds."""
    return len(_HAN_CHAR.findall(text))


def latin_word_count(text: str) -> int:
    """How many Latin-script words of two letters or more, not glued to digits."""
    return len(_LATIN_WORD.findall(text))


def has_han(text: str) -> bool:
    return _HAN_CHAR.search(text) is not None


def han_runs(text: str) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each maximal run of Han characters, in text order."""
    for m in _HAN_RUN.finditer(text):
        yield m.start(), m.end()


def detect_language(text: str, default: Language = "en") -> Language:
    """``"zh"`` when ``text`` has Han characters and at least as many of them as Latin
    words, ``"en"`` when it has Latin words and fewer Han characters, ``default`` when it
    has neither (see the module docstring for why)."""
    han = han_count(text)
    words = latin_word_count(text)
    if han == 0 and words == 0:
        return default
    return "zh" if han >= words else "en"


def parse_language(value: object) -> Language | None:
    """A language setting's value as a ``Language``: ``"zh"``, ``"zh-CN"``, ``"zh_Hans"``
    -> ``"zh"``; ``"en"``, ``"EN-us"`` -> ``"en"``; None for any other language."""
    base = str(value).strip().lower().replace("_", "-").split("-", 1)[0]
    return next((language for language in LANGUAGES if language == base), None)
