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


@app.command()
def migrate(
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = typer.Option(None, help="PostgreSQL DSN (overrides database.dsn)."),
    flavour: str | None = typer.Option(None, help="auto | timescale | native (only at the first migrate)."),
) -> None:
    """Create or upgrade the database schema (re-runnable)."""
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
    from cloud.ingest.config import IngestConfig, MqttConfig
    from cloud.ingest.worker import run_workers

    data = load_file(config)
    db = section(data, "database", DatabaseConfig, {"dsn": dsn}, config)
    overrides: dict[str, Any] = {}
    if mqtt is not None:
        host, _, port = mqtt.rpartition(":")
        base = dict((data.get("ingest") or {}).get("mqtt") or {})
        overrides["mqtt"] = MqttConfig.model_validate({**base, "host": host or "127.0.0.1", "port": int(port)})
    cfg = section(data, "ingest", IngestConfig, overrides, config)
    stopped_by = run_workers(db, cfg, workers, first_index=index)
    if stopped_by is not None and stopped_by != signal.SIGINT:
        raise typer.Exit(128 + stopped_by)  # stopped by a service manager or a hang-up, not by Ctrl-C


app.command("serve")(serve_command)
app.add_typer(broker_app, name="broker")
