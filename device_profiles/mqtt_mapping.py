"""MQTT point mapping: topic templates and a small JSON path subset (``$.a.b[0].c``)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from contract.messages import Scalar

_STEP = re.compile(r"\.([A-Za-z_][A-Za-z0-9_]*)|\[(\d+)\]|\[['\"]([^'\"]+)['\"]\]")


class PathError(ValueError):
    """A JSON path outside the supported subset."""


class Missing(LookupError):
    """The payload has nothing at that path."""


@lru_cache(maxsize=1024)
def parse_path(path: str) -> tuple[str | int, ...]:
    """``$.radio.rssi`` → ('radio', 'rssi'); ``$.items[0]`` → ('items', 0)."""
    if not path.startswith("$"):
        raise PathError(f"JSON path {path!r} must start with '$'")
    steps: list[str | int] = []
    pos = 1
    while pos < len(path):
        m = _STEP.match(path, pos)
        if m is None:
            raise PathError(f"JSON path {path!r}: cannot read from position {pos} ({path[pos:]!r})")
        steps.append(m.group(1) or (int(m.group(2)) if m.group(2) is not None else m.group(3)))
        pos = m.end()
    return tuple(steps)


def extract(payload: Any, path: str) -> Any:
    """The value at ``path``; raise :class:`Missing` when the payload has none."""
    cur = payload
    for step in parse_path(path):
        if isinstance(step, int):
            if not isinstance(cur, list) or step >= len(cur):
                raise Missing(path)
            cur = cur[step]
        else:
            if not isinstance(cur, dict) or step not in cur:
                raise Missing(path)
            cur = cur[step]
    return cur


def extract_scalar(payload: Any, path: str) -> Scalar:
    value = extract(payload, path)
    if isinstance(value, bool | int | float | str):
        return value
    raise Missing(f"{path} is a {type(value).__name__}, not a number, bool or string")


def fill_topic(template: str, *, prefix: str, device_id: str) -> str:
    """Fill ``{prefix}`` (itself a template) and ``{device_id}``."""
    return template.replace("{prefix}", prefix).replace("{device_id}", device_id)


def render_payload(template: Mapping[str, Any], values: Mapping[str, Scalar]) -> dict[str, Any]:
    """Replace string values that are exactly ``{name}`` with ``values[name]`` (typed), recursively."""
    out: dict[str, Any] = {}
    for key, val in template.items():
        if isinstance(val, dict):
            out[key] = render_payload(val, values)
        elif isinstance(val, str) and val.startswith("{") and val.endswith("}") and val[1:-1] in values:
            out[key] = values[val[1:-1]]
        else:
            out[key] = val
    return out
