"""The recommender's "similar to" cut-off per sentence encoder, measured on labelled pairs of
the demo catalog's products (README, "Chinese-speaking stores").

    python benchmarks/recommend_cutoffs.py [--out benchmarks/results/recommend_cutoffs.json]

A suggestion's reason says "similar to X" when the cosine of the two products' texts
(``bot.recommend.scoring.product_text``: name and options, embedded as the recommender
embeds them) reaches the encoder's ``min_similar``. ``PAIRS`` labels 32 pairs of the demo
catalog (``knowledge/catalog/products.json``) as alike (the same kind of thing or use: a
kettle and a tea kettle, running shoes and sneakers) or not (perfume and a gaming mouse).
For each encoder (MiniLM, multilingual-e5-small) the script prints and writes the cosines
per label and the cut-off that best separates them (the midpoint of the best-scoring gap;
ties: the widest gap), with its accuracy, and the accuracy of MiniLM's cut-off 0.5 under
each encoder. The cut-offs were chosen on this same small set: no held-out test.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np

from bot.nlu.e5 import E5Encoder
from bot.nlu.encoder import Encoder
from bot.recommend.scoring import MIN_SIMILAR, product_text
from bot.recommend.store import CatalogProduct, CatalogVariant

CATALOG = ROOT / "knowledge" / "catalog" / "products.json"

#: (product, product, alike?)
PAIRS: tuple[tuple[str, str, bool], ...] = (
    ("Electric Kettle", "Tea Kettle", True),
    ("Running Shoes", "Sneakers", True),
    ("Hiking Boots", "Running Shoes", True),
    ("Smart Watch", "Wristwatch", True),
    ("Coffee Maker", "Espresso Machine", True),
    ("Action Camera", "Digital Camera", True),
    ("Tablet", "E-Reader", True),
    ("Laptop", "Tablet", True),
    ("Headphones", "Wireless Earbuds", True),
    ("Bluetooth Speaker", "Headphones", True),
    ("Gaming Mouse", "Mechanical Keyboard", True),
    ("Bicycle", "Cycling Helmet", True),
    ("Smartphone", "Tablet", True),
    ("Vacuum Cleaner", "Air Purifier", True),
    ("Backpack", "Luggage Set", True),
    ("Fleece Jacket", "T-Shirt", True),
    ("Indoor Security Camera", "Action Camera", True),
    ("Dumbbell Set", "Yoga Mat", True),
    ("Perfume", "Gaming Mouse", False),
    ("Grill", "E-Reader", False),
    ("Garden Hose", "Headphones", False),
    ("Pet Bed", "Laptop", False),
    ("Jigsaw Puzzle", "Electric Toothbrush", False),
    ("Makeup Kit", "Bicycle", False),
    ("Wall Clock", "Yoga Mat", False),
    ("Patio Umbrella", "Mechanical Keyboard", False),
    ("Water Bottle", "Desk Lamp", False),
    ("Notebook", "Vacuum Cleaner", False),
    ("Sunglasses", "Coffee Maker", False),
    ("Skateboard", "Perfume", False),
    ("Tea Kettle", "Cycling Helmet", False),
    ("Luggage Set", "Smart Thermostat", False),
)


def catalog_texts() -> dict[str, str]:
    """Product name -> ``product_text``, as the recommender's content index reads it."""
    out = {}
    for p in json.loads(CATALOG.read_text()).values():
        variants = tuple(
            CatalogVariant(v["item_id"], p["product_id"], v["options"], v["price"], v["available"])
            for v in p["variants"].values()
        )
        product = CatalogProduct(p["product_id"], p["name"], variants)
        out[p["name"]] = product_text(product)
    return out


def best_cutoff(alike: list[float], unlike: list[float]) -> tuple[float, float]:
    """(cut-off, accuracy): the midpoint between two neighbouring cosines that classifies
    the most pairs right (``cosine >= cut-off`` is alike); ties: the widest gap."""
    points = sorted(alike + unlike)
    best = (-1.0, -1.0, 0.0)  # accuracy, gap, cut-off
    for lo, hi in itertools.pairwise(points):
        cut = (lo + hi) / 2
        right = sum(c >= cut for c in alike) + sum(c < cut for c in unlike)
        acc = right / len(points)
        if (acc, hi - lo) > best[:2]:
            best = (acc, hi - lo, cut)
    return round(best[2], 3), best[0]


def measure(name: str, embed: Any, texts: dict[str, str]) -> dict[str, Any]:
    names = sorted({n for a, b, _ in PAIRS for n in (a, b)})
    vectors = dict(zip(names, np.asarray(embed([texts[n] for n in names])), strict=True))
    cosines = [(a, b, label, float(vectors[a] @ vectors[b])) for a, b, label in PAIRS]
    alike = [c for *_, label, c in cosines if label]
    unlike = [c for *_, label, c in cosines if not label]
    cut, acc = best_cutoff(alike, unlike)
    at_minilm = (sum(c >= MIN_SIMILAR for c in alike) + sum(c < MIN_SIMILAR for c in unlike)) / (
        len(alike) + len(unlike)
    )

    def spread(values: list[float]) -> dict[str, float]:
        return {
            "min": round(min(values), 3),
            "median": round(statistics.median(values), 3),
            "max": round(max(values), 3),
        }

    return {
        "encoder": name,
        "alike": spread(alike),
        "unlike": spread(unlike),
        "best_cutoff": cut,
        "accuracy_at_best": round(acc, 3),
        "accuracy_at_0.5": round(at_minilm, 3),
        "unlike_at_or_above_0.5": sum(c >= MIN_SIMILAR for c in unlike),
        "pairs": [
            {"a": a, "b": b, "alike": label, "cosine": round(c, 3)} for a, b, label, c in cosines
        ],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--out", type=Path, default=ROOT / "benchmarks/results/recommend_cutoffs.json"
    )
    args = parser.parse_args()
    texts = catalog_texts()
    results = [
        measure("all-MiniLM-L6-v2", Encoder().encode, texts),
        measure("multilingual-e5-small", E5Encoder().encode, texts),
    ]
    for r in results:
        print(
            f"{r['encoder']}: alike {r['alike']}, unlike {r['unlike']}; best cut-off "
            f"{r['best_cutoff']} (accuracy {r['accuracy_at_best']}); at 0.5: accuracy "
            f"{r['accuracy_at_0.5']}, {r['unlike_at_or_above_0.5']} unlike pairs 'similar'"
        )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"pairs": len(PAIRS), "results": results}, indent=2) + "\n")


if __name__ == "__main__":
    main()
