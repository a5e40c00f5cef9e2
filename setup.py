"""Build hook: the wheel carries the demo store's project for ``clerk init``.

The repository root is the demo store's project (``training_data/``, ``knowledge/``,
``actions/``, ``tests/stories/``); building copies those into
``bot/projects/demo-store/`` of the build, so the repository keeps one copy of them and an
installed Clerk can scaffold the demo with no source checkout. Everything else is in
pyproject.toml.
"""

import shutil
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

DEMO_PARTS = ("training_data", "knowledge", "actions", "tests/stories")


class BuildWithDemoProject(build_py):
    def run(self) -> None:
        super().run()
        root = Path(__file__).resolve().parent
        target = Path(self.build_lib) / "bot" / "projects" / "demo-store"
        for part in DEMO_PARTS:
            if (root / part).is_dir():
                shutil.copytree(
                    root / part,
                    target / part,
                    dirs_exist_ok=True,
                    ignore=shutil.ignore_patterns("__pycache__", "*.pyc"),
                )


setup(cmdclass={"build_py": BuildWithDemoProject})
