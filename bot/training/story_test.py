"""``clerk test``: run a project's test stories against the trained bot, like ``rasa test``.

Test stories are Rasa 3 YAML (``stories:``; each step ``user:`` text, possibly with entity
annotations, and ``intent:``; or ``intent:`` alone; ``action:``; ``slot_was_set:``;
``active_loop:``). ``load_test_stories(files)`` reads them; ``run_story_tests(manager,
stories)`` plays each story in a fresh conversation of its own through
``DialogueManager.handle`` and compares what the bot did with what the story says;
``write_report(report, out_dir)`` writes Rasa's report files.

How a story is checked, one turn at a time (a turn: a user step and the steps after it,
up to the next user step):

* the user step's text (annotations stripped) is sent; a step with only ``intent:`` sends
  ``/intent`` (the payload form the NLU answers without the model). With ``intent:``, the
  parsed intent must be it; with entity annotations, each annotated entity must be
  extracted (same type, same text span; extra extracted entities are not failures);
* the actions the bot ran until it listened again (``action_listen`` and
  ``action_session_start`` left out) must be exactly the story's ``action:`` steps, in order;
* ``slot_was_set`` entries are checked against the turn's events: the turn set the slot to
  that value, or the slot holds it after the turn (a bare name: any non-null value; a
  slot an action sets and resets in the same turn still counts). ``active_loop: X`` holds when X is active
  after the turn or the turn activated X; ``active_loop: null`` when no form is active
  after the turn or the turn deactivated one. Their position among the actions is not
  checked (the engine extracts slots itself; Rasa instead applies them as given events).

The engine cannot be forced back onto the story's path (Rasa feeds the gold action on),
so a story stops at its first failed turn; its later steps are reported as not run and
left out of the action metrics.

Contract: ``run_story_tests`` only talks to ``manager``: running it against a bot whose
database is the store's real one changes that database (orders cancelled by a story are
cancelled). ``isolated_settings`` gives settings on a throw-away copy; ``bot.training.
commands`` always uses it. Malformed files raise ``TrainingDataError``.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from bot.errors import TrainingDataError
from bot.nlu.data import EntityAnnotation, parse_annotated_text
from bot.types import (
    ActionExecuted,
    ActiveLoop,
    ConversationId,
    Event,
    Message,
    SlotSet,
    UserUttered,
)

__all__ = [
    "StoryResult",
    "StoryTestReport",
    "TestStep",
    "TestStory",
    "isolated_settings",
    "load_test_stories",
    "run_story_tests",
    "write_report",
]

LISTEN = "action_listen"
IGNORED_ACTIONS = frozenset({LISTEN, "action_session_start"})
ANY_VALUE = object()  # a bare ``slot_was_set`` name: any non-null value
CHANNEL = "rest"  # the test conversations are REST conversations: nothing is pushed to them
FAILED_FILE = "failed_test_stories.yml"
REPORT_FILE = "story_report.json"


# --------------------------------------------------------------------------- the stories


@dataclass(frozen=True)
class TestStep:
    """One step of a test story. ``kind``: user | action | slot | active_loop.

    user: ``text`` is what is sent, ``raw`` the annotated text as written (or None for an
    intent-only step), ``intent`` the expected intent or None, ``entities`` the annotations.
    action: ``name``. slot: ``name`` and ``value`` (``ANY_VALUE`` for a bare name).
    active_loop: ``name`` (None for ``active_loop: null``)."""

    __test__ = False  # not a pytest class

    kind: str
    name: str | None = None
    value: Any = None
    text: str | None = None
    raw: str | None = None
    intent: str | None = None
    entities: tuple[EntityAnnotation, ...] = ()


@dataclass(frozen=True)
class TestStory:
    __test__ = False

    name: str
    steps: tuple[TestStep, ...]
    source: str


def load_test_stories(files: Sequence[Path]) -> list[TestStory]:
    """Every ``stories:`` entry of ``files``, in order. Raises ``TrainingDataError`` for a
    file that is not YAML, a story without steps, or a step of an unknown kind."""
    stories: list[TestStory] = []
    for path in files:
        try:
            doc = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except yaml.YAMLError as exc:
            raise TrainingDataError(f"invalid YAML: {exc}", str(path)) from exc
        if not isinstance(doc, dict):
            raise TrainingDataError("a test stories file must be a mapping", str(path))
        for item in doc.get("stories") or []:
            if not isinstance(item, dict):
                raise TrainingDataError(f"a story must be a mapping, got {item!r}", str(path))
            name = str(item.get("story") or "?")
            steps = tuple(s for raw in item.get("steps") or [] for s in _steps(raw, name, path))
            if not steps:
                raise TrainingDataError(f"test story {name!r} has no steps", str(path))
            stories.append(TestStory(name=name, steps=steps, source=str(path)))
    return stories


def _steps(raw: Any, story: str, path: Path) -> list[TestStep]:
    if not isinstance(raw, dict):
        raise TrainingDataError(f"{story!r}: a step must be a mapping, got {raw!r}", str(path))
    if "user" in raw:
        annotated = str(raw["user"]).strip()
        text, entities = parse_annotated_text(annotated, source=str(path))
        intent = str(raw["intent"]) if raw.get("intent") else None
        return [TestStep("user", text=text, raw=annotated, intent=intent, entities=entities)]
    if "intent" in raw:
        intent = str(raw["intent"])
        return [TestStep("user", text=f"/{intent}", intent=intent)]
    if "action" in raw:
        return [TestStep("action", name=str(raw["action"]))]
    if "active_loop" in raw:
        loop = raw["active_loop"]
        return [TestStep("active_loop", name=None if loop is None else str(loop))]
    if "slot_was_set" in raw:
        out = []
        for entry in raw["slot_was_set"] or []:
            if isinstance(entry, dict):
                out += [TestStep("slot", name=str(k), value=v) for k, v in entry.items()]
            else:
                out.append(TestStep("slot", name=str(entry), value=ANY_VALUE))
        return out
    if "checkpoint" in raw or "bot" in raw:
        return []
    raise TrainingDataError(f"{story!r}: unknown step {raw!r}", str(path))


# --------------------------------------------------------------------------- the results


@dataclass
class StepOutcome:
    """A step as played: ``predicted`` is what the bot did instead (None: as expected);
    ``run`` is False for steps after the story's first failed turn."""

    step: TestStep
    predicted: str | None = None
    run: bool = True


