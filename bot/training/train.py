"""Training runs and the model registry behind ``clerk train`` and ``clerk model``.

A training run writes one versioned artifact folder::

    <models>/nlu_versions/<version>/   NLUModel files (meta.json, classifier, ...)
                                       config.yml   the configuration file it was trained with
                                                    (after `--tune`: the one tuning started from)
                                       tuned_config.yml  after `clerk train --tune`: the
                                                    configuration tuning found, trained with
                                       training.json data sources, fingerprint, metrics
                                       evaluation/  written by `clerk evaluate` (optional)

and, unless told otherwise, makes it the active model by copying it to ``<models>/nlu``,
the folder the server loads. ``<version>`` is ``YYYYmmdd-HHMMSS-<fingerprint8>``.

Contract: functions raise ``TrainingDataError`` / ``ConfigError`` for bad inputs and never
leave a half-written active model (``NLUModel.save`` writes atomically).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bot.errors import ConfigError, ModelNotTrainedError
from bot.nlu.config import NLUConfig
from bot.nlu.data import NLUData, load_nlu
from bot.nlu.model import NLUModel

__all__ = [
    "TrainResult",
    "activate",
    "list_models",
    "load_config",
    "load_training_data",
    "show_model",
    "train",
]

VERSIONS = "nlu_versions"
TUNED_CONFIG = "tuned_config.yml"
ACTIVE = "nlu"
Progress = Callable[[str, int, int], None]


def load_training_data(paths: Sequence[str | Path]) -> NLUData:
    """NLU data from files/folders (Rasa YAML, CSV); a folder's ``nlu.yml`` alone when it
    has one (domain, rules and config files beside it hold no examples)."""
    resolved: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir() and (p / "nlu.yml").is_file():
            resolved.append(p / "nlu.yml")
        else:
            resolved.append(p)
    return load_nlu(resolved)


def load_config(path: str | Path | None) -> tuple[NLUConfig, str]:
    """The NLU config and the text of the file it came from ("" for defaults)."""
    if path is None:
        return NLUConfig(), ""
    path = Path(path)
    config = NLUConfig.from_file(path)
    return config, path.read_text(encoding="utf-8")


@dataclass
class TrainResult:
    model: NLUModel
    directory: Path
    version: str
    active: bool


def train(
    data: NLUData,
    *,
    encoder: Any,
    config: NLUConfig,
    config_text: str = "",
    models_dir: Path | None = None,
    out: Path | None = None,
    catalog: list[dict[str, Any]] | None = None,
    sources: Sequence[str] = (),
    activate_model: bool = True,
    progress: Progress | None = None,
    tuned: Mapping[str, Any] | None = None,
) -> TrainResult:
    """Train and save. ``out`` given: the artifact goes exactly there (not activated);
    otherwise into ``models_dir/nlu_versions/<version>`` and, with ``activate_model``,
    becomes the active model. ``tuned``: ``config`` came from a search (``clerk train
    --tune``); what the search did is recorded as the metric ``tuned`` and ``config`` is
    written beside the model as ``tuned_config.yml``."""
    if out is None and models_dir is None:
        raise ConfigError("train", "give an output folder or a models folder")
    model = NLUModel.train(data, encoder=encoder, catalog=catalog, config=config, progress=progress)
    if tuned is not None:
        model.metrics["tuned"] = dict(tuned)
    version = str(model.metrics["version"])
    directory = Path(out) if out is not None else Path(models_dir) / VERSIONS / version  # type: ignore[arg-type]
    model.save(directory)
    (directory / "config.yml").write_text(config_text or _config_yaml(config), encoding="utf-8")
    if tuned is not None:
        (directory / TUNED_CONFIG).write_text(
            _tuned_header(tuned) + _config_yaml(config), encoding="utf-8"
        )
    (directory / "training.json").write_text(
        json.dumps(
            {
                "version": version,
                "sources": list(sources),
                "config": model.config.to_dict(),
                "metrics": model.metrics,
            },
            indent=1,
            default=str,
        ),
        encoding="utf-8",
    )
    active = False
    if out is None and activate_model:
        activate(Path(models_dir), version)  # type: ignore[arg-type]
        active = True
    return TrainResult(model=model, directory=directory, version=version, active=active)


def _tuned_header(tuned: Mapping[str, Any]) -> str:
    score = tuned.get("best_score")
    lines = [
        "# found by `clerk train --tune`"
        + (f" with a {tuned['budget_s']:g} s budget" if tuned.get("budget_s") else "")
        + (f" ({tuned['trials']} trials)" if tuned.get("trials") is not None else ""),
    ]
    if score is not None:
        lines.append(f"# cross-validated {tuned.get('metric', 'score')} {score:.4f}")
    lines.append("# to keep it, copy the clerk: nlu: section into the project's config.yml")
    return "\n".join(lines) + "\n"


def _config_yaml(config: NLUConfig) -> str:
    import yaml

    return yaml.safe_dump({"clerk": {"nlu": config.to_dict()}}, sort_keys=False)


def activate(models_dir: Path, version: str) -> Path:
    """Make a stored version the active model (copied to ``<models>/nlu``)."""
    source = models_dir / VERSIONS / version
    if not (source / "meta.json").is_file():
        raise ModelNotTrainedError(str(source))
    target = models_dir / ACTIVE
    staging = models_dir / f".{ACTIVE}-staging"
    shutil.rmtree(staging, ignore_errors=True)
    shutil.copytree(source, staging, ignore=shutil.ignore_patterns(".encoder-onnx", "evaluation"))
    old = models_dir / f".{ACTIVE}-old"
    shutil.rmtree(old, ignore_errors=True)
    if target.exists():
        target.rename(old)
    staging.rename(target)
    shutil.rmtree(old, ignore_errors=True)
    return target


def _describe(directory: Path) -> dict[str, Any]:
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    metrics = meta.get("metrics") or {}
    info: dict[str, Any] = {
        "version": metrics.get("version") or directory.name,
        "path": str(directory),
        "trained_at": metrics.get("trained_at"),
        "train_size": metrics.get("train_size"),
        "intents": len(meta.get("labels") or []),
        "classifier": meta.get("config", {}).get("classifier"),
        "featurizers": "+".join(meta.get("config", {}).get("featurizers") or []),
        "finetuned": bool(meta.get("encoder", {}).get("finetuned")),
        "threshold": meta.get("config", {}).get("threshold"),
        "training_seconds": metrics.get("training_seconds"),
        "validation_accuracy": metrics.get("validation_accuracy"),
        "fingerprint": metrics.get("fingerprint"),
    }
    training = directory / "training.json"
    if training.is_file():
        info["sources"] = json.loads(training.read_text(encoding="utf-8")).get("sources")
    report = directory / "evaluation" / "report.json"
    if report.is_file():
        r = json.loads(report.read_text(encoding="utf-8"))
        info["test_accuracy"] = r.get("accuracy")
        info["test_macro_f1"] = r.get("macro_f1")
    return info


def list_models(models_dir: Path) -> list[dict[str, Any]]:
    """Every stored version (newest first) and the active model, flagged ``active``."""
    active_version = None
    out: list[dict[str, Any]] = []
    active_dir = models_dir / ACTIVE
    if (active_dir / "meta.json").is_file():
        active_info = _describe(active_dir)
        active_version = active_info["version"]
    versions = models_dir / VERSIONS
    seen = set()
    if versions.is_dir():
        for d in sorted(versions.iterdir(), reverse=True):
            if (d / "meta.json").is_file():
                info = _describe(d)
                info["active"] = info["version"] == active_version
                seen.add(info["version"])
                out.append(info)
    if active_version is not None and active_version not in seen:
        # trained by `clerk serve`'s first start (not archived as a version)
        active_info["active"] = True
        out.insert(0, active_info)
    return out


def show_model(models_dir: Path, version: str | None = None) -> dict[str, Any]:
    """Details of one version (default: the active model), with its config and metrics."""
    if version in (None, "active"):
        directory = models_dir / ACTIVE
    else:
        directory = models_dir / VERSIONS / str(version)
    if not (directory / "meta.json").is_file():
        raise ModelNotTrainedError(str(directory))
    info = _describe(directory)
    meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
    info["config"] = meta.get("config")
    info["metrics"] = {k: v for k, v in (meta.get("metrics") or {}).items() if k != "history"}
    report = directory / "evaluation" / "report.json"
    if report.is_file():
        info["evaluation"] = str(report)
    return info
