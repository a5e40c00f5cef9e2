"""NLU training data: Rasa 3 ``nlu.yml`` files and ``text,label`` CSV files.

Reads what a Rasa 3 project's ``data/nlu.yml`` holds, without edits:

* ``- intent: name`` with ``examples:`` as a block string (``- an example`` lines) or as a
  list of ``{text, metadata}`` items;
* entity annotations inside examples: ``[#W2611340](order_id)``, the old
  ``[text](entity:value)`` shorthand, ``[text]{"entity": "reason", "value": "...",
  "role": ..., "group": ...}`` and ``[text][{"entity": ...}, {"entity": ...}]``;
  offsets refer to the cleaned text (annotations removed);
* ``- synonym: canonical`` (keys stored lower-cased, like Rasa's EntitySynonymMapper);
  an annotation whose text differs from its value adds a synonym too, as in Rasa;
* ``- lookup: name`` and ``- regex: name`` tables.

CSV files need a header with ``text`` and ``label`` (or ``category`` / ``intent``) columns;
banking77's files load as they are.

Contract: loaders return immutable values or raise ``TrainingDataError`` carrying the file
and, where it is known, the 1-based line. They never return partial data.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import TrainingDataError

__all__ = [
    "EntityAnnotation",
    "NLUData",
    "TrainingExample",
    "load_csv",
    "load_nlu",
    "load_nlu_yaml",
    "parse_annotated_text",
    "parse_nlu_yaml",
]

# Same shape as Rasa's entities_parser.ENTITY_REGEX.
_ENTITY_RE = re.compile(
    r"\[(?P<text>[^\]]+?)\]"
    r"(?:\((?P<entity>[^:)]+?)(?::(?P<value>[^)]+))?\)"
    r"|\{(?P<dict>[^}]+?)\}"
    r"|\[(?P<list>\{.*?\})\])"
)


@dataclass(frozen=True)
class EntityAnnotation:
    """One entity span in a training example; offsets index the cleaned text."""

    entity: str
    value: str
    start: int
    end: int
    role: str | None = None
    group: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "entity": self.entity,
            "value": self.value,
            "start": self.start,
            "end": self.end,
        }
        if self.role is not None:
            out["role"] = self.role
        if self.group is not None:
            out["group"] = self.group
        return out


@dataclass(frozen=True)
class TrainingExample:
    text: str
    intent: str
    entities: tuple[EntityAnnotation, ...] = ()
    source: str | None = None
    line: int | None = None


@dataclass(frozen=True)
class NLUData:
    """Everything the NLU trains from. ``synonyms`` maps lower-cased surface -> value."""

    examples: tuple[TrainingExample, ...] = ()
    synonyms: Mapping[str, str] = field(default_factory=dict)
    lookups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    regexes: Mapping[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def intents(self) -> list[str]:
        return sorted({e.intent for e in self.examples})

    def intent_counts(self) -> dict[str, int]:
        return dict(sorted(Counter(e.intent for e in self.examples).items()))

    def entity_values(self, entity: str) -> list[str]:
        """Distinct annotated values of one entity type, in order of first appearance."""
        seen: dict[str, None] = {}
        for ex in self.examples:
            for ent in ex.entities:
                if ent.entity == entity:
                    seen.setdefault(ent.value, None)
        return list(seen)

    def merge(self, other: NLUData) -> NLUData:
        lookups = {k: tuple(v) for k, v in self.lookups.items()}
        for k, v in other.lookups.items():
            lookups[k] = _unique(lookups.get(k, ()) + tuple(v))
        regexes = {k: tuple(v) for k, v in self.regexes.items()}
        for k, v in other.regexes.items():
            regexes[k] = _unique(regexes.get(k, ()) + tuple(v))
        return NLUData(
            examples=self.examples + other.examples,
            synonyms={**self.synonyms, **other.synonyms},
            lookups=lookups,
            regexes=regexes,
        )


def _unique(items: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(items))


# ---------------------------------------------------------------------------------------
# Entity annotations
# ---------------------------------------------------------------------------------------


def parse_annotated_text(
    raw: str, *, source: str | None = None, line: int | None = None
) -> tuple[str, tuple[EntityAnnotation, ...]]:
    """Strip Rasa entity annotations from ``raw``; return (clean text, entities)."""
    parts: list[str] = []
    entities: list[EntityAnnotation] = []
    pos = 0
    length = 0
    for m in _ENTITY_RE.finditer(raw):
        before = raw[pos : m.start()]
        parts.append(before)
        length += len(before)
        surface = m.group("text")
        start, end = length, length + len(surface)
        for spec in _entity_specs(m, source, line):
            entities.append(
                EntityAnnotation(
                    entity=spec["entity"],
                    value=str(spec.get("value", surface)),
                    start=start,
                    end=end,
                    role=spec.get("role"),
                    group=None if spec.get("group") is None else str(spec["group"]),
                )
            )
        parts.append(surface)
        length = end
        pos = m.end()
    parts.append(raw[pos:])
    return "".join(parts), tuple(entities)


def _entity_specs(m: re.Match[str], source: str | None, line: int | None) -> list[dict[str, Any]]:
    if m.group("entity") is not None:
        spec: dict[str, Any] = {"entity": m.group("entity").strip()}
        if m.group("value") is not None:
            spec["value"] = m.group("value").strip()
        specs = [spec]
    else:
        body = (
            "{" + m.group("dict") + "}"
            if m.group("dict") is not None
            else "[" + m.group("list") + "]"
        )
        try:
            parsed = json.loads(body)
        except ValueError as exc:
            raise TrainingDataError(
                f"entity annotation {m.group(0)!r} is not valid JSON ({exc})", source, line
            ) from None
        specs = parsed if isinstance(parsed, list) else [parsed]
    for spec in specs:
        if not isinstance(spec, dict) or not str(spec.get("entity") or "").strip():
            raise TrainingDataError(
                f"entity annotation {m.group(0)!r} names no entity", source, line
            )
        if "value" in spec and not str(spec["value"]).strip():
            raise TrainingDataError(
                f"entity annotation {m.group(0)!r} has an empty value", source, line
            )
    return specs


# ---------------------------------------------------------------------------------------
# Rasa YAML
# ---------------------------------------------------------------------------------------


def load_nlu_yaml(path: str | Path) -> NLUData:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise TrainingDataError("file not found", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingDataError(f"cannot read file ({exc})", str(path)) from None
    return parse_nlu_yaml(text, source=str(path))


def parse_nlu_yaml(text: str, *, source: str = "<string>", require_nlu: bool = True) -> NLUData:
    """Parse the text of a Rasa 3 NLU YAML file.

    With ``require_nlu=False`` a file without an ``nlu:`` key (a domain or rules file)
    yields empty data instead of an error.
    """
    if not text.strip():
        raise TrainingDataError("file is empty", source)
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        raise TrainingDataError(f"malformed YAML: {exc.problem or exc}", source, line) from None
    except yaml.YAMLError as exc:
        raise TrainingDataError(f"malformed YAML: {exc}", source) from None
    if root is None:
        raise TrainingDataError("file is empty", source)
    if not isinstance(root, yaml.MappingNode):
        raise TrainingDataError("top level must be a mapping", source, _line(root))
    nlu_node = _get(root, "nlu")
    if nlu_node is None:
        if require_nlu:
            raise TrainingDataError("no `nlu:` section", source, 1)
        return NLUData()
    if isinstance(nlu_node, yaml.ScalarNode) and nlu_node.value in ("", "null", "~"):
        raise TrainingDataError("the `nlu:` section is empty", source, _line(nlu_node))
    if not isinstance(nlu_node, yaml.SequenceNode):
        raise TrainingDataError("`nlu:` must be a list", source, _line(nlu_node))

    examples: list[TrainingExample] = []
    synonyms: dict[str, str] = {}
    lookups: dict[str, tuple[str, ...]] = {}
    regexes: dict[str, tuple[str, ...]] = {}
    for item in nlu_node.value:
        if not isinstance(item, yaml.MappingNode):
            raise TrainingDataError("each `nlu:` item must be a mapping", source, _line(item))
        kind = next(
            (k for k in ("intent", "synonym", "lookup", "regex") if _get(item, k) is not None), None
        )
        if kind is None:
            raise TrainingDataError(
                "item needs one of intent, synonym, lookup or regex", source, _line(item)
            )
        name_node = _get(item, kind)
        assert name_node is not None
        if not isinstance(name_node, yaml.ScalarNode) or not str(name_node.value).strip():
            raise TrainingDataError(f"`{kind}:` needs a name", source, _line(name_node))
        name = str(name_node.value).strip()
        lines = _example_lines(item, kind, name, source)
        if kind == "intent":
            for raw, line in lines:
                clean, ents = parse_annotated_text(raw, source=source, line=line)
                if not clean.strip():
                    raise TrainingDataError(f"empty example in intent {name!r}", source, line)
                examples.append(TrainingExample(clean, name, ents, source, line))
                for ent in ents:
                    surface = clean[ent.start : ent.end]
                    if surface != ent.value:
                        synonyms[surface.lower()] = ent.value
        elif kind == "synonym":
            for raw, _ in lines:
                synonyms[raw.lower()] = name
        elif kind == "lookup":
            lookups[name] = _unique(lookups.get(name, ()) + tuple(r for r, _ in lines))
        else:
            for raw, line in lines:
                try:
                    re.compile(raw)
                except re.error as exc:
                    raise TrainingDataError(
                        f"invalid regex {raw!r} ({exc})", source, line
                    ) from None
            regexes[name] = _unique(regexes.get(name, ()) + tuple(r for r, _ in lines))
    return NLUData(tuple(examples), synonyms, lookups, regexes)


def _get(mapping: yaml.MappingNode, key: str) -> yaml.Node | None:
    for k, v in mapping.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key:
            return v
    return None


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _example_lines(
    item: yaml.MappingNode, kind: str, name: str, source: str
) -> list[tuple[str, int]]:
    """The ``examples`` of one item as (text, 1-based line) pairs."""
    node = _get(item, "examples")
    if node is None:
        raise TrainingDataError(f"{kind} {name!r} has no `examples:`", source, _line(item))
    out: list[tuple[str, int]] = []
    if isinstance(node, yaml.ScalarNode):
        # A block scalar's content starts on the line after the `|` indicator.
        first = node.start_mark.line + (1 if node.style in ("|", ">") else 0)
        for offset, raw_line in enumerate(str(node.value).splitlines()):
            stripped = raw_line.strip()
            if not stripped or stripped.startswith("#"):
                continue
            line = first + offset + 1
            if not stripped.startswith("-"):
                raise TrainingDataError(
                    f"example lines must start with '- ' (got {stripped[:40]!r})", source, line
                )
            text = stripped[1:].strip()
            if not text:
                raise TrainingDataError(f"empty example in {kind} {name!r}", source, line)
            out.append((text, line))
    elif isinstance(node, yaml.SequenceNode):
        for sub in node.value:
            if isinstance(sub, yaml.MappingNode):
                text_node = _get(sub, "text")
                if not isinstance(text_node, yaml.ScalarNode) or not str(text_node.value).strip():
                    raise TrainingDataError("example needs a `text:`", source, _line(sub))
                out.append((str(text_node.value).strip(), _line(text_node)))
            elif isinstance(sub, yaml.ScalarNode) and str(sub.value).strip():
                out.append((str(sub.value).strip(), _line(sub)))
            else:
                raise TrainingDataError("malformed example", source, _line(sub))
    else:
        raise TrainingDataError("`examples:` must be a block string or a list", source, _line(node))
    if not out:
        raise TrainingDataError(f"{kind} {name!r} has no examples", source, _line(node))
    return out


# ---------------------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------------------

_LABEL_COLUMNS = ("label", "category", "intent")


def load_csv(path: str | Path) -> NLUData:
    """Load ``text,label`` (or ``text,category`` / ``text,intent``) rows as examples."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise TrainingDataError("file not found", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise TrainingDataError(f"cannot read file ({exc})", str(path)) from None
    return parse_csv(text, source=str(path))


