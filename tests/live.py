"""Real servers on 127.0.0.1 for tests: Clerk's ASGI app under uvicorn in a thread, a
rasa-sdk action server in a subprocess, and ``Chat``, a REST-channel conversation."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Self

import httpx
import uvicorn

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """``app`` under uvicorn on a free port of 127.0.0.1, in a thread. ``options``: more
    ``uvicorn.Config`` keywords, e.g. ``bot.server.server_config(...)``'s (its app, host and
    port are replaced by this server's)."""

    def __init__(self, app: Any, options: dict[str, Any] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        kwargs = {"log_level": "warning", **(options or {}), "lifespan": "on"}
        kwargs.update(app=app, host="127.0.0.1", port=self.port, workers=1)
        config = uvicorn.Config(**kwargs)
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(target=self._server.run, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        deadline = time.time() + 30
        while not self._server.started:
            if time.time() > deadline or not self._thread.is_alive():
                raise RuntimeError("the test server did not start")
            time.sleep(0.02)
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)


@contextlib.contextmanager
def bot_server(settings: Any, encoder: Any, **build: Any) -> Iterator[LiveServer]:
    """Clerk built from ``settings`` (``bot.app.build`` keywords in ``build``), served on
    127.0.0.1; its parts are ``server.parts``."""
    from bot.app import build as build_parts
    from bot.app import create_app

    parts = build_parts(settings, encoder=encoder, **build)
    with LiveServer(create_app(parts)) as live:
        live.parts = parts  # type: ignore[attr-defined]
        yield live


class ActionServer:
    """``clerk actions`` (the store actions and the demo project's own, on rasa-sdk's action
    server) on a free port, against ``database_url``."""

    def __init__(self, database_url: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/webhook"
        self.database_url = database_url
        self.proc: subprocess.Popen[bytes] | None = None

    def __enter__(self) -> Self:
        env = {**os.environ, "CLERK_DATABASE_URL": self.database_url, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot.cli",
                "--project",
                str(ROOT),
                "actions",
                "--port",
                str(self.port),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.time() + 60
        while time.time() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode() if self.proc.stderr else ""
                raise RuntimeError(f"action server exited: {err[-2000:]}")
            try:
                if httpx.get(f"http://127.0.0.1:{self.port}/health", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("action server did not become healthy")

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()


@dataclass
class Chat:
    """One shopper talking to the bot through the REST channel."""

    base_url: str
    sender: str = field(default_factory=lambda: f"shopper-{uuid.uuid4().hex[:10]}")
    history: list[tuple[str, list[dict[str, Any]]]] = field(default_factory=list)

    @property
    def conversation_id(self) -> str:
        """Where the server keeps this shopper's conversation (REST ids carry the channel)."""
        return f"rest:{self.sender}"

    def say(self, text: str) -> list[dict[str, Any]]:
        resp = httpx.post(
            f"{self.base_url}/webhooks/rest/webhook",
            json={"sender": self.sender, "message": text},
            timeout=60,
        )
        assert resp.status_code == 200, resp.text
        replies = resp.json()
        self.history.append((text, replies))
        return replies

    def text(self, text: str) -> str:
        """Say ``text``; return the bot's replies joined, lower-cased for matching."""
        return "\n".join(r.get("text") or "" for r in self.say(text)).lower()

    def transcript(self) -> str:
        lines = []
        for said, replies in self.history:
            lines.append(f"you: {said}")
            lines.extend(f"bot: {r.get('text')}" for r in replies)
        return "\n".join(lines)
