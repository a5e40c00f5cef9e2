"""Clerk's one set of rules for reading shopper text: ids, contact details, addresses and
the words that make a complaint severe.

The NLU entity extractor (``bot.nlu.entities``), the store actions (``bot.store_actions``),
the handoff triggers (``bot.handoff.triggers``) and the log filter (``bot.privacy``) all read
text through this module, so they agree: what the NLU tags as an order id, the actions
normalise to the same id; every email or phone number the NLU finds, the log filter masks;
a complaint the handoff policy finds severe gets a high-priority ticket. Pure functions over
strings, no state; safe from any thread. This module imports nothing of ``bot``.

Two kinds of functions:

- ``normalise_*(value)`` read a value that is *meant* to be one thing (a slot value, a
  form answer): the whole string, surrounding spaces allowed; the canonical form or None.
- ``find_*(text)`` look for things in free text and return ``Match``es (kind, canonical
  value, span into the text as given), in text order. They are stricter than the
  normalisers, because free text is full of numbers that are not ids.

Rules, and the answer chosen where earlier copies disagreed:

- **Order id** ``#W`` + 7 digits. ``"W-2611340"``, ``"#w2611340"``, ``"w 2611340"``,
  ``"# W2611340"`` and (as a value) a bare ``"2611340"`` are all ``"#W2611340"``. In free
  text a ``W`` or a ``#`` must mark it (``"order #2611340"`` counts, ``"2611340"`` alone
  does not); an eighth digit means it is not an order id.
- **Ticket id** ``T-`` + 6 digits: ``"t-004211"``, ``"T 004211"``, ``"t004211"`` ->
  ``"T-004211"``; as a value a bare ``"004211"`` too; in free text the ``T`` is required.
- **Email**: candidates are found by pattern, then checked by ``email-validator`` (syntax
  only, no DNS); ``"a@b"`` and ``"john..doe@example.com"`` are not emails. The value is
  lowercased whole (stores compare addresses case-insensitively); a sentence's final dot
  is not part of it. Han characters end an address: in Chinese text it runs into the
  words around it ("我的邮箱是ivan@example.com谢谢" holds ``ivan@example.com``), so an
  address written in Han characters is not found. The log filter masks every
  *candidate*, valid or not.
- **Phone number**: found and checked by ``phonenumbers`` (``PhoneNumberMatcher``), national
  numbers read as ``DEFAULT_REGION``; international ones written with ``+``. A number must
  be possible in full (a US number needs its area code; 7 digits are "local only" and are
  not a phone number). Digits written without any separator count only after a cue word
  ("call", "phone", ...): ``"item 9612497925"`` is an item id. The value keeps what the
  shopper wrote, digits only, with the ``+`` when written (``"(312) 555-0199"`` ->
  ``"3125550199"``, ``"+1 415 555 0123"`` -> ``"+14155550123"``); ``phone_e164`` gives the
  form to compare numbers by. The log filter masks bare 10+ digit numbers even without a cue.
- **Zip code**: 5 digits (a ``-1234`` extension is accepted, not kept) that are not a
  price, a part of an id, a decimal, a quantity with a unit ("20000mAh", "10000 minutes");
  Chinese text may run into it ("邮编80279").
- **Card number**: 13 to 19 digits, single spaces or hyphens between them. The log filter
  masks every candidate; ``luhn_valid`` tells a real card number from a typo.
- **Street address**: ``parse_address`` reads a US address answer (street, city, state,
  zip). ``find_street_addresses`` finds addresses in free text *for masking* (only the log
  filter calls it), so it errs toward masking, but leaves shop text alone: order ids,
  prices, quantities ("2 items", "5 to 7 business days"), times ("9:00 to 18:00"), dates
  ("12 March") and product names ("iPhone 15 Pro", "10x Digital Camera", "Size 10 Running
  Shoes"). It does not rest on a short list of street types:

  - *house number first* (a number, optionally "221B", "12-14", "5/12"), then:
    a street type among the next five words ("12 Baker Street", "15 rose terrace",
    "9 old mill rd", "1 E 42nd St NW"; about a hundred types, any case, the words before it
    no function words); or a type written first ("12 rue de la Paix", "1 Place de la
    Concorde"); or, with no type at all, one to four Titlecase words ("7 Rosebank",
    "3 The Paddock") -- but only after an address cue (``to``, ``at``, ``is``, ``from``,
    ``address``... or a comma, a colon, the start of the text). That cue is what tells
    "ship to 7 Rosebank" from "I want 2 Blue Shirts"; a Titlecase street with no type
    typed all in lowercase ("7 rosebank") is therefore not found;
  - never a number that follows "size", "model", "pack of", "top", ... or that a quantity,
    unit, time, month or weekday word follows ("2 Items", "3 Days", "12 March", "9 PM"),
    nor one whose words are product words ("15 Pro", "55 Inch TV");
  - *number after the name*: a German, Dutch or Nordic street word ("Hauptstraße 5",
    "Bahnhofstr. 3a", "Keizersgracht 123", "Große Hamburger Straße 17"), a German
    preposition ("Am Markt 3", "Unter den Linden 77"), or a type written first ("Calle
    Mayor 12", "Via Roma 1", "Rue de Rivoli 10", "Calle de Alcalá, 45"); English-looking
    types ("avenue", "place", "route") need a Titlecase name ("via UPS 2 days" is no
    address: a quantity word follows);
  - units ("Flat 3", "Apt 4B", "Suite 200", "Unit C2"), "PO Box 123", and postcodes where
    their shape says so: UK ("SW1A 1AA"), Canadian ("K1A 0B1", with its space), a US zip
    after a state ("IL 62704-1234"; a lower-case state only after a comma), an Australian
    one after a state ("NSW 2000"), and a European one right after an address
    ("..., 10115 Berlin", "..., 1015 CJ Amsterdam"). Parts next to each other
    ("Flat 3, 12 Baker Street") are one match.

  ``tests/test_privacy_masking.py`` checks it on 400 generated addresses in nine
  countries' formats and on a list of shop sentences that must come out unchanged.
- **Severity**: ``severe_issue`` names a *safety* issue (fire, injury, shock, ...) or a
  *legal* one (lawyer, police, fraud, ...); ``negativity`` scores strongly negative words.
  A complaint with a severe issue or a negativity of ``SEVERE_NEGATIVITY`` is *severe*: the
  handoff policy hands it to a human at once, and ``ticket_priority`` makes its ticket
  ``"high"``. Breakage and non-delivery are *urgent* but not severe: a high-priority ticket,
  no immediate handoff. (Earlier, "the police are involved" handed off but filed a normal
  ticket; now both say severe.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import phonenumbers
from email_validator import EmailNotValidError, validate_email

__all__ = [
    "DEFAULT_REGION",
    "HAN",
    "NON_HAN_WORD_CHAR",
    "SEVERE_NEGATIVITY",
    "STATES",
    "AddressError",
    "Match",
    "Severity",
    "find_card_numbers",
    "find_emails",
    "find_order_id",
    "find_order_ids",
    "find_phones",
    "find_street_addresses",
    "find_ticket_id",
    "find_ticket_ids",
    "find_zips",
    "is_email",
    "is_severe",
    "luhn_valid",
    "negativity",
    "normalise_email",
    "normalise_order_id",
    "normalise_phone",
    "normalise_ticket_id",
    "parse_address",
    "phone_e164",
    "severe_issue",
    "ticket_priority",
]


@dataclass(frozen=True)
class Match:
    """One thing found in a text: ``text[start:end]`` is what was written, ``value`` its
    canonical form."""

    kind: str  # order_id | ticket_id | email | phone | zipcode | card | address
    value: str
    start: int
    end: int


def _value_text(value: Any) -> str | None:
    return None if value is None else str(value)


# ---------------------------------------------------------------------------- order ids

_ORDER_ID_VALUE = re.compile(r"\s*(?:#\s?)?(?:w[\s-]?)?(\d{7})\s*", re.IGNORECASE)
_ORDER_ID_IN_TEXT = re.compile(
    r"(?:#\s?(?:w[\s-]?)?(?P<a>\d{7})|(?<![A-Za-z0-9#])w[\s-]?(?P<b>\d{7}))(?!\d)",
    re.IGNORECASE,
)


def normalise_order_id(value: Any) -> str | None:
    """``"W-2611340"``, ``"#w2611340"``, ``"w 2611340"``, ``"2611340"`` -> ``"#W2611340"``;
    None for anything else (None included)."""
    text = _value_text(value)
    m = _ORDER_ID_VALUE.fullmatch(text) if text is not None else None
    return f"#W{m.group(1)}" if m else None


def find_order_ids(text: str) -> list[Match]:
    """Order ids marked by ``W`` or ``#`` in free text ("order#w7678072 and W-7309535")."""
    return [
        Match("order_id", "#W" + (m.group("a") or m.group("b")), m.start(), m.end())
        for m in _ORDER_ID_IN_TEXT.finditer(text or "")
    ]


