"""End-to-end fine-tuning of the sentence-transformer on intent-labelled examples.

``finetune_encoder`` copies the base sentence-transformers folder to ``out_dir`` and trains
the transformer there (mean pooling, L2-normalised, as the model's pooling config says)
with one of two objectives:

* ``cross_entropy``: a linear softmax head on the sentence embedding, label smoothing 0.1;
  the head is thrown away afterwards (the NLU head is trained on the new embeddings).
* ``contrastive``: supervised in-batch contrastive loss (each example's positives are the
  other examples of its intent in the batch, temperature ``1/scale``), which pulls an
  intent's paraphrases together without a head.

``train_layers=k`` (k > 0) trains only the top ``k`` transformer layers: the frozen lower
part runs once per text (its outputs are cached), so an epoch costs about ``k / layers`` of
full fine-tuning. ``0`` trains every layer. A self-check compares the split forward pass to
the model's own on the first batch and falls back to full fine-tuning if they differ.

The result is an ordinary sentence-transformers folder: ``Encoder(out_dir)`` serves it with
the torch or the ONNX backend. Training-time only: imports torch and transformers.
"""

from __future__ import annotations

import math
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

from bot.nlu.heads import learning_rate

__all__ = ["FINETUNE_LOSSES", "FinetuneSettings", "finetune_encoder"]

FINETUNE_LOSSES = ("none", "cross_entropy", "contrastive")


@dataclass(frozen=True)
class FinetuneSettings:
    loss: str = "cross_entropy"
    epochs: int = 2
    lr: float = 1e-4
    batch_size: int = 32
    max_length: int = 64
    warmup_ratio: float = 0.06
    weight_decay: float = 0.01
    scale: float = 20.0
    train_layers: int = 0
    seed: int = 13


