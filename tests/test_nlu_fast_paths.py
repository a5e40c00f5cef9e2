"""The NLU's hand-written fast paths compute what the libraries they replace compute.

Serving computes TF-IDF (``bot.nlu.features.FastTfidf``), the classifier's forward pass and
softmax (``bot.nlu.model.FastHead``, ``bot.nlu.heads.MLPHead``) with numpy instead of
scikit-learn or torch, and ``bot.nlu.heads.learning_rate`` re-implements torch's schedules.
Each is held here to the original on seeded random inputs (numpy ``default_rng`` seeds and
hypothesis with ``derandomize=True``), up to float32 tolerance. A fake sentence encoder
(seeded random unit vectors) stands in for MiniLM: the fast paths do not depend on what the
embeddings mean.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest
import scipy.special
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import sparse
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from bot.nlu.config import OUT_OF_SCOPE_INTENT, NLUConfig
from bot.nlu.data import NLUData, TrainingExample
from bot.nlu.entities import RegexEntityExtractor
from bot.nlu.features import FastTfidf, Featurizer, mask_text
from bot.nlu.fit import calibrate_threshold
from bot.nlu.heads import SCHEDULES, MLPHead, learning_rate
from bot.nlu.model import FastHead, NLUModel

ATOL = 1e-5  # float32 fast paths against float64 (or float32) originals
SEEDED = settings(
    derandomize=True,
    deadline=None,
    database=None,
    max_examples=150,
    suppress_health_check=list(HealthCheck),
)

WORDS = [
    "where",
    "is",
    "my",
    "order",
    "cancel",
    "the",
    "refund",
    "please",
    "shoes",
    "café",
    "naïve",
    "größe",
    "日本",
    "取消",
    "commande",
    "où",
    "est",
    "ma",
    "ok",
    "hi",
    "a",
    "x",
]
EXTRA = [
    "W1234567",
    "#w 7654321",
    "bob@example.com",
    "+1 415 555 0100",
    "T-123456",
    "90210",
    "unseenword",
    "zzz",
    "🙂",
    "Ünïcödé",
    "---",
    "  ",
    "\t",
    "12",
    "e-mail",
]


def random_texts(rng: np.random.Generator, n: int) -> list[str]:
    """Texts of known, unseen and odd words (unicode, ids, punctuation), some empty."""
    pool = WORDS + EXTRA
    texts = []
    for _ in range(n):
        k = int(rng.integers(0, 9))
        words = [pool[int(i)] for i in rng.integers(0, len(pool), size=k)]
        sep = " " if rng.random() < 0.8 else rng.choice([",", "  ", "\n", "!"])
        text = str(sep).join(words)
        texts.append(
            text
            if rng.random() < 0.5
            else text.upper()
            if rng.random() < 0.3
            else text.capitalize()
        )
    return texts


CORPUS = random_texts(np.random.default_rng(0), 120) + ["", "where is my order", "cancel it"]
MASKED_CORPUS = [mask_text(t, RegexEntityExtractor()) for t in CORPUS]
any_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(WORDS + EXTRA), max_size=10).map(" ".join),
    st.lists(st.sampled_from(WORDS), max_size=10).map(lambda w: "".join(w)),
)


def dense(fast: FastTfidf, text: str, width: int) -> np.ndarray:
    idx, values = fast(text)
    assert idx.dtype == np.intp and values.dtype == np.float32
    assert len(set(idx.tolist())) == len(idx), "indices are unique"
    row = np.zeros(width, dtype=np.float64)
    row[idx] = values
    return row


def assert_same_transform(vec: TfidfVectorizer, texts: Sequence[str]) -> None:
    fast = FastTfidf(vec)
    width = len(vec.vocabulary_)
    want = vec.transform(list(texts)).toarray()
    for text, expected in zip(texts, want, strict=True):
        np.testing.assert_allclose(
            dense(fast, text, width), expected, atol=ATOL, rtol=0, err_msg=repr(text)
        )


# -- TF-IDF: FastTfidf against TfidfVectorizer.transform ---------------------------------


def clerk_vectorizers(**overrides: object) -> list[TfidfVectorizer]:
    """The vectorisers exactly as Clerk's ``Featurizer`` configures and fits them."""
    config = NLUConfig(featurizers=("tfidf_word", "tfidf_char"), **overrides)  # type: ignore[arg-type]
    feat = Featurizer(config, RegexEntityExtractor()).fit(CORPUS)
    return feat.vectorizers


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {"word_ngram_max": 1},
        {"word_ngram_max": 3, "char_ngram_min": 1, "char_ngram_max": 3},
        {"char_ngram_min": 3, "char_ngram_max": 6},
    ],
    ids=["default", "unigrams", "wide-words-short-chars", "long-chars"],
)
def test_fast_tfidf_equals_sklearn_for_clerks_vectorizers(overrides: dict[str, object]) -> None:
    rng = np.random.default_rng(1)
    texts = MASKED_CORPUS + random_texts(rng, 200) + ["", " ", "日本 取消 🙂"]
    for vec in clerk_vectorizers(**overrides):
        assert vec.sublinear_tf and vec.norm == "l2"
        assert_same_transform(vec, texts)


