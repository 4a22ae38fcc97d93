"""``xiaoqu sim`` — run a simulated compound from a layout, play scenarios, write reports."""

from __future__ import annotations

import asyncio
import json
import logging
import math
import signal
from pathlib import Path

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

from device_profiles.loader import ProfileError, load_catalog
from xiaoqu.processes import STOP_SIGNALS, exit_code

app = typer.Typer(no_args_is_help=True, help="Simulated compound: run layouts and scenarios.")
console = Console()


PROFILES_HELP = "a folder of your own device profiles, added to the shipped ones (repeat for more)"


def _fail(message: str) -> None:
    console.print(f"[red]{message}[/red]")
    raise typer.Exit(2)


@app.command("run")
def run(
    layout: Path = typer.Option(..., "--layout", help="layout YAML (e.g. simulators/layouts/demo.yaml)"),
    scenario: Path | None = typer.Option(None, "--scenario", help="scenario YAML (simulators/scenarios/*.yaml)"),
    seed: int = typer.Option(0, "--seed", help="all randomness comes from one generator seeded with this"),
    speed: float = typer.Option(1.0, "--speed", help="run the timeline this many times faster", min=0.01),
    report: Path | None = typer.Option(None, "--report", help="write the JSON report here"),
    mqtt: str | None = typer.Option(None, "--mqtt", help="device broker URL; default: start a private Mosquitto"),
    duration: float | None = typer.Option(None, "--duration", help="scenario seconds; default: the scenario's end, "
                                          "or until Ctrl-C without a scenario"),
    ports_file: Path | None = typer.Option(None, "--ports-file", help="write the device endpoints (JSON) here"),
    uplink: str | None = typer.Option(None, "--uplink", help="uplink broker behind the WAN proxy; default: the "
                                      "device broker"),
    port_base: int | None = typer.Option(None, "--port-base", help="first Modbus port; 0 = free ports"),
    cameras: bool = typer.Option(True, "--cameras/--no-cameras", help="start the camera sources"),
    background: bool = typer.Option(True, "--background/--no-background", help="background telemetry drift"),
    profiles: list[Path] = typer.Option([], "--profiles", help=PROFILES_HELP),
) -> None:
    """Bring every device of LAYOUT up, play SCENARIO, print a summary and write the report."""
    from simulators.compound import SimulatedCompound
    from simulators.layout import load_layout
    from simulators.runner import run_simulation
    from simulators.scenario import load_scenario

    logging.getLogger("pymodbus").setLevel(logging.WARNING)
    try:
        catalog = load_catalog(profiles)
        lay = load_layout(layout, catalog)
        scen = load_scenario(scenario) if scenario else None
    except ProfileError as exc:
        _fail(str(exc))
        return
    sim = SimulatedCompound(lay, catalog=catalog, seed=seed, mqtt=mqtt, modbus_port_base=port_base, speed=speed,
                            cameras=cameras, background=background, uplink_proxy=True, uplink=uplink)
    end = duration if duration is not None else (scen.end if scen else math.inf)
    finite = math.isfinite(end)

    stopped_by: list[int] = []

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            stopped_by.append(signum)
            stop.set()

        for sig in STOP_SIGNALS:  # the simulation stops its devices and its own broker, then exits
            loop.add_signal_handler(sig, on_signal, sig)
        with Progress(TextColumn("[bold]{task.description}"), BarColumn(), TextColumn("{task.fields[t]}"),
                      TimeElapsedColumn(), console=console, transient=False) as progress:
            task = progress.add_task(f"{lay.site.id}: starting", total=end if finite else None, t="")

            def on_progress(now: float, rec: object) -> None:
                from simulators.report import InjectedRecord

                progress.update(task, completed=min(now, end) if finite else None,
                                description=f"{lay.site.id} {scen.name if scen else 'running'}",
                                t=f"t={now:7.1f}s" + (f"/{end:.0f}s" if finite else ""))
                if isinstance(rec, InjectedRecord):
                    colour = {"ok": "green", "skipped": "yellow", "error": "red"}[rec.outcome]
                    params = ", ".join(f"{k}={v}" for k, v in rec.params.items())
                    extra = f" ({rec.detail})" if rec.detail else ""
                    progress.console.print(f"[{colour}]t={rec.sim_time:7.1f}s {rec.device or '-'} {rec.action}"
                                           f" {params}{extra}[/{colour}]")

            def on_started() -> None:
                ports = sim.port_map()
                if ports_file is not None:
                    ports_file.write_text(json.dumps(ports, indent=2), encoding="utf-8")
                progress.console.print(
                    f"up in {sim.start_s:.1f}s: {len(sim.modbus)} Modbus devices on {len(sim.ports)} ports, "
                    f"{len(sim.firmware.devices) + len(sim.replayed)} MQTT devices on {sim.mqtt_url}"
                    + (f" ({len(sim.replayed)} replaying samples)" if sim.replayed else "")
                    + f", {len(sim.cameras)} cameras "
                    f"({sim.camera_status}); WAN proxy {ports['uplink_proxy']}"
                    + (f"; ports in {ports_file}" if ports_file else ""))

            result = await run_simulation(sim, scen, duration=end, progress=on_progress, stop=stop,
                                          on_started=on_started, scenario_name=str(scenario) if scenario else None)
        console.print(result.summary(), soft_wrap=True, highlight=False)
        if report is not None:
            report.write_text(result.model_dump_json(indent=2), encoding="utf-8")
            report.with_suffix(".txt").write_text(result.summary() + "\n", encoding="utf-8")
            console.print(f"report written to {report} (summary in {report.with_suffix('.txt')})")

    try:
        asyncio.run(main())
    except (ValueError, OSError, RuntimeError) as exc:  # a scenario that does not fit, a port in use, no mosquitto
        _fail(str(exc))
    if stopped_by and stopped_by[0] != signal.SIGINT:
        raise typer.Exit(exit_code(stopped_by[0]))  # stopped by a service manager or a hang-up: not a clean end


