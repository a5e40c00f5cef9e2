"""The agent console's security through a real server on 127.0.0.1: login and logout,
no session -> redirect or 401, agents kept out of admin pages, CSRF tokens and origins
required on every change, login rate limiting, the live WebSocket's auth, admins managing
agents, escaping of shopper text, and ``clerk agent add``."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator

import httpx
import pytest
from websockets.exceptions import ConnectionClosed, InvalidStatus
from websockets.sync.client import connect

from bot.handoff.agents import AgentAccounts
from bot.store.db import Database
from tests.conftest import fresh_database
from tests.live import Chat, LiveServer
from tests.test_handoff import PASSWORD, Agent

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


@pytest.fixture(scope="module")
def database_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with fresh_database("sqlite", tmp_path_factory.mktemp("console")) as url:
        yield url


@pytest.fixture(scope="module")
def server(database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from bot.app import build, create_app

    parts = build(bot_settings(database_url), encoder=shared_encoder)
    accounts = AgentAccounts(parts.db)
    accounts.add("ana", PASSWORD, "agent")
    accounts.add("root", PASSWORD, "admin")
    with LiveServer(create_app(parts)) as live:
        live.parts = parts  # type: ignore[attr-defined]
        yield live


@pytest.fixture(scope="module")
def ana(server: LiveServer) -> Agent:
    return Agent(server.url, "ana")


@pytest.fixture(scope="module")
def root(server: LiveServer) -> Agent:
    return Agent(server.url, "root")


def anonymous(server: LiveServer) -> httpx.Client:
    return httpx.Client(base_url=server.url, timeout=10, follow_redirects=False)


def test_without_a_session_pages_redirect_and_the_api_answers_401(server: LiveServer) -> None:
    http = anonymous(server)
    for page in (
        "/console",
        "/console/tickets?status=open",
        "/console/admin/agents",
        "/console/conversation?id=x",
    ):
        r = http.get(page)
        assert r.status_code == 303, page
        assert r.headers["location"].startswith("/console/login?next=")
    for path in ("queue", "conversation?id=x", "tickets", "me"):
        assert http.get(f"/console/api/{path}").status_code == 401
    assert http.post("/console/api/claim", json={"id": "x"}).status_code == 401
    assert http.post("/console/tickets/update", data={"id": "T-1"}).status_code == 303
    with (
        pytest.raises((InvalidStatus, ConnectionClosed)),
        connect(server.url.replace("http", "ws") + "/console/ws", proxy=None) as ws,
    ):
        ws.recv(timeout=5)
    # a forged cookie is no session either
    http.cookies.set("clerk_console", "forged-token", path="/console")
    assert http.get("/console/api/queue").status_code == 401


def test_login_checks_the_password_the_form_token_and_where_it_returns(server: LiveServer) -> None:
    http = anonymous(server)
    page = http.get("/console/login?next=/console/tickets")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    assert "default-src 'none'" in page.headers["content-security-policy"]
    wrong = http.post(
        "/console/login", data={"name": "ana", "password": "nope nope", "csrf_token": token}
    )
    assert wrong.status_code == 401 and "Wrong name or password" in wrong.text
    token = re.search(r'name="csrf_token" value="([^"]+)"', wrong.text).group(1)  # type: ignore[union-attr]
    no_token = anonymous(server).post("/console/login", data={"name": "ana", "password": PASSWORD})
    assert no_token.status_code == 403
    ok = http.post(
        "/console/login",
        data={"name": "ana", "password": PASSWORD, "csrf_token": token, "next": "/console/tickets"},
    )
    assert ok.status_code == 303 and ok.headers["location"] == "/console/tickets"
    cookie = ok.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    assert "Path=/console" in cookie
    assert http.get("/console/api/me").json() == {"name": "ana", "role": "agent"}


def test_an_open_redirect_after_login_is_refused(server: LiveServer) -> None:
    http = anonymous(server)
    token = re.search(
        r'name="csrf_token" value="([^"]+)"',  # type: ignore[union-attr]
        http.get("/console/login").text,
    ).group(1)
    r = http.post(
        "/console/login",
        data={"name": "ana", "password": PASSWORD, "csrf_token": token, "next": "//evil.example/x"},
    )
    assert r.headers["location"] == "/console"


def test_repeated_wrong_passwords_are_rate_limited(server: LiveServer) -> None:
    http = anonymous(server)
    codes = []
    for _ in range(7):
        token = re.search(
            r'name="csrf_token" value="([^"]+)"',  # type: ignore[union-attr]
            http.get("/console/login").text,
        ).group(1)
        codes.append(
            http.post(
                "/console/login",
                data={"name": "mallory", "password": "guess-guess", "csrf_token": token},
            ).status_code
        )
    assert codes[:5] == [401] * 5 and codes[5:] == [429, 429]


def test_logout_ends_the_session(server: LiveServer) -> None:
    agent = Agent(server.url, "ana")
    assert agent.http.post("/console/logout", data={}).status_code == 403  # CSRF needed
    r = agent.http.post("/console/logout", data={"csrf_token": agent.csrf})
    assert r.status_code == 303 and r.headers["location"] == "/console/login"
    assert agent.http.get("/console/api/queue").status_code == 401
    assert agent.http.get("/console").status_code == 303


def test_every_change_needs_the_csrf_token_and_our_origin(server: LiveServer, ana: Agent) -> None:
    chat = Chat(server.url)
    chat.text("I want to talk to a human")
    no_token = ana.http.post("/console/api/claim", json={"id": chat.conversation_id})
    assert no_token.status_code == 403 and "CSRF" in no_token.json()["error"]
    wrong = ana.http.post(
        "/console/api/claim", json={"id": chat.conversation_id}, headers={"X-CSRF-Token": "x" * 43}
    )
    assert wrong.status_code == 403
    cross = ana.http.post(
        "/console/api/claim",
        json={"id": chat.conversation_id},
        headers={"X-CSRF-Token": ana.csrf, "Origin": "https://evil.example"},
    )
    assert cross.status_code == 403
    form = ana.http.post("/console/tickets/update", data={"id": "T-000001", "status": "solved"})
    assert form.status_code == 403
    assert ana.entry(chat.conversation_id)["status"] == "requested"  # type: ignore[index]
    assert ana.post("claim", {"id": chat.conversation_id}).status_code == 200


def test_an_agent_cannot_reach_admin_pages(ana: Agent) -> None:
    assert ana.http.get("/console/admin/agents").status_code == 403
    r = ana.http.post(
        "/console/admin/agents",
        data={"csrf_token": ana.csrf, "name": "mallory", "password": "12345678", "role": "admin"},
    )
    assert r.status_code == 403
    assert (
        ana.http.post(
            "/console/admin/agents/update",
            data={"csrf_token": ana.csrf, "id": "1", "role": "admin"},
        ).status_code
        == 403
    )
    assert "/admin/agents" not in ana.http.get("/console").text  # no link either


def test_admins_manage_agents(server: LiveServer, root: Agent) -> None:
    page = root.http.get("/console/admin/agents")
    assert page.status_code == 200 and "ana" in page.text
    r = root.http.post(
        "/console/admin/agents",
        data={
            "csrf_token": root.csrf,
            "name": "cleo",
            "password": "cleo-secret-1",
            "role": "agent",
        },
    )
    assert r.status_code == 303
    cleo = Agent(server.url, "cleo", "cleo-secret-1")
    assert cleo.get("me")["role"] == "agent"
    dup = root.http.post(
        "/console/admin/agents",
        data={"csrf_token": root.csrf, "name": "cleo", "password": "another-one", "role": "agent"},
    )
    assert dup.status_code == 400 and "already exists" in dup.text
    accounts = AgentAccounts(server.parts.db)  # type: ignore[attr-defined]
    cleo_id = accounts.get("cleo").id  # type: ignore[union-attr]
    r = root.http.post(
        "/console/admin/agents/update",
        data={"csrf_token": root.csrf, "id": str(cleo_id), "role": "admin", "active": "1"},
    )
    assert r.status_code == 303 and cleo.get("me")["role"] == "admin"
    root.http.post(
        "/console/admin/agents/update",
        data={"csrf_token": root.csrf, "id": str(cleo_id), "role": "admin", "active": "0"},
    )
    assert cleo.http.get("/console/api/me").status_code == 401  # disabled: sessions end
    own = accounts.get("root").id  # type: ignore[union-attr]
    r = root.http.post(
        "/console/admin/agents/update",
        data={"csrf_token": root.csrf, "id": str(own), "role": "agent", "active": "1"},
    )
    assert r.status_code == 400 and accounts.get("root").role == "admin"  # type: ignore[union-attr]


def test_the_live_socket_reports_changes(server: LiveServer, ana: Agent) -> None:
    cookie = ana.http.cookies.get("clerk_console")
    url = server.url.replace("http", "ws") + "/console/ws"
    with pytest.raises(InvalidStatus):  # another site's page cannot open it
        connect(
            url,
            proxy=None,
            additional_headers={"Cookie": f"clerk_console={cookie}"},
            origin="https://evil.example",
        ).recv(timeout=5)
    with connect(
        url, proxy=None, additional_headers={"Cookie": f"clerk_console={cookie}"}, origin=server.url
    ) as ws:
        assert json.loads(ws.recv(timeout=10)) == {"type": "hello", "agent": "ana"}
        chat = Chat(server.url)
        chat.text("I want to talk to a human")
        change = json.loads(ws.recv(timeout=10))
        assert change["conversation"] == chat.conversation_id and change["status"] == "requested"
        assert "handoff:requested" in change["kinds"]


def test_shopper_text_is_escaped_in_pages(server: LiveServer, ana: Agent) -> None:
    chat = Chat(server.url)
    chat.text("I want to make a complaint")
    chat.text("no order")
    chat.text(f"my lamp is broken {XSS}")
    chat.text("ivan.santos3158@example.com")
    page = ana.http.get("/console/tickets").text
    assert "<script>alert(2)</script>" not in page and "<img src=x" not in page
    assert "&lt;script&gt;alert(2)&lt;/script&gt;" in page
    view = ana.http.get("/console/conversation", params={"id": XSS}).text
    assert "<script>alert(2)</script>" not in view and "&lt;img src=x" in view
    # the API hands the text over as data; the page script renders it with textContent
    transcript = ana.get("conversation", id=chat.conversation_id)["transcript"]
    assert any(XSS in (t.get("text") or "") for t in transcript)
    script = ana.http.get("/console/static/console.js").text
    assert "innerHTML" not in script and "insertAdjacentHTML" not in script


def test_clerk_agent_add(tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import main

    home = tmp_path / "home"
    monkeypatch.setattr("sys.stdin", io.StringIO("a-long-password\n"))
    assert (
        main(["--home", str(home), "agent", "add", "dana", "--role", "admin", "--password-stdin"])
        == 0
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["--home", str(home), "agent", "add", "eve", "--password-stdin"]) == 2
    db = Database(f"sqlite:///{home / 'clerk.db'}")
    try:
        accounts = AgentAccounts(db)
        assert [(a.name, a.role) for a in accounts.list()] == [("dana", "admin")]
        assert accounts.authenticate("dana", "a-long-password") is not None
        assert accounts.authenticate("dana", "wrong-password") is None
        with db.engine.connect() as conn:
            stored = conn.exec_driver_sql("SELECT password_hash FROM agents").scalar()
        assert str(stored).startswith("$argon2id$") and "a-long-password" not in str(stored)
    finally:
        db.dispose()
