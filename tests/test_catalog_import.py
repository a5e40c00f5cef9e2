"""Catalog import: Shopify and WooCommerce exports, generic files through a clerk.yml
mapping, exact prices in the store's currency, bad rows named, and a store whose catalog
is only a Shopify CSV answering a price question through the real engine."""

from __future__ import annotations

import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.config import Settings
from bot.errors import ConfigError, DataError
from bot.generation.guard import Evidence, FactGuard, prices_in
from bot.knowledge.catalog import CatalogResolver, format_money
from bot.knowledge.imports import CatalogFileError, CatalogSpec, read_catalog
from bot.knowledge.imports.spec import parse_files
from bot.knowledge.money import parse_price
from bot.knowledge.passages import build_passages
from bot.knowledge.store_load import load_store
from bot.store.db import Database
from bot.store.models import Product, Variant

FIXTURES = Path(__file__).parent / "data" / "catalog"
ROOT = Path(__file__).resolve().parent.parent

GENERIC_CSV = {
    "path": "catalog/generic_products.csv",
    "decimal_comma": True,
    "columns": {
        "product_id": "id",
        "name": "title",
        "price": "price",
        "stock": "qty",
        "description": "body",
        "option.Color": "colour",
        "item_id": "sku",
    },
}
GENERIC_JSON = {
    "path": "catalog/generic_products.json",
    "columns": {
        "product_id": "id",
        "name": "title",
        "price": "price",
        "available": "in_stock",
        "option.Color": "colour",
    },
}


def store(tmp_path: Path, *names: str) -> Path:
    """A knowledge folder whose catalog/ holds the named fixture files."""
    knowledge = tmp_path / "knowledge"
    (knowledge / "catalog").mkdir(parents=True)
    for name in names:
        shutil.copy(FIXTURES / name, knowledge / "catalog" / name)
    return knowledge


def by_id(products: list[Any]) -> dict[str, Any]:
    return {p.product_id: p for p in products}


# ----------------------------------------------------------------------------- formats


def test_shopify_export_reads_variants_and_skips_images_and_drafts(tmp_path: Path) -> None:
    catalog = read_catalog(store(tmp_path, "shopify_products.csv"), CatalogSpec("EUR"))
    [report] = catalog.report()
    assert report["format"] == "shopify"
    assert (report["rows"], report["imported"], report["skipped"]) == (8, 4, 4)
    assert report["skipped_reasons"] == {"draft": 2, "image-only row": 2}
    products = by_id(catalog.products)
    assert set(products) == {"merino-wool-beanie", "canvas-tote-bag"}  # the draft is out
    beanie = products["merino-wool-beanie"]
    assert [(v.item_id, dict(v.options), v.price, v.available) for v in beanie.variants] == [
        ("BEANIE-CHAR-SM", {"Color": "Charcoal", "Size": "S/M"}, Decimal("24.00"), True),
        ("BEANIE-CHAR-LX", {"Color": "Charcoal", "Size": "L/XL"}, Decimal("24.00"), False),
        ("BEANIE-MUST-SM", {"Color": "Mustard", "Size": "S/M"}, Decimal("1024.10"), True),
    ]  # tracked at 0 and "deny": sold out; "continue" sells on
    assert beanie.description.splitlines() == [
        "A warm beanie knitted from 100% merino wool.",
        "Hand wash cold",
        "Made in Portugal",
    ]
    tote = products["canvas-tote-bag"]
    assert tote.variants[0].options == {} and tote.variants[0].available  # Default Title
    assert "12 oz cotton canvas" in tote.description
    assert {p.currency for p in catalog.products} == {"EUR"}


def test_woocommerce_export_reads_simple_and_variable_products(tmp_path: Path) -> None:
    catalog = read_catalog(store(tmp_path, "woocommerce_products.csv"))
    [report] = catalog.report()
    assert report["format"] == "woocommerce"
    assert report["skipped_reasons"] == {"type grouped": 1, "unpublished": 1}
    products = by_id(catalog.products)
    assert set(products) == {"101", "102"}
    mug = products["101"]
    assert [(v.item_id, dict(v.options), v.price) for v in mug.variants] == [
        ("MUG-01", {"Material": "stoneware"}, Decimal("12.50"))
    ]
    hoodie = products["102"]
    assert hoodie.name == "Organic Hoodie" and "organic cotton" in hoodie.description
    assert [(v.item_id, v.options["Color"], v.price, v.available) for v in hoodie.variants] == [
        ("HOODIE-FOREST-M", "Forest", Decimal("65.00"), True),
        ("HOODIE-FOREST-L", "Forest", Decimal("65.00"), False),
        ("HOODIE-SAND-M", "Sand", Decimal("49.99"), True),  # sale price; parent by SKU
    ]


