"""Composition root: Settings -> concrete parts -> ASGI app. The only place that wires.

``prepare(settings)`` makes a home ready (schema migrated, demo store loaded, knowledge
indexed, NLU trained) doing only what is missing; ``build(settings)`` loads the parts;
``create_app(parts)`` returns the Starlette application.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import os
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import OperationalError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import BaseRoute, Route

from bot import privacy
from bot.actions import ActionRunner, InProcessActionRunner, RemoteActionRunner
from bot.channels.base import CardWording, Channel, clerk_say, domain_say
from bot.channels.rest import RestChannel, read_json_object
from bot.config import Settings
from bot.dialogue.domain import Domain
from bot.dialogue.gate import ConversationGate
from bot.dialogue.manager import DialogueManager
from bot.dialogue.policy import FlowPolicy
from bot.dialogue.sealing import Sealer
from bot.dialogue.stories import DialogueData
from bot.errors import ConfigError, DatabaseUnavailable, Unavailable
from bot.generation.wording import AnswerWording
from bot.inputs import BadInput, client_id, client_string, optional_string
from bot.nlu.relevance import MINILM, Relevance
from bot.ratelimit import LocalMessageLimits, MessageLimits, RedisMessageLimits
from bot.server import HttpLimits
from bot.store.db import Database
from bot.store.personal_data import retention_running
from bot.web.openapi import openapi_route

if TYPE_CHECKING:  # types only: the modules themselves are imported where they are used
    import httpx

    from bot.channels.telegram import TelegramChannel
    from bot.generation.base import AnswerWriter
    from bot.generation.copy import CopyWriter
    from bot.generation.llm import LLM
    from bot.generation.writer import GenerationStats
    from bot.handoff.agents import AgentAccounts
    from bot.handoff.desk import HandoffDesk
    from bot.handoff.outbox import Outbox, Relay
    from bot.handoff.triggers import HandoffPolicy
    from bot.knowledge.catalog import CatalogResolver
    from bot.knowledge.imports import CatalogSpec
    from bot.nlu.config import NLUConfig
    from bot.nlu.data import NLUData
    from bot.nlu.encoder import Precision, SentenceEncoder
    from bot.nlu.model import NLUModel
    from bot.recommend.engine import Recommender
    from bot.web.console.app import Console

log = logging.getLogger(__name__)

Progress = Callable[[str, int, int], None]


def _no_progress(stage: str, done: int, total: int) -> None:
    return None


def nlu_dir(settings: Settings) -> Path:
    return settings.models_dir / "nlu"


def make_encoder(settings: Settings) -> SentenceEncoder:
    """The sentence encoder of the store's language (``bot.nlu.encoder.sentence_encoder``):
    ``en``: MiniLM, ONNX, exported once into the home (knowledge search, fp32); ``zh``:
    multilingual-e5-small."""
    from bot.nlu.encoder import sentence_encoder

    return sentence_encoder(settings.language, settings.home)


def make_recommender(db: Database, encoder: SentenceEncoder) -> Recommender:
    """The recommendation engine over the store's ``db``, its products embedded with the
    knowledge search's (fp32) ``encoder`` (once per catalog content, on first use)."""
    from bot.recommend.engine import Recommender

    return Recommender(db, encoder.encode, min_similar=encoder.min_similar)


def nlu_encoder(settings: Settings, encoder: SentenceEncoder | None = None) -> SentenceEncoder:
    """The NLU's encoder: ``encoder``'s model (default: ``make_encoder``'s) at the settings'
    NLU precision. The NLU trains and serves with it, so both see the same vectors."""
    precision: Precision = "fp32" if settings.nlu_encoder_precision == "fp32" else "int8"
    return (encoder or make_encoder(settings)).with_precision(precision)


def catalog_products(
    knowledge_dir: Path | None, spec: CatalogSpec | None = None
) -> list[dict[str, Any]]:
    """The store's products in the ``products.json`` shape (plus currency, description and
    source), read by ``bot.knowledge.imports.read_catalog`` with ``spec`` (a
    ``CatalogSpec``; default: USD, files found in ``catalog/``); none without knowledge."""
    from bot.knowledge.imports import read_catalog

    if knowledge_dir is None:
        return []
    return [p.to_dict() for p in read_catalog(knowledge_dir, spec).products]


