"""Personal data never reaches a log handler in clear: messages, tracebacks, stacks and
warnings, on loggers that propagate to the root logger and on those that do not (uvicorn's).
Street addresses are checked on a few hundred generated ones, in the formats of nine
countries, and ordinary shop text must come through unchanged."""

from __future__ import annotations

import io
import logging
import random
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
import sqlalchemy as sa
from uvicorn.logging import AccessFormatter

from bot import privacy

# ------------------------------------------------------------------ generated addresses


@dataclass(frozen=True)
class Address:
    text: str  # as the shopper writes it
    private: tuple[str, ...]  # the parts of it that must be masked
    style: str


US_NAMES = [
    "Maple", "Oak", "Pine Hill", "Cedar", "Elm", "Washington", "Lincoln", "Sunset", "Highland",
    "Lakeview", "Martin Luther King Jr", "5th", "42nd", "Old Mill", "Peachtree", "Mission",
    "Wilshire", "Cherry Blossom", "Ocean", "N Main", "E 7th",
]  # fmt: skip
US_TYPES = [
    "Street", "St", "St.", "Avenue", "Ave", "Ave.", "Boulevard", "Blvd", "Drive", "Dr", "Lane",
    "Ln", "Road", "Rd", "Court", "Ct", "Place", "Pl", "Terrace", "Way", "Parkway", "Pkwy",
    "Circle", "Trail", "Highway", "Loop", "Pike", "Crossing", "Plaza", "Alley",
]  # fmt: skip
US_CITIES = [("Springfield", "IL"), ("Austin", "TX"), ("Denver", "CO"), ("Seattle", "WA"),
             ("Portland", "OR"), ("Boston", "MA"), ("Miami", "FL"), ("Columbus", "OH")]  # fmt: skip
UK_NAMES = [
    "Baker", "Abbey", "Victoria", "Queen's", "Church", "Mill", "High", "Station", "Rose",
    "Willow", "St Mary's", "Kings", "Hazel", "Acacia", "Marine", "Castle", "Orchard", "Beech",
    "Lower Clapton", "Thistle", "Jubilee", "Hope",
]  # fmt: skip
UK_TYPES = [
    "Street", "Road", "Terrace", "Close", "Crescent", "Row", "Parade", "Walk", "Wynd",
    "Gardens", "Mews", "Grove", "Lane", "Avenue", "Place", "Square", "Hill", "Drive", "Way",
    "Rise", "View", "Green", "Court", "Gate", "Park", "Chase", "Croft", "Vale", "Esplanade",
]  # fmt: skip
UK_NO_TYPE = ["Kingsway", "Rosebank", "Highgate", "Westgate", "Moorside", "Larkhall",
              "The Paddock", "Fairholme", "Holly Bank"]  # fmt: skip
UK_POSTCODES = ["SW1A 1AA", "LS1 4AP", "EH1 1YZ", "M1 1AE", "B33 8TH", "CR2 6XH", "DN55 1PT",
                "W1A 0AX", "EC1A 1BB", "G2 3BZ"]  # fmt: skip
UK_CITIES = ["London", "Leeds", "Edinburgh", "Manchester", "Birmingham", "Glasgow", "Bath"]
CA_POSTCODES = ["K1A 0B1", "M5V 3L9", "H3B 1K9", "V6B 4Y8", "T2P 2M5", "K2P 1L4"]
CA_PLACES = [("Ottawa", "ON"), ("Toronto", "ON"), ("Montréal", "QC"), ("Vancouver", "BC"),
             ("Calgary", "AB")]  # fmt: skip
AU_STREETS = ["George St", "Collins Street", "Wallaby Way", "Queen Street", "Flinders Lane",
              "King William Rd", "Hay Street", "Elizabeth Parade", "Bourke St"]  # fmt: skip
AU_PLACES = [("Sydney", "NSW", "2000"), ("Melbourne", "VIC", "3000"),
             ("Brisbane", "QLD", "4000"), ("Adelaide", "SA", "5000"), ("Perth", "WA", "6000")]  # fmt: skip
