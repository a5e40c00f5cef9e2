"""Settings, read once from a mapping (the environment) and an optional ``clerk.yml``.

Modules receive plain values taken from ``Settings``; only ``app.py`` and ``cli.py``
hold the settings object itself.

Precedence: environment variable > clerk.yml > default.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    home: Path
    database_url: str
    action_endpoint: str | None
    data_dir: Path
    knowledge_dir: Path
    actions_package: str = "actions"
    nlu_threshold: float = 0.45
    max_misses_before_handoff: int = 2
    log_level: str = "INFO"
    extra: dict[str, Any] = field(default_factory=dict)

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
        file_values: dict[str, Any] = {}
        path = Path(config_file or env.get("CLERK_CONFIG", "clerk.yml"))
        if path.exists():
            try:
                loaded = yaml.safe_load(path.read_text()) or {}
            except yaml.YAMLError as exc:
                raise ConfigError(str(path), f"invalid YAML: {exc}") from exc
            if not isinstance(loaded, dict):
                raise ConfigError(str(path), "must be a mapping of settings")
            file_values = {str(k).lower(): v for k, v in loaded.items()}

        def get(name: str, default: Any = None) -> Any:
            env_key = f"CLERK_{name.upper()}"
            if env_key in env and env[env_key] != "":
                return env[env_key]
            return file_values.get(name, default)

        home = Path(get("home", ".clerk")).expanduser().resolve()
        db_url = get("database_url") or f"sqlite:///{home / 'clerk.db'}"
        try:
            threshold = float(get("nlu_threshold", 0.45))
            misses = int(get("max_misses_before_handoff", 2))
        except (TypeError, ValueError) as exc:
            raise ConfigError("nlu_threshold/max_misses_before_handoff", str(exc)) from exc
        if not 0.0 <= threshold <= 1.0:
            raise ConfigError("nlu_threshold", "must be between 0 and 1")
        return cls(
            home=home,
            database_url=str(db_url),
            action_endpoint=get("action_endpoint") or None,
            data_dir=Path(get("data_dir", PROJECT_ROOT / "training_data")).resolve(),
            knowledge_dir=Path(get("knowledge_dir", PROJECT_ROOT / "knowledge")).resolve(),
            actions_package=str(get("actions_package", "actions")),
            nlu_threshold=threshold,
            max_misses_before_handoff=misses,
            log_level=str(get("log_level", "INFO")).upper(),
            extra={k: v for k, v in file_values.items()},
        )