@dataclass
class StoryResult:
    story: TestStory
    outcomes: list[StepOutcome] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)  # actions the bot ran beyond the turn's
    gold_actions: list[str] = field(default_factory=list)  # of the turns that ran
    predicted_actions: list[str] = field(default_factory=list)
    conversation_id: str = ""

    @property
    def passed(self) -> bool:
        return not self.extra and all(o.predicted is None and o.run for o in self.outcomes)


@dataclass
class StoryTestReport:
    results: list[StoryResult]
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def failed(self) -> list[StoryResult]:
        return [r for r in self.results if not r.passed]

    def action_report(self) -> dict[str, Any]:
        """Per-action precision/recall/F1 and their averages over the actions of the turns
        that ran (``bot.training.evaluate.intent_report``'s shape), each turn ending with
        the ``action_listen`` both sides expect."""
        from bot.training.evaluate import intent_report

        gold = [a for r in self.results for a in r.gold_actions]
        predicted = [a for r in self.results for a in r.predicted_actions]
        return intent_report(gold, predicted) if gold else {}

    def summary(self) -> dict[str, Any]:
        """The JSON summary: stories passed/failed, conversation accuracy, and the
        action-level accuracy/precision/recall/F1 (weighted averages, as ``rasa test``
        prints them)."""
        total = len(self.results)
        actions = self.action_report()
        weighted = actions.get("weighted avg") or {}
        return {
            "conversation_accuracy": {
                "accuracy": (total - len(self.failed)) / total if total else 0.0,
                "correct": total - len(self.failed),
                "with_warnings": 0,
                "total": total,
            },
            "action_level": {
                "accuracy": actions.get("accuracy", 0.0),
                "precision": weighted.get("precision", 0.0),
                "recall": weighted.get("recall", 0.0),
                "f1": weighted.get("f1-score", 0.0),
                "support": weighted.get("support", 0),
            },
            "stories": [
                {
                    "story": r.story.name,
                    "file": r.story.source,
                    "passed": r.passed,
                    "conversation_id": r.conversation_id,
                    "expected_actions": [a for a in r.gold_actions if a != LISTEN],
                    "predicted_actions": [a for a in r.predicted_actions if a != LISTEN],
                    "failures": _failures(r),
                }
                for r in self.results
            ],
            "actions": actions,
        }

    def render(self) -> str:
        """Each failed story in Rasa's annotated form, then the headline figures."""
        lines = []
        for r in self.failed:
            lines.append(f"FAILED {r.story.name} ({r.story.source})")
            lines.append(story_yaml([r]).split("\n", 2)[2].rstrip())
            lines.append("")
        s = self.summary()
        c, a = s["conversation_accuracy"], s["action_level"]
        lines.append(
            f"stories: {c['correct']}/{c['total']} passed "
            f"(conversation accuracy {c['accuracy']:.3f})"
        )
        lines.append(
            f"actions: accuracy {a['accuracy']:.3f}  precision {a['precision']:.3f}  "
            f"recall {a['recall']:.3f}  F1 {a['f1']:.3f}  (support {a['support']})"
        )
        for name, path in self.files.items():
            lines.append(f"  {name}: {path}")
        return "\n".join(lines)


