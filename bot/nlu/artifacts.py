"""The NLU model's artifact folder: what is saved, and how it is written and read.

A folder holds::

    meta.json           {"format_version", "labels", "config", "encoder": {"dim", "model", "id",
                         "finetuned"?}, "metrics"}
    featurizers.joblib  {"word": TfidfVectorizer | None, "char": TfidfVectorizer | None}
    classifier.joblib   the fitted head (LogisticRegression or bot.nlu.heads.MLPHead)
    entities.json       the entity tables (bot.nlu.entity_tables)
    encoder/            the fine-tuned sentence-transformer, only when the config fine-tunes
    .encoder-onnx/      its ONNX export, a cache written when serving (never saved)

The sentence encoder a model was given is never saved: only its dimension, folder name and
id (``bot.nlu.encoder.encoder_id``), so ``load`` can refuse another encoder (MiniLM and e5
are both 384-d). Format version 1; optional parts (``encoder/``, the id) were added
compatibly, so every version-1 folder loads.

Contract: ``write_artifact`` replaces a previous artifact in the folder and moves
``meta.json`` last, so a reader never sees a half-written model (a folder without
``meta.json`` is "not trained"). ``read_artifact`` raises ``ModelNotTrainedError`` for a
missing folder or file, another format version, or anything unreadable or inconsistent.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bot.errors import ModelNotTrainedError
from bot.nlu.config import NLUConfig

if TYPE_CHECKING:
    from sklearn.feature_extraction.text import TfidfVectorizer

    from bot.nlu.heads import Head

log = logging.getLogger(__name__)

__all__ = [
    "ENCODER_DIR",
    "ENCODER_ONNX_DIR",
    "FORMAT_VERSION",
    "Artifact",
    "read_artifact",
    "write_artifact",
]

FORMAT_VERSION = 1  # optional files were added compatibly (encoder/); version 1 loads
META_FILE = "meta.json"
ENTITIES_FILE = "entities.json"
FEATURIZERS_FILE = "featurizers.joblib"
CLASSIFIER_FILE = "classifier.joblib"
ENCODER_DIR = "encoder"
ENCODER_ONNX_DIR = ".encoder-onnx"


@dataclass(frozen=True)
class Artifact:
    """The contents of an artifact folder, as Python values."""

    labels: tuple[str, ...]
    config: NLUConfig
    word: TfidfVectorizer | None
    char: TfidfVectorizer | None
    classifier: Head
    entity_tables: dict[str, Any]
    metrics: dict[str, Any]
    #: The dimension of the embeddings the model was trained with; 0 when not recorded.
    encoder_dim: int
    #: The sentence encoder's folder name (informative only).
    encoder_name: str
    #: The fine-tuned encoder folder: the source to copy when writing; ``<folder>/encoder``
    #: when read from a folder that has one; else ``None``.
    encoder_dir: Path | None = None
    #: ``bot.nlu.encoder.encoder_id`` of the encoder the model was trained with (the base
    #: model when fine-tuned); "" in artifacts written before it was recorded (MiniLM's).
    encoder_id: str = ""


def write_artifact(artifact: Artifact, directory: str | Path) -> Path:
    """Write ``artifact`` into ``directory`` (created; a previous artifact replaced).

    Files are written to a temporary folder first and ``meta.json`` is moved last. The
    fine-tuned encoder folder is copied without ONNX exports, unless it already is the
    folder's own ``encoder/``; without one, a stale ``encoder/`` is removed.
    """
    import joblib

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".nlu-", dir=directory))
    try:
        joblib.dump({"word": artifact.word, "char": artifact.char}, tmp / FEATURIZERS_FILE)
        joblib.dump(artifact.classifier, tmp / CLASSIFIER_FILE)
        (tmp / ENTITIES_FILE).write_text(
            json.dumps(artifact.entity_tables, ensure_ascii=False, indent=1), encoding="utf-8"
        )
        encoder: dict[str, Any] = {
            "dim": artifact.encoder_dim,
            "model": artifact.encoder_name,
            "id": artifact.encoder_id,
        }
        meta = {
            "format_version": FORMAT_VERSION,
            "labels": list(artifact.labels),
            "config": artifact.config.to_dict(),
            "encoder": encoder,
            "metrics": artifact.metrics,
        }
        if artifact.encoder_dir is not None:
            encoder["finetuned"] = True
            if Path(artifact.encoder_dir).resolve() != (directory / ENCODER_DIR).resolve():
                shutil.copytree(
                    artifact.encoder_dir,
                    tmp / ENCODER_DIR,
                    ignore=shutil.ignore_patterns(".onnx*", "onnx", "*.onnx"),
                )
        (tmp / META_FILE).write_text(json.dumps(meta, indent=1), encoding="utf-8")
        (directory / META_FILE).unlink(missing_ok=True)
        if (tmp / ENCODER_DIR).exists():
            shutil.rmtree(directory / ENCODER_DIR, ignore_errors=True)
            shutil.rmtree(directory / ENCODER_ONNX_DIR, ignore_errors=True)
            os.replace(tmp / ENCODER_DIR, directory / ENCODER_DIR)
        elif artifact.encoder_dir is None:
            shutil.rmtree(directory / ENCODER_DIR, ignore_errors=True)
        for name in (FEATURIZERS_FILE, CLASSIFIER_FILE, ENTITIES_FILE, META_FILE):
            os.replace(tmp / name, directory / name)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return directory


def read_artifact(directory: str | Path) -> Artifact:
    """Read a folder written by ``write_artifact``; ``ModelNotTrainedError`` when it is
    missing, incomplete (a fine-tuned model without ``encoder/config.json`` included), of
    another format version, or unreadable. Unpickles the joblib files: read only folders
    you trust."""
    import joblib

    directory = Path(directory)
    meta_file = directory / META_FILE
    files = [
        meta_file,
        directory / FEATURIZERS_FILE,
        directory / CLASSIFIER_FILE,
        directory / ENTITIES_FILE,
    ]
    if not all(f.is_file() for f in files):
        raise ModelNotTrainedError(str(directory))
    try:
        meta = json.loads(meta_file.read_text(encoding="utf-8"))
        if meta.get("format_version") != FORMAT_VERSION:
            log.warning(
                "NLU model at %s has format %s, this Clerk reads %s",
                directory,
                meta.get("format_version"),
                FORMAT_VERSION,
            )
            raise ModelNotTrainedError(str(directory))
        tables = json.loads((directory / ENTITIES_FILE).read_text(encoding="utf-8"))
        vecs = joblib.load(directory / FEATURIZERS_FILE)
        clf = joblib.load(directory / CLASSIFIER_FILE)
        config = NLUConfig.from_dict(meta["config"])
        encoder_meta = meta.get("encoder", {})
        artifact = Artifact(
            labels=tuple(meta["labels"]),
            config=config,
            word=vecs.get("word"),
            char=vecs.get("char"),
            classifier=clf,
            entity_tables=tables,
            metrics=dict(meta.get("metrics") or {}),
            encoder_dim=int(encoder_meta.get("dim") or 0),
            encoder_name=str(encoder_meta.get("model") or ""),
            encoder_dir=directory / ENCODER_DIR if encoder_meta.get("finetuned") else None,
            encoder_id=str(encoder_meta.get("id") or ""),
        )
    except ModelNotTrainedError:
        raise
    except Exception as exc:
        log.warning("NLU model at %s cannot be read: %s", directory, exc)
        raise ModelNotTrainedError(str(directory)) from exc
    if artifact.encoder_dir is not None and not (artifact.encoder_dir / "config.json").is_file():
        raise ModelNotTrainedError(str(directory))
    return artifact
