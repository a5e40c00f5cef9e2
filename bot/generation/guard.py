"""The fact guard: nothing a model writes reaches a shopper unless the evidence supports it.

``FactGuard.check(text, evidence)`` reads an answer sentence by sentence and lists every
claim the evidence does not support. ``Evidence`` is what the writer had: the numbered
passages it put in the prompt, the catalog facts of the product the question named, and
``support`` text that is known to be grounded (the extractive answer built from the same
evidence). What counts as supported:

* **prices** ("$49.99", "49.99 dollars", "€19.99", "19.99 EUR"): in the store's currency (a
  price marked with another currency is unsupported), the price of a catalog variant of the
  product the sentence is about, narrowed by the options the sentence names ("the blue M
  T-shirt costs ..." must be a blue M T-shirt's price), or a price printed in a cited
  non-product passage;
* **numbers, percentages, times of day**: printed in a cited passage, the catalog text of the
  product in context, or the support text ("30", "30-day" and "thirty" are one number;
  "6 p.m." is 18:00);
* **durations** ("5 to 7 business days", "two weeks"): number and unit together in a cited
  passage or the support text, a range as a whole; "business days" only where a passage
  says so (a plain "days" may stand for them);
* **product names**: a catalog product may be named (the catalog is evidence); a capitalised
  name that is neither in the catalog nor in the evidence is an invented product or brand,
  and a name of several capitalised words ("Apple Pay") must be there as a whole;
  currency codes and time zones whose long name a passage holds ("ET") are no names;
* **options**: a colour the product does not come in, an option combination no variant has
  (with a price or stock claim), another product's colour/material/style (outside the
  product's own names and values: "Fleece Jacket", "natural rubber"), an item of a listed
  enumeration or a "comes in X" the evidence does not hold, are unsupported;
* **counts** ("comes in 4 colors", "12 versions"): the number of the product's variants,
  or of the values of the option named;
* **stock status** ("in stock", "sold out", "all in stock"): checked against the variants
  in context;
* **policy claims** (sentences about returns, refunds, shipping, cancelling, payment,
  contact...), clause by clause: each clause must be said by one statement of a cited
  policy or FAQ passage or the support (most of its terms, synonyms folded: "update" =
  "change"); a clause naming durations or order states must be said by a statement that
  holds them ("30 days from the order date" is not "within 30 days of delivery"), and
  "before it's delivered" by one that says "before"; a clause that restates a source
  clause must agree with the closest one on negation ("it can no longer be cancelled"
  -> "it can still be cancelled" is a change of meaning; a leading "No," is the reply,
  not the claim); each item of an enumeration must be in the sources ("cash on
  delivery"); words that commit the store to something (discount, coupon, free,
  compensation, guarantee, a prepaid label...) must appear in a cited passage;
* **yes or no**: a reply that opens with "Yes"/"No" must give the answer the policy
  passages give the shopper's question, when they settle it (``bot.generation.yesno``);
* **emails and URLs**: verbatim in the evidence;
* **citations**: every ``[n]`` must be a passage that was given, and an answer must cite at
  least one (``Evidence.require_citations``);
* **form**: prompt scaffolding echoed back ("[n]", "the shopper's question", "[1] (faq)")
  and sentences said twice are rejected: a model that does this is not answering;
* **topic**: at least half of a sentence group's content words must occur in the evidence
  (garbled or off-topic text carries no fact to check, but must not reach a shopper either).

**Chinese sentences** (``bot.lang.detect_language``; sentences end at 。！？；, marks may be
``【n】``) are read by ``bot.generation.claims_zh`` into the same claims (``Claims``:
"九十九元" is the price 99, "7个工作日" the duration 7 business days, "4种颜色" a count of
colours, "已发货" the order state shipped, 不/没/无法 negation), then compared by the same
rules; their Latin words (``claims_zh.latin_view``: the catalog's names are English, and
"蓝色" is read as blue) are matched against the catalog and checked as names and option
values. A duration or number supports its claim across languages ("30天" by "30 days");
policy wording does not (its terms are compared word for word).

"Cited" means marked ``[n]`` in the sentence's group: a sentence without a mark is judged
with the marks of the next sentence that has one (as in "Refunds go to the card. They take
5 to 7 business days [2]."), or, at the end of the answer, with every mark in the answer.
With ``Evidence.require_citations`` False (marketing copy, which shows no marks), every
passage counts as cited.

The shopper's question is never evidence: a number or promise that appears only in the
question ("give me a 90% discount") is unsupported in the answer.

The guard is deterministic, stateless between calls and thread-safe; it errs on the side of
rejecting (a rejected answer is replaced by the extractive one, which is always grounded).
It reads words, not meaning: a claim worded like its source but about another subject
("we'll cover the price difference" against "a gift card must cover the price
difference") passes it. ``benchmarks/guard_eval.py`` measures both sides on labelled
replies.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from functools import lru_cache

from bot.generation import claims_zh as zh
from bot.generation.base import Citation
from bot.generation.claims import (
    CLAUSES,
    CLOCK,
    DURATION,
    NUMBER,
    NUMBER_WORDS,
    ORDER_STATES,
    WORD_NUMBER,
    Count,
    DurationSpan,
    counts_in,
    duration_spans,
    negated,
    numbers_in,
    states_in,
    to_decimal,
    without_reply,
)
from bot.generation.yesno import YesNo, decide, opening_reply
from bot.knowledge.catalog import CatalogProduct, CatalogResolver, ProductFacts
from bot.knowledge.passages import product_text
from bot.knowledge.text import STOPWORDS, normalise, stem, terms
from bot.knowledge.text import sentences as passage_sentences
from bot.lang import detect_language, fold_width
from bot.lang.script import has_han
from bot.text_rules import find_emails

# ------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Violation:
    """One unsupported claim: ``kind`` is price | number | duration | product | option |
    stock | policy | commitment | citation | contact | offtopic | form."""

    kind: str
    claim: str
    sentence: str

    def __str__(self) -> str:
        return f"{self.kind}: {self.claim!r} in {self.sentence!r}"


@dataclass(frozen=True)
class Verdict:
    violations: tuple[Violation, ...] = ()

    @property
    def ok(self) -> bool:
        return not self.violations


@dataclass(frozen=True)
class Evidence:
    """What an answer may rest on. ``passages`` are numbered as the prompt numbered them
    (``Citation.index``); ``facts`` is the product the question named (if any).
    ``min_overlap``: the share of a sentence group's content words that must occur in the
    evidence at all (off-topic or garbled text fails it; 0 turns the check off)."""

    passages: tuple[Citation, ...]
    facts: ProductFacts | None = None
    support: str = ""
    require_citations: bool = True
    products: tuple[CatalogProduct, ...] = field(default=())
    min_overlap: float = 0.5
    question: str = ""

    def passage(self, index: int) -> Citation | None:
        for p in self.passages:
            if p.index == index:
                return p
        return None


# ------------------------------------------------------------------------------ patterns

CITATION = re.compile(r"\s*[\[\u3010](\d+)[\]\u3011]")  # [1] or 【1】
# Prompt scaffolding a model may echo instead of answering.
_ECHO = re.compile(
    r"\[(?:n|x|\d+\s*,\s*n|product[\w ]*|options?|item[\w ]*|price|name)\]"
    r"|(?:\[\d+\]\s*|^)\((?:product|policy|faq)\)|shopper's question|the passages? (?:is|are|says?)\b"
    r"|\bpassages?:|according to (?:the )?passage",
    re.IGNORECASE,
)
_LIST_MARK = re.compile(r"^\s*(?:[-*\u2022]|\d{1,2}[.)])\s+")
_ORDER_ID = re.compile(r"#\s?W?\d+", re.IGNORECASE)
_CODES = r"usd|eur|gbp|cad|aud|nzd|chf|jpy|cny|inr|sek|nok|dkk|pln|czk|mxn|brl|sgd|hkd"
_PRICE = re.compile(
    r"(?:[$€£¥₹]|\b(?:" + _CODES + r")\s?)\s?(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?"
    r"|\b(\d{1,3}(?:,\d{3})+|\d+)(?:\.(\d{1,2}))?\s?"
    r"(?:(?:dollars?|euros?|pounds?|bucks|" + _CODES + r")\b|[€£])"
    r"|\b(\d+)\.(\d{2})\b",
    re.IGNORECASE,
)
# What a price's currency marker says; "$" and "dollars" fit any dollar currency.
_MARKERS = {
    "$": "$",
    "dollar": "$",
    "dollars": "$",
    "bucks": "$",
    "€": "EUR",
    "euro": "EUR",
    "euros": "EUR",
    "£": "GBP",
    "pound": "GBP",
    "pounds": "GBP",
    "¥": "JPY",
    "₹": "INR",
}
_MARKER = re.compile(
    r"[$€£¥₹]|\b(?:dollars?|euros?|pounds?|bucks|" + _CODES + r")\b", re.IGNORECASE
)
_PERCENT = re.compile(r"\b(\d+(?:\.\d+)?)\s?(?:%|percent\b|per cent\b)", re.IGNORECASE)
_URL = re.compile(r"\bhttps?://\S+|\bwww\.\S+", re.IGNORECASE)


def _blank_emails(text: str) -> str:
    for start, end in reversed(_email_spans(text)):
        text = text[:start] + " " + text[end:]
    return text


def _email_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start, m.end) for m in find_emails(text, validate=False)]


def _url_spans(text: str) -> list[tuple[int, int]]:
    return [(m.start(), m.end()) for m in _URL.finditer(text)]


_IN_STOCK = re.compile(r"\b(?:in[\s-]stock|available|availability|ready to ship)\b", re.IGNORECASE)
_OUT_OF_STOCK = re.compile(
    r"\b(?:out[\s-]of[\s-]stock|sold[\s-]out|unavailable|not (?:currently )?(?:in stock|available)"
    r"|no longer available|backorder(?:ed)?)\b",
    re.IGNORECASE,
)
_DECLINE = re.compile(
    r"\b(?:i (?:do not|don't) know|i'm not sure|i am not sure|i (?:can't|cannot) (?:answer|help)"
    r"|(?:no|not enough) information|(?:passages|information) (?:do|does) not (?:say|answer|mention))",
    re.IGNORECASE,
)

# Stemmed terms that make a sentence a policy claim.
POLICY_TERMS = frozenset(
    terms(
        "return returns returned refund refunds cancel cancelled cancellation exchange exchanged "
        "ship shipped shipping shipment deliver delivery delivered track tracking warranty "
        "policy policies fee fees charge charged payment pay paid gift card email contact "
        "business hours open weekend modify modified change changed address account verify "
        "confirm identity status pending processed receipt restocking insurance customs "
        "international abroad countries discount coupon voucher promo code free refundable "
        "guarantee compensation credit swap replace replacement"
    )
    + terms(zh.POLICY_WORDS)
)
# Stemmed terms that commit the store to something: each must be in a cited passage.
COMMITMENT_TERMS = frozenset(
    terms(
        "discount discounts coupon voucher promo promotion code free complimentary compensation "
        "compensate waive waived guarantee guaranteed warranty credit rebate cashback "
        "bonus reward points loyalty gift prepaid reimburse reimbursed cover covered label"
    )
    + terms(zh.COMMITMENT_WORDS)
)
# Terms that say nothing about the store (chit-chat, the conversation itself).
_FILLER_TERMS = (
    frozenset(
        terms(
            "sure glad happy help assist assistant answer question information shopper customer "
            "store item items product products thank note certainly course great welcome "
            "sorry unfortunately however also anything else feel free ask let support team "
            "passage passages mention mentioned state stated according based not no yes "
            "come comes offer offers have has sell sells carry get can make made need find "
            "look looking buy choose pick option options available long still currently "
            "current right now yet just simply date work works usually normally typically "
            "here what each mean means must within only alternatively instead otherwise either "
            "nothing possible per already follow away go goes receive received"
        )
        + terms(zh.FILLER_WORDS)
    )
    - COMMITMENT_TERMS
)
# Words that name the same thing in policy text ("update" the address = "change" it):
# a claim's term is covered when any term of its class is.
_SYNONYMS = tuple(
    frozenset(terms(words))
    for words in (
        "change modify update edit amend",
        "swap exchange replace replacement",
        "charge fee cost",
        "ship deliver dispatch send",
        "instant instantly immediately",
        "outside abroad international internationally",
        "weekday weekdays monday friday",
        *zh.SYNONYM_WORDS,
    )
)
_CANON = {t: min(cls) for cls in _SYNONYMS for t in cls}
_NUMBER_TERMS = frozenset(terms(" ".join(NUMBER_WORDS)))


def _canon(words: Iterable[str]) -> set[str]:
    return {_CANON.get(w, w) for w in words}


_POLICY_CANON = frozenset(_canon(POLICY_TERMS))


# Words around a price ("costs 50.88 dollars"): the price check reads them.
_PRICE_WORDS = frozenset(
    terms("cost costs price priced dollar dollars buck bucks " + _CODES.replace("|", " "))
    + terms(zh.PRICE_WORDS)
)
# Time zones written short, and a word of their long name one of the passages must hold.
_ZONES = {
    "et": "eastern", "est": "eastern", "edt": "eastern", "ct": "central", "cst": "central",
    "cdt": "central", "mt": "mountain", "mst": "mountain", "pt": "pacific", "pst": "pacific",
    "pdt": "pacific", "utc": "utc", "gmt": "gmt", "cet": "cet", "bst": "bst",
}  # fmt: skip
# what "N versions", "3 colors" count: a product's variants or an option's values
_COUNT_NOUNS = frozenset(
    {
        "version", "variant", "option", "color", "colour", "size", "model", "configuration",
        "combination", "style", "choice", "kind", "type", "flavor", "flavour", "material",
        "design",
    }
)  # fmt: skip
_ALL_IN_STOCK = re.compile(
    r"\b(?:all|every one|each|both)(?: of them| \w+)?,? (?:are |is )?(?:in[\s-]stock|available)\b",
    re.IGNORECASE,
)
# an enumeration: "a, b and c" / "a, b, or c" (items are checked one by one)
_ENUMERATION = re.compile(
    r"(?<![^,;:.!?])[^,;:.!?]+(?:,[^,;:.!?]+)+,?\s+(?:and|or)\s+[^,;:.!?]+"
)  # items start after a delimiter and hold their spaces: no nested choice to backtrack
_LIST_HEAD = re.compile(
    r"^.*\b(?:in|are|is|include|includes|including|accept|accepts|offer|offers|from|like|as"
    r"|with|take|takes|get|cost|costs|priced|at|for|come|comes)\s+",
    re.IGNORECASE,
)
_OPTION_KEYS = ("color", "colour", "material", "style", "finish", "pattern", "scent", "flavor")
_LETTER_SIZES = frozenset({"XXS", "XS", "XL", "XXL", "XXXL"})
_CAPITALISED = re.compile(r"(?<![\w'])([A-Z][a-zA-Z0-9]*(?:[-'][A-Za-z0-9]+)*)")


def prices_in(text: str) -> list[tuple[str, Decimal]]:
    out = []
    for m in _PRICE.finditer(text):
        whole, cents = next(
            ((m.group(i), m.group(i + 1)) for i in (1, 3, 5) if m.group(i)), (None, None)
        )
        if whole is None:
            continue
        value = to_decimal(f"{whole}.{cents}" if cents else whole)
        if value is not None:
            out.append((m.group(0).strip(), value.quantize(Decimal("0.01"))))
    return out


def price_fits_currency(claim: str, currency: str) -> bool:
    """Whether a price as written (``€19.99``, ``19.99 EUR``, ``19.99``) may be in the
    store's ``currency``: no marker, or a marker of that currency."""
    m = _MARKER.search(claim)
    if m is None:
        return True
    marker = m.group(0).lower()
    meant = _MARKERS.get(marker, marker.upper())
    return (
        meant == currency
        or (meant == "$" and currency.endswith("D"))
        or (marker == "¥" and zh.price_fits("CNY", currency))
    )


