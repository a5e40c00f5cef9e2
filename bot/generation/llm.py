"""The ``LLM`` contract: chat messages in, a stream of text pieces out.

One abstract method, ``stream``. Backends are built in ``app.py`` from settings and take
their dependencies injected (a model path, an ``httpx.Client``):

* ``bot.generation.local.TransformersLLM``: a Hugging Face model folder, or a GGUF file
  loaded (and dequantised) through transformers;
* ``bot.generation.openai.OpenAIChatLLM``: any OpenAI-compatible chat completions endpoint.

The extractive writer (``bot.generation.extractive``) is not an ``LLM``: it needs no
model, and it is what ``GuardedWriter`` falls back to when a backend fails.

A backend owns these promises:

* ``stream`` yields text pieces as they are produced; their concatenation is the reply;
* it stops by itself after ``params.max_new_tokens`` tokens or ``params.timeout_s``
  seconds of total generation time, whichever comes first, and stops early when the
  consumer closes the iterator (``GeneratorExit``) or ``should_stop()`` returns True;
* failures surface as ``LLMError`` (``LLMTimeout`` for a deadline, ``LLMUnavailable`` when
  the backend cannot be reached or loaded), never as a library's own exception;
* it is thread-safe: the dialogue engine calls it from worker threads.

Errors (carrying data, as ``bot.errors`` does)::

    ClerkError
    └── LLMError                 backend, message
        ├── LLMUnavailable       the model cannot be loaded / the server cannot be reached
        └── LLMTimeout           no complete reply within ``after_s`` seconds
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

from bot.errors import ClerkError


class LLMError(ClerkError):
    def __init__(self, backend: str, message: str) -> None:
        super().__init__(f"LLM backend {backend!r}: {message}")
        self.backend = backend


class LLMUnavailable(LLMError):
    pass


class LLMTimeout(LLMError):
    def __init__(self, backend: str, after_s: float) -> None:
        super().__init__(backend, f"no complete reply within {after_s:.1f} s")
        self.after_s = after_s


@dataclass(frozen=True)
class ChatMessage:
    role: str  # system | user | assistant
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class GenerationParams:
    """``temperature`` 0 means greedy decoding (the default: answers are reproducible)."""

    max_new_tokens: int = 256
    temperature: float = 0.0
    timeout_s: float = 60.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    should_stop: Callable[[], bool] = field(default=lambda: False, compare=False, repr=False)


class LLM(ABC):
    """A chat model. ``name`` says which backend and model, for logs and metrics."""

    name: str = "llm"

    @abstractmethod
    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        """Yield the reply to ``messages`` piece by piece (see the module docstring)."""

    def complete(self, messages: Sequence[ChatMessage], params: GenerationParams) -> str:
        """The whole reply as one string."""
        return "".join(self.stream(messages, params))

    def close(self) -> None:
        """Release what the backend holds (connections, model memory). Idempotent."""
        return