def _failures(r: StoryResult) -> list[str]:
    out = []
    for o in r.outcomes:
        if o.predicted is not None:
            s = o.step
            what = {
                "user": f"intent {s.intent}",
                "action": f"action {s.name}",
                "slot": f"slot {s.name}",
                "active_loop": f"active_loop {s.name}",
            }[s.kind]
            out.append(f"expected {what}, predicted {o.predicted}")
    out += [f"unexpected action {a}" for a in r.extra]
    return out


# --------------------------------------------------------------------------- running


async def run_story_tests(
    manager: Any, stories: Sequence[TestStory], *, run_id: str | None = None
) -> StoryTestReport:
    """Play each story in its own new conversation (``rest:clerk-test-<run>-<n>``) through
    ``manager`` (a ``DialogueManager``); one story at a time, in order."""
    run = run_id or uuid.uuid4().hex[:8]
    results = []
    for n, story in enumerate(stories, start=1):
        cid = ConversationId(f"{CHANNEL}:clerk-test-{run}-{n}")
        results.append(await _run_story(manager, story, cid))
    return StoryTestReport(results)


async def _run_story(manager: Any, story: TestStory, cid: ConversationId) -> StoryResult:
    result = StoryResult(story=story, conversation_id=str(cid))
    turns = _turns(story.steps)
    failed = False
    seen = 0
    for user, expected in turns:
        if failed:
            result.outcomes += [
                StepOutcome(s, run=False) for s in ([user] if user else []) + expected
            ]
            continue
        events: list[Event] = []
        if user is not None:
            await manager.handle(
                Message(conversation_id=cid, text=user.text or "", channel=CHANNEL)
            )
            stored = await manager.db.call(_load_events, manager.db, cid)
            events, seen = stored[seen:], len(stored)
            all_events = stored
        else:
            all_events = []
        failed = not _check_turn(manager, user, expected, events, all_events, result)
    return result


def _turns(steps: Sequence[TestStep]) -> list[tuple[TestStep | None, list[TestStep]]]:
    """Split the steps into (user step, the steps after it); steps before the first user
    step form a turn of their own (the bot does nothing before the first message)."""
    turns: list[tuple[TestStep | None, list[TestStep]]] = []
    for s in steps:
        if s.kind == "user":
            turns.append((s, []))
        elif s.kind == "action" and s.name in IGNORED_ACTIONS:
            continue
        elif turns:
            turns[-1][1].append(s)
        else:
            turns.append((None, [s]))
    return turns


