"""What the firmware publishes, the integration's codec accepts with the same values."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from hypothesis import given
from hypothesis import strategies as st
from semfw import protocol
from semfw.pzem import Reading

from custom_components.smart_energy_meter.semcore import protocol as codec
from custom_components.smart_energy_meter.semcore.signing import signature, verify_payload
from tests.firmware.unit.support import announce_from_fields
from tests.vectors import load_vectors

NODE = "paper-node"
PREFIX = "sem"


def _reading(fields: dict[str, Any]) -> Reading:
    return Reading(
        round(fields["voltage"] * 10),
        round(fields["current"] * 1000),
        round(fields["power"] * 10),
        int(fields["energy"]),
        round(fields["frequency"] * 10),
        round(fields["power_factor"] * 100),
        fields["alarm"],
    )


def _pzem_can_say(fields: dict[str, Any]) -> bool:
    """Whether the values fit the PZEM's resolution (some vectors come from other devices)."""
    if "voltage" not in fields:
        return True
    reading = _reading(fields)
    return (reading.voltage, reading.current, reading.power, reading.frequency) == (
        fields["voltage"],
        fields["current"],
        fields["power"],
        fields["frequency"],
    ) and reading.power_factor == fields["power_factor"]


def test_every_valid_state_vector_is_reproduced_by_the_firmware() -> None:
    checked = 0
    for vector in load_vectors():
        if vector.expect is None or vector.expect["type"] not in ("Snapshot", "SensorError"):
            continue
        fields = vector.expect["fields"]
        if fields.get("signature") or not _pzem_can_say(fields):
            continue
        ts_ms = round(fields["ts"] * 1000)
        if vector.expect["type"] == "Snapshot":
            payload = protocol.state_payload(fields["seq"], ts_ms, _reading(fields), fields["boot"])
        else:
            payload = protocol.error_payload(
                fields["seq"], ts_ms, fields["error"], fields["boot"], fields["detail"]
            )
        if fields["dropped"] is not None:
            payload = protocol.with_dropped(payload, fields["dropped"])
        decoded = codec.decode(vector.prefix, vector.topic, payload)
        assert type(decoded).__name__ == vector.expect["type"], (vector.name, decoded)
        expected = dict(fields, signature=None)
        for key, value in expected.items():
            assert getattr(decoded, key) == value, (vector.name, key)
        checked += 1
    assert checked >= 7


def test_the_announce_vector_is_reproduced_by_the_firmware() -> None:
    (vector,) = [v for v in load_vectors() if v.name == "076_announce_update"]
    assert vector.expect is not None
    payload = announce_from_fields(vector.expect["fields"])
    ours = codec.decode(vector.prefix, vector.topic, payload)
    theirs = codec.decode(vector.prefix, vector.topic, vector.payload, retained=True)
    assert isinstance(ours, codec.Announce)
    assert ours == theirs


def test_relay_and_status_payloads_are_accepted() -> None:
    for on, state in ((True, codec.RelayState.ON), (False, codec.RelayState.OFF)):
        topic = protocol.relay_state_topic(PREFIX, NODE, "r1")
        decoded = codec.decode(PREFIX, topic, protocol.relay_payload(on))
        assert decoded == codec.RelayStateMessage(NODE, "r1", state)
    assert codec.decode(PREFIX, protocol.status_topic(PREFIX, NODE), b"online") == (
        codec.StatusMessage(NODE, codec.NodeStatus.ONLINE)
    )


def test_the_firmware_topics_are_the_codec_topics() -> None:
    assert protocol.status_topic(PREFIX, NODE) == codec.status_topic(PREFIX, NODE)
    assert protocol.announce_topic(PREFIX, NODE) == codec.announce_topic(PREFIX, NODE)
    assert protocol.state_topic(PREFIX, NODE, "m") == codec.state_topic(PREFIX, NODE, "m")
    assert protocol.reset_energy_topic(PREFIX, NODE, "m") == codec.reset_energy_topic(
        PREFIX, NODE, "m"
    )
    assert protocol.relay_set_topic(PREFIX, NODE, "r") == codec.relay_set_topic(PREFIX, NODE, "r")
    assert protocol.relay_state_topic(PREFIX, NODE, "r") == codec.relay_state_topic(
        PREFIX, NODE, "r"
    )