def is_decline(text: str) -> bool:
    """Whether a reply says it cannot answer ("I don't know", "no information")."""
    return _DECLINE.search(normalise(text).replace("\u2019", "'")) is not None


def citation_marks(text: str) -> list[int]:
    return [int(n) for n in CITATION.findall(text)]


# --------------------------------------------------------------------------------- guard


class FactGuard:
    """Checks answers against their evidence and the catalog. Build once; thread-safe."""

    def __init__(
        self,
        catalog: CatalogResolver,
        *,
        policy_coverage: float = 0.7,
        restate_overlap: float = 0.75,
    ) -> None:
        self.catalog = catalog
        self.policy_coverage = policy_coverage
        self.restate_overlap = restate_overlap
        vocab: set[str] = set()
        option_words: dict[str, set[str]] = {}
        for p in catalog.products:
            vocab.update(w.lower() for w in re.findall(r"[A-Za-z0-9]+", p.name))
            for key, values in p.option_values().items():
                for value in values:
                    vocab.update(w.lower() for w in re.findall(r"[A-Za-z0-9]+", value))
                    vocab.update(w.lower() for w in re.findall(r"[A-Za-z0-9]+", key))
                    if any(k in key.lower() for k in _OPTION_KEYS) or value in _LETTER_SIZES:
                        option_words.setdefault(value.lower(), set()).add(p.product_id)
        owners_any: dict[str, set[str]] = {}
        phrases: list[str] = []
        for p in catalog.products:
            phrases.append(p.name.lower())
            for values in p.option_values().values():
                for value in values:
                    owners_any.setdefault(value.lower(), set()).add(p.product_id)
                    phrases.append(value.lower())
        self._catalog_phrases = "\n".join(phrases)
        self._catalog_pattern = re.compile(
            r"(?<![\w-])(?:"
            + "|".join(re.escape(p) for p in sorted(set(phrases), key=len, reverse=True) if p)
            + r")s?(?![\w-])",
            re.IGNORECASE,
        )
        self._catalog_vocab = frozenset(vocab)
        self._catalog_terms = frozenset(terms(" ".join(sorted(vocab))))
        self._option_patterns = [
            (
                re.compile(r"(?<![\w-])" + re.escape(v) + r"(?![\w-])", re.IGNORECASE),
                v,
                frozenset(owners | owners_any.get(v, set())),
            )
            for v, owners in sorted(option_words.items(), key=lambda t: -len(t[0]))
        ]

    # -- entry points --------------------------------------------------------------------

    def check(self, text: str, evidence: Evidence) -> Verdict:
        """All violations in a whole answer (an answer that must cite and cites nothing
        is a violation too)."""
        session = self.session(evidence)
        groups = sentence_groups(text)
        every = [n for _, marks in groups for n in marks]
        violations: list[Violation] = []
        for sentences, marks in groups:
            violations += session.check_group(sentences, marks or every).violations
        violations += session.check_cited(every, text)
        return Verdict(tuple(violations))

    def blank_catalog(self, text: str) -> str:
        """``text`` with every catalog product name and option value blanked out."""
        return self._catalog_pattern.sub(lambda m: " " * len(m.group(0)), text)

    def session(self, evidence: Evidence) -> GuardSession:
        """A checker for one answer, fed sentence groups in order (for streaming)."""
        return GuardSession(self, evidence)


