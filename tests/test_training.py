"""Training: LR schedules, the MLP head, threshold calibration, fine-tuning, versioned
artifacts, reproducibility, and clear errors for bad inputs (through the `clerk` command)."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from bot.cli import main
from bot.errors import ConfigError
from bot.nlu.config import NLUConfig
from bot.nlu.data import parse_nlu_yaml
from bot.nlu.fit import calibrate_threshold
from bot.nlu.heads import learning_rate
from bot.nlu.model import NLUModel

YML = """
nlu:
- intent: greet
  examples: |
    - hello
    - hi there
    - good morning
    - hey
    - hello friend
    - hiya
    - hey there bot
    - good evening
- intent: order_status
  examples: |
    - where is my order
    - status of my order
    - track my order please
    - has my order shipped
    - when will my order arrive
    - where is my package
    - my parcel has not arrived
    - order tracking
- intent: cancel_order
  examples: |
    - cancel my order
    - i want to cancel the order
    - please cancel order
    - stop my order from shipping
    - cancel the purchase
    - i no longer want my order, cancel it
    - cancel everything i ordered
    - can you cancel my order
"""
TFIDF = {"featurizers": ("tfidf_word", "tfidf_char"), "threshold": 0.0}


# -- learning-rate schedules: the documented rate at each step --------------------------


def test_constant_and_warmup() -> None:
    assert learning_rate("constant", 7, lr=0.1, total_steps=10) == 0.1
    # linear warm-up: (s + 1) / W of the rate during the first W steps, for every schedule
    assert [
        learning_rate("constant", s, lr=0.1, total_steps=10, warmup_steps=4) for s in range(5)
    ] == pytest.approx([0.025, 0.05, 0.075, 0.1, 0.1])


def test_exponential_schedule() -> None:
    rates = [learning_rate("exponential", s, lr=1.0, total_steps=5, gamma=0.5) for s in range(4)]
    assert rates == pytest.approx([1.0, 0.5, 0.25, 0.125])


def test_step_schedule() -> None:
    rates = [
        learning_rate("step", s, lr=1.0, total_steps=9, gamma=0.1, step_size=3) for s in range(7)
    ]
    assert rates == pytest.approx([1, 1, 1, 0.1, 0.1, 0.1, 0.01])


def test_cosine_with_warmup() -> None:
    kw = {"lr": 1.0, "total_steps": 12, "warmup_steps": 2}
    assert learning_rate("cosine", 0, **kw) == pytest.approx(0.5)
    assert learning_rate("cosine", 1, **kw) == pytest.approx(1.0)
    assert learning_rate("cosine", 2, **kw) == pytest.approx(1.0)  # start of the decay
    assert learning_rate("cosine", 7, **kw) == pytest.approx(0.5)  # half way: (7-2)/10
    assert learning_rate("cosine", 12, **kw) == pytest.approx(0.0)
    assert learning_rate("cosine", 4, **kw) == pytest.approx(0.5 * (1 + math.cos(math.pi * 0.2)))


def test_unknown_schedule_is_rejected() -> None:
    with pytest.raises(ValueError):
        learning_rate("linear", 0, lr=1.0, total_steps=1)
    with pytest.raises(ConfigError, match="lr_schedule"):
        NLUConfig(lr_schedule="linear")


# -- configuration ----------------------------------------------------------------------


def test_config_reads_every_setting_and_rejects_typos() -> None:
    cfg = NLUConfig.from_mapping(
        {
            "clerk": {
                "nlu": {
                    "classifier": "mlp",
                    "mlp_hidden": 64,
                    "lr_schedule": "step",
                    "mlp_lr": "0.01",
                    "featurizers": "minilm+tfidf_char",
                    "calibrate_threshold": True,
                }
            }
        }
    )
    assert (cfg.classifier, cfg.mlp_hidden, cfg.lr_schedule, cfg.mlp_lr) == (
        "mlp",
        64,
        "step",
        0.01,
    )
    assert cfg.featurizers == ("minilm", "tfidf_char") and cfg.calibrate_threshold is True
    with pytest.raises(ConfigError, match="mlp_hiden"):
        NLUConfig.from_mapping({"clerk": {"nlu": {"mlp_hiden": 3}}})
    with pytest.raises(ConfigError, match="classifier"):
        NLUConfig(classifier="svm")
    assert NLUConfig.from_dict(cfg.to_dict()) == cfg


# -- heads, calibration, reproducibility ------------------------------------------------


def test_mlp_head_trains_saves_and_parses(encoder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    data = parse_nlu_yaml(YML)
    config = NLUConfig(
        **TFIDF,
        classifier="mlp",
        mlp_hidden=16,
        mlp_epochs=40,
        mlp_lr=0.02,
        lr_schedule="cosine",
        warmup_steps=3,
        patience=40,
        mlp_dropout=0.0,
        validation_fraction=0.25,
    )
    model = NLUModel.train(data, encoder=encoder, config=config)
    assert model.metrics["validation_size"] == 6  # 2 of 8 per intent held out
    assert model.metrics["history"] and "val_loss" in model.metrics["history"][0]
    parsed = model.parse("please cancel my order")
    assert parsed["intent"]["name"] == "cancel_order"
    assert set(parsed) == {"text", "intent", "entities", "intent_ranking"}
    assert sum(r["confidence"] for r in parsed["intent_ranking"]) == pytest.approx(1.0, abs=1e-5)
    loaded = NLUModel.load(model.save(tmp_path / "m"), encoder)
    texts = ["where is my order", "hello there", "cancel it"]
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-6)


def test_mlp_early_stopping_keeps_best_epoch(encoder) -> None:  # type: ignore[no-untyped-def]
    config = NLUConfig(
        **TFIDF, classifier="mlp", mlp_epochs=200, mlp_lr=0.05, patience=2, validation_fraction=0.25
    )
    model = NLUModel.train(parse_nlu_yaml(YML), encoder=encoder, config=config)
    history = model.metrics["history"]
    assert len(history) < 200  # stopped early
    best, best_epoch = float("inf"), -1
    for k, h in enumerate(history):
        if h["val_loss"] < best - 1e-5:  # the improvement rule of bot.nlu.heads
            best, best_epoch = h["val_loss"], k
    assert len(history) == best_epoch + 1 + 2  # stopped two stale epochs after the best


def test_calibrated_threshold_hand_checked() -> None:
    classes = ["a", "b"]
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.4, 0.6], [0.55, 0.45]])
    # without out-of-scope data: the 0.0 quantile of the right answers' confidences
    assert calibrate_threshold(probs, ["a", "a", "b", "b", "b"], classes, quantile=0.0) == 0.6
    # with out-of-scope data: the lowest threshold that flags the 0.55 answer and no other
    probs3 = np.array([[0.9, 0.1, 0.0], [0.3, 0.7, 0.0], [0.55, 0.45, 0.0]])
    t = calibrate_threshold(probs3, ["a", "b", "out_of_scope"], ["a", "b", "out_of_scope"])
    assert t == 0.56


def test_calibration_is_applied_and_training_is_reproducible(encoder) -> None:  # type: ignore[no-untyped-def]
    data = parse_nlu_yaml(YML)
    config = NLUConfig(
        **TFIDF, calibrate_threshold=True, threshold_quantile=0.1, validation_fraction=0.25
    )
    a = NLUModel.train(data, encoder=encoder, config=config)
    b = NLUModel.train(data, encoder=encoder, config=config)
    assert a.config.threshold == a.metrics["calibrated_threshold"] > 0
    assert a.metrics["fingerprint"] == b.metrics["fingerprint"]
    assert a.metrics["rejection"]["threshold"] == a.config.threshold  # held-out intents
    for key in ("rejection", "calibrated_threshold", "train_accuracy"):
        assert a.metrics[key] == b.metrics[key]
    texts = ["hello", "cancel it", "where is it"]
    assert np.array_equal(a.predict_proba(texts), b.predict_proba(texts))


# -- fine-tuning with a tiny random sentence-transformer --------------------------------


@pytest.fixture(scope="module")
def tiny_st(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, 32-d random BERT saved as a sentence-transformers folder."""
    from transformers import BertConfig, BertModel, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-st")
    words = sorted({w.strip(",.") for line in YML.splitlines() for w in line.lower().split()})
    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *[w for w in words if w]]
    (folder / "vocab.txt").write_text("\n".join(vocab) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(str(folder))
    import torch

    torch.manual_seed(0)
    BertModel(
        BertConfig(
            vocab_size=len(vocab),
            hidden_size=32,
            num_hidden_layers=2,
            num_attention_heads=2,
            intermediate_size=64,
            max_position_embeddings=64,
        )
    ).save_pretrained(str(folder))
    (folder / "modules.json").write_text(
        json.dumps(
            [
                {
                    "idx": 0,
                    "name": "0",
                    "path": "",
                    "type": "sentence_transformers.models.Transformer",
                },
                {
                    "idx": 1,
                    "name": "1",
                    "path": "1_Pooling",
                    "type": "sentence_transformers.models.Pooling",
                },
                {
                    "idx": 2,
                    "name": "2",
                    "path": "2_Normalize",
                    "type": "sentence_transformers.models.Normalize",
                },
            ]
        )
    )
    (folder / "sentence_bert_config.json").write_text(
        json.dumps({"max_seq_length": 32, "do_lower_case": False})
    )
    (folder / "1_Pooling").mkdir()
    (folder / "1_Pooling" / "config.json").write_text(
        json.dumps({"word_embedding_dimension": 32, "pooling_mode_mean_tokens": True})
    )
    (folder / "2_Normalize").mkdir()
    return folder


@pytest.mark.parametrize("loss", ["cross_entropy", "contrastive"])
def test_finetuned_encoder_is_saved_and_served(tiny_st: Path, tmp_path: Path, loss: str) -> None:
    from bot.nlu.encoder import Encoder

    base = Encoder(tiny_st, backend="torch")
    config = NLUConfig(
        featurizers=("minilm",),
        finetune=loss,
        finetune_epochs=2,
        finetune_lr=1e-3,
        finetune_batch_size=8,
        threshold=0.0,
    )
    model = NLUModel.train(parse_nlu_yaml(YML), encoder=base, config=config)
    assert model.encoder is not base and model.encoder_dir is not None
    before = base.encode(["where is my order"])
    after = model.encoder.encode(["where is my order"])
    assert not np.allclose(before, after)  # the transformer's weights changed
    out = model.save(tmp_path / "m")
    assert (out / "encoder" / "config.json").is_file()
    loaded = NLUModel.load(out, base)
    assert loaded.encoder.model_path == out / "encoder"
    texts = ["where is my order", "hello"]
    assert np.allclose(loaded.predict_proba(texts), model.predict_proba(texts), atol=1e-5)


# -- the commands: versioned artifacts, model list/show, bad inputs ---------------------


def _write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_clerk_train_writes_versioned_artifact_and_model_commands(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nlu = _write(tmp_path, "nlu.yml", YML)
    cfg = _write(
        tmp_path,
        "config.yml",
        "clerk:\n  nlu:\n    featurizers: [tfidf_word, tfidf_char]\n    C: 5\n",
    )
    home = tmp_path / "home"
    assert main(["--home", str(home), "train", "--nlu", str(nlu), "--config", str(cfg)]) == 0
    versions = list((home / "models" / "nlu_versions").iterdir())
    assert len(versions) == 1
    art = versions[0]
    assert (art / "config.yml").read_text() == cfg.read_text()
    training = json.loads((art / "training.json").read_text())
    assert training["config"]["C"] == 5.0 and training["sources"] == [str(nlu)]
    assert training["metrics"]["train_size"] == 24
    assert (home / "models" / "nlu" / "meta.json").is_file()  # activated
    capsys.readouterr()
    assert main(["--home", str(home), "model", "list"]) == 0
    listing = capsys.readouterr().out
    assert f"* {art.name}" in listing
    assert main(["--home", str(home), "evaluate", "--nlu", str(nlu)]) == 0
    capsys.readouterr()
    assert main(["--home", str(home), "model", "show"]) == 0
    out = capsys.readouterr().out
    shown = json.loads(out[out.index("{") :])
    assert shown["version"] == art.name and shown["test_accuracy"] == 1.0
    assert shown["config"]["C"] == 5.0


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("empty.yml", "", "file is empty"),
        (
            "one.yml",
            "nlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n",
            "at least 2 intents",
        ),
        ("bad.yml", "nlu:\n- intent: greet\n  examples: [unclosed\n", "malformed YAML"),
        ("empty.csv", "text,label\n", "no rows"),
    ],
)
def test_bad_training_inputs_give_clear_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str, text: str, message: str
) -> None:
    path = _write(tmp_path, name, text)
    cfg = _write(tmp_path, "config.yml", "clerk:\n  nlu:\n    featurizers: [tfidf_word]\n")
    code = main(["--home", str(tmp_path / "h"), "train", "--nlu", str(path), "--config", str(cfg)])
    assert code == 2
    err = capsys.readouterr().err
    assert message in err
    if "intents" not in message:  # a file problem names the file
        assert str(path) in err


