"""Failed-login throttling (pure logic, a hand-driven clock)."""

from __future__ import annotations

from cloud.auth.throttle import LoginThrottle, ThrottleConfig


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def make(**kw) -> tuple[LoginThrottle, Clock]:
    clock = Clock()
    cfg = ThrottleConfig(**{"max_failures_per_user": 3, "max_failures_per_address": 5, "window_s": 60.0, **kw})
    return LoginThrottle(cfg, clock), clock


def test_user_locked_after_limit_until_window_passes():
    t, clock = make()
    for _ in range(3):
        assert t.check("wang", "10.0.0.1") is None
        t.failed("wang", "10.0.0.1")
        clock.t += 10
    locked = t.check("Wang", "10.0.0.2")  # another address, same user (case-insensitive)
    assert locked is not None and locked.scope == "user"
    assert locked.retry_after_s == 30  # now t=1030; the first failure (t=1000) leaves the window at t=1060
    clock.t = 1060.5
    assert t.check("wang", "10.0.0.2") is None


def test_address_locked_across_usernames_and_success_clears_only_the_user():
    t, _clock = make()
    for i in range(5):
        t.failed(f"user{i}", "10.0.0.9")
    locked = t.check("someone", "10.0.0.9")
    assert locked is not None and locked.scope == "address"
    assert t.check("someone", "10.0.0.10") is None
    t.failed("li", "10.0.0.11")
    t.failed("li", "10.0.0.11")
    t.succeeded("li")
    t.failed("li", "10.0.0.11")
    assert t.check("li", "10.0.0.12") is None  # the count restarted at the good password


def test_memory_stays_bounded():
    t, clock = make(max_keys=100)
    for i in range(1000):
        t.failed(f"u{i}", f"a{i}")
        clock.t += 0.01
    assert len(t._failures) <= 100
