"""Run Clerk's Alembic migrations from code.

The Alembic configuration is built here, pointing at ``bot/store/migrations`` next to this
file, so migrations work from an installed package with no ``alembic.ini`` on disk.

Contracts:

- ``upgrade(url)`` brings any database (SQLite or PostgreSQL) to ``head``. It is idempotent:
  on a database already at the target it changes nothing. All revisions of one call run in
  a single transaction (on SQLite too), so a failed migration leaves the database as it was.
  On PostgreSQL, concurrent callers serialise on an advisory lock; the second one finds the
  work done.
- A database whose tables were made by ``Database.create_all()`` (tests, quick starts) has
  no ``alembic_version`` row. ``upgrade`` adopts it: if its schema equals the models exactly
  it is stamped ``head`` (logged); if it differs, ``StoreError`` is raised and nothing is
  touched, because guessing which revision it is at could corrupt it.
- ``current(url)`` reads the revision without creating or changing anything.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.config import Config
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect, pool, text

from bot.errors import StoreError
from bot.store.db import normalise_url

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
VERSION_TABLE = "alembic_version"
# Key of the PostgreSQL advisory lock that serialises concurrent upgrades ("Clerk").
_PG_LOCK_KEY = 0x436C65726B


def alembic_config(url: str | None = None) -> Config:
    """An Alembic ``Config`` for Clerk's migrations, built in memory.

    Use it for Alembic commands this module does not wrap (``command.downgrade``,
    ``command.revision(..., autogenerate=True)``, ``command.history``). The URL, when given,
    travels in ``config.attributes`` (not the ini options, which would mangle ``%``).
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    if url is not None:
        cfg.attributes["url"] = normalise_url(url)
    return cfg


def head_revision() -> str:
    """The newest revision shipped with this code."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise StoreError(f"no migrations found in {MIGRATIONS_DIR}")
    return head


def upgrade(url: str, revision: str = "head") -> None:
    """Migrate the database at ``url`` up to ``revision`` (default: the newest).

    Creates the SQLite file and its folder when missing. Raises ``StoreError`` when the
    database holds Clerk tables without a migration record and they do not match the models.
    """
    engine = _engine(url, begin="BEGIN IMMEDIATE")
    try:
        with engine.begin() as conn:
            if conn.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _PG_LOCK_KEY})
            cfg = alembic_config(url)
            cfg.attributes["connection"] = conn
            if _unversioned_clerk_schema(conn):
                _adopt(conn, cfg)
            command.upgrade(cfg, revision)
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database is at, or ``None`` for a database never migrated.

    Never creates anything: a SQLite file that does not exist reads as ``None``.
    """
    path = _sqlite_path(normalise_url(url))
    if path is not None and not path.exists():
        return None
    engine = _engine(url, begin="BEGIN")
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    finally:
        engine.dispose()


# ----------------------------------------------------------------------------- helpers


def _sqlite_path(url: str) -> Path | None:
    prefix = "sqlite:///"
    if url.startswith(prefix) and len(url) > len(prefix):
        return Path(url[len(prefix) :].split("?", 1)[0])
    return None


def _engine(url: str, *, begin: str) -> Engine:
    """A single-use engine for migrations.

    Unlike ``Database``, SQLite foreign keys stay off here (a batch migration copies tables,
    and ``ON DELETE CASCADE`` would fire during the copy), and every SQLite transaction
    starts with the explicit ``begin`` statement, so DDL is transactional there as well
    (``BEGIN IMMEDIATE`` also makes concurrent upgraders wait their turn).
    """
    url = normalise_url(url)
    path = _sqlite_path(url)
    if path is None:
        return create_engine(url, poolclass=pool.NullPool)
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(
        url, poolclass=pool.NullPool, connect_args={"isolation_level": None, "timeout": 30}
    )

    @event.listens_for(engine, "begin")
    def _begin(conn: Connection) -> None:
        conn.exec_driver_sql(begin)

    return engine


def _unversioned_clerk_schema(conn: Connection) -> bool:
    """True when the database holds Clerk's tables but no migration record."""
    from bot.store.models import Base

    tables = set(inspect(conn).get_table_names())
    return VERSION_TABLE not in tables and bool(tables & set(Base.metadata.tables))


def _adopt(conn: Connection, cfg: Config) -> None:
    """Stamp a ``create_all()`` schema as ``head`` when it matches the models exactly."""
    from bot.store.models import Base

    context = MigrationContext.configure(conn, opts={"compare_type": True})
    diff: list[Any] = compare_metadata(context, Base.metadata)
    if diff:
        raise StoreError(
            "the database has Clerk tables but no migration record, and its schema differs "
            f"from the models ({len(diff)} differences, first: {diff[0]!r}); "
            "migrate it by hand or start from an empty database"
        )
    log.warning("database schema was created without migrations; stamping it as head")
    command.stamp(cfg, "head")
