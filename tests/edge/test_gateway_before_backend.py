"""Done-when of end-to-end delivery: a gateway whose fire panel is already in alarm starts before any backend
process exists; the backend (migrate + ingest) starts about a minute later; the alarm is stored exactly once.

Real processes throughout: ``xiaoqu edge run`` polling a pymodbus fire panel, a private Mosquitto, and
``xiaoqu cloud migrate`` / ``xiaoqu cloud ingest`` on a fresh database. Before receipts, the broker
acknowledged the alarm, the gateway deleted it, and with no ingest session it was lost.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from conftest import free_port
from edge_agent_helpers import ModbusTestServer, wait_for

from simulators.broker import MosquittoProcess

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
GW = "gw-first"
BACKEND_AFTER_S = 60.0
FIRE_ZONE1 = 0b10  # component state word of zone 1 (input register 100): bit 1 = 火警 fire


def _xiaoqu(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "xiaoqu", *args], cwd=REPO, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)


def _metric(port: int, name: str, lane: str) -> float | None:
    """One sample of the gateway's /metrics, or None while it is not up yet."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
            text = resp.read().decode()
    except OSError:
        return None
    found = re.search(rf'^{name}{{lane="{lane}"}} ([0-9.e+]+)$', text, re.M)
    return float(found.group(1)) if found else None


def _alarm_rows(dsn: str) -> tuple[int, int]:
    """(rows, distinct ids) of the panel's fire-alarm raise events; (-1, -1) before the schema exists."""
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass('events') IS NULL").fetchone() == (True,):
            return -1, -1
        row = conn.execute(
            "SELECT count(*), count(DISTINCT id) FROM events "
            "WHERE device_id = 'panel1' AND type = 'fire.alarm' AND active AND life_safety"
        ).fetchone()
        assert row is not None
        return int(row[0]), int(row[1])


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoProcess]:
    b = MosquittoProcess(persistence=False, workdir=tmp_path)
    b.start()
    yield b
    b.cleanup()


async def test_alarm_raised_before_any_backend_existed_is_stored_exactly_once(
    tmp_path: Path, broker: MosquittoProcess, pg_dsn: str, site_id: str
) -> None:
    registers = [0] * 101
    registers[0] = 0b11  # system: normal + fire
    registers[100] = FIRE_ZONE1
    panel = await ModbusTestServer(free_port(), {1: {"ir": registers}}).start()
    metrics_port = free_port()
    gateway_cfg = {
        "gateway_id": GW, "site": site_id,
        "uplink": {"url": broker.url},
        "outbox": {"path": str(tmp_path / "gw" / "outbox.sqlite3")},
        "metrics_port": metrics_port, "health_interval_s": 5,
        "devices": [{"id": "panel1", "profile": "gst-fp200",
                     "location": {"site": site_id, "building": "B1", "floor": 1},
                     "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": panel.port, "unit": 1}}],
    }
    (tmp_path / "gw.json").write_text(json.dumps(gateway_cfg))
    cloud_cfg = {"database": {"dsn": pg_dsn, "flavour": "native"},
                 "ingest": {"mqtt": {"host": "127.0.0.1", "port": broker.port}, "batch_max_wait_ms": 50}}
    (tmp_path / "cloud.json").write_text(json.dumps(cloud_cfg))
    started = time.monotonic()
    gateway = _xiaoqu(["edge", "run", "--config", str(tmp_path / "gw.json")], tmp_path / "gateway.log")
    ingest: subprocess.Popen[bytes] | None = None
    try:
        # The broker acknowledged the alarm: no backend exists, so it now waits in the outbox for a receipt.
        await wait_for(lambda: _metric(metrics_port, "xq_outbox_awaiting_receipt", "alarm") == 1, 30,
                       "the gateway's alarm acknowledged by the broker and awaiting its receipt")
        assert gateway.poll() is None
        await asyncio.sleep(max(0.0, BACKEND_AFTER_S - (time.monotonic() - started)))

        migrate = subprocess.run(
            [sys.executable, "-m", "xiaoqu", "cloud", "migrate", "-c", str(tmp_path / "cloud.json")],
            cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
        )
        assert migrate.returncode == 0, migrate.stderr
        assert "ingest session xq-ingest-0" in migrate.stdout
        ingest = _xiaoqu(["cloud", "ingest", "-c", str(tmp_path / "cloud.json")], tmp_path / "ingest.log")

        await wait_for(lambda: _alarm_rows(pg_dsn)[0] >= 1, 150, "the alarm stored by the backend")
        # The backend's receipt settled it: the gateway deleted the row, so no further copy can come.
        await wait_for(lambda: _metric(metrics_port, "xq_outbox_depth", "alarm") == 0, 60,
                       "the alarm's row receipted and deleted on the gateway")
        assert _metric(metrics_port, "xq_outbox_awaiting_receipt", "alarm") == 0
        assert _alarm_rows(pg_dsn) == (1, 1)  # stored exactly once
        assert gateway.poll() is None and ingest.poll() is None
    finally:
        _stop(gateway)
        if ingest is not None:
            _stop(ingest)
        await panel.stop()
