"""The NLU's TF-IDF features read Chinese: the word block sees words cut by rjieba (not
whole sentences, Chinese having no spaces), the char block the characters' n-grams. On a
small Chinese intent set TF-IDF alone generalises to new phrasings, and the serving path
computes what training computed."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pytest

from bot.nlu import features
from bot.nlu.config import NLUConfig
from bot.nlu.data import NLUData, TrainingExample
from bot.nlu.features import word_text
from bot.nlu.model import NLUModel

TRAIN = {
    "order_status": [
        "我的订单到哪了", "帮我查一下订单状态", "我的快递什么时候到", "订单发货了吗",
        "查物流", "包裹到哪里了", "我买的东西还没到", "订单现在是什么状态", "快递怎么还没送到",
        "能帮我看看订单吗",
    ],
    "cancel_order": [
        "我要取消订单", "帮我把订单取消", "不想要了，取消吧", "怎么取消订单", "订单能取消吗",
        "取消我刚下的单", "我下错单了要取消", "请取消这个订单", "可以撤销订单吗", "取消购买",
    ],
    "refund": [
        "我要退款", "钱什么时候退给我", "退款到账了吗", "申请退款", "退款多久能到",
        "怎么还没收到退款", "我想把钱退回来", "退款流程是什么", "能全额退款吗", "退钱",
    ],
    "price": [
        "这个多少钱", "价格是多少", "羽绒服卖多少钱", "有没有便宜一点的", "这件衣服什么价",
        "多少钱一件", "耳机的价格", "现在打折吗", "最低价是多少", "运动鞋多少钱",
    ],
    "greet": [
        "你好", "您好", "在吗", "哈喽", "嗨", "早上好", "晚上好", "有人吗", "你好呀", "下午好",
    ],
    "human": [
        "转人工", "我要找人工客服", "让真人来回答", "人工服务", "我想和客服说话", "找个真人",
        "机器人听不懂，转人工", "联系客服", "有没有人工", "给我接人工",
    ],
}  # fmt: skip

HELD_OUT = {
    "order_status": ["我的包裹现在到哪里了", "查一下物流状态", "快递还没到"],
    "cancel_order": ["这个订单我不要了，帮我取消", "下单后还能取消吗"],
    "refund": ["退款什么时候到账", "我要申请退钱"],
    "price": ["这双运动鞋什么价格", "耳机多少钱"],
    "greet": ["你好啊", "在不在"],
    "human": ["请帮我转人工客服", "我要跟真人说"],
}


class HashEncoder:
    """Not used by a TF-IDF-only model; NLUModel wants one."""

    dim = 8
    model_path = Path("hash-encoder")
    cache_dir = None

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        rows = []
        for text in texts:
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")
            rows.append(np.random.default_rng(seed).normal(size=self.dim))
        return np.asarray(rows, dtype=np.float32).reshape(len(texts), self.dim)


def train(featurizers: tuple[str, ...]) -> NLUModel:
    data = NLUData(
        examples=tuple(
            TrainingExample(text=t, intent=intent) for intent, ts in TRAIN.items() for t in ts
        )
    )
    config = NLUConfig(featurizers=featurizers, threshold=0.1)
    return NLUModel.train(data, encoder=HashEncoder(), config=config)  # type: ignore[arg-type]


def accuracy(model: NLUModel) -> float:
    texts = [t for ts in HELD_OUT.values() for t in ts]
    gold = [intent for intent, ts in HELD_OUT.items() for _ in ts]
    probs = model.predict_proba(texts)
    predicted = [model.labels[i] for i in probs.argmax(axis=1)]
    return sum(p == g for p, g in zip(predicted, gold, strict=True)) / len(gold)


def test_the_word_block_reads_chinese_words() -> None:
    assert word_text("我想退款") == " 我 想 退款 "
    assert word_text("where is my order") == "where is my order"
    assert word_text("订单 orderid 到哪了") == " 订单  orderid  到 哪 了 "
    model = train(("tfidf_word",))
    assert model.featurizer.word is not None
    vocabulary = model.featurizer.word.vocabulary_
    assert "退款" in vocabulary and "取消 订单" in vocabulary
    assert "我要退款" not in vocabulary  # no longer a whole sentence as one "word"


def test_tfidf_alone_understands_new_chinese_phrasings() -> None:
    assert accuracy(train(("tfidf_word", "tfidf_char"))) >= 0.85


def test_segmenting_helps_the_word_block(monkeypatch: pytest.MonkeyPatch) -> None:
    segmented = accuracy(train(("tfidf_word",)))
    monkeypatch.setattr(features, "word_text", lambda masked: masked)  # as before
    whole_sentences = accuracy(train(("tfidf_word",)))
    assert segmented >= 0.7
    assert segmented > whole_sentences + 0.3


def test_served_chinese_probabilities_equal_the_fitted_classifiers(tmp_path: Path) -> None:
    model = train(("tfidf_word", "tfidf_char"))
    texts = [t for ts in HELD_OUT.values() for t in ts] + [
        "订单#W2611340到哪了",
        "iPhone多少钱",
        "",
    ]
    want = model.classifier.predict_proba(model.featurizer.transform(texts, None))
    np.testing.assert_allclose(model.predict_proba(texts), want, atol=1e-5, rtol=0)
    loaded = NLUModel.load(model.save(tmp_path / "nlu"), HashEncoder())  # type: ignore[arg-type]
    np.testing.assert_allclose(loaded.predict_proba(texts), want, atol=1e-5, rtol=0)