DE_STREETS = [
    "Hauptstraße", "Bahnhofstr.", "Goethestraße", "Lindenweg", "Marienplatz", "Schillerallee",
    "Kurfürstendamm", "Große Hamburger Straße", "Am Markt", "Unter den Linden", "Rosengasse",
    "Mainufer", "Berliner Straße", "Kirchweg", "Schlossstrasse", "Im Winkel",
]  # fmt: skip
DE_CITIES = [("10115", "Berlin"), ("80331", "München"), ("20095", "Hamburg"),
             ("50667", "Köln"), ("60311", "Frankfurt am Main")]  # fmt: skip
FR_STREETS = [
    "rue de la Paix", "avenue des Champs-Élysées", "rue Victor Hugo", "place de la Concorde",
    "boulevard Saint-Michel", "impasse des Lilas", "quai de la Tournelle", "allée des Tilleuls",
    "rue du Faubourg Saint-Honoré", "chemin des Vignes", "cours Mirabeau", "rue d'Alsace",
]  # fmt: skip
FR_CITIES = [("75002", "Paris"), ("69001", "Lyon"), ("13001", "Marseille"),
             ("31000", "Toulouse")]  # fmt: skip
ES_STREETS = ["Calle Mayor", "Calle de Alcalá", "Avenida de la Constitución", "Paseo de Gracia",
              "Plaza Mayor", "Carrer de Mallorca", "Calle Gran Vía", "Ronda de Segovia",
              "Avenida Diagonal"]  # fmt: skip
ES_CITIES = [("28013", "Madrid"), ("08008", "Barcelona"), ("41001", "Sevilla")]
IT_STREETS = ["Via Roma", "Via Giuseppe Garibaldi", "Piazza San Marco", "Corso Vittorio Emanuele",
              "Viale dei Mille", "Via del Corso", "Piazza Navona", "Via della Spiga"]  # fmt: skip
IT_CITIES = [("00184", "Roma"), ("20121", "Milano"), ("30124", "Venezia"), ("50123", "Firenze")]
NL_STREETS = ["Keizersgracht", "Kalverstraat", "Damstraat", "Prinsengracht", "Herengracht",
              "Stationsplein", "Laan van Meerdervoort", "Oudezijds Achterburgwal", "Coolsingel",
              "Vondelstraat"]  # fmt: skip
NL_CITIES = [("1015 CJ", "Amsterdam"), ("2514 BA", "Den Haag"), ("3011 AD", "Rotterdam")]
UNITS = ["Apt 4B", "Apt. 12", "Suite 200", "Unit 7", "Flat 3", "Apartment 5C", "Ste 110",
         "Unit C2", "Apt #9"]  # fmt: skip

# Every sentence names the address after a cue ("to", "at", "is", ":", ","), as shoppers
# do: an address with no street type counts only there (see text_rules' docstring).
SENTENCES = [
    "Please ship it to {a}.",
    "My address is {a}",
    "hi, can you change the delivery address to {a} thanks",
    "I moved! new address: {a}",
    "{a}",
    "The parcel should go to {a}, not my old place",
    "I live at {a} and the courier never came",
    "Deliver to Jane Doe, {a}, please",
    "is it possible to send order #W1234567 to {a}?",
    "Billing address {a} - shipping is the same",
    "wrong address on order #W2611340, it should be {a}",
    "can the 2 items go to {a} instead? thx",
]


def _number(rng: random.Random, top: int = 999) -> str:
    return str(rng.randint(1, top))


def _us(rng: random.Random) -> Address:
    street = f"{_number(rng, 9999)} {rng.choice(US_NAMES)} {rng.choice(US_TYPES)}"
    if rng.random() < 0.2:
        street += rng.choice([" NW", " SE", " N", " E"])
    city, state = rng.choice(US_CITIES)
    zip_code = f"{rng.randint(10000, 99999)}" + (f"-{rng.randint(1000, 9999)}" * rng.randint(0, 1))
    private = [street, zip_code]
    text = street
    if rng.random() < 0.35:
        unit = rng.choice(UNITS)
        text += f", {unit}" if rng.random() < 0.7 else f" {unit}"
        private.append(unit)
    text += f", {city}, {state} {zip_code}" if rng.random() < 0.8 else ""
    if zip_code not in text:
        private.remove(zip_code)
    return Address(text, tuple(private), "US")