@given(text=any_text)
@SEEDED
def test_fast_tfidf_equals_sklearn_on_any_text(text: str) -> None:
    for vec in clerk_vectorizers():
        assert_same_transform(vec, [text, mask_text(text, RegexEntityExtractor())])


@pytest.mark.parametrize("sublinear", [True, False])
@pytest.mark.parametrize("norm", ["l2", None])
@pytest.mark.parametrize("analyzer", ["word", "char", "char_wb"])
def test_fast_tfidf_equals_sklearn_for_every_supported_option(
    sublinear: bool, norm: str | None, analyzer: str
) -> None:
    vec = TfidfVectorizer(
        analyzer=analyzer,
        ngram_range=(1, 3),
        sublinear_tf=sublinear,
        norm=norm,
        lowercase=True,
        smooth_idf=not sublinear,
        dtype=np.float32,
    ).fit(CORPUS)
    assert_same_transform(vec, CORPUS[:40] + random_texts(np.random.default_rng(2), 100))


def test_fast_tfidf_refuses_what_it_does_not_compute() -> None:
    for kwargs in ({"norm": "l1"}, {"binary": True}, {"use_idf": False}):
        vec = TfidfVectorizer(**kwargs).fit(["ab bc", "bc cd"])  # type: ignore[arg-type]
        with pytest.raises(ValueError):
            FastTfidf(vec)


def test_fast_tfidf_of_nothing_known_is_empty() -> None:
    fast = FastTfidf(clerk_vectorizers()[0])
    for text in ("", "   ", "qqqqqq vvvvvv", "🙂"):
        idx, values = fast(text)
        assert len(idx) == 0 and len(values) == 0


# -- the classifier's forward pass: FastHead against predict_proba and torch ----------------


def random_blocks(
    rng: np.random.Generator, n: int, emb_dim: int, widths: Sequence[int]
) -> tuple[np.ndarray | None, list[list[tuple[np.ndarray, np.ndarray]]], list[sparse.csr_matrix]]:
    """Raw embeddings (unit rows), and the TF-IDF blocks both as FastTfidf output (shuffled
    indices, some rows empty) and as sparse matrices."""
    emb = None
    if emb_dim:
        emb = rng.normal(size=(n, emb_dim)).astype(np.float32)
        emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    mats = [
        sparse.random(
            n,
            w,
            density=0.2,
            format="csr",
            dtype=np.float32,
            random_state=int(rng.integers(1 << 30)),
        )
        for w in widths
    ]
    rows = []
    for r in range(n):
        blocks = []
        for m in mats:
            lo, hi = m.indptr[r], m.indptr[r + 1]
            order = rng.permutation(hi - lo)
            blocks.append((m.indices[lo:hi][order].astype(np.intp), m.data[lo:hi][order]))
        rows.append(blocks)
    return emb, rows, mats


