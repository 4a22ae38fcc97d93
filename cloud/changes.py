"""The one change event: what the backend tells consoles (WebSocket), other ``serve`` processes and channels
after a transaction commits.

Every domain builds its changes here (:meth:`Change.alarm`, :meth:`Change.incident`, :meth:`Change.order`,
:meth:`Change.command`), so the WebSocket, the cross-process relay and the notification channels read
one shape: ``kind`` and ``op`` say what happened, ``id``/``site_id``/``building``/``grid_id`` say to whom
it is visible, and ``data`` is the changed record as JSON.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from decimal import Decimal
from typing import Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, JsonValue

ChangeKind = Literal["alarm", "incident", "work_order", "command"]


def as_json(value: object) -> JsonValue:
    """A database value (or a model) as JSON: times in ISO 8601, UUIDs and decimals as text/float."""
    if isinstance(value, BaseModel):
        dumped: JsonValue = value.model_dump(mode="json")
        return dumped
    if isinstance(value, datetime | date):
        return value.isoformat()
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, Mapping):
        return {str(k): as_json(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [as_json(v) for v in value]
    if value is None or isinstance(value, bool | int | float | str):
        return value
    raise TypeError(f"{type(value).__name__} is not JSON")


def json_row(row: Mapping[str, object] | BaseModel) -> dict[str, JsonValue]:
    """One record as a JSON object."""
    data = as_json(row)
    assert isinstance(data, dict)
    return data


class Change(BaseModel):
    """Something a committed transaction changed."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ChangeKind
    op: str
    id: int | str
    site_id: str | None = None
    building: str | None = None
    grid_id: str | None = None
    data: dict[str, JsonValue]

    @classmethod
    def _of(cls, kind: ChangeKind, op: str, row: Mapping[str, object] | BaseModel) -> Change:
        data = json_row(row)
        ident = data.get("id")
        assert isinstance(ident, int | str), f"{kind} change without an id"

        def text(key: str) -> str | None:
            value = data.get(key)
            return value if isinstance(value, str) else None

        return cls(
            kind=kind, op=op, id=ident, site_id=text("site_id"), building=text("building"), grid_id=text("grid_id"),
            data=data,
        )

    @classmethod
    def alarm(cls, row: Mapping[str, object] | BaseModel, op: str) -> Change:
        return cls._of("alarm", op, row)

    @classmethod
    def incident(cls, row: Mapping[str, object] | BaseModel, op: str) -> Change:
        return cls._of("incident", op, row)

    @classmethod
    def order(cls, row: Mapping[str, object] | BaseModel, op: str) -> Change:
        return cls._of("work_order", op, row)

    @classmethod
    def command(cls, row: Mapping[str, object] | BaseModel, op: str) -> Change:
        change = cls._of("command", op, row)
        return change.model_copy(update={"building": None})
