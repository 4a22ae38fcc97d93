"""Failed-login throttling: too many wrong passwords for one user, or from one address, locks it out a while.

A sliding window per key: after ``max_failures`` failures within ``window_s`` the key is refused until the
oldest of them leaves the window (the caller answers 429 with ``Retry-After``). A locked key is refused
*before* the password is checked, so guessing costs the attacker the wait and the server no hashing.
Counts live in the API process (one ``xiaoqu cloud serve``); a restart forgets them.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import Field

from contract.base import StrictModel


class ThrottleConfig(StrictModel):
    max_failures_per_user: int = Field(default=5, ge=1, description="wrong passwords per username per window")
    max_failures_per_address: int = Field(default=20, ge=1, description="wrong passwords per client address")
    window_s: float = Field(default=300.0, gt=0, description="sliding window (and longest lock-out), seconds")
    max_keys: int = Field(default=100_000, ge=100, description="tracked users + addresses (memory bound)")


@dataclass
class Locked:
    """Who is locked (``'user'`` or ``'address'``) and for how many more seconds."""

    scope: str
    retry_after_s: int


@dataclass
class LoginThrottle:
    config: ThrottleConfig = field(default_factory=ThrottleConfig)
    clock: Callable[[], float] = time.monotonic
    _failures: dict[tuple[str, str], deque[float]] = field(default_factory=dict)

    @staticmethod
    def _user_key(username: str) -> tuple[str, str]:
        return ("user", username.strip().casefold())

    def _limit(self, key: tuple[str, str]) -> int:
        c = self.config
        return c.max_failures_per_user if key[0] == "user" else c.max_failures_per_address

    def _recent(self, key: tuple[str, str], now: float) -> deque[float]:
        q = self._failures.get(key)
        if q is None:
            return deque()
        while q and q[0] <= now - self.config.window_s:
            q.popleft()
        if not q:
            del self._failures[key]
        return q

    def check(self, username: str, address: str) -> Locked | None:
        """None when a login attempt may proceed; else who is locked and for how long."""
        now = self.clock()
        worst: Locked | None = None
        for key in (self._user_key(username), ("address", address)):
            q = self._recent(key, now)
            if len(q) >= self._limit(key):
                # Free again when the failure that makes the count reach the limit leaves the window.
                until = q[len(q) - self._limit(key)] + self.config.window_s
                wait = max(1, math.ceil(until - now))
                if worst is None or wait > worst.retry_after_s:
                    worst = Locked(key[0], wait)
        return worst

    def failed(self, username: str, address: str) -> None:
        now = self.clock()
        if len(self._failures) >= self.config.max_keys:
            self._prune(now)
        for key in (self._user_key(username), ("address", address)):
            q = self._failures.setdefault(key, deque())
            q.append(now)
            while len(q) > self._limit(key):
                q.popleft()

    def succeeded(self, username: str) -> None:
        """A right password clears the user's count (not the address's: one good account must not launder it)."""
        self._failures.pop(self._user_key(username), None)

    def _prune(self, now: float) -> None:
        for key in list(self._failures):
            self._recent(key, now)
        if len(self._failures) >= self.config.max_keys:  # still full of live keys: drop the oldest half
            by_age = sorted(self._failures, key=lambda k: self._failures[k][-1])
            for key in by_age[: len(by_age) // 2]:
                del self._failures[key]