def _uk(rng: random.Random, street_type: str | None = None) -> Address:
    number = _number(rng, 250) + (rng.choice("ABC") if rng.random() < 0.15 else "")
    if street_type:
        street = f"{number} {rng.choice(UK_NAMES)} {street_type}"
    elif rng.random() < 0.2:
        street = f"{number} {rng.choice(UK_NO_TYPE)}"
    elif rng.random() < 0.15:
        street = f"{number} The {rng.choice(['Crescent', 'Green', 'Parade', 'Close', 'Mews'])}"
    else:
        street = f"{number} {rng.choice(UK_NAMES)} {rng.choice(UK_TYPES)}"
    postcode = rng.choice(UK_POSTCODES)
    private = [street, postcode]
    text = street
    if rng.random() < 0.3:
        unit = rng.choice(["Flat 3", "Flat 12B", "Apartment 4", "Unit 2"])
        text = f"{unit}, {street}"
        private.append(unit)
    text += f", {rng.choice(UK_CITIES)} {postcode}"
    return Address(text, tuple(private), "UK")


def _ca(rng: random.Random) -> Address:
    city, province = rng.choice(CA_PLACES)
    postcode = rng.choice(CA_POSTCODES)
    if province == "QC":
        name = rng.choice(["Sainte-Catherine Ouest", "Sherbrooke Est", "Saint-Denis"])
        street = f"{_number(rng, 3000)} rue {name}"
    else:
        name = rng.choice(["Maple", "Bay", "Yonge", "Bank", "Elgin", "Wellington"])
        street_type = rng.choice(["Street", "St", "Avenue", "Crescent", "Drive", "Terrace"])
        street = f"{_number(rng, 3000)} {name} {street_type}"
    private = [street, postcode]
    text = f"{street}, {city} {province} {postcode}"
    if rng.random() < 0.3:
        text = f"Unit {_number(rng, 40)}, {text}"
        private.append(text.split(",")[0])
    return Address(text, tuple(private), "CA")


def _au(rng: random.Random) -> Address:
    city, state, postcode = rng.choice(AU_PLACES)
    street = f"{_number(rng, 400)} {rng.choice(AU_STREETS)}"
    if rng.random() < 0.4:
        street = f"{_number(rng, 30)}/{street}"
        text = f"Unit {street}, {city} {state} {postcode}"
    else:
        text = f"{street}, {city} {state} {postcode}"
    return Address(text, (street, postcode), "AU")


def _number_after(
    rng: random.Random, streets: list[str], cities: list[tuple[str, str]], style: str
) -> Address:
    name = rng.choice(streets)
    number = _number(rng, 300) + (rng.choice(["a", "b", "-2", "/1"]) if rng.random() < 0.2 else "")
    street = f"{name}, {number}" if style == "ES" and rng.random() < 0.4 else f"{name} {number}"
    postcode, city = rng.choice(cities)
    return Address(f"{street}, {postcode} {city}", (street, postcode), style)


def _fr(rng: random.Random) -> Address:
    number = _number(rng, 120) + (" bis" if rng.random() < 0.1 else "")
    street = f"{number} {rng.choice(FR_STREETS)}"
    postcode, city = rng.choice(FR_CITIES)
    return Address(f"{street}, {postcode} {city}", (street, postcode), "FR")


def _lowercased(address: Address) -> Address:
    return Address(
        address.text.lower(), tuple(p.lower() for p in address.private), address.style + "-lc"
    )