_UNDECIDED = object()  # the yes/no verdict is read on the first reply that needs it


class GuardSession:
    """Checks one answer's sentence groups in order, remembering which product the answer
    is talking about ("It costs $20" after "The T-Shirt ...")."""

    def __init__(self, guard: FactGuard, evidence: Evidence) -> None:
        self.guard = guard
        self.evidence = evidence
        self.catalog = guard.catalog
        self._context: list[CatalogProduct] = []
        if evidence.facts is not None:
            self._context = [evidence.facts.product]
        else:
            for c in evidence.passages:
                if c.kind == "product":
                    for p in self.catalog.resolve_all(c.title):
                        if p.product not in self._context:
                            self._context.append(p.product)
        for product in evidence.products:
            if product not in self._context:
                self._context.append(product)
        all_text = "\n".join(f"{c.title}\n{c.text}" for c in evidence.passages)
        self._known_words = frozenset(
            w.lower() for w in re.findall(r"[A-Za-z0-9]+", all_text + "\n" + evidence.support)
        )
        # the support is an answer text: its "[2]" marks are no numbers
        self._support = CITATION.sub(" ", evidence.support)
        self._known_terms = frozenset(terms(all_text + "\n" + evidence.support))
        self._known_text = (all_text + "\n" + evidence.support).lower()
        self._said: set[str] = set()
        self._verdict: YesNo | None | object = _UNDECIDED
        self._replied = False  # the first sentence has been read

    # -- one group of sentences ----------------------------------------------------------

    def check_group(self, sentences: Sequence[str], marks: Iterable[int]) -> Verdict:
        marks = list(marks)
        violations: list[Violation] = []
        valid: list[Citation] = []
        for n in marks:
            p = self.evidence.passage(n)
            if p is None:
                violations.append(Violation("citation", f"[{n}]", " ".join(sentences)))
            elif p not in valid:
                valid.append(p)
        cited = list(self.evidence.passages) if not self.evidence.require_citations else valid
        for sentence in sentences:
            violations += self._check_form(sentence)
            violations += self._check_reply(sentence)
            violations += self._check_sentence(clean_sentence(sentence), cited)
        violations += self._check_topic(sentences)
        return Verdict(tuple(violations))

    def _check_form(self, sentence: str) -> list[Violation]:
        """No prompt scaffolding echoed back, no sentence said twice."""
        out: list[Violation] = []
        echo = _ECHO.search(sentence)
        if echo:
            out.append(Violation("form", echo.group(0), sentence))
        key = " ".join(terms(clean_sentence(sentence)))
        if key and key in self._said:
            out.append(Violation("form", "repeated sentence", sentence))
        self._said.add(key)
        return out

    def _check_reply(self, sentence: str) -> list[Violation]:
        """An answer opening "Yes, ..." or "No, ..." must give the answer the policy
        passages give, when they settle the question (``bot.generation.yesno.decide``).
        Only the answer's first sentence is a reply ("No restocking fee is charged" later
        on is a claim)."""
        first = not self._replied
        self._replied = True
        said = opening_reply(clean_sentence(sentence)) if first else None
        if said is None or not self.evidence.question:
            return []
        if self._verdict is _UNDECIDED:
            passages = [(c.title, c.text) for c in self.evidence.passages if c.kind != "product"]
            self._verdict = decide(self.evidence.question, passages)
        verdict = self._verdict
        if isinstance(verdict, YesNo) and verdict.yes != said:
            wrong = "yes" if said else "no"
            return [Violation("policy", f"answers {wrong}; the policy says otherwise", sentence)]
        return []

    def check_cited(self, marks: Iterable[int], text: str) -> list[Violation]:
        """At the end of an answer: one that must cite passages has to cite one given."""
        if not self.evidence.require_citations or not text.strip():
            return []
        if any(self.evidence.passage(n) is not None for n in marks):
            return []
        return [Violation("citation", "no passage cited", text.strip()[:200])]

    def _check_topic(self, sentences: Sequence[str]) -> list[Violation]:
        if self.evidence.min_overlap <= 0:
            return []
        text = " ".join(clean_sentence(s) for s in sentences)
        # Chinese colour and option words as the (English) catalog names them
        read = zh.english_words(text) if has_han(text) else text
        words = {
            t
            for t in set(terms(read)) - _FILLER_TERMS
            # numbers, prices and time zones are checked on their own
            if not any(c.isdigit() for c in t)
            and t not in _ZONES
            and t not in _PRICE_WORDS
            and not zh.is_numeral(t)
        }
        if len(words) < 3:
            return []
        known = (
            self._known_terms
            | self.guard._catalog_terms
            | {t for p in self._context for t in terms(product_text(p))}
        )
        share = len(words & known) / len(words)
        if share < self.evidence.min_overlap:
            return [Violation("offtopic", " ".join(sorted(words - known)[:6]), text)]
        return []

    def _check_sentence(self, s: str, cited: list[Citation]) -> list[Violation]:
        if not s.strip():
            return []
        out: list[Violation] = []
        lang = CHINESE if detect_language(s) == "zh" else ENGLISH
        # the catalog's names are English: a Chinese sentence is matched by its Latin words
        view = lang.view(s)
        named = self.catalog.resolve_all(view)
        if named:
            self._context = [f.product for f in named] + [
                p for p in self._context if all(p is not f.product for f in named)
            ]
            in_context = named
        else:
            in_context = [
                f
                for f in (self.catalog.facts_for(p.product_id, view) for p in self._context[:1])
                if f is not None
            ]
        # a sentence naming no options of its own speaks of what the shopper asked for:
        # "It costs $X" answers "how much is the blue M T-shirt?"
        asked = self.evidence.facts
        if asked is not None and (asked.requested or asked.unmatched):
            in_context = [
                asked if f.product_id == asked.product_id and not f.requested else f
                for f in in_context
            ]
        cited_text = "\n".join(f"{c.title}\n{c.text}" for c in cited)
        catalog_text = "\n".join(product_text(f.product) for f in in_context)
        support = f"{cited_text}\n{catalog_text}\n{self._support}"
        rest = _ORDER_ID.sub(" ", s)

        # emails (bot.text_rules' candidates, valid or not) and URLs: verbatim
        for find in (_email_spans, _url_spans):
            spans = find(rest)
            for start, end in spans:
                if rest[start:end].rstrip(".,;)").lower() not in support.lower():
                    out.append(Violation("contact", rest[start:end], s))
            for start, end in reversed(spans):
                rest = rest[:start] + " " + rest[end:]

        claims = lang.read(rest, in_context=bool(in_context), currency=self.catalog.currency)

        # prices: the catalog's price for the variants in context, or a cited policy price
        passage_prices = {v for c in cited if c.kind != "product" for v in _prices(c.text)}
        extra_prices = _prices(self._support)
        allowed = set(passage_prices)
        if self.evidence.facts is not None:  # the price range the question asked for
            bounds = " ".join(self.evidence.facts.requested.get("price", ()))
            allowed.update(v for _, v in prices_in(bounds))
        for f in in_context:
            variants = f.variants if f.requested or f.unmatched else f.all_variants
            allowed.update(Decimal(str(v.price)).quantize(Decimal("0.01")) for v in variants)
        if not in_context:
            allowed |= extra_prices
        for claim, value, fits in claims.prices:
            if value not in allowed or not fits:
                out.append(Violation("price", claim, s))

        # durations: number and unit together; a range as a whole ("2 to 3 business days"
        # is not "1 to 2" and "3 to 7"); "business days" only where the passage says so
        support_numbers, supported = _quantities(cited_text, catalog_text, self._support)
        for duration in claims.durations:
            if not _duration_supported(duration, supported):
                out.append(Violation("duration", duration.text, s))
        # "3 colors", "12 versions": counts of the product's variants or values
        out += self._check_counts(claims.counts, s, in_context)

        # percentages, times of day and all other numbers
        for claim, number in claims.percents:
            if number is None or number not in support_numbers:
                out.append(Violation("number", claim, s))
        support_clock = {_clock(m) for m in CLOCK.finditer(support)}
        if has_han(support):
            support_clock |= {at for _, at, _ in zh.clocks_in(support)}
        for claim, at in claims.clocks:
            if at not in support_clock:  # "6:00 PM" is "18:00"
                out.append(Violation("number", claim, s))
        for claim, number in claims.numbers:
            if number is None or number not in support_numbers:
                out.append(Violation("number", claim, s))

        out += self._check_products(view, s, in_context, bool(named), lang)
        out += self._check_names(view, s, first_is_name=lang.chinese)
        out += self._check_policy(s, cited, in_context, lang)
        return out

    # -- products, options, stock --------------------------------------------------------

    def _check_products(
        self, view: str, s: str, in_context: list[ProductFacts], named: bool, lang: _Reading
    ) -> list[Violation]:
        """Options, enumerations and stock; ``view`` is the sentence as the English
        catalog is matched against (a Chinese sentence's Latin words: ``zh.latin_view``)."""
        out: list[Violation] = []
        says_no = lang.negated(s)
        own_ids = {f.product_id for f in in_context}
        # the products' own names and option values are theirs ("Fleece Jacket", "natural
        # rubber"): another product's value counts only outside them ("space grey" does)
        own = _spans(view, _own_phrases(in_context))
        for pattern, value, owners in self.guard._option_patterns:
            if owners & own_ids or not in_context or says_no:
                continue
            for m in pattern.finditer(view):
                if not any(a <= m.start() and m.end() <= b for a, b in own):
                    out.append(Violation("option", value, s))
                    break
        for f in in_context:
            if f.unmatched and not says_no:
                out.append(Violation("option", ", ".join(f.unmatched), s))
        if in_context and not says_no:
            out += self._check_listed_options(s, lang.chinese)
        stock_out = lang.stock_out.search(s)
        stock_in = None if stock_out else lang.stock_in.search(s)
        all_in = lang.all_in_stock.search(s)
        has_price = bool(prices_in(view) or (lang.chinese and zh.prices_in(s)))
        for f in in_context:
            if f.requested and not f.variants and (has_price or stock_in) and not says_no:
                out.append(Violation("option", _requested_text(f), s))
            variants = f.variants if (f.requested or f.unmatched) else f.all_variants
            if stock_out and not any(not v.available for v in variants):
                out.append(Violation("stock", stock_out.group(0), s))
            elif (
                stock_in
                and (named or f.requested)
                and not says_no
                and not any(v.available for v in variants)
            ):
                out.append(Violation("stock", stock_in.group(0), s))
            elif all_in and not says_no and not all(v.available for v in variants):
                out.append(Violation("stock", all_in.group(0), s))
        plain_in = stock_in and (lang.chinese or stock_in.group(0).lower() == "in stock")
        if (stock_out or plain_in) and not in_context:
            out.append(Violation("stock", (stock_out or stock_in).group(0), s))  # type: ignore[union-attr]
        return out

    def _check_listed_options(self, s: str, chinese: bool = False) -> list[Violation]:
        """Each item of an enumeration about a product ("black, blue and teal", "黑色、蓝色和
        青色") must be one of its option values or words the evidence holds (a Chinese
        item's Latin words: the catalog's values are English)."""
        if chinese:  # and each colour and Latin word is a value claimed ("也有绿色", "green款")
            text = CITATION.sub(" ", s)
            latin = _LATIN_WORD.findall(zh.latin_view(_PRICE.sub(" ", text)))
            listed = zh.enumerations(zh.english_colours(text)) + [[w] for w in latin]
        else:
            text = _PRICE.sub(" ", CITATION.sub(" ", s))
            claims = [
                [m.group(1)]
                for m in _COMES_IN.finditer(text)
                if not counts_in(m.group(1))  # "comes in five versions": _check_counts
            ]
            listed = _enumerations(text) + claims
        out: list[Violation] = []
        for items in listed:
            for item in items:
                words = re.findall(r"[a-z0-9]+(?:[-'][a-z0-9]+)*", item.lower())
                unknown = [
                    w
                    for w in words
                    if w not in STOPWORDS
                    and w not in self._known_words
                    and w not in _LIST_WORDS
                    and not w.isdigit()
                ]
                if unknown:
                    out.append(Violation("option", item.strip(), s))
        return out

    def _check_counts(
        self, counted: Sequence[tuple[Count, bool]], s: str, in_context: list[ProductFacts]
    ) -> list[Violation]:
        """ "It comes in 3 colors", "12 versions" (with whether "in stock" follows): a
        count of the variants, or of the values of the option the noun names, of a
        product in context."""
        out = []
        for c, in_stock in counted:
            noun = _count_noun(c)
            allowed = {n for f in in_context for n in _counts_for(f, noun, in_stock=in_stock)}
            if c.value not in allowed:
                out.append(Violation("number", c.text, s))
        return out

    def _check_names(self, view: str, s: str, *, first_is_name: bool = False) -> list[Violation]:
        """Capitalised words (not opening the sentence, unless ``first_is_name``: Chinese
        has no capitals of its own) that neither the evidence nor the catalog contains:
        invented products, brands, services. A name of several capitalised words ("Apple
        Pay") must be there as a whole. ``view`` is the text read (``s`` is reported)."""
        out: list[Violation] = []
        opening = -1 if first_is_name else len(view) - len(view.lstrip())
        for m in _CAPITALISED.finditer(view):
            if m.start() == opening:
                continue
            before = view[: m.start()].rstrip()
            if before.endswith((":", '"', "(", "\u201c")) or (not before and not first_is_name):
                continue
            word = m.group(1)
            parts = [w.lower() for w in re.split(r"[-']", word) if w]
            if all(self._allowed_word(w) for w in parts):
                continue
            out.append(Violation("product", word, s))
        for m in _NAME_RUN.finditer(self.guard.blank_catalog(view)):
            words = [w for w in m.group(0).split() if w.lower().strip(".") not in _TIME_WORDS]
            if m.start() == opening:
                words = words[1:]  # the sentence's first word is capitalised anyway
            if len(words) < 2 or any(w.lower() in STOPWORDS for w in words):
                continue
            phrase = " ".join(words).lower()
            if phrase not in self._known_text and phrase not in self.guard._catalog_phrases:
                out.append(Violation("product", " ".join(words), s))
        return out

    def _allowed_word(self, w: str) -> bool:
        if w in _ZONES:  # "ET" where a passage says "Eastern Time"
            return _ZONES[w] in self._known_words or w in self._known_words
        return (
            w in STOPWORDS
            or w in self.guard._catalog_vocab
            or w in self._known_words
            or w in _ALWAYS_ALLOWED
        )

    # -- policy --------------------------------------------------------------------------

    def _check_policy(
        self, s: str, cited: list[Citation], in_context: list[ProductFacts], lang: _Reading
    ) -> list[Violation]:
        sentence_terms = set(terms(s))
        out: list[Violation] = []
        cited_terms = set(terms("\n".join(f"{c.title}\n{c.text}" for c in cited)))
        support_terms = set(terms(self._support))
        product_words = self.guard._catalog_terms if in_context else frozenset()
        for t in sorted(sentence_terms & COMMITMENT_TERMS - product_words):  # "a gift card"
            if t not in cited_terms and t not in support_terms:
                out.append(Violation("commitment", t, s))
        product_terms: set[str] = set()
        for f in in_context:
            product_terms.update(terms(f.name))
            for key, values in f.product.option_values().items():
                product_terms.update(terms(key + " " + " ".join(values)))
        ignored = product_terms | _FILLER_TERMS | _NUMBER_TERMS
        text = _URL.sub(" ", _blank_emails(clean_sentence(s)))
        text = lang.name_states(text)  # "已发货" is the state shipped, one term
        claim = set(terms(text)) - ignored
        is_policy = bool(claim & POLICY_TERMS)  # "SD card", "20 hours": options, not policy
        policy_passages = [c for c in cited if c.kind in ("policy", "faq")]
        if is_policy and not policy_passages and not (claim <= support_terms):
            return [*out, Violation("policy", "no policy passage cited", s)]
        if not (policy_passages or self._support.strip()):
            return out
        statements, clauses = self._units(policy_passages)
        known = _canon(t for unit in statements for t in unit.terms | unit.title)
        for clause in lang.clauses.split(lang.without_reply(text)):
            stated = {
                t
                for t in _canon(set(terms(clause)) - ignored)
                if not t[0].isdigit() and not zh.is_numeral(t)
            }
            if is_policy and stated & _POLICY_CANON:
                # each clause must be said by one statement of a source (its heading helps),
                # one that holds the clause's durations and order states if it names any
                spans = lang.duration_spans(clause)
                states = {stem(w) for w in states_in(clause)}  # "delivered" ~ "delivery"
                holding = [
                    u
                    for u in statements
                    if (spans or states)
                    and all(_duration_supported(d, u.durations) for d in spans)
                    and states <= u.states
                ]
                if states and not holding:
                    out.append(Violation("policy", " ".join(sorted(states)), s))
                    continue
                before = lang.before_state.search(clause)
                if before and not any(_says_before(u.text) for u in (holding or statements)):
                    # "before it's delivered" where the sources speak of delivered orders
                    out.append(Violation("policy", before.group(0), s))
                    continue
                best = max(
                    holding or statements,
                    key=lambda u: len(stated & (u.terms | u.title)),
                    default=None,
                )
                said = (best.terms | best.title) if best else frozenset()
                if best is not None and holding:  # "3-7 days after it leaves the warehouse"
                    said = said | best.around
                covered = stated & said
                if best is not None:  # a Chinese word cut otherwise there ("原路", "原 路")
                    covered |= {t for t in stated - covered if has_han(t) and t in best.text}
                if len(covered) < self.guard.policy_coverage * len(stated):
                    missing = " ".join(sorted(stated - covered)[:6])
                    out.append(Violation("policy", missing, s))
                    continue
            # polarity: a clause that restates a source clause must agree with it on
            # negation ("it can no longer be cancelled" -> "it can still be cancelled")
            restating = stated & known
            if len(restating) < 2 or (in_context and not is_policy):
                continue  # a sentence about a product restates no policy
            restated = _closest(restating, clauses, self.guard.restate_overlap)
            says_no = lang.negated(clause)
            if restated and all(u.negated != says_no for u in restated):
                out.append(Violation("policy", "negation differs from the passage", s))
        if is_policy:
            out += self._check_listed_terms(text, s, known, lang)
        return out

    def _units(self, passages: list[Citation]) -> tuple[Sequence[_Unit], Sequence[_Unit]]:
        """The statements and clauses of ``passages`` and the support."""
        sources = tuple((c.title, c.text) for c in passages) + (("", self._support),)
        return _source_units(sources, _STATEMENT), _source_units(sources, CLAUSES)

    def _check_listed_terms(
        self, text: str, s: str, known: set[str], lang: _Reading
    ) -> list[Violation]:
        """Each item of an enumeration in a policy sentence ("credit cards, PayPal and
        cash on delivery", "支付宝、微信和货到付款") must be in the sources."""
        out = []
        listed = lang.enumerations(text)
        for items in listed:
            for item in items:
                stated = _canon(set(terms(item)) - _FILLER_TERMS)
                if stated - known:
                    out.append(Violation("policy", item.strip(), s))
        return out