def catalog_spec(settings: Settings) -> CatalogSpec:
    """The ``CatalogSpec`` the settings give: the store's currency and declared files."""
    from bot.knowledge.imports import CatalogSpec

    return CatalogSpec(settings.currency, settings.catalog_files)


def _nlu_inputs(
    settings: Settings, products: list[dict[str, Any]] | None = None
) -> tuple[NLUData, list[dict[str, Any]], NLUConfig]:
    from bot.nlu.config import NLUConfig
    from bot.nlu.data import load_nlu

    project = settings.project
    data = load_nlu(project.nlu_files)
    config = NLUConfig.from_mapping(project.read_config())
    if products is None:
        products = catalog_products(project.knowledge_dir, catalog_spec(settings))
    return data, products, config


def current_nlu(
    settings: Settings, encoder: SentenceEncoder, *, products: list[dict[str, Any]] | None = None
) -> NLUModel | None:
    """The saved NLU model if it loads and was trained on exactly the current data
    (``products``: the catalog, when the caller has read it already)."""
    from bot.errors import ClerkError
    from bot.nlu.fit import training_fingerprint
    from bot.nlu.model import NLUModel

    try:
        model = NLUModel.load(nlu_dir(settings), encoder)
        data, catalog, config = _nlu_inputs(settings, products)
    except (ClerkError, ValueError, OSError):
        return None
    if model.metrics.get("fingerprint") != training_fingerprint(data, catalog, config):
        return None
    return model


def train_nlu(
    settings: Settings,
    encoder: SentenceEncoder,
    progress: Progress = _no_progress,
    *,
    products: list[dict[str, Any]] | None = None,
) -> Path:
    """Train the active model from the project's NLU data with its ``config.yml`` (the demo
    store's holds the configuration `clerk tune` chose); keep the config file beside it.
    ``products``: the catalog, when the caller has read it already."""
    from bot.nlu.config import rasa_config_notes
    from bot.nlu.model import NLUModel

    data, catalog, config = _nlu_inputs(settings, products)
    for note in rasa_config_notes(settings.project.read_config()):
        log.info("config.yml: %s", note)
    model = NLUModel.train(data, encoder=encoder, catalog=catalog, config=config, progress=progress)
    out = nlu_dir(settings)
    model.save(out)
    config_file = settings.project.config_file
    if config_file is not None:
        (out / "config.yml").write_text(config_file.read_text(encoding="utf-8"), encoding="utf-8")
    return out


def prepare(
    settings: Settings,
    progress: Progress = _no_progress,
    *,
    encoder: SentenceEncoder | None = None,
    force_train: bool = False,
    force_ingest: bool = False,
) -> dict[str, Any]:
    """Make ``settings.home`` ready to serve. Does only what is missing unless forced."""
    from bot.knowledge.imports import read_catalog
    from bot.knowledge.index import indexed_with, ingest
    from bot.knowledge.store_load import load_store
    from bot.nlu.encoder import encoder_id
    from bot.store import migrate

    report: dict[str, Any] = {}
    knowledge_dir = settings.project.knowledge_dir  # no project: ProjectNotFound, nothing made
    settings.home.mkdir(parents=True, exist_ok=True)
    migrate.upgrade(settings.database_url)
    db = Database(settings.database_url)
    encoder = encoder or make_encoder(settings)
    try:
        # Missing, or built by another encoder (the store's language changed): re-ingest.
        index_stale = indexed_with(settings.index_dir) != encoder_id(encoder)
        products: list[dict[str, Any]] = []
        if knowledge_dir is None:
            log.info("the project has no knowledge/ folder: no catalog, policy or FAQ answers")
        else:
            catalog = read_catalog(knowledge_dir, catalog_spec(settings))  # read once
            products = [p.to_dict() for p in catalog.products]
            if force_ingest or index_stale or _store_empty(db):
                report["catalog"] = catalog.report()
                report["store"] = load_store(db, knowledge_dir, progress, catalog=catalog)
                report["knowledge"] = ingest(
                    db,
                    knowledge_dir,
                    settings.index_dir,
                    encoder,
                    progress=progress,
                    catalog=catalog,
                )
        nlu_enc = nlu_encoder(settings, encoder)
        nlu = None if force_train else current_nlu(settings, nlu_enc, products=products)
        if nlu is None:
            t = time.perf_counter()
            train_nlu(settings, nlu_enc, progress, products=products)
            report["nlu_train_seconds"] = round(time.perf_counter() - t, 2)
        else:
            report["nlu"] = nlu  # already loaded: build(nlu=...) need not load it again
    finally:
        db.dispose()
    return report


