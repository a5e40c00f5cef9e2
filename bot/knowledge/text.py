"""Text helpers shared by the lexical index and the extractive writer.

``terms`` is the one tokenizer of the knowledge base: the BM25 index is built with it and
queried with it, and the extractive writer scores sentences with it, so "cancelled",
"cancellation" and "cancel" meet in one term everywhere. It is a small, deterministic,
English-only normaliser (lower case, stop words out, a light suffix stemmer), chosen over a
full Snowball stemmer to keep the dependency list short; the recall test in
``tests/test_knowledge.py`` is what tells whether it is good enough.
"""

from __future__ import annotations

import re
from functools import lru_cache

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


def terms(text: str) -> list[str]:
    """Content terms of ``text`` in order: normalised, stop words removed, stemmed."""
    return [stem(w) for w in _WORD.findall(normalise(text)) if w not in STOPWORDS]


_BULLET = re.compile(r"^\s*(?:[-*+]|\d+[.)])\s+")
_SENTENCE_END = re.compile(r"(?<=[.!?])[\"')\]]*\s+(?=[A-Z0-9\"'(])")


def sentences(text: str) -> list[str]:
    """Split passage text into sentences. Lines wrapped inside a paragraph are joined; a
    bullet item or a blank line always ends a sentence."""
    units: list[str] = []
    current: list[str] = []
    for line in text.splitlines():
        stripped = line.strip()
        is_bullet = _BULLET.match(line) is not None
        if (not stripped or is_bullet) and current:
            units.append(" ".join(current))
            current = []
        if stripped:
            current.append(_BULLET.sub("", line).strip() if is_bullet else stripped)
    if current:
        units.append(" ".join(current))
    out: list[str] = []
    for unit in units:
        out.extend(part.strip() for part in _SENTENCE_END.split(unit) if part.strip())
    return out


_MD_LINK = re.compile(r"\[([^\]]+)\]\([^)]*\)")
_MD_EMPHASIS = re.compile(r"(\*\*|__|`)")


def strip_markdown(text: str) -> str:
    """Inline markdown to plain text: links keep their label, emphasis and code marks go."""
    text = _MD_LINK.sub(r"\1", text)
    return _MD_EMPHASIS.sub("", text)


def slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "section"
