"""Signed readings: signature round trip, tampering, and replay rules."""

from __future__ import annotations

import json

import pytest

from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.signing import (
    ReplayGuard,
    sign_payload,
    signature,
    verify_payload,
)

KEY = b"0123456789abcdef-node1"
TOPIC = "sem/node1/house1/state"
PAYLOAD = b'{"seq":42,"ts":1764072000.5,"v":225.7,"i":0.108,"p":24.4,"e":38,"f":50,"pf":1}'


def test_signed_payload_verifies_and_decodes() -> None:
    signed = sign_payload(KEY, TOPIC, PAYLOAD)
    assert verify_payload(KEY, TOPIC, signed)
    decoded = p.decode("sem", TOPIC, signed)
    assert isinstance(decoded, p.Snapshot)
    assert decoded.signature == signature(KEY, TOPIC, PAYLOAD)
    assert json.loads(signed)["sig"] == decoded.signature


@pytest.mark.parametrize(
    "mutate",
    [
        lambda b: b.replace(b'"p":24.4', b'"p":20.4'),  # a changed reading
        lambda b: b.replace(b'"seq":42', b'"seq":43'),  # a changed sequence number
        lambda b: b[:-3] + (b'0"}' if b[-3:-2] != b"0" else b'1"}'),  # a changed signature
        lambda b: b.replace(b',"sig"', b', "sig"'),  # not the canonical suffix
        lambda b: PAYLOAD,  # unsigned
    ],
)
def test_tampered_payload_fails(mutate: object) -> None:
    signed = sign_payload(KEY, TOPIC, PAYLOAD)
    assert not verify_payload(KEY, TOPIC, mutate(signed))  # type: ignore[operator]


def test_signature_binds_topic_and_key() -> None:
    signed = sign_payload(KEY, TOPIC, PAYLOAD)
    assert not verify_payload(KEY, "sem/node1/line1/state", signed)
    assert not verify_payload(b"another key of 16+ bytes", TOPIC, signed)


@pytest.mark.parametrize("payload", [b"{}", b"[1]", b"online"])
def test_only_objects_are_signed(payload: bytes) -> None:
    with pytest.raises(ValueError, match="JSON object"):
        sign_payload(KEY, TOPIC, payload)


def test_replay_guard() -> None:
    guard = ReplayGuard()
    now = 1_000_000.0
    assert guard.check("m", 5, now, now) is None
    assert "replayed" in (guard.check("m", 5, now, now) or "")
    assert "replayed" in (guard.check("m", 4, now + 1, now + 1) or "")
    assert guard.check("m", 6, now + 1, now + 1) is None
    # Another meter has its own sequence.
    assert guard.check("other", 0, now, now) is None
    # A reboot restarts seq; accepted once the timestamp is clearly newer.
    assert guard.check("m", 0, now + 10, now + 10) is None
    assert guard.check("m", 1, now + 11, now + 11) is None


@pytest.mark.parametrize("offset", [-61.0, 61.0])
def test_replay_guard_refuses_clock_outliers(offset: float) -> None:
    guard = ReplayGuard()
    reason = guard.check("m", 1, 1000.0 + offset, 1000.0)
    assert reason is not None
    assert "away from this clock" in reason
    # A refused reading is not remembered.
    assert guard.check("m", 1, 1000.0, 1000.0) is None
