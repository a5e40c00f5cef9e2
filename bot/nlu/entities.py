"""Rule-based entity extractors: patterns, a catalog gazetteer and cancellation reasons.

Every extractor returns Rasa entity dicts::

    {"entity": "order_id", "value": "#W2611340", "start": 9, "end": 18,
     "extractor": "RegexEntityExtractor"}

``start``/``end`` index the text as given; ``value`` is normalised (``w 2611340`` ->
``#W2611340``, ``t-shirts`` -> ``T-Shirt``, ``changed my mind`` -> ``no longer needed``); ids,
emails, phone numbers and zip codes are found and normalised by ``bot.text_rules``, the rules
the store actions and the log filter use too. When normalisation changed the surface text,
``"processors": ["EntitySynonymMapper"]`` is added, as Rasa does.

Chinese text (``bot.lang``): in a text with Han characters, order ids after an order word
("单号：2611340" -> ``#W2611340``) and mainland mobile numbers are found too; emails end
where Han characters begin. Catalog terms and reasons written in Chinese (nlu.yml synonyms
such as "T恤" -> ``T-Shirt``, the built-in ``bot.lang.answers.REASON_PHRASES``) match
inside text written without spaces; a catalog term only as whole words of the segmented
text (``bot.lang.segment``), so "手机" is not found in "手机号" nor "大" in "大家". English
terms match next to Han characters ("AirPods Pro多少钱"). ``EntityExtractor`` runs
all three and drops overlapping spans (pattern entities win, then reasons, then catalog
terms; longer spans win within a kind).

Extractors are immutable after construction and safe to share between threads. The
gazetteer serialises to plain JSON (``to_dict``/``from_dict``) so a trained model carries
the catalog terms it was built with.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot import text_rules
from bot.lang import answers, find_phones, fold_width, segment_spans
from bot.lang import find_order_ids as find_order_ids_zh
from bot.lang.answers import REASON_MISTAKE, REASON_NO_LONGER_NEEDED
from bot.lang.script import has_han
from bot.text_rules import NON_HAN_WORD_CHAR, normalise_order_id, normalise_ticket_id

__all__ = [
    "DEFAULT_PRODUCT_ALIASES",
    "DEFAULT_REASON_SYNONYMS",
    "REASON_MISTAKE",
    "REASON_NO_LONGER_NEEDED",
    "CatalogGazetteer",
    "EntityExtractor",
    "ReasonExtractor",
    "RegexEntityExtractor",
    "normalise_order_id",
    "normalise_ticket_id",
    "resolve_overlaps",
]

EntityDict = dict[str, Any]

# ---------------------------------------------------------------------------------------
# Patterns: bot.text_rules holds the rules; normalise_* are re-exported from there
# ---------------------------------------------------------------------------------------


class RegexEntityExtractor:
    """order_id, email, ticket_id, phone and US zipcode by ``bot.text_rules``' finders.

    ``extra`` holds additional patterns per entity (Rasa ``regex:`` tables whose name is an
    entity); their matches are normalised like the built-in ones.
    """

    name = "RegexEntityExtractor"
    ENTITIES = ("order_id", "email", "ticket_id", "phone", "zipcode")

    def __init__(self, extra: Mapping[str, Iterable[str]] | None = None) -> None:
        self.extra: dict[str, tuple[str, ...]] = {
            k: tuple(v) for k, v in (extra or {}).items() if tuple(v)
        }
        self._extra_compiled = [
            (entity, re.compile(p, re.IGNORECASE))
            for entity, patterns in self.extra.items()
            for p in patterns
        ]

    def _make(self, entity: str, value: str, start: int, end: int, text: str) -> EntityDict:
        out: EntityDict = {
            "entity": entity,
            "start": start,
            "end": end,
            "value": value,
            "extractor": self.name,
        }
        if value != text[start:end]:
            out["processors"] = ["EntitySynonymMapper"]
        return out

    def extract(self, text: str) -> list[EntityDict]:
        found = [
            self._make(m.kind, m.value, m.start, m.end, text)
            for finder in _FINDERS
            for m in finder(text)
        ]
        if has_han(text):
            found += self._chinese(text)
        for entity, rx in self._extra_compiled:
            for m in rx.finditer(text):
                if m.end() > m.start():
                    value = self._normalise(entity, m.group())
                    found.append(self._make(entity, value, m.start(), m.end(), text))
        return found

    def _chinese(self, text: str) -> list[EntityDict]:
        """Order ids after a Chinese order word ("单号：2611340") and mainland mobile
        numbers (``bot.lang``); a phone's value is its 11 digits, ``+86`` first when the
        shopper wrote a country code (as ``bot.text_rules`` keeps a written ``+``)."""
        found = [
            self._make("order_id", o.value, o.start, o.end, text) for o in find_order_ids_zh(text)
        ]
        for p in find_phones(text):
            written = re.sub(r"\D", "", fold_width(text[p.start : p.end]))
            value = p.e164 if len(written) > len(p.value) else p.value
            found.append(self._make("phone", value, p.start, p.end, text))
        return found

    @staticmethod
    def _normalise(entity: str, surface: str) -> str:
        if entity == "order_id":
            return normalise_order_id(surface) or surface
        if entity == "ticket_id":
            return normalise_ticket_id(surface) or surface
        if entity == "email":
            return text_rules.normalise_email(surface) or surface.lower()
        if entity == "phone":
            return text_rules.normalise_phone(surface) or surface
        return surface


_FINDERS = (
    text_rules.find_order_ids,
    text_rules.find_emails,
    text_rules.find_ticket_ids,
    text_rules.find_phones,
    text_rules.find_zips,
)


# ---------------------------------------------------------------------------------------
# Catalog gazetteer
# ---------------------------------------------------------------------------------------

#: Everyday names shoppers use for the demo catalog's products. A store adds its own with
#: ``synonym:`` entries in nlu.yml whose value is a product name.
DEFAULT_PRODUCT_ALIASES: dict[str, str] = {
    "tee": "T-Shirt",
    "tee shirt": "T-Shirt",
    "smart phone": "Smartphone",
    "cell phone": "Smartphone",
    "mobile phone": "Smartphone",
    "power bank": "Portable Charger",
    "speaker": "Bluetooth Speaker",
    "earbuds": "Wireless Earbuds",
    "smartwatch": "Smart Watch",
    "kindle": "E-Reader",
    "ebook reader": "E-Reader",
    "toothbrush": "Electric Toothbrush",
    "mouse": "Gaming Mouse",
    "keyboard": "Mechanical Keyboard",
    "thermostat": "Smart Thermostat",
    "helmet": "Cycling Helmet",
    "bike helmet": "Cycling Helmet",
    "dumbbells": "Dumbbell Set",
    "luggage": "Luggage Set",
    "suitcase": "Luggage Set",
    "bike": "Bicycle",
    "umbrella": "Patio Umbrella",
    "purifier": "Air Purifier",
    "vacuum": "Vacuum Cleaner",
    "hoover": "Vacuum Cleaner",
    "jigsaw": "Jigsaw Puzzle",
    "puzzle": "Jigsaw Puzzle",
    "bbq": "Grill",
    "barbecue": "Grill",
    "wrist watch": "Wristwatch",
    "desk chair": "Office Chair",
    "garden hose": "Garden Hose",
    "hose": "Garden Hose",
    "yoga mat": "Yoga Mat",
    "bulb": "LED Light Bulb",
    "light bulb": "LED Light Bulb",
    "security camera": "Indoor Security Camera",
    "boots": "Hiking Boots",
    "fleece": "Fleece Jacket",
    "charger": "Portable Charger",
}

#: Option values that are everyday words: kept only next to an attribute word ("size",
#: "color", "in"), a number unit, or another catalog term ("large blue t-shirt").
_AMBIGUOUS_OPTIONS = frozenset(
    """yes no none high low medium large small full half light dark fresh art plain custom
    basic professional fixed standard manual automatic electric digital analog road
    mountain men women unisex gas portable timer battery animals fantasy landscape graphic
    beginner intermediate expert glass metal wood fabric drip capsule charcoal daylight usb
    espresso canvas iron camera laptop hydration s m l
