"""The gateway's store-and-forward outbox (SQLite, priority lanes) and its MQTT uplink.

Use: build one :class:`Outbox` and one :class:`Uplink` at start-up; messages get
``seq=outbox.next_seq()``; ``outbox.put(message)`` (durable on return) then ``uplink.wake()``;
``await uplink.run()`` in a task; ``await uplink.stop()`` then ``outbox.close()`` at shutdown.
Design and guarantees: ``docs/outbox.md``.
"""

from edge.uplink.lanes import LANES, Lane, lane_for
from edge.uplink.mqtt import Uplink, UplinkConfig, UplinkState
from edge.uplink.outbox import Outbox, OutboxConfig, OutboxRow

__all__ = [
    "LANES",
    "Lane",
    "Outbox",
    "OutboxConfig",
    "OutboxRow",
    "Uplink",
    "UplinkConfig",
    "UplinkState",
    "lane_for",
]