def find_order_id(text: str) -> str | None:
    """The first order id in ``text``, normalised; None when there is none."""
    found = find_order_ids(text)
    return found[0].value if found else None


# --------------------------------------------------------------------------- ticket ids

_TICKET_ID_VALUE = re.compile(r"\s*#?\s?(?:t\s?-?\s?)?(\d{6})\s*", re.IGNORECASE)
_TICKET_ID_IN_TEXT = re.compile(r"(?<![A-Za-z0-9-])t\s?-?\s?(\d{6})(?!\d)", re.IGNORECASE)


def normalise_ticket_id(value: Any) -> str | None:
    """``"t-004211"``, ``"T 004211"``, ``"004211"`` -> ``"T-004211"``; else None."""
    text = _value_text(value)
    m = _TICKET_ID_VALUE.fullmatch(text) if text is not None else None
    return f"T-{m.group(1)}" if m else None


def find_ticket_ids(text: str) -> list[Match]:
    """Ticket ids (a ``T`` and 6 digits) in free text."""
    return [
        Match("ticket_id", f"T-{m.group(1)}", m.start(), m.end())
        for m in _TICKET_ID_IN_TEXT.finditer(text or "")
    ]


def find_ticket_id(text: str) -> str | None:
    """The first ticket id in ``text``, normalised; None when there is none."""
    found = find_ticket_ids(text)
    return found[0].value if found else None


# ------------------------------------------------------------------------------- emails

#: Han ideographs (a regex character-class body): CJK Unified Ideographs, extension A,
#: compatibility ideographs and the supplementary-plane extensions B to H. Chinese text
#: runs into ids, emails and numbers without a space, so rules here stop at them; the
#: rest of Clerk's Chinese reading (``bot.lang``) uses the same range.
HAN = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0003134f"
#: A word character that is not Han: what a Latin word, id or address is made of.
NON_HAN_WORD_CHAR = rf"[^\W{HAN}]"
_HAN_CHAR = re.compile(f"[{HAN}]")
# Candidates only: email-validator decides. Unicode letters other than Han are allowed on
# both sides.
_EMAIL_CANDIDATE = re.compile(
    rf"(?<![.%+-])(?<!{NON_HAN_WORD_CHAR})"
    rf"(?:{NON_HAN_WORD_CHAR}|[%+-])(?:{NON_HAN_WORD_CHAR}|[.%+'-])*"
    rf"@(?:[^\W_{HAN}](?:{NON_HAN_WORD_CHAR}|-)*\.)+[^\W\d_{HAN}]{{2,}}"
    rf"(?!{NON_HAN_WORD_CHAR}|-)"
)


