"""The Chinese demo store's NLU data (bot/projects/demo-store-zh): Clerk's loader reads it,
it has the English demo store's intents and entities (the same rules, stories and actions
serve both), its synonyms name real catalog products and options, and its held-out test
set (benchmarks/zh_nlu_eval.py) shares no message with the training data."""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any

import yaml

from bot.app import catalog_products
from bot.lang import han_runs
from bot.nlu.data import NLUData, load_nlu_yaml

ROOT = Path(__file__).resolve().parent.parent
ZH = ROOT / "bot" / "projects" / "demo-store-zh"
EN_DATA = ROOT / "training_data"
MIN_TRAIN_PER_INTENT = 20
MIN_TEST_PER_INTENT = 8


@cache
def train() -> NLUData:
    return load_nlu_yaml(ZH / "data" / "nlu.yml")


@cache
def held_out() -> NLUData:
    return load_nlu_yaml(ZH / "tests" / "nlu_test.yml")


@cache
def english() -> NLUData:
    return load_nlu_yaml(EN_DATA / "nlu.yml")


@cache
def products() -> tuple[dict[str, Any], ...]:
    return tuple(catalog_products(ROOT / "knowledge"))


def product_names() -> set[str]:
    return {str(p["name"]) for p in products()}


def option_values() -> set[str]:
    return {
        str(value)
        for p in products()
        for variant in p["variants"].values()
        for value in variant["options"].values()
    }


def reason_values() -> set[str]:
    """The cancel reasons the English data names (its synonyms' values that are neither a
    product nor an option)."""
    return set(english().synonyms.values()) - product_names() - option_values()


def canonical(value: str) -> str:
    """An annotated value as the synonyms resolve it."""
    return train().synonyms.get(value.lower(), value)


def normalised(text: str) -> str:
    """For comparing messages: width folded, lower case, no spaces or punctuation."""
    folded = unicodedata.normalize("NFKC", text).lower()
    return "".join(ch for ch in folded if ch.isalnum())


def test_both_files_load_as_rasa_nlu_data_of_useful_size() -> None:
    counts, test_counts = train().intent_counts(), held_out().intent_counts()
    assert len(train().examples) >= 500
    assert min(counts.values()) >= MIN_TRAIN_PER_INTENT, counts
    assert len(held_out().examples) >= 200
    assert min(test_counts.values()) >= MIN_TEST_PER_INTENT, test_counts
    # Chinese data: most messages have Chinese characters in them.
    chinese = [e for e in train().examples if han_runs(e.text)]
    assert len(chinese) > 0.8 * len(train().examples)


def test_the_intents_are_the_english_stores() -> None:
    assert train().intents == english().intents
    assert held_out().intents == english().intents


def test_annotated_entities_are_the_english_domains() -> None:
    domain = yaml.safe_load((EN_DATA / "domain.yml").read_text(encoding="utf-8"))
    declared = set(domain["entities"])
    for data in (train(), held_out()):
        used = {a.entity for e in data.examples for a in e.entities}
        assert used <= declared, used - declared
    assert {"order_id", "product", "option", "reason", "email"} <= {
        a.entity for e in train().examples for a in e.entities
    }


def test_synonyms_name_catalog_products_options_and_known_reasons() -> None:
    known = product_names() | option_values() | reason_values()
    unknown = {s: v for s, v in train().synonyms.items() if v not in known}
    assert not unknown
    assert reason_values() <= set(train().synonyms.values())


def test_every_catalog_product_has_a_chinese_name() -> None:
    named = {v for s, v in train().synonyms.items() if han_runs(s)}
    assert product_names() - named == set()
    assert set(train().lookups["product"]) == product_names()


def test_annotated_values_resolve_to_the_catalog() -> None:
    allowed = {
        "product": product_names(),
        "option": option_values(),
        "reason": reason_values(),
    }
    for data in (train(), held_out()):
        for example in data.examples:
            for a in example.entities:
                if a.entity in allowed:
                    assert canonical(a.value) in allowed[a.entity], (example.text, a.value)


def test_no_synonym_is_a_prefix_of_another_meaning() -> None:
    """A surface that begins a longer one with another value (笔记本 / 笔记本电脑) would be
    read wherever the longer word is; so would one that begins a common word (手机 /
    手机号) outside the synonyms: such words from the data are checked too."""
    synonyms = train().synonyms
    for short, value in synonyms.items():
        for long, other in synonyms.items():
            if long != short and long.startswith(short):
                assert other == value, (short, long)
    words = {"手机号", "电话号码", "邮箱地址", "订单号", "快递单号", "工单号"}
    for short in synonyms:
        assert not any(w != short and w.startswith(short) for w in words), short


def test_stop_and_deny_read_the_chinese_ways_of_giving_up() -> None:
    stop = {e.text for e in train().examples if e.intent == "stop"}
    assert {"算了", "算了吧"} <= stop
    deny = {e.text for e in train().examples if e.intent == "deny"}
    assert {"不", "不是", "不用了，谢谢"} <= deny


def test_order_ids_sit_inside_chinese_text() -> None:
    embedded = [
        e
        for e in train().examples
        for a in e.entities
        if a.entity == "order_id" and han_runs(e.text[: a.start] + e.text[a.end :])
    ]
    assert len(embedded) >= 20
    pattern = re.compile(r"#?W\d{7}")
    assert all(
        pattern.fullmatch(e.text[a.start : a.end])
        for e in embedded
        for a in e.entities
        if a.entity == "order_id"
    )


def test_no_held_out_message_is_trained_on() -> None:
    trained = {normalised(e.text) for e in train().examples}
    leaked = [e.text for e in held_out().examples if normalised(e.text) in trained]
    assert not leaked