def test_malformed_config_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    nlu = _write(tmp_path, "nlu.yml", YML)
    cfg = _write(tmp_path, "config.yml", "clerk:\n  nlu:\n    classifier: [\n")
    assert (
        main(["--home", str(tmp_path / "h"), "train", "--nlu", str(nlu), "--config", str(cfg)]) == 2
    )
    assert "malformed YAML" in capsys.readouterr().err


# -- clerk train --tune DURATION --------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("90s", 90.0),
        ("10m", 600.0),
        ("1h", 3600.0),
        ("1h30m", 5400.0),
        ("1h0m5s", 3605.0),
        ("2.5m", 150.0),
        ("600", 600.0),
        (" 3S ", 3.0),
    ],
)
def test_parse_duration(text: str, seconds: float) -> None:
    from bot.training.tune import parse_duration

    assert parse_duration(text) == seconds


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a duration"),
        ("10x", "not a duration"),
        ("30m1h", "not a duration"),
        ("1h30", "not a duration"),
        ("m", "not a duration"),
        ("0", "more than 0"),
        ("0m", "more than 0"),
        ("-5", "more than 0"),
        ("inf", "more than 0"),
    ],
)
def test_parse_duration_rejects(text: str, message: str) -> None:
    from bot.training.tune import parse_duration

    with pytest.raises(ValueError, match=message):
        parse_duration(text)


