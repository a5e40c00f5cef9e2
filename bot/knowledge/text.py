"""Text helpers shared by the lexical index and the extractive writer.

``terms`` is the one tokenizer of the knowledge base: the BM25 index is built with it and
queried with it, and the extractive writer scores sentences with it, so "cancelled",
"cancellation" and "cancel" meet in one term everywhere. For English it is a small,
deterministic normaliser (lower case, stop words out, a light suffix stemmer), chosen over a
full Snowball stemmer to keep the dependency list short; the recall test in
``tests/test_knowledge.py`` is what tells whether it is good enough.

Chinese has no spaces between words: each run of Han characters is cut into words by
``bot.lang.segment`` in search mode (a long word also yields the dictionary words inside it,
"羽绒服" -> "羽绒", "羽绒服", so a query and a passage cut differently still meet), and
Chinese stop words (particles, pronouns, question words: the counterparts of the English
list) are dropped. The choice is made per run, not per text, so a bilingual catalog works
and English text gives exactly the terms it gave before.
"""

from __future__ import annotations

import re
from functools import lru_cache

from bot.lang import han_runs, segment
from bot.lang.script import HAN, has_han

_STOPWORD_TEXT = """
    a about above after again against all also am an and any are as at be because been before
    being below between both but by can could did do does doing done down during each either
    else ever few for from further get gets got had has have having he her here hers herself
    him himself his how i if in into is it its itself just let lets like me mine more most my
    myself need needs nor now of off on once one only or other our ours ourselves out over own
    please same she should so some such than that the their theirs them themselves then there
    these they this those through to too under until up upon us very via want wants was we were
    what when where which while who whom whose why will with would yes yet you your yours
    yourself yourselves hi hello hey thanks thank ok okay tell know
"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())

_CONTRACTIONS = re.compile(r"n't\b|'(?:s|re|ll|ve|d|m)\b")
_IRREGULAR_NOT = re.compile(r"\b(?:can't|won't|shan't)")  # not "ca not", "wo not"
_IRREGULAR_NOT_TO = {"can't": "can not", "won't": "will not", "shan't": "shall not"}
_WORD = re.compile(r"[a-z0-9]+")
_DOUBLE = re.compile(r"([b-df-hj-np-rtv-z])\1$")


def normalise(text: str) -> str:
    """Lower case, typographic quotes made plain, contractions opened."""
    text = text.lower().replace("\u2019", "'").replace("\u2018", "'")
    text = _IRREGULAR_NOT.sub(lambda m: _IRREGULAR_NOT_TO[m.group(0)], text)
    return _CONTRACTIONS.sub(lambda m: " not" if m.group(0) == "n't" else "", text)


@lru_cache(maxsize=65536)
def stem(word: str) -> str:
    """A light suffix stemmer: plurals, -ed, -ing, -ation, final -e, -y and -ery (cached:
    the same few thousand words come back on every message)."""
    w = word
    if len(w) <= 3 or w.isdigit():
        return w
    if w.endswith("ies") and len(w) > 4:
        w = w[:-3] + "i"
    elif w.endswith(("sses", "shes", "ches", "xes", "zes")):
        w = w[:-2]
    elif w.endswith("s") and not w.endswith(("ss", "us", "is")):
        w = w[:-1]
    stripped = False
    for suffix, min_len in (("ation", 8), ("ing", 6), ("ed", 5)):
        if w.endswith(suffix) and len(w) >= min_len:
            w = w[: -len(suffix)]
            stripped = True
            break
    if stripped and _DOUBLE.search(w):
        w = w[:-1]
    if len(w) > 4 and w.endswith("e"):
        w = w[:-1]
    if len(w) > 3 and w.endswith("y"):
        w = w[:-1] + "i"
    if len(w) > 5 and w.endswith("eri"):  # delivery, deliveries -> deliver
        w = w[:-1]
    return w


#: Chinese words that carry no content in a shopper's question or a passage: particles,
#: pronouns, question words, politeness, "can"/"want"/"have" (as the English list does).
_ZH_STOPWORD_TEXT = """
    的 地 得 了 着 过 是 在 和 与 及 或 也 都 就 还 又 很 太 吗 呢 吧 啊 呀 哦 嗯 嘛 么 啦
    我 你 您 他 她 它 我们 你们 他们 她们 咱们 自己 这 那 这个 那个 这些 那些 这里 那里 这儿
    什么 怎么 怎么样 怎样 如何 哪 哪个 哪些 哪里 哪儿 为什么 为何 谁 多少 几 吗 是否 是不是
    请 请问 麻烦 一下 你好 您好 谢谢 感谢 好的 可以 能 能否 能不能 会 要 想 想要 需要 有 没有
    告诉 知道 个 把 被 给 对 从 到 让 如果 因为 所以 但是 而且 然后 可能 应该 一个 后 内 中 时
