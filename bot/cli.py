"""The ``clerk`` command."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.errors import ClerkError


@contextmanager
def progress_bar() -> Iterator[Any]:
    """A ``progress(stage, done, total)`` callback drawing one rich bar per stage."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<22}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
        transient=False,
    ) as bar:
        tasks: dict[str, Any] = {}

        def report(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=max(total, 1))
            bar.update(tasks[stage], completed=done, total=max(total, 1))

        yield report


def _settings(args: argparse.Namespace) -> Settings:
    env = dict(os.environ)
    if getattr(args, "home", None):
        env["CLERK_HOME"] = args.home
    return Settings.load(env, getattr(args, "config", None))


def cmd_db_upgrade(args: argparse.Namespace) -> int:
    from bot.store import migrate

    settings = _settings(args)
    migrate.upgrade(settings.database_url)
    print(f"database at revision {migrate.current(settings.database_url)}")
    return 0


def cmd_ingest(args: argparse.Namespace) -> int:
    from bot.app import prepare

    settings = _settings(args)
    with progress_bar() as report:
        result = prepare(settings, report, force_ingest=True)
    for key, value in result.items():
        print(f"{key}: {value}")
    return 0


def cmd_train(args: argparse.Namespace) -> int:
    from bot.app import make_encoder, train_nlu

    settings = _settings(args)
    if args.data:
        settings = Settings(**{**settings.__dict__, "data_dir": Path(args.data).resolve()})
    t = time.perf_counter()
    with progress_bar() as report:
        out = train_nlu(settings, make_encoder(settings), report)
    print(f"NLU model written to {out} in {time.perf_counter() - t:.1f} s")
    return 0


def _ready_parts(settings: Settings):  # type: ignore[no-untyped-def]
    from bot.app import build, make_encoder, prepare

    encoder = make_encoder(settings)
    t = time.perf_counter()
    with progress_bar() as report:
        prepare(settings, report, encoder=encoder)
    parts = build(settings, encoder=encoder)
    # load the models now, not on the first shopper's message
    parts.nlu.parse("hello")
    logging.getLogger("clerk").info("ready in %.1f s", time.perf_counter() - t)
    return parts


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.app import create_app

    settings = _settings(args)
    t = time.perf_counter()
    parts = _ready_parts(settings)
    print(f"Clerk ready in {time.perf_counter() - t:.1f} s — http://{args.host}:{args.port}", flush=True)
    uvicorn.run(create_app(parts), host=args.host, port=args.port, log_level="warning")
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    from bot.channels.shell import ShellChannel

    parts = _ready_parts(_settings(args))
    ShellChannel(parts.manager).run()
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clerk", description="Clerk customer-service bot")
    parser.add_argument("--home", help="CLERK_HOME (default ./.clerk)")
    parser.add_argument("--config", help="clerk.yml to read (default ./clerk.yml)")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("serve", help="serve the bot over HTTP (REST channel)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5005)
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("shell", help="talk to the bot in this terminal")
    p.set_defaults(func=cmd_shell)

    p = sub.add_parser("ingest", help="load the store data and (re)index the knowledge base")
    p.set_defaults(func=cmd_ingest)

    p = sub.add_parser("train", help="train the NLU model")
    p.add_argument("--data", help="training data folder (default training_data/)")
    p.set_defaults(func=cmd_train)

    p = sub.add_parser("db", help="database commands")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="migrate the database to the newest schema")
    up.set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from bot import privacy

    privacy.install()
    try:
        return int(args.func(args) or 0)
    except ClerkError as exc:
        print(f"clerk: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
