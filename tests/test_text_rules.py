"""bot.text_rules: one answer per rule, and the NLU, the store actions, the handoff trigger
and the log filter giving the same answer on the same text."""

from __future__ import annotations

import pytest

from bot import privacy, text_rules
from bot.handoff import triggers
from bot.lang.price_range import find_price_range
from bot.nlu import entities
from bot.nlu.entities import EntityExtractor
from bot.store_actions import forms, parsing, tickets
from bot.text_rules import (
    AddressError,
    find_card_numbers,
    find_emails,
    find_order_id,
    find_order_ids,
    find_phones,
    find_street_addresses,
    find_ticket_id,
    find_zips,
    is_email,
    luhn_valid,
    negativity,
    normalise_email,
    normalise_order_id,
    normalise_phone,
    normalise_ticket_id,
    parse_address,
    phone_e164,
    severe_issue,
    ticket_priority,
)


def values(matches: list[text_rules.Match]) -> list[str]:
    return [m.value for m in matches]


# ------------------------------------------------------------------------------ order ids


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("#W2611340", "#W2611340"),
        ("W-2611340", "#W2611340"),  # the store actions' copy said None
        ("#w2611340", "#W2611340"),
        ("w 2611340", "#W2611340"),
        ("# W2611340", "#W2611340"),
        ("  W2611340 ", "#W2611340"),
        ("2611340", "#W2611340"),  # a bare 7-digit value meant as an order id
        ("#2611340", "#W2611340"),
        ("W26113401", None),  # eight digits
        ("W261134", None),
        ("X2611340", None),
        ("order W2611340", None),  # a value, not a text: use find_order_id
        ("", None),
        (None, None),
    ],
)
def test_normalise_order_id(raw: str | None, expected: str | None) -> None:
    assert normalise_order_id(raw) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("where is #W2611340?", ["#W2611340"]),
        ("order#w7678072 and W-7309535", ["#W7678072", "#W7309535"]),
        ("it's w 6304490", ["#W6304490"]),
        ("order #2611340 please", ["#W2611340"]),
        ("call 2611340", []),  # 7 digits without W or #: not an order id
        ("W 12345678", []),
        ("AW2611340", []),
        ("", []),
    ],
)
def test_find_order_ids(text: str, expected: list[str]) -> None:
    assert values(find_order_ids(text)) == expected
    assert find_order_id(text) == (expected[0] if expected else None)


# ----------------------------------------------------------------------------- ticket ids


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("T-004211", "T-004211"),
        ("t-004211", "T-004211"),
        ("t004211", "T-004211"),
        ("T 004211", "T-004211"),
        ("004211", "T-004211"),
        ("T-0042111", None),
        ("T-04211", None),
        ("my ticket T-004211", None),
        (None, None),
    ],
)
def test_normalise_ticket_id(raw: str | None, expected: str | None) -> None:
    assert normalise_ticket_id(raw) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("status of T-000000 please", "T-000000"),
        ("ticket t-004211?", "T-004211"),
        ("what about 004211", None),  # the T is required in free text
        ("at 123456", None),
        ("T-1234567", None),
    ],
)
def test_find_ticket_id(text: str, expected: str | None) -> None:
    assert find_ticket_id(text) == expected


# --------------------------------------------------------------------------------- emails


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Noah.Brown7922@Example.com", "noah.brown7922@example.com"),
        (" me@example.com ", "me@example.com"),
        ("first.last+tag@sub.example.co.uk", "first.last+tag@sub.example.co.uk"),
        ("o'brien@example.ie", "o'brien@example.ie"),
        ("josé@example.es", "josé@example.es"),
        ("a@b", None),
        ("me@example.c", None),
        ("john..doe@example.com", None),
        (".john@example.com", None),
        ("john.@example.com", None),
        ("me@-example.com", None),
        ("me@example..com", None),
        ("me @example.com", None),
        ("two@example.com three@example.com", None),
        ("", None),
        (None, None),
    ],
)
def test_normalise_email(raw: str | None, expected: str | None) -> None:
    assert normalise_email(raw) == expected
    assert is_email(raw) == (expected is not None)


