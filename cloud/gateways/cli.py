"""``xiaoqu gateway config push FILE --gateway ID | show | history``: a gateway's config kept by the backend.

Talks to the database and the broker directly (like ``xiaoqu user add``), with the backend's config file
(``--config``: sections ``database`` and ``mqtt``) or ``--dsn`` / ``--mqtt host:port``.
"""

from __future__ import annotations

import asyncio
import getpass
import uuid
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from cloud.db import DatabaseConfig
    from cloud.dispatch.mqtt import MqttConfig
    from cloud.gateways.store import Applied

app = typer.Typer(no_args_is_help=True, help="Gateways: their configuration kept by the backend.")
config_app = typer.Typer(no_args_is_help=True, help="A gateway's config document: push a version, show, history.")
app.add_typer(config_app, name="config")

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="Backend config file (YAML/JSON: database, mqtt).")
DSN_OPTION = typer.Option(None, "--dsn", help="PostgreSQL DSN (overrides database.dsn).")
GATEWAY_OPTION = typer.Option(..., "--gateway", "-g", help="Gateway id.")


def _settings(config: Path | None, dsn: str | None, mqtt: str | None) -> tuple[DatabaseConfig, MqttConfig]:
    from cloud.cli import backend_config

    cfg = backend_config(config, dsn=dsn, mqtt=mqtt)
    return cfg.database, cfg.publisher_settings(client_id=f"xiaoqu-cli-{uuid.uuid4().hex[:8]}")


@config_app.command("push")
def push(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="The config document (YAML)."),
    gateway: str = GATEWAY_OPTION,
    comment: str | None = typer.Option(None, "--comment", "-m", help="Why (kept in the history)."),
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = DSN_OPTION,
    mqtt: str | None = typer.Option(None, "--mqtt", help="Broker as host:port (overrides mqtt)."),
) -> None:
    """Store FILE as the gateway's next version, then publish it retained on its config topic."""
    from psycopg import AsyncConnection

    from cloud.dispatch.commands import PublishError
    from cloud.dispatch.mqtt import MqttPublisher
    from cloud.gateways import store
    from cloud.gateways.publish import config_message, publish_config

    db, broker = _settings(config, dsn, mqtt)
    document = file.read_text(encoding="utf-8")

    async def run() -> store.ConfigVersion:
        async with await AsyncConnection.connect(db.dsn) as conn, conn.transaction():
            return await store.put_config(conn, gateway, document, f"cli:{getpass.getuser()}", comment)

    try:
        stored = asyncio.run(run())
    except (store.UnknownGateway, store.DocumentError) as exc:
        typer.echo(f"{file}: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"gateway {gateway}: stored config v{stored.version} (sha256 {stored.sha256[:12]}…)")
    publisher = MqttPublisher(broker)
    publisher.start()
    try:
        asyncio.run(publish_config(publisher, stored))
    except PublishError as exc:
        typer.echo(f"not published ({exc}); push again once the broker is reachable", err=True)
        raise typer.Exit(1) from None
    finally:
        publisher.stop()
    typer.echo(f"published retained on {config_message(stored)[0]}; "
               f"`xiaoqu gateway config show -g {gateway}` shows what the gateway applied")


@config_app.command("show")
def show(
    gateway: str = GATEWAY_OPTION,
    version: int | None = typer.Option(None, "--version", help="default: the latest"),
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = DSN_OPTION,
) -> None:
    """Print a version's document, headed by what the gateway reports it applied."""
    from psycopg import AsyncConnection

    from cloud.gateways import store

    db, _ = _settings(config, dsn, None)

    async def run() -> tuple[store.ConfigVersion | None, store.Applied | None]:
        async with await AsyncConnection.connect(db.dsn) as conn:
            return await store.get_config(conn, gateway, version), await store.applied(conn, gateway)

    cfg, applied = asyncio.run(run())
    if applied is None:
        typer.echo(f"gateway {gateway!r} is unknown", err=True)
        raise typer.Exit(1)
    typer.echo(f"# gateway {gateway}: {_applied_text(applied)}")
    if cfg is None:
        typer.echo("# no config version stored" + ("" if version is None else f" with version {version}"))
        raise typer.Exit(1 if version is not None else 0)
    typer.echo(f"# config v{cfg.version} by {cfg.created_by} at {cfg.created_at:%Y-%m-%d %H:%M:%S %Z}"
               + (f": {cfg.comment}" if cfg.comment else ""))
    typer.echo(cfg.document.rstrip("\n"))


@config_app.command("history")
def history(
    gateway: str = GATEWAY_OPTION,
    limit: int = typer.Option(20, "--limit", "-n"),
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = DSN_OPTION,
) -> None:
    """Every stored version, newest first, and what the gateway applied."""
    from psycopg import AsyncConnection

    from cloud.gateways import store

    db, _ = _settings(config, dsn, None)

    async def run() -> tuple[list[store.ConfigVersion], store.Applied | None]:
        async with await AsyncConnection.connect(db.dsn) as conn:
            return await store.history(conn, gateway, limit), await store.applied(conn, gateway)

    versions, applied = asyncio.run(run())
    if applied is None:
        typer.echo(f"gateway {gateway!r} is unknown", err=True)
        raise typer.Exit(1)
    typer.echo(f"gateway {gateway}: {_applied_text(applied)}")
    for c in versions:
        mark = "*" if c.version == applied.config_version else " "
        typer.echo(f"{mark} v{c.version:<4} {c.created_at:%Y-%m-%d %H:%M:%S} {c.created_by:<16} {c.sha256[:12]} "
                   f"{c.comment or ''}".rstrip())


def _applied_text(a: Applied) -> str:
    version = "its local file" if a.config_version is None else f"config v{a.config_version}"
    refused = f"; last push refused: {a.config_error.splitlines()[0]}" if a.config_error else ""
    return f"{a.state}, running {version}{refused}"
