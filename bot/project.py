"""A store's bot is a project folder, found the way Rasa finds one.

``Project.find(root)`` reads the folder's layout and returns where each part lives:

- ``config.yml`` (Rasa's: recipe, language, pipeline, policies, plus Clerk's ``clerk:``
  section), at the root or in ``training_data/``; optional (Clerk's defaults apply);
- the domain: ``domain.yml``/``domain.yaml`` or a ``domain/`` folder at the root, or
  ``training_data/domain.yml`` (the repository's own layout);
- training data: every YAML file under ``data/`` (Rasa) or ``training_data/`` (this
  repository), sorted by what it holds: ``nlu:`` examples, ``rules:`` and ``stories:``
  (one file may hold several);
- ``knowledge/`` (catalog, policies, FAQ), ``actions/`` (the store's own rasa-sdk actions, a
  package or ``actions.py``), ``tests/`` (test stories ``**/test_*.yml``, NLU test data
  ``nlu*.yml``), ``endpoints.yml``
  and ``credentials.yml``; all optional.

A folder without a domain or without NLU examples is not a project: ``ProjectNotFound``
says what is missing and how to make one. Nothing here falls back to another folder.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bot.errors import ConfigError, ProjectNotFound

DATA_FOLDERS = ("data", "training_data")
_YAML = (".yml", ".yaml")


@dataclass(frozen=True)
class Project:
    root: Path
    domain: Path  # a file, or a folder of domain files
    nlu_files: tuple[Path, ...]
    dialogue_files: tuple[Path, ...]  # rules and stories
    config_file: Path | None = None
    knowledge_dir: Path | None = None
    actions_dir: Path | None = None  # the folder holding the ``actions`` package/module
    test_files: tuple[Path, ...] = ()  # test stories
    nlu_test_files: tuple[Path, ...] = ()  # tests/nlu*.yml
    endpoints_file: Path | None = None
    credentials_file: Path | None = None

    @classmethod
    def find(cls, root: str | Path) -> Project:
        root = Path(root).expanduser().resolve()
        if not root.is_dir():
            raise ProjectNotFound(str(root), ["the folder itself"])
        domain = _domain(root)
        data_files = _data_files(root, exclude={domain} if domain else set())
        nlu = tuple(p for p, keys in data_files if "nlu" in keys)
        dialogue = tuple(p for p, keys in data_files if keys & {"rules", "stories"})
        missing = []
        if domain is None:
            missing.append("domain.yml (or a domain/ folder)")
        if not nlu:
            missing.append(
                "NLU examples (data/nlu.yml, or any YAML file under data/ with an `nlu:` section)"
            )
        if missing:
            raise ProjectNotFound(str(root), missing)
        assert domain is not None
        return cls(
            root=root,
            domain=domain,
            nlu_files=nlu,
            dialogue_files=dialogue,
            config_file=config_file(root),
            knowledge_dir=_dir_or_none(root / "knowledge"),
            actions_dir=root
            if (root / "actions" / "__init__.py").is_file() or (root / "actions.py").is_file()
            else None,
            test_files=_test_files(root),
            nlu_test_files=tuple(
                p for p in _yaml_files_in(root / "tests") if p.name.startswith("nlu")
            ),
            endpoints_file=endpoints_file(root),
            credentials_file=credentials_file(root),
        )

    def read_config(self) -> dict[str, Any]:
        """The parsed ``config.yml`` ({} when the project has none)."""
        return read_yaml_mapping(self.config_file) if self.config_file else {}


def read_yaml_mapping(path: Path) -> dict[str, Any]:
    """A YAML file whose top level is a mapping (an empty file is ``{}``)."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(str(path), f"invalid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(str(path), "the top level must be a mapping")
    return data


def config_file(root: Path) -> Path | None:
    """The project's Rasa ``config.yml`` (``.yaml``; or ``training_data/config.yml``), if any."""
    return _first_file(
        root / "config.yml", root / "config.yaml", root / "training_data" / "config.yml"
    )


def endpoints_file(root: Path) -> Path | None:
    """The project's ``endpoints.yml`` (or ``.yaml``), if any."""
    return _first_file(root / "endpoints.yml", root / "endpoints.yaml")


def credentials_file(root: Path) -> Path | None:
    """The project's ``credentials.yml`` (or ``.yaml``), if any."""
    return _first_file(root / "credentials.yml", root / "credentials.yaml")


def _first_file(*candidates: Path) -> Path | None:
    return next((p for p in candidates if p.is_file()), None)


def _dir_or_none(path: Path) -> Path | None:
    return path if path.is_dir() else None


def _domain(root: Path) -> Path | None:
    found = _first_file(
        root / "domain.yml", root / "domain.yaml", root / "training_data" / "domain.yml"
    )
    if found is not None:
        return found
    folder = root / "domain"
    return folder if folder.is_dir() else None


def _yaml_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.suffix in _YAML and p.is_file())


def _data_files(root: Path, exclude: set[Path]) -> list[tuple[Path, frozenset[str]]]:
    """YAML files of the data folders with the training-data sections each one holds."""
    out = []
    for name in DATA_FOLDERS:
        folder = root / name
        if not folder.is_dir():
            continue
        for path in _yaml_files(folder):
            if path in exclude or path.name in ("config.yml", "config.yaml"):
                continue
            keys = _top_level_keys(path)
            if keys:
                out.append((path, keys))
    return out


def _top_level_keys(path: Path) -> frozenset[str]:
    """Which of ``nlu``, ``rules``, ``stories`` a training-data file holds. A malformed file
    counts as NLU data so that loading it reports the YAML error with its line."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError:
        return frozenset({"nlu"})
    if not isinstance(data, dict):
        return frozenset()
    return frozenset(k for k in ("nlu", "rules", "stories") if data.get(k))


def _yaml_files_in(folder: Path) -> list[Path]:
    return _yaml_files(folder) if folder.is_dir() else []


def _test_files(root: Path) -> tuple[Path, ...]:
    """Test stories: ``tests/**/test_*.yml`` (``.yaml``), as ``rasa test`` finds them."""
    return tuple(p for p in _yaml_files_in(root / "tests") if p.name.startswith("test_"))


def describe(project: Project) -> Iterable[str]:
    """One line per part of the project, for ``clerk project``-style reports and logs."""
    yield f"project   {project.root}"
    yield f"domain    {project.domain}"
    yield f"config    {project.config_file or '(none: Clerk defaults)'}"
    yield f"nlu       {len(project.nlu_files)} file(s)"
    yield f"dialogue  {len(project.dialogue_files)} file(s)"
    yield f"knowledge {project.knowledge_dir or '(none)'}"
    yield f"actions   {project.actions_dir / 'actions' if project.actions_dir else '(built-in only)'}"
    yield f"tests     {len(project.test_files)} file(s)"
