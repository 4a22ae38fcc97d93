"""Fault suite as a benchmark: are life-safety alarms stored exactly once through each fault, and how fast?

Runs the real processes — a private Mosquitto (``simulators.broker.MosquittoProcess``, persistent), a private
PostgreSQL cluster it can stop and start (initdb/pg_ctl in a temp folder), ``xiaoqu cloud migrate``,
``xiaoqu cloud ingest`` and ``xiaoqu cloud serve`` (the decision engine makes the alarms), and two
``xiaoqu edge run`` gateways polling simulated Modbus fire panels (``simulators.modbus``, served from this
process) through a WAN link that can be cut (``simulators.proxy.TcpProxy``). Each fault is injected on its
own, one after the other; each sets zone 1 of fresh panels on fire (one alarm per panel, so counting by
device works whatever the backend's alarm key is):

- ``gateway_first``: the panels are in alarm and the gateways run before any backend process exists; the
  backend (migrate, ingest, serve) starts ``backend_after_s`` later;
- ``broker_restart``: the broker is killed (SIGKILL, a crash) right after the alarms, then started again;
- ``database_restart``: PostgreSQL is stopped, alarms happen, it is started again;
- ``ingest_kill9``: the ingest worker is SIGKILLed right after the alarms, then started again;
- ``gateway_kill9_mid_drain``: the WAN is cut, alarms queue in the outboxes, the WAN comes back and gateway A
  is SIGKILLed as soon as it reconnects (draining), then started again;
- ``wan_cut``: the WAN link is down for minutes (seconds with --quick) while the alarms happen;
- ``slow_database``: every insert statement of ingest sleeps (a trigger with pg_sleep) while the alarms happen.

Stored = an alarm row in ``alarms`` and a raise in ``events`` (by id). Lost = injected, no alarm within the
recovery timeout. Duplicated = more than one alarm row for one injection, or an event id stored twice.
Recovery = from the end of the fault (the part restarted, the link back) to every alarm of the fault stored.

    .venv/bin/python bench/faults.py [--quick] [--only wan_cut,ingest_kill9] [--puback-only]

``--puback-only`` runs the gateways as before end-to-end delivery (``uplink.receipt_kinds: []``: a row leaves
the outbox on the broker's PUBACK), to show what the receipts buy.

Prints one line per fault, a table, then ONE JSON object as the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import psycopg

from bench._common import PrivatePostgres, emit, free_port
from device_profiles import load_catalog
from simulators.broker import MosquittoProcess
from simulators.modbus import ModbusBus, ModbusDevice, ModbusPortServer
from simulators.proxy import TcpProxy

REPO = Path(__file__).resolve().parent.parent
FAULTS = ("gateway_first", "broker_restart", "database_restart", "ingest_kill9", "gateway_kill9_mid_drain",
          "wan_cut", "slow_database")
GATEWAYS = ("gwa", "gwb")
SITE = "faults"


@dataclass(frozen=True)
class Plan:
    backend_after_s: float
    broker_down_s: float
    db_down_s: float
    ingest_down_s: float
    cut_before_kill_s: float
    gateway_down_s: float
    wan_cut_s: float
    slow_for_s: float
    slow_statement_s: float
    alarms_per_gateway: int
    recover_timeout_s: float


QUICK = Plan(backend_after_s=20, broker_down_s=2, db_down_s=5, ingest_down_s=3, cut_before_kill_s=5,
             gateway_down_s=2, wan_cut_s=20, slow_for_s=15, slow_statement_s=4, alarms_per_gateway=2,
             recover_timeout_s=150)
FULL = Plan(backend_after_s=60, broker_down_s=5, db_down_s=20, ingest_down_s=10, cut_before_kill_s=15,
            gateway_down_s=5, wan_cut_s=180, slow_for_s=60, slow_statement_s=5, alarms_per_gateway=3,
            recover_timeout_s=300)


@dataclass
class Injection:
    fault: str
    gateway: str
    device: str
    at: float


@dataclass
class FaultResult:
    name: str
    injected: int
    stored: int = 0
    lost: int = 0
    duplicated: int = 0
    recovery_s: float | None = None
    worst_latency_s: float | None = None
    reraised: int = 0
    note: str = ""


@dataclass
class Rig:
    plan: Plan
    work: Path
    pg: PrivatePostgres
    broker: MosquittoProcess
    proxy: TcpProxy
    dsn: str = ""
    panels: dict[str, list[ModbusDevice]] = field(default_factory=dict)
    servers: list[ModbusPortServer] = field(default_factory=list)
    free: dict[str, list[ModbusDevice]] = field(default_factory=dict)
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    metrics_ports: dict[str, int] = field(default_factory=dict)
    injections: list[Injection] = field(default_factory=list)
    puback_only: bool = False

    # -- processes ------------------------------------------------------------------------------------
    def spawn(self, name: str, *args: str) -> None:
        log = self.work / "logs" / f"{name}.log"
        log.parent.mkdir(exist_ok=True)
        with log.open("ab") as out:
            self.procs[name] = subprocess.Popen([sys.executable, "-m", "xiaoqu", *args], cwd=REPO, stdout=out,
                                                stderr=subprocess.STDOUT, start_new_session=True)

    def signal(self, name: str, sig: int) -> None:
        proc = self.procs.get(name)
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, sig)
            if sig == signal.SIGKILL:
                proc.wait(10)

    def stop_all(self) -> None:
        for name in list(self.procs):
            self.signal(name, signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(5)

    def died(self) -> list[str]:
        return [n for n, p in self.procs.items() if p.poll() is not None]

    def start_gateway(self, gw: str) -> None:
        self.spawn(gw, "edge", "run", "--config", str(self.work / f"{gw}.json"))

    def start_ingest(self) -> None:
        self.spawn("ingest", "cloud", "ingest", "-c", str(self.work / "cloud.json"))

    # -- gateways' /metrics ---------------------------------------------------------------------------
    def metric(self, gw: str, name: str, lane: str | None = None) -> float | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_ports[gw]}/metrics", timeout=2) as resp:
                text = resp.read().decode()
        except OSError:
            return None
        label = f'{{lane="{lane}"}}' if lane else ""
        found = re.search(rf"^{name}{re.escape(label)} ([0-9.e+-]+)$", text, re.M)
        return float(found.group(1)) if found else None

    # -- injecting and counting -----------------------------------------------------------------------
    def inject(self, fault: str, gateways: tuple[str, ...] = GATEWAYS) -> list[Injection]:
        """Zone 1 of fresh panels catches fire (one new alarm per panel)."""
        made = []
        for gw in gateways:
            for _ in range(self.plan.alarms_per_gateway):
                panel = self.free[gw].pop(0)
                panel.set("zone1.fire", True)
                made.append(Injection(fault, gw, panel.id, time.time()))
        self.injections += made
        return made

    def clear(self, made: list[Injection]) -> None:
        """The fire is out: the panels go back to normal (the gateways send the clears, life-safety lane too),
        so a later gateway restart does not raise them again."""
        by_id = {p.id: p for panels in self.panels.values() for p in panels}
        for inj in made:
            by_id[inj.device].set("zone1.fire", False)

    def counts(self, devices: list[str]) -> tuple[dict[str, tuple[int, float]], dict[str, tuple[int, int]]] | None:
        """Per device: (alarm rows, first alarm creation as unix time) and (raise events, distinct ids); None
        while the database cannot be read (down, not migrated yet)."""
        try:
            with psycopg.connect(self.dsn, connect_timeout=2) as conn:
                alarms = {
                    d: (int(n), float(first))
                    for d, n, first in conn.execute(
                        "SELECT device_id, count(*), extract(epoch FROM min(created_at)) FROM alarms "
                        "WHERE type = 'fire.alarm' AND device_id = ANY(%s) GROUP BY device_id",
                        (devices,),
                    )
                }
                events = {
                    d: (int(n), int(distinct))
                    for d, n, distinct in conn.execute(
                        "SELECT device_id, count(*), count(DISTINCT id) FROM events WHERE type = 'fire.alarm' "
                        "AND active AND life_safety AND device_id = ANY(%s) GROUP BY device_id",
                        (devices,),
                    )
                }
        except psycopg.Error:
            return None
        return alarms, events

    async def wait_stored(self, made: list[Injection], timeout: float) -> float | None:
        """Poll until every injection has its alarm and its raise event; the time that happened, or None."""
        devices = [i.device for i in made]
        deadline = time.time() + timeout
        while time.time() < deadline:
            got = await asyncio.to_thread(self.counts, devices)
            if got is not None and all(d in got[0] and d in got[1] for d in devices):
                return time.time()
            await asyncio.sleep(0.25)
        return None

    async def settle(self, timeout: float = 120.0) -> bool:
        """Until every gateway's alarm lane is empty (each alarm receipted by the backend)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            depths = [await asyncio.to_thread(self.metric, gw, "xq_outbox_depth", "alarm") for gw in GATEWAYS]
            if all(d == 0 for d in depths):
                return True
            await asyncio.sleep(0.5)
        return False

    def result(self, name: str, made: list[Injection], fault_end: float, stored_at: float | None,
               note: str = "") -> FaultResult:
        res = FaultResult(name, len(made), note=note)
        got = self.counts([i.device for i in made])
        alarms, events = got if got is not None else ({}, {})
        latencies = []
        for inj in made:
            n_alarms, first = alarms.get(inj.device, (0, 0.0))
            n_events, distinct = events.get(inj.device, (0, 0))
            if n_alarms and n_events:
                res.stored += 1
                latencies.append(first - inj.at)
            else:
                res.lost += 1
            res.duplicated += max(0, n_alarms - 1) + (n_events - distinct)
            res.reraised += max(0, distinct - 1)
        if stored_at is not None:
            res.recovery_s = round(max(0.0, stored_at - fault_end), 2)
        if latencies:
            res.worst_latency_s = round(max(latencies), 2)
        return res


