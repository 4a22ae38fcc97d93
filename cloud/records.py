"""The backend's typed database records: one base for every domain's rows.

A record is immutable and holds exactly the columns its query selected: repositories read it with an
explicit column list (:meth:`Record.columns`), so a column the model does not know is never selected and a
missing one fails at the query, and build it in one place (:func:`row_factory`, psycopg's ``class_row``)."""

from __future__ import annotations

from typing import TypeVar

from psycopg.rows import BaseRowFactory, class_row
from pydantic import BaseModel, ConfigDict


class Record(BaseModel):
    """A row of a backend table: immutable, exactly the selected columns (field names are column names)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    @classmethod
    def columns(cls, alias: str | None = None) -> str:
        """The fields as a SELECT / RETURNING column list (``a.id, a.site_id, …`` with an alias)."""
        prefix = f"{alias}." if alias else ""
        return ", ".join(prefix + name for name in cls.model_fields)


def columns(model: type[Record], alias: str | None = None) -> str:
    """:meth:`Record.columns` of ``model``."""
    return model.columns(alias)


R = TypeVar("R", bound=Record)


def row_factory(model: type[R]) -> BaseRowFactory[R]:
    """The one place rows become records: a psycopg row factory validating each row into ``model``."""
    return class_row(model)
