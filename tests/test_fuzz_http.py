"""Schemathesis fuzzes the HTTP API through the OpenAPI document a real server on 127.0.0.1
serves (``GET /openapi.json``): requests that fit the schema and requests that break it
(mode "all"), with the coverage phase's boundary cases. Every response must be a non-5xx
that the document describes (status, content type, body schema); a request that breaks the
schema must be refused with a 4xx; and nothing may reach the log as a traceback. The
console's operations run logged in (session cookie and CSRF token of a real agent).
Afterwards no stored conversation event holds a NUL or a lone surrogate.

SQLite and PostgreSQL (a fresh database each, module-scoped)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import checks
from schemathesis.config import SchemathesisConfig

from bot.handoff.agents import AgentAccounts
from bot.store.db import Database
from tests.conftest import ROOT, fresh_database
from tests.guards import TracebackWatch, half_written, watch_tracebacks
from tests.live import LiveServer, bot_server
from tests.test_handoff import PASSWORD, Agent

pytestmark = pytest.mark.slow  # about 30-50 s per database on 2 busy cores

MAX_EXAMPLES = 30  # per operation, on top of the coverage phase's boundary cases

CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
    checks.negative_data_rejection,
]


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]
)
def database_url(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """SQLite, and PostgreSQL (the whole fuzz again)."""
    with fresh_database(request.param, tmp_path_factory.mktemp("fuzz")) as url:
        yield url


@pytest.fixture(scope="module")
def server(database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]

    with bot_server(bot_settings(database_url), shared_encoder) as live:
        AgentAccounts(live.parts.db).add("fuzz", PASSWORD, "agent")  # type: ignore[attr-defined]
        yield live


@pytest.fixture(scope="module")
def watch(server: LiveServer) -> Iterator[TracebackWatch]:
    """One watch over the whole run; the last test reads it and the database."""
    with watch_tracebacks() as w:
        yield w


@pytest.fixture(scope="module")
def agent(server: LiveServer) -> Agent:
    return Agent(server.url, "fuzz")


@pytest.fixture(scope="module")
def http(agent: Agent) -> Iterator[requests.Session]:
    """One keep-alive session, logged in to the console."""
    session = requests.Session()
    for cookie in agent.http.cookies.jar:
        session.cookies.set(cookie.name, cookie.value, path=cookie.path)
    session.headers["X-CSRF-Token"] = agent.csrf
    yield session
    session.close()


@pytest.fixture(scope="module")
def api_schema(server: LiveServer) -> Any:
    config = SchemathesisConfig.from_dict(
        {
            "generation": {
                "mode": "all",
                "max-examples": MAX_EXAMPLES,
                "with-security-parameters": False,
                "database": "none",
            },
            "phases": {"examples": {"enabled": False}, "stateful": {"enabled": False}},
            # a string longer than the body limit is refused as a whole body: 413
            "checks": {
                "negative_data_rejection": {"expected-statuses": [400, 401, 403, 404, 409, 413]}
            },
        }
    )
    return schemathesis.openapi.from_url(f"{server.url}/openapi.json", config=config)


schema = schemathesis.pytest.from_fixture("api_schema")


@schema.parametrize()
@settings(deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_the_api_never_errs(
    case: Any, server: LiveServer, http: requests.Session, watch: TracebackWatch
) -> None:
    response = case.call(base_url=server.url, session=http, timeout=60)
    case.validate_response(response, checks=CHECKS)
    assert not watch.problems, watch.problems[:3]


# Schemathesis never sends a lone surrogate (it keeps strings encodable). These requests do,
# through JSON's \ud800 escapes, with NUL and control characters: a well-formed body with
# one field replaced, so each probe reaches that field's check (and past it, when allowed).
ODD = st.sampled_from(
    [
        "\ud800",
        "\udfff",
        "\udc00x",
        "\x00",
        "\x1b",
        "\x07",
        "\x0b",
        "\n",
        "\t",
        " ",
        "é",
        "😀",
        "/greet",
        '{"a":',
        "0",
    ]
)
TEXTS = st.lists(st.one_of(ODD, st.text(max_size=3)), min_size=1, max_size=5).map("".join)
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXTS,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXTS, inner, max_size=3),
    max_leaves=6,
)
ODD_VALUE = st.one_of(TEXTS, TEXTS, TEXTS, VALUES)  # mostly strings: the interesting case
PRODUCT = next(iter(json.loads((ROOT / "knowledge" / "catalog" / "products.json").read_text())))
BASES: dict[str, dict[str, Any]] = {
    "/webhooks/rest/webhook": {
        "sender": "odd-1",
        "message": "hello",
        "metadata": {"message_id": "m-1"},
    },
    "/model/parse": {"text": "hello"},
    "/api/copy": {"product_id": PRODUCT, "audience": "runners", "tone": "bold", "n": 1},
    "/console/api/claim": {"id": "odd-1"},
    "/console/api/message": {"id": "odd-1", "text": "hello"},
    "/console/api/note": {"id": "odd-1", "text": "hello"},
    "/console/api/return": {"id": "odd-1", "slots": {"order_id": "#W1"}},
    "/console/api/close": {"id": "odd-1", "resolution": "done"},
    "/console/api/ticket": {
        "id": "T-000001",
        "status": "open",
        "priority": "low",
        "assignee": "me",
    },
}


@st.composite
def odd_request(draw: st.DrawFn) -> tuple[str, bytes]:
    path = draw(st.sampled_from(sorted(BASES)))
    body = json.loads(json.dumps(BASES[path]))
    field = draw(st.sampled_from(sorted(body)))
    body[field] = draw(ODD_VALUE)
    if isinstance(BASES[path][field], dict) and draw(st.booleans()):  # one level down
        key = next(iter(BASES[path][field]))
        body[field] = {key: draw(ODD_VALUE)}
    return path, json.dumps(body).encode()  # ensure_ascii: a lone surrogate as \ud800


@given(request=odd_request())
@settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
def test_odd_strings_in_any_field_get_4xx_or_200(
    request: tuple[str, bytes], agent: Agent, watch: TracebackWatch
) -> None:
    path, raw = request
    r = agent.http.post(
        path, content=raw, headers={"X-CSRF-Token": agent.csrf, "content-type": "application/json"}
    )
    assert r.status_code in (200, 400, 404, 409), (path, raw[:300], r.status_code, r.text[:300])
    if r.status_code != 200:
        assert isinstance(r.json()["error"], str)
    assert not watch.problems, watch.problems[:3]


def test_nothing_was_half_written_and_nothing_logged(
    server: LiveServer, watch: TracebackWatch, database_url: str
) -> None:
    time.sleep(0.2)  # the last requests' log lines
    watch.assert_clean()
    db = Database(database_url)
    try:
        assert half_written(db) == []
    finally:
        db.dispose()
