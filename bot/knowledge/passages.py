"""Passages: the units the knowledge base stores, indexes, retrieves and cites.

``build_passages(knowledge_dir)`` reads a store's knowledge folder:

    knowledge/
      catalog/                one ``product`` passage per product, read by
                              ``bot.knowledge.imports.read_catalog`` (products.json,
                              Shopify/WooCommerce CSV, declared files)
      policies/**/*.md        ``policy`` passages, one per heading section
      faq.md, faq/**/*.md     ``faq`` passages, one per ``## Question?`` heading

Only the catalog's products are read from ``catalog/``: customers and orders are private data and
never become passages. Every passage has a stable id (a hash of its source file and its
anchor: product id, heading path or question), so editing a passage keeps its id, and a
content hash over everything that gets indexed, so ingestion re-embeds only what changed.
Unreadable files raise ``bot.errors.DataError``.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.errors import DataError
from bot.knowledge.audience import addresses_agents, for_shoppers, speaks_to_agents
from bot.knowledge.catalog import CatalogProduct, format_money, format_price
from bot.knowledge.imports import Catalog, read_catalog
from bot.knowledge.money import money_range
from bot.knowledge.text import slug, strip_markdown

KINDS = ("product", "policy", "faq")
PRODUCTS_FILE = Path("catalog") / "products.json"
# Sections longer than this are split at paragraph boundaries: the dense encoder reads
# only the first 256 word pieces of a passage.
MAX_SECTION_CHARS = 900


@dataclass(frozen=True)
class Passage:
    id: str
    source: str  # path inside the knowledge folder, POSIX style
    kind: str  # product | policy | faq
    title: str
    text: str
    meta: dict[str, Any] = field(default_factory=dict)
    content_hash: str = ""

    @property
    def index_text(self) -> str:
        """What the lexical and dense indexes see: the title carries the context."""
        return f"{self.title}\n{self.text}"


def passage_id(kind: str, source: str, anchor: str) -> str:
    digest = hashlib.sha256(f"{source}#{anchor}".encode()).hexdigest()[:24]
    return f"{kind}-{digest}"


def _make(
    kind: str, source: str, anchor: str, title: str, text: str, meta: dict[str, Any]
) -> Passage:
    body = json.dumps(
        {"kind": kind, "title": title, "text": text, "meta": meta},
        sort_keys=True,
        ensure_ascii=False,
        default=str,
    )
    return Passage(
        id=passage_id(kind, source, anchor),
        source=source,
        kind=kind,
        title=title,
        text=text,
        meta=meta,
        content_hash=hashlib.sha256(body.encode()).hexdigest(),
    )


# ------------------------------------------------------------------------------ products


def product_text(product: CatalogProduct) -> str:
    """The product written out as readable facts (every variant, price and availability),
    prices in the product's currency."""
    variants = product.variants
    in_stock = [v for v in variants if v.available]
    lines = [f"{product.name} (product id {product.product_id})."]
    if product.description:
        lines.append(product.description)
    options = "; ".join(f"{k}: {', '.join(vals)}" for k, vals in product.option_values().items())
    if options:
        lines.append(f"Options: {options}.")
    if variants:
        price_text = money_range((v.price for v in variants), product.currency)
        lines.append(f"{len(variants)} variants, {len(in_stock)} in stock, priced {price_text}.")
    for v in variants:
        stock = "in stock" if v.available else "out of stock"
        price = format_money(v.price, product.currency)
        lines.append(f"- {v.describe()}: {price}, {stock} (item {v.item_id})")
    return "\n".join(lines)


def product_passages(products: Iterable[CatalogProduct]) -> list[Passage]:
    """One passage per product, anchored at its catalog file (``CatalogProduct.source``)."""
    out = []
    for p in products:
        prices = [float(format_price(v.price)) for v in p.variants]
        meta = {
            "product_id": p.product_id,
            "product_type": p.name,
            "variants": [v.to_meta() for v in p.variants],
            "options": p.option_values(),
            "min_price": min(prices) if prices else None,
            "max_price": max(prices) if prices else None,
            "in_stock": any(v.available for v in p.variants),
            "currency": p.currency,
        }
        out.append(_make("product", p.source, p.product_id, p.name, product_text(p), meta))
    return out


# ------------------------------------------------------------------------------ markdown

_HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$")
_FENCE = re.compile(r"^\s*(```|~~~)")


@dataclass(frozen=True)
class Section:
    path: tuple[str, ...]  # heading texts from the top level down to this section
    body: str


def markdown_sections(text: str, *, top_title: str) -> list[Section]:
    """Split markdown at its headings; text before the first heading is titled ``top_title``.
    Headings inside fenced code blocks are text."""
    sections: list[Section] = []
    stack: list[tuple[int, str]] = []
    body: list[str] = []
    in_fence = False

    def flush() -> None:
        content = "\n".join(body).strip()
        path = tuple(t for _, t in stack) or (top_title,)
        sections.append(Section(path, content))
        body.clear()

    for line in text.splitlines():
        if _FENCE.match(line):
            in_fence = not in_fence
        m = None if in_fence else _HEADING.match(line)
        if m is None:
            body.append(line)
            continue
        flush()
        level = len(m.group(1))
        while stack and stack[-1][0] >= level:
            stack.pop()
        stack.append((level, strip_markdown(m.group(2)).strip()))
    flush()
    return sections


