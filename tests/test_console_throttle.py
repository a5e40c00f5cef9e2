"""Console login throttling that can be neither dodged nor turned against an agent, through
Clerk's app under the production server config on 127.0.0.1, on SQLite and PostgreSQL.

Clients connect from distinct loopback addresses (127.0.0.x as the socket's source), so the
server sees real, different peers: 127.0.0.2 is the configured trusted proxy, every other
address is an ordinary client, 127.0.0.1 included (uvicorn itself would believe its
X-Forwarded-For unless ``server_config`` turned that off). The rule itself (``LoginThrottle``) is also checked on a
fake clock."""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterator

import httpx
import pytest

from bot.handoff.agents import AgentAccounts
from bot.ratelimit import parse_networks
from bot.server import HttpLimits, server_config
from bot.web.console.throttle import LoginThrottle
from tests.live import LiveServer
from tests.test_http_limits import wait_closed

PASSWORD = "correct horse battery"
PROXY = "127.0.0.2"
AGENTS = ("ana", "bea", "cy", "dee", "eve")
TOKEN = re.compile(r'name="csrf_token" value="([^"]+)"')


# --------------------------------------------------------------------------- the rule


def test_the_rule_on_a_fake_clock() -> None:
    now = [0.0]
    throttle = LoginThrottle(
        pair_limit=3,
        address_limit=5,
        slow_after=4,
        step=0.5,
        max_delay=1.0,
        window=60,
        clock=lambda: now[0],
    )
    # address and name: three failures, then that address is refused for that name only
    assert [throttle.admit("A", "ana").retry_after for _ in range(3)] == [0, 0, 0]
    assert throttle.admit("A", "ANA ").retry_after == pytest.approx(60)  # case, spaces
    assert throttle.admit("A", "bea").retry_after == 0
    assert throttle.admit("B", "ana").retry_after == 0
    # the name, from everywhere: slowed down from the 4th failure on, never refused
    assert throttle.admit("C", "ana").delay == pytest.approx(0.5)  # 5th
    assert throttle.admit("D", "ana").delay == pytest.approx(1.0)  # 6th: capped
    assert throttle.admit("E", "ana").delay == pytest.approx(1.0)
    throttle.succeeded("E", "ana")  # the agent got in: that attempt was no failure
    # address: five failures, whatever the names, refuse everything from it
    for name in ("x1", "x2", "x3"):
        throttle.admit("A", name)
    assert throttle.admit("A", "x4").retry_after > 0
    assert throttle.admit("B", "x4").retry_after == 0
    # refused attempts are not counted; the window slides
    now[0] = 59.0
    assert throttle.admit("A", "ana").retry_after == pytest.approx(1.0)
    now[0] = 60.5
    assert throttle.admit("A", "ana").retry_after == 0


def test_a_success_clears_the_address_and_name_count() -> None:
    throttle = LoginThrottle(pair_limit=3, clock=lambda: 0.0)
    throttle.admit("A", "ana")
    throttle.admit("A", "ana")
    throttle.succeeded("A", "ana")
    assert [throttle.admit("A", "ana").retry_after for _ in range(3)] == [0, 0, 0]
    assert throttle.admit("A", "ana").retry_after > 0


# --------------------------------------------------------------------------- the real app


@pytest.fixture(scope="module")
def server(module_database_url: str, bot_settings, shared_encoder) -> Iterator[LiveServer]:  # type: ignore[no-untyped-def]
    from bot.app import build, create_app

    settings = bot_settings(module_database_url, trusted_proxies=parse_networks(PROXY))
    parts = build(settings, encoder=shared_encoder)
    accounts = AgentAccounts(parts.db)
    for name in AGENTS:
        accounts.add(name, PASSWORD, "agent")
    app = create_app(parts)
    options = server_config(
        app, host="127.0.0.1", port=0, limits=HttpLimits(header_timeout=1.0, body_timeout=1.0)
    )
    with LiveServer(app, options=options) as live:
        yield live
    parts.db.dispose()


