"""``clerk actions``: a rasa-sdk action server for a project (``rasa run actions``).

It serves Clerk's store actions and the project's own ``actions`` package, the project's
replacing a built-in of the same name, over rasa-sdk's own HTTP server (POST /webhook), so
a Clerk or Rasa engine with ``action_endpoint`` set runs them remotely. Actions built here
get no ``Database``: they open ``CLERK_DATABASE_URL`` (or the project's) on first use.
"""

from __future__ import annotations

from pathlib import Path

from rasa_sdk.executor import ActionExecutor


def action_executor(actions_dir: Path | None) -> ActionExecutor:
    from bot.store_actions import project_actions

    executor = ActionExecutor()
    for action in project_actions(actions_dir, None):
        executor.register_action(action)
    return executor


def serve_actions(actions_dir: Path | None, *, port: int = 5055) -> None:
    from rasa_sdk.endpoint import run

    run(action_executor(actions_dir), port=port)