@dataclass(frozen=True)
class _Unit:
    """One clause of a source passage: its terms (synonyms folded), its passage's
    title terms, and whether it is negated."""

    terms: frozenset[str]
    title: frozenset[str]
    negated: bool
    durations: frozenset[DurationSpan] = frozenset()
    states: frozenset[str] = frozenset()  # stems of the words it (and its title) holds
    text: str = ""
    around: frozenset[str] = frozenset()  # terms of the units before and after it


_STATEMENT = re.compile(r";")  # a source sentence is one statement up to a ";"


def _closest(claim: set[str], units: Sequence[_Unit], share: float) -> list[_Unit]:
    """The units restating ``claim`` most closely: holding ``share`` of its terms, and of
    those the ones sharing its rarest terms (weighted by how few units hold them), so
    "place a new order" is restated by "no need to place a new order", not by "each
    item can be exchanged to a new item"."""
    held = [u for u in units if len(claim & u.terms) >= share * len(claim)]
    if len(held) < 2:
        return held
    df = {t: sum(t in u.terms for u in units) for t in claim}
    weight = {t: math.log(1 + len(units) / max(df[t], 1)) for t in claim}
    scores = [sum(weight[t] for t in claim & u.terms) for u in held]
    top = max(scores)
    return [u for u, score in zip(held, scores, strict=True) if score >= top - 1e-9]