# -- setting up --------------------------------------------------------------------------------------------
async def build(plan: Plan, work: Path, faults: list[str], stack: contextlib.AsyncExitStack,
                puback_only: bool = False) -> Rig:
    """Everything but the gateway and backend processes; ``stack`` undoes it (in reverse) at the end."""
    (work / "pg").mkdir()
    pg = PrivatePostgres(work / "pg")
    await asyncio.to_thread(pg.init)
    await asyncio.to_thread(pg.start)
    stack.callback(_quietly, pg.stop, "immediate")
    with psycopg.connect(pg.dsn, autocommit=True) as conn:
        conn.execute('CREATE DATABASE "xq_faults"')
    (work / "mqtt").mkdir()
    broker = MosquittoProcess(persistence=True, extra=["max_queued_messages 100000"], workdir=work / "mqtt")
    await asyncio.to_thread(broker.start)
    stack.callback(broker.cleanup)
    proxy = TcpProxy("127.0.0.1", broker.port)
    await proxy.start()
    stack.push_async_callback(proxy.stop)
    rig = Rig(plan, work, pg, broker, proxy, dsn=pg.dsn.rsplit("/", 1)[0] + "/xq_faults", puback_only=puback_only)
    stack.callback(rig.stop_all)  # registered last: the processes stop first

    profile = load_catalog().get("gst-fp200")
    per_gw = plan.alarms_per_gateway * len(faults)
    for g, gw in enumerate(GATEWAYS):
        bus = ModbusBus()
        panels = [ModbusDevice(f"{gw}-p{i:02d}", profile, unit=i + 1) for i in range(per_gw)]
        for p in panels:
            bus.add(p)
        server = ModbusPortServer(bus)
        await server.start()
        stack.push_async_callback(server.stop)
        for p in panels:
            stack.callback(p.behaviour.close)
        rig.servers.append(server)
        rig.panels[gw] = panels
        rig.free[gw] = list(panels)
        rig.metrics_ports[gw] = free_port()
        config = {
            "gateway_id": gw, "site": SITE,
            "uplink": {"url": proxy.url, **({"receipt_kinds": []} if puback_only else {})},
            "outbox": {"path": str(work / gw / "outbox.sqlite3")},
            "metrics_port": rig.metrics_ports[gw], "health_interval_s": 5,
            "telemetry": {"full_report_interval_s": 10},
            "devices": [
                {"id": p.id, "profile": "gst-fp200",
                 "location": {"site": SITE, "building": f"B{g + 1}", "floor": i + 1},
                 "connection": {"kind": "modbus_tcp", "host": "127.0.0.1", "port": server.port, "unit": p.unit}}
                for i, p in enumerate(panels)
            ],
        }
        (work / f"{gw}.json").write_text(json.dumps(config))
    cloud = {
        "database": {"dsn": rig.dsn, "flavour": "native"},
        "ingest": {"mqtt": {"host": "127.0.0.1", "port": broker.port}, "client_id": "xq-faults-ingest"},
        "api": {"host": "127.0.0.1", "port": free_port(), "jwt_secret": secrets.token_hex(32),
                "evidence_dir": str(work / "evidence")},
    }
    (work / "cloud.json").write_text(json.dumps(cloud))
    return rig


