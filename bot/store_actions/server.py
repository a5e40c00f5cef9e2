"""``clerk actions``: a rasa-sdk action server for a project (``rasa run actions``).

It serves Clerk's store actions and the project's own ``actions`` package, the project's
replacing a built-in of the same name, over rasa-sdk's own HTTP server (POST /webhook), so
a Clerk or Rasa engine with ``action_endpoint`` set runs them remotely. Actions built here
get no ``Database``: they open ``CLERK_DATABASE_URL`` (or the project's) on first use.
``serve_actions`` warms the recommendations' ``Recommender`` (the catalog's vectors) before
it listens, so no shopper's request waits for that.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from rasa_sdk import Action
from rasa_sdk.executor import ActionExecutor

log = logging.getLogger(__name__)


def action_executor(actions_dir: Path | None) -> ActionExecutor:
    return _executor(_actions(actions_dir))


def _actions(actions_dir: Path | None) -> list[Action]:
    from bot.store_actions import project_actions

    return project_actions(actions_dir, None)


def _executor(actions: Sequence[Action]) -> ActionExecutor:
    executor = ActionExecutor()
    for action in actions:
        executor.register_action(action)
    return executor


def warm(actions: Sequence[Action]) -> None:
    """Computes the recommendations' catalog vectors now; a failure is logged (the
    recommender then degrades, as in a turn)."""
    from bot.store_actions.recommendations import ActionRecommendProducts

    for action in actions:
        if isinstance(action, ActionRecommendProducts):
            try:
                action.recommender.warm()
            except Exception as exc:  # noqa: BLE001 - a database not there yet: warm on use
                log.warning("recommendations not warmed: %s", exc)


def serve_actions(actions_dir: Path | None, *, port: int = 5055) -> None:
    """rasa-sdk's ``endpoint.run`` on ``port``, each worker process building its actions
    itself and warming them (``warm``) before it serves; the primary process, which only
    hands connections over, does not warm."""
    import os
    from functools import partial

    from rasa_sdk import utils
    from sanic import Sanic
    from sanic.worker.loader import AppLoader

    workers = AppLoader(factory=partial(_app, actions_dir, warmed=True))
    primary = AppLoader(factory=partial(_app, actions_dir, warmed=False)).load()
    primary.prepare(
        host=os.environ.get("SANIC_HOST", "0.0.0.0"),
        port=port,
        workers=utils.number_of_sanic_workers(),
    )
    Sanic.serve(primary=primary, app_loader=workers)


def _app(actions_dir: Path | None, *, warmed: bool) -> Any:
    """The rasa-sdk app over the project's actions (module level: workers unpickle it)."""
    from rasa_sdk.endpoint import create_app_for_serve

    actions = _actions(actions_dir)
    if warmed:
        warm(actions)
    return create_app_for_serve(_executor(actions))
