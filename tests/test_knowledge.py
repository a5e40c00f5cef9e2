"""The knowledge base: passages, ingestion, the persisted hybrid index, catalog resolution,
retrieval quality and the extractive grounded answers the dialogue engine sends shoppers."""

from __future__ import annotations

import json
import re
import shutil
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.app import answer_wording
from bot.errors import DataError, KnowledgeError
from bot.generation.base import Answer
from bot.generation.extractive import ExtractiveWriter, cited_indices
from bot.knowledge.answerer import KnowledgeAnswerer
from bot.knowledge.catalog import CatalogResolver, format_price
from bot.knowledge.index import KnowledgeIndex, ingest
from bot.knowledge.passages import (
    build_passages,
    faq_passages,
    passage_id,
    policy_passages,
)
from bot.knowledge.retriever import Hit, HybridRetriever, SearchFilters
from bot.store.db import Database

WORDING = answer_wording()  # Clerk's default responses
NOT_FOUND = WORDING.not_found()

# --------------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="module")
def raw_products(knowledge_dir: Path) -> dict[str, Any]:
    return json.loads((knowledge_dir / "catalog" / "products.json").read_text())


@pytest.fixture(scope="module")
def catalog(knowledge_dir: Path) -> CatalogResolver:
    return CatalogResolver.from_json(knowledge_dir / "catalog" / "products.json")


@pytest.fixture(scope="module")
def demo_index_dir(tmp_path_factory: pytest.TempPathFactory, knowledge_dir: Path, encoder) -> Path:  # type: ignore[no-untyped-def]
    """The demo knowledge ingested once for the module (its own SQLite database)."""
    home = tmp_path_factory.mktemp("knowledge-home")
    db = Database(f"sqlite:///{home / 'clerk.db'}")
    db.create_all()
    try:
        report = ingest(db, knowledge_dir, home / "index", encoder)
    finally:
        db.dispose()
    assert report.embedded == report.total == report.added
    return home / "index"


@pytest.fixture(scope="module")
def index(demo_index_dir: Path, encoder) -> KnowledgeIndex:  # type: ignore[no-untyped-def]
    return KnowledgeIndex.load(demo_index_dir, encoder)


@pytest.fixture(scope="module")
def retriever(index: KnowledgeIndex) -> HybridRetriever:
    return HybridRetriever(index)


@pytest.fixture(scope="module")
def answerer(retriever: HybridRetriever, raw_products: dict[str, Any]) -> KnowledgeAnswerer:
    return KnowledgeAnswerer(retriever, ExtractiveWriter(WORDING), raw_products)


class CountingEncoder:
    """The real encoder, recording every text it is asked to embed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.model_path = inner.model_path
        self.embedded: list[str] = []

    @property
    def dim(self) -> int:
        return int(self.inner.dim)

    def encode(self, texts: list[str], **kw: Any) -> np.ndarray:
        self.embedded.extend(texts)
        return self.inner.encode(texts, **kw)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]


FAQ = """# Frequently asked questions

## Shipping

### How long does shipping take?

Orders ship within 2 business days.
Delivery takes 3 to 7 business days.

### Do you ship abroad?

Not at the moment; we deliver in the United States only.

## Payments

### Which payment methods do you accept?

