"""``clerk init``: a new bot project folder from a template.

Templates: ``demo-store`` (the repository's demo project: the tau-bench store with orders,
forms, tickets and recommendations), ``demo-store-zh`` (the same store speaking Chinese) and
``minimal`` (greetings, knowledge answers, handoff and one custom action). All are written in
Rasa's layout (``config.yml``, ``domain.yml``, ``data/``, ``knowledge/``, ``actions/``,
``tests/``) with a README and a ``.gitignore``.

Where the demo comes from: an installed wheel carries it in ``bot/projects/demo-store/``
(``setup.py`` copies it there from the repository at build time, so the repository holds one
copy); a source checkout reads the repository root. Either holds the repository's layout,
which ``DEMO_LAYOUT`` maps onto the project layout.

``demo-store-zh`` is the demo written as above, then ``bot/projects/demo-store-zh/`` (in the
project layout) copied over it: its files replace the demo's (``config.yml`` with
``language: zh``, the Chinese ``domain.yml``, ``data/nlu.yml``, the knowledge's FAQ and
policy, the README), it adds ``clerk.yml`` (prices in yuan), and its ``tests/`` replaces the
demo's English test stories wholly. The rules, stories, actions and catalog stay the demo's:
they hold no shopper-facing words.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from bot.errors import ConfigError

TEMPLATES = ("demo-store", "demo-store-zh", "minimal")
PROJECTS = Path(__file__).resolve().parent / "projects"
CHECKOUT = Path(__file__).resolve().parent.parent

#: overlays on the demo: template -> folder in ``PROJECTS`` (project layout) copied over it
DEMO_OVERLAYS = {"demo-store-zh": "demo-store-zh"}
#: folders of an overlay that replace the demo's wholly rather than file by file
WHOLE_FOLDERS = ("tests",)

# (path in the repository, path in a new project)
DEMO_LAYOUT = (
    ("training_data/config.yml", "config.yml"),
    ("training_data/domain.yml", "domain.yml"),
    ("training_data/nlu.yml", "data/nlu.yml"),
    ("training_data/rules.yml", "data/rules.yml"),
    ("training_data/stories.yml", "data/stories.yml"),
    ("knowledge", "knowledge"),
    ("actions", "actions"),
    ("tests/stories", "tests"),
)
_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")


def demo_source() -> Path:
    """The folder holding the demo project in the repository's layout."""
    for candidate in (PROJECTS / "demo-store", CHECKOUT):
        if (candidate / "training_data" / "domain.yml").is_file():
            return candidate
    raise ConfigError("template", "the demo-store template is missing from this installation")


def scaffold(template: str, target: Path) -> list[Path]:
    """Write ``template`` into ``target`` (created; it must not hold files yet). Returns the
    files written."""
    if template not in TEMPLATES:
        raise ConfigError("--template", f"one of {', '.join(TEMPLATES)}, not {template!r}")
    target = Path(target)
    if target.exists() and (not target.is_dir() or any(target.iterdir())):
        raise ConfigError(str(target), "already exists and is not empty; choose a new folder")
    target.mkdir(parents=True, exist_ok=True)
    if template == "minimal":
        shutil.copytree(PROJECTS / "minimal", target, ignore=_IGNORE, dirs_exist_ok=True)
    else:
        source = demo_source()
        for inside, outside in DEMO_LAYOUT:
            _copy(source / inside, target / outside)
        shutil.copyfile(PROJECTS / "demo-store.md", target / "README.md")
        if template in DEMO_OVERLAYS:
            _overlay(PROJECTS / DEMO_OVERLAYS[template], target)
    shutil.copyfile(PROJECTS / "gitignore", target / ".gitignore")
    return sorted(p for p in target.rglob("*") if p.is_file())


def _overlay(overlay: Path, target: Path) -> None:
    """Copy ``overlay`` over the project in ``target``: its files replace those of the same
    path, and each of its ``WHOLE_FOLDERS`` replaces that folder wholly."""
    if not (overlay / "domain.yml").is_file():
        raise ConfigError("template", f"{overlay.name} is missing from this installation")
    for name in WHOLE_FOLDERS:
        if (overlay / name).is_dir():
            shutil.rmtree(target / name, ignore_errors=True)
    _copy(overlay, target)


def _copy(source: Path, target: Path) -> None:
    if source.is_dir():
        shutil.copytree(source, target, ignore=_IGNORE, dirs_exist_ok=True)
    elif source.is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)