@pytest.mark.parametrize(
    ("text", "expected", "candidates"),
    [
        ("Email: Noah.Brown7922@Example.com.", ["noah.brown7922@example.com"], 1),
        ("(me@example.com)", ["me@example.com"], 1),
        ("a@b.co, c@d.org; e@f.net!", ["a@b.co", "c@d.org", "e@f.net"], 3),
        ("reach me at john..doe@example.com", [], 1),  # invalid, still masked in logs
        ("my handle is @noah", [], 0),
        ("a@b", [], 0),
    ],
)
def test_find_emails(text: str, expected: list[str], candidates: int) -> None:
    assert values(find_emails(text)) == expected
    assert len(find_emails(text, validate=False)) == candidates


# --------------------------------------------------------------------------------- phones


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("call (312) 555-0199", ["3125550199"]),
        ("call me at 555-123-4567", ["5551234567"]),
        ("555.123.4567", ["5551234567"]),
        ("+1 415 555 0123", ["+14155550123"]),
        ("+1-415-555-0123", ["+14155550123"]),
        ("my number is +44 20 7946 0958", ["+442079460958"]),
        ("ruf an: +49 30 901820", ["+4930901820"]),
        ("appelez le +33 1 42 68 53 00", ["+33142685300"]),
        ("+91 98765 43210", ["+919876543210"]),
        ("phone 5551234567", ["5551234567"]),  # bare digits after a cue word
        ("item 9612497925", []),  # bare digits without a cue: an item id
        ("call 555-1234", []),  # local only: no area code
        ("tracking 357962501027", []),
        ("order #W2611340", []),
        ("it costs $5551234567", []),
        ("zip 62704", []),
    ],
)
def test_find_phones(text: str, expected: list[str]) -> None:
    assert values(find_phones(text)) == expected


def test_bare_numbers_count_without_a_cue_only_when_asked() -> None:
    assert values(find_phones("item 9612497925", bare_needs_cue=False)) == ["9612497925"]
    assert values(find_phones("call 2611340", bare_needs_cue=False)) == []


@pytest.mark.parametrize(
    ("raw", "value", "e164"),
    [
        ("555-123-4567", "5551234567", "+15551234567"),
        ("(312) 555-0199", "3125550199", "+13125550199"),
        ("+44 20 7946 0958", "+442079460958", "+442079460958"),
        ("+49 (0)30 12345678", "+4903012345678", "+493012345678"),
        ("555-1234", None, None),
        ("call 555-123-4567", None, None),  # a value, not a text
        ("12", None, None),
        ("", None, None),
    ],
)
def test_normalise_phone_and_e164(raw: str, value: str | None, e164: str | None) -> None:
    assert normalise_phone(raw) == value
    assert phone_e164(raw) == e164


# ------------------------------------------------------------------------------ zip codes


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("John Smith 80279", ["80279"]),
        ("12 Main St, Springfield, IL 62704-1234.", ["62704"]),
        ("#W2611340", []),
        ("it costs $12345", []),
        ("a 20000mAh battery", []),
        ("I waited 10000 minutes", []),
        ("12345.67", []),
        ("tracking 357962501027", []),
    ],
)
def test_find_zips(text: str, expected: list[str]) -> None:
    assert values(find_zips(text)) == expected


# ---------------------------------------------------------------------------------- cards


@pytest.mark.parametrize(
    ("text", "expected", "luhn"),
    [
        ("card 4111 1111 1111 1111", ["4111111111111111"], True),
        ("4111-1111-1111-1111", ["4111111111111111"], True),
        ("4111111111111112", ["4111111111111112"], False),
        ("378282246310005", ["378282246310005"], True),
        ("tracking 357962501027", [], False),  # 12 digits
    ],
)
def test_card_numbers(text: str, expected: list[str], luhn: bool) -> None:
    found = values(find_card_numbers(text))
    assert found == expected
    assert all(luhn_valid(v) == luhn for v in found)


# ------------------------------------------------------------------------------ addresses


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("I live at 12 Main Street, Springfield", ["12 Main Street"]),
        ("100 5th Ave. New York", ["100 5th Ave."]),
        ("9 old mill rd", ["9 old mill rd"]),
        ("card 4111 1111 1111 1111 at 12 Main St", ["12 Main St"]),
        ("I bought 2 shirts", []),
    ],
)
def test_find_street_addresses(text: str, expected: list[str]) -> None:
    assert values(find_street_addresses(text)) == expected


