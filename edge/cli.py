"""``xiaoqu edge run --config FILE`` — run the gateway agent; ``xiaoqu edge check`` — validate a config;
``xiaoqu edge install-service`` — the systemd unit and the gateway's folders."""

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
        from edge.watchdog import Notifier

        agent = GatewayAgent(cfg, catalog, notifier=Notifier.from_env())
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, agent.stop)
        await agent.run()

    asyncio.run(main())


@app.command("install-service")
def install_service(
    config: Path | None = typer.Option(None, "--config", "-c", exists=True, dir_okay=False,
                                       help="Gateway config to install as /etc/xiaoqu/gateway.yaml (validated first)."),
    root: Path = typer.Option(Path("/"), "--root", help="Install below this folder (an image, a test)."),
    executable: str | None = typer.Option(None, "--exec", help="xiaoqu executable for ExecStart; default: this one."),
    force: bool = typer.Option(False, "--force", help="Replace an existing /etc/xiaoqu/gateway.yaml that differs."),
) -> None:
    """Write the systemd unit (Type=notify, watchdog, Restart=always), /etc/xiaoqu and /var/lib/xiaoqu."""
    from edge import service_install as si

    if config is not None:
        _load(config)
    report = si.install_service(root, executable or si.default_executable(), config, force=force)
    installed = root / si.CONFIG_DIR / si.CONFIG_NAME
    if installed.exists():
        cfg, _catalog = _load(installed)
        spool = cfg.evidence.spool_dir if cfg.evidence is not None else None
        report.warnings += si.state_warnings(cfg.outbox.path, cfg.snapshot_dir, spool)
    for path in report.written:
        typer.echo(f"wrote {path}")
    for warning in report.warnings:
        typer.echo(f"warning: {warning}", err=True)
    typer.echo("next: systemctl daemon-reload && systemctl enable --now xiaoqu-edge ; "
               "journalctl -u xiaoqu-edge -f to follow it")