def generate_addresses(count: int, seed: int = 14) -> list[Address]:
    """``count`` addresses in the styles of US, UK, CA, AU, DE, FR, ES, IT and NL, some
    typed all in lowercase; the first ones are UK addresses with every street type."""
    rng = random.Random(seed)
    out = [_uk(rng, street_type) for street_type in UK_TYPES]
    makers = [
        _us, _us, _uk, _uk, _ca, _au, _fr,
        lambda r: _number_after(r, DE_STREETS, DE_CITIES, "DE"),
        lambda r: _number_after(r, ES_STREETS, ES_CITIES, "ES"),
        lambda r: _number_after(r, IT_STREETS, IT_CITIES, "IT"),
        lambda r: _number_after(r, NL_STREETS, NL_CITIES, "NL"),
    ]  # fmt: skip
    while len(out) < count:
        address = makers[len(out) % len(makers)](rng)
        # Lowercase typing: an address keeps what marks it as one (a street type, a
        # German or Dutch street word) in any case; Titlecase is all a street with no
        # type has, and "Am Markt"/"Unter den Linden" are read in their own case.
        lowercase_ok = not any(
            p.split()[0][0].isdigit()
            and not any(t.lower() in p.lower().split() for t in [*US_TYPES, *UK_TYPES, "rue"])
            for p in address.private[:1]
        ) and not address.private[0].startswith(("Am ", "Unter ", "Im "))
        if lowercase_ok and rng.random() < 0.2:
            address = _lowercased(address)
        out.append(address)
    return out


ADDRESSES = generate_addresses(400)


def _covered(text: str, part: str) -> bool:
    """Every letter and digit of ``part`` (as it occurs in ``text``) is inside a masked span."""
    start = text.index(part)
    spans = privacy.personal_spans(text)
    return all(
        any(s <= i < e for s, e, _ in spans)
        for i in range(start, start + len(part))
        if text[i].isalnum()
    )


def test_the_generated_addresses_are_varied() -> None:
    styles = {a.style.removesuffix("-lc") for a in ADDRESSES}
    assert styles == {"US", "UK", "CA", "AU", "DE", "FR", "ES", "IT", "NL"}
    assert sum(a.style.endswith("-lc") for a in ADDRESSES) >= 30
    words = {w.strip(",.").lower() for a in ADDRESSES for w in a.text.split()}
    street_types = {"terrace", "close", "crescent", "row", "parade", "walk", "wynd", "gardens"}
    assert street_types <= words
    assert sum(a.private[0].split()[-1] in UK_NO_TYPE for a in ADDRESSES) >= 5


@pytest.mark.parametrize("index", range(len(ADDRESSES)))
def test_every_generated_address_is_masked_in_a_shopper_sentence(index: int) -> None:
    address = ADDRESSES[index]
    sentence = SENTENCES[index % len(SENTENCES)].format(a=address.text)
    masked = privacy.redact(sentence)
    missed = [part for part in address.private if not _covered(sentence, part)]
    assert not missed, f"{address.style}: {missed} left in {masked!r}"


@pytest.mark.parametrize(
    ("text", "kept"),
    [
        ("I live at 42 Wallaby Way, Sydney", "I live at <address>, Sydney"),
        ("Flat 3, 12 Baker Street, London", "<address>, London"),
        ("send it to 221B Baker St please", "send it to <address> please"),
        ("my flat is Apt 4B", "my flat is <address>"),
        ("Hauptstraße 5, 10115 Berlin", "<address>"),
        ("Rue de Rivoli 10, Paris", "<address>, Paris"),
        ("ship to Calle Mayor 12 por favor", "ship to <address> por favor"),
        ("Via Roma 1", "<address>"),
        ("15 rose terrace, bath", "<address>, bath"),
        ("PO Box 123, Springfield", "<address>, Springfield"),
        ("London SW1A 1AA", "London <address>"),
        ("Ottawa ON K1A 0B1", "Ottawa ON <address>"),
        ("Springfield, IL 62704-1234", "Springfield, IL <address>"),
    ],
)
def test_address_masks(text: str, kept: str) -> None:
    assert privacy.redact(text) == kept