def feature_matrix(
    emb: np.ndarray | None, weight: float, mats: list[sparse.csr_matrix]
) -> sparse.csr_matrix:
    blocks = ([sparse.csr_matrix(emb * weight)] if emb is not None else []) + mats
    return sparse.hstack(blocks, format="csr", dtype=np.float32)


@pytest.mark.parametrize("classes", [2, 3, 7])
@pytest.mark.parametrize("emb_dim", [0, 16])
@pytest.mark.parametrize("seed", [0, 1])
def test_fast_head_equals_logistic_regression(classes: int, emb_dim: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    widths, weight = [30, 50], 2.0
    emb, _, mats = random_blocks(rng, 200, emb_dim, widths)
    x = feature_matrix(emb, weight, mats)
    y = np.asarray([f"intent_{i}" for i in rng.integers(0, classes, size=200)])
    clf = LogisticRegression(C=10.0, max_iter=3000, random_state=seed).fit(x, y)
    fast = FastHead(clf, sparse_widths=widths, embedding_weight=weight if emb_dim else None)
    assert fast.embedding_dim == emb_dim
    emb, rows, mats = random_blocks(rng, 60, emb_dim, widths)
    got = fast.probabilities(emb, rows)
    want = clf.predict_proba(feature_matrix(emb, weight, mats))
    np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
    assert got.dtype == np.float32 and got.shape == (60, classes)


def torch_net(head: MLPHead) -> object:
    """The torch module ``bot.nlu.heads.train_mlp`` trains, with ``head``'s weights (as
    ``train_mlp`` copies them out), in eval mode."""
    import torch

    features = head.coef_.shape[1]
    first = torch.nn.Linear(features, head.coef_.shape[0])
    layers: list[torch.nn.Module] = [torch.nn.Dropout(0.5), first]
    with torch.no_grad():
        first.weight.copy_(torch.from_numpy(head.coef_))
        first.bias.copy_(torch.from_numpy(head.intercept_))
        if head.w2 is not None and head.b2 is not None:
            second = torch.nn.Linear(head.w2.shape[0], head.w2.shape[1])
            second.weight.copy_(torch.from_numpy(np.ascontiguousarray(head.w2.T)))
            second.bias.copy_(torch.from_numpy(head.b2))
            layers = [first, torch.nn.ReLU(), torch.nn.Dropout(0.5), second]
    return torch.nn.Sequential(*layers).eval()


def random_mlp(
    rng: np.random.Generator, features: int, hidden: int, classes: int, scale: float = 1.0
) -> MLPHead:
    units = hidden or classes
    head = MLPHead(
        classes_=np.asarray([f"c{i}" for i in range(classes)]),
        coef_=(rng.normal(size=(units, features)) * scale).astype(np.float32),
        intercept_=(rng.normal(size=units) * scale).astype(np.float32),
    )
    if hidden:
        head.w2 = (rng.normal(size=(hidden, classes)) * scale).astype(np.float32)
        head.b2 = (rng.normal(size=classes) * scale).astype(np.float32)
    return head


@pytest.mark.parametrize("hidden", [0, 8, 64])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mlp_head_and_fast_head_equal_the_torch_module(hidden: int, seed: int) -> None:
    import torch

    rng = np.random.default_rng(seed)
    widths, weight, emb_dim, classes = [40, 25], 2.0, 12, 5
    head = random_mlp(rng, emb_dim + sum(widths), hidden, classes)
    emb, rows, mats = random_blocks(rng, 50, emb_dim, widths)
    x = feature_matrix(emb, weight, mats)
    with torch.no_grad():
        logits = torch_net(head)(torch.from_numpy(x.toarray()))  # type: ignore[operator]
        want = torch.softmax(logits, dim=1).numpy()
    np.testing.assert_allclose(head.predict_proba(x), want, atol=ATOL, rtol=0)
    np.testing.assert_allclose(head.predict_proba(x.toarray()), want, atol=ATOL, rtol=0)
    assert (head.predict(x) == head.classes_[want.argmax(axis=1)]).all()
    fast = FastHead(head, sparse_widths=widths, embedding_weight=weight)
    np.testing.assert_allclose(fast.probabilities(emb, rows), want, atol=ATOL, rtol=0)


@pytest.mark.parametrize("hidden", [0, 16])
def test_softmax_is_stable_for_extreme_logits(hidden: int) -> None:
    rng = np.random.default_rng(3)
    widths = [20]
    head = random_mlp(rng, 6 + 20, hidden, 4, scale=400.0)  # logits in the thousands
    emb, rows, mats = random_blocks(rng, 30, 6, widths)
    x = feature_matrix(emb, 1.0, mats)
    want = scipy.special.softmax(head.decision_function(x).astype(np.float64), axis=1)
    for got in (
        head.predict_proba(x),
        FastHead(head, sparse_widths=widths, embedding_weight=1.0).probabilities(emb, rows),
    ):
        assert np.isfinite(got).all()
        np.testing.assert_allclose(got, want, atol=ATOL, rtol=0)
        np.testing.assert_allclose(got.sum(axis=1), 1.0, atol=ATOL)


def test_fast_head_refuses_blocks_that_do_not_fit() -> None:
    head = random_mlp(np.random.default_rng(4), 30, 0, 3)
    with pytest.raises(ValueError):
        FastHead(head, sparse_widths=[20, 20], embedding_weight=None)
    with pytest.raises(ValueError):
        FastHead(head, sparse_widths=[30], embedding_weight=2.0)  # no room for an embedding
    fast = FastHead(head, sparse_widths=[10], embedding_weight=2.0)
    with pytest.raises(ValueError):
        fast.probabilities(None, [[(np.zeros(0, np.intp), np.zeros(0, np.float32))]])


# -- the whole serving path: NLUModel.predict_proba against the batch featurizer ----------


class HashEncoder:
    """A stand-in sentence encoder: a seeded random unit vector per text."""

    dim = 12
    model_path = Path("hash-encoder")
    cache_dir = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            v = np.random.default_rng(seed).normal(size=self.dim)
            rows.append(v / np.linalg.norm(v))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


def nlu_data(rng: np.random.Generator, intents: int) -> NLUData:
    examples = []
    for i in range(intents):
        cue = WORDS[i]
        for _ in range(15):
            words = [cue] + [str(rng.choice(WORDS + EXTRA)) for _ in range(int(rng.integers(1, 6)))]
            rng.shuffle(words)
            examples.append(TrainingExample(text=" ".join(words), intent=f"intent_{i}"))
    return NLUData(examples=tuple(examples))


@pytest.mark.parametrize(
    "config",
    [
        NLUConfig(),
        NLUConfig(featurizers=("tfidf_word", "tfidf_char")),
        NLUConfig(featurizers=("minilm", "tfidf_char"), C=1.0),
        NLUConfig(featurizers=("minilm",)),
        NLUConfig(classifier="mlp", mlp_hidden=16, mlp_epochs=5),
        NLUConfig(classifier="mlp", mlp_epochs=5, featurizers=("tfidf_word",)),
    ],
    ids=[
        "logreg-all",
        "logreg-tfidf",
        "logreg-minilm-char",
        "logreg-minilm",
        "mlp-hidden",
        "mlp-linear-word",
    ],
)
@pytest.mark.parametrize("intents", [2, 4])
def test_served_probabilities_equal_the_fitted_classifiers(
    config: NLUConfig, intents: int, tmp_path: Path
) -> None:
    rng = np.random.default_rng(intents)
    encoder = HashEncoder()
    model = NLUModel.train(nlu_data(rng, intents), encoder=encoder, config=config)  # type: ignore[arg-type]
    texts = random_texts(rng, 80) + ["", "W1234567 bob@example.com 90210", "日本 🙂"]
    x = model.featurizer.transform(texts, encoder.encode(texts))
    want = model.classifier.predict_proba(x)
    assert list(model.labels) == [str(c) for c in model.classifier.classes_]
    np.testing.assert_allclose(model.predict_proba(texts), want, atol=ATOL, rtol=0)
    loaded = NLUModel.load(model.save(tmp_path / "nlu"), encoder)  # type: ignore[arg-type]
    np.testing.assert_allclose(loaded.predict_proba(texts), want, atol=ATOL, rtol=0)


# -- learning-rate schedules against torch's schedulers ----------------------------------


@pytest.mark.parametrize("schedule", SCHEDULES)
def test_learning_rate_equals_torch_schedulers_without_warmup(schedule: str) -> None:
    import torch

    lr, total, gamma, step_size = 0.01, 50, 0.9, 7
    param = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([param], lr=lr)
    schedulers = {
        "constant": lambda: torch.optim.lr_scheduler.ConstantLR(opt, factor=1.0),
        "exponential": lambda: torch.optim.lr_scheduler.ExponentialLR(opt, gamma=gamma),
        "step": lambda: torch.optim.lr_scheduler.StepLR(opt, step_size=step_size, gamma=gamma),
        "cosine": lambda: torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total),
    }
    scheduler = schedulers[schedule]()
    for step in range(total):
        ours = learning_rate(
            schedule, step, lr=lr, total_steps=total, gamma=gamma, step_size=step_size
        )
        assert ours == pytest.approx(opt.param_groups[0]["lr"], rel=1e-9, abs=1e-12), step
        opt.step()
        scheduler.step()