def test_parse_address_and_its_errors() -> None:
    a = parse_address("my new address is 9 Oak Ave, Denver, Colorado 80202-1234, USA")
    assert (a["address1"], a["city"], a["state"], a["zip"]) == (
        "9 Oak Ave",
        "Denver",
        "CO",
        "80202",
    )
    with pytest.raises(AddressError) as err:
        parse_address("12 Main Street, Springfield, 62704")
    assert err.value.code == "state"


# ------------------------------------------------------------------------------- severity


@pytest.mark.parametrize(
    ("text", "kind", "priority"),
    [
        ("the police are involved", "legal", "high"),  # parsing's copy said "normal"
        ("my lawyer will be in touch", "legal", "high"),
        ("I will sue you", "legal", "high"),
        ("there was an unauthorized charge on my card", "legal", "high"),
        ("my son was injured by the blender", "safety", "high"),
        ("The kettle caught fire!", "safety", "high"),
        ("the charger sparked and gave me an electric shock", "safety", "high"),
        ("the armrest is dangerous", "safety", "high"),
        ("The office chair arrived broken", None, "high"),  # urgent, not severe
        ("My parcel never arrived", None, "high"),
        ("my package arrived a day late", None, "normal"),
        ("the box was a bit dented, not a big deal", None, "normal"),
        ("The colour is a bit off", None, "normal"),
    ],
)
def test_severity_and_ticket_priority(text: str, kind: str | None, priority: str) -> None:
    issue = severe_issue(text)
    assert (issue.kind if issue else None) == kind
    assert ticket_priority(text) == priority


def test_strongly_negative_text_is_severe_and_high_priority() -> None:
    text = "This is absolutely TERRIBLE and UNACCEPTABLE!!"
    assert severe_issue(text) is None and negativity(text) >= text_rules.SEVERE_NEGATIVITY
    assert ticket_priority(text) == "high"
    assert negativity("thanks, all good") == 0


# ------------------------------------------------------------------ one copy of each rule


def test_every_component_uses_the_one_copy() -> None:
    assert entities.normalise_order_id is text_rules.normalise_order_id
    assert entities.normalise_ticket_id is text_rules.normalise_ticket_id
    assert forms.normalise_order_id is text_rules.normalise_order_id
    assert tickets.normalise_order_id is text_rules.normalise_order_id
    assert tickets.ticket_priority is text_rules.ticket_priority
    assert parsing.ticket_priority is text_rules.ticket_priority
    assert parsing.parse_address is text_rules.parse_address
    assert triggers.negativity is text_rules.negativity
    for gone in ("normalise_order_id", "find_order_id", "find_emails", "find_phone", "EMAIL"):
        assert not hasattr(parsing, gone), gone


# ------------------------------------------------------------------------- consistency

TEXTS = [
    "cancel W-2611340 and #w7678072, mail Noah.Brown7922@Example.com.",
    "order w 6304490: call (312) 555-0199 or +1 415 555 0123, zip 62704",
    "I'm Yusuf Rossi, zip 19122, email yusuf.rossi7301@example.com",
    "my number is +44 20 7946 0958 and my email is o'brien@example.ie",
    "phone 5551234567 about order #2611340, ticket t-004211",
    "ship to 12 Main Street, Springfield, IL 62704-1234 please",
    "reach me: josé@example.es or +33 1 42 68 53 00",
]


@pytest.fixture(scope="module")
def extractor() -> EntityExtractor:
    return EntityExtractor()


@pytest.mark.parametrize("text", TEXTS)
def test_order_ids_the_nlu_extracts_are_the_ids_the_actions_use(
    extractor: EntityExtractor, text: str
) -> None:
    found = [e for e in extractor.extract(text) if e["entity"] == "order_id"]
    for ent in found:
        # the form's validate_order_id stores normalise_order_id(value)
        assert normalise_order_id(ent["value"]) == ent["value"]
        assert normalise_order_id(text[ent["start"] : ent["end"]]) == ent["value"]
    # the form's fallback when the NLU tagged nothing reads the same id
    assert find_order_id(text) == (found[0]["value"] if found else None)


