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
  is not part of it. The log filter masks every *candidate*, valid or not.
- **Phone number**: found and checked by ``phonenumbers`` (``PhoneNumberMatcher``), national
  numbers read as ``DEFAULT_REGION``; international ones written with ``+``. A number must
  be possible in full (a US number needs its area code; 7 digits are "local only" and are
  not a phone number). Digits written without any separator count only after a cue word
  ("call", "phone", ...): ``"item 9612497925"`` is an item id. The value keeps what the
  shopper wrote, digits only, with the ``+`` when written (``"(312) 555-0199"`` ->
  ``"3125550199"``, ``"+1 415 555 0123"`` -> ``"+14155550123"``); ``phone_e164`` gives the
  form to compare numbers by. The log filter masks bare 10+ digit numbers even without a cue.
- **Zip code**: 5 digits (a ``-1234`` extension is accepted, not kept) that are not a
  price, a part of an id, a decimal, a quantity with a unit ("20000mAh", "10000 minutes").
- **Card number**: 13 to 19 digits, single spaces or hyphens between them. The log filter
  masks every candidate; ``luhn_valid`` tells a real card number from a typo.
- **Street address**: ``parse_address`` reads a US address answer (street, city, state,
  zip); ``find_street_addresses`` finds "12 Main Street"-like spans in free text for the log
  filter (a house number, one to four words, a street type; any case).
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

# Candidates only: email-validator decides. Unicode letters are allowed on both sides.
_EMAIL_CANDIDATE = re.compile(
    r"(?<![\w.%+-])[\w%+-][\w.%+'-]*@(?:[^\W_][\w-]*\.)+[^\W\d_]{2,}(?![\w-])"
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
        if (start > 0 and (text[start - 1].isalnum() or text[start - 1] in "#$-")) or (
            end < len(text) and (text[end].isalnum() or text[end] in "-")
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
    r"(?<![\w#$€£/.,:-])(?P<zip>\d{5})(?:-\d{4})?(?![\w%]|[.,:]\d|-\d)(?!\s?" + _UNITS + ")",
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

_STREET_TYPES = (
    "street|st|road|rd|avenue|ave|drive|dr|lane|ln|boulevard|blvd|court|ct|way|place|pl|"
    "terrace|ter|parkway|pkwy|highway|hwy|circle|cir|square|sq|trail|trl"
)
_STREET = re.compile(
    r"(?<![\w#$.,-])\d{1,6}[A-Za-z]?(?:\s+(?:[A-Za-z][\w'.-]*|\d+(?:st|nd|rd|th)))"
    r"{1,4}?\s+(?:" + _STREET_TYPES + r")\b\.?",
    re.IGNORECASE,
)


def find_street_addresses(text: str) -> list[Match]:
    """ "12 Main Street", "100 5th Ave.", "9 old mill rd" in free text (house number, one to
    four words or ordinals, a street type). Meant for masking: it may also take "3 days in court"."""
    return [Match("address", m.group(), m.start(), m.end()) for m in _STREET.finditer(text or "")]


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
