"""``xiaoqu cloud …``: the backend's commands. A thin composition root: load config once, wire, run.

The config file (YAML or JSON, ``--config``) has one section per part (``database``, ``ingest``, …);
each command validates only the sections it uses. Command-line options override the file.
"""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, TypeVar

import typer
from pydantic import BaseModel, ValidationError

from cloud.broker.cli import app as broker_app
from cloud.config_file import load_file
from cloud.serve_cli import serve_command

# The backend's modules (psycopg, FastAPI, …) are imported inside the commands, so the ``xiaoqu`` command
# of a gateway-only install starts; `xiaoqu cloud …` there says which extra to install (xiaoqu.cli).

app = typer.Typer(no_args_is_help=True, help="Backend: migrate, ingest, serve.")

M = TypeVar("M", bound=BaseModel)

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="YAML or JSON config file with sections per part.")


def section(data: dict[str, Any], name: str, model: type[M], overrides: dict[str, Any], path: Path | None) -> M:
    raw = dict(data.get(name) or {})
    raw.update({k: v for k, v in overrides.items() if v is not None})
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise typer.BadParameter(f"{where}section '{name}': {exc}") from None


def _mqtt_override(data: dict[str, Any], mqtt: str | None) -> dict[str, Any]:
    """``--mqtt host:port`` over the file's ``ingest.mqtt`` section."""
    if mqtt is None:
        return {}
    from contract.mqtt import MqttSettings

    host, _, port = mqtt.rpartition(":")
    base = dict((data.get("ingest") or {}).get("mqtt") or {})
    return {"mqtt": MqttSettings.model_validate({**base, "host": host or "127.0.0.1", "port": int(port)})}


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
    from cloud.db import DatabaseConfig
    from cloud.db.migrate import MigrationError
    from cloud.db.migrate import migrate as run_migrate
    from cloud.ingest.maintenance import apply_retention, ensure_partitions_ahead

    data = load_file(config)
    db = section(data, "database", DatabaseConfig, {"dsn": dsn, "flavour": flavour}, config)
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
    if mqtt is None and not data.get("ingest"):
        typer.echo("no broker given (--mqtt or an 'ingest' section): the ingest session is created by the first "
                   "`xiaoqu cloud ingest`; until then only the gateways' outboxes keep what they send")
        return
    from cloud.ingest.config import IngestConfig
    from cloud.ingest.session import SessionError, ensure_sessions

    ingest_cfg = section(data, "ingest", IngestConfig, _mqtt_override(data, mqtt), config)
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
    from cloud.db import DatabaseConfig
    from cloud.ingest.config import IngestConfig
    from cloud.ingest.worker import run_workers

    data = load_file(config)
    db = section(data, "database", DatabaseConfig, {"dsn": dsn}, config)
    cfg = section(data, "ingest", IngestConfig, _mqtt_override(data, mqtt), config)
    stopped_by = run_workers(db, cfg, workers, first_index=index)
    if stopped_by is not None and stopped_by != signal.SIGINT:
        raise typer.Exit(128 + stopped_by)  # stopped by a service manager or a hang-up, not by Ctrl-C


app.command("serve")(serve_command)
app.add_typer(broker_app, name="broker")
