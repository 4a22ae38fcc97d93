"""The backend's config file: YAML or JSON with one section per part (``database``, ``ingest``, ``api`` …)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer


def load_file(path: Path | None) -> dict[str, Any]:
    """The raw config file as a dict ({} without a file); each command validates the sections it uses."""
    if path is None:
        return {}
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".json":
        data = json.loads(text)
    else:
        from ruamel.yaml import YAML

        data = YAML(typ="safe").load(text)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise typer.BadParameter(f"{path}: the top level must be a mapping of sections")
    return data
