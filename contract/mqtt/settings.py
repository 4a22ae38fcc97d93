"""Where and how to reach an MQTT broker: one settings model for the gateway and the backend."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pydantic import BaseModel, ConfigDict, Field, model_validator


class MqttSettings(BaseModel):
    """A broker connection: address, identity, credentials, TLS and session options."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=1883, ge=1, le=65535)
    client_id: str | None = Field(default=None, description="unique per connection; a random one if unset")
    username: str | None = None
    password: str | None = None
    tls: bool = Field(default=False, description="TLS to the broker (implied by any of the TLS files)")
    ca_file: Path | None = Field(default=None, description="CA bundle the broker's certificate is checked with")
    cert_file: Path | None = Field(default=None, description="client certificate (mutual TLS)")
    key_file: Path | None = Field(default=None, description="the client certificate's private key")
    tls_insecure: bool = Field(
        default=False, description="skip the broker host name check (test rigs only; the chain is still checked)"
    )
    keepalive_s: int = Field(default=30, ge=5)
    clean_start: bool = Field(
        default=True, description="start without the broker's stored session (MQTT 3.1.1: clean session)"
    )

    @model_validator(mode="after")
    def _check_tls(self) -> MqttSettings:
        if self.key_file is not None and self.cert_file is None:
            raise ValueError("key_file needs cert_file")
        return self

    @property
    def uses_tls(self) -> bool:
        return self.tls or self.ca_file is not None or self.cert_file is not None

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @classmethod
    def from_url(cls, url: str, **fields: Any) -> MqttSettings:
        """``mqtt://[user[:password]@]host[:port]`` or ``mqtts://…`` (TLS, port 8883 by default); ``fields``
        set the other options (a ``None`` leaves the URL's or the default value)."""
        parts = urlsplit(url)
        if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
            raise ValueError(f"{url!r}: must look like mqtt://host[:port] or mqtts://host[:port]")
        tls = parts.scheme == "mqtts"
        data: dict[str, Any] = {"host": parts.hostname, "port": parts.port or (8883 if tls else 1883), "tls": tls}
        if parts.username:
            data["username"] = unquote(parts.username)
            if parts.password is not None:
                data["password"] = unquote(parts.password)
        data.update({k: v for k, v in fields.items() if v is not None})
        return cls.model_validate(data)
