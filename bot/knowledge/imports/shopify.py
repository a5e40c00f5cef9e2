"""Shopify's product CSV export.

A product starts at the first row of its ``Handle``; that row carries Title, Body (HTML),
Status, Published and the option names. Later rows of the same handle repeat only the
handle and carry one more variant (option values, SKU, price, inventory) or only an image.

- product id: the handle; item id: the variant SKU, else ``<handle>-<n>``.
- price: ``Variant Price`` (``Variant Compare At Price``, the "was" price, is not shown).
- available: not tracked (``Variant Inventory Tracker`` empty) -> True; tracked -> quantity
  above 0 or ``Variant Inventory Policy`` ``continue`` (sells when out of stock).
- the ``Title``/``Default Title`` option of single-variant products is no option.

Skipped rows, counted by reason: ``image-only row`` (no variant price, SKU or option), every
row of a product whose Status is not ``active`` (``draft``, ``archived``) or whose Published
is false (``unpublished``). Rejected files: a missing Handle/Title/Variant Price column, a
variant row whose price is missing or not a price, a handle that starts without a Title,
an SKU used twice.
"""

from __future__ import annotations

from collections.abc import Iterator

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

FORMAT = "shopify"
REQUIRED = ("Handle", "Title", "Variant Price")
SIGNATURE = ("Handle", "Title", "Variant Price", "Option1 Value")


def matches(header: list[str]) -> bool:
    return all(column in header for column in SIGNATURE)


class _Product:
    def __init__(self, row: int, handle: str, record: dict[str, str], skip: str | None) -> None:
        self.row = row
        self.handle = handle
        self.name = record.get("Title", "")
        self.description = plain_text(record.get("Body (HTML)", ""))
        self.option_names = [record.get(f"Option{i} Name", "") for i in (1, 2, 3)]
        self.skip = skip
        self.variants: list[VariantFact] = []
        self.rows = 1


def _skip_reason(record: dict[str, str]) -> str | None:
    status = record.get("Status", "").strip().lower()
    if status and status != "active":
        return status
    if truthy(record.get("Published", "")) is False:
        return "unpublished"
    return None


def _available(record: dict[str, str]) -> bool:
    if not record.get("Variant Inventory Tracker", ""):
        return True
    quantity = whole_number(record.get("Variant Inventory Qty", "") or "0") or 0
    return quantity > 0 or record.get("Variant Inventory Policy", "").lower() == "continue"


def read(
    records: Iterator[tuple[int, dict[str, str]]], header: list[str], source: str, currency: str
) -> ImportedFile:
    """Every active, published product of the export; ``CatalogFileError`` for bad rows."""
    problems = Problems(source)
    problems.require_columns(header, REQUIRED)
    result = ImportedFile(source, FORMAT)
    products: dict[str, _Product] = {}
    skus: dict[str, int] = {}
    for number, record in records:
        result.rows += 1
        handle = record["Handle"]
        product = products.get(handle)
        if not handle:
            problems.add(number, "Handle", "empty handle")
            continue
        if product is None:
            if not record["Title"]:
                problems.add(number, "Title", f"product {handle!r} starts without a title")
                continue
            if len(record["Title"]) > MAX_NAME:
                problems.add(number, "Title", f"longer than {MAX_NAME} characters")
            product = products[handle] = _Product(number, handle, record, _skip_reason(record))
        else:
            product.rows += 1
        if product.skip:
            result.skipped[product.skip] += 1
            continue
        values = [record.get(f"Option{i} Value", "") for i in (1, 2, 3)]
        price_text = record["Variant Price"]
        if not price_text and not record.get("Variant SKU") and not any(values):
            result.skipped["image-only row"] += 1
            continue
        if not price_text:
            problems.add(number, "Variant Price", "a variant row needs a price")
            continue
        price = problems.price(number, "Variant Price", price_text)
        sku = record.get("Variant SKU", "")
        if sku:
            if sku in skus:
                problems.add(number, "Variant SKU", f"SKU {sku!r} is also on row {skus[sku]}")
            skus[sku] = number
        if price is None:
            continue
        options = {
            name: value
            for name, value in zip(product.option_names, values, strict=True)
            if name and value and not (name == "Title" and value == "Default Title")
        }
        item_id = clean_id(sku or f"{handle}-{len(product.variants) + 1}")
        product.variants.append(VariantFact(item_id, options, price, _available(record)))
        result.imported += 1
    problems.raise_any()
    result.products = [
        CatalogProduct(
            clean_id(p.handle), p.name, tuple(p.variants), currency, p.description, source
        )
        for p in products.values()
        if not p.skip and p.variants
    ]
    return result
