"""MicroPython's ``umqtt.simple.MQTTClient`` on CPython, over paho-mqtt 2.x (``CallbackAPIVersion.VERSION2``).

Same blocking, single-threaded semantics: ``connect()`` returns once the broker accepted (or raises),
``check_msg()`` handles pending input and calls the callback with ``(topic: bytes, msg: bytes)`` in the
caller's thread, ``wait_msg()`` blocks for one message. A lost connection raises ``OSError`` from the
next call, as the socket-based original does; the firmware reconnects. No paho thread is started.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode


class MQTTException(Exception):
    pass


def _text(x: str | bytes) -> str:
    return x.decode() if isinstance(x, bytes | bytearray) else x


class MQTTClient:
    def __init__(self, client_id: str | bytes, server: str, port: int = 0, user: str | None = None,
                 password: str | None = None, keepalive: int = 0, ssl: bool = False,
                 ssl_params: dict[str, Any] | None = None) -> None:
        self.client_id = _text(client_id)
        self.server = server
        self.port = port or (8883 if ssl else 1883)
        self.user = user
        self.pswd = password
        self.keepalive = keepalive
        self.ssl = ssl
        self.cb: Callable[[bytes, bytes], None] | None = None
        self.lw: tuple[str, bytes, bool, int] | None = None
        self._client: mqtt.Client | None = None
        self._inbox: deque[tuple[bytes, bytes]] = deque()
        self._connected = False
        self._rc: int | None = None

    def set_callback(self, f: Callable[[bytes, bytes], None]) -> None:
        self.cb = f

    def set_last_will(self, topic: str | bytes, msg: str | bytes, retain: bool = False, qos: int = 0) -> None:
        self.lw = (_text(topic), msg.encode() if isinstance(msg, str) else bytes(msg), retain, qos)

    def _on_connect(self, _c: mqtt.Client, _u: object, _f: object, rc: Any, _p: object = None) -> None:
        self._rc = int(rc.value if hasattr(rc, "value") else rc)
        self._connected = self._rc == 0

    def _on_disconnect(self, _c: mqtt.Client, _u: object, _f: object, _rc: object, _p: object = None) -> None:
        self._connected = False

    def _on_message(self, _c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        self._inbox.append((msg.topic.encode(), bytes(msg.payload)))

    def connect(self, clean_session: bool = True, timeout: float | None = None) -> bool:
        c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.client_id, clean_session=clean_session,
                        reconnect_on_failure=False)
        if self.user is not None:
            c.username_pw_set(self.user, self.pswd)
        if self.ssl:
            c.tls_set()
        if self.lw is not None:
            topic, msg, retain, qos = self.lw
            c.will_set(topic, msg, qos=qos, retain=retain)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        self._rc = None
        try:
            c.connect(self.server, self.port, keepalive=self.keepalive or 60)
        except OSError:
            self._close(c)  # refused: release the socket pair paho made for this attempt
            raise
        deadline = time.monotonic() + (timeout or 5.0)
        rc = MQTTErrorCode.MQTT_ERR_SUCCESS
        while self._rc is None and time.monotonic() < deadline:
            rc = c.loop(timeout=0.05)
            if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
                break  # the broker closed the connection before CONNACK
        if not self._connected:
            self._close(c)
            raise MQTTException(self._rc if self._rc is not None else f"no CONNACK ({rc.name})")
        self._client = c
        return False

    @staticmethod
    def _close(c: mqtt.Client) -> None:
        """Release the client's socket and its wake-up socket pair (paho keeps both until reset)."""
        c._reset_sockets()  # paho's own clean-up: closes the socket and the socket pair

    def _drop(self) -> None:
        if self._client is not None:
            self._close(self._client)
        self._client = None
        self._connected = False

    def _live(self) -> mqtt.Client:
        if self._client is None or not self._connected:
            self._drop()
            raise OSError("MQTT connection lost")
        return self._client

    def disconnect(self) -> None:
        if self._client is not None and self._connected:
            self._client.disconnect()
            self._client.loop(timeout=0)
        self._drop()

    def abort(self) -> None:
        """Shim only: drop the TCP connection without DISCONNECT (power cut) so the broker sends the will."""
        self._drop()

    def ping(self) -> None:
        self._live().loop(timeout=0)

    def publish(self, topic: str | bytes, msg: str | bytes, retain: bool = False, qos: int = 0) -> None:
        c = self._live()
        info = c.publish(_text(topic), msg, qos=qos, retain=retain)
        if info.rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._drop()
            raise OSError(f"publish failed: {info.rc}")

    def subscribe(self, topic: str | bytes, qos: int = 0) -> None:
        c = self._live()
        rc, _ = c.subscribe(_text(topic), qos)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._drop()
            raise OSError(f"subscribe failed: {rc}")

    def _pump(self, timeout: float) -> None:
        c = self._live()
        rc = c.loop(timeout=timeout)
        if rc != MQTTErrorCode.MQTT_ERR_SUCCESS:
            self._drop()
            raise OSError(f"MQTT connection lost: {rc}")

    def _dispatch(self) -> bool:
        if not self._inbox:
            return False
        topic, msg = self._inbox.popleft()
        if self.cb is not None:
            self.cb(topic, msg)
        return True

    def wait_msg(self) -> None:
        while not self._dispatch():
            self._pump(0.1)

    def check_msg(self) -> None:
        self._pump(0.0)
        while self._dispatch():
            pass
