"""What every catalog format reader shares: the file's result, its row problems, CSV rows
with spreadsheet row numbers, and the small conversions (ids, stock, HTML, yes/no).

Row numbers are the ones a spreadsheet shows: the header is row 1, the first product row 2
(a quoted multi-line cell does not add rows). A reader collects every problem of a file and
raises one ``CatalogFileError`` carrying them all, so a file is either read whole or not at
all; rows it leaves out on purpose are counted in ``ImportedFile.skipped`` by reason.
"""

from __future__ import annotations

import csv
import hashlib
import html
import re
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from bot.errors import DataError
from bot.knowledge.catalog import CatalogProduct
from bot.knowledge.money import parse_price

#: Product and item ids longer than the database's ``String(40)`` are shortened to 31
#: characters plus ``-`` and 8 hex digits of their SHA-1: stable, unique in practice.
MAX_ID = 40
MAX_NAME = 200
MAX_DESCRIPTION = 600


@dataclass(frozen=True)
class RowProblem:
    source: str  # the file, relative to the knowledge folder
    row: int
    column: str
    message: str

    def __str__(self) -> str:
        column = f", column {self.column!r}" if self.column else ""
        return f"{self.source} row {self.row}{column}: {self.message}"


class CatalogFileError(DataError):
    """A catalog file with bad rows; ``problems`` lists every one (file, row, column)."""

    def __init__(self, problems: list[RowProblem]) -> None:
        more = f" (and {len(problems) - 1} more problems)" if len(problems) > 1 else ""
        super().__init__(f"{problems[0]}{more}")
        self.problems = problems


class Problems:
    """Collects a file's row problems; ``raise_any`` raises them together."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.items: list[RowProblem] = []

    def add(self, row: int, column: str, message: str) -> None:
        self.items.append(RowProblem(self.source, row, column, message))

    def price(
        self, row: int, column: str, text: str, *, decimal_comma: bool = False
    ) -> Decimal | None:
        """The price in ``text``, or ``None`` after recording why it is not one."""
        try:
            return parse_price(text, decimal_comma=decimal_comma)
        except ValueError as exc:
            self.add(row, column, str(exc))
            return None

    def raise_any(self) -> None:
        if self.items:
            raise CatalogFileError(self.items)

    def require_columns(
        self, header: list[str], required: Iterable[str], why: str = "missing column"
    ) -> None:
        """Reject the file (now) when its header lacks a required column."""
        for column in required:
            if column not in header:
                self.add(1, column, why)
        self.raise_any()


@dataclass
class ImportedFile:
    """One catalog file read: its products and what happened to its rows."""

    source: str
    format: str
    products: list[CatalogProduct] = field(default_factory=list)
    rows: int = 0
    imported: int = 0
    skipped: Counter[str] = field(default_factory=Counter)

    def report(self) -> dict[str, object]:
        return {
            "file": self.source,
            "format": self.format,
            "rows": self.rows,
            "imported": self.imported,
            "skipped": sum(self.skipped.values()),
            "skipped_reasons": dict(sorted(self.skipped.items())),
            "products": len(self.products),
            "variants": sum(len(p.variants) for p in self.products),
        }


def read_csv(path: Path, source: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """The header and ``(row number, {column: stripped text})`` for each non-blank row.
    The delimiter is ``;`` when the header has more of them than commas, else ``,``."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{source}: cannot read: {exc}") from exc
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    try:
        rows = list(csv.reader(text.splitlines(keepends=True), delimiter=delimiter))
    except csv.Error as exc:
        raise DataError(f"{source}: not a CSV file: {exc}") from exc
    if not rows:
        raise DataError(f"{source}: empty file")
    header = [h.strip() for h in rows[0]]

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        for number, row in enumerate(rows[1:], start=2):
            if not any(cell.strip() for cell in row):
                continue
            yield (
                number,
                {h: (row[i].strip() if i < len(row) else "") for i, h in enumerate(header)},
            )

    return header, records()


def clean_id(value: str) -> str:
    value = value.strip()
    if len(value) <= MAX_ID:
        return value
    return f"{value[:31]}-{hashlib.sha1(value.encode()).hexdigest()[:8]}"


_TAG = re.compile(r"<[^>]+>")
_BLOCK = re.compile(r"<\s*(?:br|/p|/li|/h\d|/div)\s*/?>", re.IGNORECASE)


def plain_text(markup: str, limit: int = MAX_DESCRIPTION) -> str:
    """HTML (or WooCommerce's ``\\n``-escaped text) as plain text, at most ``limit`` chars
    cut at a word boundary."""
    text = markup.replace("\\n", "\n")
    text = html.unescape(_TAG.sub("", _BLOCK.sub("\n", text)))
    text = "\n".join(" ".join(line.split()) for line in text.splitlines())
    text = re.sub(r"\n{2,}", "\n", text).strip()
    if len(text) > limit:
        text = text[:limit].rsplit(" ", 1)[0] + " …"
    return text


def truthy(value: str) -> bool | None:
    """``1/yes/true/y`` -> True, ``0/no/false/n`` -> False, anything else -> None."""
    text = value.strip().lower()
    if text in ("1", "yes", "true", "y", "instock", "in stock"):
        return True
    if text in ("0", "no", "false", "n", "outofstock", "out of stock"):
        return False
    return None


def whole_number(text: str) -> int | None:
    """A count (``12``, ``1,200``, ``3.0``), or ``None`` when ``text`` is none. Numbers of
    more than 18 digits are none either: ``int(Decimal("1e1000000"))`` alone takes seconds."""
    try:
        value = Decimal(text.replace(",", ""))
    except ArithmeticError:
        return None
    if not value.is_finite() or (value and value.adjusted() > 18):
        return None
    return int(value)
