"""Signed readings: signature round trip, tampering, and replay rules."""

from __future__ import annotations

import json

import pytest

from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.signing import (
    ADMITTED,
    Ignored,
    Refusal,
    Refused,
    ReplayGuard,
    SignedNodes,
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


# --- admission of the readings of nodes with a key (no Home Assistant) ------------------------


def _signed_state(
    seq: int, ts: float, key: bytes = KEY
) -> tuple[bytes, tuple[str, int, float, str]]:
    payload = sign_payload(
        key,
        TOPIC,
        f'{{"seq":{seq},"ts":{ts},"v":225.7,"i":0.1,"p":24.4,"e":38,"f":50,"pf":1}}'.encode(),
    )
    return payload, ("house1", seq, ts, json.loads(payload)["sig"])


def test_admission_believes_fresh_signed_readings_and_ignores_duplicates() -> None:
    nodes = SignedNodes({"node1": KEY})
    payload, reading = _signed_state(1, 1000.0)
    assert nodes.admit("node1", reading, TOPIC, payload, False, 1000.5) is ADMITTED
    # The broker hands the same reading out again after a reconnect: not new, not an attack.
    again = nodes.admit("node1", reading, TOPIC, payload, True, 1001.0)
    assert isinstance(again, Ignored)
    assert not nodes.suspected("node1")
    assert nodes.diagnostics()["node1"]["accepted"] == 1
    # A node without a key is not judged here.
    assert nodes.admit("node2", None, "sem/node2/announce", b"{}", False, 0.0) is ADMITTED


def test_admission_refuses_unsigned_forged_replayed_and_stale_readings() -> None:
    nodes = SignedNodes({"node1": KEY})
    payload, reading = _signed_state(5, 1000.0)
    assert nodes.admit("node1", reading, TOPIC, payload, False, 1000.0) is ADMITTED
    unsigned = nodes.admit("node1", reading, TOPIC, PAYLOAD, False, 1001.0)
    assert unsigned == Refused(Refusal.UNSIGNED, "no signature", new=True)
    forged, forged_reading = _signed_state(6, 1001.0, key=b"another key of 16+ bytes")
    refused = nodes.admit("node1", forged_reading, TOPIC, forged, False, 1001.0)
    assert isinstance(refused, Refused)
    assert (refused.kind, refused.new) == (Refusal.BAD_SIGNATURE, False)  # same episode
    old, old_reading = _signed_state(4, 999.0)
    replayed = nodes.admit("node1", old_reading, TOPIC, old, False, 1002.0)
    assert isinstance(replayed, Refused)
    assert replayed.kind is Refusal.REPLAYED
    late, late_reading = _signed_state(7, 900.0)
    # Retained and too old: not used, not counted; live and too old: a clock refusal.
    assert isinstance(nodes.admit("node1", late_reading, TOPIC, late, True, 1002.0), Ignored)
    clock = nodes.admit("node1", late_reading, TOPIC, late, False, 1002.0)
    assert isinstance(clock, Refused)
    assert clock.kind is Refusal.CLOCK
    counts = nodes.diagnostics()["node1"]
    assert counts["refused"] == {"unsigned": 1, "bad_signature": 1, "replayed": 1, "clock": 1}
    assert counts["tamper_suspected"] is True
    assert "key" not in json.dumps(counts)
    nodes.release("node1")
    assert not nodes.suspected("node1")
    # The next refusal starts a new episode.
    again = nodes.admit("node1", reading, TOPIC, PAYLOAD, False, 1003.0)
    assert isinstance(again, Refused)
    assert again.new