def _store_empty(db: Database) -> bool:
    from sqlalchemy import select

    from bot.store.models import Product

    with db.session() as s:
        return s.scalar(select(Product.product_id).limit(1)) is None


@dataclass
class Parts:
    settings: Settings
    db: Database
    domain: Domain
    manager: DialogueManager
    nlu: NLUModel
    actions: ActionRunner
    channels: list[Channel] = field(default_factory=list)
    started: float = field(default_factory=time.time)
    generation: Generation | None = None  # the answer and copy writers, the LLM backend
    handoff: HandoffParts | None = None  # relay, outbox, desk, agent accounts, console
    #: The knowledge search's encoder (MiniLM at fp32; the NLU has its own precision).
    search_encoder: SentenceEncoder | None = None
    recommender: Recommender | None = None  # the in-process store actions' (none: remote)


def build(
    settings: Settings,
    *,
    encoder: SentenceEncoder | None = None,
    actions: ActionRunner | None = None,
    llm: LLM | None = None,
    nlu: NLUModel | None = None,
) -> Parts:
    """``llm``: an ``bot.generation.llm.LLM`` to use instead of the one settings name;
    ``nlu``: an already loaded NLU model (from ``prepare``)."""
    from bot.knowledge.answerer import KnowledgeAnswerer
    from bot.knowledge.index import KnowledgeIndex
    from bot.knowledge.retriever import HybridRetriever
    from bot.nlu.model import NLUModel

    privacy.install()
    encoder = encoder or make_encoder(settings)
    db = Database(
        settings.database_url,
        pool_size=settings.db_pool_size,
        queue_timeout=settings.db_queue_timeout,
    )
    project = settings.project
    domain = Domain.load(project.domain)
    policy = FlowPolicy(DialogueData.load(*project.dialogue_files))
    if nlu is None:
        nlu = NLUModel.load(nlu_dir(settings), nlu_encoder(settings, encoder))
    if settings.nlu_threshold is not None:
        nlu = nlu.with_threshold(settings.nlu_threshold)
    recommender = None
    if actions is None:
        if settings.action_endpoint:
            actions = RemoteActionRunner(settings.action_endpoint)
        else:
            from bot.store_actions import project_actions

            recommender = make_recommender(db, encoder)
            actions = InProcessActionRunner(
                project_actions(
                    project.actions_dir, db, currency=settings.currency, recommender=recommender
                ),
                db=db,
            )
    products = catalog_products(project.knowledge_dir, catalog_spec(settings))  # read once
    generation = build_generation(
        settings, llm=llm, domain=domain, products=products, relevance=relevance_of(encoder)
    )
    answerer = None
    if project.knowledge_dir is not None:
        index = KnowledgeIndex.load(settings.index_dir, encoder)
        answerer = KnowledgeAnswerer(HybridRetriever(index), generation.writer, generation.catalog)
    sealer = transcript_sealer(settings)
    handoff = build_handoff(settings, db, domain, sealer)
    manager = DialogueManager(
        domain=domain,
        policy=policy,
        nlu=nlu,
        actions=actions,
        db=db,
        knowledge=answerer,
        max_misses=settings.max_misses_before_handoff,
        handoff=handoff.desk,
        handoff_policy=handoff.policy,
        relay=handoff.relay,
        gate=ConversationGate(db, sealer=sealer),
        feedback_after=settings.feedback_after,
        language=settings.language,
    )
    parts = Parts(
        settings=settings,
        db=db,
        domain=domain,
        manager=manager,
        nlu=nlu,
        actions=actions,
        generation=generation,
        handoff=handoff,
        search_encoder=encoder if answerer is not None else None,
        recommender=recommender,
    )
    if "rest" in settings.channels:
        parts.channels.append(
            RestChannel(
                manager,
                outbox=handoff.outbox,
                token=settings.rest_token,
                limits=message_limits(settings),
            )
        )
    parts.channels.extend(
        web_and_telegram_channels(settings, manager, db, domain, products=products)
    )
    attach_handoff(handoff, settings, manager, parts.channels)
    return parts


