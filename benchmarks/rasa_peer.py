"""The Rasa Open Source 3.6 peer of ``benchmarks/load.py --peer rasa``: the demo store's
bot (``training_data/`` domain, NLU, rules, stories) trained with Rasa and served by
``rasa run``, its custom actions served by rasa-sdk from this checkout's ``actions``
package under Python 3.11.

Rasa runs in the Python 3.10 virtualenv that ``benchmarks/nlu_benchmark.py`` creates
(``ensure_rasa_venv``; default ``~/.cache/clerk/rasa-3.6``). The project is a temporary
copy of ``training_data/`` (never edited in place) with the Rasa configuration below:
Clerk's own ``config.yml`` carries Clerk's ``clerk:`` section and a 100-epoch DIET, which
is slow to train on two cores. Trained models are cached by a hash of the data and the
configuration under ``~/.cache/clerk/rasa-load/`` (``--rasa-model`` names one directly).

Changes made to the generated copy (``adapt_domain``; printed with the results), and why:

- a slot-mapping condition that names only ``requested_slot`` (domain.yml's ``confirmed``:
  ``conditions: [{requested_slot: confirmed}]``) is, for Rasa 3.6, a condition that holds
  only while *no* form is active (``ActionExtractSlots._matches_mapping_conditions``), so
  Rasa never fills ``confirmed`` inside the forms that ask for it and every "yes" at a
  confirmation falls through to the fallback. Clerk reads it as "whichever form asks for
  it". The copy spells that out: one condition per form whose ``required_slots`` hold the
  slot, ``{active_loop: <form>, requested_slot: <slot>}``. nlu.yml, rules.yml and
  stories.yml are used as they are.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import httpx

from benchmarks.loadlib import ROOT, free_port, log

DATA_FILES = ("domain.yml", "nlu.yml", "rules.yml", "stories.yml")
MODEL_CACHE = Path.home() / ".cache" / "clerk" / "rasa-load"

# A light pipeline and policy set (few epochs) so that training takes minutes on two
# cores. RegexEntityExtractor picks up nlu.yml's order_id regex and product lookup as
# Clerk's extractors do.
RASA_CONFIG = """recipe: default.v1
language: en
assistant_id: clerk-load-peer
pipeline:
  - name: WhitespaceTokenizer
  - name: RegexFeaturizer
  - name: CountVectorsFeaturizer
  - name: CountVectorsFeaturizer
    analyzer: char_wb
    min_ngram: 1
    max_ngram: 4
  - name: RegexEntityExtractor
    use_lookup_tables: true
    use_regexes: true
  - name: DIETClassifier
    epochs: {diet_epochs}
    constrain_similarities: true
    random_seed: 13
  - name: EntitySynonymMapper
  - name: FallbackClassifier
    threshold: 0.45
policies:
  - name: MemoizationPolicy
  - name: RulePolicy
    core_fallback_threshold: 0.3
  - name: TEDPolicy
    max_history: 5
    epochs: {ted_epochs}
    constrain_similarities: true
    random_seed: 13
"""

ENDPOINTS = """action_endpoint:
  url: "{action_url}"