# TF-IDF only, so that the test needs no sentence encoder; the search itself is the one
# `clerk train --tune` runs on `DEFAULT_SPACE`.
TFIDF_SPACE = {
    "C": {"low": 1.0, "high": 100.0, "log": True},
    "featurizers": ["tfidf_word+tfidf_char", "tfidf_char"],
    "char_ngram_max": [4, 5, 6],
}


def test_clerk_train_tune_trains_the_best_config_and_records_the_search(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.training import tune as tune_module

    monkeypatch.setattr(tune_module, "DEFAULT_SPACE", TFIDF_SPACE)
    project = tmp_path / "store"
    (project / "data").mkdir(parents=True)
    _write(project, "domain.yml", "version: '3.1'\nintents: [greet, order_status, cancel_order]\n")
    _write(project / "data", "nlu.yml", YML)
    cfg = _write(
        project,
        "config.yml",
        "clerk:\n  nlu:\n    featurizers: [tfidf_word, tfidf_char]\n    C: 5\n    threshold: 0\n",
    )
    home = tmp_path / "home"
    assert main(["--project", str(project), "--home", str(home), "train", "--tune", "3s"]) == 0
    out = capsys.readouterr().out
    assert "tuning on 24 examples, bayes search, trials for 3 s, 3-fold CV" in out
    # the first trial is the starting config, so the best is scored against it
    first = next(line for line in out.splitlines() if "trial 0:" in line)
    assert "complete macro_f1" in first
    assert first.endswith("C=5 char_ngram_max=5 featurizers=tfidf_word+tfidf_char")
    summary = next(line for line in out.splitlines() if line.startswith("best of"))
    assert "for the starting config" in summary or "the starting config scored best" in summary

    (art,) = (home / "models" / "nlu_versions").iterdir()
    training = json.loads((art / "training.json").read_text())
    tuned = training["metrics"]["tuned"]
    assert tuned["budget_s"] == 3.0 and tuned["folds"] == 3 and tuned["search"] == "bayes"
    assert tuned["trials"] >= tuned["completed"] >= 1
    assert tuned["best_score"] >= tuned["base_score"] > 0
    assert tuned["seconds"] < 60  # no trial starts after the budget
    # trained with the tuned config, written beside the model (and kept on activation)
    best = NLUConfig.from_file(art / "tuned_config.yml")
    assert best.to_dict() == training["config"]
    assert {k for k, (old, new) in tuned["changed"].items()} == {
        k for k, v in best.to_dict().items() if v != NLUConfig.from_file(cfg).to_dict()[k]
    }
    assert (art / "config.yml").read_text() == cfg.read_text()  # the starting config
    assert (home / "models" / "nlu" / "tuned_config.yml").is_file()
    assert f"tuned config: {art / 'tuned_config.yml'}" in out

    assert main(["--project", str(project), "--home", str(home), "model", "show"]) == 0
    shown = capsys.readouterr().out
    assert json.loads(shown[shown.index("{") :])["metrics"]["tuned"] == tuned


@pytest.mark.parametrize(("value", "message"), [("10x", "not a duration"), ("0s", "more than 0")])
def test_clerk_train_tune_rejects_a_bad_duration(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str, message: str
) -> None:
    nlu = _write(tmp_path, "nlu.yml", YML)
    with pytest.raises(SystemExit) as exc:
        main(["--home", str(tmp_path / "h"), "train", "--nlu", str(nlu), "--tune", value])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "argument --tune" in err and message in err


def test_fold_count_follows_the_smallest_intent() -> None:
    from bot.training.tune import fold_count

    data = parse_nlu_yaml(YML)  # 8 examples per intent
    assert fold_count(data, 3) == 3
    small = parse_nlu_yaml(
        "nlu:\n- intent: a\n  examples: |\n    - x\n    - y\n"
        "- intent: b\n  examples: |\n    - p\n    - q\n    - r\n    - s\n"
    )
    assert fold_count(small, 3) == 2
    single = parse_nlu_yaml(
        "nlu:\n- intent: a\n  examples: |\n    - x\n- intent: b\n  examples: |\n    - p\n    - q\n"
    )
    assert fold_count(single, 3) == 1  # one validation split
