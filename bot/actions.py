"""The bridge to rasa-sdk: runs custom actions through the action-server protocol.

``ActionRunner.run(action, payload)`` takes Rasa's action-call payload (``next_action``,
``sender_id``, ``tracker``, ``domain``, ``version``) and returns ``{"events", "responses"}``.

- ``InProcessActionRunner`` executes actions with rasa-sdk's own ``ActionExecutor`` in this
  process: on a database thread of ``Database.call``, each action in its own unit of work
  (so store code that blocks on the database never blocks the event loop, and a failed
  action leaves no trace). An action marked ``bot.store.db.OwnSessions`` (read-only, with
  slow work between its reads: recommendations) runs on the event loop instead, outside
  any unit; it opens its own short sessions and runs its blocking work on a thread.
- ``RemoteActionRunner`` POSTs to a rasa-sdk action server (``python -m rasa_sdk``) at
  ``CLERK_ACTION_ENDPOINT`` through an injected ``httpx.AsyncClient``.

Both raise ``ActionError`` when the action fails and ``ActionServerUnavailable`` when the
server cannot be reached; the dialogue manager turns those into a polite reply.
"""

from __future__ import annotations

import abc
import asyncio
import contextvars
import logging
import threading
from collections.abc import Iterable
from typing import Any

import httpx

from bot.errors import ActionError, ActionServerUnavailable
from bot.store.db import Database, OwnSessions

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "3.6.21"


class ActionRunner(abc.ABC):
    @abc.abstractmethod
    async def run(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run one action; return ``{"events": [...], "responses": [...]}``."""

    def has_action(self, action: str) -> bool:
        """Whether this runner knows the action (a remote server is assumed to)."""
        return True

    async def aclose(self) -> None:
        return None


class InProcessActionRunner(ActionRunner):
    """``db``: the database the actions use; each action then runs on one of its threads
    inside ``Database.unit()``, driven by that thread's own event loop. Without one the
    action runs on the caller's loop (actions that do no blocking I/O)."""

    def __init__(self, actions: Iterable[Any], db: Database | None = None) -> None:
        from rasa_sdk.executor import ActionExecutor

        self._executor = ActionExecutor()
        self._own_sessions: set[str] = set()
        for action in actions:
            self._executor.register_action(action)
            if isinstance(action, OwnSessions):
                self._own_sessions.add(str(action.name()))  # type: ignore[attr-defined]
        self._db = db
        self._loops = threading.local()

    def has_action(self, action: str) -> bool:
        return action in self._executor.actions

    async def run(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        if not self.has_action(action):
            raise ActionError(action, "no such action is registered")
        if self._db is None or action in self._own_sessions:
            return await self._execute(action, payload)
        return await self._db.call(self._run_in_unit, self._db, action, payload)

    def _run_in_unit(self, db: Database, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        runner: asyncio.Runner | None = getattr(self._loops, "runner", None)
        if runner is None:
            runner = self._loops.runner = asyncio.Runner()
        with db.unit():
            # The unit's session travels in this context: a Runner's own context is the
            # one it was first used in, a closed unit's.
            return runner.run(self._execute(action, payload), context=contextvars.copy_context())

    async def _execute(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        from rasa_sdk.interfaces import ActionExecutionRejection

        try:
            result = await self._executor.run(payload)
        except ActionExecutionRejection as exc:
            return {
                "events": [{"event": "action_execution_rejected", "name": action}],
                "responses": [],
                "rejected": str(exc),
            }
        except ActionError:
            raise
        except Exception as exc:  # an action's own bug must not take the turn down
            log.exception("action %s raised", action)
            raise ActionError(action, f"{type(exc).__name__}: {exc}") from exc
        if result is None:
            return {"events": [], "responses": []}
        return result.model_dump(by_alias=True)


class RemoteActionRunner(ActionRunner):
    def __init__(
        self,
        endpoint: str,
        client: httpx.AsyncClient | None = None,
        *,
        timeout: float = 10.0,
        retries: int = 1,
    ) -> None:
        self.endpoint = endpoint
        self._client = client or httpx.AsyncClient(timeout=timeout)
        self._own_client = client is None
        self._retries = retries

    async def run(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        last: Exception | None = None
        for attempt in range(self._retries + 1):
            try:
                resp = await self._client.post(self.endpoint, json=payload)
            except (httpx.ConnectError, httpx.TimeoutException, httpx.NetworkError) as exc:
                last = exc
                if attempt < self._retries:
                    await asyncio.sleep(0.2 * (attempt + 1))
                continue
            if resp.status_code == 200:
                data = resp.json()
                return {
                    "events": data.get("events") or [],
                    "responses": data.get("responses") or [],
                }
            if resp.status_code == 400:
                body = _safe_json(resp)
                if body.get("error") and "rejected" in str(body.get("error")).lower():
                    return {
                        "events": [{"event": "action_execution_rejected", "name": action}],
                        "responses": [],
                        "rejected": body.get("error"),
                    }
            if resp.status_code == 404:
                raise ActionError(action, "the action server does not know this action")
            raise ActionError(
                action, f"action server answered HTTP {resp.status_code}: {resp.text[:200]}"
            )
        raise ActionServerUnavailable(action, self.endpoint, str(last))

    async def aclose(self) -> None:
        if self._own_client:
            await self._client.aclose()


def _safe_json(resp: httpx.Response) -> dict[str, Any]:
    try:
        data = resp.json()
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}
