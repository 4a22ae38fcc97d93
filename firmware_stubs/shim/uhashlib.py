"""MicroPython ``uhashlib`` on CPython: ``sha256(data).digest()`` (MicroPython has no ``hexdigest``)."""

from __future__ import annotations

import hashlib as _hashlib


class sha256:
    def __init__(self, data: bytes = b"") -> None:
        self._h = _hashlib.sha256(data)

    def update(self, data: bytes) -> None:
        self._h.update(data)

    def digest(self) -> bytes:
        return self._h.digest()
