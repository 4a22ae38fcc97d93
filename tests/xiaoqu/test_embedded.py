"""The demo's embedded defaults start real servers on free loopback ports and stop them again."""

import socket
from urllib.parse import urlparse

import paho.mqtt.client as mqtt
import psycopg
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from xiaoqu import embedded

pytestmark = pytest.mark.integration


def test_embedded_broker_and_database():
    with embedded.workdir() as w, embedded.mosquitto(w) as url, embedded.postgres(w) as dsn:
        u = urlparse(url)
        client = mqtt.Client(CallbackAPIVersion.VERSION2)
        assert client.connect(u.hostname, u.port) == mqtt.MQTT_ERR_SUCCESS
        client.disconnect()
        with psycopg.connect(dsn) as conn:
            assert conn.execute("SELECT 1 + 1").fetchone() == (2,)
        port = u.port
    with socket.socket() as s:  # stopped with the context: the port is free again
        s.bind(("127.0.0.1", port))
