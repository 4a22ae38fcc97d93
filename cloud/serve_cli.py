"""``xiaoqu cloud serve`` and ``xiaoqu user add``: load the config once, wire, run.

Config file sections used (YAML or JSON): ``database`` (DSN), ``mqtt`` or ``ingest.mqtt`` (broker:
host, port, username, password — shared with ingest), ``api`` (host, port, jwt_secret, evidence_dir,
gateway_upload_token) and ``decision`` (rules, notifications, timer_interval_s).
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import typer
from pydantic import ValidationError

from cloud.config_file import load_file

app = typer.Typer(no_args_is_help=True)
user_app = typer.Typer(no_args_is_help=True, help="Manage backend users.")

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="YAML or JSON config file with sections per part.")
MQTT_KEYS = ("host", "port", "username", "password")


def build_serve_config(
    data: dict[str, Any],
    *,
    dsn: str | None = None,
    host: str | None = None,
    port: int | None = None,
    rules: Path | None = None,
    path: Path | None = None,
) -> Any:
    from cloud.serve import ServeConfig

    database = dict(data.get("database") or {})
    if dsn:
        database["dsn"] = dsn
    broker = data.get("mqtt") or (data.get("ingest") or {}).get("mqtt") or {}
    mqtt = {k: v for k, v in broker.items() if k in MQTT_KEYS}
    api = dict(data.get("api") or {})
    api.update({k: v for k, v in {"host": host, "port": port}.items() if v is not None})
    decision = dict(data.get("decision") or {})
    if rules:
        decision["rules"] = str(rules)
    try:
        return ServeConfig.model_validate({"database": database, "mqtt": mqtt, "api": api, **decision})
    except ValidationError as exc:
        where = f"{path}: " if path else ""
        raise typer.BadParameter(f"{where}{exc}") from None


def serve_command(
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = typer.Option(None, help="PostgreSQL DSN (overrides database.dsn)."),
    host: str | None = typer.Option(None, help="API listen address (overrides api.host)."),
    port: int | None = typer.Option(None, help="API port (overrides api.port)."),
    rules: Path | None = typer.Option(None, help="Rules YAML (default: the shipped cloud/alarms/rules.yaml)."),
) -> None:
    """Run the API (REST + WebSocket) and the decision engine."""
    from cloud.alarms.rules import RulesError, load_rules
    from cloud.serve import serve

    cfg = build_serve_config(load_file(config), dsn=dsn, host=host, port=port, rules=rules, path=config)
    try:
        load_rules(cfg.rules)
    except RulesError as exc:
        raise typer.BadParameter(str(exc)) from None
    typer.echo(f"xiaoqu backend: http://{cfg.api.host}:{cfg.api.port}/api/docs")
    serve(cfg)


app.command("serve")(serve_command)


@user_app.command("add")
def user_add(
    username: str = typer.Argument(..., help="Login name."),
    role: str = typer.Option("admin", help="admin | property_manager | grid_worker | installer"),
    grid: str | None = typer.Option(None, help="Grid id (grid workers)."),
    full_name: str | None = typer.Option(None, help="Display name."),
    password: str = typer.Option(..., prompt=True, hide_input=True, confirmation_prompt=True),
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = typer.Option(None, help="PostgreSQL DSN (overrides database.dsn)."),
) -> None:
    """Create a user (the first admin, for instance). The database must be migrated."""
    from psycopg import AsyncConnection

    from cloud.auth.roles import Role
    from cloud.auth.store import UserExists, add_user, audit
    from cloud.db import DatabaseConfig

    data = load_file(config)
    database = dict(data.get("database") or {})
    if dsn:
        database["dsn"] = dsn
    db = DatabaseConfig.model_validate(database)
    try:
        role_value = Role(role)
    except ValueError:
        raise typer.BadParameter(f"role must be one of {', '.join(r.value for r in Role)}") from None
    if len(password) < 8:
        raise typer.BadParameter("password must be at least 8 characters")

    async def run() -> None:
        async with await AsyncConnection.connect(db.dsn) as conn, conn.transaction():
            user = await add_user(conn, username, password, role_value, grid, full_name)
            await audit(conn, "cli", "user.create", "user", user.username, {"role": role_value.value})

    try:
        asyncio.run(run())
    except UserExists as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"created {role_value.value} {username!r}")
