"""``clerk serve`` as an operator runs it, in a subprocess on 127.0.0.1: several workers on
PostgreSQL + Redis share the load and the conversations, and SIGTERM stops the server
within seconds while shoppers are mid-turn, leaving every stored turn whole."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from bot.store.db import Database
from bot.store.models import ConversationEvent
from tests.conftest import fresh_database
from tests.live import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


class Served:
    """``clerk serve`` in a subprocess; ``stop()`` sends SIGTERM and says how long it took."""

    def __init__(self, settings: Any, *, workers: int, redis: str | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {
            **os.environ,
            "CLERK_HOME": str(settings.home),
            "CLERK_DATABASE_URL": settings.database_url,
            "PYTHONPATH": str(ROOT),
            "CLERK_CONFIG": str(settings.home / "none.yml"),
        }
        if redis:
            env["CLERK_REDIS_URL"] = redis
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from bot.cli import main; main()",
                "serve",
                "--port",
                str(self.port),
                "--workers",
                str(workers),
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 120) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.proc.stderr.read().decode()[-3000:])  # type: ignore[union-attr]
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError("clerk serve did not become healthy")

    def stop(self) -> float:
        t = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
            return float("inf")
        return time.monotonic() - t


@pytest.fixture
def pg_settings(bot_settings, tmp_path: Path) -> Iterator[Any]:  # type: ignore[no-untyped-def]
    with fresh_database("postgresql", tmp_path) as url:
        yield bot_settings(url)


def _turns_whole(db: Database, cid: str) -> bool:
    """Every stored shopper message is followed by the bot's turn ending in a listen."""
    with db.session() as s:
        rows = s.scalars(
            select(ConversationEvent.data)
            .where(ConversationEvent.conversation_id == cid)
            .order_by(ConversationEvent.seq)
        ).all()
    return not rows or rows[-1].get("event") == "action" and rows[-1].get("name") == "action_listen"


def test_two_workers_share_shoppers_and_stop_on_sigterm(pg_settings, redis_url) -> None:  # type: ignore[no-untyped-def]
    served = Served(pg_settings, workers=2, redis=redis_url)
    try:
        served.wait_ready()
        pids = set()
        deadline = time.time() + 30
        while len(pids) < 2 and time.time() < deadline:  # a new connection each time
            pids.add(httpx.get(f"{served.url}/health", timeout=5).json()["worker"])
        assert len(pids) == 2

        async def shopper(n: int) -> list[int]:
            codes = []
            async with httpx.AsyncClient(base_url=served.url, timeout=60) as client:
                for text in ("hello", "how much is the bluetooth speaker?", "are you a bot?"):
                    r = await client.post(
                        "/webhooks/rest/webhook", json={"sender": f"w-{n}", "message": text}
                    )
                    codes.append(r.status_code)
            return codes

        async def crowd() -> list[list[int]]:
            return await asyncio.gather(*(shopper(n) for n in range(12)))

        assert all(code == 200 for codes in asyncio.run(crowd()) for code in codes)
        db = Database(pg_settings.database_url)
        try:
            for n in range(12):
                with db.session() as s:
                    texts = [
                        d["text"]
                        for d in s.scalars(
                            select(ConversationEvent.data)
                            .where(ConversationEvent.conversation_id == f"rest:w-{n}")
                            .order_by(ConversationEvent.seq)
                        )
                        if d.get("event") == "user"
                    ]
                assert texts == ["hello", "how much is the bluetooth speaker?", "are you a bot?"]
        finally:
            db.dispose()
    finally:
        took = served.stop()
    assert took < 10, f"SIGTERM took {took:.1f} s"


def test_sigterm_mid_load_stops_within_seconds_and_keeps_turns_whole(pg_settings) -> None:  # type: ignore[no-untyped-def]
    served = Served(pg_settings, workers=1, redis=None)
    outcomes: list[str] = []
    try:
        served.wait_ready()

        async def shopper(n: int) -> None:
            async with httpx.AsyncClient(base_url=served.url, timeout=20) as client:
                for i in range(20):
                    try:
                        r = await client.post(
                            "/webhooks/rest/webhook",
                            json={"sender": f"t-{n}", "message": f"how much is the lamp? ({i})"},
                        )
                        outcomes.append(str(r.status_code))
                    except httpx.HTTPError as exc:
                        outcomes.append(type(exc).__name__)
                        return

        async def load_then_stop() -> float:
            tasks = [asyncio.create_task(shopper(n)) for n in range(16)]
            await asyncio.sleep(1.5)
            took = await asyncio.to_thread(served.stop)
            await asyncio.wait_for(asyncio.gather(*tasks), 30)
            return took

        took = asyncio.run(load_then_stop())
    finally:
        if served.proc.poll() is None:
            served.stop()
    assert took < 10, f"SIGTERM took {took:.1f} s"
    assert "200" in outcomes
    assert set(outcomes) <= {"200", "503", "ConnectError", "ReadError", "RemoteProtocolError"}
    db = Database(pg_settings.database_url)
    try:
        assert all(_turns_whole(db, f"rest:t-{n}") for n in range(16))
    finally:
        db.dispose()
