"""Data checks before training (``clerk data validate``).

Each finding is an ``Issue`` with a severity: ``error`` findings make the command exit
non-zero, ``warning`` findings do not. Checks:

* ``conflicting-label`` (error): the same text (after lower-casing, dropping punctuation
  and collapsing spaces) under two intents;
* ``duplicate`` (warning): the same normalised text twice in one intent;
* ``near-duplicate-conflict`` (warning): texts of different intents with character-trigram
  TF-IDF cosine >= ``near_threshold`` (0.9), e.g. "cancel my order" / "cancel my orders!";
* ``too-few-examples`` (error below 2, warning below ``min_examples``);
* ``class-imbalance`` (warning): largest / smallest intent > ``imbalance_ratio`` (10);
* ``entity-mismatch``: an annotation with surrounding spaces or cutting a word (warning),
  an entity type the domain does not declare (error), or a pattern entity (order id,
  email, zip code, phone, ticket id) whose annotated text is not one (warning);
* ``undefined-response`` / ``undefined-action`` (error): a rule or story step naming an
  ``utter_`` response or an action the domain does not define; ``unknown-intent``
  (warning): a story intent with no NLU examples;
* ``train-test-overlap`` (error): a test text also in the training data.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from bot.nlu.data import NLUData

__all__ = ["Issue", "ValidationReport", "validate"]

_PUNCT = re.compile(r"[^\w\s#@.]|(?<!\w)\.|\.(?!\w)")
_SPACES = re.compile(r"\s+")
_DEFAULT_ACTIONS = {
    "action_listen",
    "action_restart",
    "action_session_start",
    "action_default_fallback",
    "action_deactivate_loop",
    "action_revert_fallback_events",
    "action_default_ask_affirmation",
    "action_default_ask_rephrase",
    "action_two_stage_fallback",
    "action_unlikely_intent",
    "action_back",
    "action_extract_slots",
    "validate_{form}",
}


BUILTIN_INTENTS = {"nlu_fallback", "restart", "session_start", "back"}


def normalise(text: str) -> str:
    return _SPACES.sub(" ", _PUNCT.sub(" ", text.lower())).strip()


@dataclass(frozen=True)
class Issue:
    severity: str  # error | warning
    check: str
    message: str
    where: str = ""


@dataclass
class ValidationReport:
    issues: list[Issue] = field(default_factory=list)
    stats: dict[str, Any] = field(default_factory=dict)

    @property
    def errors(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "error"]

    @property
    def warnings(self) -> list[Issue]:
        return [i for i in self.issues if i.severity == "warning"]

    @property
    def ok(self) -> bool:
        return not self.errors

    def add(self, severity: str, check: str, message: str, where: str = "") -> None:
        self.issues.append(Issue(severity, check, message, where))

    def render(self, limit: int = 20) -> str:
        """A readable report: stats, then each check's findings (first ``limit`` shown)."""
        lines = [", ".join(f"{k}: {v}" for k, v in self.stats.items())]
        by_check: dict[tuple[str, str], list[Issue]] = defaultdict(list)
        for issue in self.issues:
            by_check[(issue.severity, issue.check)].append(issue)
        for (severity, check), found in sorted(by_check.items()):
            lines.append(f"\n{severity.upper()} {check} ({len(found)})")
            for issue in found[:limit]:
                where = f"{issue.where}: " if issue.where else ""
                lines.append(f"  - {where}{issue.message}")
            if len(found) > limit:
                lines.append(f"  ... and {len(found) - limit} more")
        verdict = "FAILED" if self.errors else "OK"
        lines.append(f"\n{verdict}: {len(self.errors)} errors, {len(self.warnings)} warnings")
        return "\n".join(lines)


def _where(ex: Any) -> str:
    if ex.source and ex.line:
        return f"{ex.source}:{ex.line}"
    return ex.source or ""


