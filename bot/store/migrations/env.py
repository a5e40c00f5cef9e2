"""Alembic environment for Clerk's schema.

Contract: ``bot.store.migrate`` is the normal entry point. It builds the Alembic config in
code (no ``alembic.ini`` on disk) and hands this script an open connection through
``config.attributes["connection"]``; the migrations then run inside that connection's
transaction, and the caller commits. Without a connection (the plain ``alembic`` command
pointed at this directory), the URL comes from ``config.attributes["url"]``, the
``sqlalchemy.url`` option, or ``CLERK_DATABASE_URL``, in that order.

``target_metadata`` is the models' metadata, so ``alembic revision --autogenerate`` can
draft the next migration. The migration files themselves never import the models: each
revision states its schema explicitly and stays valid when the models move on.
"""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import Connection, create_engine, pool

from bot.store.db import normalise_url
from bot.store.models import Base

config = context.config
target_metadata = Base.metadata


def _url() -> str:
    url = (
        config.attributes.get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("CLERK_DATABASE_URL", "")
    )
    if not url:
        raise RuntimeError("no database URL: pass one to bot.store.migrate.upgrade()")
    return normalise_url(str(url))


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        # SQLite cannot ALTER most things; batch mode rebuilds the table instead.
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    """Emit the SQL as a script (``alembic upgrade --sql``) instead of running it."""
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = create_engine(_url(), poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            _run(conn)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
