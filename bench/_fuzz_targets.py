"""Fuzz targets shared by ``bench/fuzz.py`` (many inputs) and ``tests/security/test_fuzz.py`` (a few).

Each target is a Hypothesis strategy plus a check that returns ``None`` for a correct outcome or a short
description of a crash. Correct outcomes: the input is accepted, or refused with the part's own error
(``ContractError`` for payloads → a dead-letter row in ingest; ``ProfileError`` for profiles → file:line:
field; ``CodecError`` for Modbus values). Anything else escaping is a crash.

* ``decode``: ``contract.codec.decode(topic, payload)`` on mutated valid messages of every kind, random
  JSON, random bytes and hostile encodings (deep nesting, huge numbers, NaN, NUL, lone surrogates).
* ``profile``: ``load_catalog`` + ``CompiledProfile`` on mutated shipped profiles (YAML-level and text-level).
* ``modbus``: ``device_profiles.modbus_codec.decode/encode`` on random register specs, words and values.
* ``api``: schemathesis cases (valid and invalid) for every operation of ``/api/openapi.json``, with a
  token per role; a 5xx answer is the failure.
"""

from __future__ import annotations

import copy
import json
import math
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import seed as fixed_seed
from hypothesis import strategies as st

REPO = Path(__file__).resolve().parent.parent

# --------------------------------------------------------------------------------------------- runner


@dataclass
class Outcome:
    inputs: int = 0
    crashes: list[str] = field(default_factory=list)

    def add(self, crash: str | None) -> None:
        self.inputs += 1
        if crash is not None and len(self.crashes) < 50:
            self.crashes.append(crash)
        elif crash is not None:
            self.crashes.append("…")


def run(strategy: st.SearchStrategy[Any], check: Callable[[Any], str | None], examples: int, seed: int = 0) -> Outcome:
    """Draw ``examples`` inputs (no shrinking, no example database) and check each one."""
    out = Outcome()

    @fixed_seed(seed)
    @settings(max_examples=examples, deadline=None, database=None, phases=[Phase.explicit, Phase.generate],
              suppress_health_check=list(HealthCheck))
    @given(strategy)
    def body(value: Any) -> None:
        out.add(check(value))

    body()
    return out


# --------------------------------------------------------------------------------------------- JSON values

LEAF = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.sampled_from(["", "\x00", "a\x00b", "\ud800", "🔥" * 10, "x" * 5000, "2026-13-45T99:99:99Z", "-1", "1e309",
                     "../../etc/passwd", "{}", "null", "ÿ", "0190d3a0-0000-7000-8000-000000000001"]),
)
JSON = st.recursive(
    LEAF, lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=25,
)

# --------------------------------------------------------------------------------------------- decode

_TS = "2026-11-21T08:30:00Z"
_ID = "0190d3a0-0000-7000-8000-000000000001"
_ENV = {"v": 2, "id": _ID, "gw": "gw-1", "seq": 5, "ts": _TS, "epoch": 1}
SEEDS: dict[str, dict[str, Any]] = {
    "telemetry": {**_ENV, "kind": "telemetry", "points": [
        {"device": "fp-1", "point": "zone1.state", "ts": _TS, "value": 1},
        {"device": "fp-1", "point": "temp", "ts": _TS, "value": 21.5}]},
    "event": {**_ENV, "kind": "event", "device": "fp-1", "event": "fire.alarm", "key": "fire.alarm#12",
              "severity": "critical", "active": True, "life_safety": True, "detail": {"zone": 12},
              "location": {"site": "s1", "building": "B3", "floor": 12},
              "evidence": [{"ref": "snap-1.jpg", "content_type": "image/jpeg", "sha256": "a" * 64, "size": 10}]},
    "state": {**_ENV, "kind": "state", "state": "online", "software": "xiaoqu 0.1",
              "devices": [{"device": "fp-1", "profile": "gst-fp200",
                           "location": {"site": "s1", "building": "B3", "floor": 12}}]},
    "health": {**_ENV, "kind": "health", "health": {"outbox_depth": {"alarm": 0, "event": 1, "telemetry": 2},
                                                     "outbox_bytes": 10, "uplink_connected": True,
                                                     "devices_online": 3, "devices_offline": 0}},
    "cmd": {**_ENV, "kind": "cmd", "device": "el-1", "command": "fire_recall", "args": {"floor": 1}},
    "cmd/ack": {**_ENV, "kind": "cmd_ack", "command_id": _ID, "device": "el-1", "status": "succeeded"},
    "receipt": {**_ENV, "kind": "receipt", "ids": [_ID]},
    "config": {**_ENV, "kind": "config", "version": 3, "document": "gateway_id: gw-1\n", "sha256": "b" * 64},
}
HOSTILE: list[bytes] = [
    b"", b"null", b"[]", b"{}", b'{"v": 2}', b"[" * 100_000 + b"]" * 100_000, b'{"a":' * 50_000,
    b"1" * 5000, b'{"v": ' + b"9" * 5000 + b"}", b'{"v": NaN}', b'{"v": Infinity}', b"\xff\xfe\x00",
    b'{"v": 2, "gw": "\\u0000"}', b'{"v": 2, "gw": "\\ud800"}', b'{"v": true}', b'{"v": 2.0}',
    json.dumps({**SEEDS["event"], "detail": {"x": "\u0000"}}).encode(),
]