def test_generic_csv_and_json_through_a_clerk_yml_mapping(tmp_path: Path) -> None:
    knowledge = store(tmp_path, "generic_products.csv", "generic_products.json")
    config = tmp_path / "clerk.yml"
    config.write_text(
        "catalog:\n  currency: eur\n  files:\n"
        "    - {path: catalog/generic_products.csv, decimal_comma: true, columns: "
        "{product_id: id, name: title, price: price, stock: qty, description: body, "
        "option.Color: colour, item_id: sku}}\n"
        "    - {path: catalog/generic_products.json, columns: {product_id: id, name: title, "
        "price: price, available: in_stock, option.Color: colour}}\n"
    )
    settings = Settings.load({}, config_file=config)
    assert settings.currency == "EUR" and len(settings.catalog_files) == 2
    catalog = read_catalog(knowledge, CatalogSpec(settings.currency, settings.catalog_files))
    products = by_id(catalog.products)
    shirt = products["P-1"]
    assert [(v.item_id, v.options, v.price, v.available) for v in shirt.variants] == [
        ("LS-W", {"Color": "White"}, Decimal("1299.00"), True),
        ("LS-N", {"Color": "Navy"}, Decimal("1299.00"), False),
    ]
    assert products["P-2"].variants[0].price == Decimal("0.10")  # "0,10" with decimal comma
    lamp = products["lamp-1"]
    assert [v.price for v in lamp.variants] == [Decimal("0.10"), Decimal("0.20")]
    assert sum(v.price for v in lamp.variants) == Decimal("0.30")  # not 0.30000000000000004
    assert products["kettle"].variants[0].price == Decimal("1049.95")
    assert [r["format"] for r in catalog.report()] == ["generic", "generic"]


@pytest.mark.parametrize(
    ("catalog", "message"),
    [
        ({"currency": "euro"}, "currency"),
        ({"files": "x.csv"}, "catalog.files"),
        ({"files": [{"path": "catalog/a.txt"}]}, r"catalog.files\[0\].path"),
        (
            {"files": [{"path": "catalog/a.csv", "columns": {"name": "t", "price": "p"}}]},
            "missing product_id",
        ),
        (
            {
                "files": [
                    {
                        "path": "catalog/a.csv",
                        "columns": {"product_id": "i", "name": "t", "price": "p", "colour": "c"},
                    }
                ]
            },
            "unknown fields",
        ),
        ({"files": [{"path": "catalog/a.csv", "format": "magento"}]}, "format"),
        ({"mapping": {}}, "unknown keys"),
    ],
)
def test_bad_catalog_settings_are_config_errors(
    tmp_path: Path, catalog: dict[str, Any], message: str
) -> None:
    import yaml

    config = tmp_path / "clerk.yml"
    config.write_text(yaml.safe_dump({"catalog": catalog}))
    with pytest.raises(ConfigError, match=message):
        Settings.load({}, config_file=config)


def test_an_unknown_csv_in_the_catalog_folder_is_an_error(tmp_path: Path) -> None:
    knowledge = store(tmp_path, "generic_products.csv")  # not declared in clerk.yml
    with pytest.raises(DataError, match="not a Shopify or WooCommerce product export"):
        read_catalog(knowledge)


# ------------------------------------------------------------------------------ prices


@pytest.mark.parametrize(
    ("text", "comma", "expected"),
    [
        ("19.99", False, "19.99"),
        ("$19.99", False, "19.99"),
        ("1,299.00", False, "1299.00"),
        ("19.99 EUR", False, "19.99"),
        ("0.1", False, "0.10"),
        ("19,99", True, "19.99"),
        ("1.299,00 €", True, "1299.00"),
        ("7", False, "7.00"),
    ],
)
def test_prices_are_read_exactly(text: str, comma: bool, expected: str) -> None:
    assert parse_price(text, decimal_comma=comma) == Decimal(expected)
    assert str(parse_price(text, decimal_comma=comma)) == expected


