"""The one reader of a store's catalog, whatever shape the store keeps it in.

``read_catalog(knowledge_dir, spec)`` returns a ``Catalog``: every product as a
``CatalogProduct`` (exact ``Decimal`` prices in ``spec.currency``) and, per file, what was
read (format, rows imported, rows skipped by reason). Everything that needs the catalog
(the database load, product passages, the NLU gazetteer, the fact guard, the widget) gets
it from here, so an imported catalog works exactly as the demo's ``products.json``.

Files read, from ``<knowledge_dir>/catalog/`` unless ``spec.files`` names them:

- ``products.json`` — tau-bench (``tau``);
- ``*.csv`` — a Shopify or WooCommerce product export, told apart by its header row;
- any file ``spec.files`` declares (``clerk.yml`` ``catalog.files``), e.g. a ``generic``
  CSV or JSON read through a column mapping (``bot.knowledge.imports.spec``).

``users.json`` and ``orders.json`` are not catalog files. A CSV in ``catalog/`` that is
neither export and not declared is a ``DataError``, as is any file with a bad row
(``CatalogFileError``: file, row and column of every problem) and a product or item id
that two files both use. Nothing is returned unless every file reads whole; an empty
``Catalog`` means the folder holds no catalog file.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bot.errors import DataError
from bot.knowledge.catalog import CatalogProduct
from bot.knowledge.imports import generic, shopify, tau, woocommerce
from bot.knowledge.imports.rows import CatalogFileError, ImportedFile, RowProblem, read_csv
from bot.knowledge.imports.spec import CatalogSpec, FileSpec

__all__ = [
    "Catalog",
    "CatalogFileError",
    "CatalogSpec",
    "FileSpec",
    "ImportedFile",
    "RowProblem",
    "read_catalog",
]

CATALOG_SUBDIR = "catalog"
NOT_CATALOG = frozenset({"users.json", "orders.json"})


@dataclass(frozen=True)
class Catalog:
    currency: str
    files: tuple[ImportedFile, ...]

    @property
    def products(self) -> list[CatalogProduct]:
        return [p for f in self.files for p in f.products]

    def report(self) -> list[dict[str, object]]:
        """Per file: format, rows, imported, skipped (with reasons), products, variants."""
        return [f.report() for f in self.files]


def read_catalog(knowledge_dir: Path, spec: CatalogSpec | None = None) -> Catalog:
    """Every catalog file of ``knowledge_dir``, read and checked whole (see module doc)."""
    spec = spec or CatalogSpec()
    knowledge_dir = Path(knowledge_dir)
    declared = {(knowledge_dir / f.path).resolve(): f for f in spec.files}
    files = [_read_declared(knowledge_dir, f, spec.currency) for f in spec.files]
    folder = knowledge_dir / CATALOG_SUBDIR
    found = sorted(folder.glob("*.csv")) + sorted(folder.glob("products.json"))
    for path in sorted(found):
        if path.resolve() in declared or path.name in NOT_CATALOG:
            continue
        files.append(_read_found(knowledge_dir, path, spec.currency))
    _check_unique(files)
    return Catalog(spec.currency, tuple(files))


def _source(knowledge_dir: Path, path: Path) -> str:
    try:
        return path.relative_to(knowledge_dir).as_posix()
    except ValueError:
        return path.as_posix()


def _read_found(knowledge_dir: Path, path: Path, currency: str) -> ImportedFile:
    source = _source(knowledge_dir, path)
    if path.suffix == ".json":
        return tau.read(path, source, currency)
    header, records = read_csv(path, source)
    for reader in (shopify, woocommerce):
        if reader.matches(header):
            return reader.read(records, header, source, currency)
    raise DataError(
        f"{source}: not a Shopify or WooCommerce product export (its header starts "
        f"{', '.join(header[:4])}); declare its columns under catalog.files in clerk.yml"
    )


def _read_declared(knowledge_dir: Path, spec: FileSpec, currency: str) -> ImportedFile:
    path = knowledge_dir / spec.path
    source = _source(knowledge_dir, path)
    if not path.is_file():
        raise DataError(f"{source}: file not found (named in clerk.yml catalog.files)")
    if spec.format == "tau":
        return tau.read(path, source, currency)
    if spec.format == "generic":
        if path.suffix == ".json":
            header, records = generic.json_records(path, source)
        else:
            header, records = read_csv(path, source)
        return generic.read(records, header, source, currency, spec)
    header, records = read_csv(path, source)
    reader = shopify if spec.format == "shopify" else woocommerce
    return reader.read(records, header, source, currency)


def _check_unique(files: list[ImportedFile]) -> None:
    products: dict[str, str] = {}
    items: dict[str, str] = {}
    for f in files:
        for p in f.products:
            if products.setdefault(p.product_id, f.source) != f.source:
                raise DataError(
                    f"{f.source}: product {p.product_id!r} is also in {products[p.product_id]}"
                )
            for v in p.variants:
                if items.setdefault(v.item_id, f.source + p.product_id) != f.source + p.product_id:
                    raise DataError(
                        f"{f.source}: item {v.item_id!r} of product "
                        f"{p.product_id!r} is used by another product too"
                    )
