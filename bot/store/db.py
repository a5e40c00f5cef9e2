"""Engine and sessions.

``Database.session()`` is the one way code gets a SQLAlchemy session. Inside a dialogue
turn the manager opens the turn's session with ``Database.turn()``; any code running in
the same asyncio task (in-process actions included) that asks for ``session()`` then gets
that same session, so the whole turn commits once or rolls back as a whole. Outside a
turn, ``session()`` opens its own session and commits when the block ends without error.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterator
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

_turn_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "clerk_turn_session", default=None
)


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and pick the psycopg 3 driver for it."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Database:
    """Owns one engine. Build it in ``app.py`` (or ``from_env`` in an action server)."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = normalise_url(url)
        if self.url.startswith("sqlite:///"):
            Path(self.url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict = {"echo": echo, "future": True}
        if self.is_sqlite:
            # isolation_level=None + an explicit BEGIN: pysqlite's own transaction handling
            # breaks SAVEPOINTs, which a turn uses to roll back one failed action.
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": 30,
                "isolation_level": None,
            }
        else:
            kwargs.update(pool_pre_ping=True, pool_size=10, max_overflow=10)
        self.engine: Engine = create_engine(self.url, **kwargs)
        if self.is_sqlite:

            @event.listens_for(self.engine, "connect")
            def _sqlite_pragmas(dbapi_conn, _record):  # type: ignore[no-untyped-def]
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA foreign_keys=ON")
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute("PRAGMA synchronous=NORMAL")
                cur.close()

            @event.listens_for(self.engine, "begin")
            def _sqlite_begin(conn):  # type: ignore[no-untyped-def]
                conn.exec_driver_sql("BEGIN")

        self._factory = sessionmaker(self.engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @classmethod
    def from_env(cls) -> Database:
        """For processes that are not built by ``app.py`` (a remote rasa-sdk action server)."""
        from bot.config import Settings

        return cls(Settings.load().database_url)

    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        current = _turn_session.get()
        if current is not None:
            yield current
            return
        with self._factory() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextlib.contextmanager
    def turn(self) -> Iterator[Session]:
        """The session of one dialogue turn: commits once at the end, or rolls back."""
        if _turn_session.get() is not None:
            raise RuntimeError("a turn is already open in this context")
        with self._factory() as s:
            token = _turn_session.set(s)
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise
            finally:
                _turn_session.reset(token)

    def create_all(self) -> None:
        """Create the schema directly (tests); production uses ``clerk db upgrade``."""
        from bot.store.models import Base

        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        self.engine.dispose()

