"""The edge↔cloud contract: topics, message models, encode/decode, errors.

Used by the gateway, the backend and the simulators alike; defined once here.
"""

from contract.base import StrictModel
from contract.codec import decode, encode
from contract.errors import ContractError, MalformedMessage, TopicError, UnsupportedVersion
from contract.messages import (
    CONTRACT_VERSION,
    PROBE_COMMAND,
    Command,
    CommandAck,
    DeviceInfo,
    Event,
    EvidenceRef,
    GatewayConfigPush,
    GatewayHealth,
    GatewayState,
    Location,
    Message,
    PointSample,
    ProbePoint,
    Receipt,
    TelemetryBatch,
)
from contract.topics import Topic, TopicKind

__all__ = [
    "CONTRACT_VERSION",
    "PROBE_COMMAND",
    "Command",
    "CommandAck",
    "ContractError",
    "DeviceInfo",
    "Event",
    "EvidenceRef",
    "GatewayConfigPush",
    "GatewayHealth",
    "GatewayState",
    "Location",
    "MalformedMessage",
    "Message",
    "PointSample",
    "ProbePoint",
    "Receipt",
    "StrictModel",
    "TelemetryBatch",
    "Topic",
    "TopicError",
    "TopicKind",
    "UnsupportedVersion",
    "decode",
    "encode",
]
