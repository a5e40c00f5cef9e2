"""WooCommerce's product CSV export (Products > Export).

One row per product; a ``variable`` product's variants are ``variation`` rows whose
``Parent`` names it as ``id:<ID>`` or by its SKU. Attributes are ``Attribute N name`` /
``Attribute N value(s)`` column pairs.

- product id: ``ID`` (else SKU); item id: the variant's SKU, else its ID.
- a ``simple`` product is one variant; its single-valued attributes are its options.
- price: ``Sale price`` when set (what the shopper pays now), else ``Regular price``.
- available: ``In stock?`` (1, 0, or ``backorder`` which sells), else ``Stock`` above 0,
  else True.

Skipped rows, counted by reason: unpublished products (``Published`` 0 or -1: draft,
private) and their variations (``unpublished``), types other than simple/variable/variation
(``type grouped``, ``type external``), and a variable product with no variation rows
(``no variations``). Rejected files: a missing ID/Type/Name/Regular price column, a bad or
missing price on a simple product or variation, a variation whose parent is not in the file,
an item id used twice.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from decimal import Decimal

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

FORMAT = "woocommerce"
REQUIRED = ("ID", "Type", "Name", "Regular price")
SIGNATURE = ("ID", "Type", "SKU", "Name", "Regular price", "Parent")
_ATTRIBUTE = re.compile(r"^Attribute (\d+) name$")


def matches(header: list[str]) -> bool:
    return all(column in header for column in SIGNATURE)


def _attributes(record: dict[str, str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for column, name in record.items():
        m = _ATTRIBUTE.match(column)
        if m and name:
            value = record.get(f"Attribute {m.group(1)} value(s)", "")
            if value and "," not in value:  # several values: a choice, not this variant's
                out[name] = value
    return out


def _available(record: dict[str, str]) -> bool:
    flag = record.get("In stock?", "").strip().lower()
    if flag == "backorder":
        return True
    stated = truthy(flag)
    if stated is not None:
        return stated
    stock = whole_number(record.get("Stock", "")) if record.get("Stock") else None
    return True if stock is None else stock > 0


def _price(problems: Problems, number: int, record: dict[str, str]) -> Decimal | None:
    if record.get("Sale price"):
        return problems.price(number, "Sale price", record["Sale price"])
    if not record["Regular price"]:
        problems.add(number, "Regular price", "a product or variation needs a price")
        return None
    return problems.price(number, "Regular price", record["Regular price"])


class _Product:
    def __init__(self, number: int, record: dict[str, str]) -> None:
        self.row = number
        self.id = record["ID"] or record.get("SKU", "")
        self.sku = record.get("SKU", "")
        self.name = record["Name"]
        text = record.get("Short description") or record.get("Description", "")
        self.description = plain_text(text)
        self.published = (
            truthy(record.get("Published", "1")) is not False
            and record.get("Published", "1").strip() != "-1"
        )
        self.variants: list[VariantFact] = []


def read(
    records: Iterator[tuple[int, dict[str, str]]], header: list[str], source: str, currency: str
) -> ImportedFile:
    """Every published simple and variable product; ``CatalogFileError`` for bad rows."""
    problems = Problems(source)
    problems.require_columns(header, REQUIRED)
    result = ImportedFile(source, FORMAT)
    products: dict[str, _Product] = {}
    by_sku: dict[str, str] = {}
    variations: list[tuple[int, dict[str, str]]] = []
    items: dict[str, int] = {}
    for number, record in records:
        result.rows += 1
        kind = record["Type"].strip().lower()
        if "variation" in kind:
            variations.append((number, record))
            continue
        if not ({"simple", "variable"} & set(re.split(r"[\s,]+", kind))):
            result.skipped[f"type {kind or 'missing'}"] += 1
            continue
        product = _Product(number, record)
        if not product.id:
            problems.add(number, "ID", "a product needs an ID or SKU")
            continue
        if not product.name or len(product.name) > MAX_NAME:
            problems.add(number, "Name", f"a product needs a name of 1-{MAX_NAME} characters")
            continue
        products[product.id] = product
        if product.sku:
            by_sku[product.sku] = product.id
        if not product.published:
            result.skipped["unpublished"] += 1
            continue
        if "variable" in kind:
            result.imported += 1
            continue
        price = _price(problems, number, record)
        item_id = clean_id(product.sku or product.id)
        _claim(problems, items, item_id, number)
        if price is not None:
            product.variants.append(
                VariantFact(item_id, _attributes(record), price, _available(record))
            )
            result.imported += 1
    for number, record in variations:
        parent_ref = record.get("Parent", "")
        parent_id = parent_ref[3:] if parent_ref.startswith("id:") else by_sku.get(parent_ref)
        parent = products.get(parent_id or "")
        if parent is None:
            problems.add(number, "Parent", f"parent {parent_ref!r} is not in the file")
            continue
        if not parent.published or truthy(record.get("Published", "1")) is False:
            result.skipped["unpublished"] += 1
            continue
        price = _price(problems, number, record)
        item_id = clean_id(record.get("SKU") or record["ID"])
        if not item_id:
            problems.add(number, "ID", "a variation needs an ID or SKU")
            continue
        _claim(problems, items, item_id, number)
        if price is not None:
            parent.variants.append(
                VariantFact(item_id, _attributes(record), price, _available(record))
            )
            result.imported += 1
    problems.raise_any()
    for p in products.values():
        if p.published and not p.variants:
            result.imported -= 1
            result.skipped["no variations"] += 1
    result.products = [
        CatalogProduct(clean_id(p.id), p.name, tuple(p.variants), currency, p.description, source)
        for p in products.values()
        if p.published and p.variants
    ]
    return result


def _claim(problems: Problems, items: dict[str, int], item_id: str, number: int) -> None:
    if item_id in items:
        problems.add(number, "SKU", f"item {item_id!r} is also on row {items[item_id]}")
    items[item_id] = number
