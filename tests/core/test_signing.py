"""Signed readings: signature round trip, tampering, and replay rules."""

from __future__ import annotations

import json
import re
from pathlib import Path

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


type Reading = tuple[str, int, float, str, int | None]


def _signed_state(
    seq: int, ts: float, key: bytes = KEY, *, boot: int | None = None, topic: str = TOPIC
) -> tuple[bytes, Reading]:
    counter = "" if boot is None else f'"boot":{boot},'
    payload = sign_payload(
        key,
        topic,
        f'{{"seq":{seq},{counter}"ts":{ts},"v":225.7,"i":0.1,"p":24.4,"e":38,"f":50,"pf":1}}'.encode(),
    )
    decoded = p.decode("sem", topic, payload)
    assert isinstance(decoded, p.Snapshot)
    assert decoded.boot == boot
    return payload, (decoded.meter, seq, ts, json.loads(payload)["sig"], boot)


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


# --- boot counter (protocol 1.1): reboots, replays, clocks without NTP ------------------------

NOW = 1_764_072_000.0
LINE_TOPIC = "sem/node1/line1/state"


class Node:
    """A node with a key publishing both meters, as it is admitted at the receiver."""

    def __init__(self, nodes: SignedNodes, boot: int | None, clock: float) -> None:
        self.nodes = nodes
        self.boot = boot
        self.clock = clock  # the node's `ts` at NOW
        self.seq = 0
        self.sent: list[tuple[bytes, Reading, str]] = []

    def reboot(self, *, boot: int | None, clock: float) -> None:
        self.boot, self.clock, self.seq = boot, clock, 0

    def publish(self, now: float, *, retained: bool = False) -> list[object]:
        verdicts = []
        for topic in (TOPIC, LINE_TOPIC):
            payload, reading = _signed_state(
                self.seq, self.clock + (now - NOW), boot=self.boot, topic=topic
            )
            self.sent.append((payload, reading, topic))
            verdicts.append(self.nodes.admit("node1", reading, topic, payload, retained, now))
        self.seq += 1
        return verdicts

    def replay(self, index: int, now: float) -> object:
        payload, reading, topic = self.sent[index]
        return self.nodes.admit("node1", reading, topic, payload, False, now)


@pytest.mark.parametrize(
    "clock",
    [pytest.param(NOW, id="ntp"), pytest.param(12.0, id="no-ntp")],
)
def test_a_node_that_counts_its_boots_is_believed_at_once_after_a_reboot(clock: float) -> None:
    nodes = SignedNodes({"node1": KEY})
    node = Node(nodes, boot=7, clock=clock)
    for second in range(10):
        assert node.publish(NOW + second) == [ADMITTED, ADMITTED]
    # The node reboots and publishes again 1 s after its last reading: seq restarts at 0, and
    # without NTP its clock too (near 0 again).
    node.reboot(boot=8, clock=NOW + 10 if clock == NOW else 0.5)
    assert node.publish(NOW + 10) == [ADMITTED, ADMITTED]
    assert node.publish(NOW + 11) == [ADMITTED, ADMITTED]
    assert not nodes.suspected("node1")
    assert nodes.diagnostics()["node1"]["refused"] == dict.fromkeys(Refusal, 0)


def test_replays_of_an_earlier_boot_or_of_this_boot_are_refused() -> None:
    nodes = SignedNodes({"node1": KEY})
    node = Node(nodes, boot=7, clock=NOW)
    for second in range(12):
        node.publish(NOW + second)
    node.reboot(boot=8, clock=NOW + 12)
    for second in range(12, 12 + p.RECENT_READINGS + 1):
        node.publish(NOW + second)
    now = NOW + 12 + p.RECENT_READINGS + 1
    # A capture from the earlier boot, replayed within the clock window: its seq (11) is even
    # higher than the current one.
    old_boot = node.replay(22, now)
    assert isinstance(old_boot, Refused)
    assert old_boot.kind is Refusal.REPLAYED
    assert "boot 7 after boot 8" in old_boot.detail
    # A capture from this boot (seq 0 of boot 8, older than the readings a node has in flight),
    # replayed.
    same_boot = node.replay(24, now)
    assert isinstance(same_boot, Refused)
    assert same_boot.kind is Refusal.REPLAYED
    assert f"seq 0 after {p.RECENT_READINGS}" in same_boot.detail
    assert nodes.suspected("node1")
    # The node's own readings go on.
    assert node.publish(now + 1) == [ADMITTED, ADMITTED]


def test_a_copy_of_a_recent_reading_is_ignored_not_refused() -> None:
    # A node sends again what the broker did not acknowledge; the broker may have passed it on
    # already, after later readings of the same meter. That is a copy, not a replay attack.
    nodes = SignedNodes({"node1": KEY})
    node = Node(nodes, boot=3, clock=NOW)
    for second in range(p.RECENT_READINGS):
        node.publish(NOW + second)
    now = NOW + p.RECENT_READINGS
    copies = [node.replay(index, now) for index in range(len(node.sent))]
    assert all(isinstance(copy, Ignored) for copy in copies), copies
    assert not nodes.suspected("node1")
    counts = nodes.diagnostics()["node1"]
    assert counts["accepted"] == 2 * p.RECENT_READINGS
    assert sum(counts["refused"].values()) == 0
    # One reading further on, the oldest is no longer one the node can have in flight.
    node.publish(now)
    refused = node.replay(0, now + 1)
    assert isinstance(refused, Refused)
    assert refused.kind is Refusal.REPLAYED
    # After a reboot nothing of the earlier boot is a copy, however recent.
    node.reboot(boot=4, clock=now + 2)
    node.publish(now + 2)
    earlier = node.replay(len(node.sent) - 3, now + 3)
    assert isinstance(earlier, Refused)
    assert "boot 3 after boot 4" in earlier.detail