async def start_backend(rig: Rig) -> None:
    done = await asyncio.to_thread(
        subprocess.run, [sys.executable, "-m", "xiaoqu", "cloud", "migrate", "-c", str(rig.work / "cloud.json")],
        cwd=REPO, capture_output=True, text=True, timeout=180, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"migrate failed: {done.stderr[-2000:]}")
    rig.start_ingest()
    rig.spawn("serve", "cloud", "serve", "-c", str(rig.work / "cloud.json"))


# -- the faults --------------------------------------------------------------------------------------------
async def gateway_first(rig: Rig) -> FaultResult:
    made = rig.inject("gateway_first")  # in alarm before the gateways even start
    started = time.time()
    for gw in GATEWAYS:
        rig.start_gateway(gw)
    note = "alarms PUBACKed with no backend"
    deadline = time.time() + 60
    while not rig.puback_only:
        awaiting = [await asyncio.to_thread(rig.metric, gw, "xq_outbox_awaiting_receipt", "alarm") for gw in GATEWAYS]
        if all(a == rig.plan.alarms_per_gateway for a in awaiting):
            break
        if time.time() > deadline:
            note = f"alarms awaiting a receipt before the backend: {awaiting}"
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(max(0.0, rig.plan.backend_after_s - (time.time() - started)))
    end = time.time()
    await start_backend(rig)
    stored = await rig.wait_stored(made, rig.plan.recover_timeout_s)
    return rig.result("gateway_first", made, end, stored, f"backend started {end - started:.0f} s later; {note}")


