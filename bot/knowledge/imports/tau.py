"""tau-bench's ``products.json``: an object keyed by product id, each product with its
``variants`` keyed by item id. Prices come from the JSON text as decimals. A malformed
file is rejected whole; nothing is skipped."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from bot.knowledge.catalog import load_products_json
from bot.knowledge.imports.rows import ImportedFile

FORMAT = "tau"


def read(path: Path, source: str, currency: str) -> ImportedFile:
    products = [replace(p, currency=currency, source=source) for p in load_products_json(path)]
    return ImportedFile(source, FORMAT, products, rows=len(products), imported=len(products))