def normalise_email(value: Any) -> str | None:
    """The address, lowercased, when ``value`` (whole, spaces trimmed) is a valid email
    address by email-validator's syntax rules (no DNS lookup) with a top-level domain of
    two letters or more; else None."""
    text = (_value_text(value) or "").strip()
    if not _EMAIL_CANDIDATE.fullmatch(text):
        return None  # also what the validator allows and no store can use: "me@example.c"
    try:
        validate_email(text, check_deliverability=False)
    except EmailNotValidError:
        return None
    return text.lower()


def is_email(value: Any) -> bool:
    """True when ``value`` is one valid email address (see ``normalise_email``)."""
    return normalise_email(value) is not None


def find_emails(text: str, *, validate: bool = True) -> list[Match]:
    """Email addresses in free text, lowercased. With ``validate=False`` every address-like
    candidate is returned (the log filter masks those too)."""
    out = []
    for m in _EMAIL_CANDIDATE.finditer(text or ""):
        value = normalise_email(m.group()) if validate else m.group().lower()
        if value is not None:
            out.append(Match("email", value, m.start(), m.end()))
    return out


# ------------------------------------------------------------------------------- phones

#: National numbers (no ``+``) are read as numbers of this region.
DEFAULT_REGION = "US"

_PHONE_CUE = re.compile(
    r"\b(?:phone|call|cell|mobile|tel|telephone|number|text me|sms|whatsapp|reach me)\b",
    re.IGNORECASE,
)
_PHONE_HINT = re.compile(r"\d(?:[\s().-]{0,3}\d){6}")
_CUE_WINDOW = 40
_BARE_MIN_DIGITS = 10


def _joins(char: str) -> bool:
    """A letter or digit a number next to it would be part of (not a Han character:
    Chinese runs into numbers without a space, "电话555-201-7788")."""
    return char.isalnum() and _HAN_CHAR.match(char) is None


def _full_number(number: phonenumbers.PhoneNumber) -> bool:
    reason = phonenumbers.is_possible_number_with_reason(number)
    return bool(reason == phonenumbers.ValidationResult.IS_POSSIBLE)


def _phone_value(surface: str) -> str:
    digits = re.sub(r"\D", "", surface)
    return ("+" + digits) if surface.lstrip().startswith("+") else digits


def find_phones(
    text: str, *, region: str = DEFAULT_REGION, bare_needs_cue: bool = True
) -> list[Match]:
    """Phone numbers in free text (see the module docstring for the rules).

    With ``bare_needs_cue=False`` a number written as bare digits counts without a cue word
    when it has at least 10 digits (the log filter's setting).
    """
    text = text or ""
    if not _PHONE_HINT.search(text):
        return []  # fewer than 7 digits together: spare the matcher (log lines, chat)
    out = []
    for pm in phonenumbers.PhoneNumberMatcher(
        text, region, leniency=phonenumbers.Leniency.POSSIBLE
    ):
        start, end, surface = pm.start, pm.end, pm.raw_string
        if (start > 0 and (_joins(text[start - 1]) or text[start - 1] in "#$-")) or (
            end < len(text) and (_joins(text[end]) or text[end] in "-")
        ):
            continue  # part of an id, a price or a longer number
        if not _full_number(pm.number):
            continue
        if surface.isdigit():
            if bare_needs_cue:
                if not _PHONE_CUE.search(text[max(0, start - _CUE_WINDOW) : start]):
                    continue
            elif len(surface) < _BARE_MIN_DIGITS:
                continue
        out.append(Match("phone", _phone_value(surface), start, end))
    return out


def normalise_phone(value: Any, *, region: str = DEFAULT_REGION) -> str | None:
    """``value`` (whole, spaces trimmed, no letters) as a phone number's digits, ``+`` kept
    when written; None when it is not a full possible phone number."""
    text = (_value_text(value) or "").strip()
    if not text or any(c.isalpha() for c in text) or not re.fullmatch(r"[\d\s+().-]+", text):
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    return _phone_value(text) if _full_number(number) else None


def phone_e164(value: Any, *, region: str = DEFAULT_REGION) -> str | None:
    """The E.164 form (``"+13125550199"``) of a phone number value, to compare numbers by;
    None when ``value`` is not a phone number."""
    if normalise_phone(value, region=region) is None:
        return None
    number = phonenumbers.parse(str(value).strip(), region)
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


# ---------------------------------------------------------------------------- zip codes

_UNITS = (
    r"(?:mah|ml|gb|mb|tb|mp|rpm|lbs?|ft|in|inch(?:es)?|k|w|watts?|hours?|hrs?|days?|dollars?|"
    r"usd|points|pieces|steps|calories|seconds|secs|minutes|mins|weeks|months|years|items|"
    r"orders|times|people|miles|km)\b"
)
_ZIP = re.compile(
    rf"(?<![#$€£/.,:-])(?<!{NON_HAN_WORD_CHAR})(?P<zip>\d{{5}})"
    r"(?:-\d{4})?(?![\w%]|[.,:]\d|-\d)(?!\s?" + _UNITS + ")",
    re.IGNORECASE,
)


def find_zips(text: str) -> list[Match]:
    """US zip codes in free text; the value is the 5 digits (``62704-1234`` -> ``62704``)."""
    return [Match("zipcode", m.group("zip"), m.start(), m.end()) for m in _ZIP.finditer(text or "")]


# ------------------------------------------------------------------------- card numbers

_CARD = re.compile(r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])")