BEFORE_S = 0.6
"""Gateway A's alarms of a restart fault come this long before the part goes down (the panels are polled every
second, so some are on their way: polled, in the outbox, in flight, at the broker, in a batch); gateway B's
come while it is down."""


async def broker_restart(rig: Rig) -> FaultResult:
    made = rig.inject("broker_restart", ("gwa",))
    await asyncio.sleep(BEFORE_S)
    await asyncio.to_thread(rig.broker.kill)
    made += rig.inject("broker_restart", ("gwb",))
    await asyncio.sleep(rig.plan.broker_down_s)
    await asyncio.to_thread(rig.broker.start)
    end = time.time()
    stored = await rig.wait_stored(made, rig.plan.recover_timeout_s)
    return rig.result("broker_restart", made, end, stored,
                      f"SIGKILL (persistence autosave 1 s), down {rig.plan.broker_down_s:g} s")


async def database_restart(rig: Rig) -> FaultResult:
    made = rig.inject("database_restart", ("gwa",))
    await asyncio.sleep(BEFORE_S)
    await asyncio.to_thread(rig.pg.stop)
    made += rig.inject("database_restart", ("gwb",))
    await asyncio.sleep(rig.plan.db_down_s)
    await asyncio.to_thread(rig.pg.start)
    end = time.time()
    stored = await rig.wait_stored(made, rig.plan.recover_timeout_s)
    return rig.result("database_restart", made, end, stored, f"pg_ctl stop -m fast, down {rig.plan.db_down_s:g} s")


async def ingest_kill9(rig: Rig) -> FaultResult:
    made = rig.inject("ingest_kill9", ("gwa",))
    await asyncio.sleep(BEFORE_S)
    rig.signal("ingest", signal.SIGKILL)
    made += rig.inject("ingest_kill9", ("gwb",))
    await asyncio.sleep(rig.plan.ingest_down_s)
    rig.start_ingest()
    end = time.time()
    stored = await rig.wait_stored(made, rig.plan.recover_timeout_s)
    return rig.result("ingest_kill9", made, end, stored, f"down {rig.plan.ingest_down_s:g} s")


