from contract.schema_gen import SCHEMA_DIR, render


def test_generated_schemas_are_current() -> None:
    """Fails when a message model changed without `python -m contract.schema_gen` being run."""
    expected = render()
    on_disk = {p.name: p.read_text(encoding="utf-8") for p in SCHEMA_DIR.glob("*.json")}
    stale = sorted(name for name in expected if on_disk.get(name) != expected[name])
    extra = sorted(set(on_disk) - set(expected))
    assert not stale and not extra, (
        f"stale schemas {stale}, leftover {extra}: run `python -m contract.schema_gen`"
    )