def _mutate(draw: st.DrawFn, obj: Any, depth: int = 0) -> Any:
    """Replace, drop or add one thing somewhere in a JSON value."""
    if isinstance(obj, dict) and obj and depth < 4 and draw(st.booleans()):
        key = draw(st.sampled_from(sorted(obj)))
        obj[key] = _mutate(draw, obj[key], depth + 1)
        return obj
    if isinstance(obj, list) and obj and depth < 4 and draw(st.booleans()):
        i = draw(st.integers(0, len(obj) - 1))
        obj[i] = _mutate(draw, obj[i], depth + 1)
        return obj
    op = draw(st.sampled_from(["replace", "drop", "add", "dup"]))
    if op == "drop" and isinstance(obj, dict) and obj:
        del obj[draw(st.sampled_from(sorted(obj)))]
        return obj
    if op == "add" and isinstance(obj, dict):
        obj[draw(st.text(max_size=10))] = draw(JSON)
        return obj
    if op == "dup" and isinstance(obj, list):
        return obj * draw(st.integers(0, 50))
    return draw(JSON)


@st.composite
def decode_inputs(draw: st.DrawFn) -> tuple[str, bytes]:
    kind = draw(st.sampled_from(sorted(SEEDS)))
    gw = draw(st.sampled_from(["gw-1", "gw-1", "gw-2", "GW-1", "gw 1", "", "+", "#", "a" * 65]))
    site = draw(st.sampled_from(["s1", "s1", "", "x/y", "é"]))
    other = draw(st.sampled_from(sorted(SEEDS)))
    topic = draw(st.one_of(
        st.just(f"xq/v1/{site}/{gw}/{kind}"),
        st.just(f"xq/v1/s1/gw-1/{other}"),
        st.just(f"xq/v2/s1/gw-1/{kind}"),
        st.text(max_size=60),
    ))
    shape = draw(st.sampled_from(["mutated", "mutated", "mutated", "valid", "json", "bytes", "hostile", "cut"]))
    if shape == "hostile":
        return topic, draw(st.sampled_from(HOSTILE))
    if shape == "bytes":
        return topic, draw(st.binary(max_size=300))
    if shape == "json":
        return topic, json.dumps(draw(JSON)).encode()
    doc = copy.deepcopy(SEEDS[kind])
    if shape != "valid":
        for _ in range(draw(st.integers(1, 3))):
            doc = _mutate(draw, doc)
    text = json.dumps(doc, allow_nan=True, ensure_ascii=draw(st.booleans()), default=str)
    if shape == "cut":
        text = text[: draw(st.integers(0, max(0, len(text) - 1)))]
    return topic, text.encode("utf-8", errors="surrogatepass")


def check_decode(value: tuple[str, bytes]) -> str | None:
    from contract.codec import decode, encode
    from contract.errors import ContractError

    topic, payload = value
    try:
        _, message = decode(topic, payload)
        encode(message)  # what was accepted can be sent on
    except ContractError:
        return None
    except Exception as exc:  # noqa: BLE001 - the harness exists to catch whatever escapes
        return f"decode {topic!r} {payload[:120]!r}: {type(exc).__name__}: {str(exc)[:200]}"
    return None


