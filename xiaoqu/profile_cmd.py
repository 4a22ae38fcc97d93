"""``xiaoqu profile validate|show|list`` — for installers and profile authors."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from device_profiles import Catalog, CompiledProfile, ProfileError, UnknownProfile, load_catalog
from device_profiles.compiled import ConcretePoint
from device_profiles.loader import iter_profile_files, load_profile
from xiaoqu.output import console

app = typer.Typer(no_args_is_help=True)
out = console()
err = console(stderr=True)

ProfilesOpt = typer.Option(None, "--profiles", help="Your profile folder(s) or files, added to the shipped ones.")


@app.command()
def validate(paths: list[Path] = typer.Argument(..., help="Profile files or folders.")) -> None:
    """Check profiles; list every problem as file:line: field: message and exit non-zero if any."""
    files = list(iter_profile_files(paths))
    missing = [p for p in paths if not p.exists()]
    problems = [f"{p}: no such file or folder" for p in missing]
    ok = 0
    for f in files:
        if not f.exists():
            continue
        try:
            load_profile(f)
            ok += 1
        except ProfileError as exc:
            problems.extend(str(i) for i in exc.issues)
    try:
        if not problems:
            load_catalog(paths)  # cross-file checks: duplicate ids, also against the shipped ones
    except ProfileError as exc:
        problems.extend(str(i) for i in exc.issues)
    for line in problems:
        typer.echo(line, err=True)
    if problems:
        err.print(f"[red]{len(problems)} problem(s)[/red] in {len(files)} file(s)")
        raise typer.Exit(1)
    if not files:
        err.print("no profile files found")
        raise typer.Exit(1)
    out.print(f"[green]{ok} profile(s) valid[/green]")


@app.command("list")
def list_(profiles: list[Path] | None = ProfilesOpt) -> None:
    """The profiles available, one line each."""
    catalog = _catalog(profiles)
    table = Table("id", "type", "protocol", "vendor / model", "source")
    for p in sorted(catalog, key=lambda p: p.id):
        table.add_row(p.id, p.device_type, p.protocol, f"{p.vendor} {p.model}", catalog.sources.get(p.id, ""))
    out.print(table)


@app.command()
def show(profile_id: str, profiles: list[Path] | None = ProfilesOpt) -> None:
    """The point, event and command table of one profile."""
    catalog = _catalog(profiles)
    try:
        profile = catalog.get(profile_id)
    except UnknownProfile as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    compiled = CompiledProfile(profile)
    kind = f"{profile.device_type}, {profile.protocol}"
    out.print(f"[bold]{profile.id}[/bold] — {profile.vendor} {profile.model} ({kind})")
    points = Table("point", "label", "source", "type", "decoding", "unit / states", "deadband", "range",
                   "precision", title="points")
    for p in compiled.points:
        states = ", ".join(f"{k}={v}" for k, v in p.enum.items()) if p.enum else (p.unit or "")
        rng = "" if p.range is None else (f"{'' if p.range.min is None else f'{p.range.min:g}'}.."
                                          f"{'' if p.range.max is None else f'{p.range.max:g}'}")
        points.add_row(p.name, p.label or "", p.source, _type_of(p), _decoding(p), states,
                       "" if p.deadband is None else f"{p.deadband:g}", rng,
                       "" if p.precision is None else str(p.precision))
    out.print(points)
    events = Table("event", "key", "label", "severity", "trigger", "for", "readings", title="events")
    for e in compiled.events:
        trig = e.when.model_dump_json(exclude_none=True, by_alias=True) if e.when else (
            e.on_message.model_dump_json(exclude_none=True) if e.on_message else "")
        flag = " (life safety)" if e.life_safety else ""
        events.add_row(e.type, e.key, e.label or "", e.severity + flag, trig, f"{e.for_s:g}s" if e.for_s else "",
                       ", ".join(e.readings))
    out.print(events)
    commands = Table("command", "label", "arguments", "action", title="commands")
    for c in profile.commands:
        args = ", ".join(
            f"{k}:{a.type}" + (f"={a.default}" if a.default is not None else "") for k, a in c.args.items()
        )
        action = (
            "; ".join(f"{w.table} {w.address} ← {w.value}" for w in c.modbus) if c.modbus
            else f"publish {c.mqtt.topic}" if c.mqtt else ""
        )
        commands.add_row(c.name, c.label or "", args, action)
    out.print(commands)


def _type_of(p: ConcretePoint) -> str:
    """What the point holds: a bit point is a bool taken from a register, not a uint16."""
    r = p.register
    if r is None:
        return p.type or ("enum" if p.enum else "as sent")
    if p.type is not None:
        return p.type
    if r.bit is not None:
        return "bool"
    if r.bits is not None:
        return f"uint ({r.bits.length} bits)"
    return str(r.type)


def _decoding(p: ConcretePoint) -> str:
    """How the registers become the value: the register type, byte/word order where they matter, scale, offset."""
    r = p.register
    if r is None or r.table in ("coil", "discrete_input"):
        return ""
    parts = [f"from {r.type}"] if (r.bit is not None or r.bits is not None) else []
    if r.count > 1:
        parts.append(f"word_order {p.word_order}")
    parts.append(f"byte_order {p.byte_order}")
    if r.scale != 1.0:
        parts.append(f"scale {r.scale:g}")
    if r.offset != 0.0:
        parts.append(f"offset {r.offset:g}")
    return ", ".join(parts)


def _catalog(paths: list[Path] | None) -> Catalog:
    try:
        return load_catalog(paths)
    except ProfileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
