"""How good are Clerk's recommendations? Leave-last-order-out on the demo store's orders.

Data: ``/work/shared/data/retail`` (or ``--data DIR``): ``products.json``, ``orders.json``,
``users.json`` (tau-bench's synthetic retail store: 50 products, 500 users, 1,000 orders).

Protocol:

- **"Last" order.** Orders carry no dates, so a user's last order is the last of their
  ``orders`` list in ``users.json`` (the order the store recorded them in; order ids are
  random and say nothing of time).
- **Test split.** For every user with at least two orders, the last order is held out;
  co-purchase and popularity are counted ONLY from the orders nobody holds out, and the
  user's history is their other orders. The held-out order's products are the targets;
  a held-out order that was cancelled has none (the user is left out, counted). Cancelled
  orders count nowhere, as in the engine (``NOT_OWNING_STATUSES``).
- **"Not already owned".** As in the engine, products the user already ordered (history
  orders not cancelled) are never recommended; a held-out product the user already owned
  (a re-purchase) is therefore not a target, and a user whose held-out order holds only
  re-purchases is left out (their count is reported). Stock is not filtered: the data
  has no stock history.
- **Methods**, all through ``bot.recommend.scoring.score_products`` (the engine's own
  ranking) with anchors = the user's history products, most recent first: popularity;
  co-purchase (ties by popularity); content similarity (all-MiniLM-L6-v2 over
  ``product_text``; ties by popularity); the blend. For scale, a seeded random order
  (chance; its weights are reported as all zero).
- **Blend weights** are chosen on a *validation* split, never on the held-out orders: for
  users with at least three orders the second-to-last order is held out, counts come from
  the orders neither split holds out, and a grid of weights is scored by NDCG@10 there.
- **Metrics**: HR@10 (a target in the top 10) and NDCG@10 (binary relevance, ideal DCG
  over min(10, targets)), per user, averaged. 95% confidence intervals: percentile
  bootstrap over users (``--resamples``, default 2000, seeded), and a paired bootstrap of
  blend − popularity on the same resamples.

Usage: ``python benchmarks/recs_eval.py [--data DIR] [--resamples 2000] [--seed 0]``.
Results: ``benchmarks/results/recs_eval.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.recommend.scoring import ContentIndex, Weights, score_products
from bot.recommend.store import (
    NOT_OWNING_STATUSES,
    Catalog,
    CatalogProduct,
    CatalogVariant,
    Purchases,
)

K = 10
DEFAULT_DATA = Path("/work/shared/data/retail")
GRID_CO = (0.0, 0.25, 0.5, 1.0, 2.0, 4.0)
GRID_CONTENT = (0.0, 0.1, 0.25, 0.5, 1.0)
GRID_POP = (0.0, 0.5, 1.0)


@dataclass(frozen=True)
class Case:
    """One user's held-out order: their history (products, most recent first) and the
    products to find."""

    user: str
    history: tuple[str, ...]
    targets: frozenset[str]


def load(data: Path) -> tuple[Catalog, dict[str, Any], dict[str, Any]]:
    products = json.loads((data / "products.json").read_text())
    orders = json.loads((data / "orders.json").read_text())
    users = json.loads((data / "users.json").read_text())
    catalog = Catalog(
        tuple(
            CatalogProduct(
                p["product_id"],
                p["name"],
                tuple(
                    CatalogVariant(
                        v["item_id"],
                        p["product_id"],
                        v["options"],
                        Decimal(str(v["price"])),
                        bool(v["available"]),
                    )
                    for v in p["variants"].values()
                ),
            )
            for p in sorted(products.values(), key=lambda p: p["product_id"])
        )
    )
    return catalog, orders, users


def basket(order: dict[str, Any]) -> frozenset[str]:
    return frozenset(i["product_id"] for i in order["items"])


def split(
    orders: dict[str, Any], users: dict[str, Any], *, offset: int
) -> tuple[list[Case], Purchases, dict[str, int]]:
    """Hold out each user's order ``offset`` from the end (1: the test split's last order;
    2: the validation split's second-to-last, with the test's held-out orders also out of
    the counts). Cases, counts from the rest, and what was left out."""
    held: set[str] = set()
    cases: list[Case] = []
    skipped = {"too_few_orders": 0, "cancelled_target": 0, "only_repurchases": 0}
    for uid, user in users.items():
        ids = list(user["orders"])
        if offset > 1 and len(ids) >= 2:  # the test split's held-out order: never counted
            held.add(ids[-1])
        if len(ids) < offset + 1:
            skipped["too_few_orders"] += 1
            continue
        target_id = ids[-offset]
        held.add(target_id)
        if orders[target_id]["status"] in NOT_OWNING_STATUSES:  # never bought: no target
            skipped["cancelled_target"] += 1
            continue
        history: list[str] = []
        for oid in reversed(ids[: len(ids) - offset]):  # most recent first
            if orders[oid]["status"] in NOT_OWNING_STATUSES:
                continue
            for pid in sorted(basket(orders[oid])):
                if pid not in history:
                    history.append(pid)
        targets = basket(orders[target_id]) - set(history)
        if not targets:
            skipped["only_repurchases"] += 1
            continue
        cases.append(Case(uid, tuple(history), frozenset(targets)))
    purchases = Purchases.from_baskets(  # cancelled orders count nowhere, as in the engine
        basket(o)
        for oid, o in orders.items()
        if oid not in held and o["status"] not in NOT_OWNING_STATUSES
    )
    return cases, purchases, skipped


def metrics(ranked: Sequence[str], targets: frozenset[str]) -> tuple[float, float]:
    top = list(ranked[:K])
    hits = [1.0 if p in targets else 0.0 for p in top]
    dcg = sum(h / np.log2(r + 2) for r, h in enumerate(hits))
    ideal = sum(1 / np.log2(r + 2) for r in range(min(K, len(targets))))
    return float(any(hits)), float(dcg / ideal)


def evaluate(
    cases: Sequence[Case],
    catalog: Catalog,
    purchases: Purchases,
    index: ContentIndex | None,
    weights: Weights,
) -> np.ndarray:
    """Per user (HR@10, NDCG@10) of the engine's ranking with ``weights``."""
    all_ids = [p.product_id for p in catalog.products]
    out = np.zeros((len(cases), 2))
    for i, case in enumerate(cases):
        owned = set(case.history)
        candidates = [p for p in all_ids if p not in owned]
        similar = index.similar(case.history) if index is not None and weights.content else None
        ranked = score_products(candidates, case.history, purchases, similar, weights)
        out[i] = metrics([s.product_id for s in ranked], case.targets)
    return out