async def gateway_kill9_mid_drain(rig: Rig) -> FaultResult:
    rig.proxy.cut()
    made = rig.inject("gateway_kill9_mid_drain")
    await asyncio.sleep(rig.plan.cut_before_kill_s)  # alarms and telemetry pile up in the outboxes
    backlog = await asyncio.to_thread(rig.metric, "gwa", "xq_outbox_depth", "telemetry")
    rig.proxy.restore()
    deadline = time.time() + 60
    while time.time() < deadline and await asyncio.to_thread(rig.metric, "gwa", "xq_uplink_connected") != 1:
        await asyncio.sleep(0.01)
    alarm_rows = await asyncio.to_thread(rig.metric, "gwa", "xq_outbox_depth", "alarm")
    awaiting = await asyncio.to_thread(rig.metric, "gwa", "xq_outbox_awaiting_receipt", "alarm")
    rig.signal("gwa", signal.SIGKILL)  # reconnected: its outbox is draining
    await asyncio.sleep(rig.plan.gateway_down_s)
    rig.start_gateway("gwa")
    end = time.time()
    stored = await rig.wait_stored(made, rig.plan.recover_timeout_s)
    return rig.result("gateway_kill9_mid_drain", made, end, stored,
                      f"gwa SIGKILLed as it reconnected: alarm rows {alarm_rows:g} (awaiting a receipt {awaiting:g}), "
                      f"telemetry backlog {backlog:g}; down {rig.plan.gateway_down_s:g} s"
                      if None not in (alarm_rows, awaiting, backlog) else "gwa SIGKILLed as it reconnected")


async def wan_cut(rig: Rig) -> FaultResult:
    rig.proxy.cut()
    await asyncio.sleep(1.0)
    made = rig.inject("wan_cut")
    await asyncio.sleep(rig.plan.wan_cut_s - 1.0)
    rig.proxy.restore()
    end = time.time()
    stored = await rig.wait_stored(made, rig.plan.recover_timeout_s)
    return rig.result("wan_cut", made, end, stored, f"link down {rig.plan.wan_cut_s:g} s")


SLOW_TABLES = ("events", "ingested_messages", "command_acks", "dead_letters")


async def slow_database(rig: Rig) -> FaultResult:
    s = rig.plan.slow_statement_s

    def slow(on: bool) -> None:
        with psycopg.connect(rig.dsn, autocommit=True) as conn:
            if on:
                conn.execute("CREATE OR REPLACE FUNCTION xq_fault_slow() RETURNS trigger LANGUAGE plpgsql AS "
                             f"$$ BEGIN PERFORM pg_sleep({float(s)}); RETURN NULL; END $$")
            for table in SLOW_TABLES:
                conn.execute(f"DROP TRIGGER IF EXISTS xq_fault_slow ON {table}")
                if on:
                    conn.execute(f"CREATE TRIGGER xq_fault_slow BEFORE INSERT ON {table} "
                                 "FOR EACH STATEMENT EXECUTE FUNCTION xq_fault_slow()")

    await asyncio.to_thread(slow, True)
    made = rig.inject("slow_database")
    await asyncio.sleep(rig.plan.slow_for_s)
    await asyncio.to_thread(slow, False)
    end = time.time()
    stored = await rig.wait_stored(made, rig.plan.recover_timeout_s)
    return rig.result("slow_database", made, end, stored,
                      f"each ingest insert statement +{s:g} s for {rig.plan.slow_for_s:g} s")


RUNNERS = {
    "gateway_first": gateway_first,
    "broker_restart": broker_restart,
    "database_restart": database_restart,
    "ingest_kill9": ingest_kill9,
    "gateway_kill9_mid_drain": gateway_kill9_mid_drain,
    "wan_cut": wan_cut,
    "slow_database": slow_database,
}


# -- running -----------------------------------------------------------------------------------------------
def _quietly(stop: Any, *args: Any) -> None:
    with contextlib.suppress(RuntimeError, OSError, subprocess.SubprocessError):
        stop(*args)