SHOP_TEXT = [
    "where is my order #W1234567",
    "order #W2611340 and W-7309535 were both late",
    "ticket T-004211 is still open",
    "it was $49.99, now $39.99 (save 20%)",
    "I ordered 2 items and got 1",
    "3 days ago I asked for a refund",
    "delivery takes 5 to 7 business days",
    "delivery takes 3-5 Business Days",
    "the iPhone 15 Pro is out of stock",
    "is the 10x Digital Camera waterproof?",
    "I need Size 10 Running Shoes in black",
    "I need size 10 Running Shoes in black",
    "a 55 Inch TV and 2 HDMI cables",
    "we are open 9:00 to 18:00, Monday to Friday",
    "open from 9 AM to 5 PM Eastern",
    "support is available 24/7",
    "the Galaxy S24 Ultra with 256 GB",
    "Pixel 8 Pro 128GB, MacBook Air M2 8GB",
    "Windows 11 Home edition",
    "buy 2 get 1 free",
    "rated 4.5 stars from 1,200 reviews",
    "it arrived on 12 March, 2 weeks late",
    "returns within 30 days of delivery",
    "2 items on the way, 1 delivered",
    "I have 3 questions about order #W7654321",
    "a 12 place setting dishwasher",
    "pack of 12 Blue Pens",
    "the 3D Printer Filament is 1.75 mm",
    "sent via UPS 2 days ago",
    "tracking shows 2 attempts at 10:30",
    "escalated to level 2 support",
    "the Nike Air Max 90 in size 9",
    "Top 10 Gifts for Dad",
    "loaded 50 products, 591 variants in 1.2 s",
    "4K TV, 65 inch, 120 Hz",
    "my 2 Year Warranty covers it",
    "refund of $120.00 issued on 2024-05-01",
    "the box was 30 x 20 x 10 cm",
    "price drops to €19,99 next week",
    "Order 2 More and get free shipping",
]


@pytest.mark.parametrize("text", SHOP_TEXT)
def test_ordinary_shop_text_is_logged_unchanged(text: str) -> None:
    assert privacy.redact(text) == text


# ---------------------------------------------------------------------------- logging

SECRETS = ("jane.doe@example.com", "Baker Street", "4111", "7946")
MESSAGE = (
    "could not save jane.doe@example.com, 12 Baker Street, London, "
    "card 4111 1111 1111 1111, phone +44 20 7946 0958"
)


@pytest.fixture
def installed() -> Iterator[None]:
    """``privacy.install()`` for one test; the logging set-up as it was afterwards."""
    factory = logging.getLogRecordFactory()
    captured = getattr(warnings.showwarning, "__module__", "") == "logging"
    if not captured:
        # an earlier test's install() whose capture pytest's own warning catcher undid:
        # forget it, or captureWarnings(True) would do nothing
        logging.captureWarnings(False)
    privacy.install()
    try:
        yield
    finally:
        logging.setLogRecordFactory(factory)
        if not captured:
            logging.captureWarnings(False)