def _paragraph_chunks(body: str, limit: int) -> list[str]:
    paragraphs = [p.strip() for p in re.split(r"\n\s*\n", body) if p.strip()]
    chunks: list[str] = []
    current: list[str] = []
    for para in paragraphs:
        if current and len("\n\n".join([*current, para])) > limit:
            chunks.append("\n\n".join(current))
            current = []
        current.append(para)
    if current:
        chunks.append("\n\n".join(current))
    return chunks


def policy_passages(markdown: str, source: str) -> list[Passage]:
    """One passage per heading section (long sections in paragraph-bounded parts), each
    titled with its heading path, e.g. ``Retail agent policy > Cancel pending order``.
    A document written for the store's agents is stored as rewritten for shoppers
    (``bot.knowledge.audience``), its own words in ``meta["original"]``; a part left
    empty by the rewrite (only agent instructions) is no passage."""
    out = []
    top = Path(source).stem.replace("-", " ").replace("_", " ").capitalize()
    rewrite = speaks_to_agents(markdown)
    agent_reader = addresses_agents(markdown)
    for section in markdown_sections(markdown, top_title=top):
        body = strip_markdown(section.body)
        if not body:
            continue
        title = " > ".join(section.path)
        chunks = _paragraph_chunks(body, MAX_SECTION_CHARS)
        for n, chunk in enumerate(chunks, start=1):
            anchor = "/".join(slug(h) for h in section.path) + (f"#{n}" if n > 1 else "")
            meta: dict[str, Any] = {
                "heading_path": list(section.path),
                "part": n,
                "parts": len(chunks),
            }
            text = chunk
            if rewrite:
                text = for_shoppers(chunk, agent_reader=agent_reader)
                meta["original"] = chunk
            if text:
                out.append(_make("policy", source, anchor, title, text, meta))
    return out


_QUESTION_MARKS = ("?", "？")


def faq_passages(markdown: str, source: str) -> list[Passage]:
    """One passage per question heading (a heading ending in ``?`` or ``？``; when a file
    has none, every level-2 heading); its answer is the text up to the next heading. Other
    headings are categories, kept in ``meta["category"]``."""
    sections = markdown_sections(markdown, top_title="")
    has_questions = any(s.path and s.path[-1].endswith(_QUESTION_MARKS) for s in sections)
    out: list[Passage] = []
    used: set[str] = set()
    for section in sections:
        if not section.path or not section.path[-1]:
            continue
        question = section.path[-1]
        is_question = (
            question.endswith(_QUESTION_MARKS) if has_questions else len(section.path) >= 2
        )
        answer = strip_markdown(section.body)
        if not is_question or not answer:
            continue
        anchor = slug(question)
        n = 2
        while anchor in used:
            anchor = f"{slug(question)}-{n}"
            n += 1
        used.add(anchor)
        meta = {"question": question, "category": " > ".join(section.path[:-1])}
        out.append(_make("faq", source, anchor, question, answer, meta))
    return out


# ------------------------------------------------------------------------------- folder


def _read(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from exc


def knowledge_files(knowledge_dir: Path) -> dict[str, list[Path]]:
    """The policy and FAQ files ``build_passages`` reads, by kind, in a stable order (the
    catalog's files are ``read_catalog``'s)."""
    faq = [knowledge_dir / "faq.md"] if (knowledge_dir / "faq.md").is_file() else []
    faq += sorted((knowledge_dir / "faq").rglob("*.md")) if (knowledge_dir / "faq").is_dir() else []
    policies_dir = knowledge_dir / "policies"
    return {
        "policy": sorted(policies_dir.rglob("*.md")) if policies_dir.is_dir() else [],
        "faq": faq,
    }


def build_passages(knowledge_dir: Path, catalog: Catalog | None = None) -> list[Passage]:
    """All passages of a knowledge folder, products first; ``DataError`` when the folder
    is missing or holds nothing to index. ``catalog``: the folder's catalog already read
    (with the store's settings); default: read here with the default settings."""
    knowledge_dir = Path(knowledge_dir)
    if not knowledge_dir.is_dir():
        raise DataError(f"knowledge folder {knowledge_dir} does not exist")
    files = knowledge_files(knowledge_dir)
    if catalog is None:
        catalog = read_catalog(knowledge_dir)
    out: list[Passage] = product_passages(catalog.products)
    for path in files["policy"]:
        out += policy_passages(_read(path), path.relative_to(knowledge_dir).as_posix())
    for path in files["faq"]:
        out += faq_passages(_read(path), path.relative_to(knowledge_dir).as_posix())
    if not out:
        raise DataError(f"knowledge folder {knowledge_dir} holds no products, policies or FAQ")
    ids = [p.id for p in out]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"duplicate passage ids in {knowledge_dir}: {dupes}")
    return out
