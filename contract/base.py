"""Base model for every config and message model in the project: unknown keys are refused."""

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """A pydantic model that refuses unknown keys and is immutable once built."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class StrictMutableModel(BaseModel):
    """Like :class:`StrictModel` but mutable (for config edited in place, e.g. onboarding)."""

    model_config = ConfigDict(extra="forbid")
