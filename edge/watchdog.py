"""systemd supervision: the sd_notify protocol (``READY=1``, ``WATCHDOG=1``, ``STATUS=``) and progress deadlines.

The service manager passes ``NOTIFY_SOCKET`` (a unix datagram socket path; ``@`` = Linux abstract namespace)
and, with ``WatchdogSec=``, ``WATCHDOG_USEC`` (and ``WATCHDOG_PID``). The gateway sends ``READY=1`` once its
uplink and pollers are up and then ``WATCHDOG=1`` every half period, but only while every watched part
makes progress: each part holds a :class:`Heartbeat` whose deadline it pushes forward before every wait
("I will be back within N s"). A part past its deadline (plus a grace) is wedged: the pings stop and
systemd restarts the service. A device that does not answer is not a wedge — its poll times out and the
loop goes on — but a loop stuck on an await that never returns is.

No libsystemd: the protocol is one datagram per message (``man sd_notify``).
"""

from __future__ import annotations

import logging
import math
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)


def _address(path: str) -> str:
    return "\0" + path[1:] if path.startswith("@") else path


@dataclass(frozen=True)
class Notifier:
    """Where to send notifications (``socket_path`` None = not under a service manager: every send is a no-op)."""

    socket_path: str | None = None
    watchdog_usec: int | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        path = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if raw and (not pid or pid == str(os.getpid())):  # WATCHDOG_PID names who must ping (not a child)
            try:
                usec = int(raw)
            except ValueError:
                logger.error("WATCHDOG_USEC=%r is not a number of microseconds: watchdog pings off", raw)
            else:
                usec = usec if usec > 0 else None
        return cls(path, usec)

    @property
    def watchdog_period_s(self) -> float | None:
        """How often to ping: half the watchdog timeout, as systemd recommends; None = no watchdog."""
        if self.socket_path is None or self.watchdog_usec is None:
            return None
        return self.watchdog_usec / 2e6

    def send(self, *fields: str) -> bool:
        """Send ``KEY=value`` lines as one datagram; False (logged) when it cannot be delivered."""
        if self.socket_path is None:
            return False
        data = "\n".join(fields).encode()
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(data, _address(self.socket_path))
        except OSError as exc:
            logger.warning("sd_notify to %s failed: %s", self.socket_path, exc)
            return False
        return True


class Heartbeat:
    """A part's promise to show progress again within a deadline (monotonic seconds)."""

    def __init__(self, name: str, monotonic: Callable[[], float]) -> None:
        self.name = name
        self._monotonic = monotonic
        self.deadline = math.inf  # not started yet: nothing is promised
        self.beats = 0

    def expect(self, within_s: float) -> None:
        """Progress now; the next is due within ``within_s`` (call before every wait)."""
        self.beats += 1
        self.deadline = self._monotonic() + within_s

    def idle(self) -> None:
        """The part ended or waits on nothing it controls: no deadline."""
        self.deadline = math.inf

    def overdue_s(self, grace_s: float) -> float:
        """Seconds past the deadline plus grace (0 when on time)."""
        return max(0.0, self._monotonic() - self.deadline - grace_s)