def test_a_boot_counter_that_goes_back_is_refused() -> None:
    nodes = SignedNodes({"node1": KEY})
    node = Node(nodes, boot=7, clock=NOW)
    node.publish(NOW)
    # Signed with the node's key, fresh, but from a boot before the node's latest (a restored
    # flash image, or a counter from a copy of the node): refused, on every meter.
    node.reboot(boot=6, clock=NOW + 1)
    verdicts = node.publish(NOW + 1)
    assert all(isinstance(v, Refused) and v.kind is Refusal.REPLAYED for v in verdicts)
    # So is a reading without a counter (a firmware from before the counter, or its capture).
    node.reboot(boot=None, clock=NOW + 30)
    unsigned_counter = node.publish(NOW + 30)
    assert all(isinstance(v, Refused) for v in unsigned_counter)
    assert "no boot counter after boot 7" in unsigned_counter[0].detail  # type: ignore[attr-defined]
    assert nodes.diagnostics()["node1"]["refused"]["replayed"] == 4
    assert nodes.diagnostics()["node1"]["accepted"] == 2


def test_an_older_node_without_the_counter_keeps_the_margin_rule() -> None:
    """A signed node from before protocol 1.1: a reboot within 5 s is still a replay for it."""
    nodes = SignedNodes({"node1": KEY})
    node = Node(nodes, boot=None, clock=NOW)
    for second in range(3):
        node.publish(NOW + second)
    node.reboot(boot=None, clock=NOW + 3)
    assert all(isinstance(v, Refused) for v in node.publish(NOW + 3))
    node.reboot(boot=None, clock=NOW + 10)
    assert node.publish(NOW + 10) == [ADMITTED, ADMITTED]
    # Its clock must be Unix time: without NTP it is refused.
    node.reboot(boot=None, clock=12.0)
    verdicts = node.publish(NOW + 20)
    assert all(isinstance(v, Refused) and v.kind is Refusal.CLOCK for v in verdicts)
    # Upgraded to a firmware that counts boots: believed from its first reading.
    node.reboot(boot=0, clock=NOW + 21)
    assert node.publish(NOW + 21) == [ADMITTED, ADMITTED]


def test_a_node_without_ntp_is_judged_on_its_own_clock() -> None:
    nodes = SignedNodes({"node1": KEY})
    node = Node(nodes, boot=3, clock=12.0)
    for second in range(0, 200, 10):
        assert node.publish(NOW + second) == [ADMITTED, ADMITTED]
    # A capture of this boot that the receiver never saw (it was disconnected), 90 s old and
    # with a seq after the last accepted one: refused for its age on the node's clock.
    payload, reading = _signed_state(1000, 12.0 + 100, boot=3)
    stale = nodes.admit("node1", reading, TOPIC, payload, False, NOW + 200)
    assert isinstance(stale, Refused)
    assert stale.kind is Refusal.CLOCK
    assert "100 s older than the node's clock" in stale.detail  # 90 s, and 10 s later
    # The node's clock drifts slowly; followed from reading to reading.
    node.clock -= 30
    assert node.publish(NOW + 210) == [ADMITTED, ADMITTED]
    node.clock -= 30
    assert node.publish(NOW + 220) == [ADMITTED, ADMITTED]


def test_a_retained_reading_without_ntp_is_not_used_until_the_node_is_heard() -> None:
    """Home Assistant restarts: the broker hands out the node's last reading, whose age nothing
    tells without NTP. Not used, not an attack; the node's next reading is believed."""
    nodes = SignedNodes({"node1": KEY})
    node = Node(nodes, boot=3, clock=500.0)
    retained = node.publish(NOW, retained=True)
    assert all(isinstance(v, Ignored) for v in retained)
    assert "cannot be checked" in retained[0].reason  # type: ignore[attr-defined]
    assert node.publish(NOW + 1) == [ADMITTED, ADMITTED]
    assert not nodes.suspected("node1")


def test_the_documented_test_vector() -> None:
    """docs/protocol.md's signing test vector, checked as written there."""
    doc = (Path(__file__).parents[2] / "docs" / "protocol.md").read_text()
    match = re.search(
        r"Test vector: key text `([^`]+)`.*?topic\s+`([^`]+)`, unsigned payload\s+`([^`]+)`"
        r"\s+gives `sig` = `([0-9a-f]{64})`",
        doc,
        re.DOTALL,
    )
    assert match is not None
    key, topic, unsigned, sig = match.groups()
    assert len(key.encode()) == 25
    assert key.encode().endswith(b"\xe2\x9c\x93")
    assert signature(key.encode(), topic, unsigned.encode()) == sig
    signed = sign_payload(key.encode(), topic, unsigned.encode())
    decoded = p.decode("sem", topic, signed)
    assert isinstance(decoded, p.Snapshot)
    assert (decoded.boot, decoded.seq, decoded.signature) == (7, 42, sig)
    # The payload of protocol 1.0, also given.
    legacy = re.search(r"without `\"boot\":7,` gives\s+`([0-9a-f]{64})`", doc)
    assert legacy is not None
    without_boot = unsigned.replace('"boot":7,', "").encode()
    assert signature(key.encode(), topic, without_boot) == legacy.group(1)
    # The same reading is a shared vector of both codecs.
    vector = json.loads(
        (Path(__file__).parents[1] / "vectors/064_state_signed_boot.json").read_text()
    )
    assert vector["payload"].encode() == signed
