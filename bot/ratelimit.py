"""Rate limiting shared by the channels and the console: one sliding-log counter, and who a
request comes from.

``client_address`` decides whom to hold responsible for a request: the socket peer, or, only
when that peer is a configured trusted proxy, the nearest untrusted hop its
``X-Forwarded-For`` names. ``address_bucket`` groups addresses one party controls (an IPv6
/64).

The window is one algorithm, a sliding log: at most ``limit`` events per key in any
``window`` seconds; an event is refused while ``limit`` stamps lie within the window,
answering the seconds until the oldest of them leaves it (at least 0.05). It has two
backends and no third:

- ``RateLimiter``: this process's memory (bounded, least recently used keys forgotten).
- ``_SLIDING_LOG``: the same rule as one atomic Redis script (a sorted set of stamps per
  key, Redis's clock), so every worker counts against one limit.

Two jobs use it, through two interfaces because they ask different questions:

- **Chat messages** (``MessageLimits``: ``LocalMessageLimits``, ``RedisMessageLimits``),
  for the widget and Socket.IO: "count one message for this session, or say how long to
  wait". One key, one question, asked on the event loop and, with Redis, of every worker
  at once: hence async, and a Redis backend.
- **Console logins** (``bot.web.console.throttle.LoginThrottle``): a policy over three
  ``RateLimiter`` windows (address and name, address, name) that needs more than "count
  one": peek at two windows before counting in any (``retry_after``), read a count to
  compute a delay (``count``), and take a failure back when the password was right
  (``undo``, ``forget``). It is a rule built on this counter, not a second counter; it
  counts in each worker's memory, as its docstring says.

This module imports nothing of ``bot``: it sits in the lowest layer with ``types``.
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from typing import Protocol

log = logging.getLogger(__name__)

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address

MAX_KEYS = 10_000


# --------------------------------------------------------------------------- addresses


def parse_networks(items: str | Iterable[str]) -> tuple[Network, ...]:
    """IP addresses and CIDR networks, comma-separated or listed (``"10.0.0.1, 10.1.0.0/16"``);
    a bare address is a network of one. Raises ``ValueError`` naming a malformed item."""
    parts = items.split(",") if isinstance(items, str) else list(items)
    networks: list[Network] = []
    for raw in parts:
        text = str(raw).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError as exc:
            raise ValueError(f"not an IP address or network: {text!r}") from exc
    return tuple(networks)


def _address(text: str) -> Address | None:
    """An address as a peer or a proxy writes it (``1.2.3.4``, ``1.2.3.4:80``, ``[::1]:80``,
    ``::ffff:1.2.3.4``), IPv4-mapped IPv6 as IPv4; ``None`` when it is not an address."""
    text = text.strip().strip('"')
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # IPv4 with a port
        text = text.split(":", 1)[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def _trusted(address: Address, proxies: Iterable[Network]) -> bool:
    return any(address.version == net.version and address in net for net in proxies)


def client_address(
    peer: str | None, forwarded_for: Iterable[str] = (), trusted_proxies: Iterable[Network] = ()
) -> str:
    """The address responsible for a request.

    ``peer``: the socket peer's host (the ASGI scope's ``client``, as the server saw it, not
    rewritten from headers); ``forwarded_for``: the request's ``X-Forwarded-For`` header
    values in order; ``trusted_proxies``: the proxies whose header is believed.

    Rule: a peer that is not a trusted proxy is the client, whatever headers it sends. For a
    trusted peer the header's hops are read from the right (each proxy appends the address
    it received from); trusted hops are skipped and the first untrusted one is the client.
    When a hop is not an address, or the header is missing or all trusted, the answer is the
    last hop that could be vouched for (possibly the peer itself). A peer that is not an IP
    address (a Unix socket, a test client) is returned as it is; ``""`` for none.
    """
    if not peer:
        return ""
    proxies = tuple(trusted_proxies)
    current = _address(peer)
    if current is None:
        return peer
    hops = [h for value in forwarded_for for h in value.split(",") if h.strip()]
    while _trusted(current, proxies) and hops:
        hop = _address(hops.pop())
        if hop is None:
            break
        current = hop
    return str(current)


def address_bucket(address: str) -> str:
    """The key to count an address under: an IPv4 address itself, an IPv6 address's /64
    (one subscriber holds a whole /64, so counting single addresses could be dodged by
    rotating through it). Anything else unchanged."""
    parsed = _address(address)
    if isinstance(parsed, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((parsed, 64), strict=False))
    return str(parsed) if parsed is not None else address


# --------------------------------------------------------------------------- counting


class RateLimiter:
    """At most ``limit`` events per key in any ``window`` seconds (the sliding log, in
    memory; ``_SLIDING_LOG`` is the same rule in Redis).

    State is this process's memory: at most ``max_keys`` keys, the least recently used
    forgotten first; each key holds at most ``limit`` timestamps. With several worker
    processes each counts on its own. Not thread-safe: use it from one event loop."""

    def __init__(
        self,
        limit: int,
        window: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        max_keys: int = MAX_KEYS,
    ) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
        self._log: OrderedDict[str, deque[float]] = OrderedDict()

    def _stamps(self, key: str, now: float, create: bool) -> deque[float] | None:
        stamps = self._log.get(key)
        if stamps is None:
            if not create:
                return None
            stamps = self._log[key] = deque()
            while len(self._log) > self.max_keys:
                self._log.popitem(last=False)
        self._log.move_to_end(key)
        while stamps and now - stamps[0] >= self.window:
            stamps.popleft()
        return stamps

    def check(self, key: str) -> float:
        """0 when allowed (and counted); otherwise the seconds until the next is allowed."""
        now = self.clock()
        stamps = self._stamps(key, now, create=True)
        assert stamps is not None
        if len(stamps) >= self.limit:
            return max(0.05, self.window - (now - stamps[0]))
        stamps.append(now)
        return 0.0

    def retry_after(self, key: str) -> float:
        """What ``check`` would answer, without counting anything."""
        now = self.clock()
        stamps = self._stamps(key, now, create=False)
        if stamps is None or len(stamps) < self.limit:
            return 0.0
        return max(0.05, self.window - (now - stamps[0]))

    def count(self, key: str) -> int:
        """The events counted for ``key`` in the current window."""
        stamps = self._stamps(key, self.clock(), create=False)
        return len(stamps) if stamps is not None else 0

    def undo(self, key: str) -> None:
        """Take back the newest event counted for ``key`` (one that turned out not to
        count, such as a login attempt that succeeded)."""
        stamps = self._log.get(key)
        if stamps:
            stamps.pop()

    def forget(self, key: str) -> None:
        """Drop everything counted for ``key``."""
        self._log.pop(key, None)


# --------------------------------------------------------------------------- shoppers' messages


class MessageLimits(Protocol):
    """How many messages a chat session may send: ``check(key)`` counts one and answers 0,
    or answers the seconds until the next is allowed (nothing counted)."""

    async def check(self, key: str) -> float: ...


class LocalMessageLimits:
    """``limit`` messages per ``window`` seconds per key, counted in this process by a
    ``RateLimiter``."""

    def __init__(self, limit: int, window: float = 60.0) -> None:
        self._counter = RateLimiter(limit, window)

    async def check(self, key: str) -> float:
        return self._counter.check(key)


_SLIDING_LOG = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local window = tonumber(ARGV[1])
local limit = tonumber(ARGV[2])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now - window)
if redis.call('ZCARD', KEYS[1]) >= limit then
  local oldest = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
  return tostring(math.max(0.05, window - (now - tonumber(oldest[2]))))
end
redis.call('ZADD', KEYS[1], now, ARGV[3])
redis.call('PEXPIRE', KEYS[1], math.ceil(window * 1000))
return '0'
"""


class RedisMessageLimits:
    """``RateLimiter``'s sliding log kept in Redis, so that every worker counts against one
    limit (one atomic script per message, on Redis's clock, so hosts' clocks need not
    agree). If Redis cannot be reached the worker counts on its own until it can (logged),
    rather than refusing every shopper."""

    def __init__(
        self, url: str, limit: int, window: float = 60.0, prefix: str = "clerk:limit:"
    ) -> None:
        import redis.asyncio as aioredis

        self._redis = aioredis.from_url(url)
        self._script = self._redis.register_script(_SLIDING_LOG)
        self.limit = limit
        self.window = window
        self.prefix = prefix
        self._fallback = LocalMessageLimits(limit, window)

    async def check(self, key: str) -> float:
        try:
            wait = await self._script(
                keys=[self.prefix + key], args=[self.window, self.limit, secrets.token_hex(8)]
            )
        except Exception:
            log.warning("Redis rate limit unavailable; counting in this worker", exc_info=True)
            return await self._fallback.check(key)
        return float(wait)
