"""Money as text: exact prices read from catalog files, and prices written for shoppers.

Reading (``parse_price``): the price is taken from its text with ``Decimal``, never through
a float. Accepted: ``19.99``, ``1299``, ``1,299.00`` (a comma groups thousands in threes),
``$19.99``, ``19.99 EUR``, ``€ 19.99``. With ``decimal_comma=True`` (declared per file in
``clerk.yml``) the comma is the decimal mark and ``.``, spaces and ``'`` group thousands:
``19,99`` and ``1.299,00``. Without it ``19,99`` is rejected rather than guessed (it would
otherwise silently become 1999). Negative amounts, amounts finer than a cent and amounts of
a hundred million or more (the database holds ``Numeric(10, 2)``) are not prices.

Writing (``format_money``): two decimals, the store's currency as its symbol before the
amount where the symbol is unambiguous (``$19.99``, ``€19.99``, ``£19.99``; yuan and yen
both as ``¥19.99``, as Chinese and Japanese shoppers write them), else the ISO code after
it (``19.99 CHF``). No thousands separator, as the catalog passages always wrote;
with ``thousands=True`` a comma groups them (``$2,674.40``), as order and refund replies do.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from decimal import Decimal, InvalidOperation

CENT = Decimal("0.01")
_LIMIT = Decimal(100000000)

#: Symbols written before the amount; other currencies are written as ``19.99 XYZ``.
SYMBOLS = {"USD": "$", "EUR": "€", "GBP": "£", "JPY": "¥", "CNY": "¥", "INR": "₹"}
# A currency symbol or code before or after the amount. Matched at one end each, never
# with ``\s*`` on both sides of an alternation (that backtracked for seconds on a cell
# holding a run of spaces).
_LEADING = re.compile(r"[$€£¥₹]|[A-Za-z]{3}\b")
_TRAILING = re.compile(r"(?:[$€£¥₹]|\b[A-Za-z]{3})\Z")
_POINT = re.compile(r"^(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$")
_COMMA = re.compile(r"^(?:\d{1,3}(?:[.' \u00a0]\d{3})+|\d+)(?:,\d+)?$")


def currency_code(value: object) -> str:
    """An ISO 4217 code in upper case (``eur`` -> ``EUR``); ``ValueError`` otherwise."""
    code = str(value).strip().upper()
    if not re.fullmatch(r"[A-Z]{3}", code):
        raise ValueError(f"{value!r} is not an ISO currency code like USD or EUR")
    return code


def parse_price(text: str, *, decimal_comma: bool = False) -> Decimal:
    """The price ``text`` states, with two places; ``ValueError("'abc' is not a price")``."""
    raw = str(text)
    body = _strip_currency(raw)
    pattern = _COMMA if decimal_comma else _POINT
    if not pattern.fullmatch(body):
        raise ValueError(f"{raw!r} is not a price")
    if decimal_comma:
        body = re.sub(r"[.' \u00a0]", "", body).replace(",", ".")
    else:
        body = body.replace(",", "")
    try:
        price = Decimal(body)
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only digits
        raise ValueError(f"{raw!r} is not a price") from exc
    if price != price.quantize(CENT):
        raise ValueError(f"{raw!r} is not a whole number of cents")
    if price >= _LIMIT:
        raise ValueError(f"{raw!r} is too large a price")
    return price.quantize(CENT)


def _strip_currency(text: str) -> str:
    """``text`` without surrounding spaces and a leading or trailing currency mark."""
    body = text.strip()
    lead = _LEADING.match(body)
    if lead:
        body = body[lead.end() :].lstrip()
    trail = _TRAILING.search(body)
    if trail:
        body = body[: trail.start()].rstrip()
    return body


def format_money(
    amount: Decimal | str | int, currency: str = "USD", *, thousands: bool = False
) -> str:
    """``$19.99`` / ``€19.99`` / ``19.99 CHF``: the amount with two places in ``currency``
    (exact: a float's binary error never shows; pass ``Decimal`` or text)."""
    exact = Decimal(str(amount)).quantize(CENT)
    value = f"{exact:,}" if thousands else f"{exact}"
    symbol = SYMBOLS.get(currency)
    return f"{symbol}{value}" if symbol else f"{value} {currency}"


def money_range(prices: Iterable[Decimal], currency: str = "USD") -> str:
    """``$5.00`` when all prices are equal, else ``from $5.00 to $9.00``; "" for none."""
    values = list(prices)
    if not values:
        return ""
    lo, hi = format_money(min(values), currency), format_money(max(values), currency)
    return lo if lo == hi else f"from {lo} to {hi}"
