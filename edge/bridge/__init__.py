"""MQTT device bridge: door controllers, smoke detectors and other devices that speak MQTT."""

from edge.bridge.mqtt_bridge import BridgedDevice, CommandOutcome, MqttBridge, parse_status

__all__ = ["BridgedDevice", "CommandOutcome", "MqttBridge", "parse_status"]
