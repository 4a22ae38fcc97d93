"""``xiaoqu demo`` — the whole loop on one machine, from the real commands.

broker + database (the configured ones, or embedded defaults) → ``xiaoqu cloud migrate`` →
``xiaoqu cloud ingest`` + ``xiaoqu cloud serve`` → ``xiaoqu sim run`` (a simulated compound playing a
scenario) → one ``xiaoqu edge run`` per gateway of the layout → the property manager's live view: alarm,
incident and command changes from the backend's WebSocket, then a summary.

Each part runs as its own process, exactly as an operator would run it; their logs are in the work
folder. The scenario is shifted by a start-up delay so the gateways are connected before it begins.

Your own devices: ``--profiles DIR`` (your profile folder) and ``--layout FILE`` (your devices). The folder
goes to every part — simulator, gateways and the backend (``decision.profiles``) — and a device whose type
has no simulator here replays its profile's examples (:mod:`simulators.replay_devices`). A layout the
default fire drill does not fit runs without a scenario until Ctrl-C, which then ends it normally.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from pydantic import Field
from rich.console import Console
from rich.table import Table
from ruamel.yaml import YAML

from contract.base import StrictModel
from xiaoqu import demo_security, embedded, processes

logger = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parent.parent


class DemoConfig(StrictModel):
    mqtt_url: str | None = Field(default=None, description="broker to use; none = start an embedded Mosquitto")
    database_dsn: str | None = Field(default=None, description="PostgreSQL server; none = start an embedded one")
    layout: Path = REPO / "simulators" / "layouts" / "demo.yaml"
    profiles: list[Path] = Field(default_factory=list, description="your device profile folders (added to the "
                                 "shipped ones) for the simulator, the gateways and the backend")
    scenario: Path | None = REPO / "simulators" / "scenarios" / "fire_drill.yaml"
    speed: float = Field(default=1.0, gt=0)
    seed: int = 1
    cameras: bool = Field(default=False, description="run the camera sources and on-gateway video analytics")
    startup_delay_s: float = Field(default=20.0, ge=0, description="scenario starts this long after the devices")
    api_port: int = Field(default=0, ge=0, le=65535, description="0 = a free port")
    linger_s: float = Field(default=10.0, ge=0, description="keep watching this long after the scenario ends")
    keep_running: bool = Field(default=False, description="after the summary, keep everything up until Ctrl-C")
    workdir: Path | None = None
    database_name: str = Field(default="xiaoqu_demo", pattern=r"^[a-z_][a-z0-9_]{0,62}$")


@dataclass
class DemoResult:
    code: int
    seen: dict[str, Any] = field(default_factory=dict)
    work: Path | None = None


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def stage(self) -> int:
        """Stop order: gateways and simulator first, then the backend (broker and database come last)."""
        return 0 if self.name == "sim" or self.name.startswith("edge-") else 1


STOP_STAGES = ("gateways and simulator", "backend (serve, ingest)")


@dataclass
class Run:
    config: DemoConfig
    work: Path
    console: Console
    stop: processes.StopSignals
    children: list[Child] = field(default_factory=list)

    def xiaoqu(self, name: str, *args: str, wait: bool = False, timeout: float = 120) -> Child | None:
        """Run ``xiaoqu ARGS`` as a child process with its output in ``<work>/logs/<name>.log``."""
        logs = self.work / "logs"
        logs.mkdir(exist_ok=True)
        log_path = logs / f"{name}.log"
        cmd = [sys.executable, "-m", "xiaoqu", *args]
        with log_path.open("ab") as log:
            if wait:
                done = processes.run(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.work, timeout=timeout)
                if done.returncode != 0:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise DemoError(f"`xiaoqu {' '.join(args)}` failed (exit {done.returncode}); {log_path}:\n{tail}")
                return None
            # its own session (we stop it and what it started, in order) and SIGTERM if we die
            proc = processes.spawn(cmd, stdout=log, stderr=subprocess.STDOUT, cwd=self.work)
        child = Child(name, proc, log_path)
        self.children.append(child)
        return child

    def check_children(self) -> None:
        for c in self.children:
            code = c.proc.poll()
            if code is not None and c.name != "sim":
                tail = c.log.read_text(errors="replace")[-2000:]
                raise DemoError(f"{c.name} exited with code {code}; see {c.log}:\n{tail}")

    def stop_all(self, grace_s: float = 10.0) -> None:
        """Stop every child in order (gateways and simulator, then the backend), each stage bounded."""
        for stage, what in enumerate(STOP_STAGES):
            procs = [c.proc for c in reversed(self.children) if c.stage == stage]
            if any(p.poll() is None for p in procs):
                self.console.print(f"stopping {what} …")
            processes.stop(procs, grace_s=grace_s, group=True)


class DemoError(RuntimeError):
    """The demo could not go on; the message says which part failed and where its log is."""


def _yaml_dump(data: Any, path: Path) -> None:
    yaml = YAML()
    yaml.default_flow_style = False
    with path.open("w", encoding="utf-8") as fh:
        yaml.dump(data, fh)


def shifted_scenario(source: Path, delay_s: float, out: Path) -> Path:
    """A copy of a scenario with every step (and its duration) ``delay_s`` later."""
    data = YAML(typ="safe").load(source.read_text(encoding="utf-8"))
    for step in data.get("steps", []):
        step["at"] = float(step["at"]) + delay_s
    if "duration" in data:
        data["duration"] = float(data["duration"]) + delay_s
    data.setdefault("steps", []).insert(0, {"at": 0, "action": "mark", "message": "devices up; gateways starting"})
    _yaml_dump(data, out)
    return out


def _wait(predicate: Any, timeout: float, what: str, run: Run) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if predicate():
            return
        run.check_children()
        time.sleep(0.2)
    raise DemoError(f"timed out after {timeout:g}s waiting for {what}")


@contextlib.contextmanager
def _services(config: DemoConfig, work: Path, console: Console) -> Iterator[tuple[str, str]]:
    with contextlib.ExitStack() as stack:
        if config.mqtt_url:
            mqtt_url = config.mqtt_url
        else:
            mqtt_url = stack.enter_context(demo_security.secure_mosquitto(work, config.layout, config.profiles))
            console.print(f"embedded Mosquitto: {mqtt_url} (TLS and one account per gateway; anonymous refused)")
        if config.database_dsn:
            dsn = config.database_dsn
        else:
            dsn = stack.enter_context(embedded.postgres(work))
            console.print(f"embedded PostgreSQL: {dsn}")
        yield mqtt_url, dsn


def _free_port() -> int:
    return embedded.free_port()


def _cloud_config(run: Run, mqtt_url: str, dsn: str, api_port: int) -> Path:
    broker = urlparse(mqtt_url)
    data = {
        "database": {"dsn": dsn},
        "ingest": {"mqtt": {"host": broker.hostname or "127.0.0.1", "port": broker.port or 1883},
                   "client_id": f"xq-demo-ingest-{secrets.token_hex(3)}"},
        "api": {"host": "127.0.0.1", "port": api_port, "jwt_secret": secrets.token_hex(32),
                "evidence_dir": str(run.work / "evidence"), "gateway_upload_token": secrets.token_hex(16)},
    }
    if run.config.profiles:  # the backend checks commands and their timeouts against the same profiles
        data["decision"] = {"profiles": [str(p) for p in run.config.profiles]}
    if (secure := demo_security.existing(run.work)) is not None:
        secure.cloud_credentials(data)
    path = run.work / "cloud.yaml"
    _yaml_dump(data, path)
    return path


def _layout(config: DemoConfig) -> Any:
    """The layout, read with the shipped profiles plus ``config.profiles`` (``ProfileError`` when either is wrong)."""
    from device_profiles import load_catalog
    from simulators.layout import load_layout

    return load_layout(config.layout, load_catalog(config.profiles))


def _gateways(config: DemoConfig) -> list[str]:
    return list(_layout(config).gateways)


def _profile_args(config: DemoConfig) -> list[str]:
    return [arg for p in config.profiles for arg in ("--profiles", str(p))]


def prepare(config: DemoConfig, console: Console) -> DemoConfig:
    """Absolute paths (the parts run in the work folder), the inputs checked before anything starts, and the
    scenario: with a layout of your own and no ``--scenario``, the fire drill when it fits the layout, else none.
    Raises ``ProfileError`` (file:line: field: message) for a wrong profile or layout."""
    from device_profiles import load_catalog
    from simulators.compound import SimulatedCompound
    from simulators.layout import load_layout
    from simulators.runner import check_scenario
    from simulators.scenario import load_scenario

    update: dict[str, Any] = {"layout": config.layout.resolve(), "profiles": [p.resolve() for p in config.profiles]}
    if config.cameras and "scenario" not in config.model_fields_set:  # with cameras: the drill + video alarms
        update["scenario"] = REPO / "simulators" / "scenarios" / "fire_drill_cameras.yaml"
    elif config.scenario is not None:
        update["scenario"] = config.scenario.resolve()
    if config.workdir is not None:
        update["workdir"] = config.workdir.resolve()
    fields = set(config.model_fields_set)
    config = config.model_copy(update=update)
    catalog = load_catalog(config.profiles)
    layout = load_layout(config.layout, catalog)
    if "layout" in fields and "scenario" not in fields and config.scenario is not None:  # a default drill
        problems = check_scenario(load_scenario(config.scenario), SimulatedCompound(layout, catalog=catalog))
        if problems:
            console.print(f"the default scenario ({config.scenario.name}) does not fit {config.layout.name} "
                          f"({problems[0]}): no scenario — the devices run until Ctrl-C")
            config = config.model_copy(update={"scenario": None})
    replayed = [f"{d.id} ({d.profile})" for d in layout.devices if d.replay is not None]
    if replayed:
        console.print(f"replaying their profiles' samples: {', '.join(replayed[:10])}"
                      + (f" and {len(replayed) - 10} more" if len(replayed) > 10 else ""))
    return config


def _new_seen() -> dict[str, Any]:
    return {"alarm": {}, "incident": {}, "command": {}, "first_push_s": {}, "alarms_final": []}


def _final_alarms(run: Run, api: str, username: str, password: str) -> list[dict[str, Any]]:
    """Every alarm (active and cleared) in the backend, for the summary (none, said, when it cannot be read)."""
    import httpx

    alarms: list[dict[str, Any]] = []
    try:
        with httpx.Client(base_url=api, timeout=10) as http:
            token = http.post("/api/auth/token", data={"username": username, "password": password}).json()
            auth = {"Authorization": f"Bearer {token['access_token']}"}
            for active in ("true", "false"):
                got = http.get("/api/alarms", params={"active": active, "limit": 1000}, headers=auth).json()
                alarms += got if isinstance(got, list) else []
    except (httpx.HTTPError, KeyError, TypeError, ValueError) as exc:
        run.console.print(f"[yellow]the backend's alarms could not be read for the summary: {exc}[/yellow]")
    return alarms


async def _watch(run: Run, api: str, username: str, password: str, until: Any, seen: dict[str, Any]) -> None:
    """Print alarm / incident / command changes from the WebSocket as they happen, into ``seen``."""
    import httpx
    import websockets

    async with httpx.AsyncClient(base_url=api, timeout=10) as http:
        token = (await http.post("/api/auth/token", data={"username": username, "password": password})).json()
        ws_url = api.replace("http://", "ws://") + f"/api/ws?token={token['access_token']}"
        async with websockets.connect(ws_url) as ws:
            while not until():
                try:
                    raw = await asyncio.wait_for(ws.recv(), timeout=0.5)
                except TimeoutError:
                    run.check_children()
                    continue
                change = json.loads(raw)
                kind = change.get("kind", "?")
                data = change.get("data") or {}
                now = datetime.now(UTC)
                if kind == "alarm":
                    seen["alarm"][change.get("id")] = data
                    first = data.get("first_ts")
                    lag = ""
                    if first and change.get("op") == "raised":
                        delay = (now - datetime.fromisoformat(first)).total_seconds()
                        lag = f" (observed → on screen {delay:.2f} s)"
                        seen["first_push_s"].setdefault(data.get("type"), delay)
                    style = "bold red" if data.get("severity") == "critical" else "yellow"
                    detail = data.get("detail") or {}
                    zone = f" zone {detail['zone']}" if isinstance(detail, dict) and "zone" in detail else ""
                    run.console.print(
                        f"[{style}]ALARM {change.get('op')}[/{style}] {data.get('severity')} {data.get('type')} "
                        f"{data.get('device_id')}{zone} {data.get('building') or ''} F{data.get('floor') or '-'}{lag}"
                    )
                elif kind == "incident":
                    seen["incident"][change.get("id")] = data
                    run.console.print(f"[bold magenta]INCIDENT {change.get('op')}[/bold magenta] "
                                      f"{data.get('type', '')} {data.get('building', '')} {data.get('title', '')}")
                elif kind == "command":
                    seen["command"][change.get("id")] = data
                    run.console.print(f"[cyan]COMMAND {data.get('state', change.get('op'))}[/cyan] "
                                      f"{data.get('command')} → {data.get('device_id')} {data.get('reason') or ''}")
                else:
                    run.console.print(f"{kind} {change.get('op', '')}")


def _summary(console: Console, seen: dict[str, Any]) -> None:
    table = Table("alarm", "severity", "device", "building", "floor", "active", title="alarms in the backend")
    for a in seen.get("alarms_final", []):
        table.add_row(str(a.get("type")), str(a.get("severity")), str(a.get("device_id")), str(a.get("building")),
                      str(a.get("floor")), str(a.get("active")))
    console.print(table)
    commands = Table("command", "device", "status", "reason", title="linkage commands")
    for c in seen["command"].values():
        commands.add_row(
            str(c.get("command")), str(c.get("device_id")), str(c.get("state")), str(c.get("reason") or "")
        )
    console.print(commands)
    for kind, delay in sorted(seen["first_push_s"].items()):
        console.print(f"first {kind}: observed at the device → pushed to the dashboard in {delay:.2f} s")


def run_demo(config: DemoConfig, console: Console) -> DemoResult:
    """Run the loop; return the exit code and what the property manager's view saw.

    SIGINT, SIGTERM or SIGHUP (to this process alone, as ``kill`` or a closed SSH session sends it) stops
    everything it started, in order — gateways and simulator, then serve and ingest, then the embedded
    broker and database — and the code is 128 + the signal (SIGINT after the summary of ``keep_running``:
    the demo's own verdict). Every child also gets SIGTERM from the kernel if this process dies by SIGKILL.
    """
    logging.getLogger("httpx").setLevel(logging.WARNING)
    from device_profiles.loader import ProfileError

    try:
        config = prepare(config, console)
    except (ProfileError, OSError) as exc:
        console.print(f"[red]demo not started:[/red] {exc}", highlight=False)
        return DemoResult(2, work=config.workdir)
    with processes.StopSignals() as stop:
        try:
            return _run_demo(config, console, stop)
        except processes.StopSignal as sig:
            console.print(f"[yellow]stopped by {processes.signal_name(sig.signum)}[/yellow]: everything the demo "
                          "started has been stopped")
            return DemoResult(sig.code, work=config.workdir)


def _run_demo(config: DemoConfig, console: Console, stop: processes.StopSignals) -> DemoResult:
    work_ctx = contextlib.nullcontext(config.workdir) if config.workdir else embedded.workdir()
    with work_ctx as work_path:
        assert work_path is not None
        work = Path(work_path)
        work.mkdir(parents=True, exist_ok=True)
        console.print(f"work folder (configs and logs): {work}")
        try:
            services = contextlib.ExitStack()
            mqtt_url, dsn = services.enter_context(_services(config, work, console))
        except embedded.EmbeddedServiceError as exc:
            console.print(f"[red]demo stopped:[/red] {exc}")
            return DemoResult(1, work=work)
        with services:
            run = Run(config, work, console, stop)
            try:
                return _run(run, mqtt_url, dsn)
            except DemoError as exc:
                console.print(f"[red]demo stopped:[/red] {exc}")
                return DemoResult(1, work=work)
            finally:
                stop.shield()  # a signal from here on must not cut the stop short
                run.stop_all()
                if config.mqtt_url is None or config.database_dsn is None:
                    console.print("stopping the embedded broker and database …")


def _drill_report(run: Run, dsn: str, started: datetime, sim_report: Path) -> None:
    import psycopg

    from cloud.report.drill import write_drill_report

    drill_html = (run.config.workdir or Path.cwd()) / f"drill-report-{started:%Y%m%d-%H%M%S}.html"  # outlives it
    try:
        fig = write_drill_report(dsn, started, drill_html, sim_report=sim_report).figures()
        run.console.print(f"fire-drill report: {drill_html.resolve()} ({fig['signals_within_limit']}/"
                          f"{fig['signals']} signals within 10 s)")
    except (psycopg.Error, OSError, ValueError) as exc:
        run.console.print(f"[yellow]no fire-drill report: {exc}[/yellow]")


def _run(run: Run, mqtt_url: str, dsn: str) -> DemoResult:
    config, console = run.config, run.console
    started = datetime.now(UTC)
    import psycopg

    with psycopg.connect(dsn, autocommit=True) as conn:
        name = config.database_name
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    params = conninfo_to_dict(dsn)
    params["dbname"] = config.database_name
    demo_dsn = make_conninfo(**params)  # type: ignore[arg-type]
    api_port = config.api_port or _free_port()
    cloud_cfg = _cloud_config(run, mqtt_url, demo_dsn, api_port)
    console.print("migrating the database …")
    run.xiaoqu("migrate", "cloud", "migrate", "-c", str(cloud_cfg), wait=True)
    password = secrets.token_urlsafe(12)
    run.xiaoqu("user", "user", "add", "manager", "--role", "property_manager", "--password", password,
               "--dsn", demo_dsn, wait=True)
    run.xiaoqu("ingest", "cloud", "ingest", "-c", str(cloud_cfg))
    run.xiaoqu("serve", "cloud", "serve", "-c", str(cloud_cfg))
    api = f"http://127.0.0.1:{api_port}"

    def api_up() -> bool:
        import httpx

        try:
            return httpx.get(f"{api}/api/docs", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    _wait(api_up, 60, "the API", run)
    console.print(f"backend up: {api}/api/docs — log in as [bold]manager[/bold] / [bold]{password}[/bold]")

    ports = run.work / "ports.json"
    report = run.work / "sim-report.json"
    secure = demo_security.existing(run.work)
    broker_args = secure.sim_args() if secure else ["--mqtt", mqtt_url]
    sim_args = ["sim", "run", "--layout", str(config.layout), *broker_args, "--seed", str(config.seed),
                "--speed", str(config.speed), "--ports-file", str(ports), "--report", str(report),
                *_profile_args(config)]
    if not config.cameras:
        sim_args.append("--no-cameras")
    if config.scenario is not None:
        scen = shifted_scenario(config.scenario, config.startup_delay_s * config.speed, run.work / "scenario.yaml")
        sim_args += ["--scenario", str(scen)]
    sim = run.xiaoqu("sim", *sim_args)
    assert sim is not None
    _wait(ports.exists, 120, "the simulated compound to start", run)
    gateways = _gateways(config)
    for gw in gateways:
        gw_cfg = run.work / f"gateway-{gw}.yaml"
        run.xiaoqu(f"gwconf-{gw}", "sim", "gateway-config", "--layout", str(config.layout), "--gateway", gw,
                   "--ports-file", str(ports), "--out", str(gw_cfg), *_profile_args(config), wait=True)
        if secure:
            secure.secure_gateway_config(gw_cfg)
        run.xiaoqu(f"edge-{gw}", "edge", "run", "--config", str(gw_cfg))
    if config.scenario is not None:
        console.print(f"{len(gateways)} gateway(s) started; scenario {config.scenario.name} "
                      f"begins in {config.startup_delay_s:g} s")
    else:
        console.print(f"{len(gateways)} gateway(s) started; no scenario: watching until Ctrl-C")

    linger_until: list[float] = []

    def finished() -> bool:
        if sim.proc.poll() is None:
            return False
        if not linger_until:
            linger_until.append(time.monotonic() + config.linger_s)
            console.print("scenario over; watching a little longer …")
        return time.monotonic() > linger_until[0]

    seen = _new_seen()
    try:
        run.stop.run_async(_watch(run, api, "manager", password, finished, seen))
    except processes.StopSignal as sig:
        if config.scenario is not None or sig.signum != signal.SIGINT:
            raise  # a scenario cut short, or a service manager's stop: not the demo's own end
        console.print("Ctrl-C: the summary, then everything stops")
    seen["alarms_final"] = _final_alarms(run, api, "manager", password)
    _summary(console, seen)
    if report.exists():
        console.print(f"simulator report (what was injected and when): {report}")
    if config.scenario is not None:
        _drill_report(run, demo_dsn, started, report)
    if config.keep_running and config.scenario is not None:
        console.print(f"everything is still running: {api}/api/docs (manager / {password}); Ctrl-C to stop")
        try:
            while True:
                run.check_children()
                time.sleep(1)
        except processes.StopSignal as sig:
            if sig.signum != signal.SIGINT:
                raise  # a service manager's SIGTERM or a hang-up is not the user's Ctrl-C: non-zero
    if config.scenario is not None and "fire" in config.scenario.name:
        fire_seen = any(a.get("type") in ("fire.alarm", "smoke.alarm") for a in seen.get("alarms_final", []))
        if not fire_seen:
            console.print("[red]the fire drill raised no fire alarm in the backend[/red]")
            return DemoResult(1, seen, run.work)
    return DemoResult(0, seen, run.work)
