"""The ``catalog`` section of ``clerk.yml``: the store's currency and catalog files that
need saying how to read them. Validated here; a mistake is a ``ConfigError`` naming the key.

    catalog:
      currency: EUR                 # ISO 4217 code of every price (default USD)
      files:                        # optional; files in knowledge/catalog/ are found anyway
        - path: catalog/products.csv  # relative to the knowledge folder (.csv or .json)
          format: generic           # generic (default) | shopify | woocommerce | tau
          decimal_comma: true       # "19,99" means 19.99 (default false)
          columns:                  # generic only: catalog field -> the file's column
            product_id: id          # required
            name: title             # required
            price: price            # required
            item_id: sku            # the variant's id (default: <product_id>-<n>)
            stock: qty              # a count; above 0 is available
            available: in_stock     # yes/no, true/false, 1/0 (wins over stock)
            description: body       # text or HTML
            option.Color: colour    # a variant option named "Color"

Rows sharing a ``product_id`` are the variants of one product (its first row names it).
``currency`` may also be set as ``CLERK_CURRENCY``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.errors import ConfigError
from bot.knowledge.money import currency_code

FORMATS = ("generic", "shopify", "woocommerce", "tau")
FIELDS = ("product_id", "name", "price", "item_id", "stock", "available", "description")
REQUIRED_FIELDS = ("product_id", "name", "price")


@dataclass(frozen=True)
class FileSpec:
    """One declared catalog file. ``columns`` maps a catalog field (``FIELDS`` or
    ``option.<Name>``) to the file's column (a CSV header or a JSON object key)."""

    path: str
    format: str = "generic"
    columns: Mapping[str, str] = field(default_factory=dict)
    decimal_comma: bool = False


@dataclass(frozen=True)
class CatalogSpec:
    currency: str = "USD"
    files: tuple[FileSpec, ...] = ()


def parse_currency(value: Any) -> str:
    try:
        return currency_code(value)
    except ValueError as exc:
        raise ConfigError("currency", str(exc)) from exc


def parse_files(raw: Any) -> tuple[FileSpec, ...]:
    """``catalog.files`` of clerk.yml as ``FileSpec`` values; ``ConfigError`` when wrong."""
    if raw in (None, ""):
        return ()
    if not isinstance(raw, list):
        raise ConfigError("catalog.files", "must be a list of files")
    return tuple(_file(n, entry) for n, entry in enumerate(raw))


def _file(n: int, entry: Any) -> FileSpec:
    key = f"catalog.files[{n}]"
    if not isinstance(entry, Mapping):
        raise ConfigError(key, "must be a mapping with path, format and columns")
    unknown = set(entry) - {"path", "format", "columns", "decimal_comma"}
    if unknown:
        raise ConfigError(key, f"unknown keys {sorted(unknown)}")
    path = str(entry.get("path") or "").strip()
    if not path or not path.endswith((".csv", ".json")) or ".." in path.split("/"):
        raise ConfigError(f"{key}.path", "a .csv or .json file inside the knowledge folder")
    fmt = str(entry.get("format", "generic")).strip().lower()
    if fmt not in FORMATS:
        raise ConfigError(f"{key}.format", f"must be one of {', '.join(FORMATS)}")
    decimal_comma = entry.get("decimal_comma", False)
    if not isinstance(decimal_comma, bool):
        raise ConfigError(f"{key}.decimal_comma", "must be true or false")
    columns = entry.get("columns") or {}
    if not isinstance(columns, Mapping) or not all(
        isinstance(v, str | int) and str(v).strip() for v in columns.values()
    ):
        raise ConfigError(f"{key}.columns", "must map catalog fields to column names")
    columns = {str(k): str(v).strip() for k, v in columns.items()}
    if fmt == "generic":
        bad = [
            k
            for k in columns
            if k not in FIELDS and not (k.startswith("option.") and len(k) > len("option."))
        ]
        if bad:
            raise ConfigError(
                f"{key}.columns",
                f"unknown fields {bad}; known: {', '.join(FIELDS)} and option.<Name>",
            )
        missing = [k for k in REQUIRED_FIELDS if k not in columns]
        if missing:
            raise ConfigError(f"{key}.columns", f"missing {', '.join(missing)}")
    elif columns:
        raise ConfigError(f"{key}.columns", f"only the generic format takes columns, not {fmt}")
    return FileSpec(path, fmt, columns, decimal_comma)
