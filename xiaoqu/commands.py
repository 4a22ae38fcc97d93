"""Mounts every part's sub-commands on the root app (the explicit registry of commands)."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    from xiaoqu.profile_cmd import app as profile_app

    app.add_typer(profile_app, name="profile", help="Validate and inspect device profiles.")
    from xiaoqu.onboard_cmd import app as onboard_app

    app.add_typer(onboard_app, name="onboard", help="Installer tools: probe a device, add it to a gateway.")
    from cloud.cli import app as cloud_app
    app.add_typer(cloud_app, name="cloud", help="Backend: migrate, ingest, serve.")
    from cloud.serve_cli import user_app

    app.add_typer(user_app, name="user", help="Backend users: add the first admin, …")
    from cloud.gateways.cli import app as gateway_app

    app.add_typer(gateway_app, name="gateway", help="Gateways' config kept by the backend: push, show, history.")
    from edge.cli import app as edge_app

    app.add_typer(edge_app, name="edge", help="Run the gateway agent; check a gateway config.")
    from simulators.cli import app as sim_app

    app.add_typer(sim_app, name="sim", help="Simulated compound: run layouts and scenarios.")
