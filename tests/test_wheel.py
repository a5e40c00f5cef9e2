"""Installed from a wheel, with no source checkout: `clerk init shop && cd shop && clerk train
&& clerk serve` serves a working bot, and installing Clerk adds no top-level `actions`.

The virtualenv sees the machine's site-packages (torch and the other dependencies are large
and already installed; nothing may be downloaded), but Clerk itself comes from the wheel:
the test checks where `bot` is imported from.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

from tests.live import free_port

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.slow


def run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> str:
    proc = subprocess.run(
        cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )
    assert proc.returncode == 0, f"{cmd} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    return proc.stdout


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
        ],
        cwd=out,
        env=dict(os.environ),
    )
    [built] = out.glob("clerk_bot-*.whl")
    return built


def test_the_wheel_installs_no_top_level_actions_and_carries_the_templates(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    top = {n.split("/")[0] for n in names}
    assert "actions" not in top
    assert {n for n in top if not n.endswith(".dist-info")} == {"bot"}
    assert "bot/projects/demo-store/training_data/domain.yml" in names
    assert "bot/projects/demo-store/knowledge/catalog/products.json" in names
    assert "bot/projects/demo-store/tests/stories/test_demo_stories.yml" in names
    assert "bot/projects/minimal/actions/actions.py" in names
    assert "bot/projects/demo-store-zh/domain.yml" in names
    assert "bot/projects/demo-store-zh/clerk.yml" in names
    assert "bot/projects/demo-store-zh/tests/test_stories.yml" in names
    assert "bot/store_actions/__init__.py" in names
    tracked = subprocess.run(
        ["git", "ls-files", "bot"], cwd=ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    assert set(tracked) <= set(names)  # every file of the package, data files included


def test_init_train_serve_from_the_wheel_with_no_checkout(
    wheel: Path,
    tmp_path: Path,
) -> None:
    venv = tmp_path / "venv"
    run(
        [sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
        cwd=tmp_path,
        env=dict(os.environ),
    )
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PYTHONPATH", "CLERK_PROJECT", "CLERK_HOME", "CLERK_CONFIG")
    }
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    run(
        [str(venv / "bin" / "pip"), "install", "-q", "--no-deps", str(wheel)], cwd=tmp_path, env=env
    )
    probe = "import bot, importlib.util as u; print(bot.__file__, u.find_spec('actions'))"
    where = run([str(venv / "bin" / "python"), "-c", probe], cwd=tmp_path, env=env).split()
    assert where[0].startswith(str(venv)), where  # Clerk from the wheel, not the checkout
    assert where[1] == "None"  # no `actions` module installed anywhere on the path

    clerk = str(venv / "bin" / "clerk")
    run([clerk, "init", "shop-zh", "--template", "demo-store-zh"], cwd=tmp_path, env=env)
    shop_zh = tmp_path / "shop-zh"
    assert "language: zh" in (shop_zh / "config.yml").read_text(encoding="utf-8")
    assert "CNY" in (shop_zh / "clerk.yml").read_text(encoding="utf-8")
    assert (shop_zh / "knowledge" / "catalog" / "orders.json").is_file()  # the demo's, under it
    assert (shop_zh / "tests" / "test_stories.yml").is_file()
    assert not (shop_zh / "tests" / "test_demo_stories.yml").exists()  # the zh tests replace it
    run([clerk, "init", "shop"], cwd=tmp_path, env=env)
    shop = tmp_path / "shop"
    trained = run([clerk, "train"], cwd=shop, env=env)
    assert "(active)" in trained
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    server = subprocess.Popen(
        [clerk, "serve", "--port", str(port)],
        cwd=shop,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.time() + 600
        while time.time() < deadline:
            assert server.poll() is None, (tmp_path / "serve.log").read_text()[-3000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(1)
        url = f"http://127.0.0.1:{port}/webhooks/rest/webhook"

        def say(text: str) -> str:
            r = httpx.post(url, json={"sender": "wheel", "message": text}, timeout=60)
            assert r.status_code == 200, r.text
            return " ".join(m.get("text") or "" for m in r.json())

        assert "Clerk" in say("hello")
        assert "$" in say("how much is the T-Shirt?")
        assert "email" in say("where is my order #W2611340?").lower()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()
    assert (shop / ".clerk" / "clerk.db").is_file()  # the home is the project's own
