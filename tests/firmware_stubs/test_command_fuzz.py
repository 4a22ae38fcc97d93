"""Fuzz the firmware's command parsers (they take outside input): whatever arrives on {prefix}/cmd, the
firmware answers on {prefix}/cmd/result with ok true/false and keeps running."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from firmware_stubs import shim

shim.install()

import machine  # noqa: E402


class FakeClient:
    def __init__(self) -> None:
        self.published: list[tuple[str, bytes]] = []

    def publish(self, topic: str, msg: str | bytes, retain: bool = False, qos: int = 0) -> None:
        self.published.append((topic, msg.encode() if isinstance(msg, str) else msg))

    def check_msg(self) -> None:
        pass


def boot(kind: str) -> tuple[Any, FakeClient]:
    machine.select_board(machine.Board())
    fw = shim.load(kind, f"fuzz-{kind}")
    fw.setup({"device_id": "fz", "cards": ["1"]})
    client = FakeClient()
    fw.S["client"] = client
    return fw, client


DOOR, DOOR_CLIENT = boot("door_controller")
SMOKE, SMOKE_CLIENT = boot("smoke_detector")

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                           max_leaves=8)
commands = st.fixed_dictionaries({"id": json_values, "cmd": st.sampled_from(
    ["unlock", "lock", "release_all", "restore", "silence", "self_test", "x"]) | json_values},
    optional={"duration_s": json_values})
payloads = st.binary(max_size=64) | commands.map(lambda d: json.dumps(d).encode()) | json_values.map(
    lambda v: json.dumps(v).encode())


@settings(max_examples=300, deadline=None)
@given(payload=payloads)
def test_every_payload_gets_one_result(payload: bytes) -> None:
    for fw, client in ((DOOR, DOOR_CLIENT), (SMOKE, SMOKE_CLIENT)):
        client.published.clear()
        fw.on_command(payload)
        results = [json.loads(m) for t, m in client.published if t == "xqdev/fz/cmd/result"]
        assert len(results) == 1
        assert isinstance(results[0]["ok"], bool)
        if not results[0]["ok"]:
            assert isinstance(results[0]["reason"], str) and results[0]["reason"]
        fw.step()  # still runs