def luhn_valid(digits: str) -> bool:
    """The Luhn check of a card number (non-digits ignored); False for fewer than 13."""
    nums = [int(c) for c in digits if c.isdigit()]
    if len(nums) < 13:
        return False
    total = 0
    for i, n in enumerate(reversed(nums)):
        if i % 2:
            n = n * 2 - 9 if n > 4 else n * 2
        total += n
    return total % 10 == 0


def find_card_numbers(text: str) -> list[Match]:
    """Card-like numbers (13-19 digits, single spaces or hyphens between) in free text;
    the value is the digits. Not Luhn-checked: see ``luhn_valid``."""
    return [
        Match("card", re.sub(r"\D", "", m.group()), m.start(), m.end())
        for m in _CARD.finditer(text or "")
    ]


# ---------------------------------------------------------------------------- addresses

STATES = {
    "AL": "Alabama",
    "AK": "Alaska",
    "AZ": "Arizona",
    "AR": "Arkansas",
    "CA": "California",
    "CO": "Colorado",
    "CT": "Connecticut",
    "DE": "Delaware",
    "DC": "District of Columbia",
    "FL": "Florida",
    "GA": "Georgia",
    "HI": "Hawaii",
    "ID": "Idaho",
    "IL": "Illinois",
    "IN": "Indiana",
    "IA": "Iowa",
    "KS": "Kansas",
    "KY": "Kentucky",
    "LA": "Louisiana",
    "ME": "Maine",
    "MD": "Maryland",
    "MA": "Massachusetts",
    "MI": "Michigan",
    "MN": "Minnesota",
    "MS": "Mississippi",
    "MO": "Missouri",
    "MT": "Montana",
    "NE": "Nebraska",
    "NV": "Nevada",
    "NH": "New Hampshire",
    "NJ": "New Jersey",
    "NM": "New Mexico",
    "NY": "New York",
    "NC": "North Carolina",
    "ND": "North Dakota",
    "OH": "Ohio",
    "OK": "Oklahoma",
    "OR": "Oregon",
    "PA": "Pennsylvania",
    "RI": "Rhode Island",
    "SC": "South Carolina",
    "SD": "South Dakota",
    "TN": "Tennessee",
    "TX": "Texas",
    "UT": "Utah",
    "VT": "Vermont",
    "VA": "Virginia",
    "WA": "Washington",
    "WV": "West Virginia",
    "WI": "Wisconsin",
    "WY": "Wyoming",
    "PR": "Puerto Rico",
}
_STATE_BY_NAME = {name.lower(): code for code, name in STATES.items()}
_COUNTRY_SUFFIX = re.compile(
    r"[,\s]+(usa|u\.s\.a\.?|us|u\.s\.?|united states(?: of america)?)\s*$", re.IGNORECASE
)
_ZIP_AT_END = re.compile(r"[,\s]+(\d{5})(?:-\d{4})?$")
_PREAMBLE = re.compile(
    r"^(?:(?:sure|ok|okay|yes|please)[,!.]?\s+)?"
    r"(?:(?:it'?s|it is|that'?s)\s+|"
    r"(?:(?:my|the)\s+)?(?:new\s+)?(?:shipping\s+|delivery\s+)?address\s*(?:is|:|=)?\s*|"
    r"(?:please\s+)?(?:ship|send|deliver|change)\s+(?:it|them|the order|my order)?\s*to\s*:?\s*)",
    re.IGNORECASE,
)
_CITY = re.compile(r"^[A-Za-z][A-Za-z .'-]*$")


class AddressError(ValueError):
    """An address the shopper must correct. ``code`` names what is missing (``zip``,
    ``state``, ``commas``, ``city``, ``house_number``: the shopper reads the response
    ``utter_address_missing_<code>``); ``problem`` describes it for logs and tests."""

    def __init__(self, code: str, problem: str) -> None:
        super().__init__(problem)
        self.code = code
        self.problem = problem


def _take_state(before: str) -> tuple[str | None, str]:
    lowered = before.lower()
    for name, code in sorted(_STATE_BY_NAME.items(), key=lambda kv: -len(kv[0])):
        if lowered.endswith(name) and (
            len(lowered) == len(name) or lowered[-len(name) - 1] in " ,"
        ):
            return code, before[: -len(name)]
    sm = re.search(r"(?:^|[\s,])([A-Za-z]{2})$", before)
    if sm and sm.group(1).upper() in STATES:
        return sm.group(1).upper(), before[: sm.start(1)]
    return None, before


def parse_address(text: str) -> dict[str, str]:
    """Parse ``"street, [suite,] city, ST 12345"`` into the store's address shape.

    Returns ``{"address1", "address2", "city", "state", "zip", "country"}`` (address2 may
    be ``""``; country is ``"USA"``). Raises ``AddressError`` when the zip code (5 digits),
    the state, the city or the street is missing.
    """
    s = re.sub(r"\s+", " ", (text or "").strip()).rstrip(".! ")
    s = _COUNTRY_SUFFIX.sub("", s)
    m = _ZIP_AT_END.search(s)
    if not m:
        raise AddressError("zip", "a 5-digit zip code at the end")
    zip_code = m.group(1)
    state, before = _take_state(s[: m.start()].strip().rstrip(",").strip())
    if state is None:
        raise AddressError("state", "the state (like IL or Illinois) before the zip code")
    parts = [p.strip() for p in before.strip().rstrip(",").split(",") if p.strip()]
    if len(parts) < 2:
        raise AddressError("commas", "the street and the city, separated by commas")
    city = parts[-1]
    street = _PREAMBLE.sub("", parts[0]).strip()
    if not _CITY.match(city):
        raise AddressError("city", "the city name")
    if not street or not re.search(r"\d", " ".join([street, *parts[1:-1]])):
        raise AddressError("house_number", "the street with its house number")
    return {
        "address1": street,
        "address2": ", ".join(parts[1:-1]),
        "city": city,
        "state": state,
        "zip": zip_code,
        "country": "USA",
    }


