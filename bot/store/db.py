"""Engine, sessions, and the thread pool that keeps database work off the event loop.

``Database.session()`` is the one way code gets a SQLAlchemy session. ``Database.unit()``
opens a unit of work: any code running in the same context (an in-process action and the
helpers it calls) that asks for ``session()`` gets that same session, so the unit commits
once or rolls back as a whole. Outside a unit, ``session()`` opens its own session and
commits when the block ends without error. ``Database.read()`` is for long reads (the
support report): one read-only snapshot, never a write lock.

All of these are blocking calls. Async code never calls them directly: it hands a function
to ``await Database.call(fn, ...)``, which runs it on the database's own worker threads.
There are as many threads as pooled connections, so a thread never waits for a connection;
a caller that finds every thread busy waits up to ``queue_timeout`` seconds and then gets
``Overloaded`` (HTTP 503 with ``Retry-After``), so the server answers rather than freezes;
a database that cannot be reached gives ``DatabaseUnavailable`` (also a 503). Long reads go
through ``await Database.call_aside(fn, ...)`` instead: one thread of their own, so a
report never takes a turn's thread or slot; they queue behind each other.

SQLite has one writer. Every SQLite transaction starts with ``BEGIN IMMEDIATE`` (so a
transaction that reads then writes never fails half-way on a busy database) and, within
one process, holds a lock that hands the writer slot over fairly between threads instead of
SQLite's sleep-and-retry. Transactions are short: nobody holds one across a network wait.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.orm import Session, sessionmaker

from bot.errors import DatabaseUnavailable, Overloaded

P = ParamSpec("P")
T = TypeVar("T")


class OwnSessions:
    """Marks an action that must not run inside the turn's unit of work: it only reads,
    in short ``Database.session()`` blocks of its own, and does slow work (a model) between
    them, which no open transaction (on SQLite: the writer lock) may wait on. The
    in-process action runner (``bot.actions``) runs such an action on the event loop; the
    action hands its blocking work to a thread itself."""


_unit_session: contextvars.ContextVar[Session | None] = contextvars.ContextVar(
    "clerk_unit_session", default=None
)

DEFAULT_POOL_SIZE = 10
READ_ONLY = "clerk_read_only"  # connection option: SQLite begins a deferred transaction
DEFAULT_QUEUE_TIMEOUT = 5.0


def normalise_url(url: str) -> str:
    """Accept ``postgresql://`` and pick the psycopg 3 driver for it."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


