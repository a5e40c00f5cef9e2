"""A CSV or JSON catalog read through a column mapping declared in ``clerk.yml``
(see ``bot.knowledge.imports.spec``). JSON is a list of flat objects, or an object whose
values are flat objects; its "rows" are numbered from 1 in file order.

Rows sharing a ``product_id`` are variants of one product. Nothing is skipped: every row
is a variant, and a row with a missing id, name or price, a bad price, stock or
availability, or an item id used twice rejects the file.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

from bot.errors import DataError
from bot.knowledge.catalog import CatalogProduct, VariantFact
from bot.knowledge.imports.rows import (
    MAX_NAME,
    ImportedFile,
    Problems,
    clean_id,
    plain_text,
    truthy,
    whole_number,
)
from bot.knowledge.imports.spec import FileSpec

FORMAT = "generic"


def json_records(path: Path, source: str) -> tuple[list[str], Iterator[tuple[int, dict[str, str]]]]:
    """A JSON catalog as numbered records of text, like ``rows.read_csv``'s."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"), parse_float=str, parse_int=str)
    except (OSError, ValueError) as exc:
        raise DataError(f"{source}: cannot read as JSON: {exc}") from exc
    items = list(data.values()) if isinstance(data, dict) else data
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise DataError(f"{source}: expected a list of objects (or an object of objects)")
    header = sorted({str(k) for item in items for k in item})

    def records() -> Iterator[tuple[int, dict[str, str]]]:
        for number, item in enumerate(items, start=1):
            yield number, {str(k): "" if v is None else str(v).strip() for k, v in item.items()}

    return header, records()


def read(
    records: Iterator[tuple[int, dict[str, str]]],
    header: list[str],
    source: str,
    currency: str,
    spec: FileSpec,
) -> ImportedFile:
    """Every row as a variant of its product; ``CatalogFileError`` for bad rows."""
    problems = Problems(source)
    columns = dict(spec.columns)
    if source.endswith(".csv"):
        problems.require_columns(header, columns.values(), "missing column (named in clerk.yml)")
    result = ImportedFile(source, FORMAT)
    names: dict[str, str] = {}
    descriptions: dict[str, str] = {}
    variants: dict[str, list[VariantFact]] = {}
    items: dict[str, int] = {}
    options = {k[len("option.") :]: v for k, v in columns.items() if k.startswith("option.")}

    def cell(record: dict[str, str], name: str) -> str:
        return record.get(columns[name], "") if name in columns else ""

    for number, record in records:
        result.rows += 1
        product_id = clean_id(cell(record, "product_id"))
        if not product_id:
            problems.add(number, columns["product_id"], "missing product id")
            continue
        name = cell(record, "name") or names.get(product_id, "")
        if not name or len(name) > MAX_NAME:
            problems.add(number, columns["name"], f"needs a name of 1-{MAX_NAME} characters")
            continue
        names.setdefault(product_id, name)
        if cell(record, "description"):
            descriptions.setdefault(product_id, plain_text(cell(record, "description")))
        price = problems.price(
            number, columns["price"], cell(record, "price"), decimal_comma=spec.decimal_comma
        )
        available = _available(problems, number, record, columns)
        siblings = variants.setdefault(product_id, [])
        item_id = clean_id(cell(record, "item_id") or f"{product_id}-{len(siblings) + 1}")
        if item_id in items:
            problems.add(
                number,
                columns.get("item_id", columns["product_id"]),
                f"item {item_id!r} is also on row {items[item_id]}",
            )
        items[item_id] = number
        if price is None or available is None:
            continue
        values = {k: record.get(c, "") for k, c in options.items() if record.get(c, "")}
        siblings.append(VariantFact(item_id, values, price, available))
        result.imported += 1
    problems.raise_any()
    result.products = [
        CatalogProduct(pid, names[pid], tuple(vs), currency, descriptions.get(pid, ""), source)
        for pid, vs in variants.items()
    ]
    return result


def _available(
    problems: Problems, number: int, record: dict[str, str], columns: dict[str, str]
) -> bool | None:
    if "available" in columns and record.get(columns["available"], ""):
        flag = truthy(record[columns["available"]])
        if flag is None:
            problems.add(
                number, columns["available"], f"{record[columns['available']]!r} is not yes or no"
            )
        return flag
    if "stock" in columns and record.get(columns["stock"], ""):
        stock = whole_number(record[columns["stock"]])
        if stock is None:
            problems.add(number, columns["stock"], f"{record[columns['stock']]!r} is not a number")
            return None
        return stock > 0
    return True