@pytest.mark.parametrize("text", TEXTS)
def test_emails_and_phones_the_nlu_finds_are_valid_for_the_actions_and_masked_in_logs(
    extractor: EntityExtractor, text: str
) -> None:
    masked = privacy.redact(text)
    found = extractor.extract(text)
    for ent in found:
        surface = text[ent["start"] : ent["end"]]
        if ent["entity"] == "email":
            assert is_email(ent["value"]) and normalise_email(surface) == ent["value"]
            assert surface not in masked
        if ent["entity"] == "phone":
            # the complaint form's validate_contact accepts it, as typed and as the entity
            assert normalise_phone(surface) == ent["value"] == normalise_phone(ent["value"])
            assert surface not in masked
    kinds = {e["entity"] for e in found}
    assert masked.count("<email>") >= sum(e["entity"] == "email" for e in found)
    assert masked.count("<phone>") >= sum(e["entity"] == "phone" for e in found)
    assert kinds  # every sample text has something to find


@pytest.mark.parametrize("text", TEXTS)
def test_zip_codes_the_nlu_finds_are_the_ones_credentials_are_checked_by(
    extractor: EntityExtractor, text: str
) -> None:
    nlu = [e["value"] for e in extractor.extract(text) if e["entity"] == "zipcode"]
    assert nlu == parsing.find_zip_codes(text)


@pytest.mark.parametrize(
    "text",
    [
        "215 River Road, Suite 991, New York, NY 10083",
        "my new address is 9 Oak Ave, Denver, Colorado 80202-1234, USA",
        "1 Elm St., Unit 2, Floor 3, Austin, TX 73301",
        "12 Main Street, Apt 4, Springfield, IL 62704",
    ],
)
def test_addresses_the_actions_accept_are_masked_in_logs(text: str) -> None:
    street = parse_address(text)["address1"]
    assert street not in privacy.redact(text) and "<address>" in privacy.redact(text)


@pytest.mark.parametrize(
    "text",
    [
        "the police are involved",
        "my lawyer will hear about this",
        "my daughter was injured",
        "it caught fire",
        "the product is toxic",
        "this is a scam",
        "absolutely TERRIBLE, UNACCEPTABLE service!!",
        "The office chair arrived broken",
        "the box was a bit dented",
        "I want a refund",
    ],
)
def test_a_complaint_handed_off_as_severe_gets_a_high_priority_ticket(text: str) -> None:
    if triggers.assess_complaint(text) is not None:
        assert tickets.ticket_priority(text) == "high"
    assert (triggers.assess_complaint(text) is not None) == text_rules.is_severe(text)


def test_log_filter_masks_card_numbers_phones_and_emails_but_not_ids() -> None:
    text = (
        "order #W2611340, ticket T-004211: card 4111 1111 1111 1111, "
        "john..doe@example.com, +44 20 7946 0958, item 9612497925"
    )
    assert privacy.redact(text) == (
        "order #W2611340, ticket T-004211: card <card>, <email>, <phone>, item <phone>"
    )


# ------------------------------------------------------------------------- price range


@pytest.mark.parametrize(
    ("text", "money_only", "with_bare"),
    [
        ("under $100", (None, 100.0), (None, 100.0)),
        ("between $50 and $100", (50.0, 100.0), (50.0, 100.0)),
        ("$20-$50", (20.0, 50.0), (20.0, 50.0)),
        ("over 20 euros", (20.0, None), (20.0, None)),
        ("between 20 and 50", (None, None), (20.0, 50.0)),
        ("black ones under 100 please", (None, None), (None, 100.0)),
        ("under 100.", (None, None), (None, 100.0)),
        ("can I return it within 30 days?", (None, None), (None, None)),
        ("under 2 kg", (None, None), (None, None)),
        ("between 8 and 10 inches", (None, None), (None, None)),
        ("size 8-10", (None, None), (None, None)),
        # thousands: separators and a "k"
        ("under $1,500", (None, 1500.0), (None, 1500.0)),
        ("between $1,000 and $2,000", (1000.0, 2000.0), (1000.0, 2000.0)),
        ("under $2k", (None, 2000.0), (None, 2000.0)),
        ("over 1.5k dollars", (1500.0, None), (1500.0, None)),
        ("between 1,000 and 2,500", (None, None), (1000.0, 2500.0)),
        ("under 2k", (None, None), (None, 2000.0)),
        ("under 2kg", (None, None), (None, None)),
    ],
)
def test_price_ranges_read_money_and_with_bare_amounts_plain_budgets(
    text: str,
    money_only: tuple[float | None, float | None],
    with_bare: tuple[float | None, float | None],
) -> None:
    got = find_price_range(text)
    assert (got.low, got.high) == money_only
    got = find_price_range(text, bare_amounts=True)
    assert (got.low, got.high) == with_bare
