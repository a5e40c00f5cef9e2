"""The NLU's settings and the intent names its contract uses.

``NLUConfig`` is every setting of Clerk's NLU, read from the ``clerk: nlu:`` section of a
project's ``config.yml`` (validated on construction: a bad value raises ``ConfigError``
naming the key); ``rasa_config_notes`` says what of a Rasa ``config.yml`` Clerk ignores.
``FALLBACK_INTENT`` is the intent ``parse`` answers below the threshold (Rasa's
``nlu_fallback``); ``OUT_OF_SCOPE_INTENT`` the intent threshold calibration and evaluation
treat as "none of the store's intents".

This module imports nothing heavy: the serving path reads configs with it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bot.errors import ConfigError, TrainingDataError
from bot.lang import LANGUAGES, parse_language

__all__ = [
    "CLASSIFIERS",
    "FALLBACK_INTENT",
    "FEATURIZERS",
    "OUT_OF_SCOPE_INTENT",
    "NLUConfig",
    "rasa_config_notes",
]

FALLBACK_INTENT = "nlu_fallback"
OUT_OF_SCOPE_INTENT = "out_of_scope"
FEATURIZERS = ("minilm", "tfidf_word", "tfidf_char")
CLASSIFIERS = ("logreg", "mlp")


@dataclass(frozen=True)
class NLUConfig:
    """Settings of Clerk's NLU, read from the ``clerk: nlu:`` section of config.yml.

    Featurizers: ``minilm`` (the sentence embedding; from the fine-tuned encoder when
    ``finetune`` is not ``none``), ``tfidf_word`` (1..``word_ngram_max``-grams) and
    ``tfidf_char`` (char_wb ``char_ngram_min``..``char_ngram_max``-grams), concatenated.
    Classifiers: ``logreg`` (``C``) or ``mlp`` (``mlp_*``, ``lr_schedule`` ... see
    ``bot.nlu.heads``). ``validation_fraction`` of the data (stratified) is held out when
    the MLP needs early stopping or ``calibrate_threshold`` is on; a logistic regression
    is refitted on all data afterwards. ``calibrate_threshold`` replaces ``threshold`` by
    one chosen on that held-out part (see ``calibrate_threshold``).

    The defaults were chosen by cross-validation over several public intent sets and their
    few-shot subsamples (``benchmarks/nlu_defaults.py``); no threshold is set, so each
    store's is calibrated on its own data.
    """

    featurizers: tuple[str, ...] = FEATURIZERS
    classifier: str = "logreg"
    C: float = 10.0
    seed: int = 13
    #: The fallback threshold; ``None`` (the default): calibrated at training time by
    #: held-out-intent simulation (``bot.nlu.rejection``); see ``calibrate_threshold``.
    threshold: float | None = None
    max_iter: int = 3000
    #: Scales the (unit-length) sentence embedding against the TF-IDF blocks.
    embedding_weight: float = 2.0
    word_ngram_max: int = 2
    char_ngram_min: int = 2
    char_ngram_max: int = 5
    # -- MLP head (bot.nlu.heads) --
    mlp_hidden: int = 0
    mlp_dropout: float = 0.1
    mlp_lr: float = 3e-3
    mlp_weight_decay: float = 1e-4
    mlp_epochs: int = 60
    mlp_batch_size: int = 64
    lr_schedule: str = "cosine"
    warmup_steps: int = 0
    lr_gamma: float = 0.95
    lr_step_size: int = 100
    patience: int = 5
    label_smoothing: float = 0.0
    # -- end-to-end fine-tuning of the sentence-transformer (bot.nlu.finetune) --
    #: ``none``, ``cross_entropy``, ``contrastive``, or ``auto``: contrastive when the
    #: training set has at most ``finetune_max_examples`` examples (cheap there), none
    #: above. Opt-in: it scored best on the selection sets (benchmarks/nlu_defaults.py)
    #: but trains ~10x longer, adds the encoder (90 MB) to every model, and made
    #: off-topic messages more confident.
    finetune: str = "none"
    finetune_epochs: int = 4
    finetune_lr: float = 1e-4
    finetune_batch_size: int = 32
    #: Train only the top N transformer layers (lower layers' outputs cached); 0: all.
    finetune_layers: int = 3
    finetune_max_examples: int = 3000
    # -- validation split, threshold calibration --
    validation_fraction: float = 0.1
    #: Fall back on a message whose words are all Latin-letter words the training data
    #: never used and in which no entity is found (keyboard mashing, another language):
    #: a classifier still gives it some intent, often confidently.
    unknown_words_fallback: bool = True
    #: Calibrate even when ``threshold`` is set (the set value is then ignored); with
    #: ``out_of_scope`` examples in the data, on a validation split (the macro-F1-best
    #: threshold) instead of by simulation.
    calibrate_threshold: bool = False
    #: Without out-of-scope examples: the share of correctly classified in-scope messages
    #: (in the held-out-intent simulation) allowed to fall below the calibrated threshold.
    threshold_quantile: float = 0.05

    def __post_init__(self) -> None:
        from bot.nlu.finetune import FINETUNE_LOSSES
        from bot.nlu.heads import SCHEDULES

        unknown = [f for f in self.featurizers if f not in FEATURIZERS]
        if unknown or not self.featurizers:
            raise ConfigError(
                "clerk.nlu.featurizers", f"unknown or no featurizers {unknown}; use {FEATURIZERS}"
            )
        if self.classifier not in CLASSIFIERS:
            raise ConfigError(
                "clerk.nlu.classifier", f"unknown classifier {self.classifier!r}; use {CLASSIFIERS}"
            )
        if self.lr_schedule not in SCHEDULES:
            raise ConfigError("clerk.nlu.lr_schedule", f"unknown schedule; use {SCHEDULES}")
        if self.finetune not in (*FINETUNE_LOSSES, "auto"):
            raise ConfigError(
                "clerk.nlu.finetune", f"unknown value; use auto or one of {FINETUNE_LOSSES}"
            )
        positive = (
            "C",
            "embedding_weight",
            "mlp_lr",
            "finetune_lr",
            "max_iter",
            "mlp_epochs",
            "mlp_batch_size",
            "finetune_batch_size",
            "word_ngram_max",
            "char_ngram_min",
        )
        for key in positive:
            if not getattr(self, key) > 0:
                raise ConfigError(f"clerk.nlu.{key}", "must be > 0")
        for key in (
            "mlp_weight_decay",
            "mlp_hidden",
            "warmup_steps",
            "finetune_epochs",
            "finetune_layers",
            "finetune_max_examples",
        ):
            if getattr(self, key) < 0:
                raise ConfigError(f"clerk.nlu.{key}", "must be >= 0")
        if self.char_ngram_max < self.char_ngram_min:
            raise ConfigError("clerk.nlu.char_ngram_max", "must be >= char_ngram_min")
        for key in ("threshold", "mlp_dropout", "threshold_quantile", "label_smoothing"):
            value = getattr(self, key)
            if value is not None and not 0.0 <= value <= 1.0:
                raise ConfigError(f"clerk.nlu.{key}", "must be between 0 and 1")
        if not 0.0 < self.validation_fraction < 0.5:
            raise ConfigError("clerk.nlu.validation_fraction", "must be between 0 and 0.5")

    def finetune_loss(self, n_examples: int, *, finetunable: bool = True) -> str:
        """The fine-tuning objective for a training set of ``n_examples`` (``none``: no
        fine-tuning); ``auto`` resolved as the field says, and only for an encoder that is
        ``finetunable`` (a transformers model folder). Only the ``minilm`` featurizer uses
        the encoder, so without it there is nothing to fine-tune."""
        if not self.embeds:
            return "none"
        if self.finetune == "auto":
            small = n_examples <= self.finetune_max_examples
            return "contrastive" if small and finetunable else "none"
        return self.finetune

    @property
    def embeds(self) -> bool:
        """Whether the model reads sentence embeddings (the ``minilm`` featurizer, whichever
        encoder computes them: MiniLM, or e5 for Chinese), so it is tied to one encoder."""
        return "minilm" in self.featurizers

    @property
    def calibrates(self) -> bool:
        """Whether training chooses the threshold (none set, or ``calibrate_threshold``)."""
        return self.threshold is None or self.calibrate_threshold

    @classmethod
    def from_mapping(cls, config: Mapping[str, Any] | None) -> NLUConfig:
        """Build from a parsed config.yml. Unset values keep their defaults.

        The threshold is ``clerk.nlu.threshold``, else ``clerk.fallback_threshold``, else the
        ``threshold`` of a ``FallbackClassifier`` in Rasa's ``pipeline``, else calibrated
        at training time (``threshold: auto`` says so explicitly). Unknown keys in
        ``clerk.nlu`` are an error (a typo would otherwise be silently ignored).
        """
        config = config or {}
        if not isinstance(config, Mapping):
            raise ConfigError("config", "top level must be a mapping")
        clerk = config.get("clerk") or {}
        nlu = dict(clerk.get("nlu") or {})
        kwargs: dict[str, Any] = {}
        fields = {f.name: f for f in dataclasses.fields(cls)}
        unknown = sorted(set(nlu) - set(fields))
        if unknown:
            raise ConfigError("clerk.nlu", f"unknown keys {unknown}")
        try:
            for key, value in nlu.items():
                if key == "threshold":
                    continue
                default: object = fields[key].default  # float or str below
                if key == "featurizers":
                    if isinstance(value, str):
                        value = [v.strip() for v in value.split("+")]
                    kwargs[key] = tuple(str(f) for f in value)
                elif isinstance(default, bool):
                    if not isinstance(value, bool):
                        raise ValueError(f"{key} must be true or false")
                    kwargs[key] = value
                elif isinstance(default, int):
                    if float(value) != int(float(value)):
                        raise ValueError(f"{key} must be an integer")
                    kwargs[key] = int(float(value))
                else:
                    kwargs[key] = str(value) if isinstance(default, str) else float(value)
            threshold = nlu.get("threshold", clerk.get("fallback_threshold"))
            if threshold is None:
                for comp in config.get("pipeline") or []:
                    if isinstance(comp, Mapping) and comp.get("name") == "FallbackClassifier":
                        threshold = comp.get("threshold")
            if threshold is not None and threshold != "auto":
                kwargs["threshold"] = float(threshold)
        except (TypeError, ValueError) as exc:
            raise ConfigError("clerk.nlu", f"bad value ({exc})") from None
        return cls(**kwargs)

    @classmethod
    def from_file(cls, path: str | Path) -> NLUConfig:
        """Read a ``config.yml`` (see ``from_mapping``). A missing file raises
        ``ConfigError``; malformed YAML or a non-mapping top level ``TrainingDataError``."""
        import yaml

        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError("config", f"{path} not found") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            raise TrainingDataError(
                f"malformed YAML: {exc}", str(path), mark.line + 1 if mark else None
            ) from None
        if not isinstance(data, Mapping):
            raise TrainingDataError("top level must be a mapping", str(path), 1)
        return cls.from_mapping(data)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> NLUConfig:
        """Inverse of ``to_dict`` (keys this version does not know are dropped)."""
        names = {f.name for f in dataclasses.fields(cls)}
        kwargs = {k: v for k, v in values.items() if k in names}
        if "featurizers" in kwargs:
            kwargs["featurizers"] = tuple(kwargs["featurizers"])
        return cls(**kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON values (``featurizers`` as a list), as saved in an artifact's meta."""
        out = asdict(self)
        out["featurizers"] = list(self.featurizers)
        return out


