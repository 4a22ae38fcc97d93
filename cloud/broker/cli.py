"""``xiaoqu cloud broker …``: set up Mosquitto's TLS, accounts and ACL; add and revoke gateways."""

from __future__ import annotations

from pathlib import Path

import typer

# cloud.broker.accounts (cryptography) is imported inside the commands: `xiaoqu --help` stays light.

app = typer.Typer(no_args_is_help=True, help="Broker security: CA + TLS, per-gateway accounts, ACL, revocation.")

DIR_OPTION = typer.Option(Path("/etc/xiaoqu/broker"), "--dir", "-d", help="The broker folder.")
DEBIAN_PID = Path("/run/mosquitto/mosquitto.pid")


def _fail(exc: Exception) -> typer.Exit:
    typer.echo(f"error: {exc}", err=True)
    return typer.Exit(1)


@app.command()
def init(
    directory: Path = DIR_OPTION,
    hostname: list[str] = typer.Option([], "--hostname", help="Name or IP gateways dial (repeat); default: this host."),
    tls_port: int = typer.Option(8883, help="TLS listener port (gateways)."),
    tls_bind: str = typer.Option("0.0.0.0", help="TLS listener address."),
    local_port: int = typer.Option(1883, help="Loopback listener for the backend on this host; 0 = none."),
    client_cert: bool = typer.Option(True, "--client-cert/--no-client-cert",
                                     help="Gateways also need a client certificate from the CA."),
    force: bool = typer.Option(False, help="Start over (new CA: every gateway must be added again)."),
) -> None:
    """Create the CA, the broker certificate, the ingest and serve accounts, the ACL and xiaoqu.conf."""
    from cloud.broker.accounts import BrokerFolder, BrokerSettings, BrokerSetupError, default_hostnames

    settings = BrokerSettings(hostnames=hostname or default_hostnames(), tls_port=tls_port, tls_bind=tls_bind,
                              local_port=local_port or None, require_client_cert=client_cert)
    try:
        creds = BrokerFolder(directory).init(settings, force=force)
    except BrokerSetupError as exc:
        raise _fail(exc) from None
    typer.echo(f"broker folder: {directory}")
    typer.echo(f"include it in Mosquitto:  ln -s {directory / 'xiaoqu.conf'} /etc/mosquitto/conf.d/xiaoqu.conf")
    for role, c in creds.items():
        typer.echo(f"{role}: username {c.username}, password in {c.file}")


@app.command("add-gateway")
def add_gateway(
    gateway_id: str = typer.Argument(..., help="Gateway id (its MQTT username)."),
    site: str = typer.Option(..., "--site", help="Site id the gateway belongs to."),
    directory: Path = DIR_OPTION,
) -> None:
    """Issue a gateway's password and client certificate; it may use only its own topics."""
    from cloud.broker.accounts import BrokerFolder, BrokerSetupError

    try:
        c = BrokerFolder(directory).add_gateway(gateway_id, site)
    except BrokerSetupError as exc:
        raise _fail(exc) from None
    typer.echo(f"gateway {gateway_id}: copy {c.file.parent}/ to the gateway (uplink.yaml, ca.crt, client.crt, "
               "client.key) and merge uplink.yaml into its config")
    typer.echo("the broker reads the new account on its next reload: systemctl reload mosquitto")


@app.command("revoke-gateway")
def revoke_gateway(
    gateway_id: str = typer.Argument(..., help="Gateway id."),
    directory: Path = DIR_OPTION,
    pid: int | None = typer.Option(None, help="Broker process to SIGHUP."),
    pid_file: Path = typer.Option(DEBIAN_PID, help="Broker pid file (when --pid is not given)."),
    reload: bool = typer.Option(True, "--reload/--no-reload", help="SIGHUP the broker now."),
) -> None:
    """Remove a gateway's password and ACL lines and make the broker apply it (it is disconnected)."""
    from cloud.broker.accounts import BrokerFolder, BrokerSetupError, reload_broker

    try:
        BrokerFolder(directory).revoke_gateway(gateway_id)
        if reload:
            signalled = reload_broker(pid, pid_file)
            typer.echo(f"gateway {gateway_id} revoked; broker {signalled} reloaded")
        else:
            typer.echo(f"gateway {gateway_id} revoked; reload the broker to apply (systemctl reload mosquitto)")
    except BrokerSetupError as exc:
        raise _fail(exc) from None


@app.command("list")
def list_accounts(directory: Path = DIR_OPTION) -> None:
    """Accounts in the broker folder."""
    from cloud.broker.accounts import BrokerFolder, BrokerSetupError

    try:
        reg = BrokerFolder(directory).load()
    except BrokerSetupError as exc:
        raise _fail(exc) from None
    for name, role in sorted(reg.services.items()):
        typer.echo(f"{name}\t{role.value}")
    for gw, entry in sorted(reg.gateways.items()):
        state = f"revoked {entry.revoked_at:%Y-%m-%d %H:%M}" if entry.revoked_at else "active"
        typer.echo(f"{gw}\tgateway\tsite {entry.site}\t{state}")
