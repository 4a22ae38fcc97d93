"""``xiaoqu cloud serve`` and ``xiaoqu user add``: load the config once (:mod:`cloud.config`), wire, run.

``serve`` uses the sections ``database``, ``mqtt``, ``api`` (required) and ``decision``; its rules are
checked against the config and the device profiles before anything starts (``docs/backend-config.md``).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import typer

app = typer.Typer(no_args_is_help=True)
user_app = typer.Typer(no_args_is_help=True, help="Manage backend users.")

CONFIG_OPTION = typer.Option(None, "--config", "-c", help="Backend config (YAML or JSON, docs/backend-config.md).")


def serve_command(
    config: Path | None = CONFIG_OPTION,
    dsn: str | None = typer.Option(None, help="PostgreSQL DSN (overrides database.dsn)."),
    host: str | None = typer.Option(None, help="API listen address (overrides api.host)."),
    port: int | None = typer.Option(None, help="API port (overrides api.port)."),
    rules: Path | None = typer.Option(None, help="Rules YAML (overrides decision.rules; default: the shipped one)."),
) -> None:
    """Run the API (REST + WebSocket) and the decision engine."""
    from cloud.cli import backend_config, decision
    from cloud.config import ConfigError
    from cloud.serve import serve

    cfg = backend_config(config, dsn=dsn, host=host, port=port, rules=rules)
    try:
        api = cfg.require_api(str(config or "no --config"))
    except ConfigError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    checked_rules, catalog = decision(cfg, config)
    typer.echo(f"xiaoqu backend: http://{api.host}:{api.port}/api/docs")
    serve(cfg, checked_rules, catalog)


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
    from cloud.cli import backend_config

    db = backend_config(config, dsn=dsn).database
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
