"""Clerk's NLU: training data loading, entity extractors, the intent model and the encoder.

The model tests train once per module on the demo store's ``training_data/nlu.yml`` with
the session's (torch) encoder, then read like a shopper talking to the store.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import yaml

from bot.errors import ModelNotTrainedError, TrainingDataError
from bot.nlu.config import FALLBACK_INTENT, NLUConfig
from bot.nlu.data import (
    NLUData,
    load_csv,
    load_nlu,
    load_nlu_yaml,
    parse_annotated_text,
    parse_nlu_yaml,
)
from bot.nlu.encoder import Encoder
from bot.nlu.entities import (
    CatalogGazetteer,
    EntityExtractor,
    ReasonExtractor,
    normalise_order_id,
)
from bot.nlu.fit import training_fingerprint
from bot.nlu.model import NLUModel

ROOT = Path(__file__).resolve().parent.parent


def values(entities: list[dict], entity: str) -> list[str]:
    return [e["value"] for e in entities if e["entity"] == entity]


def spans(text: str, entities: list[dict]) -> list[tuple[str, str, str]]:
    return [(e["entity"], e["value"], text[e["start"] : e["end"]]) for e in entities]


@pytest.fixture(scope="module")
def catalog(knowledge_dir: Path) -> list[dict]:
    return list(json.loads((knowledge_dir / "catalog" / "products.json").read_text()).values())


@pytest.fixture(scope="module")
def nlu_data(data_dir: Path) -> NLUData:
    return load_nlu_yaml(data_dir / "nlu.yml")


@pytest.fixture(scope="module")
def extractor(catalog: list[dict], nlu_data: NLUData) -> EntityExtractor:
    return EntityExtractor(
        gazetteer=CatalogGazetteer.from_products(catalog, aliases=nlu_data.synonyms),
        reasons=ReasonExtractor.with_defaults(nlu_data.synonyms),
    )


@pytest.fixture(scope="module")
def model(encoder: Encoder, nlu_data: NLUData, catalog: list[dict], data_dir: Path) -> NLUModel:
    config = NLUConfig.from_file(data_dir / "config.yml")
    return NLUModel.train(nlu_data, encoder=encoder, catalog=catalog, config=config)


# ---------------------------------------------------------------------------------------
# Training data
# ---------------------------------------------------------------------------------------


def test_annotations_are_removed_and_offsets_point_at_the_entity_text() -> None:
    raw = (
        'cancel [#W2611340](order_id), I [changed my mind]{"entity": "reason", '
        '"value": "no longer needed"}; mail [noah.brown7922@example.com](email) '
        'about the [blue](option:blue) [Bluetooth Speaker][{"entity": "product"}, '
        '{"entity": "product", "role": "gift"}]'
    )
    text, entities = parse_annotated_text(raw)
    assert text == (
        "cancel #W2611340, I changed my mind; mail noah.brown7922@example.com "
        "about the blue Bluetooth Speaker"
    )
    found = [(e.entity, e.value, text[e.start : e.end], e.role) for e in entities]
    assert found == [
        ("order_id", "#W2611340", "#W2611340", None),
        ("reason", "no longer needed", "changed my mind", None),
        ("email", "noah.brown7922@example.com", "noah.brown7922@example.com", None),
        ("option", "blue", "blue", None),
        ("product", "Bluetooth Speaker", "Bluetooth Speaker", None),
        ("product", "Bluetooth Speaker", "Bluetooth Speaker", "gift"),
    ]


def test_demo_nlu_file_serves_every_domain_intent(nlu_data: NLUData, data_dir: Path) -> None:
    domain = yaml.safe_load((data_dir / "domain.yml").read_text())
    counts = nlu_data.intent_counts()
    assert set(counts) == set(domain["intents"])
    assert min(counts.values()) >= 25
    entity_types = {e.entity for ex in nlu_data.examples for e in ex.entities}
    assert entity_types <= set(domain["entities"])
    assert {
        "order_id",
        "email",
        "zipcode",
        "ticket_id",
        "product",
        "option",
        "reason",
    } <= entity_types
    for ex in nlu_data.examples:
        assert "[" not in ex.text and "](" not in ex.text, ex
        for ent in ex.entities:
            assert 0 <= ent.start < ent.end <= len(ex.text)
    # Synonyms come both from `synonym:` blocks and from annotations that give a value.
    assert nlu_data.synonyms["by accident"] == "ordered by mistake"
    assert nlu_data.synonyms["bought the wrong one"] == "ordered by mistake"
    assert nlu_data.synonyms["changed my mind"] == "no longer needed"
    assert len(nlu_data.lookups["product"]) == 50
    assert "order_id" in nlu_data.regexes


def test_synonyms_lookups_regexes_and_example_lines() -> None:
    data = parse_nlu_yaml(
        'version: "3.1"\n'
        "nlu:\n"
        "- intent: cancel_order\n"
        "  examples: |\n"
        "    - cancel [#W2611340](order_id)\n"
        "\n"
        '    - [oops]{"entity": "reason", "value": "ordered by mistake"} cancel it\n'
        "- synonym: no longer needed\n"
        "  examples: |\n"
        "    - Don't Need It\n"
        "- lookup: product\n"
        "  examples: |\n"
        "    - Yoga Mat\n"
        "- regex: account\n"
        "  examples: |\n"
        "    - ACC-\\d{4}\n"
        "- intent: greet\n"
        "  examples:\n"
        "  - text: hello there\n"
        "    metadata: {sentiment: neutral}\n",
        source="nlu.yml",
    )
    assert [(e.text, e.intent, e.line) for e in data.examples] == [
        ("cancel #W2611340", "cancel_order", 5),
        ("oops cancel it", "cancel_order", 7),
        ("hello there", "greet", 19),
    ]
    assert data.synonyms == {"oops": "ordered by mistake", "don't need it": "no longer needed"}
    assert data.lookups == {"product": ("Yoga Mat",)}
    assert data.regexes == {"account": (r"ACC-\d{4}",)}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n   - bad: [\n", 5, "malformed YAML"),
        ("nlu:\n- intent: greet\n  examples: |\n    - hi\n    hello\n", 5, "must start with"),
        ("nlu:\n- intent: greet\n", 2, "no `examples:`"),
        ("nlu:\n- examples: |\n    - hi\n", 2, "needs one of intent"),
        ('nlu:\n- intent: greet\n  examples: |\n    - [x]{"value": 1}\n', 4, "names no entity"),
        ("nlu:\n- intent: greet\n  examples: |\n    - [x]{entity: y}\n", 4, "not valid JSON"),
        ("version: '3.1'\n", 1, "no `nlu:` section"),
    ],
)
def test_malformed_nlu_yaml_reports_file_and_line(text: str, line: int, message: str) -> None:
    with pytest.raises(TrainingDataError) as info:
        parse_nlu_yaml(text, source="data/nlu.yml")
    assert info.value.path == "data/nlu.yml"
    assert info.value.line == line
    assert message in str(info.value)


def test_empty_or_missing_files_are_training_data_errors(tmp_path: Path) -> None:
    empty = tmp_path / "nlu.yml"
    empty.write_text("  \n")
    with pytest.raises(TrainingDataError, match="empty"):
        load_nlu_yaml(empty)
    with pytest.raises(TrainingDataError, match="not found"):
        load_nlu_yaml(tmp_path / "missing.yml")


def test_csv_with_label_or_category_column(tmp_path: Path) -> None:
    banking = tmp_path / "train.csv"
    banking.write_text(
        'text,category\nHow do I locate my card?,card_arrival\n"Hi, my card, where?",card_arrival\n'
    )
    data = load_csv(banking)
    assert [(e.text, e.intent, e.line) for e in data.examples] == [
        ("How do I locate my card?", "card_arrival", 2),
        ("Hi, my card, where?", "card_arrival", 3),
    ]
    plain = tmp_path / "plain.csv"
    plain.write_text("label,text\ngreet,hello\n")
    assert load_csv(plain).examples[0].intent == "greet"

    bad = tmp_path / "bad.csv"
    bad.write_text("sentence,label\nhello,greet\n")
    with pytest.raises(TrainingDataError, match="no `text` column") as info:
        load_csv(bad)
    assert info.value.line == 1
    gap = tmp_path / "gap.csv"
    gap.write_text("text,label\nhello,greet\nbye,\n")
    with pytest.raises(TrainingDataError, match="empty label") as info:
        load_csv(gap)
    assert info.value.line == 3


def test_load_nlu_from_a_rasa_data_folder_skips_domain_and_rules(data_dir: Path) -> None:
    data = load_nlu(data_dir)
    assert len(data.examples) == len(load_nlu_yaml(data_dir / "nlu.yml").examples)


# ---------------------------------------------------------------------------------------
# Entity extractors
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("where is #W2611340?", [("order_id", "#W2611340", "#W2611340")]),
        ("order W4817420 please", [("order_id", "#W4817420", "W4817420")]),
        ("it's w 6304490", [("order_id", "#W6304490", "w 6304490")]),
        (
            "order#w7678072 and W-7309535",
            [("order_id", "#W7678072", "#w7678072"), ("order_id", "#W7309535", "W-7309535")],
        ),
        ("John Smith 80279", [("zipcode", "80279", "80279")]),
        ("12 Main St, Springfield, IL 62704-1234.", [("zipcode", "62704", "62704-1234")]),
        (
            "Email: Noah.Brown7922@Example.com.",
            [("email", "noah.brown7922@example.com", "Noah.Brown7922@Example.com")],
        ),
        ("ticket t-004211?", [("ticket_id", "T-004211", "t-004211")]),
        (
            "call (312) 555-0199 or +1 415 555 0123",
            [
                ("phone", "3125550199", "(312) 555-0199"),
                ("phone", "+14155550123", "+1 415 555 0123"),
            ],
        ),
    ],
)
def test_pattern_entities_are_found_and_normalised(text: str, expected: list) -> None:
    assert spans(text, EntityExtractor().extract(text)) == expected


@pytest.mark.parametrize(
    "text",
    [
        "#W2611340",  # the order id's digits are no zip code
        "W 12345678",  # eight digits: not an order id, not a zip
        "it costs $12345",
        "a 20000mAh battery",
        "I waited 10000 minutes",
        "item 9612497925",  # a bare 10-digit item id is not a phone number
        "tracking 357962501027",
    ],
)
def test_numbers_that_are_not_zip_codes_or_phones(text: str) -> None:
    found = EntityExtractor().extract(text)
    assert values(found, "zipcode") == [] and values(found, "phone") == []
    assert normalise_order_id("w-2611340") == "#W2611340"


def test_catalog_gazetteer_finds_products_and_options(extractor: EntityExtractor) -> None:
    def products_options(text: str) -> tuple[list[str], list[str]]:
        found = extractor.extract(text)
        return values(found, "product"), values(found, "option")

    assert products_options("how much is the Bluetooth Speaker in blue?") == (
        ["Bluetooth Speaker"],
        ["blue"],
    )
    assert products_options("do you have tshirts in size L in red") == (["T-Shirt"], ["L", "red"])
    assert products_options("two T Shirts and a t-shirt") == (["T-Shirt", "T-Shirt"], [])
    assert products_options("a large blue tee") == (["T-Shirt"], ["large", "blue"])
    assert products_options("is the e-reader wifi?") == (["E-Reader"], ["Wi-Fi"])
    assert products_options("running shoe size 9") == (["Running Shoes"], ["9"])
    assert products_options("the smartwatch with a leather band") == (["Smart Watch"], ["leather"])
    assert products_options("a 20000mAh power bank") == (["Portable Charger"], ["20000mAh"])
    # Longest match first: the espresso machine is a product, not the "espresso" option.
    assert products_options("espresso machine, 15 bar") == (["Espresso Machine"], ["15 bar"])
    # Everyday words that are also option values need an attribute cue.
    assert products_options("I'm fine, the box was small and I'm light on time") == ([], [])
    assert products_options("yes no none") == ([], [])


def test_reason_synonyms(extractor: EntityExtractor) -> None:
    cases = {
        "I don't need it anymore": "no longer needed",
        "dont need it any more": "no longer needed",
        "i changed my mind": "no longer needed",
        "bought the wrong one": "ordered by mistake",
        "it was by accident": "ordered by mistake",
        "I made a mistake": "ordered by mistake",
        "no longer needed": "no longer needed",
    }
    for text, reason in cases.items():
        assert values(extractor.extract(text), "reason") == [reason], text
    assert values(extractor.extract("where is my parcel"), "reason") == []


def test_extractor_output_never_overlaps(extractor: EntityExtractor) -> None:
    text = (
        "cancel #W2611340 (zip 80279) for noah.brown7922@example.com, ticket T-004211, "
        "the blue t-shirt size M, I bought the wrong one by mistake, call 555-201-7788"
    )
    found = extractor.extract(text)
    for a, b in itertools.pairwise(found):
        assert a["end"] <= b["start"]
    assert {e["entity"] for e in found} == {
        "order_id",
        "zipcode",
        "email",
        "ticket_id",
        "option",
        "product",
        "reason",
        "phone",
    }
    assert all(e["extractor"] for e in found)


# ---------------------------------------------------------------------------------------
# Intent model
# ---------------------------------------------------------------------------------------

HELD_OUT = [
    ("hey, good evening!", "greet"),
    ("ok thanks, bye now", "goodbye"),
    ("thank you, you were a great help", "thank"),
    ("wait, is this a robot answering?", "bot_challenge"),
    ("what sort of stuff can you help me with?", "capabilities"),
    ("yes, please go ahead with that", "affirm"),
    ("no, that's not what I want", "deny"),
    ("actually forget it, never mind", "stop"),
    ("sara.lee4410@example.com", "inform"),
    ("Mason Brown 43139", "inform"),
    ("#W3977493", "inform"),
    ("all of them please", "inform"),
    ("size M in black", "inform"),
    ("where's my package? order #W7752779", "order_status"),
    ("has order W9324386 shipped yet?", "order_status"),
    ("when will my backpack be delivered", "order_status"),
    ("please cancel my order #W8499625", "cancel_order"),
    ("I'd like to cancel the order I made yesterday", "cancel_order"),
    ("I want to cancel my purchase, I ordered the wrong thing", "cancel_order"),
    ("I'd like to return the headphones I received", "return_order"),
    ("how do I send back the sneakers for a refund", "return_order"),
    ("can I swap the jacket for a smaller size", "exchange_order"),
    ("I want to exchange my t-shirt for a blue one", "exchange_order"),
    ("I need to update the delivery address on my order", "change_address"),
    ("please ship my order to a different address", "change_address"),
    ("my parcel showed up soaked and the tablet screen is cracked", "complaint"),
    ("the mug inside was shattered and the box was soaked", "complaint"),
    ("any news on ticket T-004211?", "ticket_status"),
    ("what's going on with my complaint ticket", "ticket_status"),
    ("how much does the gaming mouse cost?", "product_question"),
    ("is the yoga mat available in purple?", "product_question"),
    ("does the smartphone come with 128GB storage", "product_question"),
    ("how many days do I have to return something?", "policy_question"),
    ("do you accept paypal as payment", "policy_question"),
    ("how long will a refund take to reach my card", "policy_question"),
    ("can you suggest a nice present for my sister", "recommend_products"),
    ("what headphones would you recommend for the gym", "recommend_products"),
    ("I want to speak to a real human agent", "human_handoff"),
    ("can you transfer me to customer support staff", "human_handoff"),
    ("what will the weather be like this weekend", "out_of_scope"),
    ("tell me a joke about cats", "out_of_scope"),
    ("can you solve my algebra homework", "out_of_scope"),
    # Fewer keywords to lean on.
    ("much obliged", "thank"),
    ("ugh forget the whole thing", "stop"),
    ("179 Broadway, Dallas, TX 75284", "inform"),
    ("any idea when my stuff shows up?", "order_status"),
    ("pls cancel, accidentally ordered twice", "cancel_order"),
    ("got the hoodie, want to send it back", "return_order"),
    ("the speaker is great but I want it in black instead", "exchange_order"),
    ("oops I put the wrong street on my order", "change_address"),
    ("is shipping free?", "policy_question"),
    ("give me a recipe for pancakes", "out_of_scope"),
]


def test_held_out_shopper_sentences_get_the_right_intent(
    model: NLUModel, nlu_data: NLUData
) -> None:
    training = {e.text.lower() for e in nlu_data.examples}
    assert not [t for t, _ in HELD_OUT if t.lower() in training], "held-out text is in nlu.yml"
    predicted = [model.parse(text)["intent_ranking"][0]["name"] for text, _ in HELD_OUT]
    wrong = [(t, gold, p) for (t, gold), p in zip(HELD_OUT, predicted) if p != gold]
    accuracy = 1 - len(wrong) / len(HELD_OUT)
    assert accuracy >= 0.9, wrong


def test_parse_has_rasas_shape_with_entities(model: NLUModel) -> None:
    text = "cancel order w 2611340, I bought the wrong one"
    result = model.parse(text)
    assert set(result) == {"text", "intent", "entities", "intent_ranking"}
    assert result["text"] == text
    assert result["intent"]["name"] == "cancel_order"
    assert 0.45 <= result["intent"]["confidence"] <= 1.0
    ranking = result["intent_ranking"]
    assert len(ranking) == 10
    assert ranking[0] == result["intent"]
    assert [r["confidence"] for r in ranking] == sorted(
        (r["confidence"] for r in ranking), reverse=True
    )
    assert spans(text, result["entities"]) == [
        ("order_id", "#W2611340", "w 2611340"),
        ("reason", "ordered by mistake", "bought the wrong one"),
    ]
    assert json.loads(json.dumps(result)) == result  # plain JSON types only

    product = model.parse("how much is the Bluetooth Speaker in blue?")
    assert product["intent"]["name"] == "product_question"
    assert spans("how much is the Bluetooth Speaker in blue?", product["entities"]) == [
        ("product", "Bluetooth Speaker", "Bluetooth Speaker"),
        ("option", "blue", "blue"),
    ]


def test_button_payloads_bypass_the_model(model: NLUModel) -> None:
    result = model.parse('/inform{"reason": "no longer needed"}')
    assert result["intent"] == {"name": "inform", "confidence": 1.0}
    assert result["intent_ranking"] == [{"name": "inform", "confidence": 1.0}]
    assert [(e["entity"], e["value"]) for e in result["entities"]] == [
        ("reason", "no longer needed")
    ]
    assert model.parse("/human_handoff")["intent"] == {"name": "human_handoff", "confidence": 1.0}
    assert model.parse("/affirm@0.7")["intent"] == {"name": "affirm", "confidence": 0.7}
    listed = model.parse('/inform{"option": ["red", "L"]}')["entities"]
    assert [e["value"] for e in listed] == ["red", "L"]
    # Not a known intent: it is text like any other and goes through the model.
    typed = model.parse("/help me please")
    assert typed["intent"]["name"] != "help me please"
    assert typed["intent_ranking"][0]["confidence"] < 1.0


def test_low_confidence_becomes_nlu_fallback(model: NLUModel) -> None:
    strict = model.with_threshold(0.99)
    assert model.threshold == model.metrics["calibrated_threshold"] > 0  # on its own data
    result = strict.parse("hmm the thing with the stuff")
    assert result["intent"]["name"] == FALLBACK_INTENT
    assert result["intent"]["confidence"] == result["intent_ranking"][0]["confidence"] < 0.99
    assert FALLBACK_INTENT not in {r["name"] for r in result["intent_ranking"]}
    assert strict.parse("/greet")["intent"]["name"] == "greet"
    for empty in ("", "   "):
        assert model.parse(empty) == {
            "text": empty,
            "intent": {"name": FALLBACK_INTENT, "confidence": 0.0},
            "entities": [],
            "intent_ranking": [],
        }


def test_save_and_load_give_the_same_parse(
    model: NLUModel,
    encoder: Encoder,
    nlu_data: NLUData,
    catalog: list[dict],
    data_dir: Path,
    tmp_path: Path,
) -> None:
    with pytest.raises(ModelNotTrainedError):
        NLUModel.load(tmp_path / "nlu", encoder)
    model.save(tmp_path / "nlu")
    assert sorted(p.name for p in (tmp_path / "nlu").iterdir()) == [
        "classifier.joblib",
        "entities.json",
        "featurizers.joblib",
        "meta.json",
    ]
    meta = json.loads((tmp_path / "nlu" / "meta.json").read_text())
    assert meta["format_version"] == 1
    assert meta["config"]["C"] == NLUConfig.from_file(data_dir / "config.yml").C
    assert meta["metrics"]["train_size"] == sum(meta["metrics"]["intent_counts"].values())
    assert meta["metrics"]["training_seconds"] > 0
    assert meta["metrics"]["fingerprint"] == training_fingerprint(
        nlu_data, catalog, NLUConfig.from_file(data_dir / "config.yml")
    )
    loaded = NLUModel.load(tmp_path / "nlu", encoder)
    for text in ("where is my order #W2611340", "is the tshirt available in XL?", "tell me a joke"):
        assert loaded.parse(text) == model.parse(text)

    # An artifact of another format version must be retrained, not half-read.
    meta["format_version"] = 99
    (tmp_path / "nlu" / "meta.json").write_text(json.dumps(meta))
    with pytest.raises(ModelNotTrainedError):
        NLUModel.load(tmp_path / "nlu", encoder)


def test_config_comes_from_the_clerk_section(data_dir: Path) -> None:
    config = NLUConfig.from_file(data_dir / "config.yml")
    assert config.featurizers == ("minilm", "tfidf_word", "tfidf_char")
    assert config == NLUConfig()  # the demo runs on the defaults every store gets
    assert NLUConfig.from_mapping({"clerk": {"nlu": {"threshold": 0.3, "C": 2}}}).threshold == 0.3
    assert NLUConfig.from_mapping({}).threshold == NLUConfig().threshold


def test_training_reports_progress_and_needs_two_intents(encoder: Encoder) -> None:
    one = "nlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n"
    with pytest.raises(TrainingDataError, match="at least 2 intents"):
        NLUModel.train(parse_nlu_yaml(one), encoder=encoder)

    two = parse_nlu_yaml(one + "- intent: goodbye\n  examples: |\n    - bye\n    - see you\n")
    stages: list[tuple[str, int, int]] = []
    small = NLUModel.train(
        two,
        encoder=encoder,
        progress=lambda stage, done, total: stages.append((stage, done, total)),
    )
    names = list(dict.fromkeys(stage for stage, _, _ in stages))
    assert names == ["encode", "fit", "calibrate", "done"]
    assert stages[0] == ("encode", 0, 4) and stages[-1] == ("done", 1, 1)
    assert small.metrics["intent_counts"] == {"goodbye": 2, "greet": 2}
    assert len(small.parse("hello!")["intent_ranking"]) == 2


# ---------------------------------------------------------------------------------------
# Encoder backends
# ---------------------------------------------------------------------------------------


def test_onnx_encoder_matches_torch(
    encoder: Encoder, tmp_path_factory: pytest.TempPathFactory
) -> None:
    onnx = Encoder(cache_dir=tmp_path_factory.mktemp("encoder"), threads=2)
    assert onnx.backend == "onnx" and onnx.fallback_reason is None
    assert onnx.onnx_path is not None and onnx.onnx_path.exists()
    texts = [
        "where is my order #W2611340?",
        "hi",
        "the package arrived broken and the screen is cracked, I want my money back " * 3,
        "",
    ]
    a, b = onnx.encode(texts, batch_size=2), encoder.encode(texts)
    assert a.shape == b.shape == (4, onnx.dim) and a.dtype == np.float32
    assert np.allclose(np.linalg.norm(a, axis=1), 1.0, atol=1e-5)
    assert (a * b).sum(axis=1).min() >= 0.999
    assert float(onnx.encode_one("hello there") @ encoder.encode_one("hello there")) >= 0.999
    # A second encoder on the same cache reuses the exported file.
    again = Encoder(cache_dir=onnx.cache_dir)
    assert again.onnx_path == onnx.onnx_path


def test_encoder_falls_back_to_torch_when_export_fails(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-folder"
    blocked.write_text("a file where the cache folder should be")
    enc = Encoder(cache_dir=blocked)
    with caplog.at_level("WARNING", logger="bot.nlu.encoder"):
        assert enc.backend == "torch"
    assert enc.fallback_reason and "falling back" in caplog.text
    assert enc.encode_one("hi").shape == (enc.dim,)
