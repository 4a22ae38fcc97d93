"""``xiaoqu onboard probe|add`` — for installers commissioning a device on a gateway."""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer
from rich.table import Table

from device_profiles import Catalog, ProfileError, UnknownProfile, load_catalog
from xiaoqu.output import console

app = typer.Typer(no_args_is_help=True)
out = console()

ProfilesOpt = typer.Option(
    None, "--profiles", help="Your profile folder(s) or files, added to the shipped ones (add: default is the "
    "gateway config's profiles_dir)."
)


def _catalog(paths: list[Path] | None) -> Catalog:
    try:
        return load_catalog(paths)
    except ProfileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def _host_port(text: str, default_port: int) -> tuple[str, int]:
    host, _, port = text.rpartition(":") if ":" in text else (text, "", str(default_port))
    try:
        return host or "127.0.0.1", int(port)
    except ValueError:
        typer.echo(f"--modbus {text!r}: expected HOST:PORT", err=True)
        raise typer.Exit(2) from None


@app.command()
def probe(
    profile: str = typer.Option(..., "--profile", help="Profile id, e.g. gst-fp200."),
    modbus: str | None = typer.Option(None, "--modbus", help="HOST:PORT of a Modbus TCP device."),
    unit: int = typer.Option(1, "--unit", help="Modbus unit (slave) id."),
    mqtt: str | None = typer.Option(None, "--mqtt", help="Broker URL of an MQTT device, e.g. mqtt://127.0.0.1:1883."),
    device_id: str | None = typer.Option(None, "--device-id", help="The MQTT device's id (its topic prefix)."),
    timeout: float | None = typer.Option(None, "--timeout", help="Seconds per request (Modbus) or to listen (MQTT)."),
    profiles: list[Path] | None = ProfilesOpt,
) -> None:
    """Read every point once; print pass/fail with decoded values; exit 1 if any point fails."""
    from edge.onboard import probe_modbus, probe_mqtt

    catalog = _catalog(profiles)
    try:
        prof = catalog.get(profile)
    except UnknownProfile as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if (modbus is None) == (mqtt is None):
        typer.echo("give exactly one of --modbus HOST:PORT or --mqtt URL", err=True)
        raise typer.Exit(2)
    if modbus is not None:
        if not prof.protocol.startswith("modbus"):
            typer.echo(f"profile {prof.id} speaks {prof.protocol}, not Modbus", err=True)
            raise typer.Exit(2)
        host, port = _host_port(modbus, 502)
        report = asyncio.run(probe_modbus(prof, host, port, unit, timeout))
    else:
        assert mqtt is not None
        if prof.protocol != "mqtt" or not device_id:
            typer.echo("--mqtt needs an mqtt profile and --device-id", err=True)
            raise typer.Exit(2)
        report = asyncio.run(probe_mqtt(prof, mqtt, device_id, timeout or 10.0))
    if report.connect_error:
        typer.echo(f"FAIL {report.target}: {report.connect_error}", err=True)
        raise typer.Exit(1)
    table = Table("", "point", "label", "source", "value", "unit / reason", title=f"{prof.id} @ {report.target}")
    for r in report.results:
        mark = "[green]PASS[/green]" if r.ok else "[red]FAIL[/red]"
        table.add_row(mark, r.name, r.label or "", r.source, r.shown, (r.unit or "") if r.ok else (r.error or ""))
    out.print(table)
    failed = report.failed
    summary = f"{len(report.results) - len(failed)}/{len(report.results)} points read"
    if report.requests:
        summary += f" in {report.requests} request(s)"
    if failed:
        for r in failed:
            typer.echo(f"FAIL {r.name} ({r.source}): {r.error}")
        out.print(f"[red]{summary}; {len(failed)} failed[/red]")
        raise typer.Exit(1)
    out.print(f"[green]{summary}: all passed[/green]")


@app.command()
def add(
    gateway_config: Path = typer.Option(..., "--gateway-config", help="The gateway's YAML config file to edit."),
    profile: str = typer.Option(..., "--profile", help="Profile id, e.g. acme-em200."),
    device_id: str = typer.Option(..., "--device-id", help="Unique device id (letters, digits, _ - .)."),
    site: str | None = typer.Option(None, "--site", help="Site id; default: the gateway's site."),
    building: str = typer.Option(..., "--building", help="Building, e.g. B3."),
    floor: int | None = typer.Option(None, "--floor", help="Floor number (negative for basements)."),
    unit: str | None = typer.Option(None, "--unit", help="Residential unit (单元/户), e.g. 1801."),
    area: str | None = typer.Option(None, "--area", help="Free text, e.g. 'lobby', 'car 1'."),
    name: str | None = typer.Option(None, "--name", help="Display name."),
    modbus: str | None = typer.Option(None, "--modbus", help="HOST:PORT of a Modbus TCP device."),
    modbus_unit: int = typer.Option(1, "--modbus-unit", help="Modbus unit (slave) id."),
    serial: str | None = typer.Option(None, "--serial", help="Serial port of a Modbus RTU device, e.g. /dev/ttyUSB0."),
    baudrate: int = typer.Option(9600, "--baudrate", help="Modbus RTU baud rate."),
    mqtt: bool = typer.Option(False, "--mqtt", help="An MQTT device on the gateway's broker."),
    mqtt_broker: str | None = typer.Option(None, "--mqtt-broker", help="An MQTT device on another broker (URL)."),
    camera: str | None = typer.Option(None, "--camera", help="Camera source URL (rtsp://, http://, file path)."),
    profiles: list[Path] | None = ProfilesOpt,
) -> None:
    """Add a device instance to a gateway config, validated; the rest of the file is left as it was."""
    from edge.onboard.config_edit import ConfigEditError, DeviceEntry, add_device

    chosen = [x for x in (modbus, serial, camera) if x] + (["mqtt"] if mqtt or mqtt_broker else [])
    if len(chosen) != 1:
        typer.echo("give exactly one connection: --modbus HOST:PORT, --serial PORT, --mqtt [--mqtt-broker URL] "
                   "or --camera URL", err=True)
        raise typer.Exit(2)
    connection: dict[str, str | int]
    if modbus:
        host, port = _host_port(modbus, 502)
        connection = {"kind": "modbus_tcp", "host": host, "port": port, "unit": modbus_unit}
    elif serial:
        connection = {"kind": "modbus_rtu", "port": serial, "baudrate": baudrate, "unit": modbus_unit}
    elif camera:
        connection = {"kind": "camera", "source_url": camera}
    else:
        connection = {"kind": "mqtt", **({"broker": mqtt_broker} if mqtt_broker else {})}
    entry = DeviceEntry(
        device_id=device_id, profile=profile, site=site, building=building, floor=floor, unit=unit, area=area,
        name=name, connection=connection,
    )
    try:
        add_device(gateway_config, entry, _catalog(profiles) if profiles else None)  # else: the config's profiles_dir
    except ConfigEditError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    out.print(f"[green]added {device_id} ({profile}) to {gateway_config}[/green]")
