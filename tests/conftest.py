"""Shared fixtures.

``database_url`` is parametrised over SQLite and the real PostgreSQL on 127.0.0.1:5432:
every test that uses ``db`` runs on both. Each PostgreSQL test gets a fresh database
(created from a template made once per session), dropped afterwards. When PostgreSQL is not
reachable the postgres variants are skipped locally and fail in CI (CI=true).
"""

from __future__ import annotations

import contextlib
import os
import socket
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("CLERK_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def _listening(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1):
            return True
    except OSError:
        return False


def _pg_up() -> bool:
    return _listening(5432)


@pytest.fixture
def redis_url() -> str:
    """The Redis server on 127.0.0.1:6379 (database 15, for tests). Skipped locally when it
    is not running; a failure in CI (CI=true), where `.ci/run` starts it."""
    if not _listening(6379):
        if os.environ.get("CI"):
            pytest.fail("Redis is not running on 127.0.0.1:6379")
        pytest.skip("Redis is not running on 127.0.0.1:6379")
    return "redis://127.0.0.1:6379/15"


@pytest.fixture(autouse=True)
def _no_outside_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any test that opens a connection to anything but this machine."""
    real_connect = socket.socket.connect

    def guarded(self: socket.socket, address) -> None:  # type: ignore[no-untyped-def]
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, str) and not (
            host in ("localhost", "::1") or host.startswith(("127.", "/"))
        ):
            raise RuntimeError(f"test tried to reach the outside network: {address!r}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", guarded)


def _pg_exec(sql: str) -> None:
    import psycopg

    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(sql)


@contextlib.contextmanager
def fresh_database(kind: str, folder: Path) -> Iterator[str]:
    """A new, empty database of ``kind`` (sqlite | postgresql); its URL. Dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{folder / f'clerk-{uuid.uuid4().hex[:8]}.db'}"
        return
    if not _pg_up():
        if os.environ.get("CI"):
            pytest.fail("PostgreSQL is not running on 127.0.0.1:5432")
        pytest.skip("PostgreSQL is not running on 127.0.0.1:5432")
    name = f"clerk_test_{uuid.uuid4().hex[:12]}"
    _pg_exec(f'CREATE DATABASE "{name}"')
    try:
        yield f"postgresql://postgres@127.0.0.1:5432/{name}"
    finally:
        _pg_exec(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@pytest.fixture(params=BACKENDS)
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh database per test, on SQLite and on PostgreSQL."""
    with fresh_database(request.param, tmp_path) as url:
        yield url


@pytest.fixture(scope="module", params=BACKENDS)
def module_database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A fresh database per test module, on SQLite and on PostgreSQL."""
    with fresh_database(request.param, tmp_path_factory.mktemp("db")) as url:
        yield url


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:  # noqa: F821
    from bot.store.db import Database

    database = Database(database_url)
    database.create_all()
    try:
        yield database
    finally:
        database.dispose()


@pytest.fixture(scope="session")
def encoder():  # type: ignore[no-untyped-def]
    from bot.nlu.encoder import Encoder

    return Encoder()


@pytest.fixture(scope="session")
def knowledge_dir() -> Path:
    return ROOT / "knowledge"


@pytest.fixture(scope="session")
def demo_catalog(knowledge_dir: Path):  # type: ignore[no-untyped-def]
    """The demo store's catalog, resolved (product names, options, variants)."""
    from bot.knowledge.catalog import CatalogResolver

    return CatalogResolver.from_json(knowledge_dir / "catalog" / "products.json")


@pytest.fixture(scope="session")
def fact_guard(demo_catalog):  # type: ignore[no-untyped-def]
    """A fact guard over the demo catalog."""
    from bot.generation.guard import FactGuard

    return FactGuard(demo_catalog)


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return ROOT / "training_data"


# ---------------------------------------------------------------------------------------
# A prepared Clerk home (demo store, knowledge index, trained NLU), built once per test run
# and shared: tests that need a whole bot build it with `bot_settings(database_url)`.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def prepared_home(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from bot.app import make_encoder, prepare
    from bot.config import Settings

    home = tmp_path_factory.mktemp("clerk-home")
    settings = Settings.load(
        {"CLERK_HOME": str(home), "CLERK_PROJECT": str(ROOT)}, config_file=home / "none.yml"
    )
    encoder = make_encoder(settings)
    prepare(settings, encoder=encoder)
    return settings, encoder


def on_loaded_database(settings, database_url: str, **overrides):  # type: ignore[no-untyped-def]
    """``settings`` on ``database_url``, migrated and loaded with the store data of the
    settings' knowledge folder; ``overrides``: more Settings fields."""
    import dataclasses

    from bot.knowledge.store_load import load_store
    from bot.store import migrate
    from bot.store.db import Database

    migrate.upgrade(database_url)
    db = Database(database_url)
    try:
        load_store(db, settings.knowledge_dir)
    finally:
        db.dispose()
    return dataclasses.replace(settings, database_url=database_url, **overrides)


@pytest.fixture(scope="session")
def bot_settings(prepared_home):  # type: ignore[no-untyped-def]
    """``bot_settings(database_url)`` -> Settings sharing the prepared models and index, on a
    database that is migrated and loaded with the demo store."""
    settings, _ = prepared_home

    def make(database_url: str, **overrides):  # type: ignore[no-untyped-def]
        return on_loaded_database(settings, database_url, **overrides)

    return make


@pytest.fixture(scope="session")
def shared_encoder(prepared_home):  # type: ignore[no-untyped-def]
    return prepared_home[1]
