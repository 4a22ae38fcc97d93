"""MQTT point mapping: topic templates and standard JSONPath (RFC 9535) into payloads.

Paths are compiled once (:func:`compile_path`, cached by text) when a profile is loaded, so a path that
does not compile is a profile error at its file:line, never a surprise on the device's first message.
Any RFC 9535 query works, e.g. ``$.battery``, ``$.radio.rssi``, ``$.items[0]``, ``$['a b']`` or a filter
that picks a list item by a field, ``$.data[?@.k=='gas'].v``. A point takes the *first* node the query
selects; a query that selects nothing means the message does not carry that point.
"""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

import jsonpath_rfc9535
from jsonpath_rfc9535 import JSONPathError, JSONPathQuery

from contract.messages import Scalar


class PathError(ValueError):
    """A JSON path that is not a valid RFC 9535 query."""


class Missing(LookupError):
    """The payload has nothing at that path."""


@lru_cache(maxsize=8192)
def compile_path(path: str) -> JSONPathQuery:
    """The compiled query for ``path``; raise :class:`PathError` naming the problem and its column."""
    if not path.startswith("$"):
        raise PathError(f"JSON path {path!r} must start with '$' (RFC 9535)")
    try:
        return jsonpath_rfc9535.compile(path)
    except JSONPathError as exc:
        raise PathError(f"JSON path {path!r} does not compile (RFC 9535): {exc}") from None


def check_path(path: str) -> str:
    """``path`` if it compiles; ``{n}`` (a repeat's instance number) is checked as ``0``."""
    compile_path(path.replace("{n}", "0"))
    return path


def extract(payload: Any, path: str) -> Any:
    """The value of the first node ``path`` selects; raise :class:`Missing` when it selects none."""
    node = compile_path(path).find_one(payload)
    if node is None:
        raise Missing(path)
    return node.value


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