def validate(
    data: NLUData,
    *,
    test: NLUData | None = None,
    domain_file: Path | None = None,
    dialogue_files: Sequence[Path] = (),
    min_examples: int = 5,
    imbalance_ratio: float = 10.0,
    near_threshold: float = 0.9,
) -> ValidationReport:
    report = ValidationReport()
    counts = data.intent_counts()
    report.stats = {"examples": len(data.examples), "intents": len(counts)}
    if test is not None:
        report.stats["test examples"] = len(test.examples)
    _duplicates(data, report)
    _near_duplicates(data, report, near_threshold)
    for intent, n in counts.items():
        if n < 2:
            report.add("error", "too-few-examples", f"intent {intent!r} has {n} example(s)")
        elif n < min_examples:
            report.add(
                "warning",
                "too-few-examples",
                f"intent {intent!r} has {n} examples (< {min_examples})",
            )
    if len(counts) < 2:
        report.add(
            "error", "too-few-examples", f"need at least 2 intents to train, found {sorted(counts)}"
        )
    if counts and len(counts) >= 2:
        largest, smallest = max(counts.values()), min(counts.values())
        if smallest and largest / smallest > imbalance_ratio:
            big = max(counts, key=lambda k: counts[k])
            small = min(counts, key=lambda k: counts[k])
            report.add(
                "warning",
                "class-imbalance",
                f"{big!r} has {largest} examples, {small!r} {smallest} "
                f"(ratio {largest / smallest:.1f} > {imbalance_ratio:g})",
            )
    domain = _load_domain(domain_file, report) if domain_file else None
    _entities(data, report, domain)
    if domain is not None:
        _dialogue(domain, dialogue_files, set(counts), report)
    if test is not None:
        seen = {normalise(e.text): e for e in data.examples}
        for ex in test.examples:
            hit = seen.get(normalise(ex.text))
            if hit is not None:
                report.add(
                    "error",
                    "train-test-overlap",
                    f"{ex.text!r} is in the test data and in training ({_where(hit)})",
                    _where(ex),
                )
    return report


def _duplicates(data: NLUData, report: ValidationReport) -> None:
    by_text: dict[str, list[Any]] = defaultdict(list)
    for ex in data.examples:
        by_text[normalise(ex.text)].append(ex)
    for examples in by_text.values():
        intents = sorted({e.intent for e in examples})
        if len(intents) > 1:
            report.add(
                "error",
                "conflicting-label",
                f"{examples[0].text!r} is labelled {intents} "
                f"({', '.join(_where(e) or e.intent for e in examples)})",
                _where(examples[0]),
            )
        elif len(examples) > 1:
            report.add(
                "warning",
                "duplicate",
                f"{examples[0].text!r} appears {len(examples)} times in {intents[0]!r}",
                _where(examples[1]),
            )


def _near_duplicates(data: NLUData, report: ValidationReport, threshold: float) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer

    texts = [normalise(e.text) for e in data.examples]
    if len(texts) < 2:
        return
    intents = np.asarray([e.intent for e in data.examples])
    try:
        x = TfidfVectorizer(analyzer="char_wb", ngram_range=(3, 3)).fit_transform(texts)
    except ValueError:  # empty vocabulary
        return
    reported: set[tuple[str, str]] = set()
    for start in range(0, len(texts), 1024):
        sims = (x[start : start + 1024] @ x.T).toarray()
        for r, row in enumerate(sims):
            i = start + r
            for j in np.flatnonzero(row >= threshold):
                if j <= i or intents[i] == intents[j] or texts[i] == texts[j]:
                    continue
                key = (texts[i], texts[j])
                if key in reported:
                    continue
                reported.add(key)
                a, b = data.examples[i], data.examples[j]
                report.add(
                    "warning",
                    "near-duplicate-conflict",
                    f"{a.text!r} ({a.intent}) ~ {b.text!r} ({b.intent}), similarity {row[j]:.2f}",
                    _where(a),
                )


def _load_domain(path: Path, report: ValidationReport) -> Any:
    from bot.dialogue.domain import Domain
    from bot.errors import ClerkError

    try:
        return Domain.load(path)
    except (ClerkError, OSError) as exc:
        report.add("error", "domain", f"cannot load the domain: {exc}", str(path))
        return None


