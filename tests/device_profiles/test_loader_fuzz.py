"""Fuzzing the profile loader: whatever is in the file, the answer is a ProfileError with a place, never a crash."""

from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from device_profiles import ProfileError, load_profile

SHIPPED = (Path(__file__).resolve().parents[2] / "device_profiles" / "elevator" / "acme-em200.yaml").read_text()


def _check(tmp_path: Path, text: str) -> None:
    path = tmp_path / "fuzz.yaml"
    path.write_text(text, encoding="utf-8")
    issues = []
    try:
        load_profile(path)
    except ProfileError as exc:
        issues = exc.issues
        assert issues, "a ProfileError must list at least one issue"
    assert all(str(i).startswith(str(path)) for i in issues)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.text(max_size=400))
def test_random_text(tmp_path, text):
    _check(tmp_path, text)


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(st.integers(0, len(SHIPPED) - 1), st.integers(1, 40), st.text(max_size=20))
def test_mutated_real_profile(tmp_path, start, length, junk):
    _check(tmp_path, SHIPPED[:start] + junk + SHIPPED[start + length :])