@given(
    seq=st.integers(0, 2**40),
    ts_ms=st.integers(0, 4_000_000_000_000),
    voltage=st.integers(0, 3000),
    current=st.integers(0, 100_000),
    power=st.integers(0, 250_000),
    energy=st.integers(0, 10_000_000),
    frequency=st.integers(450, 650),
    pf=st.integers(0, 100),
    alarm=st.booleans(),
    boot=st.none() | st.integers(0, 2**40),
)
def test_any_plausible_reading_round_trips_exactly(
    seq: int,
    ts_ms: int,
    voltage: int,
    current: int,
    power: int,
    energy: int,
    frequency: int,
    pf: int,
    alarm: bool,
    boot: int | None,
) -> None:
    reading = Reading(voltage, current, power, energy, frequency, pf, alarm)
    assert reading.problem() is None
    payload = protocol.state_payload(seq, ts_ms, reading, boot)
    decoded = codec.decode(PREFIX, codec.state_topic(PREFIX, NODE, "line1"), payload)
    assert isinstance(decoded, codec.Snapshot), decoded
    assert decoded.seq == seq
    assert decoded.boot == boot
    assert decoded.ts == ts_ms / 1000
    assert decoded.voltage == voltage / 10
    assert decoded.current == current / 1000
    assert decoded.power == power / 10
    assert decoded.energy == energy
    assert decoded.frequency == frequency / 10
    assert decoded.power_factor == pf / 100
    assert decoded.alarm is alarm


@given(
    name=st.text(max_size=64),
    pair_name=st.text(min_size=1, max_size=64),
    interval_ms=st.integers(200, 3_600_000),
)
def test_any_announce_is_accepted(name: str, pair_name: str, interval_ms: int) -> None:
    payload = protocol.announce_payload(
        NODE,
        name,
        "ESP32 + PZEM-004T v3",
        "1.0.0",
        "24:6f:28:a1:b2:c3",
        "10.0.0.7",
        interval_ms,
        [("line1", "line", "house1", 1), ("house1", "house", "house1", 2)],
        [("r1", "house1")],
        [("house1", pair_name)],
        False,
    )
    decoded = codec.decode(PREFIX, codec.announce_topic(PREFIX, NODE), payload)
    assert isinstance(decoded, codec.Announce), decoded
    assert decoded.name == name
    assert decoded.pair_names == {"house1": pair_name}
    assert decoded.interval == interval_ms / 1000
    assert json.loads(payload)["interval"] == interval_ms / 1000


def test_signed_payloads_verify_like_the_protocol_says() -> None:
    import hashlib
    import hmac

    key = b"a node secret of 32 bytes.......".ljust(32, b".")
    topic = codec.state_topic(PREFIX, NODE, "house1")
    unsigned = protocol.state_payload(
        1, 1_764_072_000_500, Reading(2257, 108, 244, 38, 500, 100, 0)
    )
    signed = protocol.sign(key, topic, unsigned)
    decoded = codec.decode(PREFIX, topic, signed)
    assert isinstance(decoded, codec.Snapshot)
    expected = hmac.new(key, topic.encode() + b"\n" + unsigned, hashlib.sha256).hexdigest()
    assert decoded.signature == expected
    assert signed.replace(b',"sig":"' + expected.encode() + b'"', b"") == unsigned


def test_the_documented_signing_vector_holds_on_both_sides() -> None:
    """docs/protocol.md's test vector: the key text's UTF-8 bytes are the HMAC key."""
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text(encoding="utf-8")
    found = re.search(
        r"Test vector: key text `([^`]+)` .*?topic\s+`([^`]+)`, unsigned payload\s+`([^`]+)`"
        r"\s+gives `sig` = `([0-9a-f]{64})`",
        doc,
        re.DOTALL,
    )
    assert found is not None, "the test vector is missing from docs/protocol.md"
    key_text, topic, payload, expected = found.groups()
    key = key_text.encode("utf-8")
    assert len(key) > len(key_text)  # the vector's key is not plain ASCII: UTF-8 is tested
    assert signature(key, topic, payload.encode()) == expected
    assert (
        protocol.hex_text(protocol.hmac_sha256(key, topic.encode() + b"\n" + payload.encode()))
        == expected
    )
    signed = protocol.sign(key, topic, payload.encode())
    assert verify_payload(key, topic, signed)