@pytest.fixture
def output(installed: None) -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """A logger that does not propagate (as uvicorn's), with a handler and formatter of its
    own added after ``install()``."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    log = logging.getLogger("clerk.test.privacy")
    log.addHandler(handler)
    log.propagate, log.level = False, logging.DEBUG
    try:
        yield log, stream
    finally:
        log.removeHandler(handler)
        log.propagate, log.level = True, logging.NOTSET


def _assert_masked(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text, text


def test_a_logged_exception_and_its_cause_are_masked(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = output
    try:
        try:
            raise KeyError("jane.doe@example.com")
        except KeyError as cause:
            raise ValueError(MESSAGE) from cause
    except ValueError:
        log.exception("saving the address for %s failed", "jane.doe@example.com")
    text = stream.getvalue()
    _assert_masked(text)
    assert "saving the address for <email> failed" in text
    assert "Traceback (most recent call last)" in text and "ValueError: could not save" in text
    assert "KeyError: '<email>'" in text and "<card>" in text and "<phone>" in text


def test_a_formatter_that_formats_exc_info_itself_sees_only_the_masked_text(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    class ExceptionFirst(logging.Formatter):
        def format(self, record: logging.LogRecord) -> str:
            assert record.exc_info
            return self.formatException(record.exc_info) + " | " + record.getMessage()

    log, stream = output
    log.handlers[0].setFormatter(ExceptionFirst())
    try:
        raise RuntimeError(MESSAGE)
    except RuntimeError:
        log.error("failed", exc_info=True)  # noqa: G201 - exc_info as handlers see it
    text = stream.getvalue()
    _assert_masked(text)
    assert "RuntimeError: could not save <email>" in text


def test_a_sqlalchemy_error_is_masked_as_message_argument_and_as_traceback(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = output
    engine = sa.create_engine("sqlite://")
    with engine.connect() as conn:
        try:
            conn.execute(
                sa.text("SELECT * FROM users WHERE email = :id_1"),
                {"id_1": "jane.doe@example.com"},
            )
        except sa.exc.OperationalError as exc:
            assert "[parameters: ('jane.doe@example.com',)]" in str(exc)
            log.warning("lookup failed: %s", exc)
            log.exception("lookup failed")
    log.error("[parameters: {'id_1': 'jane.doe@example.com'}]")
    text = stream.getvalue()
    _assert_masked(text)
    assert text.count("<email>") == 3


def test_warnings_and_stacks_are_masked(output: tuple[logging.Logger, io.StringIO]) -> None:
    log, stream = output
    py_warnings = logging.getLogger("py.warnings")
    py_warnings.addHandler(log.handlers[0])
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn(f"odd row for jane.doe@example.com: {MESSAGE}", UserWarning, stacklevel=1)
        log.info("looked up jane.doe@example.com", stack_info=True)
    finally:
        py_warnings.removeHandler(log.handlers[0])
    text = stream.getvalue()
    _assert_masked(text)
    assert "UserWarning: odd row for <email>" in text and "Stack (most recent call last)" in text


def test_uvicorn_access_log_keeps_its_arguments_and_masks_them(installed: None) -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(client_addr)s - "%(request_line)s" %(status_code)s'))
    access = logging.getLogger("uvicorn.access")
    saved = access.handlers, access.propagate, access.level
    access.handlers, access.propagate, access.level = [handler], False, logging.INFO
    try:
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "GET",
            "/orders?email=jane.doe@example.com",
            "1.1",
            200,
        )
        access.info('%s - "%s %s HTTP/%s" %d', "127.0.0.1:5000", "GET", "/health", "1.1", 200)
    finally:
        access.handlers, access.propagate, access.level = saved
    assert stream.getvalue().splitlines() == [
        '127.0.0.1:5000 - "GET /orders?email=<email> HTTP/1.1" 200 OK',
        '127.0.0.1:5000 - "GET /health HTTP/1.1" 200 OK',
    ]


def test_a_record_that_cannot_be_formatted_is_still_masked(
    output: tuple[logging.Logger, io.StringIO],
) -> None:
    log, stream = output
    log.info("%d orders for %s", "jane.doe@example.com")  # noqa: PLE1206 - the point
    assert "jane.doe@example.com" not in stream.getvalue() and "<email>" in stream.getvalue()


def test_install_once_and_the_filter_for_records_made_elsewhere(installed: None) -> None:
    factory = logging.getLogRecordFactory()
    privacy.install()
    assert logging.getLogRecordFactory() is factory
    record = logging.makeLogRecord({"msg": "hello %s", "args": ("jane.doe@example.com",)})
    assert privacy.RedactingFilter().filter(record) is True
    assert record.getMessage() == "hello <email>"


def test_redact_stays_linear_on_long_text() -> None:
    # no timing here; the rules are built without nested unbounded repetition, so a long
    # line of near-misses is read in one pass (checked by hand: 10,000 chars in ~ms)
    text = ("12 Baker " * 1200)[:10_000]
    assert privacy.redact(text).count("<address>") >= 1