# --------------------------------------------------------------------------------------------- profile


def shipped_profiles() -> list[str]:
    return [p.read_text(encoding="utf-8") for p in sorted((REPO / "device_profiles").glob("*/*.yaml"))]


@st.composite
def profile_inputs(draw: st.DrawFn) -> str:
    from ruamel.yaml import YAML

    texts = _seed_profiles()
    index = draw(st.integers(0, len(texts) - 1))
    text = texts[index]
    shape = draw(st.sampled_from(["yaml", "yaml", "yaml", "text", "random", "valid"]))
    if shape == "valid":
        return text
    if shape == "random":
        return draw(st.text(max_size=400))
    if shape == "text":
        for _ in range(draw(st.integers(1, 4))):
            i = draw(st.integers(0, len(text)))
            j = draw(st.integers(i, min(len(text), i + 40)))
            text = text[:i] + draw(st.sampled_from(["", ":", "- ", "\n  ", "{", "&a", "*a", "!!python/object:x",
                                                    "\t", "\x00", "]", "'", "<<: *a"])) + text[j:]
        return text
    data = copy.deepcopy(_seed_data()[index])
    for _ in range(draw(st.integers(1, 3))):
        data = _mutate(draw, data)
    import io

    buf = io.StringIO()
    try:
        YAML(typ="safe").dump(data, buf)
    except Exception:  # noqa: BLE001 - a value YAML cannot represent: fall back to the original text
        return text
    return buf.getvalue()


_PROFILE_CACHE: list[str] = []
_PROFILE_DATA: list[Any] = []


def _seed_profiles() -> list[str]:
    if not _PROFILE_CACHE:
        _PROFILE_CACHE.extend(shipped_profiles())
    return _PROFILE_CACHE


def _seed_data() -> list[Any]:
    from ruamel.yaml import YAML

    if not _PROFILE_DATA:
        _PROFILE_DATA.extend(YAML(typ="safe").load(t) for t in _seed_profiles())
    return _PROFILE_DATA


def _compile(profile: Any) -> None:
    from device_profiles.compiled import CompiledProfile

    compiled = CompiledProfile(profile)
    for name, attr in vars(CompiledProfile).items():
        if isinstance(attr, cached_property):
            getattr(compiled, name)