@pytest.mark.parametrize("text", ["abc", "19,99", "1,29", "-5", "19.999", "", "1e3"])
def test_what_is_not_a_price(text: str) -> None:
    with pytest.raises(ValueError):
        parse_price(text)


def test_hostile_cells_are_read_in_linear_time() -> None:
    """A price cell with a long run of spaces and a stock cell with a huge exponent are
    refused at once (they took seconds, then minutes: regex backtracking, a huge int)."""
    import time

    from bot.knowledge.imports.rows import whole_number

    start = time.perf_counter()
    for cell in ("1" + " " * 100_000 + "1", "$" + " " * 100_000 + "x"):
        with pytest.raises(ValueError):
            parse_price(cell)
    assert whole_number("1e1000000000") is None
    assert whole_number("Infinity") is None
    assert whole_number("1,200") == 1200
    assert time.perf_counter() - start < 2


def test_prices_are_shown_in_the_stores_currency(tmp_path: Path) -> None:
    assert [format_money(Decimal("19.9"), c) for c in ("USD", "EUR", "GBP", "CHF")] == [
        "$19.90",
        "€19.90",
        "£19.90",
        "19.90 CHF",
    ]
    knowledge = store(tmp_path, "shopify_products.csv")
    catalog = read_catalog(knowledge, CatalogSpec("EUR"))
    [beanie] = [p for p in build_passages(knowledge, catalog) if p.title == "Merino Wool Beanie"]
    assert "priced from €24.00 to €1024.10" in beanie.text
    assert "Color Mustard, Size S/M: €1024.10, in stock" in beanie.text
    assert "$" not in beanie.text
    assert beanie.source == "catalog/shopify_products.csv"
    assert beanie.meta["currency"] == "EUR"


def test_the_guard_checks_prices_in_the_stores_currency(tmp_path: Path) -> None:
    catalog = read_catalog(store(tmp_path, "shopify_products.csv"), CatalogSpec("EUR"))
    resolver = CatalogResolver(catalog.products)
    assert resolver.currency == "EUR"
    guard = FactGuard(resolver)
    facts = resolver.resolve("how much is the merino wool beanie in mustard?")
    assert facts is not None
    evidence = Evidence((), facts, require_citations=False)
    assert [v for _, v in prices_in("It is €1,024.10 or 1024.10 EUR")] == [Decimal("1024.10")] * 2
    for good in ("The mustard beanie costs €1024.10.", "The mustard beanie is 1024.10 EUR."):
        assert not [v for v in guard.check(good, evidence).violations if v.kind == "price"], good
    for bad in (
        "The mustard beanie costs €19.99.",
        "The mustard beanie costs $1024.10.",
        "The mustard beanie is 1024.10 GBP.",
    ):
        assert [v for v in guard.check(bad, evidence).violations if v.kind == "price"], bad


# ------------------------------------------------------------------------------ errors


def test_a_bad_row_is_named_by_file_row_and_column_and_nothing_is_written(
    tmp_path: Path, db: Database
) -> None:
    knowledge = store(tmp_path, "shopify_products.csv")
    path = knowledge / "catalog" / "shopify_products.csv"
    lines = path.read_text().splitlines(keepends=True)
    # the beanie's second variant (spreadsheet row 3; its first row spans 5 lines)
    bad = lines[6].replace(",24.00,29.00,", ",abc,29.00,")
    assert bad != lines[6]
    path.write_text("".join(lines[:6] + [bad] + lines[7:]))
    with pytest.raises(CatalogFileError) as caught:
        load_store(db, knowledge)
    assert str(caught.value) == (
        "catalog/shopify_products.csv row 3, column 'Variant Price': 'abc' is not a price"
    )
    assert [(p.row, p.column) for p in caught.value.problems] == [(3, "Variant Price")]
    with db.session() as s:
        assert s.scalar(select(func.count()).select_from(Product)) == 0