def worker_app() -> Starlette:
    """The app of one ``clerk serve --workers N`` worker process: settings from the
    environment, the home already prepared by the parent process."""
    parts = build(Settings.load())
    warm(parts)
    return create_app(parts)


def warm(parts: Parts) -> None:
    """Load the models now, not on the first shopper's message."""
    parts.nlu.parse("hello")
    if parts.search_encoder is not None:
        parts.search_encoder.encode(["hello"])
    if parts.recommender is not None:  # the catalog's vectors, before the first shopper asks
        parts.recommender.warm()
    llm = parts.generation.llm if parts.generation is not None else None
    if llm is not None and hasattr(llm, "load"):
        llm.load()


# ----------------------------------------------------------------------------- handoff


@dataclass
class HandoffParts:
    """The human handoff: when the bot hands off, the queue desk, the outbox that carries
    agents' messages to shoppers, the change feed, agent accounts and the console."""

    policy: HandoffPolicy
    relay: Relay
    outbox: Outbox
    desk: HandoffDesk
    accounts: AgentAccounts
    console: Console | None = None  # made by ``attach_handoff``, once the channels are


def transcript_sealer(settings: Settings) -> Sealer | None:
    """What seals shoppers' personal data in stored conversations (``CLERK_TRANSCRIPT_KEY``;
    None without a key: transcripts are stored as said)."""
    return Sealer(settings.transcript_key) if settings.transcript_key else None


def build_handoff(
    settings: Settings, db: Database, domain: Domain, sealer: Sealer | None = None
) -> HandoffParts:
    from bot.handoff.agents import AgentAccounts
    from bot.handoff.desk import HandoffDesk
    from bot.handoff.outbox import Outbox, RedisRelay, Relay
    from bot.handoff.triggers import HandoffPolicy

    def notices(response: str, channel: str, **values: Any) -> str:
        return domain.text(response, {}, values, channel=channel)

    policy = HandoffPolicy(
        max_misses=settings.max_misses_before_handoff,
        misses=settings.handoff_on_misses,
        on_out_of_scope=settings.handoff_on_out_of_scope,
        on_action_failure=settings.handoff_on_action_failure,
        on_severe_complaint=settings.handoff_on_severe_complaint,
    )
    relay = RedisRelay(settings.redis_url) if settings.redis_url else Relay()
    outbox = Outbox(db, relay)
    desk = HandoffDesk(
        db,
        outbox,
        notices=notices,
        default_wait_minutes=settings.handoff_wait_minutes,
        reveal=sealer.open_data if sealer else None,
    )
    return HandoffParts(
        policy=policy, relay=relay, outbox=outbox, desk=desk, accounts=AgentAccounts(db)
    )


def attach_handoff(
    handoff: HandoffParts, settings: Settings, manager: DialogueManager, channels: list[Channel]
) -> None:
    """Register with the outbox the delivery each channel offers (``Channel.delivery``:
    none for a channel whose clients poll, REST), and build the console."""
    from bot.web.console.app import Console

    for channel in channels:
        delivery = channel.delivery()
        if delivery is not None:
            handoff.outbox.register(channel.name, delivery)
    handoff.console = Console(
        steps=manager,
        desk=handoff.desk,
        accounts=handoff.accounts,
        relay=handoff.relay,
        canned_replies=settings.console_canned_replies,
        secure_cookies=settings.console_secure_cookies,
        trusted_proxies=settings.trusted_proxies,
    )


