"""Typed configuration of the ingest workers (loaded once by the entry point, passed down)."""

from __future__ import annotations

from pydantic import Field, field_validator

from contract.base import StrictModel
from contract.mqtt import MqttSettings
from contract.topics import SHARED_GROUP


class IngestConfig(StrictModel):
    mqtt: MqttSettings = Field(
        default_factory=MqttSettings,
        description="the broker; client ids come from 'client_id' below, sessions are always persistent",
    )
    client_id: str = Field(
        default="xq-ingest", description="worker i connects as '<client_id>-<i>' (stable: it owns a persistent session)"
    )
    group: str = Field(default=SHARED_GROUP, description="shared-subscription group ($share/<group>/...)")
    site: str = Field(default="+", description="site filter: '+' for all sites")
    session_expiry_s: int = Field(
        default=7 * 86400, ge=0, description="how long the broker keeps a worker's session while it is away"
    )
    receive_maximum: int = Field(
        default=2000, ge=1, le=65535, description="unacknowledged messages the broker may have in flight to one worker"
    )
    batch_max_messages: int = Field(default=1000, ge=1)
    batch_max_bytes: int = Field(
        default=4_000_000, ge=1, description="payload bytes per batch (about 60 bytes per point)"
    )
    batch_max_wait_ms: int = Field(
        default=100, ge=1, description="a batch is written at the latest this long after its first message"
    )
    dead_letter_max_bytes: int = Field(default=4096, ge=0, description="payload bytes kept per dead letter")
    presence_flush_s: float = Field(default=5.0, gt=0, description="last-seen / online state written this often")
    online_window_s: float = Field(default=300.0, gt=0, description="a device seen within this window is 'online'")
    offline_after_s: float = Field(default=600.0, gt=0, description="a device not seen for this long becomes 'offline'")
    maintenance_interval_s: float = Field(default=10.0, gt=0, description="rollup refresh, partitions, retention")
    partitions_ahead_days: int = Field(default=3, ge=1)
    retry_backoff_max_s: float = Field(default=10.0, gt=0)
    receipts: bool = Field(
        default=True,
        description="after each commit publish a Receipt per gateway naming its stored events and command acks; "
        "gateways keep those until a receipt names them, so turn it off only to measure its cost",
    )

    @field_validator("mqtt")
    @classmethod
    def _no_client_id(cls, value: MqttSettings) -> MqttSettings:
        if value.client_id is not None:
            raise ValueError("set ingest.client_id (worker i connects as '<client_id>-<i>'), not ingest.mqtt.client_id")
        return value