def _load_events(db: Any, cid: ConversationId) -> list[Event]:
    from bot.store.conversations import load_events

    with db.session() as session:
        return load_events(session, cid)


def _check_turn(
    manager: Any,
    user: TestStep | None,
    expected: list[TestStep],
    events: list[Event],
    all_events: list[Event],
    result: StoryResult,
) -> bool:
    """Compare one turn; append its outcomes and action pairs to ``result``; True if it
    went as the story says."""
    ok = True
    if user is not None:
        outcome = StepOutcome(user)
        uttered = next((e for e in events if isinstance(e, UserUttered)), None)
        predicted = uttered.intent if uttered is not None else None
        missing = _missing_entities(user, uttered)
        if (user.intent is not None and predicted != user.intent) or missing:
            outcome.predicted = f"{predicted}: {_annotated(user, uttered)}"
            ok = False
        result.outcomes.append(outcome)
    actual = [
        e.name for e in events if isinstance(e, ActionExecuted) and e.name not in IGNORED_ACTIONS
    ]
    wanted = [s.name or "" for s in expected if s.kind == "action"]
    result.gold_actions += wanted + [LISTEN]
    padded = actual + [LISTEN]
    result.predicted_actions += [
        padded[i] if i < len(padded) else "None" for i in range(len(wanted) + 1)
    ]
    tracker = _final_state(manager, all_events)
    i = 0
    for s in expected:
        outcome = StepOutcome(s)
        if s.kind == "action":
            got = actual[i] if i < len(actual) else LISTEN
            i += 1
            if got != s.name:
                outcome.predicted = got
        elif s.kind == "slot":
            value = tracker.slots.get(s.name)
            values = [e.value for e in events if isinstance(e, SlotSet) and e.key == s.name]
            if not any(_slot_matches(s.value, v) for v in [*values, value]):
                outcome.predicted = f"{s.name}: {json.dumps(value, default=str)}"
        elif s.kind == "active_loop":
            named = {e.name for e in events if isinstance(e, ActiveLoop)}
            if tracker.active_loop != s.name and s.name not in named:
                outcome.predicted = f"active_loop: {tracker.active_loop}"
        ok = ok and outcome.predicted is None
        result.outcomes.append(outcome)
    result.extra += actual[i:]
    return ok and not actual[i:]


def _final_state(manager: Any, events: list[Event]) -> Any:
    from bot.dialogue.tracker import Tracker

    return Tracker.from_events(ConversationId("test"), manager.initial_slots, events)


def _slot_matches(expected: Any, actual: Any) -> bool:
    if expected is ANY_VALUE:
        return actual is not None
    if expected == actual:
        return True
    return (
        expected is not None
        and actual is not None
        and str(expected).strip().lower() == str(actual).strip().lower()
    )


def _missing_entities(step: TestStep, uttered: UserUttered | None) -> list[EntityAnnotation]:
    if not step.entities:
        return []
    text = step.text or ""
    got = set()
    for e in uttered.entities if uttered is not None else []:
        start, end = e.get("start"), e.get("end")
        span = text[start:end] if isinstance(start, int) and isinstance(end, int) else ""
        got.add((str(e.get("entity")), span.lower()))
    return [a for a in step.entities if (a.entity, text[a.start : a.end].lower()) not in got]


def _annotated(step: TestStep, uttered: UserUttered | None) -> str:
    """The sent text with the entities the bot extracted, in Rasa's annotation syntax."""
    text = step.text or ""
    spans = sorted(
        (
            e
            for e in (uttered.entities if uttered is not None else [])
            if isinstance(e.get("start"), int) and isinstance(e.get("end"), int)
        ),
        key=lambda e: e["start"],
    )
    out, pos = [], 0
    for e in spans:
        if e["start"] < pos:
            continue
        out.append(text[pos : e["start"]])
        out.append(f"[{text[e['start'] : e['end']]}]({e.get('entity')})")
        pos = e["end"]
    out.append(text[pos:])
    return "".join(out)