def parse_csv(text: str, *, source: str = "<string>") -> NLUData:
    if not text.strip():
        raise TrainingDataError("file is empty", source)
    reader = csv.reader(io.StringIO(text))
    try:
        header = [h.strip().lower() for h in next(reader)]
    except csv.Error as exc:
        raise TrainingDataError(f"malformed CSV ({exc})", source, 1) from None
    if "text" not in header:
        raise TrainingDataError(f"no `text` column (columns: {header})", source, 1)
    label_col = next((c for c in _LABEL_COLUMNS if c in header), None)
    if label_col is None:
        raise TrainingDataError(f"no `label` or `category` column (columns: {header})", source, 1)
    ti, li = header.index("text"), header.index(label_col)
    examples: list[TrainingExample] = []
    try:
        for row in reader:
            line = reader.line_num
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) <= max(ti, li):
                raise TrainingDataError(
                    f"row has {len(row)} fields, expected {len(header)}", source, line
                )
            txt, label = row[ti].strip(), row[li].strip()
            if not txt:
                raise TrainingDataError("empty text", source, line)
            if not label:
                raise TrainingDataError("empty label", source, line)
            examples.append(TrainingExample(txt, label, (), source, line))
    except csv.Error as exc:
        raise TrainingDataError(f"malformed CSV ({exc})", source, reader.line_num) from None
    if not examples:
        raise TrainingDataError("no rows", source)
    return NLUData(examples=tuple(examples))


