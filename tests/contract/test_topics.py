import pytest

from contract.errors import TopicError
from contract.topics import Topic, TopicKind, shared_filter, topic, uplink_filter


def test_build_and_parse_round_trip() -> None:
    for kind in TopicKind:
        text = topic("site-a", "gw-01", kind)
        assert Topic.parse(text) == Topic("site-a", "gw-01", kind)


def test_cmd_ack_has_two_levels() -> None:
    assert topic("s", "g", TopicKind.CMD_ACK) == "xq/v1/s/g/cmd/ack"


@pytest.mark.parametrize(
    ("text", "fragment"),
    [
        ("xq/v2/s/g/event", "unknown topic version"),
        ("xq/v1/s/g/telemetri", "unknown kind 'telemetri'"),
        ("other/v1/s/g/event", "expected 'xq/v1"),
        ("xq/v1/s", "expected"),
        ("xq/v1/s p/g/event", "site 's p'"),
        ("xq/v1/s/+/event", "gateway '+'"),
    ],
)
def test_parse_refuses_with_reason(text: str, fragment: str) -> None:
    with pytest.raises(TopicError) as info:
        Topic.parse(text)
    assert fragment in str(info.value)
    assert info.value.topic == text


def test_build_refuses_wildcards() -> None:
    with pytest.raises(TopicError, match="site"):
        topic("#", "g", TopicKind.EVENT)


def test_filters() -> None:
    assert uplink_filter(TopicKind.TELEMETRY) == "xq/v1/+/+/telemetry"
    assert shared_filter(TopicKind.EVENT) == "$share/ingest/xq/v1/+/+/event"