""".split()  # noqa: SIM905
)
_NEVER_OPTIONS = frozenset({"yes", "no", "none"})
_ATTRIBUTE_CUES = frozenset(
    """size sized color colour colored coloured in material type style capacity storage ram
    screen frame lens strap dial band thickness length height diameter zoom resolution
    pressure brightness connectivity version model option variant pieces piece setting
    settings level
""".split()  # noqa: SIM905
)
#: Chinese attribute words that make a short option value one ("尺码是M", "10码", "L码").
_ZH_CUE_BEFORE = re.compile(
    r"(?:尺码|尺寸|大小|码数|鞋码|颜色|型号|规格|容量|材质|款式)[是为:：\s]*$"
)
_ZH_CUE_AFTER = re.compile(r"码|英寸|寸")
#: From this length a Chinese term needs no word boundary (``_han_edge``).
_SPECIFIC_LENGTH = 3
#: Characters jieba sometimes glues to the word next to them ("有大号" is one word): a
#: Chinese term of two characters or more still stands alone when one of these is beside it.
_GLUE_CHARS = frozenset("有要买是的了吗呢个款件双条这那想找")


def _han_edge(text: str, at: int, edges: set[int], surface: str, *, before: bool) -> bool:
    """Does a term ``surface`` starting (``before``) or ending at ``at`` stand alone on that
    side: a word boundary of the segmented text, or, for a term of two characters or more,
    a glue character just outside it; a term of three characters or more is specific enough
    to stand anywhere (jieba cuts "充电宝充不进电" as "充电/宝充")."""
    if at in edges or len(surface) >= _SPECIFIC_LENGTH:
        return True
    if len(surface) < 2:
        return False
    return text[at - 1 if before else at] in _GLUE_CHARS


#: Chinese words that, right after a product, name an accessory of it, not the product:
#: "手机壳" (a phone case) segments as "手机" + "壳".
_ACCESSORY_WORDS = frozenset(
    [
        "壳",
        "套",
        "膜",
        "架",
        "线",
        "罩",
        "贴",
        "垫",
        "座",
        "包",
        "袋",
        "支架",
        "配件",
        "充电器",
        "保护套",
        "贴膜",
    ]
)
_NUMERIC = re.compile(r"^\d+(?:\.\d+)?$")
_FILLER = re.compile(r"^[\s,/&]*(?:(?:and|or|in|with|a|an|the|one)\b[\s,/&]*)*$", re.IGNORECASE)


def _key(surface: str) -> str:
    return re.sub(r"[\s\-_]+", "", surface.lower())


def _term_pattern(term: str, plural: bool) -> str:
    tokens = [t for t in re.split(r"[\s\-]+", term.strip()) if t]
    body = r"[\s\-]?".join(re.escape(t) for t in tokens)
    if plural:
        body += r"(?:e?s)?"
    return body


def _singular(term: str) -> str | None:
    low = term.lower()
    if low.endswith("s") and not low.endswith(("ss", "ses", "us")) and len(low) > 3:
        return term[:-1]
    return None


@dataclass(frozen=True)
class _Term:
    entity: str
    value: str
    ambiguous: bool


class CatalogGazetteer:
    """Product names and option values of a catalog, matched as whole words.

    Case-insensitive, longest match first, tolerant of plurals and of spaces or hyphens
    inside terms ("t-shirt", "tshirts", "T Shirt" -> ``T-Shirt``). Values are normalised
    to the catalog spelling.
    """

    name = "CatalogEntityExtractor"

    def __init__(self, terms: Mapping[str, tuple[str, str]]) -> None:
        """``terms`` maps a surface form -> (entity, canonical value)."""
        self.terms: dict[str, tuple[str, str]] = {}
        for surface, (entity, value) in terms.items():
            if surface.strip():
                self.terms.setdefault(surface.strip(), (entity, value))
        self._by_key: dict[str, _Term] = {}
        patterns: list[tuple[int, str]] = []
        for surface, (entity, value) in self.terms.items():
            k = _key(surface)
            if not k or k in self._by_key:
                continue
            ambiguous = entity == "option" and (k in _AMBIGUOUS_OPTIONS or bool(_NUMERIC.match(k)))
            self._by_key[k] = _Term(entity, value, ambiguous)
            plural = surface[-1:].isalpha() and len(k) >= 3
            if not has_han(surface):
                patterns.append((len(surface), _term_pattern(surface, plural)))
        patterns.sort(key=lambda p: -p[0])
        self._regex = (
            re.compile(
                rf"(?<!{NON_HAN_WORD_CHAR}|['’])(?:" + "|".join(p for _, p in patterns) + r")"
                rf"(?!{NON_HAN_WORD_CHAR}|['’]\w)",
                re.IGNORECASE,
            )
            if patterns
            else None
        )
        #: terms written with Chinese characters, longest first (``_han_hits``)
        self._han_terms = sorted(
            {fold_width(s).lower() for s in self.terms if has_han(s)}, key=len, reverse=True
        )

    @classmethod
    def from_products(
        cls,
        products: Iterable[Mapping[str, Any]],
        *,
        aliases: Mapping[str, str] | None = None,
        default_aliases: bool = True,
        extra_products: Iterable[str] = (),
        extra_options: Iterable[str] = (),
    ) -> CatalogGazetteer:
        """Build from products.json-style dicts (``name``, ``variants[*].options``).

        ``aliases`` maps a surface form to a catalog product name or option value (other
        targets are ignored, so nlu.yml's whole synonym table can be passed);
        ``DEFAULT_PRODUCT_ALIASES`` are added unless ``default_aliases`` is false.
        """
        terms: dict[str, tuple[str, str]] = {}
        product_names: dict[str, str] = {}
        option_values: dict[str, str] = {}
        for product in products:
            name = str(product.get("name") or "").strip()
            if name:
                product_names[name.lower()] = name
            variants = product.get("variants") or {}
            items = variants.values() if isinstance(variants, Mapping) else variants
            for variant in items:
                for value in (variant.get("options") or {}).values():
                    v = str(value).strip()
                    if v and v.lower() not in _NEVER_OPTIONS:
                        option_values.setdefault(v.lower(), v)
        for name in extra_products:
            product_names.setdefault(name.strip().lower(), name.strip())
        for value in extra_options:
            option_values.setdefault(value.strip().lower(), value.strip())
        for name in product_names.values():
            terms[name] = ("product", name)
            singular = _singular(name)
            if singular:
                terms[singular] = ("product", name)
        for value in option_values.values():
            terms.setdefault(value, ("option", value))
        alias_map = {**(DEFAULT_PRODUCT_ALIASES if default_aliases else {}), **(aliases or {})}
        for surface, target in alias_map.items():
            t = target.strip().lower()
            if t in product_names:
                terms.setdefault(surface, ("product", product_names[t]))
            elif t in option_values:
                terms.setdefault(surface, ("option", option_values[t]))
        return cls(terms)

    def to_dict(self) -> dict[str, Any]:
        return {"terms": {s: list(ev) for s, ev in self.terms.items()}}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> CatalogGazetteer:
        return cls({s: (str(ev[0]), str(ev[1])) for s, ev in data.get("terms", {}).items()})

    def _lookup(self, surface: str) -> _Term | None:
        k = _key(surface)
        for cand in (k, k[:-2] if k.endswith("es") else None, k[:-1] if k.endswith("s") else None):
            if cand and cand in self._by_key:
                return self._by_key[cand]
        return None

    def _han_hits(self, text: str) -> list[tuple[int, int, _Term]]:
        """Chinese terms where they stand as whole words of the segmented text: "T恤" in
        "T恤多少钱", not "手机" in "手机号" nor "大" in "大家" (segmentation keeps those
        one word; a glue character beside a longer term is allowed: "有大号" is one word),
        nor a product right before an accessory word ("手机壳"). Overlapping hits are all
        returned; ``resolve_overlaps`` keeps the longest."""
        if not self._han_terms or not has_han(text):
            return []
        folded = fold_width(text).lower()
        edges = {0, len(text)}
        accessory_at: set[int] = set()  # where a lone accessory word starts ("手机/壳")
        for word, start, end in segment_spans(folded):
            edges.update((start, end))
            if word in _ACCESSORY_WORDS:
                accessory_at.add(start)
        hits = []
        for surface in self._han_terms:
            start = folded.find(surface)
            while start >= 0:
                end = start + len(surface)
                term = self._by_key.get(_key(surface))
                if (
                    term is not None
                    and _han_edge(folded, start, edges, surface, before=True)
                    and _han_edge(folded, end, edges, surface, before=False)
                    and not (term.entity == "product" and end in accessory_at)
                ):
                    hits.append((start, end, term))
                start = folded.find(surface, start + 1)
        return hits

    def extract(self, text: str) -> list[EntityDict]:
        hits: list[tuple[int, int, _Term]] = []
        for m in self._regex.finditer(text) if self._regex is not None else ():
            term = self._lookup(m.group())
            if term is not None:
                hits.append((m.start(), m.end(), term))
        hits = sorted(hits + self._han_hits(text), key=lambda h: (h[0], h[1]))
        out: list[EntityDict] = []
        for i, (start, end, term) in enumerate(hits):
            if term.ambiguous and not self._supported(text, i, hits):
                continue
            ent: EntityDict = {
                "entity": term.entity,
                "start": start,
                "end": end,
                "value": term.value,
                "extractor": self.name,
            }
            if term.value != text[start:end]:
                ent["processors"] = ["EntitySynonymMapper"]
            out.append(ent)
        return out

    @staticmethod
    def _supported(text: str, i: int, hits: list[tuple[int, int, _Term]]) -> bool:
        """Is the ambiguous hit ``i`` next to an attribute word or an unambiguous term?"""
        start, end, _ = hits[i]
        if _ZH_CUE_BEFORE.search(text[max(0, start - 8) : start]) or _ZH_CUE_AFTER.match(text, end):
            return True
        if text[end : end + 1] == "号" and text[start:end].isalpha():
            return True  # "M号", "XL号"; "10号" is a date
        before = re.findall(r"[A-Za-z]+", text[max(0, start - 20) : start])
        after = re.findall(r"[A-Za-z]+", text[end : end + 20])
        if before and before[-1].lower() in _ATTRIBUTE_CUES:
            return True
        if after and after[0].lower() in _ATTRIBUTE_CUES - {"in"}:
            return True
        for j, (s2, e2, other) in enumerate(hits):
            if j == i or other.ambiguous:
                continue
            gap = text[e2:start] if e2 <= start else text[end:s2]
            if len(gap) <= 12 and _FILLER.match(gap):
                return True
        return False


# ---------------------------------------------------------------------------------------
# Reasons
# ---------------------------------------------------------------------------------------

DEFAULT_REASON_SYNONYMS: dict[str, str] = (
    {
        phrase: REASON_NO_LONGER_NEEDED
        for phrase in (
            "no longer needed",
            "no longer need it",
            "no longer need",
            "no longer want it",
            "not needed anymore",
            "not needed",
            "don't need it anymore",
            "don't need it any more",
            "don't need it",
            "don't need them",
            "do not need it",
            "do not need it anymore",
            "don't want it anymore",
            "don't want it any more",
            "do not want it anymore",
            "don't want it",
            "don't want them anymore",
            "changed my mind",
            "change of mind",
            "have no use for it",
            "no use for it",
            "no need for it",
            "no need anymore",
            "not necessary anymore",
        )
    }
    | {
        phrase: REASON_MISTAKE
        for phrase in (
            "ordered by mistake",
            "by mistake",
            "mistake",
            "mistakenly",
            "by accident",
            "accidentally",
            "accidental order",
            "accidently",
            "bought the wrong one",
            "ordered the wrong one",
            "ordered the wrong thing",
            "bought the wrong thing",
            "didn't mean to order",
            "did not mean to order",
            "didn't mean to buy",
            "ordered it twice",
            "ordered twice",
            "double ordered",
            "duplicate order",
            "misclicked",
            "misclick",
            "unintentionally",
            "not on purpose",
        )
    }
    | answers.REASON_PHRASES  # the Chinese ones
)


class ReasonExtractor:
    """Maps free-text cancellation reasons onto the canonical reason values."""

    name = "ReasonSynonymExtractor"

    def __init__(self, phrases: Mapping[str, str]) -> None:
        """``phrases`` maps a phrase (any case) -> canonical reason."""
        self.phrases = {p.strip().lower(): v for p, v in phrases.items() if p.strip()}
        canon = {v.lower(): v for v in self.phrases.values()}
        for low, v in canon.items():
            self.phrases.setdefault(low, v)
        ordered = sorted(self.phrases, key=len, reverse=True)
        # "don't" / "dont" / "don’t"; "anymore" / "any more"; Chinese phrases inside text
        self._regex = (
            re.compile("|".join(answers.phrase_pattern(p) for p in ordered), re.IGNORECASE)
            if ordered
            else None
        )
        self._by_key = {re.sub(r"['’\s]+", "", p): v for p, v in self.phrases.items()}

    @classmethod
    def with_defaults(
        cls, synonyms: Mapping[str, str] | None = None, reasons: Iterable[str] = ()
    ) -> ReasonExtractor:
        """Built-in phrases plus those of ``synonyms`` whose value is a reason.

        A value counts as a reason when it is one of the built-in canonical values or is
        listed in ``reasons`` (the values annotated as ``reason`` in training data).
        """
        canonical = {REASON_NO_LONGER_NEEDED, REASON_MISTAKE} | {r.lower() for r in reasons}
        phrases = dict(DEFAULT_REASON_SYNONYMS)
        for surface, value in (synonyms or {}).items():
            if value.lower() in canonical:
                phrases[surface] = value
        for r in reasons:
            phrases.setdefault(r, r)
        return cls(phrases)

    def extract(self, text: str) -> list[EntityDict]:
        if self._regex is None:
            return []
        out: list[EntityDict] = []
        for m in self._regex.finditer(text):
            value = self._by_key.get(
                re.sub(r"['’\s]+", "", m.group().lower().replace("any more", "anymore"))
            )
            if value is None:
                continue
            ent: EntityDict = {
                "entity": "reason",
                "start": m.start(),
                "end": m.end(),
                "value": value,
                "extractor": self.name,
            }
            if value != m.group():
                ent["processors"] = ["EntitySynonymMapper"]
            out.append(ent)
        return out


# ---------------------------------------------------------------------------------------
# Combination
# ---------------------------------------------------------------------------------------

_PRIORITY = {
    "order_id": 0,
    "email": 0,
    "ticket_id": 0,
    "phone": 1,
    "zipcode": 2,
    "reason": 3,
    "product": 4,
    "option": 5,
}


def resolve_overlaps(candidates: Iterable[EntityDict]) -> list[EntityDict]:
    """Keep a non-overlapping subset: higher priority kind first, then longer, then earlier."""
    ranked = sorted(
        candidates,
        key=lambda e: (_PRIORITY.get(e["entity"], 6), -(e["end"] - e["start"]), e["start"]),
    )
    kept: list[EntityDict] = []
    for ent in ranked:
        if all(ent["end"] <= k["start"] or ent["start"] >= k["end"] for k in kept):
            kept.append(ent)
    return sorted(kept, key=lambda e: (e["start"], e["end"]))


class EntityExtractor:
    """All of Clerk's extractors behind one ``extract(text)``; output never overlaps."""

    def __init__(
        self,
        patterns: RegexEntityExtractor | None = None,
        gazetteer: CatalogGazetteer | None = None,
        reasons: ReasonExtractor | None = None,
    ) -> None:
        self.patterns = patterns or RegexEntityExtractor()
        self.gazetteer = gazetteer
        self.reasons = reasons or ReasonExtractor.with_defaults()

    def extract(self, text: str) -> list[EntityDict]:
        if not text:
            return []
        found = self.patterns.extract(text) + self.reasons.extract(text)
        if self.gazetteer is not None:
            found += self.gazetteer.extract(text)
        return resolve_overlaps(found)