# ---------------------------------------------------------------------------------------
# Dispatch
# ---------------------------------------------------------------------------------------


def load_nlu(paths: str | Path | Iterable[str | Path]) -> NLUData:
    """Load and merge NLU data from files or folders.

    ``.yml``/``.yaml`` files are Rasa NLU files, ``.csv`` files are ``text,label`` tables.
    In a folder, YAML files without an ``nlu:`` section (domain, rules, stories) are skipped.
    """
    items = [Path(paths)] if isinstance(paths, (str, Path)) else [Path(p) for p in paths]
    data = NLUData()
    found = False
    for p in items:
        if p.is_dir():
            for f in sorted(p.rglob("*")):
                if f.suffix in (".yml", ".yaml"):
                    text = f.read_text(encoding="utf-8")
                    if text.strip():
                        data = data.merge(parse_nlu_yaml(text, source=str(f), require_nlu=False))
                        found = True
                elif f.suffix == ".csv":
                    data = data.merge(load_csv(f))
                    found = True
        elif p.suffix == ".csv":
            data, found = data.merge(load_csv(p)), True
        elif p.suffix in (".yml", ".yaml"):
            data, found = data.merge(load_nlu_yaml(p)), True
        elif not p.exists():
            raise TrainingDataError("file not found", str(p))
        else:
            raise TrainingDataError("unsupported file type (use .yml, .yaml or .csv)", str(p))
    if not found or not data.examples:
        raise TrainingDataError(
            "no NLU training examples found", ", ".join(map(str, items)) or None
        )
    return data
