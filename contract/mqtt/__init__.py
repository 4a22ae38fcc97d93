"""One MQTT adapter for the gateway and the backend: settings, errors and an async client over paho-mqtt.

Needs paho-mqtt (the ``edge``, ``cloud`` and ``sim`` extras); the core :mod:`contract` does not import it.
"""

from contract.mqtt.client import ConnectResult, Delivery, Message, MqttClient, Will, call_in_loop
from contract.mqtt.errors import MqttConnectError, MqttError, MqttNotConnected, MqttPublishError
from contract.mqtt.settings import MqttSettings

__all__ = [
    "ConnectResult",
    "Delivery",
    "Message",
    "MqttClient",
    "MqttConnectError",
    "MqttError",
    "MqttNotConnected",
    "MqttPublishError",
    "MqttSettings",
    "Will",
    "call_in_loop",
]
