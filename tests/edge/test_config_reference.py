"""docs/gateway-config.md is generated from the config models: it fails here while it is stale."""

from edge.config_reference import DOC, render


def test_gateway_config_reference_is_current() -> None:
    assert DOC.read_text(encoding="utf-8") == render(), "run: python -m edge.config_reference"


def test_every_key_is_explained() -> None:
    rows = [line for line in render().splitlines() if line.startswith("| `")]
    assert len(rows) > 60
    assert not [r for r in rows if r.endswith("|  |")], "a key without a meaning: add a description or a NOTE"
