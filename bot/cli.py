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
from bot.errors import ClerkError, ConfigError


@contextmanager
def progress_bar() -> Iterator[Any]:
    """A ``progress(stage, done, total)`` callback drawing one rich bar per stage."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(
        TextColumn("{task.description:<22}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
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
    if getattr(args, "project", None):
        env["CLERK_PROJECT"] = args.project
    if getattr(args, "home", None):
        env["CLERK_HOME"] = str(Path(args.home).resolve())
    settings = Settings.load(env, getattr(args, "config", None))
    logging.getLogger().setLevel(settings.log_level)
    return settings


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
    for line in catalog_report_lines(result.get("catalog", [])):
        print(line)
    for key, value in result.items():
        if key not in ("nlu", "catalog"):
            print(f"{key}: {value}")
    return 0


def catalog_report_lines(files: list[dict[str, Any]]) -> list[str]:
    """``clerk ingest``'s catalog report: per file its format, rows imported and skipped
    (with the reasons)."""
    lines = []
    for f in files:
        reasons = ", ".join(f"{n} {why}" for why, n in f["skipped_reasons"].items())
        lines.append(
            f"catalog: {f['file']} ({f['format']}): {f['imported']} of {f['rows']} rows "
            f"imported, {f['skipped']} skipped{f' ({reasons})' if reasons else ''}; "
            f"{f['products']} products, {f['variants']} variants"
        )
    return lines


def _ready_parts(settings: Settings):  # type: ignore[no-untyped-def]
    from bot.app import build, make_encoder, prepare, warm

    encoder = make_encoder(settings)
    t = time.perf_counter()
    with progress_bar() as report:
        prepared = prepare(settings, report, encoder=encoder)
    parts = build(settings, encoder=encoder, nlu=prepared.get("nlu"))
    warm(parts)
    logging.getLogger("clerk").info("ready in %.1f s", time.perf_counter() - t)
    return parts


def cmd_serve(args: argparse.Namespace) -> int:
    import uvicorn

    from bot.app import create_app, http_limits, prepare
    from bot.server import server_config

    settings = _settings(args)
    if args.workers < 1:
        raise ConfigError("--workers", "must be at least 1")
    settings.project  # noqa: B018 -- no project here: say so before anything starts
    t = time.perf_counter()
    if args.workers == 1:
        parts = _ready_parts(settings)
        print(
            f"Clerk ready in {time.perf_counter() - t:.1f} s — http://{args.host}:{args.port}",
            flush=True,
        )
        uvicorn.run(
            **server_config(
                create_app(parts), host=args.host, port=args.port, limits=http_limits(settings)
            )
        )
        return 0
    # Several worker processes: prepare the home once here, then each worker builds its
    # parts from the same settings (handed down through the environment).
    with progress_bar() as report:
        prepare(settings, report)
    os.environ["CLERK_HOME"] = str(settings.home)
    os.environ["CLERK_PROJECT"] = str(settings.project_dir)
    if args.config:
        os.environ["CLERK_CONFIG"] = args.config
    if not settings.redis_url:
        logging.getLogger("clerk").warning(
            "%d workers without CLERK_REDIS_URL: agents' messages and console updates reach "
            "shoppers on other workers only through the outbox's periodic retry",
            args.workers,
        )
    print(
        f"Clerk prepared in {time.perf_counter() - t:.1f} s — starting {args.workers} workers "
        f"on http://{args.host}:{args.port}",
        flush=True,
    )
    uvicorn.run(
        **server_config(
            "bot.app:worker_app",
            host=args.host,
            port=args.port,
            workers=args.workers,
            factory=True,
            limits=http_limits(settings),
        )
    )
    return 0


def cmd_shell(args: argparse.Namespace) -> int:
    from bot.channels.base import CardWording, domain_say
    from bot.channels.shell import ShellChannel

    parts = _ready_parts(_settings(args))
    cards = CardWording.from_responses(domain_say(parts.domain, ShellChannel.name))
    ShellChannel(parts.manager, currency=parts.settings.currency, cards=cards).run()
    return 0


def cmd_telegram(args: argparse.Namespace) -> int:
    import asyncio

    settings = _settings(args)
    if not settings.telegram_token:
        raise ConfigError("CLERK_TELEGRAM_TOKEN", "set it to the token @BotFather gave you")
    if args.set_webhook:
        from telegram import Bot

        from bot.channels.telegram import ALLOWED_UPDATES, api_base_url, derived_secret

        token = settings.telegram_token
        secret = settings.telegram_webhook_secret or derived_secret(token)

        async def register() -> None:
            from telegram.error import TelegramError

            from bot.channels.telegram import TelegramStartError

            try:
                async with Bot(token, base_url=api_base_url(settings.telegram_base_url)) as bot:
                    await bot.set_webhook(
                        args.set_webhook, secret_token=secret, allowed_updates=ALLOWED_UPDATES
                    )
            except TelegramError as exc:
                raise TelegramStartError(f"setWebhook failed: {exc}") from exc

        asyncio.run(register())
        print(f"webhook set to {args.set_webhook}; serve it with `clerk serve`")
        return 0
    if not args.polling:
        print(
            "clerk telegram: use --polling, or --set-webhook URL and then `clerk serve`",
            file=sys.stderr,
        )
        return 2
    from bot.app import telegram_channel

    parts = _ready_parts(settings)
    channel = telegram_channel(settings, parts.manager, parts.domain, polling=True)
    try:
        asyncio.run(channel.serve_polling())
    finally:
        parts.db.dispose()
    return 0


def cmd_copy(args: argparse.Namespace) -> int:
    from bot.app import build_generation

    generation = build_generation(_settings(args))
    copies = generation.copywriter.write(
        args.product, audience=args.audience, tone=args.tone, n=args.n
    )
    product = generation.catalog.product(args.product)
    assert product is not None  # write() raised UnknownProduct otherwise
    print(f"{product.name} (product {args.product}), for {args.audience}, tone {args.tone}:")
    for n, c in enumerate(copies, start=1):
        note = f" (model copy stopped: {c.fallback})" if c.fallback else ""
        print(f"\n{n}. [{c.source}{note}] {c.text}")
    return 0


def cmd_init(args: argparse.Namespace) -> int:
    from bot.scaffold import TEMPLATES, scaffold

    target = Path(args.dir).resolve()
    written = scaffold(args.template, target)
    print(f"created a {args.template} project in {target} ({len(written)} files). Next:")
    where = "" if target == Path.cwd() else f"cd {args.dir} && "
    print(f"  {where}clerk train && clerk serve     # templates: {', '.join(TEMPLATES)}")
    return 0


def cmd_project(args: argparse.Namespace) -> int:
    from bot.project import describe

    for line in describe(_settings(args).project):
        print(line)
    return 0


def cmd_actions(args: argparse.Namespace) -> int:
    """A rasa-sdk action server with Clerk's store actions and the project's own
    (``rasa run actions`` for a Clerk project)."""
    from bot.store_actions.server import serve_actions

    settings = _settings(args)
    serve_actions(settings.project.actions_dir, port=args.port)
    return 0


def _read_password(args: argparse.Namespace) -> str:
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\n")
    import getpass

    first = getpass.getpass(f"Password for {args.name}: ")
    if getpass.getpass("Again: ") != first:
        raise ConfigError("password", "the two passwords differ")
    return first


def cmd_agent(args: argparse.Namespace) -> int:
    """``clerk agent add NAME --role agent|admin`` / ``list`` / ``disable NAME``."""
    from bot.handoff.agents import AgentAccounts
    from bot.store import migrate
    from bot.store.db import Database

    settings = _settings(args)
    migrate.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        accounts = AgentAccounts(db)
        if args.agent_command == "add":
            agent = accounts.add(args.name, _read_password(args), args.role)
            print(f"agent {agent.name} added ({agent.role}); log in at /console")
        elif args.agent_command == "list":
            for a in accounts.list():
                print(f"{a.name}\t{a.role}\t{'active' if a.active else 'disabled'}")
        elif args.agent_command in ("disable", "enable", "password"):
            found = accounts.get(args.name)
            if found is None:
                raise ConfigError("name", f"no agent named {args.name!r}")
            if args.agent_command == "password":
                accounts.update(found.id, password=_read_password(args))
            else:
                accounts.update(found.id, active=args.agent_command == "enable")
            print(f"agent {found.name}: {args.agent_command} done")
    finally:
        db.dispose()
    return 0


def cmd_privacy(args: argparse.Namespace) -> int:
    """``clerk privacy export --customer ID [--out FILE]`` / ``delete --customer ID [--yes]``
    / ``purge --older-than 90d``: one shopper's data as JSON, their erasure, retention."""
    import json

    from bot.app import transcript_sealer
    from bot.store import migrate
    from bot.store import personal_data as pd
    from bot.store.db import Database

    days = pd.parse_age(args.older_than) if args.privacy_command == "purge" else 0.0
    settings = _settings(args)
    if args.privacy_command == "delete" and not args.yes and not _confirmed(args.customer):
        print("nothing deleted", file=sys.stderr)
        return 1
    migrate.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        if args.privacy_command == "export":
            exported = pd.export_customer(db, args.customer)
            sealer = transcript_sealer(settings)  # the shopper gets their own words back
            if sealer is not None:
                exported = sealer.open_data(exported)
            data = json.dumps(exported, indent=2, ensure_ascii=False)
            if args.out:
                Path(args.out).write_text(data + "\n", encoding="utf-8")
                print(f"exported customer {args.customer} to {args.out}", file=sys.stderr)
            else:
                print(data)
        elif args.privacy_command == "delete":
            erased = pd.delete_customer(db, args.customer)
            if erased.already_erased:
                print(f"customer {args.customer}: already erased, nothing left to delete")
            else:
                print(
                    f"customer {args.customer} erased: profile {_done(erased.profile)}, "
                    f"{erased.conversations} conversations ({erased.events} events) deleted, "
                    f"{erased.tickets} tickets and {erased.orders} orders anonymised, "
                    f"{erased.order_changes} order changes unlinked; "
                    f"audit subject {erased.subject}"
                )
        else:
            purged = pd.purge_older_than(db, days)
            print(
                f"purged what was last updated before {purged.cutoff:%Y-%m-%d %H:%M} UTC: "
                f"{purged.conversations} conversations ({purged.events} events) deleted, "
                f"{purged.tickets} solved tickets anonymised"
            )
    finally:
        db.dispose()
    return 0