def _entities(data: NLUData, report: ValidationReport, domain: Any) -> None:
    from bot.nlu.entities import RegexEntityExtractor

    patterns = RegexEntityExtractor()
    declared = set(domain.entities) if domain is not None else None
    for ex in data.examples:
        found = None
        for ent in ex.entities:
            surface = ex.text[ent.start : ent.end]
            where = _where(ex)
            if surface != surface.strip():
                report.add(
                    "warning",
                    "entity-mismatch",
                    f"[{surface}]({ent.entity}) has surrounding spaces in {ex.text!r}",
                    where,
                )
            before = ex.text[ent.start - 1] if ent.start > 0 else " "
            after = ex.text[ent.end] if ent.end < len(ex.text) else " "
            if (before.isalnum() and surface[:1].isalnum()) or (
                after.isalnum() and surface[-1:].isalnum()
            ):
                report.add(
                    "warning",
                    "entity-mismatch",
                    f"[{surface}]({ent.entity}) cuts a word in {ex.text!r}",
                    where,
                )
            if declared is not None and ent.entity not in declared:
                report.add(
                    "error",
                    "entity-mismatch",
                    f"entity {ent.entity!r} is not declared in the domain "
                    f"(annotated in {ex.text!r})",
                    where,
                )
            if ent.entity in RegexEntityExtractor.ENTITIES:
                if found is None:
                    found = {(e["entity"], e["start"], e["end"]) for e in patterns.extract(ex.text)}
                spans = {(s, e) for kind, s, e in found if kind == ent.entity}
                if not any(s <= ent.start and ent.end <= e for s, e in spans):
                    report.add(
                        "warning",
                        "entity-mismatch",
                        f"{surface!r} is annotated as {ent.entity} but does not look "
                        f"like one (in {ex.text!r})",
                        where,
                    )


def _dialogue(
    domain: Any, files: Sequence[Path], nlu_intents: set[str], report: ValidationReport
) -> None:
    import yaml

    defined = set(domain.actions) | set(domain.forms) | set(domain.responses)
    from bot.dialogue.domain import BUILTIN_ACTIONS

    defined |= BUILTIN_ACTIONS | _DEFAULT_ACTIONS
    defined |= {f"validate_{f}" for f in domain.forms}
    for intent in sorted(set(domain.intents) - nlu_intents):
        report.add("warning", "unknown-intent", f"domain intent {intent!r} has no NLU examples")
    for path in files:
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError) as exc:
            report.add("error", "dialogue", f"cannot read: {exc}", str(path))
            continue
        if not isinstance(doc, dict):
            continue
        for kind in ("rules", "stories"):
            for flow in doc.get(kind) or []:
                name = flow.get("rule") or flow.get("story") or "?"
                for step in (flow.get("steps") or []) + (flow.get("condition") or []):
                    if not isinstance(step, dict):
                        continue
                    action = step.get("action")
                    if isinstance(action, str) and action not in defined:
                        check = (
                            "undefined-response"
                            if action.startswith("utter_")
                            else "undefined-action"
                        )
                        report.add(
                            "error",
                            check,
                            f"{kind[:-1]} {name!r} uses {action!r}, which the domain "
                            "does not define",
                            str(path),
                        )
                    intents = [step["intent"]] if isinstance(step.get("intent"), str) else []
                    intents += [
                        o["intent"]
                        for o in step.get("or") or []
                        if isinstance(o, dict) and isinstance(o.get("intent"), str)
                    ]
                    for intent in intents:
                        if intent in BUILTIN_INTENTS:
                            continue
                        if intent not in nlu_intents and intent not in domain.intents:
                            report.add(
                                "warning",
                                "unknown-intent",
                                f"{kind[:-1]} {name!r} uses intent {intent!r}, which has "
                                "no NLU examples and is not in the domain",
                                str(path),
                            )
