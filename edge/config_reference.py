"""The gateway config reference (``docs/gateway-config.md``), generated from the config models themselves so
it never drifts from what ``xiaoqu edge check`` accepts: ``python -m edge.config_reference`` rewrites it and
a test fails while it is stale. Every key, its type, its default and what it means."""

from __future__ import annotations

import sys
import types
import typing
from pathlib import Path
from typing import Any

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from edge.config import GatewayConfig

DOC = Path(__file__).resolve().parents[1] / "docs" / "gateway-config.md"

HEADER = """# Gateway config reference

Generated from `edge/config.py` and the models it uses by `python -m edge.config_reference` (a test fails
while this file is stale). The annotated example is `edge/examples/gateway.yaml`; `xiaoqu edge check
--config FILE` validates a file (errors name file:line: field). Relative paths are relative to the config
file. Every section refuses unknown keys.
"""


NOTES: dict[tuple[str, str], str] = {
    # What a key means, where the model itself gives no description.
    ("GatewayConfig", "gateway_id"): "this gateway's id (letters, digits, _ . -); its topics are xq/v1/<site>/<id>/…",
    ("GatewayConfig", "site"): "the site (compound) id; every device's location.site must be it",
    ("GatewayConfig", "name"): "display name",
    ("GatewayConfig", "uplink"): "the backend's broker",
    ("GatewayConfig", "outbox"): "the durable store-and-forward queue (docs/outbox.md)",
    ("GatewayConfig", "devices"): "the devices this gateway serves",
    ("GatewayConfig", "linkage"): "local linkage rules (docs/edge.md, Local linkage)",
    ("GatewayConfig", "polling"): "Modbus retry policy",
    ("GatewayConfig", "telemetry"): "report-by-exception batching",
    ("GatewayConfig", "health_interval_s"): "a HealthReport every this many seconds",
    ("UplinkConfig", "username"): "broker user name (also from the URL)",
    ("UplinkConfig", "password"): "broker password (also from the URL)",
    ("UplinkConfig", "ca_file"): "TLS: CA bundle to trust (mqtts://)",
    ("UplinkConfig", "cert_file"): "TLS client certificate",
    ("UplinkConfig", "key_file"): "TLS client key",
    ("UplinkConfig", "keepalive_s"): "MQTT keep-alive; the broker publishes the gateway's death after 1.5 ×",
    ("UplinkConfig", "max_inflight"): "QoS 1 messages awaiting PUBACK at once",
    ("UplinkConfig", "reconnect_min_s"): "first reconnect delay (doubles)",
    ("UplinkConfig", "reconnect_max_s"): "reconnect delay cap",
    ("UplinkConfig", "connect_timeout_s"): "give up a connection attempt after this",
    ("OutboxConfig", "busy_timeout_ms"): "SQLite busy timeout",
    ("DeviceConfig", "id"): "unique device id (letters, digits, _ . -)",
    ("DeviceConfig", "profile"): "profile id (xiaoqu profile list)",
    ("DeviceConfig", "name"): "display name",
    ("DeviceConfig", "location"): "where it is",
    ("DeviceConfig", "connection"): "how to reach it; `kind` picks one of the connection sections below",
    ("LinkageConfig", "rules"): "one entry per rule",
    ("PollingConfig", "backoff_initial_s"): "first retry delay after a failed poll (doubles)",
    ("TelemetryConfig", "max_points_per_batch"): "samples per TelemetryBatch message",
    ("TelemetryConfig", "flush_s"): "a batch goes out at least this often",
    ("EvidenceConfig", "backoff_initial_s"): "first retry delay of a failed upload (doubles)",
    ("Location", "site"): "site id (the gateway's)",
    ("Location", "building"): "building, e.g. B3",
    ("Location", "unit"): "residential unit (单元/户), e.g. 1801",
    ("ModbusTcpConnection", "kind"): "`modbus_tcp`",
    ("ModbusTcpConnection", "host"): "device or Modbus gateway address",
    ("ModbusTcpConnection", "port"): "TCP port",
    ("ModbusTcpConnection", "unit"): "unit (slave) id",
    ("ModbusRtuConnection", "kind"): "`modbus_rtu`",
    ("ModbusRtuConnection", "baudrate"): "serial speed",
    ("ModbusRtuConnection", "parity"): "N, E or O",
    ("ModbusRtuConnection", "unit"): "unit (slave) id",
    ("MqttConnection", "kind"): "`mqtt`: topics from the profile's mqtt.prefix with the device id",
    ("CameraConnection", "kind"): "`camera`",
    ("ZoneLocation", "building"): "building; default: the device's",
    ("ZoneLocation", "unit"): "residential unit",
    ("ZoneLocation", "area"): "free text, e.g. 'east corridor'",
    ("LinkageRule", "name"): "rule name (audit)",
    ("LinkageRule", "command"): "profile command sent to every target",
    ("LinkageRule", "args"): "its arguments",
    ("LinkageRule", "require_signals"): "independent signals needed (GB 50116 §4.1.6: 2)",
    ("LinkageRule", "window_s"): "the signals must be raised within this many seconds of each other",
}


def _models(annotation: Any) -> list[type[BaseModel]]:
    """The config models an annotation refers to (through lists, optionals and unions)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [annotation]
    found: list[type[BaseModel]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models(arg))
    return found


def _type(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Annotated:
        return _type(args[0])
    if origin is typing.Literal:
        return " \\| ".join(repr(a).replace("'", "") for a in args)
    if origin in (typing.Union, types.UnionType):
        return " \\| ".join("null" if a is type(None) else _type(a) for a in args)
    if origin in (list, tuple):
        return f"list of {_type(args[0])}" if args else "list"
    if origin is dict:
        return f"map {_type(args[0])} → {_type(args[1])}"
    if isinstance(annotation, type):
        if issubclass(annotation, BaseModel):
            return f"[{annotation.__name__}](#{annotation.__name__.lower()})"
        return {"str": "text", "int": "integer", "float": "number", "bool": "bool", "Path": "path"}.get(
            annotation.__name__, annotation.__name__)
    return str(annotation)


def _default(info: FieldInfo) -> str:
    if info.default is PydanticUndefined:
        return "" if info.default_factory is not None else "**required**"
    if info.default is None:
        return "null"
    if isinstance(info.default, BaseModel):
        return ""
    return f"`{info.default}`"


def render(
    root: type[BaseModel] = GatewayConfig, header: str = HEADER, notes: dict[tuple[str, str], str] = NOTES
) -> str:
    """The reference of ``root`` and every model below it (also used for the backend's, cloud.config_reference)."""
    out = [header]
    queue: list[type[BaseModel]] = [root]
    seen: set[type[BaseModel]] = set()
    while queue:
        model = queue.pop(0)
        if model in seen:
            continue
        seen.add(model)
        doc = " ".join((model.__doc__ or "").strip().split("\n\n")[0].split())
        out.append(f"## {model.__name__}\n")
        if doc and not doc.startswith("!!!") and model is not root:
            out.append(f"{doc}\n")
        out.append("| key | type | default | meaning |\n|---|---|---|---|")
        for name, info in model.model_fields.items():
            key = info.alias or name
            text = info.description or notes.get((model.__name__, name), "")
            meaning = text.replace("|", "\\|").replace("\n", " ")
            out.append(f"| `{key}` | {_type(info.annotation)} | {_default(info)} | {meaning} |")
            queue.extend(m for m in _models(info.annotation) if m not in seen)
        out.append("")
    return "\n".join(out)


def main() -> None:
    DOC.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {DOC}\n")


if __name__ == "__main__":
    main()