# ------------------------------------------------------------- street addresses in text


def _words(spec: str) -> frozenset[str]:
    return frozenset(spec.split())


# Street types written after the name ("Baker Street", "Rose Terrace", "Old Mill Rd").
# They make a match *strong*: any case, no cue needed. Without one, Titlecase words after
# a house number still count, but only after an address cue (see find_street_addresses).
_TRAILING_TYPES = _words(
    """street st str road rd avenue ave av boulevard blvd bvd lane ln drive dr drv terrace
    ter terr tce crescent cres cresc parkway pkwy highway hwy freeway fwy expressway close cl
    way wy place pl court ct crt square sq circle cir circus trail trl row parade pde walk
    wynd gardens gdns grove gr mews hill hl rise view vale park pk gate path loop alley
    quay wharf esplanade promenade broadway plaza pike turnpike crossing xing heights hts
    common heath ridge crest glen hollow chase croft fold garth brae loan vennel causeway
    bypass embankment green grn end approach mall meadow meadows fields field yard bank
    avenida calle"""
)
# Types that may carry a dot: "Ave.", "St."; after a full word a dot ends the sentence.
_ABBREVIATED_TYPES = _words(
    """st str rd ave av blvd bvd ln dr drv ter terr tce cres cresc pkwy hwy fwy cl wy pl ct
    crt sq cir trl pde gdns gr hl pk hts grn"""
)
# Street types written before the name ("rue de Rivoli", "Calle Mayor", "Via Roma"). The
# ambiguous ones are English words too: they need a Titlecase name or a particle after.
_LEADING_TYPES = _words(
    """rue avenue av avda avenida boulevard bd bld place chemin allée allee impasse quai
    cours route rte passage via viale vicolo piazza piazzale corso largo strada calle c/
    carrer plaza plaça paseo passeig pasaje ronda camino travesía rua praça travessa
    estrada alameda rambla carretera avinguda laan"""
)
_AMBIGUOUS_LEADING = _words("avenue av boulevard bd place route passage largo")
_PARTICLES = _words(
    """de du des d' la le les l' del della delle dei degli di da do dos das el los las y e i
    van der den von zu am of the et sur aux au"""
)
_STOPWORDS = _words(
    """a an the to of in on at for and or but nor with without by from into onto over under
    my your our his her their its is are was were be been it this that these those as per
    each every all any some more less than then so not no yes if i we you he she they me
    us them will would can could should have has had do does did just only also about
    after before ago later left up down out off again still please thanks thank via"""
)
# Words after a number that make it a quantity, a time or a date, not a house number.
_QUANTITY_WORDS = _words(
    """item items piece pieces pcs pc pack packs pk unit units day days week weeks month
    months year years yr yrs hour hours hr hrs minute minutes min mins seconds secs sec
    business working time times order orders people persons person pair pairs set sets box
    boxes bottle bottles can cans bag bags color colors colour colours size sizes star stars
    review reviews point points pts percent pct x inch inches ft feet foot cm mm m km kg g
    lb lbs oz ml l gb tb mb mp mph w v mah hz ghz k am pm a.m. p.m. eastern pacific central
    mountain edt pst pdt cst cdt mst et pt gmt utc bst cet o'clock noon midnight
    morning evening night today tomorrow yesterday
    january february march april may june july august september october november december
    jan feb mar apr jun jul aug sep sept oct nov dec
    monday tuesday wednesday thursday friday saturday sunday mon tue tues wed thu thurs fri
    sat sun
    dollars dollar usd eur euro euros gbp pounds pound cents cent bucks
    products product passages passage documents document records record rows row files file
    results result errors error warnings warning requests request workers worker users user
    customers customer shoppers shopper agents agent tickets ticket messages message
    conversations replies answers questions intents examples epochs steps step tokens chars
    characters words bytes lines entries variants variant retries attempts locations
    addresses stores shops"""
)
# Words of product names ("iPhone 15 Pro", "55 Inch TV", "10 Running Shoes").
_PRODUCT_WORDS = _words(
    """pro max plus ultra mini lite edition gen generation series model version bundle kit
    hd uhd 4k oled led lcd usb wifi bluetooth wireless digital camera cameras phone phones
    laptop laptops tablet tablets watch watches shoe shoes running sneakers boots shirt
    shirts t-shirt t-shirts jacket jackets pants jeans socks dress dresses hoodie headphones
    earbuds speaker speakers charger chargers cable cables case cases cover covers tv tvs
    monitor printer console controller mouse keyboard mug mugs chair chairs desk lamp
    backpack wallet gift gifts card cards free pro's"""
)
# Words right before a number that make it a size, a model or a count ("size 10", "pack of 12").
_NUMBER_BLOCKERS = _words(
    """size sizes model models version ver v gen generation series mark mk pack of qty
    quantity top chapter season episode level grade type class page step day week month
    year room number no nr total only just about around over under approx approximately
    first last next another buy get save x"""
)
# Words right before a number that announce an address ("ship to 7 Rosebank").
_ADDRESS_CUES = _words("to at from is be address addr near live lives reside resides moved")
_DIRECTIONS = _words("N S E W NE NW SE SW N. S. E. W.")  # compared in upper case