@lru_cache(maxsize=1024)
def _source_units(
    sources: tuple[tuple[str, str], ...], split: re.Pattern[str]
) -> tuple[_Unit, ...]:
    """The sentences of ``sources`` (title, text) cut by ``split`` (statements or
    clauses); cached, as the same passages back many answers."""
    out: list[_Unit] = []
    for title, text in sources:
        title_terms = frozenset(_canon(terms(title)))
        title_stems = frozenset(terms(title))
        units: list[_Unit] = []
        for sentence in passage_sentences(text):  # wrapped lines joined
            if detect_language(sentence) == "zh":
                cut = zh.STATEMENTS if split is _STATEMENT else zh.CLAUSES
                for clause in cut.split(clean_sentence(sentence)):
                    named = zh.name_states(clause)  # as claims are read
                    words = frozenset(_canon(terms(named)))
                    if words:
                        spans = frozenset(zh.duration_spans(clause))
                        stems = frozenset(terms(named)) | title_stems
                        said_no = zh.negated(clause)
                        units.append(_Unit(words, title_terms, said_no, spans, stems, clause))
                continue
            for clause in split.split(clean_sentence(sentence)):
                words = frozenset(_canon(terms(clause)))
                if words:
                    spans = frozenset(duration_spans(clause))
                    stems = frozenset(terms(clause)) | title_stems
                    units.append(_Unit(words, title_terms, negated(clause), spans, stems, clause))
        for i, unit in enumerate(units):  # what the statements around it say
            around = [u.terms for u in units[max(i - 1, 0) : i + 2] if u is not unit]
            out.append(replace(unit, around=frozenset().union(*around)))
    return tuple(out)


