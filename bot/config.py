"""Settings, read once from a mapping (the environment) and an optional ``clerk.yml``.

Modules receive plain values taken from ``Settings``; only ``app.py`` and ``cli.py``
hold the settings object itself.

The project (``CLERK_PROJECT``, default: the working directory) holds ``clerk.yml`` and the
home (``.clerk/``: database, models, index) unless settings say otherwise; its files are found
by ``bot.project.Project`` (``Settings.project``).

Precedence: environment variable > clerk.yml > the project's Rasa files (``endpoints.yml``,
``credentials.yml``, ``config.yml``'s ``language``) > default.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol, TypeVar

import yaml

from bot.errors import ConfigError
from bot.knowledge.imports.spec import FileSpec, parse_currency, parse_files
from bot.lang import LANGUAGES, Language, parse_language
from bot.project import Project, config_file, credentials_file, endpoints_file, read_yaml_mapping
from bot.ratelimit import Network, parse_networks

CHANNELS = ("rest", "socketio", "telegram")  # the chat widget is always served


class Get(Protocol):
    """A setting's raw value: the environment's ``CLERK_<NAME>``, else clerk.yml's, else
    the project's Rasa files', else ``default``."""

    def __call__(self, name: str, default: Any = None) -> Any: ...


Number = TypeVar("Number", int, float)


def _number(
    get: Get,
    name: str,
    default: Number,
    kind: type[Number],
    *,
    least: float | None = None,
    most: float | None = None,
    above: float | None = None,
    rule: str = "",
) -> Number:
    """Setting ``name`` as a ``kind`` (``int`` or ``float``) within its bounds: at least
    ``least``, more than ``above``, at most ``most`` (each when given). A value that is
    not a number, or breaks a bound, is a ``ConfigError`` naming the setting, with ``rule``
    (what the bounds mean, in words) for a broken bound."""
    raw = get(name, default)
    try:
        value = kind(raw)
    except (TypeError, ValueError, OverflowError):
        what = "an integer" if kind is int else "a number"
        raise ConfigError(name, f"must be {what}, not {raw!r}") from None
    inside = (
        (least is None or value >= least)
        and (above is None or value > above)
        and (most is None or value <= most)
    )
    if not inside:  # NaN is inside no bounds
        raise ConfigError(name, rule or "out of range")
    return value


def _optional_number(get: Get, name: str, kind: type[Number], **bounds: Any) -> Number | None:
    """``_number`` for a setting without a default: ``None`` when it is not set."""
    if get(name) in (None, ""):
        return None
    return _number(get, name, kind(0), kind, **bounds)


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    action_endpoint: str | None
    project_dir: Path  # the bot project (CLERK_PROJECT / --project; default: working dir)
    #: The store's language: ``en`` or ``zh`` (Chinese-speaking stores, README). Read from
    #: CLERK_LANGUAGE, clerk.yml or the project's Rasa ``config.yml``.
    language: Language = "en"
    channels: tuple[str, ...] = CHANNELS  # credentials.yml lists them; default: all
    nlu_threshold: float | None = None  # None: the model's own (training_data/config.yml)
    #: The NLU's sentence-encoder ONNX precision: int8 is about 2.5x faster a message at
    #: the same intent accuracy (benchmarks/nlu_defaults.py). Knowledge search uses fp32.
    nlu_encoder_precision: str = "int8"
    max_misses_before_handoff: int = 2
    #: The closing responses after which the bot asks the shopper to rate the conversation
    #: (CSAT, bot/dialogue/feedback.py); empty: only action_ask_feedback and an agent
    #: closing a handoff ask.
    feedback_after: tuple[str, ...] = ("utter_goodbye",)
    log_level: str = "INFO"
    # web chat widget and its Rasa-compatible Socket.IO endpoint
    widget_title: str = "Clerk"
    widget_color: str = "#0f766e"
    widget_greeting: str | None = None  # None: the domain's response utter_widget_greeting
    widget_server_url: str | None = None  # public URL of this server; default: the script's
    widget_origins: tuple[str, ...] = ()  # allowed page origins besides our own; "*" = any
    widget_rate_limit: int = 20  # messages per session per minute
    # Telegram
    telegram_token: str | None = None
    telegram_base_url: str | None = None  # a self-hosted Bot API server
    telegram_webhook_url: str | None = None  # set: `clerk serve` registers this webhook
    telegram_webhook_secret: str | None = None  # default: derived from the token
    # generation (bot/generation): extractive | transformers | openai
    llm: str = "extractive"
    llm_model: str | None = None  # model folder or .gguf file (transformers)
    llm_base_url: str | None = None  # OpenAI-compatible endpoint, e.g. http://127.0.0.1:8080/v1
    llm_api_key: str | None = field(default=None, repr=False)
    llm_model_name: str = "default"  # the model name sent to the endpoint
    llm_timeout: float = 30.0  # seconds for one whole reply, then the extractive answer
    llm_max_new_tokens: int = 160
    llm_threads: int | None = None  # torch threads for the transformers backend
    # human handoff (bot/handoff) and the agent console (/console)
    handoff_on_misses: str = "offer"  # offer a human after N misses, or "handoff" directly
    handoff_on_out_of_scope: bool = True  # a request outside the bot's scope goes to a human
    handoff_on_action_failure: bool = True  # a failed custom action goes to a human
    handoff_on_severe_complaint: bool = True  # legal/safety/strongly negative complaints
    handoff_wait_minutes: float = 3.0  # expected wait per shopper before any claim is timed
    console_secure_cookies: bool = False  # set behind HTTPS: the session cookie is Secure
    # serving several shoppers, workers and hosts
    rest_token: str | None = field(default=None, repr=False)  # REST channel bearer token
    redis_url: str | None = None  # workers share the change feed, Socket.IO, rate limits
    # a Fernet key: shoppers' personal data in stored conversations is sealed with it
    transcript_key: str | None = field(default=None, repr=False)
    db_pool_size: int = 10  # database threads = pooled connections per worker
    db_queue_timeout: float = 5.0  # seconds a request waits for one, then HTTP 503
    console_canned_replies: tuple[str, ...] = (
        "Thanks for your patience — I'm looking into this now.",
        "Could you tell me your order number (it looks like #W1234567)?",
        "I've sorted this out for you. Is there anything else I can help with?",
        "I'm handing you back to Clerk, our assistant. Have a great day!",
    )
    # the HTTP server (`clerk serve`, bot/server.py) and who a request comes from
    trusted_proxies: tuple[Network, ...] = ()  # peers whose X-Forwarded-For is believed
    http_header_timeout: float = 10.0  # seconds for a request's line and headers
    http_body_timeout: float = 30.0  # seconds for a request's body, after its headers
    http_keepalive: float = 75.0  # idle keep-alive: longer than clients' and proxies' own
    http_limit_concurrency: int = 1000  # open connections + running requests per process
    # the store's catalog (bot/knowledge/imports/spec.py): clerk.yml `catalog: {currency,
    # files}`; CLERK_CURRENCY also sets the currency
    currency: str = "USD"  # ISO 4217 code of every catalog price
    catalog_files: tuple[FileSpec, ...] = ()  # files read through a declared mapping
    # personal data (bot/store/personal_data.py): `clerk serve` purges conversations and
    # anonymises solved tickets older than this once a day; 0 keeps them forever
    retention_days: int = 0
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def project(self) -> Project:
        """The project's files; ``ProjectNotFound`` when ``project_dir`` holds none."""
        return Project.find(self.project_dir)

    @property
    def knowledge_dir(self) -> Path | None:
        return self.project.knowledge_dir

    @property
    def models_dir(self) -> Path:
        return self.home / "models"

    @property
    def index_dir(self) -> Path:
        return self.home / "index"

    @classmethod
    def load(
        cls, env: Mapping[str, str] | None = None, config_file: str | Path | None = None
    ) -> Settings:
        env = os.environ if env is None else env
        project_dir = Path(env.get("CLERK_PROJECT") or ".").expanduser().resolve()
        file_values: dict[str, Any] = {}
        path = Path(config_file or env.get("CLERK_CONFIG") or project_dir / "clerk.yml")
        if path.exists():
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(str(path), f"invalid YAML: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigError(str(path), "must be a mapping of settings")
            file_values = {str(k).lower(): v for k, v in loaded.items()}
        rasa_values = rasa_project_settings(project_dir, env)

        def get(name: str, default: Any = None) -> Any:
            env_key = f"CLERK_{name.upper()}"
            if env_key in env and env[env_key] != "":
                return env[env_key]
            return file_values.get(name, rasa_values.get(name, default))

        home = Path(get("home", project_dir / ".clerk")).expanduser()
        home = (home if home.is_absolute() else project_dir / home).resolve()
        db_url = get("database_url") or f"sqlite:///{home / 'clerk.db'}"
        threshold = _optional_number(
            get, "nlu_threshold", float, least=0.0, most=1.0, rule="must be between 0 and 1"
        )
        misses = _number(get, "max_misses_before_handoff", 2, int)
        channel_settings = _channel_settings(get)
        return cls(
            home=home,
            database_url=str(db_url),
            action_endpoint=get("action_endpoint") or None,
            project_dir=project_dir,
            language=_language(get("language", "en")),
            channels=_channels(get("channels", CHANNELS)),
            nlu_threshold=threshold,
            max_misses_before_handoff=misses,
            feedback_after=_names(get("feedback_after", ("utter_goodbye",)), "feedback_after"),
            log_level=str(get("log_level", "INFO")).upper(),
            retention_days=_number(
                get,
                "retention_days",
                0,
                int,
                least=0,
                rule="must be a whole number of days (0: keep forever)",
            ),
            **channel_settings,
            **_llm_settings(get),
            **_handoff_settings(get),
            **_serving_settings(get),
            **_server_settings(get),
            **_catalog_config(get, file_values.get("catalog")),
            extra={k: v for k, v in file_values.items()},
        )


def rasa_project_settings(project_dir: Path, env: Mapping[str, str]) -> dict[str, Any]:
    """Settings a Rasa project states in its own files: ``endpoints.yml``'s
    ``action_endpoint.url``; ``credentials.yml``'s channels (``rest``, ``socketio``,
    ``telegram``: only those listed are served) and Telegram's ``access_token`` and
    ``webhook_url``; ``config.yml``'s ``language`` when Clerk speaks it (a Rasa project in
    another language still loads, in English, and training reports it:
    ``bot.nlu.config.rasa_config_notes``). ``${VAR}`` in these files is read from ``env``,
    as Rasa does."""
    out: dict[str, Any] = {}
    config = config_file(project_dir)
    if config is not None:
        language = read_yaml_mapping(config).get("language")
        if language is not None and parse_language(language) is not None:
            out["language"] = language
    endpoints = endpoints_file(project_dir)
    if endpoints is not None:
        action = read_yaml_mapping(endpoints).get("action_endpoint")
        if isinstance(action, dict) and action.get("url"):
            out["action_endpoint"] = _expand(str(action["url"]), env)
    credentials_path = credentials_file(project_dir)
    if credentials_path is not None:
        credentials = read_yaml_mapping(credentials_path)
        out["channels"] = [c for c in CHANNELS if c in credentials]
        telegram = credentials.get("telegram")
        if isinstance(telegram, dict):
            for key, name in (
                ("access_token", "telegram_token"),
                ("webhook_url", "telegram_webhook_url"),
            ):
                if telegram.get(key):
                    out[name] = _expand(str(telegram[key]), env)
    return out


def _language(value: Any) -> Language:
    """``en`` or ``zh``; a regional spelling (``zh-CN``, ``en_US``) reads as its language."""
    language = parse_language(value)
    if language is None:
        raise ConfigError(
            "language", f"must be one of {', '.join(LANGUAGES)} (zh-CN reads as zh), not {value!r}"
        )
    return language


_ENV_REF = re.compile(r"\$\{(\w+)\}")


def _expand(text: str, env: Mapping[str, str]) -> str:
    def value(m: re.Match[str]) -> str:
        if m.group(1) not in env:
            raise ConfigError(m.group(0), "is used in the project's files but not set")
        return env[m.group(1)]

    return _ENV_REF.sub(value, text)


def _names(value: Any, key: str) -> tuple[str, ...]:
    """A list of response names: comma-separated (environment) or a YAML list; ``none``
    (or an empty list) for none."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "none"):
        return ()
    names = value.split(",") if isinstance(value, str) else value
    if not isinstance(names, list | tuple) or not all(isinstance(n, str) for n in names):
        raise ConfigError(key, "must be a list of response names")
    return tuple(n.strip() for n in names if n.strip())


def _channels(value: Any) -> tuple[str, ...]:
    names = [v.strip() for v in value.split(",")] if isinstance(value, str) else list(value)
    unknown = sorted(set(names) - set(CHANNELS))
    if unknown:
        raise ConfigError("channels", f"unknown {unknown}; known: {', '.join(CHANNELS)}")
    return tuple(c for c in CHANNELS if c in names)


_COLOR = re.compile(r"#[0-9a-fA-F]{3,8}|[a-zA-Z]{3,20}")
_SECRET = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _channel_settings(get: Get) -> dict[str, Any]:
    """The widget's and Telegram's settings, validated (colours end up in CSS)."""
    color = str(get("widget_color", "#0f766e")).strip()
    if not _COLOR.fullmatch(color):
        raise ConfigError("widget_color", "must be a hex colour like #0f766e or a CSS colour name")
    origins = get("widget_origins", ())
    if isinstance(origins, str):
        origins = [o for o in (x.strip() for x in origins.split(",")) if o]
    rate = _number(
        get, "widget_rate_limit", 20, int, least=1, rule="must be at least 1 message per minute"
    )
    secret = get("telegram_webhook_secret") or None
    if secret is not None and not _SECRET.fullmatch(str(secret)):
        raise ConfigError("telegram_webhook_secret", "1-256 characters of A-Z, a-z, 0-9, _ and -")
    out: dict[str, Any] = {
        "widget_color": color,
        "widget_origins": tuple(str(o).rstrip("/") for o in origins),
        "widget_rate_limit": rate,
        "telegram_token": get("telegram_token") or None,
        "telegram_base_url": get("telegram_base_url") or None,
        "telegram_webhook_url": get("telegram_webhook_url") or None,
        "telegram_webhook_secret": secret,
    }
    for name in ("widget_title", "widget_greeting", "widget_server_url"):
        value = get(name)
        if value is not None:
            out[name] = str(value)
    return out


def _serving_settings(get: Get) -> dict[str, Any]:
    """The REST token, Redis, and the database thread pool of each worker."""
    return {
        "nlu_encoder_precision": _choice(get, "nlu_encoder_precision", ENCODER_PRECISIONS, "int8"),
        "rest_token": get("rest_token") or None,
        "redis_url": get("redis_url") or None,
        "transcript_key": get("transcript_key") or None,
        "db_pool_size": _number(
            get, "db_pool_size", 10, int, least=1, most=200, rule="must be between 1 and 200"
        ),
        "db_queue_timeout": _number(
            get,
            "db_queue_timeout",
            5.0,
            float,
            above=0,
            most=300,
            rule="must be between 0 and 300 seconds",
        ),
    }


ENCODER_PRECISIONS = ("int8", "fp32")


def _choice(get: Get, name: str, choices: tuple[str, ...], default: str) -> str:
    """Setting ``name``, one of ``choices``."""
    value = str(get(name, default)).strip().lower()
    if value not in choices:
        raise ConfigError(name, f"must be one of {', '.join(choices)}, not {value!r}")
    return value


def _flag(get: Get, name: str, default: bool) -> bool:
    """Setting ``name`` as a yes/no: a YAML boolean, or 1/0, true/false, yes/no, on/off."""
    value = get(name, default)
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ConfigError(name, f"must be true or false, not {value!r}")


def _handoff_settings(get: Get) -> dict[str, Any]:
    """When the bot hands off on its own, and the agent console's settings."""
    misses = str(get("handoff_on_misses", "offer")).strip().lower()
    if misses not in ("offer", "handoff"):
        raise ConfigError("handoff_on_misses", "must be 'offer' or 'handoff'")
    wait = _number(get, "handoff_wait_minutes", 3.0, float, above=0, rule="must be positive")
    out: dict[str, Any] = {
        "handoff_on_misses": misses,
        "handoff_on_out_of_scope": _flag(get, "handoff_on_out_of_scope", True),
        "handoff_on_action_failure": _flag(get, "handoff_on_action_failure", True),
        "handoff_on_severe_complaint": _flag(get, "handoff_on_severe_complaint", True),
        "handoff_wait_minutes": wait,
        "console_secure_cookies": _flag(get, "console_secure_cookies", False),
    }
    canned = get("console_canned_replies")
    if canned is not None:
        if isinstance(canned, str):  # environment: replies separated by "|"
            canned = [c for c in (x.strip() for x in canned.split("|")) if c]
        if not isinstance(canned, list | tuple) or not all(isinstance(c, str) for c in canned):
            raise ConfigError("console_canned_replies", "must be a list of texts")
        out["console_canned_replies"] = tuple(canned)
    return out


def _server_settings(get: Get) -> dict[str, Any]:
    """The HTTP server's timeouts and limit, and the trusted proxies (IPs or CIDRs,
    comma-separated; a list in clerk.yml)."""
    proxies = get("trusted_proxies", ())
    try:
        trusted = parse_networks(
            proxies if isinstance(proxies, str) else [str(p) for p in proxies or ()]
        )
    except (TypeError, ValueError) as exc:
        raise ConfigError("trusted_proxies", str(exc)) from exc
    out: dict[str, Any] = {"trusted_proxies": trusted}
    for name, default in (
        ("http_header_timeout", 10.0),
        ("http_body_timeout", 30.0),
        ("http_keepalive", 75.0),
    ):
        out[name] = _number(
            get, name, default, float, above=0, rule="must be a positive number of seconds"
        )
    out["http_limit_concurrency"] = _number(
        get, "http_limit_concurrency", 1000, int, least=1, rule="must be at least 1"
    )
    return out


def _catalog_config(get: Get, catalog: Any) -> dict[str, Any]:
    """``currency`` (CLERK_CURRENCY, clerk.yml ``catalog.currency`` or top-level
    ``currency``) and the declared catalog files (clerk.yml ``catalog.files``)."""
    if catalog is None:
        catalog = {}
    if not isinstance(catalog, Mapping):
        raise ConfigError("catalog", "must be a mapping with currency and files")
    unknown = set(catalog) - {"currency", "files"}
    if unknown:
        raise ConfigError("catalog", f"unknown keys {sorted(unknown)}; known: currency, files")
    currency = get("currency") or catalog.get("currency") or "USD"
    return {
        "currency": parse_currency(currency),
        "catalog_files": parse_files(catalog.get("files")),
    }


LLM_BACKENDS = ("extractive", "transformers", "openai")


def _llm_settings(get: Get) -> dict[str, Any]:
    """The generation backend's settings. Without ``CLERK_LLM`` the backend follows from
    what is configured: a model path -> transformers, a base URL -> openai, else extractive."""
    model = get("llm_model") or None
    base_url = get("llm_base_url") or None
    default = "transformers" if model else "openai" if base_url else "extractive"
    llm = str(get("llm", default)).strip().lower()
    if llm not in LLM_BACKENDS:
        raise ConfigError("llm", f"must be one of {', '.join(LLM_BACKENDS)}, not {llm!r}")
    if llm == "transformers" and not model:
        raise ConfigError("llm_model", "CLERK_LLM=transformers needs a model folder or .gguf file")
    if llm == "openai" and not base_url:
        raise ConfigError("llm_base_url", "CLERK_LLM=openai needs the endpoint's base URL")
    positive: dict[str, Any] = {"above": 0, "rule": "must be positive"}
    timeout = _number(get, "llm_timeout", 30.0, float, **positive)
    max_new_tokens = _number(get, "llm_max_new_tokens", 160, int, **positive)
    threads = _optional_number(get, "llm_threads", int, **positive)
    return {
        "llm": llm,
        "llm_model": str(Path(str(model)).expanduser()) if model else None,
        "llm_base_url": str(base_url) if base_url else None,
        "llm_api_key": get("llm_api_key") or None,
        "llm_model_name": str(get("llm_model_name", "default")),
        "llm_timeout": timeout,
        "llm_max_new_tokens": max_new_tokens,
        "llm_threads": threads,
    }
