"""Commands other than the demo that start processes own them too (``xiaoqu.processes``).

Real processes throughout: ``xiaoqu cloud ingest --workers 2`` against the shared broker and a fresh
database, ``xiaoqu sim run`` with its private Mosquitto, and a parent that spawns from a thread.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest
from proc_tree import Child, alive, descendants, left_running, listening

from xiaoqu.processes import StopSignal, StopSignals

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
XIAOQU = [sys.executable, "-m", "xiaoqu"]


def test_a_child_spawned_from_a_thread_outlives_the_thread_and_dies_with_the_process(tmp_path: Path) -> None:
    # The kernel sends the death signal when the *thread* that forked ends; spawn() forks from a thread
    # that lives as long as the process, so a short-lived thread's child stays up until the process dies.
    parent = tmp_path / "parent.py"
    parent.write_text(textwrap.dedent("""
        import threading, time
        from xiaoqu.processes import spawn
        box = []
        t = threading.Thread(target=lambda: box.append(spawn(["sleep", "600"])))
        t.start(); t.join()
        print(box[0].pid, flush=True)
        time.sleep(600)
    """))
    owner = Child([sys.executable, str(parent)], cwd=REPO)
    try:
        owner.wait_for(r"^\d+$", timeout=60)
        (kid,) = descendants(owner.proc.pid)
        assert "sleep 600" in kid.cmdline
        time.sleep(1.0)  # the asking thread ended long ago
        assert alive(kid), "the child died with the thread that asked for it"
        os.kill(owner.proc.pid, signal.SIGKILL)
        owner.finish()
        assert not left_running([kid]), "the child outlived its killed parent"
    finally:
        if owner.proc.poll() is None:
            owner.proc.kill()


def test_the_first_stop_signal_raises_later_ones_are_only_recorded() -> None:
    with StopSignals() as stop:
        with pytest.raises(StopSignal) as raised:
            os.kill(os.getpid(), signal.SIGHUP)
        assert raised.value.signum == signal.SIGHUP and raised.value.code == 129
        os.kill(os.getpid(), signal.SIGTERM)  # during the stop: recorded, not raised
        assert stop.received == signal.SIGHUP
    assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL  # the previous handlers are back


def test_a_signal_during_asyncio_callbacks_stops_the_coroutine_and_is_raised_once_it_has_unwound() -> None:
    # A busy event loop runs plain callbacks most of the time; a StopSignal raised inside one of them is
    # logged and dropped by asyncio (the Ctrl-C would be lost). run_async cancels the coroutine instead.
    import asyncio
    import threading

    unwound: list[bool] = []

    async def busy() -> None:
        loop = asyncio.get_running_loop()
        end = time.monotonic() + 30

        def spin() -> None:
            sum(range(2000))
            if time.monotonic() < end:
                loop.call_soon(spin)

        loop.call_soon(spin)
        try:
            while time.monotonic() < end:
                await asyncio.sleep(0.005)
        finally:
            unwound.append(True)

    for _ in range(10):
        unwound.clear()
        with StopSignals() as stop:
            threading.Timer(0.1, os.kill, (os.getpid(), signal.SIGINT)).start()
            started = time.monotonic()
            with pytest.raises(StopSignal) as raised:
                stop.run_async(busy())
            assert raised.value.signum == signal.SIGINT
            assert time.monotonic() - started < 10, "the signal was lost in a callback"
            assert unwound == [True], "the coroutine's finally did not run before the StopSignal"
            os.kill(os.getpid(), signal.SIGTERM)  # after the first: recorded, not raised
            assert stop.received == signal.SIGINT


def test_run_async_returns_the_result_when_no_signal_comes() -> None:
    import asyncio

    async def answer() -> int:
        await asyncio.sleep(0.01)
        return 42

    with StopSignals() as stop:
        assert stop.run_async(answer()) == 42
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGKILL], ids=lambda s: s.name)
def test_ingest_workers_stop_with_their_supervisor(tmp_path: Path, pg_dsn: str, mqtt_broker, site_id: str,
                                                  sig: signal.Signals) -> None:
    subprocess.run([*XIAOQU, "cloud", "migrate", "--dsn", pg_dsn], check=True, cwd=REPO, capture_output=True)
    config = tmp_path / "cloud.json"
    config.write_text(json.dumps({
        "database": {"dsn": pg_dsn},
        "ingest": {"mqtt": {"host": mqtt_broker.host, "port": mqtt_broker.port}, "client_id": f"ing-{site_id}",
                   "group": f"g{site_id}", "site": site_id},
    }))
    ingest = Child([*XIAOQU, "cloud", "ingest", "--config", str(config), "--workers", "2"], cwd=REPO)
    ingest.wait_for(r"ing-\S+-1\b.*(subscrib|connect)", timeout=120)
    workers = descendants(ingest.proc.pid)
    assert sum("multiprocessing" in p.cmdline and "spawn_main" in p.cmdline for p in workers) >= 2, workers
    os.kill(ingest.proc.pid, sig)
    code = ingest.finish()
    assert not left_running(workers), ingest.output
    if sig == signal.SIGHUP:
        assert code == 128 + signal.SIGHUP, ingest.output


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_sim_run_stops_its_private_broker(sig: signal.Signals) -> None:
    sim = Child([*XIAOQU, "sim", "run", "--layout", str(REPO / "simulators" / "layouts" / "mini.yaml"),
                 "--no-cameras", "--no-background"], cwd=REPO)
    port = int(sim.wait_for(r"MQTT devices on mqtt://127\.0\.0\.1:(\d+)", timeout=120).group(1))
    procs = descendants(sim.proc.pid)
    assert any("mosquitto" in p.cmdline for p in procs), procs
    os.kill(sim.proc.pid, sig)
    code = sim.finish()
    assert not left_running(procs), sim.output
    assert not listening(port)
    if sig == signal.SIGTERM:
        assert code == 128 + signal.SIGTERM, sim.output