USED_RASA_COMPONENTS = frozenset({"FallbackClassifier"})
USED_RASA_KEYS = frozenset({"recipe", "language", "pipeline", "policies", "assistant_id", "clerk"})


def rasa_config_notes(config: Mapping[str, Any]) -> list[str]:
    """What of a Rasa ``config.yml`` Clerk does not use, as lines to report once per training:
    pipeline components and policies (Clerk's own NLU and dialogue engine replace them; the
    ``FallbackClassifier`` threshold is used), a language Clerk does not speak, unknown keys."""
    notes: list[str] = []

    def names(section: str) -> list[str]:
        return [str(c.get("name")) for c in config.get(section) or [] if isinstance(c, Mapping)]

    ignored = [n for n in names("pipeline") if n not in USED_RASA_COMPONENTS]
    if ignored:
        notes.append(
            "pipeline components ignored (Clerk's NLU replaces them; a "
            f"FallbackClassifier threshold is used): {', '.join(ignored)}"
        )
    if names("policies"):
        notes.append(
            "policies ignored (Clerk's dialogue engine follows the rules and stories): "
            + ", ".join(names("policies"))
        )
    language = str(config.get("language") or "en")
    if parse_language(language) is None:
        notes.append(
            f"language {language!r}: Clerk speaks {' and '.join(LANGUAGES)}; trained as English"
        )
    unknown = sorted(str(k) for k in config if k not in USED_RASA_KEYS)
    if unknown:
        notes.append(f"unknown keys ignored: {', '.join(unknown)}")
    return notes
