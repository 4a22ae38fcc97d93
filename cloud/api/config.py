"""API settings (part of the backend config, loaded once at the entry point)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from cloud.auth.throttle import ThrottleConfig
from contract.base import StrictModel


class ApiConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = 8000
    jwt_secret: str = Field(min_length=32, description="HS256 signing key for access tokens")
    token_ttl_minutes: int = Field(default=12 * 60, ge=1)
    evidence_dir: Path = Field(default=Path("var/evidence"), description="where uploaded snapshots are stored")
    evidence_max_bytes: int = Field(default=20 * 1024 * 1024, ge=1)
    gateway_upload_token: str | None = Field(
        default=None, min_length=16, description="shared secret gateways send as X-Gateway-Token to upload evidence"
    )
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, description="largest request body except evidence uploads (413 beyond)"
    )
    login_throttle: ThrottleConfig = Field(default_factory=ThrottleConfig)