def cmd_recommend(args: argparse.Namespace) -> int:
    """``clerk recommend --customer ID [--k 5] [--product NAME]``: what the bot would
    suggest to that shopper, with prices and reasons in the domain's words. An unknown
    customer id is an error (exit code 2)."""
    from bot.app import make_encoder, make_recommender
    from bot.dialogue.domain import Domain
    from bot.dialogue.responses import Filler
    from bot.recommend.engine import Query
    from bot.store import migrate
    from bot.store.db import Database
    from bot.store_actions import replies
    from bot.store_actions.recommendations import intro, reason_phrase

    settings = _settings(args)
    if args.k < 1:
        raise ConfigError("--k", "must be at least 1")
    migrate.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        recommender = make_recommender(db, make_encoder(settings))
        recommender.check_customer(args.customer)
        texts = (args.product,) if args.product else ()
        recs = recommender.recommend(
            Query(customer_id=args.customer, texts=texts, product=args.product, k=args.k)
        )
    finally:
        db.dispose()
    words = Filler(Domain.load(settings.project.domain).responses, {}, "shell")
    if not recs.suggestions:
        nothing = "utter_no_suggestions_matching" if recs.narrowed else "utter_no_suggestions"
        print(words.phrase(replies.phrase(nothing)))
        return 0
    print(f"{args.customer}: {words.phrase(intro(recs))}")
    for n, s in enumerate(recs.suggestions, start=1):
        item = replies.item_text(s.name, s.options, s.price, settings.currency)
        reason = words.phrase(reason_phrase(s.reason, settings.currency))
        print(f"{n}. {item} — {reason}")
    if recs.degraded:
        print("(content similarity unavailable: co-purchase and popularity only)", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """``clerk report --since 7d [--until ...] [--out DIR] [--json]``: the support report's
    figures (tables, or JSON) and its charts as PNG files in ``--out``."""
    import json

    from bot.analytics import build_report, parse_window
    from bot.analytics.charts import write_charts
    from bot.analytics.report import DEFAULT_LOW_CONFIDENCE
    from bot.analytics.tables import format_report
    from bot.store import migrate
    from bot.store.db import Database

    since, until = parse_window(args.since, args.until)  # InputError: exit 2, nothing read
    low_confidence = DEFAULT_LOW_CONFIDENCE if args.low_confidence is None else args.low_confidence
    if not 0.0 <= low_confidence <= 1.0:
        raise ConfigError("--low-confidence", "must be between 0 and 1")
    settings = _settings(args)
    migrate.upgrade(settings.database_url)
    db = Database(settings.database_url)
    try:
        with db.read() as session:
            report = build_report(session, since, until, low_confidence=low_confidence)
    finally:
        db.dispose()
    out = Path(args.out)
    charts = write_charts(report, out)
    (out / "report.json").write_text(json.dumps(report.to_dict(), indent=2) + "\n", "utf-8")
    if args.json:
        print(json.dumps(report.to_dict(), indent=2))
    else:
        print(format_report(report))
        print(f"charts: {', '.join(str(p) for p in charts)}")
    return 0


def _confirmed(customer_id: str) -> bool:
    print(
        f"Erase customer {customer_id}? Their conversations are deleted; their profile, "
        "tickets and orders are anonymised. This cannot be undone. [y/N] ",
        end="",
        flush=True,
    )
    answer = sys.stdin.readline()
    return answer.strip().lower() in ("y", "yes")


def _done(n: int) -> str:
    return "anonymised" if n else "not found"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="clerk", description="Clerk customer-service bot")
    parser.add_argument("--project", help="the bot project folder (CLERK_PROJECT; default: .)")
    parser.add_argument("--home", help="CLERK_HOME (default: the project's .clerk/)")
    parser.add_argument("--config", help="clerk.yml to read (default: the project's clerk.yml)")
    sub = parser.add_subparsers(dest="command", required=True)

    from bot.scaffold import TEMPLATES

    p = sub.add_parser("init", help="create a bot project folder from a template")
    p.add_argument("dir", nargs="?", default=".", help="the folder to create (default: .)")
    p.add_argument("--template", choices=TEMPLATES, default=TEMPLATES[0])
    p.set_defaults(func=cmd_init)

    p = sub.add_parser("project", help="show where the project's files are")
    p.set_defaults(func=cmd_project)

    p = sub.add_parser("actions", help="run the action server (store actions + the project's)")
    p.add_argument("--port", type=int, default=5055)
    p.set_defaults(func=cmd_actions)

    p = sub.add_parser("serve", help="serve the bot over HTTP (REST channel)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=5005)
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes (share one database; set CLERK_REDIS_URL)",
    )
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("shell", help="talk to the bot in this terminal")
    p.set_defaults(func=cmd_shell)

    p = sub.add_parser("telegram", help="run the Telegram bot (CLERK_TELEGRAM_TOKEN)")
    p.add_argument("--polling", action="store_true", help="poll Telegram for updates (development)")
    p.add_argument(
        "--set-webhook",
        metavar="URL",
        help="register URL (ending in /webhooks/telegram) as the webhook, then exit",
    )
    p.set_defaults(func=cmd_telegram)

    p = sub.add_parser("copy", help="write marketing copy for a product from its catalog facts")
    p.add_argument("--product", required=True, help="product id, e.g. 9523456873")
    p.add_argument("--audience", default="everyday shoppers", help="who the copy is for")
    p.add_argument("--tone", default="friendly", help="e.g. playful, professional, premium")
    p.add_argument("--n", type=int, default=3, help="how many variants (1-5)")
    p.set_defaults(func=cmd_copy)

    p = sub.add_parser("ingest", help="load the store data and (re)index the knowledge base")
    p.set_defaults(func=cmd_ingest)

    # train, evaluate, tune, data validate, model list/show/activate (bot.training)
    from bot.training.commands import register as register_training

    register_training(sub, _settings, progress_bar)

    p = sub.add_parser("agent", help="console accounts for human agents")
    agentsub = p.add_subparsers(dest="agent_command", required=True)
    a = agentsub.add_parser("add", help="add an agent (asks for the password)")
    a.add_argument("name")
    a.add_argument("--role", choices=["agent", "admin"], default="agent")
    a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
    a.set_defaults(func=cmd_agent)
    a = agentsub.add_parser("list", help="list agents")
    a.set_defaults(func=cmd_agent)
    for verb, what in (
        ("disable", "disable an agent (ends their sessions)"),
        ("enable", "enable an agent again"),
        ("password", "set an agent's password"),
    ):
        a = agentsub.add_parser(verb, help=what)
        a.add_argument("name")
        a.add_argument("--password-stdin", action="store_true", help="read the password from stdin")
        a.set_defaults(func=cmd_agent)

    p = sub.add_parser("privacy", help="a shopper's personal data: export, erase, retention")
    privsub = p.add_subparsers(dest="privacy_command", required=True)
    a = privsub.add_parser("export", help="everything about one shopper, as JSON")
    a.add_argument("--customer", required=True, metavar="ID", help="the shopper's customer id")
    a.add_argument("--out", metavar="FILE", help="write the JSON here (default: stdout)")
    a.set_defaults(func=cmd_privacy)
    a = privsub.add_parser("delete", help="erase one shopper (tickets and orders anonymised)")
    a.add_argument("--customer", required=True, metavar="ID", help="the shopper's customer id")
    a.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    a.set_defaults(func=cmd_privacy)
    a = privsub.add_parser("purge", help="delete conversations older than an age")
    a.add_argument("--older-than", required=True, metavar="AGE", help="e.g. 90d, 12w or 24h")
    a.set_defaults(func=cmd_privacy)

    p = sub.add_parser("recommend", help="what the bot would suggest to a customer, and why")
    p.add_argument("--customer", required=True, metavar="ID", help="the shopper's customer id")
    p.add_argument("--k", type=int, default=5, help="how many suggestions (default 5)")
    p.add_argument("--product", metavar="NAME", help="as if the shopper asked about NAME")
    p.set_defaults(func=cmd_recommend)

    p = sub.add_parser("report", help="support analytics: figures and charts for a period")
    p.add_argument(
        "--since", required=True, help="start: 7d, 24h, 2w (before now) or a date, 2026-11-01"
    )
    p.add_argument("--until", help="end (same forms; default: now)")
    p.add_argument("--out", default="results/report", help="chart folder (default: results/report)")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument(
        "--low-confidence",
        type=float,
        default=None,
        help="intent confidence below which a message counts as low confidence "
        "(default: bot.analytics.report.DEFAULT_LOW_CONFIDENCE)",
    )
    p.set_defaults(func=cmd_report)

    p = sub.add_parser("db", help="database commands")
    dbsub = p.add_subparsers(dest="db_command", required=True)
    up = dbsub.add_parser("upgrade", help="migrate the database to the newest schema")
    up.set_defaults(func=cmd_db_upgrade)
    return parser


def main(argv: list[str] | None = None) -> int:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    from bot import privacy

    privacy.install()
    try:
        return int(args.func(args) or 0)
    except ClerkError as exc:
        print(f"clerk: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
