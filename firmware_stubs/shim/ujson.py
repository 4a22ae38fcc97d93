"""MicroPython ``ujson`` on CPython (compact separators, as MicroPython writes them)."""

from __future__ import annotations

import json as _json
from typing import Any


def dumps(obj: Any) -> str:
    return _json.dumps(obj, separators=(",", ":"))


def loads(s: str | bytes) -> Any:
    return _json.loads(s)
