"""A small share of the fuzz targets of ``bench/fuzz.py`` in every test run, and the crashes they found.

Correct outcomes: accepted, or refused with the part's own error (ContractError → a dead-letter row in
ingest; ProfileError → file:line: field; CodecError). Anything else escaping is a crash.
"""

from __future__ import annotations

import json

import pytest

from bench._fuzz_targets import (
    HOSTILE,
    SEEDS,
    ProfileChecker,
    check_decode,
    check_modbus,
    decode_inputs,
    modbus_inputs,
    profile_inputs,
    run,
    shipped_profiles,
)
from contract.codec import decode
from contract.errors import MalformedMessage
from device_profiles.modbus_codec import CodecError, encode
from device_profiles.schema import RegisterSpec


def test_every_seed_message_is_valid():
    """The fuzzer mutates valid messages of every kind, so it reaches the validators, not just json.loads."""
    for kind, doc in SEEDS.items():
        assert check_decode((f"xq/v1/s1/gw-1/{kind}", json.dumps(doc).encode())) is None
        decode(f"xq/v1/s1/gw-1/{kind}", json.dumps(doc))


def test_decode_fuzz():
    got = run(decode_inputs(), check_decode, 200)
    assert got.inputs >= 100 and got.crashes == []


def test_hostile_payloads_are_malformed_not_crashes():
    for payload in HOSTILE:
        assert check_decode(("xq/v1/s1/gw-1/event", payload)) is None
    with pytest.raises(MalformedMessage, match="nested too deeply"):
        decode("xq/v1/s1/gw-1/event", b"[" * 100_000 + b"]" * 100_000)
    with pytest.raises(MalformedMessage, match="unreadable value"):
        decode("xq/v1/s1/gw-1/event", b'{"v": ' + b"9" * 5000 + b"}")


def test_profile_fuzz():
    checker = ProfileChecker()
    try:
        for text in shipped_profiles():  # the seeds load as they are
            assert checker(text) is None
        got = run(profile_inputs(), checker, 40)
    finally:
        checker.close()
    assert got.inputs >= 20 and got.crashes == []


def test_modbus_fuzz():
    got = run(modbus_inputs(), check_modbus, 200)
    assert got.inputs >= 100 and got.crashes == []


def test_modbus_write_with_scale_zero_or_huge_value_is_a_codec_error():
    zero = RegisterSpec.model_validate({"table": "holding", "address": 0, "type": "int16", "scale": 0.0})
    with pytest.raises(CodecError, match="scale"):
        encode(zero, 5)
    f32 = RegisterSpec.model_validate({"table": "holding", "address": 0, "type": "float32"})
    with pytest.raises(CodecError, match="does not fit"):
        encode(f32, 1e300)
    scaled = RegisterSpec.model_validate({"table": "holding", "address": 0, "type": "int32", "scale": 0.5})
    with pytest.raises(CodecError, match="too large"):
        encode(scaled, 10**400)


def test_modbus_enum_of_a_nan_float_is_a_codec_error():
    """Found by bench/fuzz.py: an enum on a float point whose registers hold NaN."""
    from device_profiles.modbus_codec import decode as decode_point

    spec = RegisterSpec.model_validate({"table": "input", "address": 0, "type": "float64",
                                        "byte_order": "little", "word_order": "little"})
    with pytest.raises(CodecError, match="not an enum value"):
        decode_point(spec, [0, 0, 0, 65535], enum={0: "off"})
    assert check_modbus((spec.model_dump(exclude_none=True), [0, 0, 0, 65535], {0: "off"}, "x")) is None

