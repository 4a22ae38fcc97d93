"""Declarative event conditions: evaluation and a small state machine with ``for`` durations.

No ``eval``: a condition is data (see :class:`device_profiles.schema.Condition`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from contract.messages import Scalar
from device_profiles.compiled import ConcreteEvent
from device_profiles.schema import Condition


def _num(value: Scalar) -> float | None:
    if isinstance(value, bool):
        return float(value)
    if isinstance(value, int | float):
        return float(value)
    return None


def _compare(op: str, value: Scalar, operand: object) -> bool:
    if op == "eq":
        return value == operand
    if op == "ne":
        return value != operand
    if op == "in":
        return value in operand  # type: ignore[operator]
    if op == "not_in":
        return value not in operand  # type: ignore[operator]
    if op in ("bit_set", "bit_clear"):
        if isinstance(value, bool) or not isinstance(value, int):
            return False
        is_set = bool((value >> int(operand)) & 1)  # type: ignore[call-overload]
        return is_set if op == "bit_set" else not is_set
    num = _num(value)
    if num is None:
        return False
    limit = float(operand)  # type: ignore[arg-type]
    return {"gt": num > limit, "ge": num >= limit, "lt": num < limit, "le": num <= limit}[op]


def evaluate(cond: Condition, values: Mapping[str, Scalar]) -> bool | None:
    """True/False, or None when a point it needs has no value yet (unknown is neither)."""
    if cond.all is not None:
        results = [evaluate(c, values) for c in cond.all]
        if any(r is False for r in results):
            return False
        return None if any(r is None for r in results) else True
    if cond.any is not None:
        results = [evaluate(c, values) for c in cond.any]
        if any(r is True for r in results):
            return True
        return None if any(r is None for r in results) else False
    assert cond.point is not None
    if cond.point not in values:
        return None
    (op, operand), = cond.ops().items()
    return _compare(op, values[cond.point], operand)


@dataclass(frozen=True, slots=True)
class Transition:
    event: ConcreteEvent
    active: bool
    at: float


@dataclass(slots=True)
class _State:
    active: bool = False
    raise_since: float | None = None
    clear_since: float | None = None


class EventTracker:
    """Raises and clears stateful events as point values change, honouring ``for`` and ``clear_for``.

    Times are plain seconds (monotonic or epoch, the caller's choice) so tests drive it directly.
    """

    def __init__(self, events: Iterable[ConcreteEvent]) -> None:
        self._events = [e for e in events if e.when is not None]
        self._state: dict[str, _State] = {e.key: _State() for e in self._events}

    def active(self) -> list[ConcreteEvent]:
        return [e for e in self._events if self._state[e.key].active]

    def restore(self, keys: Iterable[str]) -> list[str]:
        """Mark as active events raised before a restart (no transition: their raise went out already); the
        next updates clear those whose condition no longer holds, with ``clear`` / ``clear_for`` as usual.
        Returns the keys that are not stateful events of this tracker (e.g. the profile changed)."""
        unknown: list[str] = []
        for key in keys:
            st = self._state.get(key)
            if st is None:
                unknown.append(key)
            else:
                st.active, st.raise_since, st.clear_since = True, None, None
        return unknown

    def update(self, values: Mapping[str, Scalar], now: float) -> list[Transition]:
        out: list[Transition] = []
        for e in self._events:
            st = self._state[e.key]
            assert e.when is not None
            if not st.active:
                holds = evaluate(e.when, values)
                if holds:
                    st.raise_since = now if st.raise_since is None else st.raise_since
                    if now - st.raise_since >= e.for_s:
                        st.active, st.raise_since, st.clear_since = True, None, None
                        out.append(Transition(e, True, now))
                elif holds is False:
                    st.raise_since = None
            else:
                cleared = evaluate(e.clear, values) if e.clear is not None else _negate(evaluate(e.when, values))
                if cleared:
                    st.clear_since = now if st.clear_since is None else st.clear_since
                    if now - st.clear_since >= e.clear_for_s:
                        st.active, st.clear_since = False, None
                        out.append(Transition(e, False, now))
                elif cleared is False:
                    st.clear_since = None
        return out


def _negate(value: bool | None) -> bool | None:
    return None if value is None else not value
