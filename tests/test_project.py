"""A store's bot is a project folder: found the way Rasa finds one, Rasa projects run as they
are, `clerk init` scaffolds one, and no command falls back to the demo store."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest

from bot.cli import main
from bot.config import Settings
from bot.errors import ConfigError, ProjectNotFound
from bot.nlu.config import NLUConfig, rasa_config_notes
from bot.project import Project
from bot.scaffold import scaffold
from tests.live import bot_server
from tests.rasa_projects import write_rasa_init_project

ROOT = Path(__file__).resolve().parent.parent


def settings_for(project: Path, **env: str) -> Settings:
    return Settings.load({"CLERK_PROJECT": str(project), **env})


# ------------------------------------------------------------------------ finding a project


def test_the_repository_root_is_the_demo_store_project() -> None:
    project = Project.find(ROOT)
    assert project.domain == ROOT / "training_data" / "domain.yml"
    assert project.config_file == ROOT / "training_data" / "config.yml"
    assert project.nlu_files == (ROOT / "training_data" / "nlu.yml",)
    assert set(project.dialogue_files) == {
        ROOT / "training_data" / "rules.yml",
        ROOT / "training_data" / "stories.yml",
    }
    assert project.knowledge_dir == ROOT / "knowledge"
    assert project.actions_dir == ROOT


def test_a_rasa_init_project_is_found_in_rasas_layout(tmp_path: Path) -> None:
    root = write_rasa_init_project(tmp_path / "moodbot")
    project = Project.find(root)
    assert project.domain == root / "domain.yml"
    assert project.config_file == root / "config.yml"
    assert project.nlu_files == (root / "data" / "nlu.yml",)
    assert set(project.dialogue_files) == {
        root / "data" / "rules.yml",
        root / "data" / "stories.yml",
    }
    assert project.test_files == (root / "tests" / "test_stories.yml",)
    assert project.knowledge_dir is None
    assert project.actions_dir == root
    assert project.endpoints_file == root / "endpoints.yml"
    assert project.credentials_file == root / "credentials.yml"


def test_data_files_are_sorted_by_what_they_hold_and_a_domain_folder_is_merged(
    tmp_path: Path,
) -> None:
    (tmp_path / "domain").mkdir()
    (tmp_path / "domain" / "intents.yml").write_text("intents: [greet, buy]\n")
    (tmp_path / "domain" / "responses.yml").write_text(
        "responses:\n  utter_greet:\n    - text: hi\n"
    )
    (tmp_path / "data" / "nlu").mkdir(parents=True)
    (tmp_path / "data" / "nlu" / "greet.yml").write_text(
        "nlu:\n- intent: greet\n  examples: |\n    - hi\n    - hello\n"
    )
    (tmp_path / "data" / "mixed.yaml").write_text(
        "nlu:\n- intent: buy\n  examples: |\n    - I want to buy\n    - purchase\n"
        "rules:\n- rule: r\n  steps:\n  - intent: greet\n  - action: utter_greet\n"
    )
    (tmp_path / "data" / "notes.yml").write_text("just: a note\n")
    project = Project.find(tmp_path)
    assert project.domain == tmp_path / "domain"
    assert set(project.nlu_files) == {
        tmp_path / "data" / "nlu" / "greet.yml",
        tmp_path / "data" / "mixed.yaml",
    }
    assert project.dialogue_files == (tmp_path / "data" / "mixed.yaml",)
    assert project.config_file is None


def test_a_folder_without_a_project_names_what_is_missing(tmp_path: Path) -> None:
    with pytest.raises(ProjectNotFound) as caught:
        Project.find(tmp_path)
    assert "domain.yml" in str(caught.value) and "NLU examples" in str(caught.value)
    assert "clerk init" in str(caught.value)
    (tmp_path / "domain.yml").write_text("intents: [greet]\n")
    with pytest.raises(ProjectNotFound) as caught:
        Project.find(tmp_path)
    assert caught.value.missing == [caught.value.missing[0]]
    assert "NLU" in caught.value.missing[0]


@pytest.mark.parametrize("command", [["train"], ["serve"], ["ingest"], ["shell"], ["project"]])
def test_commands_in_a_folder_without_a_project_never_serve_the_demo(
    tmp_path: Path,
    command: list[str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("CLERK_PROJECT", raising=False)
    monkeypatch.delenv("CLERK_HOME", raising=False)
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"{tmp_path} is not a Clerk project" in err and "clerk init" in err
    assert list(tmp_path.iterdir()) == []  # nothing made: no .clerk home, no database


def test_home_and_clerk_yml_belong_to_the_project(tmp_path: Path) -> None:
    root = write_rasa_init_project(tmp_path / "p")
    (root / "clerk.yml").write_text("widget_title: Mood bot\n")
    settings = settings_for(root)
    assert settings.home == root / ".clerk"
    assert settings.widget_title == "Mood bot"
    assert settings_for(root, CLERK_HOME="elsewhere").home == root / "elsewhere"


# -------------------------------------------------------------- Rasa's files are honoured


def test_endpoints_and_credentials_are_read_with_environment_variables(tmp_path: Path) -> None:
    root = write_rasa_init_project(tmp_path / "p")
    (root / "endpoints.yml").write_text(
        'action_endpoint:\n  url: "http://${ACTIONS_HOST}:5055/webhook"\n'
    )
    (root / "credentials.yml").write_text(
        "rest:\nsocketio:\n  user_message_evt: user_uttered\n"
        "telegram:\n  access_token: ${TG_TOKEN}\n  verify: mybot\n"
        "  webhook_url: https://shop.example/webhooks/telegram\n"
    )
    settings = settings_for(root, ACTIONS_HOST="10.0.0.7", TG_TOKEN="123:abc")
    assert settings.action_endpoint == "http://10.0.0.7:5055/webhook"
    assert settings.channels == ("rest", "socketio", "telegram")
    assert settings.telegram_token == "123:abc"
    assert settings.telegram_webhook_url == "https://shop.example/webhooks/telegram"
    # the environment and clerk.yml still win over the project's Rasa files
    overridden = settings_for(
        root,
        ACTIONS_HOST="x",
        TG_TOKEN="1:a",
        CLERK_ACTION_ENDPOINT="http://127.0.0.1:6000/webhook",
    )
    assert overridden.action_endpoint == "http://127.0.0.1:6000/webhook"
    with pytest.raises(ConfigError, match="ACTIONS_HOST"):
        settings_for(root, TG_TOKEN="1:a")


def test_rasas_yaml_spelling_of_the_files_is_read_too(tmp_path: Path) -> None:
    root = write_rasa_init_project(tmp_path / "p")
    (root / "endpoints.yml").unlink()
    (root / "credentials.yml").rename(root / "credentials.yaml")
    (root / "endpoints.yaml").write_text(
        'action_endpoint:\n  url: "http://10.0.0.8:5055/webhook"\n'
    )
    project = Project.find(root)
    assert project.endpoints_file == root / "endpoints.yaml"
    assert project.credentials_file == root / "credentials.yaml"
    settings = settings_for(root)
    assert settings.action_endpoint == "http://10.0.0.8:5055/webhook"
    assert settings.channels == ("rest",)


def test_channels_not_in_credentials_are_not_served(tmp_path: Path) -> None:
    root = write_rasa_init_project(tmp_path / "p")  # its credentials.yml lists rest only
    assert settings_for(root).channels == ("rest",)
    (root / "credentials.yml").unlink()
    assert settings_for(root).channels == ("rest", "socketio", "telegram")
    with pytest.raises(ConfigError, match="unknown"):
        settings_for(root, CLERK_CHANNELS="rest,fax")


def test_the_language_comes_from_the_environment_clerk_yml_or_rasas_config(
    tmp_path: Path,
) -> None:
    root = write_rasa_init_project(tmp_path / "p")  # its config.yml says `language: en`
    assert settings_for(root).language == "en"
    config = root / "config.yml"
    config.write_text(config.read_text().replace("language: en", "language: zh"))
    assert settings_for(root).language == "zh"
    (root / "clerk.yml").write_text("language: en-US\n")
    assert settings_for(root).language == "en"  # clerk.yml over config.yml
    assert settings_for(root, CLERK_LANGUAGE="zh-CN").language == "zh"  # the environment first


def test_a_language_clerk_does_not_speak_is_a_config_error_unless_rasa_states_it(
    tmp_path: Path,
) -> None:
    root = write_rasa_init_project(tmp_path / "p")
    with pytest.raises(ConfigError, match=r"language: must be one of en, zh.*'fr'"):
        settings_for(root, CLERK_LANGUAGE="fr")
    (root / "clerk.yml").write_text("language: chinese\n")
    with pytest.raises(ConfigError, match="language"):
        settings_for(root)
    (root / "clerk.yml").unlink()
    # a Rasa project in another language still loads as it is (in English); training says so
    config = root / "config.yml"
    config.write_text(config.read_text().replace("language: en", "language: de"))
    assert settings_for(root).language == "en"
    assert "language 'de'" in " ".join(rasa_config_notes(Project.find(root).read_config()))


def test_a_rasa_config_is_used_where_it_maps_and_the_rest_is_reported() -> None:
    import yaml

    from tests.rasa_projects import CONFIG

    config = yaml.safe_load(CONFIG)
    assert NLUConfig.from_mapping(config).threshold == 0.3  # the FallbackClassifier's
    notes = rasa_config_notes(config)
    assert len(notes) == 2
    assert "DIETClassifier" in notes[0] and "FallbackClassifier" not in notes[0].split(":")[-1]
    assert "TEDPolicy" in notes[1]
    assert "language 'de'" in " ".join(rasa_config_notes({**config, "language": "de"}))
    assert rasa_config_notes({"recipe": "default.v1", "language": "en"}) == []
    assert rasa_config_notes({"recipe": "default.v1", "language": "zh"}) == []  # Clerk speaks it


def test_a_rasa_init_project_trains_and_serves_as_it_is(
    tmp_path: Path,
    encoder,
    caplog: pytest.LogCaptureFixture,  # type: ignore[no-untyped-def]
) -> None:
    from bot.app import prepare

    root = write_rasa_init_project(tmp_path / "moodbot")
    before = {p: p.read_bytes() for p in root.rglob("*") if p.is_file()}
    settings = settings_for(root)
    with caplog.at_level(logging.INFO):
        prepare(settings, encoder=encoder)
    ignored = [r.getMessage() for r in caplog.records if "ignored" in r.getMessage()]
    assert len(ignored) == 2 and "DIETClassifier" in ignored[0]
    with bot_server(settings, encoder) as server:

        def say(sender: str, text: str) -> list[dict]:
            r = httpx.post(
                f"{server.url}/webhooks/rest/webhook",
                json={"sender": sender, "message": text},
                timeout=30,
            )
            assert r.status_code == 200, r.text
            return r.json()

        assert [m["text"] for m in say("a", "hello")] == ["Hey! How are you?"]
        sad = say("a", "I am sad")
        assert [m.get("text") for m in sad] == [
            "Here is something to cheer you up:",
            "Did that help you?",
        ]
        assert sad[0]["image"] == "https://i.imgur.com/nGF1K8f.jpg"
        assert [m["text"] for m in say("a", "yes")] == ["Great, carry on!"]
        assert [m["text"] for m in say("b", "are you a bot?")] == ["I am a bot, powered by Rasa."]
        # credentials.yml lists no socketio: that endpoint is not served
        assert httpx.get(f"{server.url}/socket.io/?EIO=4&transport=polling").status_code == 404
    after = {p: p.read_bytes() for p in root.rglob("*") if p.is_file() and ".clerk" not in p.parts}
    assert after == before  # no edits to the project
    # and its test stories pass through `clerk test`
    assert main(["--project", str(root), "test", "core"]) == 0
    assert (root / "results" / "story_report.json").is_file()


# ----------------------------------------------------------------- the project's actions


CUSTOM_ACTIONS = '''
from rasa_sdk import Action


class ActionCheckStock(Action):
    def name(self):
        return "action_check_stock"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(response="utter_stock")
        return []


class ActionTicketStatus(Action):
    """Replaces Clerk's built-in action of the same name."""

    def name(self):
        return "action_ticket_status"

    def run(self, dispatcher, tracker, domain):
        dispatcher.utter_message(response="utter_our_ticket_status")
        return []
