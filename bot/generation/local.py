"""``TransformersLLM``: a local causal LM through Hugging Face transformers, on the CPU.

``model_path`` is a model folder (``config.json``, weights, tokenizer files) or a ``.gguf``
file, which transformers reads and dequantises (it needs the ``gguf`` and ``accelerate``
packages: ``pip install 'clerk-bot[llm]'``). Nothing is downloaded: files load with
``local_files_only``. The model loads lazily, on the first reply or on ``load()``.

Generation runs ``model.generate`` in a background thread and streams the new tokens back
through a queue; text is decoded incrementally (a piece is yielded once it no longer ends in
an incomplete UTF-8 sequence). The tokenizer's chat template is applied (a plain
``role: text`` layout when the model has none). Greedy decoding unless
``params.temperature`` > 0. ``threads`` sets torch's intra-op threads for the process when
the model loads (torch has one pool per process). One reply is generated at a time: on two
CPU cores parallel replies only slow each other down.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from bot.generation.llm import (
    LLM,
    ChatMessage,
    GenerationParams,
    LLMError,
    LLMTimeout,
    LLMUnavailable,
)

log = logging.getLogger(__name__)

_DONE = object()


class TransformersLLM(LLM):
    def __init__(
        self,
        model_path: str | Path,
        *,
        threads: int | None = None,
        dtype: str = "float32",
    ) -> None:
        self.model_path = Path(model_path).expanduser()
        self.threads = threads
        self.dtype = dtype
        self.name = f"transformers:{self.model_path.stem if self.is_gguf else self.model_path.name}"
        self.model: Any = None
        self.tokenizer: Any = None
        self.load_seconds: float | None = None
        # (prompt tokens, new tokens, seconds) of the last finished reply, for benchmarks
        self.last_usage: tuple[int, int, float] | None = None
        self._load_lock = threading.Lock()
        self._generate_lock = threading.Lock()

    @property
    def is_gguf(self) -> bool:
        return self.model_path.suffix.lower() == ".gguf"

    # -- loading -------------------------------------------------------------------------

    def load(self) -> TransformersLLM:
        """Load tokenizer and model now; ``LLMUnavailable`` when they cannot be read."""
        with self._load_lock:
            if self.model is not None:
                return self
            started = time.perf_counter()
            try:
                import torch
                from transformers import AutoModelForCausalLM, AutoTokenizer
            except ImportError as exc:  # pragma: no cover - transformers is a dependency
                raise LLMUnavailable(self.name, f"transformers is not installed: {exc}") from exc
            if self.threads:
                torch.set_num_threads(int(self.threads))
            if not self.model_path.exists():
                raise LLMUnavailable(self.name, f"no model at {self.model_path}")
            folder, extra = self.model_path, {}
            if self.is_gguf:
                folder, extra = self.model_path.parent, {"gguf_file": self.model_path.name}
            try:
                tokenizer = AutoTokenizer.from_pretrained(
                    str(folder), local_files_only=True, **extra
                )
                model = AutoModelForCausalLM.from_pretrained(
                    str(folder),
                    local_files_only=True,
                    dtype=getattr(torch, self.dtype),
                    **extra,
                )
            except ImportError as exc:
                raise LLMUnavailable(
                    self.name, f"{exc} (GGUF files need: pip install 'clerk-bot[llm]')"
                ) from exc
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                raise LLMUnavailable(self.name, f"cannot load {self.model_path}: {exc}") from exc
            model.eval()
            if tokenizer.pad_token_id is None:
                tokenizer.pad_token = tokenizer.eos_token
            self.tokenizer, self.model = tokenizer, model
            self.load_seconds = time.perf_counter() - started
            log.info("loaded %s in %.1f s", self.model_path, self.load_seconds)
        return self

    # -- generation ----------------------------------------------------------------------

    def prompt_ids(self, messages: Sequence[ChatMessage]) -> Any:
        """The prompt as a ``[1, n]`` tensor of token ids, chat template applied."""
        self.load()
        chat = [m.to_dict() for m in messages]
        if getattr(self.tokenizer, "chat_template", None):
            encoded = self.tokenizer.apply_chat_template(
                chat, add_generation_prompt=True, return_tensors="pt", return_dict=True
            )
            return encoded["input_ids"]
        text = "".join(f"{m.role}: {m.content}\n" for m in messages) + "assistant:"
        return self.tokenizer(text, return_tensors="pt")["input_ids"]

    def generation_kwargs(self, params: GenerationParams) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": params.max_new_tokens,
            "pad_token_id": self.tokenizer.pad_token_id,
            "max_time": params.timeout_s,
        }
        if params.temperature > 0:
            kwargs.update(do_sample=True, temperature=params.temperature, top_p=0.95)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        return kwargs

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        import torch
        from transformers import StoppingCriteria, StoppingCriteriaList
        from transformers.generation.streamers import BaseStreamer

        input_ids = self.prompt_ids(messages)
        tokens: queue.Queue[Any] = queue.Queue()
        cancel = threading.Event()
        prompt_len = int(input_ids.shape[1])

        class _Streamer(BaseStreamer):
            def __init__(self) -> None:
                self.first = True

            def put(self, value: Any) -> None:
                if self.first:  # generate() hands over the prompt first
                    self.first = False
                    return
                tokens.put(value.reshape(-1).tolist())

            def end(self) -> None:
                tokens.put(_DONE)

        class _Stop(StoppingCriteria):
            def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
                stop = cancel.is_set() or params.should_stop()
                return torch.full((input_ids.shape[0],), stop, dtype=torch.bool)

        failure: list[BaseException] = []
        started = time.perf_counter()

        def run() -> None:
            try:
                with torch.inference_mode():
                    if params.seed is not None:
                        torch.manual_seed(params.seed)
                    self.model.generate(
                        input_ids,
                        attention_mask=torch.ones_like(input_ids),
                        streamer=_Streamer(),
                        stopping_criteria=StoppingCriteriaList([_Stop()]),
                        **self.generation_kwargs(params),
                    )
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                failure.append(exc)
                tokens.put(_DONE)

        with self._generate_lock:
            worker = threading.Thread(target=run, name="clerk-llm-generate", daemon=True)
            worker.start()
            ids: list[int] = []
            generated = 0
            sent = ""
            eos = self.tokenizer.eos_token_id
            try:
                while True:
                    item = tokens.get()
                    if item is not _DONE:
                        generated += len(item)
                        ids += [t for t in item if t != eos]
                    text = self.tokenizer.decode(ids, skip_special_tokens=True)
                    if item is _DONE:
                        if text != sent and not failure:
                            yield text[len(sent) :]  # what an unfinished character held back
                        break
                    if text.endswith("\ufffd"):
                        continue  # an incomplete multi-byte character
                    piece, sent = text[len(sent) :], text
                    for stop in params.stop:
                        if stop in sent:
                            piece = piece[: max(0, len(piece) - (len(sent) - sent.index(stop)))]
                            cancel.set()
                    if piece:
                        yield piece
                    if cancel.is_set():
                        break
                stopped_early = cancel.is_set() or params.should_stop()
            finally:
                cancel.set()
                worker.join()
        if failure:
            raise LLMError(self.name, f"generation failed: {failure[0]!r}") from failure[0]
        elapsed = time.perf_counter() - started
        self.last_usage = (prompt_len, generated, elapsed)
        if elapsed >= params.timeout_s and not stopped_early:
            raise LLMTimeout(self.name, params.timeout_s)
        log.debug(
            "%s: %d prompt tokens, %d new in %.2f s", self.name, prompt_len, len(ids), elapsed
        )

    def close(self) -> None:
        self.model = None
        self.tokenizer = None
