"""The bridge to rasa-sdk: runs custom actions through the action-server protocol.

``ActionRunner.run(action, payload)`` takes Rasa's action-call payload (``next_action``,
``sender_id``, ``tracker``, ``domain``, ``version``) and returns ``{"events", "responses"}``.

- ``InProcessActionRunner`` executes actions with rasa-sdk's own ``ActionExecutor`` in this
  process (same event loop, so in-process actions share the turn's DB transaction).
- ``RemoteActionRunner`` POSTs to a rasa-sdk action server (``python -m rasa_sdk``) at
  ``CLERK_ACTION_ENDPOINT`` through an injected ``httpx.AsyncClient``.

Both raise ``ActionError`` when the action fails and ``ActionServerUnavailable`` when the
server cannot be reached; the dialogue manager turns those into a polite reply.
"""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Iterable
from typing import Any

import httpx

from bot.errors import ActionError, ActionServerUnavailable

log = logging.getLogger(__name__)

PROTOCOL_VERSION = "3.6.21"


class ActionRunner(abc.ABC):
    #: Whether actions run inside the turn's DB transaction (in process) or commit on their
    #: own elsewhere (a remote server): then the manager must not hold a transaction open
    #: across the call, or the two would wait for each other's locks.
    shares_transaction: bool = False

    @abc.abstractmethod
    async def run(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        """Run one action; return ``{"events": [...], "responses": [...]}``."""

    def has_action(self, action: str) -> bool:
        """Whether this runner knows the action (a remote server is assumed to)."""
        return True

    async def aclose(self) -> None:
        return None


class InProcessActionRunner(ActionRunner):
    shares_transaction = True

    def __init__(self, actions: Iterable[Any]) -> None:
        from rasa_sdk.executor import ActionExecutor

        self._executor = ActionExecutor()
        for action in actions:
            self._executor.register_action(action)

    def has_action(self, action: str) -> bool:
        return action in self._executor.actions

    async def run(self, action: str, payload: dict[str, Any]) -> dict[str, Any]:
        from rasa_sdk.interfaces import ActionExecutionRejection

        if not self.has_action(action):
            raise ActionError(action, "no such action is registered")
        try:
            result = await self._executor.run(payload)
        except ActionExecutionRejection as exc:
            return {"events": [{"event": "action_execution_rejected", "name": action}],
                    "responses": [], "rejected": str(exc)}
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
        self, endpoint: str, client: httpx.AsyncClient | None = None, *, timeout: float = 10.0,
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
                return {"events": data.get("events") or [], "responses": data.get("responses") or []}
            if resp.status_code == 400:
                body = _safe_json(resp)
                if body.get("error") and "rejected" in str(body.get("error")).lower():
                    return {"events": [{"event": "action_execution_rejected", "name": action}],
                            "responses": [], "rejected": body.get("error")}
            if resp.status_code == 404:
                raise ActionError(action, "the action server does not know this action")
            raise ActionError(action, f"action server answered HTTP {resp.status_code}: "
                                      f"{resp.text[:200]}")
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
