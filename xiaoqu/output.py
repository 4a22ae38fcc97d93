"""Rich consoles for the commands' tables.

Rich lays a table out for 80 columns when the output is not a terminal (a pipe, a file, CI log), which cuts
probe and profile tables mid-word. A terminal keeps its own width; anything else gets a wide one.
"""

from __future__ import annotations

import sys

from rich.console import Console

PIPE_WIDTH = 240


def console(*, stderr: bool = False) -> Console:
    stream = sys.stderr if stderr else sys.stdout
    return Console(stderr=stderr, width=None if stream.isatty() else PIPE_WIDTH)