def test_every_bad_row_of_a_file_is_reported(tmp_path: Path) -> None:
    knowledge = store(tmp_path, "woocommerce_products.csv")
    path = knowledge / "catalog" / "woocommerce_products.csv"
    text = path.read_text().replace(",12.50,", ",12.5.0,").replace("id:102", "id:999")
    path.write_text(text)
    with pytest.raises(CatalogFileError) as caught:
        read_catalog(knowledge)
    assert [(p.row, p.column) for p in caught.value.problems] == [
        (2, "Regular price"),
        (4, "Parent"),
        (5, "Parent"),
    ]
    assert "(and 2 more problems)" in str(caught.value)


def test_a_generic_json_row_without_a_price_is_named(tmp_path: Path) -> None:
    knowledge = store(tmp_path, "generic_products.json")
    path = knowledge / "catalog" / "generic_products.json"
    path.write_text(path.read_text().replace('"price": 0.2, ', ""))
    with pytest.raises(DataError, match=r"generic_products.json row 2, column 'price': '' is not"):
        read_catalog(knowledge, CatalogSpec(files=parse_files([GENERIC_JSON])))


# -------------------------------------------------------------------------- database


def test_an_imported_catalog_loads_into_the_database_without_orders(
    tmp_path: Path, db: Database
) -> None:
    knowledge = store(
        tmp_path, "shopify_products.csv", "woocommerce_products.csv", "generic_products.csv"
    )
    spec = CatalogSpec("EUR", parse_files([GENERIC_CSV]))
    counts = load_store(db, knowledge, catalog=read_catalog(knowledge, spec))
    assert counts["products_inserted"] == 6 and counts["variants_inserted"] == 11
    assert counts["customers_inserted"] == counts["orders_inserted"] == 0
    with db.session() as s:
        prices = {i: p for i, p in s.execute(select(Variant.item_id, Variant.price)).all()}
    assert prices["BEANIE-MUST-SM"] == Decimal("1024.10")
    assert prices["LS-W"] == Decimal("1299.00") and prices["WS-G"] == Decimal("0.10")
    assert prices["TOTE-1"] == Decimal("0.30")
    assert load_store(db, knowledge, catalog=read_catalog(knowledge, spec))["variants_updated"] == 0


# ------------------------------------------------------------------------ end to end


def test_a_store_with_only_a_shopify_csv_answers_a_price_question(
    tmp_path: Path,
    prepared_home: Any,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """``clerk ingest`` on a project whose catalog is one Shopify CSV, then a shopper asks
    a price through the REST channel and gets the catalog's price in euros, cited."""
    import bot.app
    from bot import cli
    from bot.nlu.model import NLUModel
    from tests.live import Chat, bot_server

    demo_settings, encoder = prepared_home
    knowledge = store(tmp_path, "shopify_products.csv")
    shutil.copytree(ROOT / "knowledge" / "policies", knowledge / "policies")
    shutil.copytree(ROOT / "training_data", tmp_path / "training_data")  # the demo's bot
    env = {
        "CLERK_PROJECT": str(tmp_path),
        "CLERK_HOME": str(tmp_path / "home"),
        "CLERK_CURRENCY": "EUR",
    }
    monkeypatch.setattr(cli, "_settings", lambda args: Settings.load(env, tmp_path / "no.yml"))
    monkeypatch.setattr(bot.app, "make_encoder", lambda settings: encoder)
    # the demo's trained NLU model stands in (training one would take minutes)
    nlu = NLUModel.load(bot.app.nlu_dir(demo_settings), encoder)
    monkeypatch.setattr(bot.app, "current_nlu", lambda settings, enc, **_: nlu)

    assert cli.cmd_ingest(None) == 0  # type: ignore[arg-type]
    printed = capsys.readouterr().out
    assert (
        "catalog: catalog/shopify_products.csv (shopify): 4 of 8 rows imported, "
        "4 skipped (2 draft, 2 image-only row); 2 products, 4 variants"
    ) in printed

    settings = Settings.load(env, tmp_path / "no.yml")
    with bot_server(settings, encoder, nlu=nlu) as server:
        replies = Chat(server.url).say("how much is the merino wool beanie in mustard?")
    text = replies[0]["text"]
    assert "€1024.10" in text and "$" not in text, text
    [citation] = replies[0]["custom"]["citations"]
    assert citation["source"] == "catalog/shopify_products.csv", citation