def evaluate_random(cases: Sequence[Case], catalog: Catalog, seed: int) -> np.ndarray:
    """Per user (HR@10, NDCG@10) of a random order of the candidates (seeded): chance."""
    rng = np.random.default_rng(seed)
    all_ids = [p.product_id for p in catalog.products]
    out = np.zeros((len(cases), 2))
    for i, case in enumerate(cases):
        candidates = [p for p in all_ids if p not in set(case.history)]
        out[i] = metrics([candidates[j] for j in rng.permutation(len(candidates))], case.targets)
    return out


def bootstrap(
    per_user: dict[str, np.ndarray], resamples: int, seed: int
) -> tuple[dict[str, dict[str, list[float]]], np.ndarray]:
    """95% percentile intervals of each method's mean (HR, NDCG); the resampled indices."""
    n = len(next(iter(per_user.values())))
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(resamples, n))
    out = {}
    for name, values in per_user.items():
        means = values[idx].mean(axis=1)  # (resamples, 2)
        out[name] = {
            metric: [
                float(np.percentile(means[:, j], 2.5)),
                float(np.percentile(means[:, j], 97.5)),
            ]
            for j, metric in enumerate(("hr", "ndcg"))
        }
    return out, idx


def _paired(diff: np.ndarray, idx: np.ndarray) -> dict[str, dict[str, Any]]:
    """Mean per-user difference (HR, NDCG) and its paired bootstrap 95% interval."""
    means = diff[idx].mean(axis=1)
    return {
        metric: {
            "mean": float(diff[:, j].mean()),
            "ci95": [
                float(np.percentile(means[:, j], 2.5)),
                float(np.percentile(means[:, j], 97.5)),
            ],
        }
        for j, metric in enumerate(("hr", "ndcg"))
    }


