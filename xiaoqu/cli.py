"""``xiaoqu`` — one entry point, with a sub-command per job.

Each part (profiles, onboarding, edge, cloud, simulators) contributes its own Typer app; this module
only mounts them and sets up logging. Heavy imports happen inside the commands, so ``xiaoqu profile``
works on a gateway that has no backend dependencies installed.
"""

from __future__ import annotations

import logging

import typer
from rich.logging import RichHandler

from xiaoqu.commands import register

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


def main() -> None:
    app()
