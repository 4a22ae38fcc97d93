"""The gateway's ``evidence:`` config section (optional: absent = snapshots stay on the gateway)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, model_validator

from contract.base import StrictModel


class EvidenceConfig(StrictModel):
    url: Annotated[str, Field(pattern=r"^https?://\S+$")] = Field(
        description="the backend's evidence endpoint; a file is POSTed to <url>/<ref>"
    )
    token: str = Field(min_length=1, description="sent as X-Gateway-Token (the backend's gateway_upload_token)")
    budget_bytes: int = Field(default=256 * 1024 * 1024, ge=1, description="kept evidence on the gateway")
    hard_cap_bytes: int | None = Field(
        default=None, ge=1,
        description="past it even pending snapshots of active critical events are deleted; default 2× budget",
    )
    spool_dir: Path | None = Field(default=None, description="queue + files; default: 'evidence' next to the outbox")
    backoff_initial_s: float = Field(default=1.0, gt=0)
    backoff_max_s: float = Field(default=300.0, gt=0, description="cap of the exponential retry backoff")
    timeout_s: float = Field(default=30.0, gt=0, description="per upload request")

    @model_validator(mode="after")
    def _cap(self) -> EvidenceConfig:
        if self.hard_cap_bytes is not None and self.hard_cap_bytes < self.budget_bytes:
            raise ValueError("hard_cap_bytes must be at least budget_bytes")
        return self

    @property
    def cap_bytes(self) -> int:
        return self.hard_cap_bytes if self.hard_cap_bytes is not None else 2 * self.budget_bytes
