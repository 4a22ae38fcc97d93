"""``xiaoqu`` — one entry point, with a sub-command per job.

Each part (profiles, onboarding, edge, cloud, simulators) contributes its own Typer app; this module
only mounts them and sets up logging. Heavy imports happen inside the commands, so ``import xiaoqu.cli``
loads no part's packages (no psycopg, FastAPI, uvicorn, pymodbus, OpenCV): ``xiaoqu edge …`` works on a
gateway without the backend's packages, and a command whose packages are missing says which extra to install.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path

import typer
from pydantic import ValidationError
from rich.logging import RichHandler

from xiaoqu.commands import missing_extra_message, register

app = typer.Typer(
    name="xiaoqu",
    help="IoT edge gateway and sensing backend for smart residential compounds (智慧社区).",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Log debug detail."),
) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(name)s: %(message)s",
        handlers=[RichHandler(show_path=False, rich_tracebacks=False)],
    )


register(app)


@app.command()
def demo(
    config: Path | None = typer.Option(None, "--config", "-c", help="Demo config YAML (xiaoqu.demo.DemoConfig)."),
    mqtt: str | None = typer.Option(None, "--mqtt", help="Broker URL; default: an embedded Mosquitto."),
    database: str | None = typer.Option(None, "--database", help="PostgreSQL DSN; default: an embedded server."),
    layout: Path | None = typer.Option(None, "--layout", help="Compound layout (default: the 6-building demo); "
                                       "your own devices: docs/profile-mqtt.md, 'Run the demo with your own profile'."),
    profiles: list[Path] = typer.Option([], "--profiles", help="A folder of your own device profiles, for the "
                                        "simulator, the gateways and the backend (repeat for more)."),
    scenario: Path | None = typer.Option(None, "--scenario",
                                         help="Scenario to play (default: the fire drill; with --cameras "
                                              "the drill plus camera alarms)."),
    speed: float | None = typer.Option(None, "--speed", help="Play the scenario this many times faster."),
    cameras: bool | None = typer.Option(None, "--cameras/--no-cameras", help="Run cameras and video analytics."),
    keep_running: bool = typer.Option(False, "--keep-running", help="Keep everything up after the summary."),
) -> None:
    """The whole loop on one machine: broker, database, simulated compound, gateways, backend."""
    from rich.console import Console
    from ruamel.yaml import YAML

    from xiaoqu.demo import DemoConfig, run_demo

    data: dict[str, object] = {}
    if config is not None:
        data = YAML(typ="safe").load(config.read_text(encoding="utf-8")) or {}
    overrides = {"mqtt_url": mqtt, "database_dsn": database, "layout": layout, "scenario": scenario, "speed": speed,
                 "cameras": cameras, "keep_running": keep_running or None, "profiles": profiles or None}
    data.update({k: v for k, v in overrides.items() if v is not None})
    try:
        cfg = DemoConfig.model_validate(data)
    except ValidationError as exc:
        typer.echo(f"{config or 'demo options'}: {exc}", err=True)
        raise typer.Exit(2) from None
    raise typer.Exit(run_demo(cfg, Console()).code)


def main() -> None:
    try:
        app()
    except ModuleNotFoundError as exc:  # a reduced install (xiaoqu[edge] or [cloud]) running another part's command
        message = missing_extra_message(sys.argv[1:], exc)
        if message is None:
            raise
        print(message, file=sys.stderr)
        raise SystemExit(2) from None