_BEFORE_STATE = re.compile(
    r"\bbefore\s+(?:(?:it|its|it's|they|they're|the|your|an?|order|orders|is|are|has|have|been"
    r"|gets?|being)\s+){0,4}(" + "|".join(sorted(ORDER_STATES, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)


def _says_before(text: str) -> bool:
    """Whether a source statement speaks of the time before an order state."""
    return bool(_BEFORE_STATE.search(text) or zh.BEFORE_STATE.search(text))


_ALWAYS_ALLOWED = frozenset(
    {
        "i", "i'm", "i'd", "i'll", "ok", "okay", "sorry", "sure", "hi", "hello", "thanks",
        "unfortunately", "however", "yes", "great", "note", "sources", "source", "am", "pm",
    }
    | set(_CODES.split("|"))
)  # fmt: skip


# "it also comes in teal", "available in olive": the option values claimed
_COMES_IN = re.compile(
    r"\b(?:comes? in|also in|available in|offered in|get it in|made (?:of|from|in))\s+"
    r"((?:(?!and\b|or\b)[\w+-]+\s*){1,3})",
    re.IGNORECASE,
)
_TIME_WORDS = frozenset({"am", "pm", "a.m", "p.m", *_ZONES})  # "9 AM to 6 PM ET"
_NAME_RUN = re.compile(r"(?<![\w'])[A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)+")
# words an enumeration of options may hold besides the values themselves
_LIST_WORDS = frozenset(
    {
        "also", "more", "other", "options", "option", "colors", "colours", "color", "colour",
        "sizes", "size", "versions", "version", "variants", "variant", "styles", "style",
        "finish", "finishes", "shades", "shade", "models", "model",
    }
)  # fmt: skip


def clear_caches() -> None:
    """Forget the passages read so far (for measuring the guard on text it has not seen)."""
    _text_quantities.cache_clear()
    _source_units.cache_clear()


def _quantities(*texts: str) -> tuple[set[Decimal], set[DurationSpan]]:
    """The numbers and durations ``texts`` state together."""
    numbers: set[Decimal] = set()
    spans: set[DurationSpan] = set()
    for text in texts:
        more_numbers, more_spans = _text_quantities(text)
        numbers |= more_numbers
        spans |= more_spans
    return numbers, spans


@lru_cache(maxsize=2048)
def _text_quantities(text: str) -> tuple[frozenset[Decimal], frozenset[DurationSpan]]:
    # cached: a product's facts and a policy's passages come back answer after answer
    numbers, spans = numbers_in(text), duration_spans(text)
    if has_han(text):  # Chinese passages: "30天", "三十", "¥99" (Latin text reads as before)
        numbers |= zh.numbers_in(text)
        spans |= zh.duration_spans(text)
    return frozenset(numbers), frozenset(spans)


def _prices(text: str) -> set[Decimal]:
    """The prices a source text states, in either language."""
    found = {v for _, v in prices_in(text)}
    if has_han(text):
        found |= {v for _, v, _ in zh.prices_in(text)}
    return found


def _duration_supported(claim: DurationSpan, spans: Iterable[DurationSpan]) -> bool:
    """A single duration may be any end of a supported one; a range must be one; units
    agree, except that a plain "days" may stand for "business days" ("calendar days" only
    for plain ones)."""

    def units_fit(unit: str) -> bool:
        plain = unit.split()[-1]
        return claim.unit in (unit, plain) or (claim.unit == f"calendar {plain}" and unit == plain)

    if claim.low == claim.high:
        return any(units_fit(sp.unit) and claim.low in (sp.low, sp.high) for sp in spans)
    return any(units_fit(sp.unit) and (sp.low, sp.high) == (claim.low, claim.high) for sp in spans)


def _own_phrases(in_context: Sequence[ProductFacts]) -> tuple[str, ...]:
    """The names and option values of the products in context, longest first."""
    phrases = {f.name for f in in_context}
    for f in in_context:
        for values in f.product.option_values().values():
            phrases.update(values)
    return tuple(sorted(phrases, key=lambda p: (-len(p), p)))


_LATIN_WORD = re.compile(r"[A-Za-z][A-Za-z0-9]*")
_VARIANT_NOUNS = frozenset({"version", "variant", "model", "configuration", "combination"})


_PM = re.compile(r"\s*p\.?\s?m\b\.?", re.IGNORECASE)


def _clock(m: re.Match[str]) -> tuple[int, int]:
    """A time of day as (hour on 24 hours, minute): "6:00 PM" and "18:00" are (18, 0)."""
    hour, minute = (int(x) for x in m.group(0).split(":"))
    if hour < 12 and _PM.match(m.string, m.end()):
        hour += 12
    return hour, minute


def _count_noun(count: Count) -> str:
    """What a count counts among ``_COUNT_NOUNS`` ("2 connectivity options" -> "option"),
    or ""."""
    for word in count.words[:3]:
        singular = word.removesuffix("s")
        if singular in _COUNT_NOUNS:
            return singular
    return ""


def _counts_for(f: ProductFacts, noun: str, *, in_stock: bool) -> set[Decimal]:
    """The counts a sentence may give for ``noun`` ("version", "color", "option"...) of a
    product: its variants (narrowed or all; in stock ones when it says so), or the
    number of values of the options whose name holds the noun."""
    out: set[Decimal] = set()
    if noun in _VARIANT_NOUNS or noun in ("option", "choice"):
        for group in (f.variants, f.all_variants):
            out.add(Decimal(sum(v.available for v in group) if in_stock else len(group)))
    options = f.product.option_values()
    colour = noun in ("color", "colour")
    for key, values in options.items():
        k = key.lower()
        if (
            noun in k
            or (colour and ("color" in k or "colour" in k))
            or noun in ("option", "choice", "kind", "type")
        ):
            out.add(Decimal(len(values)))
    return out


@lru_cache(maxsize=1024)
def _phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One pattern for ``phrases`` (longest first) or their plurals, as whole words."""
    alternatives = "|".join(re.escape(p) for p in phrases if p) or "(?!)"
    return re.compile(r"(?<![\w-])(?:" + alternatives + r")s?(?![\w-])", re.IGNORECASE)


def _spans(text: str, phrases: tuple[str, ...]) -> list[tuple[int, int]]:
    """Where ``phrases`` (or their plurals) occur in ``text``."""
    return [(m.start(), m.end()) for m in _phrase_pattern(phrases).finditer(text)]


def _enumerations(text: str, max_words: int = 4) -> list[list[str]]:
    """The items of each "a, b and c" enumeration of short items (``max_words`` each) in
    ``text``; the first item without the words leading up to it ("It comes in black" ->
    "black"), or left out when no such words are found."""
    out = []
    for m in _ENUMERATION.finditer(text):
        items = [
            i.strip(" ()")
            for i in re.split(r",\s*(?:and\s+|or\s+)?|\s+(?:and|or)\s+", m.group(0))
            if i.strip(" ()")
        ]
        if len(items) < 3:
            continue
        head = _LIST_HEAD.search(items[0])
        items = ([items[0][head.end() :]] if head else []) + items[1:]
        if all(len(i.split()) <= max_words for i in items):
            out.append([i for i in items if i.strip()])
    return out


def _requested_text(f: ProductFacts) -> str:
    return f"{f.name} with " + ", ".join(f"{k} {'/'.join(v)}" for k, v in f.requested.items())


# ------------------------------------------------------------------------------ reading


@dataclass(frozen=True)
class Claims:
    """What one sentence claims, as values the guard compares with its evidence (the same
    comparisons whichever language read them): prices (as written, amount, whether its
    currency may be the store's), durations, counts of a product's variants or values
    (with whether "in stock" follows), percentages, times of day, other numbers."""

    prices: tuple[tuple[str, Decimal, bool], ...] = ()
    durations: tuple[DurationSpan, ...] = ()
    counts: tuple[tuple[Count, bool], ...] = ()
    percents: tuple[tuple[str, Decimal | None], ...] = ()
    clocks: tuple[tuple[str, tuple[int, int]], ...] = ()
    numbers: tuple[tuple[str, Decimal | None], ...] = ()

    def __add__(self, other: Claims) -> Claims:
        return Claims(
            self.prices + other.prices,
            self.durations + other.durations,
            self.counts + other.counts,
            self.percents + other.percents,
            self.clocks + other.clocks,
            self.numbers + other.numbers,
        )


def read_english(text: str, *, in_context: bool, currency: str) -> Claims:
    """The claims of an English sentence, each read from what the ones before it left
    ("$49.99" is a price, not also a number; "3 colors" a count when a product is in
    context)."""
    prices = tuple(
        (claim, value, price_fits_currency(claim, currency)) for claim, value in prices_in(text)
    )
    rest = _PRICE.sub(" ", text)
    durations = tuple(duration_spans(rest, with_text=True))
    rest = DURATION.sub(" ", rest)
    counted = [c for c in counts_in(rest) if in_context and _count_noun(c)]
    counts = []
    for c in counted:
        at = rest.find(c.text) + len(c.text)
        counts.append((c, bool(_IN_STOCK.search(rest[at : at + 24]))))
    for c in counted:
        rest = rest.replace(c.text, " ", 1)
    percents = []
    for m in _PERCENT.finditer(rest):
        v = to_decimal(m.group(1))
        percents.append((m.group(0), v.normalize() if v is not None else None))
    rest = _PERCENT.sub(" ", rest)
    clocks = tuple((m.group(0), _clock(m)) for m in CLOCK.finditer(rest))
    rest = CLOCK.sub(" ", rest)
    numbers: list[tuple[str, Decimal | None]] = []
    for m in NUMBER.finditer(rest):
        v = to_decimal(m.group(0))
        numbers.append((m.group(0), v.normalize() if v is not None else None))
    for m in WORD_NUMBER.finditer(rest):
        numbers.append((m.group(0), Decimal(NUMBER_WORDS[m.group(1).lower()])))
    return Claims(prices, durations, tuple(counts), tuple(percents), clocks, tuple(numbers))


def read_chinese(text: str, *, in_context: bool, currency: str) -> Claims:
    """The claims of a Chinese sentence (``bot.generation.claims_zh``): yuan prices,
    durations, counts ("4种颜色"), percentages, times of day and Chinese numerals, each
    blanked once read; then the Latin words left ("$50.88", "18:00", "32GB") as English."""
    rest = fold_width(text)
    prices = tuple((w, v, zh.price_fits(code, currency)) for w, v, code in zh.prices_in(rest))
    rest = zh.blank(rest, zh.price_spans(rest))
    durations = tuple(zh.duration_spans(rest, with_text=True))
    rest = zh.blank(rest, zh.duration_ranges(rest))
    counts = []
    for c in zh.counts_in(rest) if in_context else []:
        at = rest.find(c.text)
        after = rest[at + len(c.text) : at + len(c.text) + 12]
        counts.append((c, bool(zh.STOCK_IN.search(after))))
        rest = zh.blank(rest, [(at, at + len(c.text))])
    percents = tuple((w, v) for w, v, _ in zh.percents_in(rest))
    rest = zh.blank(rest, [span for _, _, span in zh.percents_in(rest)])
    clocks = tuple((w, at) for w, at, _ in zh.clocks_in(rest))
    rest = zh.blank(rest, [span for _, _, span in zh.clocks_in(rest)])
    numerals = zh.numbers_claimed(rest)
    rest = zh.blank(rest, [span for _, _, span in numerals])
    own = Claims(
        prices,
        durations,
        tuple(counts),
        percents,
        clocks,
        tuple((w, v) for w, v, _ in numerals),
    )
    latin = zh.latin_view(rest)
    return own + read_english(latin, in_context=in_context, currency=currency)


@dataclass(frozen=True)
class _Reading:
    """What reading a sentence differs by between English and Chinese: the claim reader
    and the words and patterns behind the product, stock and policy checks. Everything
    that compares what they read is shared (``FactGuard``)."""

    chinese: bool
    read: Callable[..., Claims]  # (text, *, in_context, currency) -> Claims
    view: Callable[[str], str]  # what the catalog's English names are matched against
    negated: Callable[[str], bool]
    stock_out: re.Pattern[str]
    stock_in: re.Pattern[str]
    all_in_stock: re.Pattern[str]
    name_states: Callable[[str], str]  # order-state phrases as one term each
    clauses: re.Pattern[str]
    without_reply: Callable[[str], str]
    duration_spans: Callable[[str], set[DurationSpan]]
    before_state: re.Pattern[str]
    enumerations: Callable[[str], list[list[str]]]  # a policy sentence's listed items


def _same(text: str) -> str:
    return text


ENGLISH = _Reading(
    chinese=False,
    read=read_english,
    view=_same,
    negated=negated,
    stock_out=_OUT_OF_STOCK,
    stock_in=_IN_STOCK,
    all_in_stock=_ALL_IN_STOCK,
    name_states=_same,
    clauses=CLAUSES,
    without_reply=without_reply,
    duration_spans=duration_spans,
    before_state=_BEFORE_STATE,
    enumerations=lambda text: _enumerations(_PRICE.sub(" ", text)),
)
CHINESE = _Reading(
    chinese=True,
    read=read_chinese,
    view=zh.latin_view,
    negated=zh.negated,
    stock_out=zh.STOCK_OUT,
    stock_in=zh.STOCK_IN,
    all_in_stock=zh.ALL_IN_STOCK,
    name_states=zh.name_states,
    clauses=zh.CLAUSES,
    without_reply=zh.without_reply,
    duration_spans=zh.duration_spans,
    before_state=zh.BEFORE_STATE,
    enumerations=zh.enumerations,
)


# ----------------------------------------------------------------------------- sentences

_BOUNDARY = re.compile(
    r"(?<=[.!?])[\"')\]]*\s+|(?<=\])\s+|\n+"
    # Chinese: after 。！？； (and the closing quotes and citation marks that follow it)
    r"|(?<=[\u3002\uff01\uff1f\uff1b])[\u201d\u2019\u300d\u300f\uff09)]*"
    r"(?:\s*[\[\u3010]\d+[\]\u3011])*\s*"
)
_LIST_NUMBER = re.compile(r"\d{1,2}[.)]")
_MARKED_END = re.compile(r"[.!?][\"')]*\s*(?:\[\d+\]\s*)+$")


def clean_sentence(sentence: str) -> str:
    """A sentence without its citation marks and list bullet."""
    return _LIST_MARK.sub("", CITATION.sub("", sentence)).strip()


def split_sentences(text: str, *, final: bool = True) -> tuple[list[str], str]:
    """Split ``text`` into complete sentences and the unfinished rest. A boundary counts only
    once a non-space character follows it that is not a citation mark (so ``... days. [1]``
    keeps its mark); with ``final`` the rest is a sentence too."""
    out: list[str] = []
    start = 0
    for m in _BOUNDARY.finditer(text):
        if m.end() >= len(text):
            break
        if text[m.end()] == "[":
            continue  # "... days. [1]": the mark belongs to this sentence
        if text[m.start() - 1] == "]" and not _MARKED_END.search(text, 0, m.start()):
            continue  # a mark inside a sentence: "... costs $5 [1] and ..."
        piece = text[start : m.end()].strip()
        if _LIST_NUMBER.fullmatch(piece):
            continue  # "1. The ...": a list number opens the sentence, it does not end one
        if piece:
            out.append(piece)
        start = m.end()
    rest = text[start:]
    if final:
        if rest.strip():
            out.append(rest.strip())
        rest = ""
    return out, rest


def sentence_groups(text: str) -> list[tuple[list[str], list[int]]]:
    """Sentences grouped up to and including the next one carrying ``[n]`` marks; a last
    group without marks gets ``[]``."""
    sentences, _ = split_sentences(text)
    groups: list[tuple[list[str], list[int]]] = []
    pending: list[str] = []
    for s in sentences:
        pending.append(s)
        marks = citation_marks(s)
        if marks:
            groups.append((pending, marks))
            pending = []
    if pending:
        groups.append((pending, []))
    return groups
