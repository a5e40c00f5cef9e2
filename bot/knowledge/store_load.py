"""Load a store's catalog, and the demo's customers and orders, into the database.

Input: the catalog as ``bot.knowledge.imports.read_catalog`` reads it (tau-bench
``products.json``, a Shopify or WooCommerce CSV export, files declared in ``clerk.yml``),
and optionally ``users.json`` and ``orders.json`` in the tau-bench retail format (objects
keyed by id; see ``knowledge/SOURCE.md``). A store without them has no customers or orders
to look up; everything else works.

Contract of ``load_store``:

- **Catalog is upserted.** Products and variants missing from the database are inserted;
  existing ones whose name, price, availability, options or product differ are updated to
  match the files. Rows that are not in the files are left alone.
- **Customers and orders are inserted only when missing.** An existing customer or order
  is never touched, so live state the bot has changed (a cancelled order, a new address)
  survives a reload. Order items are written only together with their new order.
- **All or nothing.** Everything runs in one ``Database.session()``: a bad file raises
  ``DataError`` (naming the file and record) and nothing is written. Called inside a turn,
  the load joins that turn's session and commits with it.
- Prices become ``Decimal`` with two places, converted from the text of the number
  (``50.88`` -> ``Decimal("50.88")``, ``"1,299.00"`` -> ``Decimal("1299.00")``), never
  through float arithmetic.
- Writes are bulk statements (one round trip per chunk of rows), so the whole demo store
  loads in about a second on SQLite.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Sequence
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from bot.errors import DataError
from bot.knowledge.imports import Catalog, read_catalog
from bot.store.db import Database
from bot.store.models import Customer, Order, OrderItem, Product, Variant

Progress = Callable[[str, int, int], None]
"""``progress(stage, done, total)``: stage is one of ``STAGES``; ``done`` counts records of
that stage's file handled so far (written or found unchanged). Each stage reports at least
once, and its last report has ``done == total``."""

STAGES = ("products", "variants", "customers", "orders")
CATALOG_SUBDIR = "catalog"
_CHUNK = 500
_CENT = Decimal("0.01")

Row = dict[str, Any]


def load_store(
    db: Database,
    knowledge_dir: Path,
    progress: Progress | None = None,
    *,
    catalog: Catalog | None = None,
) -> dict[str, int]:
    """Load the catalog and ``knowledge_dir/catalog/{users,orders}.json`` into ``db``.

    ``catalog``: the store's catalog already read (with its settings); default: read from
    ``knowledge_dir`` with the default settings. Every file is read and checked before the
    first write.

    Returns the rows written, keyed ``products_inserted``, ``products_updated``,
    ``variants_inserted``, ``variants_updated``, ``customers_inserted``,
    ``orders_inserted`` and ``order_items_inserted``; a second load of unchanged files
    returns all zeros. Raises ``DataError`` for a malformed file or a folder with no
    catalog, and for an order whose customer is neither in ``users.json`` nor in the database.
    """
    folder = Path(knowledge_dir) / CATALOG_SUBDIR
    if catalog is None:
        catalog = read_catalog(Path(knowledge_dir))
    if not catalog.files:
        raise DataError(
            f"{folder}: no catalog (products.json, a Shopify or WooCommerce CSV "
            "export, or files listed under catalog.files in clerk.yml)"
        )
    products, variants = _catalog_rows(catalog)
    customers = _customer_rows(folder / "users.json") if (folder / "users.json").exists() else []
    orders, items = (
        _order_rows(folder / "orders.json") if (folder / "orders.json").exists() else ([], [])
    )
    report: Progress = progress or (lambda stage, done, total: None)

    counts: dict[str, int] = {}
    with db.session() as session:
        counts["products_inserted"], counts["products_updated"] = _upsert(
            session, Product, "product_id", products, lambda n: report("products", n, len(products))
        )
        counts["variants_inserted"], counts["variants_updated"] = _upsert(
            session, Variant, "item_id", variants, lambda n: report("variants", n, len(variants))
        )

        known_customers = _existing_keys(session, Customer.user_id)
        new_customers = [c for c in customers if c["user_id"] not in known_customers]
        _insert_chunks(
            session,
            Customer,
            new_customers,
            lambda n: report("customers", len(customers) - len(new_customers) + n, len(customers)),
        )
        counts["customers_inserted"] = len(new_customers)

        known_orders = _existing_keys(session, Order.order_id)
        new_orders = [o for o in orders if o["order_id"] not in known_orders]
        _check_customers_exist(new_orders, known_customers | {c["user_id"] for c in customers})
        new_ids = {o["order_id"] for o in new_orders}
        new_items = [i for i in items if i["order_id"] in new_ids]
        _insert_chunks(
            session,
            Order,
            new_orders,
            lambda n: report("orders", len(orders) - len(new_orders) + n, len(orders)),
        )
        _insert_chunks(session, OrderItem, new_items, lambda n: None)
        counts["orders_inserted"] = len(new_orders)
        counts["order_items_inserted"] = len(new_items)
    return counts


# ------------------------------------------------------------------------ file parsing


def _read_json(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise DataError(f"{path}: file not found") from exc
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: invalid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected an object keyed by id")
    return data


def _records(path: Path) -> Iterable[tuple[str, dict[str, Any]]]:
    for key, record in _read_json(path).items():
        if not isinstance(record, dict):
            raise DataError(f"{path}: record {key!r} is not an object")
        yield key, record


def _price(value: Any, path: Path, where: str) -> Decimal:
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise DataError(f"{path}: {where}: price {value!r} is not a number")
    try:
        # str() of a float is its shortest repr, i.e. the digits written in the JSON file.
        price = Decimal(str(value))
    except InvalidOperation as exc:
        raise DataError(f"{path}: {where}: price {value!r} is not a number") from exc
    if not price.is_finite() or price != price.quantize(_CENT):
        raise DataError(f"{path}: {where}: price {value!r} is not a whole number of cents")
    return price.quantize(_CENT)


def _catalog_rows(catalog: Catalog) -> tuple[list[Row], list[Row]]:
    products: list[Row] = []
    variants: list[Row] = []
    for product in catalog.products:
        products.append({"product_id": product.product_id, "name": product.name})
        variants += [
            {
                "item_id": v.item_id,
                "product_id": product.product_id,
                "options": dict(v.options),
                "price": v.price.quantize(_CENT),
                "available": v.available,
            }
            for v in product.variants
        ]
    return products, variants


def _customer_rows(path: Path) -> list[Row]:
    rows: list[Row] = []
    for user_id, record in _records(path):
        try:
            address = dict(record["address"])
            rows.append(
                {
                    "user_id": user_id,
                    "first_name": str(record["name"]["first_name"]),
                    "last_name": str(record["name"]["last_name"]),
                    "email": str(record["email"]),
                    "zip": str(address["zip"]),
                    "address": address,
                    "payment_methods": dict(record["payment_methods"]),
                }
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: user {user_id!r}: missing or malformed {exc}") from exc
    return rows


def _order_rows(path: Path) -> tuple[list[Row], list[Row]]:
    orders: list[Row] = []
    items: list[Row] = []
    for key, record in _records(path):
        try:
            order_id = str(record["order_id"])
            orders.append(
                {
                    "order_id": order_id,
                    "user_id": str(record["user_id"]),
                    "status": str(record["status"]),
                    "address": dict(record["address"]),
                    "fulfillments": list(record["fulfillments"]),
                    "payment_history": list(record["payment_history"]),
                }
            )
            for position, item in enumerate(record["items"]):
                items.append(
                    {
                        "order_id": order_id,
                        "item_id": str(item["item_id"]),
                        "product_id": str(item["product_id"]),
                        "name": str(item["name"]),
                        "price": _price(item["price"], path, f"order {key!r} item {position}"),
                        "options": dict(item["options"]),
                    }
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise DataError(f"{path}: order {key!r}: missing or malformed {exc}") from exc
    return orders, items


# ----------------------------------------------------------------------------- writing


def _existing_keys(session: Session, column: Any) -> set[str]:
    return set(session.scalars(select(column)))


def _insert_chunks(
    session: Session, model: type[Any], rows: Sequence[Row], done: Callable[[int], None]
) -> None:
    """Bulk-insert ``rows`` in order (so autoincrement ids follow file order).

    Calls ``done(rows_written_so_far)`` after each chunk, and ``done(0)`` when there is
    nothing to write, so callers always get a final report.
    """
    if not rows:
        done(0)
    for start in range(0, len(rows), _CHUNK):
        chunk = rows[start : start + _CHUNK]
        session.execute(insert(model), list(chunk))
        done(start + len(chunk))


def _upsert(
    session: Session,
    model: type[Any],
    key: str,
    rows: Sequence[Row],
    done: Callable[[int], None],
) -> tuple[int, int]:
    """Insert rows whose ``key`` is new, update rows that differ; return (inserted, updated)."""
    fields = [f for f in rows[0] if f != key] if rows else []
    columns = [getattr(model, key), *(getattr(model, f) for f in fields)]
    existing = {r[0]: r[1:] for r in session.execute(select(*columns)).tuples()}
    new_rows: list[Row] = []
    changed: list[Row] = []
    for row in rows:
        current = existing.get(row[key])
        if current is None:
            new_rows.append(row)
        elif tuple(current) != tuple(row[f] for f in fields):
            changed.append(row)
    if changed:
        session.execute(update(model), changed)
    unchanged = len(rows) - len(new_rows)
    _insert_chunks(session, model, new_rows, lambda n: done(unchanged + n))
    return len(new_rows), len(changed)


def _check_customers_exist(orders: Iterable[Row], customers: set[str]) -> None:
    missing = sorted({o["user_id"] for o in orders} - customers)
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise DataError(f"orders.json: orders refer to {len(missing)} unknown users: {shown}")
