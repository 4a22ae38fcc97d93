"""Mounts every part's sub-commands on the root app (the explicit registry of commands).

Mounting imports only each part's command module; the part's own packages (psycopg, pymodbus, OpenCV, …)
are imported when a command runs. On a reduced install (``pip install 'xiaoqu[edge]'``) a command whose
packages are missing says in one line which extra to install (:func:`missing_extra_message`).
"""

from __future__ import annotations

import typer

OUR_PACKAGES = frozenset({"contract", "device_profiles", "edge", "cloud", "simulators", "firmware_stubs", "xiaoqu"})

# sub-command → (the extra that provides its packages, what it is)
EXTRAS: dict[str, tuple[str, str]] = {
    "cloud": ("cloud", "the backend"),
    "user": ("cloud", "the backend"),
    "edge": ("edge", "the gateway"),
    "onboard": ("edge", "the gateway's installer tools"),
    "report": ("cloud", "the backend's reports"),
    "gateway": ("cloud", "the backend's gateway config store"),
    "sim": ("sim", "the simulators"),
    "demo": ("edge,cloud,sim", "the whole loop"),
}


def missing_extra_message(argv: list[str], exc: ModuleNotFoundError) -> str | None:
    """One line naming the extra to install when a command's third-party package is missing; None when
    the missing module is one of ours (a bug, not an install choice)."""
    top = (exc.name or "").partition(".")[0]
    if not top or top in OUR_PACKAGES:
        return None
    command = next((a for a in argv if not a.startswith("-")), "")
    extra, what = EXTRAS.get(command, ("edge,cloud,sim", "this command"))
    return (f"xiaoqu {command}: {what} is not installed here (no module named {exc.name!r}); "
            f"install it with: pip install 'xiaoqu[{extra}]'")


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
    from cloud.report.cli import app as report_app

    app.add_typer(report_app, name="report", help="Reports from the backend's records: the fire-drill report.")
    from simulators.cli import app as sim_app

    app.add_typer(sim_app, name="sim", help="Simulated compound: run layouts and scenarios.")