@app.command("check")
def check(
    layout: Path = typer.Option(..., "--layout", help="layout YAML"),
    scenario: list[Path] = typer.Option([], "--scenario", help="scenario YAML files to check against the layout"),
    profiles: list[Path] = typer.Option([], "--profiles", help=PROFILES_HELP),
) -> None:
    """Validate a layout (and scenarios) without starting anything."""
    from collections import Counter

    from simulators.compound import SimulatedCompound
    from simulators.layout import load_layout
    from simulators.runner import check_scenario
    from simulators.scenario import load_scenario

    try:
        catalog = load_catalog(profiles)
        lay = load_layout(layout, catalog)
        problems: list[str] = []
        sim = SimulatedCompound(lay, catalog=catalog)
        for path in scenario:
            problems += [f"{path}: {p}" for p in check_scenario(load_scenario(path), sim)]
    except ProfileError as exc:
        _fail(str(exc))
        return
    counts = Counter(d.protocol for d in lay.devices)
    console.print(f"{layout}: {len(lay.devices)} devices ({', '.join(f'{n} {p}' for p, n in sorted(counts.items()))}),"
                  f" {len(lay.gateways)} gateways, {len(lay.buses)} buses")
    if problems:
        _fail("\n".join(problems))


@app.command("gateway-config")
def gateway_config(
    layout: Path = typer.Option(..., "--layout", help="layout YAML"),
    gateway: str = typer.Option(..., "--gateway", help="gateway id (e.g. b3-gw)"),
    ports_file: Path = typer.Option(..., "--ports-file", help="the ports file `xiaoqu sim run --ports-file` wrote"),
    out: Path = typer.Option(..., "--out", help="gateway config YAML to write"),
    profiles: list[Path] = typer.Option([], "--profiles", help=PROFILES_HELP + "; the config's profiles_dir"),
) -> None:
    """Write an edge gateway config (edge.config.GatewayConfig) for one gateway of a running simulation."""
    from simulators.gateway_config import build_gateway_config, write_gateway_config
    from simulators.layout import load_layout

    try:
        catalog = load_catalog(profiles)
        lay = load_layout(layout, catalog)
        ports = json.loads(ports_file.read_text(encoding="utf-8"))
        data = build_gateway_config(lay, catalog, gateway, ports, profiles_dir=[p.resolve() for p in profiles])
    except (ProfileError, KeyError, ValueError, OSError) as exc:
        _fail(str(exc))
        return
    write_gateway_config(data, out)
    console.print(f"{out}: gateway {gateway}, {len(data['devices'])} devices")
