"""The import direction of DESIGN.md holds: contracts in pyproject.toml, checked by
import-linter on the installed package."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_import_contracts_are_kept() -> None:
    exe = shutil.which("lint-imports")
    assert exe, "import-linter is a test dependency; install with pip install -e '.[test]'"
    result = subprocess.run(
        [exe, "--no-cache"], check=False, cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert "0 broken" in result.stdout