'''


def test_the_projects_actions_add_to_and_replace_the_built_in_ones(tmp_path: Path) -> None:
    from bot.store.db import Database
    from bot.store_actions import ACTION_CLASSES, project_actions
    from bot.store_actions.server import action_executor

    (tmp_path / "actions").mkdir()
    (tmp_path / "actions" / "__init__.py").write_text("")
    (tmp_path / "actions" / "stock.py").write_text(CUSTOM_ACTIONS)
    db = Database(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        actions = {a.name(): a for a in project_actions(tmp_path, db)}
    finally:
        db.dispose()
    assert len(actions) == len(ACTION_CLASSES) + 1
    assert type(actions["action_check_stock"]).__module__ == "actions.stock"
    assert type(actions["action_ticket_status"]).__module__ == "actions.stock"
    assert type(actions["action_order_status"]).__module__.startswith("bot.store_actions")
    served = action_executor(tmp_path).actions
    assert {"action_check_stock", "action_order_status", "action_ticket_status"} <= set(served)


def test_another_projects_actions_package_is_not_reused(tmp_path: Path) -> None:
    from bot.store_actions import project_action_classes

    for name, action in (("one", "action_one"), ("two", "action_two")):
        (tmp_path / name / "actions").mkdir(parents=True)
        (tmp_path / name / "actions" / "__init__.py").write_text(
            CUSTOM_ACTIONS.replace("action_check_stock", action)
        )
    first = {c().name() for c in project_action_classes(tmp_path / "one")}
    second = {c().name() for c in project_action_classes(tmp_path / "two")}
    assert "action_one" in first and "action_one" not in second and "action_two" in second


# ---------------------------------------------------------------------------- clerk init


@pytest.mark.parametrize("template", ["demo-store", "demo-store-zh", "minimal"])
def test_clerk_init_writes_a_project_that_is_found(tmp_path: Path, template: str) -> None:
    target = tmp_path / "shop"
    assert main(["init", str(target), "--template", template]) == 0
    project = Project.find(target)
    assert project.domain == target / "domain.yml"
    assert project.config_file == target / "config.yml"
    assert project.nlu_files and project.dialogue_files and project.test_files
    assert project.knowledge_dir == target / "knowledge"
    assert (target / "README.md").is_file() and (target / ".gitignore").is_file()
    assert (target / "actions" / "__init__.py").is_file()
    if template.startswith("demo-store"):
        assert (target / "knowledge" / "catalog" / "products.json").read_bytes() == (
            ROOT / "knowledge" / "catalog" / "products.json"
        ).read_bytes()
    language = Settings.load({"CLERK_PROJECT": str(target)}).language
    assert language == ("zh" if template == "demo-store-zh" else "en")


def test_clerk_init_never_writes_into_a_folder_with_files(tmp_path: Path) -> None:
    (tmp_path / "keep.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not empty"):
        scaffold("minimal", tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]


def test_the_minimal_templates_custom_action_is_loaded(tmp_path: Path) -> None:
    from bot.store_actions import project_action_classes

    scaffold("minimal", tmp_path / "shop")
    names = {cls().name() for cls in project_action_classes(tmp_path / "shop")}
    assert names == {"action_opening_hours"}


def test_data_validate_checks_the_projects_domain_and_stories(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = write_rasa_init_project(tmp_path / "p")
    rules = root / "data" / "rules.yml"
    rules.write_text(
        rules.read_text() + "\n- rule: cheer\n  steps:\n  - intent: greet\n"
        "  - action: utter_not_in_the_domain\n"
    )
    assert main(["--project", str(root), "data", "validate"]) == 1
    out = capsys.readouterr().out
    assert "undefined-response" in out and "utter_not_in_the_domain" in out