@dataclass
class Generation:
    """The answer writer, the copy writer and their shared counters (on /health)."""

    backend: str  # the LLM's name, or "extractive"
    llm: LLM | None
    writer: AnswerWriter
    copywriter: CopyWriter
    stats: GenerationStats
    catalog: CatalogResolver


def make_llm(settings: Settings, *, http_client: httpx.Client | None = None) -> LLM | None:
    """The LLM backend settings name (``CLERK_LLM``), or ``None`` for extractive answers."""
    if settings.llm == "transformers":
        from bot.generation.local import TransformersLLM

        return TransformersLLM(str(settings.llm_model), threads=settings.llm_threads)
    if settings.llm == "openai":
        import httpx

        from bot.generation.openai import OpenAIChatLLM

        client = http_client or httpx.Client(timeout=settings.llm_timeout)
        return OpenAIChatLLM(
            str(settings.llm_base_url),
            settings.llm_model_name,
            client=client,
            api_key=settings.llm_api_key,
        )
    return None


def answer_wording(domain: Domain | None = None) -> AnswerWording:
    """The ``AnswerWording`` of knowledge answers: ``domain``'s responses (Clerk's default
    responses without one), rendered as plain text."""
    return AnswerWording(domain_say(domain) if domain is not None else clerk_say())


def relevance_of(encoder: Any) -> Relevance:
    """The cut-offs at which a knowledge hit is relevant, for the cosines of ``encoder``
    (``bot.nlu.relevance``): its own (MiniLM and e5 carry theirs); MiniLM's for a
    stand-in encoder that carries none (tests' hash encoders)."""
    relevance = getattr(encoder, "relevance", None)
    return relevance if isinstance(relevance, Relevance) else MINILM


def build_generation(
    settings: Settings,
    *,
    llm: LLM | None = None,
    domain: Domain | None = None,
    products: list[dict[str, Any]] | None = None,
    relevance: Relevance | None = None,
) -> Generation:
    """Answer writer (LLM behind the fact guard, or extractive) and copy writer; answers
    are worded by ``domain``'s responses (Clerk's defaults when not given: ``clerk copy``
    writes no answers). ``products``: the catalog, read here when not given.
    ``relevance``: the knowledge search's encoder's cut-offs (``relevance_of``); MiniLM's
    when not given (``clerk copy`` answers no questions)."""
    from bot.generation.copy import CopyWriter
    from bot.generation.extractive import ExtractiveWriter
    from bot.generation.guard import FactGuard
    from bot.generation.llm import GenerationParams
    from bot.generation.writer import GenerationStats, GuardedWriter
    from bot.knowledge.catalog import CatalogResolver

    if products is None:
        products = catalog_products(settings.knowledge_dir, catalog_spec(settings))
    catalog = CatalogResolver(products)
    llm = llm if llm is not None else make_llm(settings)
    stats = GenerationStats()
    guard = FactGuard(catalog)
    params = GenerationParams(
        max_new_tokens=settings.llm_max_new_tokens, timeout_s=settings.llm_timeout
    )
    extractive = ExtractiveWriter(answer_wording(domain), relevance=relevance or MINILM)
    writer: AnswerWriter = (
        extractive
        if llm is None
        else GuardedWriter(llm, guard, fallback=extractive, params=params, stats=stats)
    )
    copy_params = GenerationParams(max_new_tokens=80, timeout_s=settings.llm_timeout)
    copywriter = CopyWriter(catalog, guard, llm, params=copy_params, stats=stats)
    backend = llm.name if llm is not None else "extractive"
    return Generation(backend, llm, writer, copywriter, stats, catalog)


def message_limits(settings: Settings) -> MessageLimits:
    """Shoppers' message rate limit for the chat channels (and the ratings of REST and
    Telegram): counted across all workers in
    Redis when ``CLERK_REDIS_URL`` is set, else in this process."""
    if settings.redis_url:
        return RedisMessageLimits(settings.redis_url, settings.widget_rate_limit)
    return LocalMessageLimits(settings.widget_rate_limit)