# -- threshold calibration: the documented choice --------------------------------------


def macro_f1(gold: Sequence[str], pred: Sequence[str]) -> float:
    """Macro F1 over the labels in gold or pred, 0 for undefined ratios (sklearn's
    ``zero_division=0``), written out as a reference."""
    scores = []
    for label in sorted(set(gold) | set(pred)):
        tp = sum(g == p == label for g, p in zip(gold, pred, strict=True))
        fp = sum(p == label != g for g, p in zip(gold, pred, strict=True))
        fn = sum(g == label != p for g, p in zip(gold, pred, strict=True))
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


@given(seed=st.integers(0, 2**32 - 1), n=st.integers(1, 40), with_oos=st.booleans())
@SEEDED
def test_calibrated_threshold_is_the_documented_choice(seed: int, n: int, with_oos: bool) -> None:
    rng = np.random.default_rng(seed)
    classes = ["a", "b", "c"]
    probs = rng.dirichlet(np.full(len(classes), 0.5), size=n)
    labels = classes + ([OUT_OF_SCOPE_INTENT] if with_oos else [])
    gold = [str(g) for g in rng.choice(labels, size=n)]
    got = calibrate_threshold(probs, gold, classes, quantile=0.1)
    top = probs.max(axis=1)
    predicted = [classes[i] for i in probs.argmax(axis=1)]
    if OUT_OF_SCOPE_INTENT in gold:
        grid = [round(0.01 * i, 2) for i in range(100)]
        f1 = {
            t: macro_f1(
                gold,
                [OUT_OF_SCOPE_INTENT if p < t else c for p, c in zip(top, predicted, strict=True)],
            )
            for t in grid
        }
        best = max(f1.values())
        assert got == min(t for t in grid if f1[t] >= best - 1e-9)
    else:
        correct = [p for p, c, g in zip(top, predicted, gold, strict=True) if c == g]
        assert got == (round(float(np.quantile(correct, 0.1)), 4) if correct else 0.0)