_TOKEN = re.compile(r"[^\W_][\w'’&.-]*")
_HOUSE_NUMBER = r"\d{1,5}(?:[A-Ha-h](?![\w]))?(?:[ \t]?[-/–][ \t]?\d{1,5}(?:[A-Ha-h](?![\w]))?)?"
# a house number, then (looked at, not taken) up to six words on the same line, the first
# a word or an ordinal ("12 Baker", "100 5th")
_NUMBER_FIRST = re.compile(
    r"(?<![\w#$€£¥%.,:;/+&@=~-])(?P<num>" + _HOUSE_NUMBER + r")(?:[ \t]+(?:bis|ter)\b)?"
    r"(?=(?P<words>[ \t]+(?:[^\W\d_]|\d+(?:st|nd|rd|th)\b)[\w'’&.-]*"
    r"(?:[ \t]+[^\W_][\w'’&.-]*){0,5}))"
)
_NUMBER_AFTER = (
    r"[ \t]*,?[ \t]*(?P<num>\d{1,4}(?:[A-Za-z](?![\w]))?(?:[ \t]?[-/][ \t]?\d{1,4}[A-Za-z]?)?)"
    r"(?![\w%]|[.,:]\d)"
)
_SUFFIXES = (
    r"straße|strasse|str\.|weg|gasse|platz|allee|damm|ufer|chaussee|steig|pfad|graben|gracht|"
    r"straat|laan|plein|kade|singel|dijk|steeg|burgwal|vej|gade|gatan|gata|vägen|väg|veien|katu"
)
# "Hauptstraße 5", "Bahnhofstr. 3", "Keizersgracht 123", "Große Hamburger Straße 5"
_COMPOUND_STREET = re.compile(
    r"(?<![\w'’-])(?P<pre>(?:[^\W\d_][\w'’-]*[ \t]+){0,2})"
    r"(?P<street>(?:[^\W\d_][\w'’-]*?)?(?i:"
    + _SUFFIXES
    + r"))(?<=\.|\w)(?![\w'’-])"
    + _NUMBER_AFTER
)
# "Am Markt 3", "Unter den Linden 77"
_GERMAN_PREPOSITION = re.compile(
    r"(?<![\w'’-])(?:Am|Im|Beim|Zum|Zur|An der|An den|Auf der|Auf dem|In der|In den|Unter den|"
    r"Hinter der|Vor dem)[ \t]+[A-ZÄÖÜ][\w'’-]*(?:[ \t]+[A-ZÄÖÜ][\w'’-]*)?" + _NUMBER_AFTER
)
# "Calle Mayor 12", "Via Roma 1", "Rue de Rivoli 10", "Avenida Paulista 1578"
_LEADING_THEN_NUMBER = re.compile(
    r"(?<![\w'’-])(?P<type>(?i:"
    + "|".join(sorted((re.escape(t) for t in _LEADING_TYPES), key=len, reverse=True))
    + r"))\.?(?P<names>(?:[ \t]+[^\W\d_][\w'’-]*){1,4})"
    + _NUMBER_AFTER
)
_UNIT = re.compile(
    r"(?<![\w-])(?i:flat|apt|apartment|unit|suite|ste|bldg|building)\.?[ \t]*(?:#|no\.?)?[ \t]*"
    r"(?:\d{1,5}(?:[A-Za-z](?![\w]))?|[A-Za-z]\d{1,3}|[A-Z])(?![\w%]|[.,:]\d)"
)
_PO_BOX = re.compile(r"(?<![\w-])(?i:p\.?[ \t]?o\.?[ \t]*box)[ \t]*#?[ \t]*\d{1,6}(?!\w)")
_UK_POSTCODE = re.compile(
    r"(?<![\w-])(?:[A-PR-UWYZ](?:[A-HK-Y]\d[ABEHMNPRVWXY\d]?|\d[A-HJKPSTUW\d]?)"
    r"(?P<space>[ \t]?)\d(?!GB|TB)[ABD-HJLNP-UW-Z]{2})(?![\w-])",
    re.IGNORECASE,
)
_CA_POSTCODE = re.compile(
    r"(?<![\w-])[ABCEGHJ-NPRSTVXY]\d[ABCEGHJ-NPRSTV-Z][ \t]\d[ABCEGHJ-NPRSTV-Z]\d(?![\w-])",
    re.IGNORECASE,
)
_AU_POSTCODE = re.compile(
    r"(?<![\w-])(?P<state>NSW|VIC|QLD|WA|SA|TAS|ACT|NT)[ \t]+(?P<code>\d{4})(?![\w-])",
    re.IGNORECASE,
)
_US_ZIP = re.compile(
    r"(?<![\w-])(?P<state>"
    + "|".join(sorted([*STATES, *STATES.values()], key=len, reverse=True))
    + r")[ \t]*,?[ \t]+(?P<code>\d{5}(?:-\d{4})?)(?![\w-])",
    re.IGNORECASE,
)
# a postcode right after an address: "…, 10115 Berlin", "…, 1015 CJ Amsterdam"
_POSTCODE_AFTER = re.compile(r"[ \t]*,?[ \t]*(?:\d{4}[ \t]?[A-Za-z]{2}|\d{4,5})(?=[ \t]+[^\W\d_])")
_NEXT_WORD = re.compile(r"[ \t]*([^\W_][\w'’&.-]*)")
_LAST_WORD = re.compile(r"[^\W_][\w'’&.-]*\Z")
_GAP = re.compile(r"[ \t]*,?[ \t]*")


def _bare(word: str) -> str:
    return word.lower().rstrip(".")


def _titlecase(word: str) -> bool:
    return word[:1].isupper() and (len(word) == 1 or not word.isupper())


def _quantity_follows(text: str, end: int) -> bool:
    m = _NEXT_WORD.match(text, end)
    return m is not None and _bare(m[1]) in _QUANTITY_WORDS