def web_and_telegram_channels(
    settings: Settings,
    manager: DialogueManager,
    db: Database,
    domain: Domain,
    *,
    products: list[dict[str, Any]] | None = None,
) -> list[Channel]:
    """The chat widget, its Rasa-compatible Socket.IO endpoint and, with a token, Telegram.
    Their own words (the widget's labels and greeting, product card labels) are
    ``domain``'s responses, read now; prices are in the store's currency. ``products``:
    the catalog (the demo page shows a few), read here when not given."""
    from bot.channels.socketio_channel import SocketIOChannel
    from bot.channels.widget import (
        OriginPolicy,
        WidgetChannel,
        WidgetLook,
        WidgetWording,
        default_greeting,
    )

    if products is None:
        products = catalog_products(settings.knowledge_dir, catalog_spec(settings))
    origins = OriginPolicy(settings.widget_origins)
    say = domain_say(domain, WidgetChannel.name)
    greeting = settings.widget_greeting
    look = WidgetLook(
        title=settings.widget_title,
        color=settings.widget_color,
        greeting=default_greeting(say) if greeting is None else greeting,
        server_url=settings.widget_server_url,
    )
    wording = WidgetWording.from_responses(say, settings.currency)
    limits = message_limits(settings)
    channels: list[Channel] = [
        WidgetChannel(
            manager,
            db,
            look=look,
            wording=wording,
            origins=origins,
            limits=limits,
            demo_products=products[:8],
            sealer=manager.gate.sealer,
        ),
    ]
    if "socketio" in settings.channels:
        channels.append(
            SocketIOChannel(manager, origins=origins, limits=limits, redis_url=settings.redis_url)
        )
    if settings.telegram_token and "telegram" in settings.channels:
        channels.append(telegram_channel(settings, manager, domain))
    return channels


def telegram_channel(
    settings: Settings, manager: DialogueManager, domain: Domain, *, polling: bool = False
) -> TelegramChannel:
    """The Telegram channel (webhook, or ``polling`` for ``clerk telegram --polling``), with
    the store's currency and the domain's words."""
    from bot.channels.telegram import TelegramChannel, TelegramWording

    if not settings.telegram_token:
        raise ConfigError("telegram_token", "set it to the token @BotFather gave you")
    say = domain_say(domain, TelegramChannel.name)
    return TelegramChannel(
        manager,
        token=settings.telegram_token,
        base_url=settings.telegram_base_url,
        webhook_url=settings.telegram_webhook_url,
        polling=polling,
        webhook_secret=settings.telegram_webhook_secret,
        currency=settings.currency,
        cards=CardWording.from_responses(say),
        wording=TelegramWording.from_responses(say),
        limits=message_limits(settings),
    )


async def unavailable(request: Request, exc: Exception) -> JSONResponse:
    """``Unavailable`` (the database or a conversation stayed busy): 503, try again."""
    assert isinstance(exc, Unavailable)
    return JSONResponse(
        {"error": str(exc)},
        status_code=503,
        headers={"Retry-After": str(max(1, math.ceil(exc.retry_after)))},
    )


async def database_down(request: Request, exc: Exception) -> JSONResponse:
    """The database could not be reached by work outside ``Database.call`` (which raises
    ``DatabaseUnavailable`` itself): the same 503."""
    log.warning("database unavailable: %s", str(exc).splitlines()[0] if str(exc) else exc)
    return await unavailable(request, DatabaseUnavailable(type(exc).__name__))


def http_limits(settings: Settings) -> HttpLimits:
    """The HTTP server's timeouts and limits (``bot.server.server_config``) from settings."""
    return HttpLimits(
        header_timeout=settings.http_header_timeout,
        body_timeout=settings.http_body_timeout,
        keepalive=settings.http_keepalive,
        limit_concurrency=settings.http_limit_concurrency,
    )


