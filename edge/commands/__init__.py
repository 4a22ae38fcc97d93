"""Commands: from the backend (contract.Command) or from local linkage, executed once, acknowledged up."""

from edge.commands.executor import CommandExecutor, ExecResult, ModbusTarget, MqttTarget
from edge.commands.service import CommandService
from edge.commands.store import SeenStore

__all__ = ["CommandExecutor", "CommandService", "ExecResult", "ModbusTarget", "MqttTarget", "SeenStore"]