def finetune_encoder(
    base_path: Path,
    texts: Sequence[str],
    labels: Sequence[str],
    settings: FinetuneSettings,
    out_dir: Path,
    progress: Callable[[str, int, int], None] | None = None,
) -> Path:
    """Fine-tune the model at ``base_path`` on (texts, labels); write it to ``out_dir``."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    if settings.loss not in ("cross_entropy", "contrastive"):
        raise ValueError(f"unknown fine-tuning loss {settings.loss!r}")
    torch.manual_seed(settings.seed)
    rng = np.random.RandomState(settings.seed)
    out_dir = Path(out_dir)
    if out_dir.exists():
        shutil.rmtree(out_dir)
    shutil.copytree(base_path, out_dir, ignore=shutil.ignore_patterns("onnx", "*.onnx", "openvino"))
    tokenizer = AutoTokenizer.from_pretrained(str(base_path))
    model = AutoModel.from_pretrained(str(base_path))
    classes = sorted(set(labels))
    target = torch.tensor([classes.index(c) for c in labels], dtype=torch.long)
    dim = int(model.config.hidden_size)
    head = torch.nn.Linear(dim, len(classes))
    groups = [{"params": model.parameters(), "lr": settings.lr}]
    if settings.loss == "cross_entropy":
        groups.append({"params": head.parameters(), "lr": settings.lr * 100})
    opt = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
    base_lrs = [g["lr"] for g in opt.param_groups]
    n = len(texts)
    steps_per_epoch = max(1, math.ceil(n / settings.batch_size))
    total = steps_per_epoch * settings.epochs
    warmup = int(settings.warmup_ratio * total)

    def embed(batch: list[str]) -> torch.Tensor:
        enc = tokenizer(
            batch,
            padding=True,
            truncation=True,
            max_length=settings.max_length,
            return_tensors="pt",
        )
        hidden = model(**enc).last_hidden_state
        return _pool(hidden, enc["attention_mask"])

    layers = list(model.encoder.layer)
    top = None
    if 0 < settings.train_layers < len(layers):
        top = _TopLayers.build(model, tokenizer, texts, settings, progress)
    if top is not None:
        for p in model.parameters():
            p.requires_grad_(False)
        for layer in layers[-settings.train_layers :]:
            for p in layer.parameters():
                p.requires_grad_(True)
        groups[0]["params"] = [p for p in model.parameters() if p.requires_grad]
        opt = torch.optim.AdamW(groups, weight_decay=settings.weight_decay)
        base_lrs = [g["lr"] for g in opt.param_groups]

    step = 0
    for _epoch in range(settings.epochs):
        model.train()
        order = _batches(rng, target.numpy(), settings.batch_size, settings.loss)
        for rows in order:
            for group, base in zip(opt.param_groups, base_lrs, strict=True):
                group["lr"] = learning_rate(
                    "cosine", step, lr=base, total_steps=total, warmup_steps=warmup
                )
            emb = top.embed(rows) if top is not None else embed([texts[i] for i in rows])
            y = target[rows]
            if settings.loss == "cross_entropy":
                loss = torch.nn.functional.cross_entropy(head(emb), y, label_smoothing=0.1)
            else:
                loss = _supervised_contrastive(emb, y, settings.scale)
            opt.zero_grad()
            loss.backward()
            opt.step()
            step += 1
            if progress:
                progress("fine-tune", step, total)
    model.eval()
    model.save_pretrained(str(out_dir))
    tokenizer.save_pretrained(str(out_dir))
    return out_dir


def _pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    import torch

    m = mask.unsqueeze(-1).to(hidden.dtype)
    pooled = (hidden * m).sum(1) / m.sum(1).clamp(min=1e-9)
    return torch.nn.functional.normalize(pooled, dim=-1)


class _TopLayers:
    """Cached outputs of the frozen lower layers; ``embed(rows)`` runs the top layers."""

    def __init__(self, model: Any, cached: list[Any], k: int) -> None:
        self.model = model
        self.cached = cached
        self.layers = list(model.encoder.layer)[-k:]

    @classmethod
    def build(
        cls,
        model: Any,
        tokenizer: Any,
        texts: Sequence[str],
        settings: FinetuneSettings,
        progress: Callable[[str, int, int], None] | None,
    ) -> _TopLayers | None:
        import torch

        k = settings.train_layers
        cut = len(model.encoder.layer) - k
        cached: list[Any] = [None] * len(texts)
        order = np.argsort([len(t) for t in texts], kind="stable")
        model.eval()
        with torch.inference_mode():
            for start in range(0, len(order), 64):
                rows = order[start : start + 64]
                enc = tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=settings.max_length,
                    return_tensors="pt",
                )
                states = model(**enc, output_hidden_states=True).hidden_states[cut]
                lengths = enc["attention_mask"].sum(1).tolist()
                for j, i in enumerate(rows):
                    cached[i] = states[j, : int(lengths[j])].clone()
                if progress:
                    progress("cache lower layers", min(start + 64, len(order)), len(order))
        top = cls(model, cached, k)
        # self-check: the split forward pass must equal the model's own
        probe = list(range(min(8, len(texts))))
        with torch.inference_mode():
            enc = tokenizer(
                [texts[i] for i in probe],
                padding=True,
                truncation=True,
                max_length=settings.max_length,
                return_tensors="pt",
            )
            full = _pool(model(**enc).last_hidden_state, enc["attention_mask"])
            try:
                split = top.embed(np.asarray(probe))
            except Exception:  # noqa: BLE001 - the model's internals differ: train all layers
                split = None
        if split is None or not torch.allclose(full, split, atol=1e-4):
            import logging

            logging.getLogger(__name__).warning(
                "partial fine-tuning self-check failed; training all layers"
            )
            return None
        return top

    def embed(self, rows: np.ndarray) -> Any:
        import torch

        states = [self.cached[int(i)] for i in rows]
        width = max(s.shape[0] for s in states)
        dim = states[0].shape[1]
        hidden = torch.zeros(len(states), width, dim)
        mask = torch.zeros(len(states), width, dtype=torch.long)
        for j, s in enumerate(states):
            hidden[j, : s.shape[0]] = s
            mask[j, : s.shape[0]] = 1
        attention, _ = self.model._create_attention_masks(
            attention_mask=mask,
            encoder_attention_mask=None,
            embedding_output=hidden,
            encoder_hidden_states=None,
            cache=None,
        )
        for layer in self.layers:
            out = layer(hidden, attention_mask=attention)
            hidden = out[0] if isinstance(out, tuple) else out
        return _pool(hidden, mask)


def _batches(rng: np.random.RandomState, y: np.ndarray, size: int, loss: str) -> list[np.ndarray]:
    """Shuffled batches; for the contrastive loss each example is paired with another of its
    intent in the same batch, so every anchor has a positive."""
    order = rng.permutation(len(y))
    if loss != "contrastive":
        return [order[i : i + size] for i in range(0, len(order), size)]
    by_class: dict[int, list[int]] = {}
    for i in order:
        by_class.setdefault(int(y[i]), []).append(int(i))
    pairs: list[list[int]] = []
    for members in by_class.values():
        for k in range(0, len(members) - 1, 2):
            pairs.append(members[k : k + 2])
    rng.shuffle(pairs)
    per = max(1, size // 2)
    return [
        np.asarray([row for pair in pairs[i : i + per] for row in pair])
        for i in range(0, len(pairs), per)
    ]


def _supervised_contrastive(emb: torch.Tensor, y: torch.Tensor, scale: float) -> torch.Tensor:
    import torch

    sim = emb @ emb.T * scale
    eye = torch.eye(len(y), dtype=torch.bool)
    sim = sim.masked_fill(eye, -1e9)
    positives = (y[:, None] == y[None, :]) & ~eye
    log_prob = sim - torch.logsumexp(sim, dim=1, keepdim=True)
    counts = positives.sum(1)
    keep = counts > 0
    per_anchor = (log_prob * positives).sum(1)[keep] / counts[keep]
    return -per_anchor.mean()