class Database:
    """Owns one engine and its worker threads. Build it in ``app.py`` (an action server's
    actions use ``bot.store_actions.base.database_from_env``)."""

    def __init__(
        self,
        url: str,
        *,
        echo: bool = False,
        pool_size: int = DEFAULT_POOL_SIZE,
        queue_timeout: float = DEFAULT_QUEUE_TIMEOUT,
    ) -> None:
        self.url = normalise_url(url)
        self.pool_size = max(1, pool_size)
        self.queue_timeout = queue_timeout
        if self.url.startswith("sqlite:///"):
            Path(self.url[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
        kwargs: dict[str, Any] = {"echo": echo}
        if self.is_sqlite:
            # isolation_level=None + an explicit BEGIN: pysqlite's own transaction handling
            # breaks SAVEPOINTs, which a unit of work uses to roll back one failed step.
            kwargs["connect_args"] = {
                "check_same_thread": False,
                "timeout": 30,
                "isolation_level": None,
            }
        else:
            # One connection per worker thread, a few spare for synchronous callers
            # (migrations, CLI commands); a caller never waits long for one.
            kwargs.update(
                pool_pre_ping=True,
                pool_size=self.pool_size,
                max_overflow=4,
                pool_timeout=queue_timeout,
            )
        self.engine: Engine = create_engine(self.url, **kwargs)
        self._writer = threading.RLock() if self.is_sqlite else None
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
                read_only = conn.get_execution_options().get(READ_ONLY, False)
                conn.exec_driver_sql("BEGIN" if read_only else "BEGIN IMMEDIATE")

        self._factory = sessionmaker(self.engine, expire_on_commit=False)
        self._threads: ThreadPoolExecutor | None = None
        self._aside: ThreadPoolExecutor | None = None
        self._slots: asyncio.Semaphore | None = None
        self._slots_loop: asyncio.AbstractEventLoop | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.url.startswith("sqlite")

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    # ------------------------------------------------------------------ blocking API
    @contextlib.contextmanager
    def session(self) -> Iterator[Session]:
        current = _unit_session.get()
        if current is not None:
            yield current
            return
        with self._transaction() as s:
            yield s

    def in_unit(self) -> bool:
        """Whether this context is inside a unit of work (``unit()``)."""
        return _unit_session.get() is not None

    @contextlib.contextmanager
    def read(self, *, statement_timeout_s: float | None = None) -> Iterator[Session]:
        """A read-only session on one consistent snapshot, rolled back at the end, for long
        reads (the support report). A write in it fails (``DBAPIError``): PostgreSQL runs
        a ``READ ONLY`` transaction, SQLite the connection with ``PRAGMA query_only`` (reset
        before the connection goes back to the pool). On SQLite it takes neither the
        writer slot nor SQLite's write lock (a deferred ``BEGIN``; in WAL mode a reader
        never blocks the writer), so turns keep committing while it reads. On PostgreSQL
        ``statement_timeout_s`` caps each statement (``SET LOCAL statement_timeout``), so
        a report cannot hold its snapshot (and vacuum) back for long; a statement over it
        fails (``OperationalError``). SQLite has no such timeout (ignored)."""
        with self.engine.connect() as conn:
            options: dict[str, Any] = {READ_ONLY: True}
            if not self.is_sqlite:  # a SQLite transaction is one snapshot already
                options["isolation_level"] = "REPEATABLE READ"
                options["postgresql_readonly"] = True  # reset when the connection returns
            conn.execution_options(**options)
            raw = conn.connection.dbapi_connection if self.is_sqlite else None
            if raw is not None:
                raw.execute("PRAGMA query_only=ON")
            try:
                with Session(bind=conn) as s:
                    try:
                        if statement_timeout_s is not None and not self.is_sqlite:
                            ms = max(1, int(statement_timeout_s * 1000))
                            s.execute(text(f"SET LOCAL statement_timeout = {ms}"))
                        yield s
                    finally:
                        s.rollback()
            finally:
                if raw is not None:
                    try:
                        raw.execute("PRAGMA query_only=OFF")
                    except Exception:
                        conn.invalidate()  # never hand a read-only connection to a writer
                        raise

    @contextlib.contextmanager
    def unit(self) -> Iterator[Session]:
        """A unit of work: ``session()`` calls in this context share one transaction,
        committed at the end or rolled back as a whole."""
        if _unit_session.get() is not None:
            raise RuntimeError("a unit of work is already open in this context")
        with self._transaction() as s:
            token = _unit_session.set(s)
            try:
                yield s
            finally:
                _unit_session.reset(token)

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Session]:
        with self._write_slot(), self._factory() as s:
            try:
                yield s
                s.commit()
            except BaseException:
                s.rollback()
                raise

    @contextlib.contextmanager
    def _write_slot(self) -> Iterator[None]:
        if self._writer is None:
            yield
            return
        with self._writer:
            yield

    # ------------------------------------------------------------------ async API
    async def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking ``fn(*args, **kwargs)`` on a database thread; raise ``Overloaded``
        when no thread frees up within ``queue_timeout`` seconds. The caller's context
        variables travel with the call."""
        return await self.call_within(self.queue_timeout, fn, *args, **kwargs)

    async def call_within(
        self, patience: float, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """``call`` waiting up to ``patience`` seconds for a thread (clean-up work that
        should rather wait than fail)."""
        slots = self._slot_semaphore()
        try:
            # asyncio.timeout, not wait_for: on Python 3.11 wait_for can swallow a cancel
            # that arrives as the semaphore is acquired (a task then never stops)
            async with asyncio.timeout(patience):
                await slots.acquire()
        except TimeoutError:
            raise Overloaded("database", retry_after=max(1.0, self.queue_timeout)) from None
        try:
            return await _run_on(self._executor(), fn, *args, **kwargs)
        finally:
            slots.release()

    async def call_aside(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run blocking ``fn`` (a long read, with ``read()``) on the database's one
        long-read thread: it takes none of the turn-serving threads and slots ``call``
        hands out, and long reads run one at a time (the rest wait their turn; a waiting
        one that is cancelled never runs). ``DatabaseUnavailable`` as ``call``."""
        if self._aside is None:
            self._aside = ThreadPoolExecutor(1, thread_name_prefix="clerk-db-read")
        return await _run_on(self._aside, fn, *args, **kwargs)

    def _slot_semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        if self._slots is None or self._slots_loop is not loop:
            self._slots = asyncio.Semaphore(self.pool_size)
            self._slots_loop = loop
        return self._slots

    def _executor(self) -> ThreadPoolExecutor:
        if self._threads is None:
            self._threads = ThreadPoolExecutor(self.pool_size, thread_name_prefix="clerk-db")
        return self._threads

    # ------------------------------------------------------------------ lifecycle
    def create_all(self) -> None:
        """Create the schema directly (tests); production uses ``clerk db upgrade``."""
        from bot.store.models import Base

        Base.metadata.create_all(self.engine)

    def dispose(self) -> None:
        for pool in (self._threads, self._aside):
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        self._threads = self._aside = None
        self.engine.dispose()


async def _run_on(
    pool: ThreadPoolExecutor, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs
) -> T:
    """Run blocking ``fn`` on ``pool`` in this context's copy (a unit's session travels
    with it); a database that cannot be reached is ``DatabaseUnavailable``."""
    ctx = contextvars.copy_context()
    loop = asyncio.get_running_loop()
    try:
        return await loop.run_in_executor(pool, lambda: ctx.run(fn, *args, **kwargs))
    except (OperationalError, InterfaceError) as exc:
        # unreachable, restarting, locked too long: the work was rolled back; callers
        # retry later (HTTP 503), and the pool reconnects (pre-ping) when it is back
        raise DatabaseUnavailable(
            str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        ) from exc