class ProfileChecker:
    """Writes each input to its own file in one temporary folder and loads it like the shipped ones."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="xq-fuzz-profile-")
        self.folder = Path(self._dir.name) / "fuzz"
        self.folder.mkdir()

    def __call__(self, text: str) -> str | None:
        from device_profiles.loader import ProfileError, load_catalog

        path = self.folder / "profile.yaml"
        try:
            path.write_text(text, encoding="utf-8", errors="surrogatepass")
        except UnicodeEncodeError:
            return None
        try:
            for profile in load_catalog([self.folder], shipped=False):  # the input alone, as `profile validate`
                _compile(profile)
        except ProfileError as exc:
            if not exc.issues:
                return f"profile: a ProfileError without issues for {text[:120]!r}"
            return None
        except Exception as exc:  # noqa: BLE001 - the harness exists to catch whatever escapes
            return f"profile {text[:160]!r}: {type(exc).__name__}: {str(exc)[:200]}"
        return None

    def close(self) -> None:
        self._dir.cleanup()


# --------------------------------------------------------------------------------------------- modbus

_TYPES = ["int16", "uint16", "int32", "uint32", "int64", "uint64", "float32", "float64", "bool"]


@st.composite
def modbus_inputs(draw: st.DrawFn) -> tuple[dict[str, Any], list[Any], dict[int, str] | None, Any]:
    spec: dict[str, Any] = {
        "table": draw(st.sampled_from(["holding", "input", "coil", "discrete_input"])),
        "address": draw(st.integers(-5, 70000)),
        "type": draw(st.sampled_from(_TYPES)),
    }
    if draw(st.booleans()):
        spec["byte_order"] = draw(st.sampled_from(["big", "little"]))
    if draw(st.booleans()):
        spec["word_order"] = draw(st.sampled_from(["big", "little"]))
    choice = draw(st.sampled_from(["none", "none", "bit", "bits"]))
    if choice == "bit":
        spec["bit"] = draw(st.integers(-1, 70))
    elif choice == "bits":
        spec["bits"] = {"start": draw(st.integers(-1, 70)), "length": draw(st.integers(-1, 70))}
    if draw(st.booleans()):
        spec["scale"] = draw(st.floats(allow_nan=True, allow_infinity=True))
        spec["offset"] = draw(st.floats(allow_nan=True, allow_infinity=True))
    words = draw(st.one_of(
        st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=5),
        st.lists(st.integers(-(2**20), 2**20), max_size=5),
        st.lists(st.booleans(), max_size=3),
    ))
    enum = draw(st.none() | st.dictionaries(st.integers(-5, 70000), st.text(max_size=8), max_size=4))
    value = draw(st.one_of(st.booleans(), st.integers(), st.floats(allow_nan=True, allow_infinity=True),
                           st.text(max_size=8)))
    return spec, words, enum, value


def check_modbus(value: tuple[dict[str, Any], list[Any], dict[int, str] | None, Any]) -> str | None:
    from pydantic import ValidationError

    from device_profiles.modbus_codec import CodecError, decode, encode
    from device_profiles.schema import RegisterSpec

    raw_spec, words, enum, v = value
    try:
        spec = RegisterSpec.model_validate(raw_spec)
    except ValidationError:
        return None  # the profile loader reports it (file:line: field)
    for what, call in (("decode", lambda: decode(spec, words, enum=enum)),
                       ("encode", lambda: encode(spec, v, enum=enum))):
        try:
            result = call()
        except CodecError:
            continue
        except Exception as exc:  # noqa: BLE001 - the harness exists to catch whatever escapes
            return f"modbus {what} {raw_spec} words={words} value={v!r}: {type(exc).__name__}: {str(exc)[:200]}"
        if what == "encode" and not all(isinstance(w, int) and 0 <= w <= 0xFFFF for w in result):  # type: ignore[union-attr]
            return f"modbus encode {raw_spec} value={v!r}: produced {result!r}, not 16-bit registers"
        if what == "decode" and isinstance(result, float) and math.isnan(result) and not (
            spec.type.startswith("float") or math.isnan(spec.scale) or math.isnan(spec.offset)
            or math.isinf(spec.scale) or math.isinf(spec.offset)
        ):
            return f"modbus decode {raw_spec} words={words}: NaN from an integer register"
    return None


# --------------------------------------------------------------------------------------------- API


@dataclass
class ApiOutcome:
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def fuzz_api(base_url: str, auth: dict[str, dict[str, str]], examples_per_operation: int,
             modes: tuple[str, ...] = ("positive", "negative")) -> ApiOutcome:
    """Every operation of the OpenAPI document × every role (``auth``: name → headers) × generation mode."""
    import requests
    import schemathesis
    from hypothesis.errors import Unsatisfiable
    from schemathesis import GenerationMode

    schema = schemathesis.openapi.from_url(f"{base_url}/api/openapi.json")
    out = ApiOutcome()
    session = requests.Session()
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in modes:
            strategy = operation.as_strategy(generation_mode=GenerationMode(mode))
            for role, headers in auth.items():

                def check(case: Any, role: str = role, headers: dict[str, str] = headers) -> str | None:
                    try:
                        response = case.call(base_url=base_url, session=session, headers=headers, timeout=30)
                    except requests.RequestException as exc:
                        return f"{role} {case.method} {case.formatted_path}: no answer: {exc}"
                    out.statuses[response.status_code] = out.statuses.get(response.status_code, 0) + 1
                    if response.status_code >= 500:
                        return (f"{role} {case.method} {case.formatted_path} → {response.status_code} "
                                f"{response.text[:200]!r}; curl: {case.as_curl_command()[:400]}")
                    return None

                try:
                    got = run(strategy, check, examples_per_operation)
                except Unsatisfiable:  # e.g. no invalid variant of an operation without parameters
                    out.skipped.append(f"{mode} {operation.label}")
                    break
                out.requests += got.inputs
                out.server_errors += got.crashes
    return out