Credit cards, PayPal and gift cards.
"""


@pytest.fixture
def small_knowledge(tmp_path: Path, knowledge_dir: Path, raw_products: dict[str, Any]) -> Path:
    """A copy of the demo knowledge with 6 products and a FAQ this test owns."""
    root = tmp_path / "knowledge"
    (root / "catalog").mkdir(parents=True)
    some = dict(list(raw_products.items())[:6])
    (root / "catalog" / "products.json").write_text(json.dumps(some))
    shutil.copytree(knowledge_dir / "policies", root / "policies")
    (root / "faq.md").write_text(FAQ)
    # private data next to the catalog must never become passages
    (root / "catalog" / "users.json").write_text('{"u1": {"email": "secret@example.com"}}')
    return root


def prices_in(text: str) -> list[Decimal]:
    return [Decimal(p) for p in re.findall(r"\$(\d+(?:\.\d{2}))", text)]


def variants_of(raw_products: dict[str, Any], name: str) -> list[dict[str, Any]]:
    product = next(p for p in raw_products.values() if p["name"] == name)
    return list(product["variants"].values())


# --------------------------------------------------------------------------------- passages


def test_demo_knowledge_becomes_product_policy_and_faq_passages(
    knowledge_dir: Path, raw_products: dict[str, Any]
) -> None:
    passages = build_passages(knowledge_dir)
    by_kind: dict[str, list] = {}
    for p in passages:
        by_kind.setdefault(p.kind, []).append(p)
    assert set(by_kind) <= {"product", "policy", "faq"}

    products = by_kind["product"]
    assert len(products) == len(raw_products) == 50
    shirt = next(p for p in products if p.title == "T-Shirt")
    assert shirt.meta["product_id"] == "9523456873"
    assert shirt.id == passage_id("product", "catalog/products.json", "9523456873")
    raw = raw_products["9523456873"]["variants"]
    assert {v["item_id"] for v in shirt.meta["variants"]} == set(raw)
    for item_id, v in raw.items():  # every variant written out as a readable fact
        stock = "in stock" if v["available"] else "out of stock"
        assert f"${format_price(v['price'])}, {stock} (item {item_id})" in shirt.text
    assert "color blue, size M, material cotton, style crew neck: $50.88" in shirt.text

    titles = [p.title for p in by_kind["policy"]]
    assert "Retail agent policy > Cancel pending order" in titles
    assert "Retail agent policy > Modify pending order > Modify payment" in titles
    cancel = next(p for p in by_kind["policy"] if p.title.endswith("Cancel pending order"))
    assert "only be cancelled if its status is 'pending'" in cancel.text
    assert all(len(p.text) <= 1200 for p in by_kind["policy"])  # long sections are split

    faq_file = (knowledge_dir / "faq.md").read_text()
    questions = re.findall(r"^#{2,6}\s+(.+\?)\s*$", faq_file, flags=re.MULTILINE)
    assert [p.title for p in by_kind.get("faq", [])] == questions

    assert len({p.id for p in passages}) == len(passages)
    again = build_passages(knowledge_dir)
    assert [(p.id, p.content_hash) for p in again] == [(p.id, p.content_hash) for p in passages]


def test_markdown_sections_become_titled_passages() -> None:
    policy = policy_passages(
        "# Policy\n\nIntro line.\n\n## Returns\n\nReturn within 30 days.\n\n"
        "```\n## not a heading\n```\n\n### Refunds\n\nRefunds take 5 days.\n\n## Empty\n",
        "policies/p.md",
    )
    assert [p.title for p in policy] == ["Policy", "Policy > Returns", "Policy > Returns > Refunds"]
    assert "## not a heading" in policy[1].text
    assert policy[2].meta["heading_path"] == ["Policy", "Returns", "Refunds"]

    long_body = "\n\n".join(f"Paragraph {i} " + "word " * 60 for i in range(8))
    parts = policy_passages(f"# Big\n\n{long_body}\n", "policies/big.md")
    assert len(parts) > 1 and all(p.title == "Big" for p in parts)
    assert len({p.id for p in parts}) == len(parts)
    assert "".join(p.text for p in parts).count("Paragraph") == 8

    faq = faq_passages(FAQ + "\n## How long does shipping take?\n\nSee above.\n", "faq.md")
    assert [p.title for p in faq] == [
        "How long does shipping take?",
        "Do you ship abroad?",
        "Which payment methods do you accept?",
        "How long does shipping take?",
    ]
    assert faq[0].meta["category"] == "Frequently asked questions > Shipping"
    assert faq[0].text.startswith("Orders ship within 2 business days.")
    assert len({p.id for p in faq}) == 4  # a repeated question still gets its own id


def test_missing_or_broken_knowledge_is_a_data_error(tmp_path: Path) -> None:
    with pytest.raises(DataError):
        build_passages(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError):
        build_passages(tmp_path / "empty")
    (tmp_path / "bad" / "catalog").mkdir(parents=True)
    (tmp_path / "bad" / "catalog" / "products.json").write_text("{not json")
    with pytest.raises(DataError, match="products.json"):
        build_passages(tmp_path / "bad")


# -------------------------------------------------------------------------------- ingestion


def test_ingest_is_idempotent_and_reembeds_only_what_changed(
    db: Database, encoder: Any, small_knowledge: Path, tmp_path: Path
) -> None:
    from sqlalchemy import select

    from bot.store.models import KnowledgePassage

    index_dir = tmp_path / "index"
    counting = CountingEncoder(encoder)
    first = ingest(db, small_knowledge, index_dir, counting)
    total = first.total
    assert (first.added, first.updated, first.removed, first.embedded) == (total, 0, 0, total)
    assert (
        total
        == 6
        + len(policy_passages((small_knowledge / "policies" / "store-policy.md").read_text(), "x"))
        + 3
    )
    with db.session() as s:
        rows = s.scalars(select(KnowledgePassage)).all()
        assert len(rows) == total
        assert not any("secret@example.com" in r.text for r in rows)
    before = KnowledgeIndex.load(index_dir, encoder)

    counting.embedded.clear()
    manifest_mtime = (index_dir / "manifest.json").stat().st_mtime_ns
    again = ingest(db, small_knowledge, index_dir, counting)
    assert (again.added, again.updated, again.removed, again.unchanged) == (0, 0, 0, total)
    assert again.embedded == 0 and counting.embedded == []
    assert (index_dir / "manifest.json").stat().st_mtime_ns == manifest_mtime

    faq = small_knowledge / "faq.md"
    faq.write_text(
        faq.read_text().replace(
            "Credit cards, PayPal and gift cards.",
            "Credit cards, PayPal, gift cards and Apple Pay.",
        )
    )
    changed = ingest(db, small_knowledge, index_dir, counting)
    assert (changed.added, changed.updated, changed.removed, changed.embedded) == (0, 1, 0, 1)
    assert len(counting.embedded) == 1 and "Apple Pay" in counting.embedded[0]
    after = KnowledgeIndex.load(index_dir, encoder)
    assert [p.id for p in after.passages] == [p.id for p in before.passages]
    differs = [
        p.title
        for p, a, b in zip(after.passages, after.embeddings, before.embeddings, strict=True)
        if not np.array_equal(a, b)
    ]
    assert differs == ["Which payment methods do you accept?"]
    with db.session() as s:
        row = s.scalars(
            select(KnowledgePassage).where(
                KnowledgePassage.title == "Which payment methods do you accept?"
            )
        ).one()
        assert "Apple Pay" in row.text

    faq.write_text(faq.read_text().split("### Do you ship abroad?")[0])
    counting.embedded.clear()
    shrunk = ingest(db, small_knowledge, index_dir, counting)
    assert (shrunk.removed, shrunk.embedded, shrunk.total) == (2, 0, total - 2)
    with db.session() as s:
        assert len(s.scalars(select(KnowledgePassage)).all()) == total - 2
    assert len(KnowledgeIndex.load(index_dir, encoder)) == total - 2


# ------------------------------------------------------------------------------------ index


def test_index_loads_fast_and_searches_like_the_built_one(
    demo_index_dir: Path, index: KnowledgeIndex, encoder: Any
) -> None:
    timings = []
    for _ in range(3):
        t = time.perf_counter()
        loaded = KnowledgeIndex.load(demo_index_dir, encoder)
        timings.append(time.perf_counter() - t)
    assert min(timings) < 0.25, timings
    assert [p.id for p in loaded.passages] == [p.id for p in index.passages]
    np.testing.assert_array_equal(loaded.embeddings, index.embeddings)
    q = "can I cancel a processed order?"
    np.testing.assert_allclose(loaded.lexical_scores(q), index.lexical_scores(q))


def test_missing_or_corrupt_index_raises_knowledge_error(
    demo_index_dir: Path, encoder: Any, tmp_path: Path
) -> None:
    with pytest.raises(KnowledgeError, match="clerk ingest"):
        KnowledgeIndex.load(tmp_path / "no-index", encoder)

    def broken(name: str) -> Path:
        target = tmp_path / name
        shutil.copytree(demo_index_dir, target)
        return target

    short = broken("short")
    emb = np.load(short / "embeddings.npy")
    np.save(short / "embeddings.npy", emb[:-1])
    with pytest.raises(KnowledgeError, match="corrupt"):
        KnowledgeIndex.load(short, encoder)

    garbled = broken("garbled")
    (garbled / "passages.jsonl").write_text("{oops\n")
    with pytest.raises(KnowledgeError):
        KnowledgeIndex.load(garbled, encoder)

    no_bm25 = broken("no-bm25")
    shutil.rmtree(no_bm25 / "bm25")
    with pytest.raises(KnowledgeError):
        KnowledgeIndex.load(no_bm25, encoder)

    class OtherModel:
        model_path = Path("/models/some-other-model")
        dim = 384

    with pytest.raises(KnowledgeError, match="encoder"):
        KnowledgeIndex.load(demo_index_dir, OtherModel())


# -------------------------------------------------------------------------------- retrieval


def test_search_filters(retriever: HybridRetriever, raw_products: dict[str, Any]) -> None:
    policy_only = retriever.search("blue speaker", 5, SearchFilters.of(kind="policy"))
    assert policy_only and {h.kind for h in policy_only} == {"policy"}

    speakers = retriever.search("speaker", 3, SearchFilters.of(product_type="bluetooth speaker"))
    assert [h.title for h in speakers] == ["Bluetooth Speaker"]

    cheap = retriever.search("something for the kitchen", 50, SearchFilters.of(max_price=60))
    assert cheap and all(h.kind == "product" for h in cheap)
    assert all(min(float(v["price"]) for v in h.meta["variants"]) <= 60 for h in cheap)
    assert len(cheap) < 50

    ranged = retriever.search("laptop", 50, SearchFilters.of(min_price=1000, max_price=3000))
    assert "Laptop" in [h.title for h in ranged]
    assert all(any(1000 <= float(v["price"]) <= 3000 for v in h.meta["variants"]) for h in ranged)

    in_stock = retriever.search("product", 60, SearchFilters.of(in_stock=True))
    expected = {
        p["name"]
        for p in raw_products.values()
        if any(v["available"] for v in p["variants"].values())
    }
    assert {h.title for h in in_stock} == expected

    assert retriever.search("anything", 5, SearchFilters.of(kind="nothing-like-this")) == []
    assert retriever.search("   ", 5) == []


# ~30 questions a shopper might ask, each with the passage(s) that answer it. Where the FAQ
# and the policy say the same thing, either counts.
RECALL_CASES: list[tuple[str, list[tuple[str, str]]]] = [
    ("how much does the espresso machine cost?", [("product", "Espresso Machine")]),
    ("do you have waterproof hiking boots in size 10?", [("product", "Hiking Boots")]),
    (
        "is the mechanical keyboard available with clicky switches?",
        [("product", "Mechanical Keyboard")],
    ),
    ("what colors does the yoga mat come in?", [("product", "Yoga Mat")]),
    ("I need a laptop with 32GB RAM", [("product", "Laptop")]),
    ("price of the over-ear headphones", [("product", "Headphones")]),
    ("do you sell e-readers with cellular connectivity?", [("product", "E-Reader")]),
    ("looking for a HEPA air purifier for a large room", [("product", "Air Purifier")]),
    ("what sizes does the fleece jacket come in?", [("product", "Fleece Jacket")]),
    ("20000mAh power bank with USB-C output", [("product", "Portable Charger")]),
    ("gas grill with a side burner", [("product", "Grill")]),
    ("robot vacuum for pet hair", [("product", "Vacuum Cleaner")]),
    ("smart thermostat that works with Alexa", [("product", "Smart Thermostat")]),
    ("a 1000 piece jigsaw puzzle with animals", [("product", "Jigsaw Puzzle")]),
    (
        "can I cancel a processed order?",
        [("policy", "Cancel pending order"), ("faq", "Can I cancel my order?")],
    ),
    (
        "what reasons can I give for cancelling an order?",
        [("policy", "Cancel pending order"), ("faq", "Can I cancel my order?")],
    ),
    (
        "can I change the payment method on my pending order?",
        [("policy", "Modify payment"), ("faq", "Can I change an order after placing it?")],
    ),
    (
        "can I pay the price difference of an item change with a gift card?",
        [
            ("policy", "Modify items"),
            ("policy", "Exchange delivered order"),
            ("policy", "Modify payment"),
        ],
    ),
    ("can I swap the shirt in my pending order for a pair of shoes?", [("policy", "Modify items")]),
    (
        "how many times can I modify the items in an order?",
        [("policy", "Modify items"), ("faq", "Can I change an order after placing it?")],
    ),
    (
        "what happens after I request a return?",
        [("policy", "Return delivered order"), ("faq", "How do I return an item?")],
    ),
    (
        "can the refund for my return go to a gift card?",
        [("policy", "Return delivered order"), ("faq", "When will I get my refund?")],
    ),
    (
        "do I need to place a new order when exchanging an item?",
        [
            ("policy", "Exchange delivered order"),
            ("faq", "Can I exchange an item for a different size or color?"),
        ],
    ),
    ("what time zone are the order times in?", [("policy", "Domain basic")]),
    (
        "what statuses can an order have?",
        [("policy", "Domain basic"), ("faq", "What do the order statuses mean?")],
    ),
    (
        "when will you transfer me to a human agent?",
        [
            ("policy", "Retail agent policy"),
            ("faq", "How can I contact you, and when are you open?"),
        ],
    ),
    ("can you help me with my friend's order?", [("policy", "Retail agent policy")]),
    (
        "do I need to verify my identity?",
        [("policy", "Retail agent policy"), ("faq", "How do you confirm who I am?")],
    ),
    (
        "how long does a refund to my credit card take after cancelling?",
        [("policy", "Cancel pending order"), ("faq", "When will I get my refund?")],
    ),
    ("how long does delivery take?", [("faq", "How long does shipping take?")]),
    ("is shipping free?", [("faq", "How much does shipping cost?")]),
    ("do you deliver to Canada?", [("faq", "Do you ship outside the United States?")]),
    ("do you accept PayPal?", [("faq", "Which payment methods do you accept?")]),
    ("where can I find my tracking number?", [("faq", "How can I track my order?")]),
    (
        "how many days do I have to send something back?",
        [("faq", "How long do I have to return something?")],
    ),
    ("what are your opening hours?", [("faq", "How can I contact you, and when are you open?")]),
    (
        "what's your support email address?",
        [("faq", "How can I contact you, and when are you open?")],
    ),
]

OUT_OF_SCOPE = [
    "what's the capital of France?",
    "do you sell cars?",
    "what's the weather like tomorrow?",
    "who won the world cup?",
    "do you sell groceries?",
    "can you recommend a good movie?",
    "how do I reset my password?",
    "tell me a joke",
    "who is the president of the United States?",
    "can you book me a flight to Paris?",
    "what is the meaning of life?",
    "how do I bake sourdough bread?",
]


def _is_target(hit: Hit, targets: list[tuple[str, str]]) -> bool:
    return any(
        hit.kind == kind and (hit.title == title or hit.title.endswith(f"> {title}"))
        for kind, title in targets
    )


@pytest.fixture(scope="module")
def top5(retriever: HybridRetriever) -> dict[str, list[Hit]]:
    """The top 5 hits of every recall and out-of-scope question, searched once."""
    return {q: retriever.search(q, 5) for q in [*(q for q, _ in RECALL_CASES), *OUT_OF_SCOPE]}


def test_retrieval_recall_at_5(top5: dict[str, list[Hit]], knowledge_dir: Path) -> None:
    titles = {(p.kind, p.title) for p in build_passages(knowledge_dir)}
    has_faq = any(kind == "faq" for kind, _ in titles)
    cases = [(q, [t for t in targets if t[0] != "faq" or has_faq]) for q, targets in RECALL_CASES]
    cases = [(q, t) for q, t in cases if t]
    assert len(cases) >= 30
    for _, targets in cases:  # every target names a passage that exists
        assert any(
            kind == k and (title == t or title.endswith(f"> {t}"))
            for kind, title in titles
            for k, t in targets
        ), targets
    found = [any(_is_target(h, targets) for h in top5[q]) for q, targets in cases]
    recall = sum(found) / len(found)
    misses = [q for (q, _), ok in zip(cases, found, strict=True) if not ok]
    assert recall >= 0.9, misses


def test_relevance_threshold_separates_in_scope_from_out_of_scope(
    top5: dict[str, list[Hit]],
) -> None:
    writer = ExtractiveWriter(WORDING)
    for q in OUT_OF_SCOPE:
        relevant = [h.title for h in top5[q] if writer.is_relevant(h)]
        assert relevant == [], q
    answered = 0
    for q, targets in RECALL_CASES:
        answered += any(_is_target(h, targets) and writer.is_relevant(h) for h in top5[q])
    assert answered / len(RECALL_CASES) >= 0.9


# ---------------------------------------------------------------------------------- catalog


def test_resolves_options_to_the_exact_catalog_variants(
    catalog: CatalogResolver, raw_products: dict[str, Any]
) -> None:
    facts = catalog.resolve("Do you have the blue M crew-neck T-shirt?")
    assert facts is not None and facts.name == "T-Shirt"
    expected = {
        v["item_id"]
        for v in variants_of(raw_products, "T-Shirt")
        if v["options"]["color"] == "blue"
        and v["options"]["size"] == "M"
        and v["options"]["style"] == "crew neck"
    }
    assert {v.item_id for v in facts.variants} == expected == {"9612497925"}
    assert dict(facts.requested) == {"color": ("blue",), "size": ("M",), "style": ("crew neck",)}

    speaker = catalog.resolve("how much is the Bluetooth Speaker in blue?")
    assert speaker is not None and speaker.name == "Bluetooth Speaker"
    blue = {
        v["item_id"]
        for v in variants_of(raw_products, "Bluetooth Speaker")
        if v["options"]["color"] == "blue"
    }
    assert {v.item_id for v in speaker.variants} == blue and len(blue) == 4

    assert catalog.resolve("do you sell cars?") is None
    assert catalog.resolve("what's the capital of France?") is None
    assert catalog.resolve("I'd like to see your hoverboards") is None


def test_resolution_handles_plurals_hyphens_spoken_sizes_and_flags(
    catalog: CatalogResolver, raw_products: dict[str, Any]
) -> None:
    shirts = variants_of(raw_products, "T-Shirt")
    for text in ("any tshirts in size M?", "t shirt, medium", "T-SHIRTS size m"):
        facts = catalog.resolve(text)
        assert facts is not None and facts.name == "T-Shirt", text
        assert {v.item_id for v in facts.variants} == {
            v["item_id"] for v in shirts if v["options"]["size"] == "M"
        }, text

    # "I'm" and "it's" are not sizes M and S
    facts = catalog.resolve("I'm sure it's a T-shirt I want")
    assert facts is not None and not facts.requested and len(facts.variants) == len(shirts)

    either = catalog.resolve("blue or black t-shirts")
    assert either is not None
    assert {v.options["color"] for v in either.variants} == {"blue", "black"}

    dry = catalog.resolve("bluetooth speakers that are not waterproof")
    assert dry is not None and dry.variants
    assert {v.options["water resistance"] for v in dry.variants} == {"no"}

    purple = catalog.resolve("is the bluetooth speaker available in purple?")
    assert purple is not None and purple.unmatched == ("purple",)

    none = catalog.resolve("T-shirt in blue, size XXL")
    assert none is not None and none.variants == () and none.requested

    by_head = catalog.resolve("how much is that speaker?")
    assert by_head is not None and by_head.name == "Bluetooth Speaker"
    assert catalog.resolve("how much is the kettle?") is None  # two kettles: no guess


def test_resolution_uses_nlu_entities_and_database_rows(
    catalog: CatalogResolver, raw_products: dict[str, Any]
) -> None:
    facts = catalog.resolve(
        "how much is it?",
        [{"entity": "product", "value": "bluetooth speaker"}, {"entity": "color", "value": "red"}],
    )
    assert facts is not None and facts.name == "Bluetooth Speaker"
    assert {v.options["color"] for v in facts.variants} == {"red"}

    from bot.store.models import Product, Variant

    raw = raw_products["9523456873"]
    row = Product(
        product_id="9523456873",
        name=raw["name"],
        variants=[
            Variant(
                item_id=v["item_id"],
                product_id="9523456873",
                options=v["options"],
                price=Decimal(str(v["price"])),
                available=v["available"],
            )
            for v in raw["variants"].values()
        ],
    )
    from_rows = CatalogResolver([row]).resolve("blue M crew neck t-shirt")
    assert from_rows is not None
    assert [v.item_id for v in from_rows.variants] == ["9612497925"]
    assert from_rows.variants[0].price == Decimal("50.88")


# ---------------------------------------------------------------------------------- answers


def _check_citations(answer: Answer) -> None:
    assert answer.citations
    assert cited_indices(answer.text) == {c.index for c in answer.citations}
    assert "Sources:" in answer.text


def test_price_question_states_exactly_the_catalog_prices(
    answerer: KnowledgeAnswerer, raw_products: dict[str, Any]
) -> None:
    answer = answerer.answer("how much is the Bluetooth Speaker in blue?")
    assert answer.grounded and answer.kind == "product"
    blue = [
        v for v in variants_of(raw_products, "Bluetooth Speaker") if v["options"]["color"] == "blue"
    ]
    assert sorted(prices_in(answer.text)) == sorted(Decimal(format_price(v["price"])) for v in blue)
    _check_citations(answer)
    assert answer.citations[0].passage_id == passage_id(
        "product",
        "catalog/products.json",
        next(pid for pid, p in raw_products.items() if p["name"] == "Bluetooth Speaker"),
    )
    assert "[1]" in answer.text


def test_product_answers_never_state_a_price_outside_the_catalog(
    answerer: KnowledgeAnswerer, raw_products: dict[str, Any]
) -> None:
    questions = {
        "blue M crew-neck T-shirt": "T-Shirt",
        "I need a laptop with 32GB RAM": "Laptop",
        "do you sell bicycles?": "Bicycle",
        "is the waterproof bluetooth speaker in red in stock?": "Bluetooth Speaker",
        "what does the yoga mat cost?": "Yoga Mat",
        "T-shirt in blue, size XXL": "T-Shirt",
        "do you have the bluetooth speaker in purple?": "Bluetooth Speaker",
    }
    for question, name in questions.items():
        answer = answerer.answer(question)
        assert answer.grounded and answer.kind == "product", question
        catalog_prices = {
            Decimal(format_price(v["price"])) for v in variants_of(raw_products, name)
        }
        assert set(prices_in(answer.text)) <= catalog_prices, question
        _check_citations(answer)
    shirt = answerer.answer("blue M crew-neck T-shirt")
    assert "$50.88" in shirt.text and "in stock" in shirt.text
    laptop = answerer.answer("I need a laptop with 32GB RAM")
    assert "…and 3 more" in laptop.text  # 8 matches: 5 listed, the rest summarised
    missing = answerer.answer("T-shirt in blue, size XXL")
    assert "don't have" in missing.text and not prices_in(missing.text)
    purple = answerer.answer("do you have the bluetooth speaker in purple?")
    assert "doesn't come in purple" in purple.text and "black, blue, green, red" in purple.text


def test_cancel_question_cites_the_pending_only_policy(answerer: KnowledgeAnswerer) -> None:
    answer = answerer.answer("can I cancel a processed order?")
    assert answer.grounded
    _check_citations(answer)
    policy = [c for c in answer.citations if c.title.endswith("Cancel pending order")]
    assert policy and policy[0].kind == "policy"
    assert "only be cancelled if its status is 'pending'" in policy[0].text
    assert f"[{policy[0].index}]" in answer.text
    assert policy[0].text in answer.text  # quoted, not paraphrased


def test_procedure_question_naming_a_product_is_answered_by_policy(
    answerer: KnowledgeAnswerer,
) -> None:
    answer = answerer.answer("can I return my headphones?")
    assert answer.grounded and answer.kind in ("policy", "faq")
    assert any("return" in c.title.lower() for c in answer.citations)
    assert not prices_in(answer.text)


@pytest.mark.parametrize("question", ["what's the capital of France?", "do you sell cars?"])
def test_out_of_scope_questions_are_not_grounded_and_offer_a_human(
    answerer: KnowledgeAnswerer, question: str
) -> None:
    answer = answerer.answer(question)
    assert not answer.grounded and answer.kind == "none"
    assert answer.citations == []
    assert "human" in answer.text and answer.text == NOT_FOUND


def test_writer_picks_the_sentences_that_answer_and_refuses_weak_evidence() -> None:
    writer = ExtractiveWriter(WORDING)
    policy = Hit(
        passage_id="policy-1",
        title="Policy > Returns",
        kind="policy",
        score=0.03,
        text="- Items can be returned within 30 days of delivery.\n"
        "- Gift wrapping is free.\n- Returned items are refunded in 5 to 7 business days.",
        source="policies/p.md",
        dense=0.6,
        lexical=4.0,
    )
    answer = writer.write("how many days do I have to return an item?", [policy], None)
    assert answer.grounded and answer.kind == "policy"
    assert "within 30 days of delivery. " in answer.text
    assert "Gift wrapping" not in answer.text
    assert answer.citations[0].passage_id == "policy-1"

    weak = Hit(
        passage_id="policy-1",
        title=policy.title,
        kind="policy",
        score=0.03,
        text=policy.text,
        source=policy.source,
        dense=0.3,
        lexical=1.1,
    )
    refused = writer.write("how many days do I have to return an item?", [weak], None)
    assert not refused.grounded and refused.citations == []
    assert writer.write("anything?", [], None).grounded is False


def test_answer_latency(answerer: KnowledgeAnswerer) -> None:
    questions = [
        "how much is the Bluetooth Speaker in blue?",
        "can I cancel a processed order?",
        "do you sell cars?",
    ]
    answerer.answer("warm up")
    timings = []
    for q in questions * 2:
        t = time.perf_counter()
        answerer.answer(q)
        timings.append(time.perf_counter() - t)
    # ~20-30 ms each on an idle 2-core machine; generous for a busy CI box
    assert float(np.median(timings)) < 1.0, timings


def test_cheapest_questions_and_product_named_in_passing(
    answerer: KnowledgeAnswerer, raw_products: dict[str, Any]
) -> None:
    laptops = variants_of(raw_products, "Laptop")
    cheapest = min(laptops, key=lambda v: v["price"])
    answer = answerer.answer("what's the cheapest laptop?")
    assert answer.grounded and answer.kind == "product"
    assert f"The cheapest is {', '.join(f'{k} {x}' for k, x in cheapest['options'].items())}" in (
        answer.text
    )
    assert f"${format_price(cheapest['price'])}" in answer.text

    # "cancelling" sounds like an order procedure, but no policy covers noise: the
    # product the shopper named answers instead
    earbuds = answerer.answer("do you have any noise cancelling earphones?")
    assert earbuds.grounded and earbuds.citations[0].title == "Wireless Earbuds"


def test_writer_answers_a_retrieved_product_from_its_passage() -> None:
    hit = Hit(
        passage_id="product-x",
        title="Yoga Mat",
        kind="product",
        score=0.03,
        text="Yoga Mat (product id 1).",
        meta={
            "product_id": "1",
            "variants": [
                {"item_id": "a", "options": {"color": "blue"}, "price": "20.50", "available": True},
                {
                    "item_id": "b",
                    "options": {"color": "pink"},
                    "price": "22.00",
                    "available": False,
                },
            ],
        },
        source="catalog/products.json",
        dense=0.7,
        lexical=5.0,
    )
    answer = ExtractiveWriter(WORDING).write("something to do yoga on", [hit], None)
    assert answer.grounded and answer.kind == "product"
    assert "- color blue: $20.50 (in stock)" in answer.text
    assert "- color pink: $22.00 (out of stock)" in answer.text
    assert answer.citations[0].passage_id == "product-x"