async def run(plan: Plan, faults: list[str], work: Path, puback_only: bool = False) -> list[FaultResult]:
    results: list[FaultResult] = []
    async with contextlib.AsyncExitStack() as stack:
        rig = await build(plan, work, faults, stack, puback_only)
        if "gateway_first" not in faults:
            for gw in GATEWAYS:
                rig.start_gateway(gw)
            await start_backend(rig)
        for name in faults:
            if name != "gateway_first":
                if not await rig.settle():
                    print(f"  (before {name}: some alarm rows still not receipted)", flush=True)
                await asyncio.sleep(1.0)
            t0 = time.time()
            res = await RUNNERS[name](rig)
            results.append(res)
            rig.clear([i for i in rig.injections if i.fault == name])
            print(f"{name}: injected {res.injected}, stored {res.stored}, lost {res.lost}, duplicated "
                  f"{res.duplicated}, recovery {res.recovery_s} s, worst alarm latency {res.worst_latency_s} s "
                  f"({time.time() - t0:.0f} s; {res.note})", flush=True)
            dead = rig.died()  # the processes a fault killed were started again
            if dead:
                print(f"  processes that exited: {dead} (logs in {work / 'logs'})", flush=True)
        await rig.settle()
        await asyncio.sleep(3.0)  # late copies (re-sends, redeliveries) would land now: count them too
        by_fault: dict[str, list[Injection]] = {}
        for inj in rig.injections:
            by_fault.setdefault(inj.fault, []).append(inj)
        for res in results:
            final = rig.result(res.name, by_fault[res.name], 0.0, None)
            res.duplicated, res.reraised = final.duplicated, final.reraised
            res.stored, res.lost = final.stored, final.lost
    return results


def table(results: list[FaultResult]) -> str:
    lines = ["| fault | alarms injected | stored | lost | duplicated | recovery (s) | worst alarm latency (s) | "
             "re-raised | what was done |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        lines.append(f"| {r.name} | {r.injected} | {r.stored} | {r.lost} | {r.duplicated} | {r.recovery_s} | "
                     f"{r.worst_latency_s} | {r.reraised} | {r.note} |")
    return "\n".join(lines)


def _interrupted(signum: int, _frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")  # unwinds through run()'s cleanup: no process is left behind


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="short outages (a few minutes in all)")
    ap.add_argument("--only", default=",".join(FAULTS), help=f"comma-separated subset of {', '.join(FAULTS)}")
    ap.add_argument("--keep", action="store_true", help="keep the work folder (configs, logs)")
    ap.add_argument("--puback-only", action="store_true",
                    help="gateways without end-to-end delivery (a row leaves on the PUBACK): the comparison")
    args = ap.parse_args()
    faults = [f for f in FAULTS if f in args.only.split(",")]
    unknown = set(args.only.split(",")) - set(FAULTS)
    if unknown:
        ap.error(f"unknown fault(s): {', '.join(sorted(unknown))}")
    plan = QUICK if args.quick else FULL
    work = Path(tempfile.mkdtemp(prefix="xq-faults-"))
    os.chmod(work, 0o755)
    started = time.time()
    signal.signal(signal.SIGTERM, _interrupted)
    try:
        results = asyncio.run(run(plan, faults, work, args.puback_only))
    finally:
        if args.keep:
            print(f"work folder: {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    print()
    print(table(results))
    recoveries = [r.recovery_s for r in results if r.recovery_s is not None]
    emit({
        "bench": "faults",
        "quick": args.quick,
        "puback_only": args.puback_only,
        "faults_run": [r.name for r in results],
        "alarms_injected": sum(r.injected for r in results),
        "alarms_stored": sum(r.stored for r in results),
        "alarms_lost": sum(r.lost for r in results),
        "alarms_duplicated": sum(r.duplicated for r in results),
        "alarms_reraised_after_gateway_restart": sum(r.reraised for r in results),
        "max_recovery_s": max(recoveries) if recoveries else None,
        "recovery_s_by_fault": {r.name: r.recovery_s for r in results},
        "worst_alarm_latency_s_by_fault": {r.name: r.worst_latency_s for r in results},
        "gateways": len(GATEWAYS),
        "wall_s": round(time.time() - started, 1),
    })


if __name__ == "__main__":
    main()