def _cue_before(text: str, start: int) -> tuple[bool, str]:
    """Whether an address cue precedes ``start``, and the word right before it ("" if
    punctuation or the start of the text is nearer)."""
    before = text[max(0, start - 40) : start].rstrip(" \t")
    if not before or before[-1] in ",;:(\n\r[{\"'":
        return True, ""
    m = _LAST_WORD.search(before)
    if not m or m.start() == 0 and start > 40:
        return False, ""
    word = m.group()
    return _bare(word) in _ADDRESS_CUES, word


def _number_first_end(text: str, m: re.Match[str]) -> int | None:
    """Where the address starting at house number ``m`` ends, or None when it is none."""
    cue, previous = _cue_before(text, m.start())
    if _bare(previous) in _NUMBER_BLOCKERS:
        return None
    base = m.start("words")
    tokens = [(t.group(), base + t.start(), base + t.end()) for t in _TOKEN.finditer(m["words"])]
    words = [w for w, _, _ in tokens]
    bare = [_bare(w) for w in words]
    if not words or bare[0] in _QUANTITY_WORDS:
        return None
    end: int | None = None
    # "12 rue de la Paix", "1 Avenue of the Americas"
    if (
        bare[0] in _LEADING_TYPES
        and len(words) > 1
        and (bare[0] not in _AMBIGUOUS_LEADING or bare[1] in _PARTICLES or _titlecase(words[1]))
    ):
        for (word, _, stop), low in zip(tokens[1:5], bare[1:5]):
            if low in _PARTICLES:
                continue
            if low in _STOPWORDS or low in _QUANTITY_WORDS or not word[0].isalpha():
                break
            end = stop
        if end is not None:
            return _trim(text, m.start(), end)
    # "12 Baker Street", "9 old mill rd", "1 E 42nd St", "221B Baker St NW"
    for j in range(min(len(words) - 1, 4), 0, -1):
        if bare[j] not in _TRAILING_TYPES:
            continue
        names = bare[:j]
        if any(w in _PRODUCT_WORDS for w in names) or any(
            w in _STOPWORDS and not (i == 0 and w == "the") for i, w in enumerate(names)
        ):
            continue
        end = tokens[j][2] if bare[j] in _ABBREVIATED_TYPES else tokens[j][1] + len(bare[j])
        if j + 1 < len(words) and words[j + 1].upper() in _DIRECTIONS:
            end = tokens[j + 1][2] if words[j + 1].endswith(".") else tokens[j + 1][1] + 2
        return end
    # "to 7 Rosebank", "at 12 Kingsway, Leeds": Titlecase words, only after a cue
    if not cue:
        return None
    for (word, _, stop), low in zip(tokens[:4], bare[:4]):
        if not (_titlecase(word) and word[0].isalpha()) or low in _QUANTITY_WORDS:
            break
        if low in _PRODUCT_WORDS or (low in _STOPWORDS and low != "the"):
            return None
        end = stop
    if end is not None and (len(words[0]) > 1 and _bare(words[0]) != "the" or end > tokens[0][2]):
        return _trim(text, m.start(), end)
    return None


def _trim(text: str, start: int, end: int) -> int:
    """``end`` without a sentence's final dot (kept after an abbreviated street type)."""
    if text[end - 1] == "." and _bare(text[start:end].split()[-1]) not in _ABBREVIATED_TYPES:
        return end - 1
    return end


def _number_after_ok(text: str, m: re.Match[str]) -> bool:
    return not _quantity_follows(text, m.end())


def _compound_street_start(m: re.Match[str]) -> int:
    """Where "Große Hamburger Straße 5" starts: the words before the street word count
    up to a function word or a cue ("I live on hauptstraße 5", "ship to Lindenweg 2")."""
    start = m.start("street")
    for word in reversed(list(_TOKEN.finditer(m["pre"]))):
        if _bare(word.group()) in _STOPWORDS or _bare(word.group()) in _ADDRESS_CUES:
            break
        start = m.start("pre") + word.start()
    return start


def _postcode_ok(text: str, m: re.Match[str]) -> bool:
    """A state written in capitals ("IL 62704"), or in any case after a comma ("denver, co
    80202"): "in 12345 steps" is no state and zip."""
    return m["state"].isupper() or text[: m.start()].rstrip(" \t").endswith(",")


def _leading_then_number_ok(text: str, m: re.Match[str]) -> bool:
    names = m["names"].split()
    if _bare(names[-1]) in _PARTICLES or _bare(names[-1]) in _STOPWORDS:
        return False
    if any(_bare(n) in _STOPWORDS and _bare(n) not in _PARTICLES for n in names):
        return False
    if _bare(m["type"]) in _AMBIGUOUS_LEADING and not all(
        _titlecase(n) or _bare(n) in _PARTICLES for n in names
    ):
        return False
    return _number_after_ok(text, m)


def find_street_addresses(text: str) -> list[Match]:
    """Street addresses, units and postcodes in free text, for masking (the rule is in the
    module docstring); adjacent parts ("Flat 3, 12 Baker Street") are one match."""
    text = text or ""
    if not any(c.isdigit() for c in text):
        return []
    spans: list[tuple[int, int]] = []
    for m in _NUMBER_FIRST.finditer(text):
        end = _number_first_end(text, m)
        if end is not None:
            spans.append((m.start(), end))
    spans += [
        (_compound_street_start(m), m.end())
        for m in _COMPOUND_STREET.finditer(text)
        if _number_after_ok(text, m)
    ]
    for pattern, ok in (
        (_GERMAN_PREPOSITION, _number_after_ok),
        (_LEADING_THEN_NUMBER, _leading_then_number_ok),
    ):
        spans += [(m.start(), m.end()) for m in pattern.finditer(text) if ok(text, m)]
    for m in _UNIT.finditer(text):
        _, previous = _cue_before(text, m.start())
        after_name = previous and _titlecase(previous) and previous.upper() not in _DIRECTIONS
        if after_name and _bare(previous) not in _TRAILING_TYPES:
            continue  # "Office Suite 2021"
        if not _quantity_follows(text, m.end()):
            spans.append((m.start(), m.end()))
    spans += [(m.start(), m.end()) for m in _PO_BOX.finditer(text)]
    spans += [(m.start(), m.end()) for m in _CA_POSTCODE.finditer(text)]
    spans += [
        (m.start(), m.end())
        for m in _UK_POSTCODE.finditer(text)
        if m["space"] or m.group().isupper()
    ]
    for pattern in (_AU_POSTCODE, _US_ZIP):
        spans += [
            (m.start("code"), m.end("code"))
            for m in pattern.finditer(text)
            if _postcode_ok(text, m) or pattern is _AU_POSTCODE
        ]
    return [Match("address", text[s:e], s, e) for s, e in _merged(text, spans)]


