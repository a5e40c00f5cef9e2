"""``OpenAIChatLLM``: any OpenAI-compatible chat completions endpoint.

vLLM, the llama.cpp server, Ollama (``/v1``) and OpenAI itself speak the same protocol:
``POST {base_url}/chat/completions`` with ``stream: true`` answers server-sent events, one
``data: {json}`` line per chunk with ``choices[0].delta.content``, ending with
``data: [DONE]``. A server that ignores ``stream`` and answers one JSON object works too.

The HTTP client is injected (an ``httpx.Client``; tests give it an ``httpx.MockTransport``
or point it at a fake server on 127.0.0.1); this class never creates connections of its
own. The whole reply has ``params.timeout_s`` seconds, which also bounds each read.

Retries: connection failures, timeouts and HTTP 408/429/5xx are retried up to ``retries``
times with exponential backoff (``backoff_s`` x 2^attempt, or the server's
``Retry-After``), as long as no text has been yielded yet and the deadline allows; after
the first piece of text a failure is final (a reply cannot be stitched from two attempts).
Other HTTP errors (401, 404, 400...) are not retried. Errors surface as ``LLMTimeout``
or ``LLMUnavailable``.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from bot.generation.llm import (
    LLM,
    ChatMessage,
    GenerationParams,
    LLMError,
    LLMTimeout,
    LLMUnavailable,
)

log = logging.getLogger(__name__)

RETRY_STATUS = frozenset({408, 429, 500, 502, 503, 504})


class _Retry(Exception):
    def __init__(self, message: str, wait_s: float | None = None) -> None:
        super().__init__(message)
        self.wait_s = wait_s


class OpenAIChatLLM(LLM):
    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        client: httpx.Client,
        api_key: str | None = None,
        retries: int = 2,
        backoff_s: float = 0.5,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.model = model
        self.client = client
        self.api_key = api_key
        self.retries = retries
        self.backoff_s = backoff_s
        self.sleep = sleep
        self.name = f"openai:{model}"

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Content-Type": "application/json"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return headers

    def _body(self, messages: Sequence[ChatMessage], params: GenerationParams) -> dict[str, Any]:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": [m.to_dict() for m in messages],
            "stream": True,
            "max_tokens": params.max_new_tokens,
            "temperature": params.temperature,
        }
        if params.stop:
            body["stop"] = list(params.stop)
        if params.seed is not None:
            body["seed"] = params.seed
        return body

    def stream(self, messages: Sequence[ChatMessage], params: GenerationParams) -> Iterator[str]:
        deadline = time.monotonic() + params.timeout_s
        body = self._body(messages, params)
        attempt = 0
        while True:
            yielded = False
            try:
                for piece in self._attempt(body, deadline, params):
                    yielded = True
                    yield piece
                return
            except _Retry as exc:
                if yielded:
                    if isinstance(exc.__cause__, httpx.TimeoutException):
                        raise LLMTimeout(self.name, params.timeout_s) from exc
                    raise LLMUnavailable(self.name, f"reply broke off: {exc}") from exc
                left = deadline - time.monotonic()
                wait = exc.wait_s if exc.wait_s is not None else self.backoff_s * 2**attempt
                if attempt >= self.retries or left <= wait:
                    if isinstance(exc.__cause__, httpx.TimeoutException) or left <= 0:
                        raise LLMTimeout(self.name, params.timeout_s) from exc
                    raise LLMUnavailable(self.name, str(exc)) from exc
                attempt += 1
                log.info("%s: %s; retry %d in %.2f s", self.name, exc, attempt, wait)
                self.sleep(wait)

    def _attempt(
        self, body: dict[str, Any], deadline: float, params: GenerationParams
    ) -> Iterator[str]:
        left = deadline - time.monotonic()
        if left <= 0:
            raise _Retry("deadline passed")
        timeout = httpx.Timeout(left, connect=min(left, 10.0))
        try:
            with self.client.stream(
                "POST", self.url, json=body, headers=self._headers(), timeout=timeout
            ) as response:
                if response.status_code in RETRY_STATUS:
                    response.read()
                    raise _Retry(f"HTTP {response.status_code}", _retry_after(response))
                if response.status_code >= 400:
                    response.read()
                    raise LLMUnavailable(
                        self.name, f"HTTP {response.status_code}: {response.text[:200]}"
                    )
                if "text/event-stream" not in response.headers.get("content-type", ""):
                    response.read()
                    yield from _whole_reply(response, self.name)
                    return
                for line in response.iter_lines():
                    if time.monotonic() > deadline:
                        raise LLMTimeout(self.name, params.timeout_s)
                    if params.should_stop():
                        return
                    piece = _event_text(line, self.name)
                    if piece is None:
                        return
                    if piece:
                        yield piece
        except httpx.TimeoutException as exc:
            raise _Retry(f"timed out: {exc!r}") from exc
        except httpx.TransportError as exc:
            raise _Retry(f"cannot reach {self.url}: {exc!r}") from exc
        except httpx.HTTPError as exc:  # pragma: no cover - other httpx errors
            raise LLMUnavailable(self.name, repr(exc)) from exc

    def close(self) -> None:
        self.client.close()


def _retry_after(response: httpx.Response) -> float | None:
    value = response.headers.get("retry-after")
    try:
        return min(float(value), 30.0) if value is not None else None
    except ValueError:
        return None


def _event_text(line: str, backend: str) -> str | None:
    """The text of one server-sent event line; ``None`` at ``[DONE]``; "" for others."""
    line = line.strip()
    if not line.startswith("data:"):
        return ""
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    try:
        chunk = json.loads(data)
    except json.JSONDecodeError as exc:
        raise LLMError(backend, f"malformed stream chunk: {data[:100]!r}") from exc
    if isinstance(chunk, dict) and chunk.get("error"):
        raise LLMUnavailable(backend, f"server error: {chunk['error']}")
    try:
        choice = chunk["choices"][0]
    except (KeyError, IndexError, TypeError):
        return ""
    delta = choice.get("delta") or choice.get("message") or {}
    return str(delta.get("content") or "")


def _whole_reply(response: httpx.Response, backend: str) -> Iterator[str]:
    try:
        data = response.json()
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise LLMError(backend, f"unexpected reply: {response.text[:200]!r}") from exc
    if content:
        yield str(content)