def create_app(parts: Parts) -> Starlette:
    async def health(request: Request) -> JSONResponse:
        stats = parts.manager.stats
        return JSONResponse(
            {
                "status": "ok",
                "worker": os.getpid(),
                "uptime_s": round(time.time() - parts.started, 1),
                "actions": "remote"
                if isinstance(parts.actions, RemoteActionRunner)
                else "in-process",
                "stats": stats.__dict__,
                "handoff": {
                    "consoles": parts.handoff.relay.subscribers - 1,  # minus the outbox
                    "pushed_or_taken": parts.handoff.outbox.delivered,
                    "push_failures": parts.handoff.outbox.failures,
                    "bad_payloads": parts.handoff.outbox.bad_payloads,
                }
                if parts.handoff
                else None,
                "generation": {
                    "backend": parts.generation.backend,
                    **parts.generation.stats.as_dict(),
                }
                if parts.generation
                else None,
            }
        )

    async def copy(request: Request) -> JSONResponse:
        """``POST /api/copy`` {"product_id", "audience"?, "tone"?, "n"?} -> copy variants."""
        from bot.errors import InputError
        from bot.generation.copy import UnknownProduct

        data = await read_json_object(request)
        if isinstance(data, JSONResponse):
            return data
        n = data.get("n", 3)
        try:
            product_id = client_id(data.get("product_id"), "product_id", max_chars=100)
            audience = optional_string(data, "audience", max_chars=200) or "everyday shoppers"
            tone = optional_string(data, "tone", max_chars=200) or "friendly"
        except BadInput as exc:
            return JSONResponse({"error": f"field {exc}"}, status_code=400)
        if not isinstance(n, int) or isinstance(n, bool):
            return JSONResponse({"error": "field 'n' must be an integer"}, status_code=400)
        assert parts.generation is not None, "build() always makes the generation parts"
        writer = parts.generation.copywriter
        try:
            copies = await asyncio.to_thread(
                writer.write,
                product_id,
                audience=audience,
                tone=tone,
                n=n,
            )
        except UnknownProduct as exc:
            return JSONResponse({"error": str(exc)}, status_code=404)
        except InputError as exc:
            return JSONResponse({"error": str(exc)}, status_code=400)
        product = writer.catalog.product(str(product_id))
        assert product is not None  # write() raised UnknownProduct otherwise
        return JSONResponse(
            {
                "product_id": str(product_id),
                "name": product.name,
                "copies": [c.to_dict() for c in copies],
            }
        )

    async def parse(request: Request) -> JSONResponse:
        data = await read_json_object(request)
        if isinstance(data, JSONResponse):
            return data
        try:
            text = client_string(data.get("text"), "text", max_chars=4000)
        except BadInput as exc:
            return JSONResponse({"error": f"field {exc}"}, status_code=400)
        return JSONResponse(await asyncio.to_thread(parts.nlu.parse, text))

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        async with contextlib.AsyncExitStack() as running:
            for channel in parts.channels:
                await running.enter_async_context(channel.running())
            if parts.handoff is not None:
                await running.enter_async_context(parts.handoff.relay.running())
                await running.enter_async_context(parts.handoff.outbox.running())
                if parts.handoff.console is not None:
                    await running.enter_async_context(parts.handoff.console.running())
            if parts.settings.retention_days > 0:
                await running.enter_async_context(
                    retention_running(parts.db, parts.settings.retention_days)
                )
            yield
        await parts.actions.aclose()
        parts.manager.close()
        if parts.generation is not None and parts.generation.llm is not None:
            parts.generation.llm.close()
        parts.db.dispose()

    routes: list[BaseRoute] = [
        Route("/health", health, methods=["GET"]),
        Route("/model/parse", parse, methods=["POST"]),
        Route("/api/copy", copy, methods=["POST"]),
        openapi_route(console=parts.handoff is not None),
    ]
    for channel in parts.channels:
        routes.extend(channel.routes())
    if parts.handoff is not None and parts.handoff.console is not None:
        routes.extend(parts.handoff.console.routes())
    app = Starlette(
        routes=routes,
        lifespan=lifespan,
        exception_handlers={Unavailable: unavailable, OperationalError: database_down},
    )
    app.state.parts = parts
    return app
