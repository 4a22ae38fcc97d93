"""``xiaoqu cloud …``: the backend's commands. A thin composition root: load config once, wire, run.

The config file (YAML or JSON, ``--config``) is one :class:`cloud.config.BackendConfig` with a section per
part (``database``, ``mqtt``, ``ingest``, ``api``, ``decision``); command-line options override the file.
Errors name the file, the line and the field (``docs/backend-config.md``).
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from cloud.broker.cli import app as broker_app
from cloud.serve_cli import serve_command

if TYPE_CHECKING:
    from cloud.alarms.rules import Rules
    from cloud.config import BackendConfig
    from device_profiles import Catalog

# The backend's modules (psycopg, FastAPI, …) are imported inside the commands, so the ``xiaoqu`` command
# of a gateway-only install starts; `xiaoqu cloud …` there says which extra to install (xiaoqu.cli).

app = typer.Typer(no_args_is_help=True, help="Backend: migrate, ingest, serve.")
config_app = typer.Typer(no_args_is_help=True, help="The backend config: check a file.")

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="Backend config (YAML or JSON, docs/backend-config.md).")


def backend_config(
    path: Path | None,
    *,
    dsn: str | None = None,
    flavour: str | None = None,
    mqtt: str | None = None,
    host: str | None = None,
    port: int | None = None,
    rules: Path | None = None,
) -> BackendConfig:
    """The config file with the command-line options over it; problems (file:line: field) end the command."""
    from cloud.config import load_config
    from device_profiles import ProfileError

    try:
        return load_config(path).with_options(dsn=dsn, flavour=flavour, mqtt=mqtt, host=host, port=port, rules=rules)
    except ProfileError as exc:  # ConfigError: one problem per line
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


def decision(config: BackendConfig, path: Path | None) -> tuple[Rules, Catalog]:
    """The rules and profiles the config names, checked against each other and the config (or the end)."""
    from cloud.config import load_decision
    from device_profiles import ProfileError

    try:
        return load_decision(config, path)
    except ProfileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def migrate(
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = typer.Option(None, help="PostgreSQL DSN (overrides database.dsn)."),
    flavour: str | None = typer.Option(None, help="auto | timescale | native (only at the first migrate)."),
    mqtt: str | None = typer.Option(
        None, help="broker as host:port: also create the ingest workers' persistent sessions there "
        "(done too when the config file has an 'ingest' section)."
    ),
    workers: int = typer.Option(1, min=1, help="ingest workers whose sessions to create (indexes 0..N-1)."),
) -> None:
    """Create or upgrade the database schema (re-runnable); create the ingest MQTT sessions, so the broker
    queues what gateways send from now on, even before the first `xiaoqu cloud ingest`."""
    from cloud.db.migrate import MigrationError
    from cloud.db.migrate import migrate as run_migrate
    from cloud.ingest.maintenance import apply_retention, ensure_partitions_ahead

    cfg = backend_config(config, dsn=dsn, flavour=flavour, mqtt=mqtt)
    db = cfg.database
    try:
        result = run_migrate(db)
    except MigrationError as exc:
        typer.echo(f"migrate failed: {exc}", err=True)
        raise typer.Exit(1) from None
    from cloud.db import connect

    with connect(db.dsn) as conn:
        if result.flavour == "native":
            ensure_partitions_ahead(conn, 3)
        apply_retention(conn, result.flavour, db)
    applied = ", ".join(map(str, result.applied)) or "none"
    typer.echo(f"flavour {result.flavour}; applied: {applied}; already applied: {len(result.already)}")
    if mqtt is None and cfg.ingest is None:
        typer.echo("no broker given (--mqtt or an 'ingest' section): the ingest session is created by the first "
                   "`xiaoqu cloud ingest`; until then only the gateways' outboxes keep what they send")
        return
    from cloud.ingest.session import SessionError, ensure_sessions

    ingest_cfg = cfg.ingest_settings()
    try:
        sessions = ensure_sessions(ingest_cfg, workers)
    except SessionError as exc:
        typer.echo(f"ingest session not created: {exc}; the first `xiaoqu cloud ingest` creates it", err=True)
        return
    for s in sessions:
        typer.echo(f"ingest session {s.client_id} on {ingest_cfg.mqtt.host}:{ingest_cfg.mqtt.port}: "
                   f"{'already there' if s.existed else 'created'} (kept {ingest_cfg.session_expiry_s} s while away)")


@app.command()
def ingest(
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = typer.Option(None, help="PostgreSQL DSN (overrides database.dsn)."),
    mqtt: str | None = typer.Option(None, help="broker as host:port (overrides ingest.mqtt)."),
    workers: int = typer.Option(1, min=1, help="worker processes to run here."),
    index: int = typer.Option(0, min=0, help="index of the first worker (client id '<client_id>-<index>')."),
) -> None:
    """Consume telemetry, events, state and acks from MQTT and store them (ack after commit)."""
    from cloud.ingest.worker import run_workers

    cfg = backend_config(config, dsn=dsn, mqtt=mqtt)
    stopped_by = run_workers(cfg.database, cfg.ingest_settings(), workers, first_index=index)
    if stopped_by is not None and stopped_by != signal.SIGINT:
        raise typer.Exit(128 + stopped_by)  # stopped by a service manager or a hang-up, not by Ctrl-C


@config_app.command("check")
def config_check(
    file: Path | None = typer.Argument(None, help="The backend config (YAML or JSON); none: the defaults."),
) -> None:
    """Validate a backend config, its rules (against the config and the device profiles) and the profiles it
    names; print OK and a summary, or every problem as file:line: field: message (exit 1)."""
    from cloud.config import BackendConfig, load_decision, read_config, summary
    from device_profiles import ProfileError

    try:
        cfg, doc = read_config(file) if file is not None else (BackendConfig(), {})
        rules, catalog = load_decision(cfg, file)
    except ProfileError as exc:  # ConfigError / RulesError: one problem per line
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    typer.echo(f"OK: {file or 'the defaults'}: {summary(cfg, rules, catalog, list(doc))}")


app.command("serve")(serve_command)
app.add_typer(config_app, name="config")
app.add_typer(broker_app, name="broker")
