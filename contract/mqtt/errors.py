"""What can go wrong talking to an MQTT broker: one tree, so callers catch :class:`MqttError` or one branch."""


class MqttError(Exception):
    """Base of every error raised by :mod:`contract.mqtt`."""


class MqttConnectError(MqttError):
    """The broker is unreachable, refused the connection, closed it before the CONNACK, or did not answer in time."""


class MqttPublishError(MqttError):
    """A publish was not acknowledged: no PUBACK in time, or the client was closed before it came."""


class MqttNotConnected(MqttPublishError):
    """The client has no broker connection right now."""
