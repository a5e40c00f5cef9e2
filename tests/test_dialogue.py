"""The dialogue engine's parts on their own: domain and story loading (a plain Rasa 3
project loads unchanged), slot mappings, rule/story prediction, tracker replay."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.dialogue.domain import Domain
from bot.dialogue.policy import FlowPolicy
from bot.dialogue.slots import extract_slots
from bot.dialogue.stories import DialogueData
from bot.dialogue.tracker import Tracker
from bot.errors import TrainingDataError
from bot.types import (
    ActionExecuted,
    ActiveLoop,
    ConversationId,
    HandoffEvent,
    SlotSet,
    UserUttered,
    event_from_dict,
)
from tests.rasa_projects import DOMAIN as MOODBOT_DOMAIN
from tests.rasa_projects import RULES as MOODBOT_RULES
from tests.rasa_projects import STORIES as MOODBOT_STORIES


@pytest.fixture
def moodbot(tmp_path: Path) -> tuple[Domain, FlowPolicy]:
    (tmp_path / "domain.yml").write_text(MOODBOT_DOMAIN)
    data = tmp_path / "data"
    data.mkdir()
    (data / "stories.yml").write_text(MOODBOT_STORIES)
    (data / "rules.yml").write_text(MOODBOT_RULES)
    return Domain.load(tmp_path / "domain.yml"), FlowPolicy(DialogueData.load(data))


def _user(t: Tracker, intent: str, text: str = "...", entities: list | None = None) -> UserUttered:
    e = UserUttered(
        text=text,
        parse_data={"intent": {"name": intent, "confidence": 1.0}, "entities": entities or []},
    )
    t.apply(ActionExecuted(name="action_listen"))
    t.apply(e)
    return e


def _run(t: Tracker, policy: FlowPolicy) -> list[str]:
    """Predict and 'execute' actions until the policy says listen."""
    done = []
    for _ in range(10):
        pred = policy.predict(t)
        if pred is None or pred.action == "action_listen":
            break
        t.apply(ActionExecuted(name=pred.action))
        done.append(pred.action)
    return done


def test_a_plain_rasa_project_loads_and_its_stories_drive_the_dialogue(moodbot) -> None:
    domain, policy = moodbot
    assert "mood_unhappy" in domain.intents
    assert domain.render("utter_cheer_up", {})[0].image == "https://i.imgur.com/nGF1K8f.jpg"
    t = Tracker.from_events(ConversationId("c"), domain.initial_slots(), [])
    _user(t, "greet")
    assert _run(t, policy) == ["utter_greet"]
    _user(t, "mood_unhappy")
    assert _run(t, policy) == ["utter_cheer_up", "utter_did_that_help"]
    _user(t, "deny")
    assert _run(t, policy) == ["utter_goodbye"]
    _user(t, "bot_challenge")
    assert _run(t, policy) == ["utter_iamabot"]


def test_story_context_decides_between_two_continuations(moodbot) -> None:
    _domain, policy = moodbot
    t = Tracker.from_events(ConversationId("c"), {}, [])
    _user(t, "greet")
    _run(t, policy)
    _user(t, "mood_unhappy")
    _run(t, policy)
    _user(t, "affirm")
    assert _run(t, policy) == ["utter_happy"]


def test_clerk_rules_start_a_form_and_submit_it(data_dir: Path) -> None:
    policy = FlowPolicy(DialogueData.load(data_dir / "rules.yml", data_dir / "stories.yml"))
    t = Tracker.from_events(ConversationId("c"), {"requested_slot": None}, [])
    _user(t, "cancel_order")
    assert policy.predict(t).action == "cancel_order_form"
    t.apply(ActionExecuted(name="cancel_order_form"))
    t.apply(ActiveLoop(name="cancel_order_form"))
    t.apply(SlotSet(key="requested_slot", value="customer_id"))
    assert policy.predict(t).action == "action_listen"
    _user(t, "inform")
    t.apply(ActionExecuted(name="cancel_order_form"))
    t.apply(SlotSet(key="requested_slot", value=None))
    t.apply(ActiveLoop(name=None))
    assert policy.predict(t).action == "action_cancel_order"


def test_a_form_activated_and_completed_in_one_turn_is_submitted(data_dir: Path) -> None:
    policy = FlowPolicy(DialogueData.load(data_dir / "rules.yml"))
    t = Tracker.from_events(ConversationId("c"), {"requested_slot": None}, [])
    _user(t, "order_status")
    t.apply(ActionExecuted(name="order_status_form"))
    t.apply(ActiveLoop(name="order_status_form"))
    t.apply(ActiveLoop(name=None))
    assert policy.predict(t).action == "action_order_status"


def test_offered_human_is_accepted_by_yes_only_after_the_offer(data_dir: Path) -> None:
    policy = FlowPolicy(DialogueData.load(data_dir / "rules.yml"))
    t = Tracker.from_events(ConversationId("c"), {}, [])
    _user(t, "affirm")
    assert policy.predict(t) is None  # a bare "yes" means nothing by itself
    t.apply(ActionExecuted(name="action_offer_handoff"))
    _user(t, "affirm")
    assert policy.predict(t).action == "action_handoff"


def test_slot_mappings_respect_conditions(data_dir: Path) -> None:
    domain = Domain.load(data_dir / "domain.yml")
    msg = UserUttered(
        text="yes please, order #W2611340",
        parse_data={
            "intent": {"name": "affirm"},
            "entities": [{"entity": "order_id", "value": "#W2611340"}],
        },
    )
    outside = extract_slots(domain, msg, active_loop=None, requested_slot=None, current={})
    assert {e.key: e.value for e in outside} == {"order_id": "#W2611340"}
    inside = extract_slots(
        domain, msg, active_loop="cancel_order_form", requested_slot="confirmed", current={}
    )
    assert {e.key: e.value for e in inside} == {"order_id": "#W2611340", "confirmed": True}
    text_msg = UserUttered(text="The lid was broken", parse_data={"intent": {"name": "inform"}})
    got = extract_slots(
        domain, text_msg, active_loop="complaint_form", requested_slot="complaint_text", current={}
    )
    assert {e.key: e.value for e in got} == {"complaint_text": "The lid was broken"}


def test_tracker_replays_state_and_round_trips_events() -> None:
    events = [
        UserUttered(text="hi", parse_data={"intent": {"name": "greet"}}),
        SlotSet(key="customer_id", value="noah_brown_6181"),
        ActiveLoop(name="order_status_form"),
        SlotSet(key="requested_slot", value="order_id"),
        HandoffEvent(step="requested", reason="asked"),
    ]
    round_tripped = [event_from_dict(e.to_dict()) for e in events]
    assert round_tripped == events
    t = Tracker.from_events(
        ConversationId("c"), {"customer_id": None, "requested_slot": None}, round_tripped
    )
    assert t.slots["customer_id"] == "noah_brown_6181"
    assert t.active_loop == "order_status_form"
    assert t.handoff_status == "requested"
    state = t.to_rasa_state()
    assert state["active_loop"] == {"name": "order_status_form"}
    assert state["latest_message"]["text"] == "hi"


def test_domain_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "domain.yml"
    bad.write_text("intents: [greet\nresponses: {")
    with pytest.raises(TrainingDataError) as err:
        Domain.load(bad)
    assert "domain.yml" in str(err.value)
    unknown = tmp_path / "d2.yml"
    unknown.write_text("forms:\n  f:\n    required_slots: [nope]\n")
    with pytest.raises(TrainingDataError, match="unknown slot"):
        Domain.load(unknown)
