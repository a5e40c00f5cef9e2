"""Yes or no, from the store's own words: the one rule that decides how a yes/no question
is answered, used by the extractive writer (which says it first) and by the fact guard
(which stops a model that says the opposite).

``decide(question, passages)`` reads the question's terms and the passages' sentences,
clause by clause, and answers only when a clause settles it; otherwise it returns None
and nobody says yes or no. The rules, in the order they are tried (a rule that finds
clauses disagreeing with each other decides nothing):

1. **A condition the question names a value for.** A clause about the question's action
   ("cancel", "return") that restricts it ("only", "as long as", "while", "if",
   "within", "at most"...) to a value: a status the knowledge quotes ('pending'), a
   place or name ("the United States only"), a count ("only once", "one payment
   method") or a duration ("within 30 days"). The question names a value of the same
   kind: the same status, a count or duration inside the limit, or a name the clause
   lists -> yes; another status or name, or more than the limit -> no.
   "Can I cancel a processed order?" + "An order can only be cancelled if its status is
   'pending'" -> no. "Can I return it after 40 days?" + "within 30 days" -> no.
2. **A clause that restates the whole question**: every key term of the question (at
   least two) is in the clause or its passage's title, and the clause states no
   condition the question leaves open. Its polarity is the answer: "can I cancel an
   order that has shipped?" + "Once an order has shipped it can no longer be cancelled"
   -> no; "Is shipping free?" + "Shipping is free on every order" -> yes.
3. **The FAQ that asks the same question**: the question's key terms are all in an FAQ
   entry's title, and make up most of it (``_SAME_QUESTION``), and the entry opens with
   a reply ("Yes, ...", "Not at the moment.").

Key terms are the question's content terms (``bot.knowledge.text.terms``) without the
words every store question shares (order, item, product, possible...). A question that
negates ("can't I...") is not decided. Deterministic and stateless.

**Chinese** questions and passages follow the same rules, read by
``bot.generation.claims_zh``: a yes/no question ends in 吗 or asks "A不A" (能不能, 是不是,
可不可以, 有没有) and asks no "what/how/how much" (什么, 怎么, 多少, 几...); replies are "可以，",
"是的，", "不能。", "目前不能。" (``opening_reply``); clauses part at Chinese commas;
restrictions are 只/仅/只要/前提是/如果/以内/之内...; states, durations and counts are read
into the same values as English ones ("已经发货" is shipped, "一个月" is 30 days); a
named place ("only the United States") is not read in Chinese, so rule 1 does not decide
by names there.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from decimal import Decimal

from bot.generation import claims_zh as zh
from bot.generation.claims import (
    MAIN_CLAUSES,
    NUMBER_WORDS,
    ORDER_STATES,
    clauses,
    counts_in,
    durations_in,
    negated,
    reply_polarity,
    states_in,
)
from bot.knowledge.text import sentences, terms
from bot.lang.script import has_han

# ------------------------------------------------------------------------------ values

_YES_NO_QUESTION = re.compile(
    r"^\W*(?:(?:and|so|but|also|ok|okay|hi|hello)\W+)*"
    r"(?:can|could|may|might|do|does|did|is|are|was|were|will|would|should|shall|have|has"
    r"|am)\b(?!\s+(?:you|u)\s+(?:please\s+)?(?:tell|explain|show|help|give|list|describe"
    r"|let|send|check|find|look|say|know)\b)",
    re.IGNORECASE,
)
_RESTRICTION = re.compile(
    r"\b(?:only|as long as|while|if|unless|within|at most|up to|no more than|no later than"
    r"|once per|per order|with the status|until)\b",
    re.IGNORECASE,
)
_QUOTED = re.compile(
    r"(?<![\w])[\"'\u201c\u2018]([A-Za-z][A-Za-z ()-]{1,40}?)[\"'\u201d\u2019](?![\w])"
)
_NAME = re.compile(r"(?<=[a-z,;:] )([A-Z][A-Za-z]+(?: [A-Z][A-Za-z]+)*)")
_EXCEPT = re.compile(
    r"\b(?:outside(?: of)?|other than|except|besides|beyond|apart from)\b", re.IGNORECASE
)
#: A Chinese yes/no question: "...吗？", "A不A" (能不能, 是不是, 可不可以), "有没有", "是否".
_ZH_YES_NO = re.compile(r"吗[\W_]*$|([\u4e00-\u9fff])不\1|有没有|是否")
#: ... unless it asks what, how, how much, which, when or who ("能告诉我多少钱吗").
_ZH_WH = re.compile(r"什么|怎么|怎样|如何|多少|多久|多长|几|哪|为什么|谁|何时")
_ZH_A_NOT_A = re.compile(r"([\u4e00-\u9fff])不(?=\1)|(?<=有)没(?=有)")
_ZH_RESTRICTION = re.compile(
    r"只|仅|前提|如果|若|除非|以内|之内|(?<=[天日周月年])内|最多|至多|不超过|期间|的时候|时$"
)
_ZH_WITHIN = re.compile(r"以内|之内|(?<=[天日周月年])内")
#: Terms every store question shares: they say nothing about what is asked.
GENERIC_TERMS = frozenset(
    terms(
        "order orders item items product products thing things something anything possible "
        "able allowed allow already still also really actually store shop purchase"
    )
    + terms("订单 商品 东西 可以 能 还 已经 请问 你们 我")
)
_DAYS = {
    "day": 1,
    "calendar day": 1,
    "business day": 1,
    "working day": 1,
    "week": 7,
    "month": 30,
    "year": 365,
}
_UNIT_TERMS = frozenset(terms("day days week weeks month months year years business working"))
_NUMBER_TERMS = frozenset(terms(" ".join(NUMBER_WORDS)))


@dataclass(frozen=True)
class YesNo:
    """The answer (True: yes) and the passage sentence that settles it (``passage``: the
    position of its passage in the list given); ``sentence`` is "" when the only one
    opens with the opposite reply ("Yes, as long as it is pending" settles a shipped
    order's "no") and cannot be quoted after the answer."""

    yes: bool
    passage: int
    sentence: str


def is_yes_no_question(question: str) -> bool:
    q = question.strip()
    if has_han(q):
        return _ZH_YES_NO.search(q) is not None and _ZH_WH.search(q) is None
    return bool(_YES_NO_QUESTION.search(q))


def opening_reply(sentence: str) -> bool | None:
    """True when a sentence opens with a yes ("Yes, ...", "可以，..."), False with a no
    ("No, ...", "目前不能。"), None otherwise."""
    said = reply_polarity(sentence)
    if said is None and has_han(sentence):
        return zh.reply_polarity(sentence)
    return said


def _negated(text: str) -> bool:
    """Whether a clause or question says no; a Chinese question's "A不A" (能不能) asks."""
    if has_han(text):
        return zh.negated(_ZH_A_NOT_A.sub("", text))
    return negated(text)


# ---------------------------------------------------------------------------- reading


@dataclass(frozen=True)
class _Clause:
    passage: int
    sentence: str
    text: str
    terms: frozenset[str]
    title_terms: frozenset[str]
    negated: bool
    restricted: bool


@dataclass(frozen=True)
class _Values:
    """The values a text names, by kind: quoted statuses (as term sets), names, the
    counts by what they count (``_counts``) and the longest duration in days."""

    statuses: frozenset[str]
    names: frozenset[str]
    counts: dict[str, Decimal]
    days: Decimal | None

    @property
    def any(self) -> bool:
        return bool(self.statuses or self.names or self.counts or self.days)


@dataclass(frozen=True)
class _Question:
    terms: frozenset[str]  # content terms without the generic ones
    key: frozenset[str]  # ... and without the values it names
    values: _Values
    outside: bool  # "outside the United States": a name the question excludes
    statuses: frozenset[str]  # the order states the question could name


def _clauses(passages: Sequence[tuple[str, str]]) -> list[_Clause]:
    out: list[_Clause] = []
    for i, (title, text) in enumerate(passages):
        title_terms = frozenset(terms(title))
        for sentence in sentences(text):
            chinese = has_han(sentence)
            pieces = zh.clauses(sentence) if chinese else clauses(sentence, MAIN_CLAUSES)
            restriction = _ZH_RESTRICTION if chinese else _RESTRICTION
            for piece in pieces:
                out.append(
                    _Clause(
                        i,
                        sentence,
                        piece,
                        frozenset(terms(piece)),
                        title_terms,
                        _negated(piece),
                        restriction.search(piece) is not None,
                    )
                )
    return out


def _statuses(passages: Sequence[tuple[str, str]]) -> frozenset[str]:
    """Order states: the common ones, and the values the knowledge quotes ('pending',
    "return requested"), lower case."""
    found = set(ORDER_STATES)
    for title, text in passages:
        found.update(m.group(1).lower() for m in _QUOTED.finditer(f"{title}\n{text}"))
    return frozenset(found)


def _values(text: str, statuses: frozenset[str]) -> _Values:
    if has_han(text):
        return _chinese_values(text)
    names = frozenset(n.lower() for n in _NAME.findall(text))
    days = [v * _DAYS[unit] for v, unit in durations_in(text) if unit in _DAYS]
    counts: dict[str, Decimal] = {}
    for c in counts_in(text):
        counts[c.counted] = max(c.value, counts.get(c.counted, c.value))
    return _Values(frozenset(states_in(text, statuses)), names, counts, max(days) if days else None)


def _chinese_values(text: str) -> _Values:
    """A Chinese text's values: states by their English names, durations and counts (no
    names: a Chinese place name is not told from other words)."""
    days = [s.high * _DAYS[s.unit] for s in zh.duration_spans(text) if s.unit in _DAYS]
    counts: dict[str, Decimal] = {}
    for c in zh.counts_in(text):
        counts[c.counted] = max(c.value, counts.get(c.counted, c.value))
    return _Values(frozenset(zh.states_in(text)), frozenset(), counts, max(days) if days else None)


def _read_question(question: str, passages: Sequence[tuple[str, str]]) -> _Question | None:
    question = _ZH_A_NOT_A.sub("", question)  # "是不是免运费" asks "是免运费"
    q_terms = frozenset(terms(question)) - GENERIC_TERMS
    if not q_terms:
        return None
    statuses = _statuses(passages)
    values = _values(question, statuses)
    if has_han(question):  # the words naming a state ("已经发货") or a number ("一个月")
        named = set(q_terms) - set(terms(zh.name_states(question)))
        key = frozenset(t for t in q_terms - named if not (t.isdigit() or zh.is_numeral(t)))
        return _Question(q_terms, key, values, False, statuses)
    named = set(terms(" ".join(values.statuses | values.names)))
    key = frozenset(t for t in q_terms - named - _UNIT_TERMS - _NUMBER_TERMS if not t.isdigit())
    return _Question(q_terms, key, values, _EXCEPT.search(question) is not None, statuses)


# ---------------------------------------------------------------------------- deciding


def decide(question: str, passages: Sequence[tuple[str, str]]) -> YesNo | None:
    """Yes or no to ``question`` from ``passages`` (title, text), or None when they do
    not settle it (see the module for the rules)."""
    if not is_yes_no_question(question) or _negated(question):
        return None
    q = _read_question(question, passages)
    if q is None:
        return None
    units = _clauses(passages)
    settled: YesNo | None = None
    for found in (_by_condition(units, q), _by_restatement(units, q), _by_faq(passages, q)):
        answers = {d.yes for d in found}
        if len(answers) > 1 or (settled is not None and answers and answers != {settled.yes}):
            return None  # the clauses disagree: say neither
        if answers:
            # a sentence to quote that does not open with the opposite reply ("Yes, as
            # long as it is pending." settles "no" for a shipped order, but cannot say it)
            quotable = [d for d in found if opening_reply(d.sentence) in (None, d.yes)]
            if quotable:
                return quotable[0]
            settled = replace(found[0], sentence="")
    return settled


def _by_condition(units: list[_Clause], q: _Question) -> list[YesNo]:
    """Rule 1: a restricting clause about the question's action, a value of each."""
    out: list[YesNo] = []
    for c in units:
        if c.negated or not q.key & (c.terms | c.title_terms):
            continue
        v = _values(c.text, q.statuses)
        counted = q.values.counts.keys() & v.counts.keys()
        if not (c.restricted or counted):  # "with one payment method" limits by itself
            continue
        low = c.text.lower()
        within = _ZH_WITHIN.search(c.text) is not None or "within" in low
        verdict: bool | None = None
        if q.values.statuses and v.statuses:
            verdict = bool(q.values.statuses & v.statuses)
        elif q.values.names and v.names and "only" in low:
            verdict = bool(q.values.names & v.names) != q.outside
        elif q.values.days is not None and v.days is not None and within:
            verdict = q.values.days <= v.days
        elif counted:
            verdict = all(q.values.counts[n] <= v.counts[n] for n in counted)
        if verdict is not None:
            out.append(YesNo(verdict, c.passage, c.sentence))
    return out


def _by_restatement(units: list[_Clause], q: _Question) -> list[YesNo]:
    """Rule 2: a clause holding the question's terms (two at least; its passage's title
    may hold the others)."""
    if len(q.terms) < 2:
        return []
    out: list[YesNo] = []
    for c in units:
        if not q.terms <= (c.terms | c.title_terms) or len(q.terms & c.terms) < 2:
            continue
        if c.restricted and not q.values.any:
            continue  # "while it is pending we can...": a condition the question left open
        out.append(YesNo(not c.negated, c.passage, c.sentence))
    return out


_SAME_QUESTION = 0.6  # share of an FAQ question's terms the shopper's must hold


def _by_faq(passages: Sequence[tuple[str, str]], q: _Question) -> list[YesNo]:
    """Rule 3: an FAQ entry asking the same question, opening with its reply."""
    out: list[YesNo] = []
    for i, (title, text) in enumerate(passages):
        asked = set(terms(title)) - GENERIC_TERMS
        if not title.rstrip().endswith(("?", "\uff1f")) or not q.terms <= asked:
            continue
        if len(q.terms) < _SAME_QUESTION * len(asked):
            continue  # the FAQ asks more than the shopper did: another question
        opening = next(iter(sentences(text)), "")
        polarity = opening_reply(opening)
        if polarity is not None:
            out.append(YesNo(polarity, i, opening))
    return out