def _merged(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        post = _POSTCODE_AFTER.match(text, end)
        if post:
            end = post.end()
        if out and (start <= out[-1][1] or _GAP.fullmatch(text, out[-1][1], start)):
            out[-1] = (out[-1][0], max(end, out[-1][1]))
        else:
            out.append((start, end))
    return out


# ----------------------------------------------------------------------------- severity

_SAFETY = re.compile(
    r"\b(fire|flames?|caught fire|smok(?:e|ed|es|ing)|burn(?:s|t|ed|ing)?|explod\w*|"
    r"sparks?|electric(?:al)? shock|shocked|electrocut\w*|injur\w*|hurt|wounded|bleeding|"
    r"hospital|poison\w*|chok(?:e|ed|ing)|allergic reaction|unsafe|dangerous|danger|"
    r"hazard\w*|toxic)\b",
    re.IGNORECASE,
)
_LEGAL = re.compile(
    r"\b(legal|lawyers?|attorneys?|lawsuit|sue|suing|court|solicitor|police|"
    r"consumer protection|trading standards|fraud\w*|scam\w*|stolen|identity theft|"
    r"unauthori[sz]ed(?: (?:charge|payment|transaction)s?)?|chargeback|gdpr|data breach)\b",
    re.IGNORECASE,
)
# urgent, not severe: a high-priority ticket, no immediate handoff
_URGENT = re.compile(
    r"\b(broken|broke|shattered|cracked|"
    r"never (?:arrived|came|showed up|got here|received|delivered)|"
    r"(?:didn'?t|did not|has not|hasn'?t|have not|haven'?t) "
    r"(?:arrive|arrived|come|been delivered))\b",
    re.IGNORECASE,
)
# strongly negative words and phrases, with weights
_NEGATIVE: dict[str, float] = {
    "terrible": 1,
    "horrible": 1,
    "awful": 1,
    "appalling": 1.5,
    "disgusting": 1.5,
    "disgraceful": 1.5,
    "disgrace": 1.5,
    "outrageous": 1.5,
    "outraged": 1.5,
    "furious": 1.5,
    "livid": 1.5,
    "unacceptable": 1,
    "ridiculous": 1,
    "pathetic": 1.5,
    "useless": 1,
    "worst": 1,
    "hate": 1,
    "incompetent": 1.5,
    "joke": 0.5,
    "never again": 1.5,
    "fed up": 1,
    "sick of": 1,
    "angry": 1,
    "rip-off": 1.5,
    "rip off": 1.5,
    "shameful": 1.5,
    "lied": 1,
    "liars": 1.5,
    "nightmare": 1,
    "garbage": 1,
    "rubbish": 1,
    "scandal": 1.5,
}
_INTENSIFIERS = re.compile(
    r"\b(absolutely|completely|totally|utterly|so|very|extremely|beyond|truly)\b",
    re.IGNORECASE,
)
_NEGATIVE_RE = re.compile(
    r"\b(" + "|".join(re.escape(w) for w in sorted(_NEGATIVE, key=len, reverse=True)) + r")\b",
    re.IGNORECASE,
)
#: A negativity score from which a complaint is severe.
SEVERE_NEGATIVITY = 2.0


@dataclass(frozen=True)
class Severity:
    """A severe issue named in a text: ``kind`` is ``"safety"`` or ``"legal"``, ``word``
    the words that name it (lowercased)."""

    kind: str
    word: str


def severe_issue(text: str) -> Severity | None:
    """The first safety issue named in ``text``, else the first legal one, else None."""
    for kind, pattern in (("safety", _SAFETY), ("legal", _LEGAL)):
        m = pattern.search(text or "")
        if m:
            return Severity(kind, m.group(0).lower())
    return None


def negativity(text: str) -> float:
    """How strongly negative ``text`` is (0 for neutral text): weighted words, plus a
    little for intensifiers, SHOUTED words and "!!" when there is a negative word."""
    text = text or ""
    hits = [m.group(1).lower() for m in _NEGATIVE_RE.finditer(text)]
    score = sum(_NEGATIVE.get(h, 0.0) for h in hits)
    if hits:
        score += 0.5 * min(2, len(_INTENSIFIERS.findall(text)))
        shouted = [w for w in re.findall(r"[A-Za-z]{3,}", text) if w.isupper()]
        score += 0.5 * min(2, len(shouted))
        if "!!" in text:
            score += 0.5
    return score


def is_severe(text: str) -> bool:
    """A severe complaint: a safety or legal issue, or strongly negative text."""
    return severe_issue(text) is not None or negativity(text) >= SEVERE_NEGATIVITY


def ticket_priority(text: str) -> str:
    """``"high"`` for a severe complaint (see ``is_severe``), breakage and non-delivery;
    else ``"normal"``."""
    return "high" if is_severe(text) or _URGENT.search(text or "") else "normal"