# --------------------------------------------------------------------------- reports


def story_yaml(results: Sequence[StoryResult]) -> str:
    """Stories in Rasa's test-story YAML, a ``# predicted: ...`` comment on each wrong step
    (``action_listen  # predicted: X`` for an action the story does not have) and
    ``# not run`` on steps after the first failed turn. ``yaml.safe_load`` reads it back."""
    lines = ['version: "3.1"', "stories:"]
    for r in results:
        lines.append(f"- story: {_q(r.story.name)}  # {r.story.source}")
        lines.append("  steps:")
        extra = list(r.extra)
        for o in r.outcomes:
            s = o.step
            note = ""
            if o.predicted is not None:
                note = f"  # predicted: {o.predicted}"
            elif not o.run:
                note = "  # not run: the story failed before this step"
            if s.kind == "user":
                if s.raw is None:
                    lines.append(f"  - intent: {s.intent}{note}")
                else:
                    lines.append(f"  - user: {_q(s.raw)}")
                    if s.intent is not None or note:
                        lines.append(f"    intent: {s.intent}{note}")
            elif s.kind == "action":
                lines.append(f"  - action: {s.name}{note}")
            elif s.kind == "slot":
                value = "" if s.value is ANY_VALUE else f": {json.dumps(s.value, default=str)}"
                lines.append(f"  - slot_was_set:\n    - {s.name}{value}{note}")
            else:
                lines.append(f"  - active_loop: {s.name if s.name else 'null'}{note}")
        for a in extra:  # stories stop at their first failed turn: extras belong to it
            lines.append(f"  - action: {LISTEN}  # predicted: {a}")
    return "\n".join(lines) + "\n"


def _q(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def write_report(report: StoryTestReport, out_dir: Path) -> dict[str, Path]:
    """Write ``failed_test_stories.yml`` (always; no stories when all passed) and
    ``story_report.json`` into ``out_dir``; return their paths (also kept in
    ``report.files``)."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    failed = out_dir / FAILED_FILE
    failed.write_text(
        story_yaml(report.failed) if report.failed else 'version: "3.1"\nstories: []\n',
        encoding="utf-8",
    )
    summary = out_dir / REPORT_FILE
    summary.write_text(json.dumps(report.summary(), indent=1, default=str), encoding="utf-8")
    report.files = {"failed stories": failed, "report": summary}
    return report.files


# --------------------------------------------------------------------------- isolation


@contextlib.contextmanager
def isolated_settings(settings: Any, knowledge_dir: Path | None = None) -> Iterator[Any]:
    """``settings`` on a throw-away database, removed afterwards; actions run in process.

    SQLite: a consistent copy of the prepared database (SQLite's backup API). Any other
    database (PostgreSQL): a new SQLite database with the schema and the store loaded from
    ``knowledge_dir`` (default ``settings.knowledge_dir``); the real one is never written.
    ``action_endpoint`` is cleared: a remote action server would write to its own database.
    """
    import sqlite3

    from sqlalchemy.engine import make_url

    with tempfile.TemporaryDirectory(prefix="clerk-test-") as tmp:
        target = Path(tmp) / "clerk-test.db"
        url = make_url(settings.database_url)
        if url.get_backend_name() == "sqlite" and url.database and Path(url.database).is_file():
            src = sqlite3.connect(url.database)
            dst = sqlite3.connect(target)
            try:
                src.backup(dst)
            finally:
                src.close()
                dst.close()
            new_url = f"sqlite:///{target}"
        else:
            new_url = f"sqlite:///{target}"
            _fresh_store(new_url, Path(knowledge_dir or settings.knowledge_dir))
        yield dataclasses.replace(settings, database_url=new_url, action_endpoint=None)


def _fresh_store(url: str, knowledge_dir: Path) -> None:
    from bot.knowledge.store_load import load_store
    from bot.store import migrate
    from bot.store.db import Database

    migrate.upgrade(url)
    db = Database(url)
    try:
        load_store(db, knowledge_dir)
    finally:
        db.dispose()