"""

CREDENTIALS = """rest:
"""

FIXES_VERSION = 1  # bump when adapt_domain changes (part of the model cache key)


def adapt_domain(path: Path) -> list[str]:
    """Rewrite the copied domain where Rasa 3.6 reads it differently from Clerk (see the
    module docstring). Returns a note per change."""
    import yaml

    domain = yaml.safe_load(path.read_text())
    forms = domain.get("forms") or {}
    notes = []
    for slot, spec in (domain.get("slots") or {}).items():
        for mapping in spec.get("mappings") or []:
            conditions = mapping.get("conditions")
            if not conditions:
                continue
            new = []
            for cond in conditions:
                if cond.get("active_loop") is None and cond.get("requested_slot"):
                    asking = [
                        f
                        for f, fs in forms.items()
                        if cond["requested_slot"] in (fs.get("required_slots") or [])
                    ]
                    new += [
                        {"active_loop": f, "requested_slot": cond["requested_slot"]} for f in asking
                    ]
                    notes.append(
                        f"domain.yml slot {slot!r} ({mapping.get('type')} "
                        f"{mapping.get('intent', '')}): condition "
                        f"{{requested_slot: {cond['requested_slot']}}} -> one per form "
                        f"asking for it ({', '.join(asking)})"
                    )
                else:
                    new.append(cond)
            mapping["conditions"] = new
    if notes:
        path.write_text(yaml.safe_dump(domain, sort_keys=False, allow_unicode=True, width=1000))
    return notes


def config_text(diet_epochs: int, ted_epochs: int) -> str:
    return RASA_CONFIG.format(diet_epochs=diet_epochs, ted_epochs=ted_epochs)


def make_project(work: Path, diet_epochs: int, ted_epochs: int) -> tuple[Path, list[str]]:
    """A Rasa project in ``work``: the data files copied from training_data/, our config,
    credentials with the REST channel. Returns it and the notes of applied fixes."""
    work.mkdir(parents=True, exist_ok=True)
    (work / "data").mkdir(exist_ok=True)
    src = ROOT / "training_data"
    shutil.copy2(src / "domain.yml", work / "domain.yml")
    for name in DATA_FILES[1:]:
        shutil.copy2(src / name, work / "data" / name)
    notes = adapt_domain(work / "domain.yml")
    (work / "config.yml").write_text(config_text(diet_epochs, ted_epochs))
    (work / "credentials.yml").write_text(CREDENTIALS)
    (work / "endpoints.yml").write_text(
        ENDPOINTS.format(action_url="http://127.0.0.1:5055/webhook")
    )
    return work, notes


def fingerprint(diet_epochs: int, ted_epochs: int) -> str:
    h = hashlib.sha256()
    for name in DATA_FILES:
        h.update((ROOT / "training_data" / name).read_bytes())
    h.update(config_text(diet_epochs, ted_epochs).encode())
    h.update(json.dumps(FIXES_VERSION).encode())
    return h.hexdigest()[:16]


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CLERK_")}
    env.pop("PYTHONPATH", None)
    env.update(
        {
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "SQLALCHEMY_SILENCE_UBER_WARNING": "1",
            "RASA_TELEMETRY_ENABLED": "false",
            "OMP_NUM_THREADS": "2",
        }
    )
    return env


def train(venv: Path, project: Path, diet_epochs: int, ted_epochs: int, log_path: Path) -> Path:
    """Train (or take from the cache) the model of ``project``; returns the .tar.gz."""
    key = fingerprint(diet_epochs, ted_epochs)
    cached = MODEL_CACHE / key / "clerk-peer.tar.gz"
    if cached.exists():
        log(f"rasa: trained model from the cache {cached}")
        return cached
    log(f"rasa: training (DIET {diet_epochs} epochs, TED {ted_epochs} epochs; several minutes)")
    t = time.monotonic()
    with open(log_path, "wb") as fh:
        proc = subprocess.run(
            [
                str(venv / "bin" / "rasa"),
                "train",
                "--domain",
                "domain.yml",
                "--data",
                "data",
                "--config",
                "config.yml",
                "--out",
                "models",
                "--fixed-model-name",
                "clerk-peer",
            ],
            cwd=project,
            env=_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            check=False,
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"rasa train failed (log {log_path}):\n{log_path.read_text(errors='replace')[-3000:]}"
        )
    cached.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy2(project / "models" / "clerk-peer.tar.gz", cached)
    (cached.parent / "config.yml").write_text(config_text(diet_epochs, ted_epochs))
    log(f"rasa: trained in {time.monotonic() - t:.0f} s -> {cached}")
    return cached


class RasaServer:
    """``rasa run --enable-api`` on ``model`` with the REST channel, custom actions at
    ``action_url``."""

    def __init__(
        self, venv: Path, project: Path, model: Path, action_url: str, log_path: Path
    ) -> None:
        self.venv = venv
        self.project = project
        self.model = model
        self.action_url = action_url
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 300.0) -> RasaServer:
        (self.project / "endpoints.yml").write_text(ENDPOINTS.format(action_url=self.action_url))
        cmd = [
            str(self.venv / "bin" / "rasa"),
            "run",
            "--enable-api",
            "-i",
            "127.0.0.1",
            "-p",
            str(self.port),
            "-m",
            str(self.model),
            "--endpoints",
            "endpoints.yml",
            "--credentials",
            "credentials.yml",
        ]
        log(f"rasa: starting {' '.join(cmd[1:])}")
        fh = open(self.log_path, "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd,
            cwd=self.project,
            env=_env(),
            stdout=fh,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        fh.close()
        t = time.monotonic()
        while time.monotonic() - t < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"rasa run exited:\n{self.log_path.read_text(errors='replace')[-3000:]}"
                )
            try:
                r = httpx.get(f"{self.url}/status", timeout=2)
                if r.status_code == 200 and r.json().get("model_file"):
                    log(f"rasa: ready at {self.url} in {time.monotonic() - t:.0f} s")
                    return self
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1.0)
        self.stop()
        raise RuntimeError("rasa run did not load its model in time")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)
