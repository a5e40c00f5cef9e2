"""What a shopper's short answers mean, in English and Chinese: yes or no, "I have no
order number", the cancellation reasons the store policy knows, "all the items", and the
words that offer a name and zip code.

The words are tables (one per meaning); ``says_yes_or_no``, ``says_no_order``,
``reason_in``, ``says_all_items`` and ``offers_credentials`` are the rules that read them
(the English forms of the last four are ``bot.store_actions.parsing``'s). English phrases
match as whole words; Chinese ones, which are written without spaces, match where they stand in the text (they are
chosen long enough, two characters or more, to mean one thing: "买错了", "没有订单号").
The NLU's reason entity (``bot.nlu.entities``) and the store forms
(``bot.store_actions``) both read reasons from ``REASON_PHRASES``; a store adds its own
with nlu.yml ``synonym:`` entries whose value is a reason.

Pure functions over strings; safe from any thread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

from bot.lang.script import has_han
from bot.lang.zh_entities import fold_width
from bot.text_rules import NON_HAN_WORD_CHAR

__all__ = [
    "AFFIRM_PHRASES",
    "ALL_ITEMS_PHRASES",
    "CREDENTIAL_CUES",
    "DENY_PHRASES",
    "NO_ORDER_PHRASES",
    "REASON_MISTAKE",
    "REASON_NO_LONGER_NEEDED",
    "REASON_PHRASES",
    "find_phrases",
    "offers_credentials",
    "phrase_pattern",
    "reason_in",
    "says_all_items",
    "says_no_order",
    "says_yes_or_no",
]

REASON_NO_LONGER_NEEDED = "no longer needed"
REASON_MISTAKE = "ordered by mistake"

#: Cancellation reasons in Chinese -> the policy's canonical reason. Not "不要了"/"不用了":
#: those are a plain no ("不要了" at a confirmation must not change the reason). The
#: English phrases are ``bot.nlu.entities.DEFAULT_REASON_SYNONYMS`` (and the forms' wider English rule).
REASON_PHRASES: dict[str, str] = {
    phrase: REASON_MISTAKE
    for phrase in (
        "下错单",
        "下错了",
        "买错了",
        "买错",
        "拍错了",
        "拍错",
        "点错了",
        "选错了",
        "订错了",
        "不小心下单",
        "不小心买",
        "不小心下",
        "误操作",
        "误拍",
        "误下单",
        "重复下单",
        "下了两次",
        "买重复了",
    )
} | {
    phrase: REASON_NO_LONGER_NEEDED
    for phrase in (
        "不需要了",
        "不需要",
        "不想要了",
        "不想要",
        "用不上了",
        "用不着了",
        "没用了",
        "改变主意",
        "改主意了",
        "不想买了",
        "已经有了",
        "已经买了",
    )
}

#: "I have no order (number)", as a whole answer or inside one.
NO_ORDER_PHRASES: tuple[str, ...] = (
    "没有订单号",
    "没有单号",
    "没有订单",
    "没订单号",
    "没单号",
    "不记得订单号",
    "不记得单号",
    "忘了订单号",
    "忘记订单号",
    "忘了单号",
    "忘记单号",
    "找不到订单号",
    "找不到单号",
    "不知道订单号",
    "不知道单号",
    "和订单无关",
    "跟订单无关",
    "与订单无关",
    "不是订单的问题",
)

#: "All of the order's items" ("全部退掉", "整单换").
ALL_ITEMS_PHRASES: tuple[str, ...] = (
    "全部",
    "全都",
    "所有的",
    "所有商品",
    "所有东西",
    "整单",
    "整个订单",
    "都退",
    "都换",
    "两件都",
    "两个都",
)

#: Words that offer a name and a zip code to be identified by ("我叫Noah Brown，邮编80279").
CREDENTIAL_CUES: tuple[str, ...] = ("我叫", "我是", "名字", "姓名", "邮编", "邮政编码")

#: A yes or a no, as the whole answer (punctuation and "的"/"啊"/"吧" endings aside).
#: Not "cancel"/"取消": asked "cancel order #W…?", it means yes.
AFFIRM_PHRASES: tuple[str, ...] = (
    "yes",
    "y",
    "yeah",
    "yep",
    "sure",
    "ok",
    "okay",
    "correct",
    "confirm",
    "是",
    "是的",
    "对",
    "对的",
    "没错",
    "确认",
    "确定",
    "好",
    "好的",
    "行",
    "可以",
    "嗯",
    "要",
    "同意",
    "没问题",
)
DENY_PHRASES: tuple[str, ...] = (
    "no",
    "n",
    "nope",
    "不",
    "不是",
    "不对",
    "不要",
    "不用",
    "不行",
    "不可以",
    "不确定",
    "否",
    "算了",
    "别",
    "先不",
    "再想想",
)

_CLAUSE_BREAK = re.compile(r"[\s。.!！?？,，~～、…;；]+")
_PARTICLES = re.compile(r"(?<=.)[的啊呀吧啦哦了嘛呢]+$")


def _answer_key(clause: str) -> str:
    """One clause of a short answer, lowercased, said once ("好的好的" -> "好的"), its
    final particles dropped ("好的" -> "好", "不要了" -> "不要")."""
    key = clause.strip().lower()
    for size in range(1, len(key) // 2 + 1):
        if len(key) % size == 0 and key == key[:size] * (len(key) // size):
            key = key[:size]
            break
    return _PARTICLES.sub("", key)


_AFFIRM_KEYS = frozenset(_answer_key(p) for p in AFFIRM_PHRASES)
_DENY_KEYS = frozenset(_answer_key(p) for p in DENY_PHRASES)


def says_yes_or_no(text: str) -> bool | None:
    """True for a yes, False for a no, None when ``text`` is neither as a whole answer.
    Each clause must say the same: "好的！" and "是的，确认" are yes, "算了，不要了" no,
    "好的，不过要换个地址" neither."""
    clauses = [_answer_key(c) for c in _CLAUSE_BREAK.split(fold_width(text or "")) if c]
    if not clauses:
        return None
    if all(c in _DENY_KEYS for c in clauses):
        return False
    if all(c in _AFFIRM_KEYS for c in clauses):
        return True
    return None


def phrase_pattern(phrase: str) -> str:
    """A regex for ``phrase``: an English word sequence as whole words (any spacing; the
    apostrophe optional), a Chinese phrase wherever it stands (a Latin edge of it not
    inside a Latin word)."""
    parts = []
    for token in phrase.split():
        esc = re.escape(token).replace("'", "['’]?")
        if token.lower() == "anymore":
            esc = r"any\s?more"
        parts.append(esc)
    body = r"\s*".join(parts) if has_han(phrase) else r"\s+".join(parts)
    # a Latin edge must not run into a Latin word; a Han edge may touch anything
    before = "" if has_han(phrase[:1]) else rf"(?<!{NON_HAN_WORD_CHAR})"
    after = "" if has_han(phrase[-1:]) else rf"(?!{NON_HAN_WORD_CHAR})"
    return rf"{before}(?:{body}){after}"


def find_phrases(text: str, phrases: Iterable[str]) -> list[tuple[str, int, int]]:
    """``(phrase, start, end)`` for each phrase found in ``text`` (longest first where
    phrases overlap; case-insensitive; full-width letters read as ASCII)."""
    ordered = sorted({p.strip() for p in phrases if p.strip()}, key=len, reverse=True)
    if not ordered:
        return []
    regex = re.compile("|".join(f"({phrase_pattern(p)})" for p in ordered), re.IGNORECASE)
    return [
        (ordered[m.lastindex - 1], m.start(), m.end())
        for m in regex.finditer(fold_width(text or ""))
        if m.lastindex
    ]


def reason_in(text: str, phrases: Mapping[str, str] = REASON_PHRASES) -> str | None:
    """The canonical reason of the first reason phrase in ``text``; None when none."""
    found = find_phrases(text, phrases)
    if not found:
        return None
    lowered = {p.lower(): v for p, v in phrases.items()}
    return lowered.get(found[0][0].lower())


def says_all_items(text: str) -> bool:
    """Does ``text`` (Chinese) ask for all of an order's items?"""
    return bool(find_phrases(text, ALL_ITEMS_PHRASES))


def offers_credentials(text: str) -> bool:
    """Does ``text`` use a Chinese word that offers a name or zip code?"""
    return bool(find_phrases(text, CREDENTIAL_CUES))


def says_no_order(text: str) -> bool:
    """Does ``text`` say the shopper has no order (number) to give?"""
    return bool(find_phrases(text, NO_ORDER_PHRASES))