def tune(
    cases: Sequence[Case],
    catalog: Catalog,
    purchases: Purchases,
    index: ContentIndex | None,
    progress: Callable[[str], None],
) -> tuple[Weights, list[dict[str, Any]]]:
    """The grid's best weights by mean NDCG@10 on the validation cases (ties: HR@10, then
    the earlier grid point, which has smaller weights)."""
    grid = [
        Weights(co, ct, pop)
        for co, ct, pop in itertools.product(GRID_CO, GRID_CONTENT if index else (0.0,), GRID_POP)
        if co or ct or pop
    ]
    trials = []
    for n, w in enumerate(grid, 1):
        scores = evaluate(cases, catalog, purchases, index, w).mean(axis=0)
        trials.append({"weights": asdict(w), "hr": float(scores[0]), "ndcg": float(scores[1])})
        if n % 10 == 0 or n == len(grid):
            progress(f"  validation grid {n}/{len(grid)}")
    best = max(range(len(trials)), key=lambda i: (trials[i]["ndcg"], trials[i]["hr"], -i))
    return Weights(**trials[best]["weights"]), trials


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA)
    ap.add_argument("--resamples", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-content", action="store_true", help="skip the encoder")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "recs_eval.json")
    args = ap.parse_args(argv)
    started = time.time()

    def progress(msg: str) -> None:
        print(f"[{time.time() - started:6.1f}s] {msg}", flush=True)

    catalog, orders, users = load(args.data)
    progress(f"loaded {len(catalog.products)} products, {len(orders)} orders, {len(users)} users")
    index = None
    if not args.no_content:
        from bot.nlu.encoder import Encoder

        progress("embedding product texts (all-MiniLM-L6-v2, fp32)")
        index = ContentIndex.build(catalog, Encoder().encode)
    test_cases, test_counts, test_skipped = split(orders, users, offset=1)
    val_cases, val_counts, val_skipped = split(orders, users, offset=2)
    progress(f"test: {len(test_cases)} users ({test_skipped}); validation: {len(val_cases)} users")
    progress("tuning the blend on the validation split (second-to-last orders)")
    best, trials = tune(val_cases, catalog, val_counts, index, progress)
    progress(f"chosen weights: {asdict(best)}")
    methods = {
        "popularity": Weights(0.0, 0.0, 1.0),
        "co_purchase": Weights(1.0, 0.0, 0.0),
        "content": Weights(0.0, 1.0, 0.0),
        "blend": best,
        "engine_default": Weights(),
    }
    if index is None:
        methods.pop("content")
    per_user = {}
    for name, w in methods.items():
        progress(f"test split: {name}")
        per_user[name] = evaluate(test_cases, catalog, test_counts, index, w)
    progress("test split: random order (chance)")
    per_user["random"] = evaluate_random(test_cases, catalog, args.seed)
    methods["random"] = Weights(0.0, 0.0, 0.0)
    progress(f"bootstrap: {args.resamples} resamples of {len(test_cases)} users, seed {args.seed}")
    cis, idx = bootstrap(per_user, args.resamples, args.seed)
    paired = {
        f"{name}_minus_popularity": _paired(per_user[name] - per_user["popularity"], idx)
        for name in ("blend", "engine_default")
    }
    rows = {
        name: {
            "weights": asdict(methods[name]),
            "hr@10": float(v[:, 0].mean()),
            "hr@10_ci95": cis[name]["hr"],
            "ndcg@10": float(v[:, 1].mean()),
            "ndcg@10_ci95": cis[name]["ndcg"],
        }
        for name, v in per_user.items()
    }
    print()
    print(f"{'method':<14} {'HR@10':>8} {'95% CI':>17} {'NDCG@10':>9} {'95% CI':>17}")
    for name, r in rows.items():
        hr, nd = r["hr@10_ci95"], r["ndcg@10_ci95"]
        print(
            f"{name:<14} {r['hr@10']:>8.3f}   [{hr[0]:.3f}, {hr[1]:.3f}] "
            f"{r['ndcg@10']:>9.3f}   [{nd[0]:.3f}, {nd[1]:.3f}]"
        )
    for label, by_metric in paired.items():
        for metric, d in by_metric.items():
            print(
                f"{label.replace('_minus_', ' - ')} {metric.upper()}@10: {d['mean']:+.4f} "
                f"(paired 95% CI [{d['ci95'][0]:+.4f}, {d['ci95'][1]:+.4f}])"
            )
    default_val = evaluate(val_cases, catalog, val_counts, index, Weights()).mean(axis=0)
    print(
        f"validation NDCG@10: chosen {max(t['ndcg'] for t in trials):.4f}, "
        f"engine default {default_val[1]:.4f}"
    )
    result = {
        "protocol": {
            "last_order": "the last of the user's `orders` list in users.json (no dates)",
            "held_out": "each user with >= 2 orders: last order; counts from the other orders",
            "owned_filter": "history products (non-cancelled orders) never recommended; "
            "re-purchased held-out products are not targets",
            "tuning": "grid on the validation split (second-to-last order of users with "
            ">= 3 orders; counts without any user's last two orders), by NDCG@10",
            "k": K,
            "resamples": args.resamples,
            "seed": args.seed,
        },
        "users": {
            "test": len(test_cases),
            "test_skipped": test_skipped,
            "validation": len(val_cases),
            "validation_skipped": val_skipped,
        },
        "methods": rows,
        **paired,
        "validation_engine_default": {"hr": float(default_val[0]), "ndcg": float(default_val[1])},
        "validation_trials": trials,
        "seconds": round(time.time() - started, 1),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    progress(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
