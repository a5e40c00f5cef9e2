"""One writer per conversation, across tasks, worker processes and hosts.

``ConversationGate.hold(cid, channel)`` waits for the conversation (an asyncio lock within
this process, then the conversation's lease in the database, see
``bot.store.conversations``), reads it, and keeps the lease alive while the caller works
with no database connection held. ``finish(holding, write)`` runs ``write(session)`` and
appends its events in one short transaction, only while the lease is still the holder's;
leaving ``hold`` without finishing releases the lease and writes nothing.

Failure modes, all ``ConversationBusy`` (HTTP 503 with ``Retry-After``; nothing stored):
the conversation stayed held by someone else for ``wait`` seconds, or the lease was lost
(this process stalled past the lease) before the turn could commit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
import weakref
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

from sqlalchemy.orm import Session

from bot.dialogue.sealing import Sealer
from bot.errors import ConversationBusy
from bot.store import conversations
from bot.store.conversations import Snapshot
from bot.store.db import Database
from bot.types import ConversationId, Event

log = logging.getLogger(__name__)

R = TypeVar("R")

LEASE_SECONDS = 15.0
WAIT_SECONDS = 30.0
_POLL_FIRST, _POLL_MAX = 0.01, 0.2


@dataclass
class Holding:
    """The caller's hold on one conversation."""

    snapshot: Snapshot
    owner: str
    finished: bool = False
    lost: bool = False


@dataclass
class Outcome(Generic[R]):
    """What a holder writes when it finishes: the new events, the columns derived from
    the tracker, and any value the caller wants back."""

    events: list[Event]
    handoff_status: str
    customer_id: str | None = None
    result: R | None = None


class ConversationGate:
    def __init__(
        self,
        db: Database,
        *,
        lease_seconds: float = LEASE_SECONDS,
        wait_seconds: float = WAIT_SECONDS,
        sealer: Sealer | None = None,
    ) -> None:
        """``sealer``: seals shoppers' personal data in the events written and opens it
        in the events read (``bot.dialogue.sealing``; None: stored as said)."""
        self.db = db
        self.sealer = sealer
        self.lease_seconds = lease_seconds
        self.wait_seconds = wait_seconds
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    @contextlib.asynccontextmanager
    async def hold(
        self, cid: ConversationId, channel: str, *, create: bool = True
    ) -> AsyncIterator[Holding]:
        """Hold ``cid`` (created on ``channel`` if new, unless ``create`` is False)."""
        lock = self._locks.get(cid)
        if lock is None:
            lock = self._locks[cid] = asyncio.Lock()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.wait_seconds
        try:
            await asyncio.wait_for(lock.acquire(), self.wait_seconds)
        except TimeoutError:
            raise ConversationBusy(cid, retry_after=2.0) from None
        try:
            holding = await self._claim(cid, channel, create, deadline)
            heartbeat = asyncio.create_task(self._heartbeat(holding))
            try:
                yield holding
            finally:
                heartbeat.cancel()
                if not holding.finished:
                    await self._release(holding)
        finally:
            lock.release()

    async def finish(self, holding: Holding, write: Callable[[Session], Outcome[R]]) -> Outcome[R]:
        """Run ``write`` and append its events in one transaction, then release."""

        def work() -> Outcome[R]:
            with self.db.session() as session:
                outcome = write(session)
                ok = conversations.commit(
                    session,
                    holding.snapshot,
                    holding.owner,
                    self.sealer.seal(outcome.events) if self.sealer else outcome.events,
                    handoff_status=outcome.handoff_status,
                    customer_id=outcome.customer_id,
                )
                if not ok:
                    raise _LeaseLost()
                return outcome

        try:
            outcome = await self.db.call(work)
        except _LeaseLost:
            holding.lost = True
            log.warning(
                "lost the lease on %s before committing; the turn is dropped",
                holding.snapshot.conversation_id,
            )
            raise ConversationBusy(holding.snapshot.conversation_id) from None
        holding.finished = True
        return outcome

    # ------------------------------------------------------------------ internals
    async def _claim(
        self, cid: ConversationId, channel: str, create: bool, deadline: float
    ) -> Holding:
        loop = asyncio.get_running_loop()
        owner = uuid.uuid4().hex
        pause = _POLL_FIRST
        while True:
            snapshot = await self.db.call(self._claim_once, cid, channel, owner, create)
            if snapshot is not None:
                return Holding(snapshot, owner)
            if loop.time() + pause > deadline:
                raise ConversationBusy(cid, retry_after=2.0)
            await asyncio.sleep(pause)
            pause = min(_POLL_MAX, pause * 2)

    def _claim_once(
        self, cid: ConversationId, channel: str, owner: str, create: bool
    ) -> Snapshot | None:
        with self.db.session() as session:
            snapshot = conversations.claim(
                session, cid, channel, owner, self.lease_seconds, create=create
            )
        if snapshot is None or self.sealer is None:
            return snapshot
        return replace(snapshot, events=self.sealer.open(snapshot.events))

    async def _heartbeat(self, holding: Holding) -> None:
        cid = holding.snapshot.conversation_id
        while True:
            await asyncio.sleep(self.lease_seconds / 3)
            try:
                kept = await self.db.call(self._renew, cid, holding.owner)
            except Exception:  # the database may be back before the lease runs out
                log.warning("could not renew the lease on %s", cid, exc_info=True)
                continue
            if not kept:
                holding.lost = True
                return

    def _renew(self, cid: ConversationId, owner: str) -> bool:
        with self.db.session() as session:
            return conversations.renew(session, cid, owner, self.lease_seconds)

    async def _release(self, holding: Holding) -> None:
        try:
            await self.db.call_within(
                self.lease_seconds,
                self._release_once,
                holding.snapshot.conversation_id,
                holding.owner,
            )
        except Exception:  # it expires on its own
            log.warning(
                "could not release the lease on %s", holding.snapshot.conversation_id, exc_info=True
            )

    def _release_once(self, cid: ConversationId, owner: str) -> None:
        with self.db.session() as session:
            conversations.release(session, cid, owner)


class _LeaseLost(Exception):
    pass