class Browser:
    """A client at one loopback address, logging in to the console's form."""

    def __init__(self, server: LiveServer, address: str) -> None:
        self.http = httpx.Client(
            base_url=server.url,
            timeout=30,
            follow_redirects=False,
            transport=httpx.HTTPTransport(local_address=address),
        )

    def login(self, name: str, password: str, forwarded_for: str | None = None) -> httpx.Response:
        token = TOKEN.search(self.http.get("/console/login").text).group(1)  # type: ignore[union-attr]
        headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
        return self.http.post(
            "/console/login",
            headers=headers,
            data={"name": name, "password": password, "csrf_token": token},
        )


async def attack(server: LiveServer, address: str, name: str, tries: int) -> list[int]:
    """``tries`` wrong passwords for ``name`` from ``address``, one after another."""
    codes = []
    transport = httpx.AsyncHTTPTransport(local_address=address)
    async with httpx.AsyncClient(base_url=server.url, timeout=30, transport=transport) as http:
        for n in range(tries):
            page = await http.get("/console/login")
            token = TOKEN.search(page.text).group(1)  # type: ignore[union-attr]
            r = await http.post(
                "/console/login", data={"name": name, "password": f"guess {n}", "csrf_token": token}
            )
            codes.append(r.status_code)
    return codes


def assert_throttled(r: httpx.Response) -> None:
    assert r.status_code == 429 and "Too many failed logins" in r.text
    assert 1 <= int(r.headers["retry-after"]) <= 300


def test_a_forged_forwarded_for_does_not_dodge_the_limit(server: LiveServer) -> None:
    mallory = Browser(server, "127.0.0.1")  # the peer uvicorn would trust by default
    codes = [
        mallory.login("ana", "guess", forwarded_for=f"203.0.113.{n}").status_code for n in range(6)
    ]
    assert codes == [401] * 5 + [429]
    # still refused, right password and yet another forged header included
    assert_throttled(mallory.login("ana", PASSWORD, forwarded_for="198.51.100.99"))
    # ... and only there: ana at her own address logs in
    assert Browser(server, "127.0.0.4").login("ana", PASSWORD).status_code == 303


def test_a_trusted_proxy_names_the_client(server: LiveServer) -> None:
    proxy = Browser(server, PROXY)
    codes = [
        proxy.login("bea", "guess", forwarded_for="198.51.100.1").status_code for _ in range(6)
    ]
    assert codes == [401] * 5 + [429]
    # the client forges a left entry; the proxy's own (rightmost) entry counts
    assert_throttled(proxy.login("bea", PASSWORD, forwarded_for="198.51.100.7, 198.51.100.1"))
    # another client behind the same proxy, and the proxy itself, are not held
    assert proxy.login("bea", PASSWORD, forwarded_for="198.51.100.2").status_code == 303
    assert Browser(server, PROXY).login("bea", PASSWORD).status_code == 303


def test_failures_from_many_addresses_only_slow_the_agent_down(server: LiveServer) -> None:
    async def attackers() -> list[list[int]]:
        return await asyncio.gather(
            *(attack(server, f"127.0.0.{n}", "cy", 6) for n in (10, 11, 12))
        )

    for codes in asyncio.run(attackers()):
        assert codes == [401] * 5 + [429]
    assert_throttled(Browser(server, "127.0.0.10").login("cy", PASSWORD))
    started = time.monotonic()
    assert Browser(server, "127.0.0.20").login("cy", PASSWORD).status_code == 303
    slowed = time.monotonic() - started
    assert 1.0 <= slowed < 15  # 15 failures: the 16th attempt waits 1.5 s, then gets in


def test_an_address_spraying_many_names_is_refused_for_all(server: LiveServer) -> None:
    sprayer = Browser(server, "127.0.0.30")
    codes = [sprayer.login(f"nobody{n}", "guess").status_code for n in range(30)]
    assert codes == [401] * 30
    assert_throttled(sprayer.login("dee", PASSWORD))
    assert Browser(server, "127.0.0.31").login("dee", PASSWORD).status_code == 303


def test_clerks_app_closes_a_half_sent_request(server: LiveServer) -> None:
    import socket

    sock = socket.create_connection(("127.0.0.1", server.port), timeout=5)
    try:
        sock.sendall(b"POST /console/login HTTP/1.1\r\nHost: x\r\n")
        closed, received = wait_closed([sock], 1.0 + 2.0)
        assert sock in closed and received[sock].startswith(b"HTTP/1.1 408 ")
    finally:
        sock.close()
