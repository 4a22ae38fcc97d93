"""``xiaoqu edge run --config FILE`` — run the gateway agent; ``xiaoqu edge check`` — validate a config."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import typer

if TYPE_CHECKING:
    from device_profiles import Catalog
    from edge.config import GatewayConfig

app = typer.Typer(no_args_is_help=True)

ConfigOpt = typer.Option(..., "--config", "-c", exists=True, dir_okay=False, help="Gateway config (YAML).")


def _load(config: Path) -> tuple[GatewayConfig, Catalog]:
    from device_profiles import ProfileError
    from edge.config import load_config

    try:
        return load_config(config)
    except ProfileError as exc:  # ConfigError too: file:line: field: problem, one per line
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None


@app.command()
def check(config: Path = ConfigOpt) -> None:
    """Validate a gateway config against the profiles (file:line errors) and print a summary."""
    cfg, _catalog = _load(config)
    typer.echo(f"{config}: gateway {cfg.gateway_id} (site {cfg.site}), {len(cfg.devices)} devices, "
               f"{len(cfg.linkage.rules)} linkage rules: OK")


@app.command()
def run(config: Path = ConfigOpt) -> None:
    """Run the gateway agent until SIGINT/SIGTERM."""
    cfg, catalog = _load(config)

    async def main() -> None:
        from edge.agent import GatewayAgent

        agent = GatewayAgent(cfg, catalog)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, agent.stop)
        await agent.run()

    asyncio.run(main())
