"""Login throttling for the agent console that an attacker cannot turn into a lockout.

The rule (all counts are failed logins in the last ``window`` seconds, 5 minutes by default;
an address is ``bot.ratelimit.client_address`` grouped by ``address_bucket``):

- **address and name**: after ``pair_limit`` (5) failures for one name from one address,
  that address is refused (429) for that name, right password or not, until the oldest of
  them is ``window`` old.
- **address**: after ``address_limit`` (30) failures from one address, whatever the names,
  that address is refused for every name (password spraying).
- **name**, over all addresses: never refused. From ``slow_after`` (10) failures on, every
  attempt for that name waits ``step`` seconds more per failure beyond it, at most
  ``max_delay`` (3 s), before its password is checked, whatever the password. A right
  password from an address that is not refused always logs in.

So a lockout only ever holds the addresses that failed; the agent's own address still
gets in, at worst a few seconds later.

An attempt is counted as a failure when it is admitted, before the password is checked,
so concurrent attempts cannot slip past a limit; ``succeeded`` takes it back and clears
the address-and-name count. Refused attempts are not counted: hammering does not extend
a lock. Counts live in this process's memory (bounded, least recently used forgotten):
with several worker processes each counts on its own.

The counting is ``bot.ratelimit.RateLimiter``'s sliding log, the one the chat channels'
message limits use; this module adds only the rule above. It does not go through
``MessageLimits`` (nor its Redis backend) because that interface answers one question for
one key ("count one, or how long to wait"), while an admission must look at two windows
before counting in either, read the name's count for the delay, and take a failure back on
success (``retry_after``, ``count``, ``undo``, ``forget``).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from bot.ratelimit import RateLimiter

NAME_KEY_CHARS = 65  # agent names are at most 64 characters: longer ones never match


@dataclass(frozen=True)
class Admission:
    """``retry_after`` > 0: refused, try again in that many seconds (nothing counted).
    Otherwise admitted (and counted as a failure until ``succeeded``) after waiting
    ``delay`` seconds."""

    retry_after: float = 0.0
    delay: float = 0.0


class LoginThrottle:
    def __init__(
        self,
        *,
        pair_limit: int = 5,
        address_limit: int = 30,
        slow_after: int = 10,
        step: float = 0.25,
        max_delay: float = 3.0,
        window: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.slow_after = slow_after
        self.step = step
        self.max_delay = max_delay
        self._pairs = RateLimiter(pair_limit, window, clock)
        self._addresses = RateLimiter(address_limit, window, clock)
        self._names = RateLimiter(2**62, window, clock)  # counts only, never refuses

    @staticmethod
    def _keys(address: str, name: str) -> tuple[str, str]:
        name_key = name.strip().lower()[:NAME_KEY_CHARS]
        return f"{address}\n{name_key}", name_key

    def admit(self, address: str, name: str) -> Admission:
        """Whether a login attempt for ``name`` from ``address`` may have its password
        checked, and after what delay. An admitted attempt counts as a failure until
        ``succeeded(address, name)``."""
        pair, name_key = self._keys(address, name)
        refused = max(self._pairs.retry_after(pair), self._addresses.retry_after(address))
        if refused > 0:
            return Admission(retry_after=refused)
        self._pairs.check(pair)
        self._addresses.check(address)
        earlier = self._names.count(name_key)
        self._names.check(name_key)
        beyond = earlier - self.slow_after + 1
        delay = min(self.max_delay, self.step * beyond) if beyond > 0 else 0.0
        return Admission(delay=delay)

    def succeeded(self, address: str, name: str) -> None:
        """The admitted attempt logged in: it was no failure, and the address-and-name
        count starts again."""
        pair, name_key = self._keys(address, name)
        self._pairs.forget(pair)
        self._addresses.undo(address)
        self._names.undo(name_key)