"""
ZH_STOPWORDS = frozenset(_ZH_STOPWORD_TEXT.split())


def terms(text: str) -> list[str]:
    """Content terms of ``text`` in order: normalised, stop words removed, stemmed; Chinese
    runs segmented (module docstring)."""
    out: list[str] = []
    done = 0
    for start, end in han_runs(text):
        out.extend(_english_terms(text[done:start]))
        out.extend(_chinese_terms(text[start:end]))
        done = end
    out.extend(_english_terms(text[done:]))
    return out


def _english_terms(text: str) -> list[str]:
    return [stem(w) for w in _WORD.findall(normalise(text)) if w not in STOPWORDS]


@lru_cache(maxsize=65536)
def _chinese_terms(run: str) -> tuple[str, ...]:
    """The content words of a run of Han characters (cached, like ``stem``: passages and
    questions repeat their phrases)."""
    return tuple(w for w in segment(run, for_search=True) if w not in ZH_STOPWORDS)


_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_SENTENCE_END = re.compile(rf"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'({HAN}])")
#: Chinese sentences end in 。！？ (or ! ? before a Han character) with no space after.
_ZH_SENTENCE_END = re.compile(rf"(?:[。！？]+|[!?]+(?=[{HAN}]))[”’」』）)】\"']*\s*")
_HAN_END = re.compile(rf"[{HAN}，、；：]$")
_HAN_START = re.compile(rf"^[{HAN}]")


def sentences(text: str) -> list[str]:
    """Split passage text into sentences. Lines wrapped inside a paragraph are joined (with
    no space between Chinese characters); a bullet item or a blank line always ends a
    sentence. Chinese sentences end at 。！？ with or without a space after."""
    units: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        is_bullet = _BULLET.match(line) is not None
        if (not stripped or is_bullet) and current:
            units.append(_join_lines(current))
            current = []
        if stripped:
            current.append(_BULLET.sub("", line).strip() if is_bullet else stripped)
    if current:
        units.append(_join_lines(current))
    out: list[str] = []
    for unit in units:
        for part in _SENTENCE_END.split(unit):
            out.extend(_chinese_sentences(part.strip()) if has_han(part) else [part.strip()])
    return [s for s in out if s]


def _join_lines(lines: list[str]) -> str:
    joined = lines[0]
    for line in lines[1:]:
        glue = "" if _HAN_END.search(joined) and _HAN_START.match(line) else " "
        joined += glue + line
    return joined


def _chinese_sentences(text: str) -> list[str]:
    out, done = [], 0
    for m in _ZH_SENTENCE_END.finditer(text):
        out.append(text[done : m.end()].strip())
        done = m.end()
    out.append(text[done:].strip())
    return [s for s in out if s]


_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|`)")


def strip_markdown(text: str) -> str:
    """Inline markdown to plain text: links keep their label, emphasis and code marks go."""
    text = _MD_LINK.sub(r"\1", text)
    return _MD_EMPHASIS.sub("", text)


def slug(text: str) -> str:
    """A heading as an id part: lower-case letters, digits and Han characters, ``-`` between
    ("退货政策 (7天)" -> "退货政策-7天"), so Chinese headings get ids of their own."""
    return re.sub(rf"[^a-z0-9{HAN}]+", "-", text.lower()).strip("-") or "section"
