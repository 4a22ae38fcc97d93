"""``xiaoqu report drill`` — the fire-drill report as a self-contained HTML file (a thin wrapper over
:mod:`cloud.report.drill` and :mod:`cloud.report.html`)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import typer

from cloud.cli import CONFIG_OPTION, backend_config

app = typer.Typer(no_args_is_help=True, help="Reports from the backend's records.")

_AGO = re.compile(r"^(\d+(?:\.\d+)?)\s*(s|m|h|d)$")


def parse_time(text: str, tz: tzinfo, now: datetime) -> datetime:
    """ISO 8601 (``2026-12-02T14:00``, ``2026-12-02 14:00:05+08:00``; without an offset: in ``tz``) or a time
    ago (``90m``, ``2h``, ``1d``)."""
    m = _AGO.match(text.strip())
    if m:
        seconds = float(m.group(1)) * {"s": 1, "m": 60, "h": 3600, "d": 86400}[m.group(2)]
        return now - timedelta(seconds=seconds)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise typer.BadParameter(f"{text!r}: expected an ISO 8601 time (2026-12-02T14:00) or a time ago (2h)") from None
    return value if value.tzinfo is not None else value.replace(tzinfo=tz)


@app.command()
def drill(
    since: str = typer.Option(..., "--since", help="Start: ISO 8601 (no offset = --tz) or a time ago (2h, 90m)."),
    until: str | None = typer.Option(None, "--until", help="End (default: now)."),
    building: str | None = typer.Option(None, "--building", help="Only this building, e.g. B3."),
    site: str | None = typer.Option(None, "--site", help="Only this site."),
    sim_report: Path | None = typer.Option(None, "--sim-report", help="The simulator's report JSON (injections)."),
    out: Path = typer.Option(Path("drill-report.html"), "--out", "-o", help="The HTML file to write."),
    tz_name: str = typer.Option("UTC", "--tz", help="Time zone for the times shown, e.g. Asia/Shanghai."),
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = typer.Option(None, "--dsn", help="PostgreSQL DSN (overrides database.dsn)."),
) -> None:
    """Each fire/smoke signal: seen by the gateway, stored by the backend, shown on a console, acknowledged;
    linkage commands and their outcomes; each signal against the GB/T 26875.1 10 s limit. Exit 1 if any fails."""
    import psycopg

    from cloud.report.drill import DrillQuery, build_drill_report, load_sim_report
    from cloud.report.html import render_html

    try:
        tz: tzinfo = UTC if tz_name.upper() == "UTC" else ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise typer.BadParameter(f"--tz {tz_name!r}: unknown time zone") from None
    now = datetime.now(UTC)
    query = DrillQuery(parse_time(since, tz, now), parse_time(until, tz, now) if until else now, building, site)
    if query.until <= query.since:
        raise typer.BadParameter(f"--until {query.until.isoformat()} is not after --since {query.since.isoformat()}")
    sim = None
    if sim_report is not None:
        try:
            sim = load_sim_report(sim_report)
        except ValueError as exc:
            typer.echo(str(exc), err=True)
            raise typer.Exit(2) from None
    db = backend_config(config, dsn=dsn).database
    try:
        with psycopg.connect(db.dsn) as conn:
            report = build_drill_report(conn, query, sim)
    except psycopg.Error as exc:
        typer.echo(f"cannot read the backend's records ({db.dsn}): {exc}", err=True)
        raise typer.Exit(2) from None
    out.write_text(render_html(report, tz), encoding="utf-8")
    fig = report.figures()
    typer.echo(f"{fig['signals_within_limit']}/{fig['signals']} signals within {report.limit_s:g} s "
               f"(transmission max {_s(fig['transmission_max_s'])}, shown on a console {fig['shown_signals']}, "
               f"display max {_s(fig['display_max_s'])}); {fig['linkage_succeeded']}/{fig['linkage_commands']} "
               f"linkage commands succeeded; {fig['acknowledged_signals']} acknowledged")
    typer.echo(f"report: {out.resolve()}")
    if not report.passed:
        raise typer.Exit(1)


def _s(v: float | None) -> str:
    return "—" if v is None else f"{v:.2f} s"
