"""The meter model without a broker or Home Assistant: messages in, typed changes out."""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.meters import (
    STALE_INTERVALS,
    Announced,
    AnnouncedPair,
    Changed,
    EnergyCounted,
    ForeignProtocol,
    Heard,
    MeterKey,
    MeterModel,
    NodeKey,
    NodeRemoved,
    Quantity,
    RelayKey,
    ResetReplied,
    TrackedVerdict,
    VerdictHeard,
    announced_pairs,
)

PREFIX = "sem"
NOW = 1_764_072_000.0
ANNOUNCE = p.Announce(
    node="node1",
    version="1.0",
    name="Pole 7",
    model="",
    firmware="1.0.0",
    mac=None,
    interval=1.0,
    meters=(p.MeterInfo("line1", p.Role.LINE, "h1"), p.MeterInfo("house1", p.Role.HOUSE, "h1")),
)


def _state(meter: str, *, seq: int = 1, ts: float = NOW, energy: float = 38.0) -> bytes:
    snapshot = p.Snapshot("node1", meter, seq, ts, 230.0, 0.4, 92.0, energy, 50.0, 1.0, False)
    return p.encode_state(snapshot)


def _topic(meter: str) -> str:
    return p.state_topic(PREFIX, "node1", meter)


def test_a_reading_of_a_tracked_meter_is_heard_and_told() -> None:
    model = MeterModel(PREFIX)
    meter = model.track_protocol_meter("node1", "house1")
    changes = model.apply(_topic("house1"), _state("house1"), False, NOW + 0.05)
    assert changes == [
        EnergyCounted(meter),
        # No announce yet: the fallback interval.
        Heard(meter, None, STALE_INTERVALS * 10.0, ("node1/house1", None)),
        Changed(MeterKey("node1/house1")),
    ]
    assert meter.samples == 1
    assert meter.power_ts == NOW
    assert model.available(meter, Quantity.POWER)
    assert meter.value(Quantity.POWER) == 92.0
    assert model.nodes["node1"].heard == NOW + 0.05


def test_readings_of_untracked_meters_and_junk_change_nothing() -> None:
    model = MeterModel(PREFIX)
    model.track_protocol_meter("node1", "house1")
    assert model.apply(_topic("line1"), _state("line1"), False, NOW) == []
    assert model.apply(_topic("house1"), b'{"seq":1', False, NOW) == []
    assert model.apply(_topic("house1"), b" " * 5000, False, NOW) == []
    assert model.meters["node1/house1"].samples == 0


def test_an_admission_that_refuses_changes_nothing() -> None:
    model = MeterModel(PREFIX)
    meter = model.track_protocol_meter("node1", "house1")
    seen: list[tuple[Any, ...]] = []

    def refuse(message: p.Message, topic: str, payload: bytes, retained: bool) -> bool:
        seen.append((type(message), topic, retained))
        return False

    assert model.apply(_topic("house1"), _state("house1"), True, NOW, refuse) == []
    assert seen == [(p.Snapshot, _topic("house1"), True)]
    assert meter.samples == 0
    assert "node1" not in model.nodes


def test_status_announce_and_removal() -> None:
    model = MeterModel(PREFIX)
    status = model.apply(p.status_topic(PREFIX, "node1"), b"offline", True, NOW)
    assert status == [Changed(NodeKey("node1"))]
    assert not model.node_online("node1")
    announce = replace(ANNOUNCE, interval=2.0)
    changes = model.apply(p.announce_topic(PREFIX, "node1"), p.encode_announce(announce), True, NOW)
    assert changes == [Announced(announce), Changed(NodeKey("node1"))]
    assert model.nodes["node1"].interval == 2.0
    gone = model.apply(p.announce_topic(PREFIX, "node1"), b"", True, NOW)
    assert gone == [NodeRemoved("node1"), Changed(NodeKey("node1"))]
    assert model.nodes["node1"].gone


def test_another_major_version_is_told_once_per_node() -> None:
    model = MeterModel(PREFIX)
    payload = json.dumps({"proto": "2.0", "node": "node9"}).encode()
    topic = p.announce_topic(PREFIX, "node9")
    assert model.apply(topic, payload, True, NOW) == [ForeignProtocol("node9", "2.0")]
    assert model.apply(topic, payload, True, NOW) == []


def test_a_relay_state_is_told_for_tracked_relays() -> None:
    model = MeterModel(PREFIX)
    relay = model.track_relay("node1", "r1")
    topic = p.relay_state_topic(PREFIX, "node1", "r1")
    assert model.apply(topic, b"ON", True, NOW) == [Changed(RelayKey("node1", "r1"))]
    assert relay.state is p.RelayState.ON
    assert model.apply(p.relay_state_topic(PREFIX, "node1", "r2"), b"ON", True, NOW) == []


def test_expiry_makes_a_meter_unavailable_until_the_next_reading(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO")
    model = MeterModel(PREFIX)
    meter = model.track_protocol_meter("node1", "house1")
    heard = model.apply(_topic("house1"), _state("house1"), False, NOW)[1]
    assert isinstance(heard, Heard)
    assert model.expire(heard) == [Changed(MeterKey("node1/house1"))]
    assert not model.available(meter, Quantity.POWER)
    model.apply(_topic("house1"), _state("house1", seq=2, ts=NOW + 40), False, NOW + 40)
    assert model.available(meter, Quantity.POWER)
    assert [r.getMessage() for r in caplog.records] == [
        "Meter node1/house1 is unavailable: nothing heard for 30 s",
        "Meter node1/house1 is heard again",
    ]


def test_copies_of_recent_readings_change_nothing_not_even_the_clock(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A node sends again what the broker did not acknowledge: copies arrive late, after newer
    # readings. Taken as readings they would be refused and, three in a row agreeing, look
    # like a jump of the node's clock.
    model = MeterModel(PREFIX)
    meter = model.track_protocol_meter("node1", "house1")
    for seq in range(4):
        model.apply(_topic("house1"), _state("house1", seq=seq, ts=NOW + seq), False, NOW + seq)
    clock = model.nodes["node1"].clock
    for seq in range(4):
        late = NOW + 12 + seq * 0.01
        assert (
            model.apply(_topic("house1"), _state("house1", seq=seq, ts=NOW + seq), False, late)
            == []
        )
    assert (clock.refused, clock.jumps, clock.shift) == (0, 0, 0.0)
    assert meter.samples == 4
    assert meter.snapshot is not None
    assert meter.snapshot.seq == 3
    assert not [r for r in caplog.records if r.levelname == "WARNING"]
    # A reading with the seq of a copy but taken later (a reboot without NTP) is not a copy.
    changes = model.apply(_topic("house1"), _state("house1", seq=0, ts=NOW + 13), False, NOW + 13)
    assert Changed(MeterKey("node1/house1")) in changes


def test_paper_values_are_stamped_on_arrival() -> None:
    model = MeterModel(PREFIX)
    meter = model.track_value_topics_meter("pole7/house3", 5.0)
    assert sorted(model.value_topics)[0] == "pole7/house3/energy"
    changes = model.apply("pole7/house3/pac", b"120.5", False, NOW)
    assert changes == [
        Heard(meter, Quantity.POWER, 15.0, ("paper:pole7/house3", Quantity.POWER)),
        Changed(MeterKey("paper:pole7/house3")),
    ]
    assert meter.power_ts == NOW
    assert model.available(meter, Quantity.POWER)
    assert not model.available(meter, Quantity.VOLTAGE)


def test_energy_totals_continue_from_an_earlier_run() -> None:
    stored = {"node1/house1": {"value": 5095.0, "raw": 5095.0, "at": NOW - 60}}
    model = MeterModel(PREFIX, stored)
    meter = model.track_protocol_meter("node1", "house1")
    changes = model.apply(_topic("house1"), _state("house1", energy=4121.0), False, NOW)
    assert not any(isinstance(change, EnergyCounted) for change in changes)
    assert meter.value(Quantity.ENERGY) == 5095.0
    assert model.energy_counters() == stored


def test_a_node_proposes_each_label_with_one_line_and_one_house_meter() -> None:
    announce = replace(
        ANNOUNCE,
        meters=(
            p.MeterInfo("line1", p.Role.LINE, "h1"),
            p.MeterInfo("house1", p.Role.HOUSE, "h1"),
            p.MeterInfo("line2", p.Role.LINE, "h2"),  # no house meter: no pair
            p.MeterInfo("house3", p.Role.HOUSE, "h3"),
            p.MeterInfo("line3", p.Role.LINE, "h3"),
        ),
        relays=(p.RelayInfo("r3", "h3"), p.RelayInfo("r3b", "h3")),
        pair_names={"h1": "House 1"},
    )
    assert announced_pairs(announce) == [
        AnnouncedPair("node1", "h1", "House 1", "line1", "house1", None),
        AnnouncedPair("node1", "h3", "h3", "line3", "house3", "r3"),
    ]


def test_an_error_form_keeps_the_nodes_words_until_the_meter_answers() -> None:
    model = MeterModel(PREFIX)
    meter = model.track_protocol_meter("node1", "house1")
    model.apply(_topic("house1"), _state("house1"), False, NOW)
    error = b'{"seq":2,"ts":%d,"error":"out_of_range","detail":"pf 1.5 above 1"}' % (NOW + 1)
    model.apply(_topic("house1"), error, False, NOW + 1)
    assert (meter.error, meter.error_detail) == ("out_of_range", "pf 1.5 above 1")
    assert not model.available(meter, Quantity.POWER)
    model.apply(_topic("house1"), _state("house1", seq=3, ts=NOW + 2), False, NOW + 2)
    assert (meter.error, meter.error_detail) == (None, None)
    assert model.available(meter, Quantity.POWER)


def test_a_reset_reply_is_told_and_only_1_2_nodes_are_expected_to_give_one() -> None:
    model = MeterModel(PREFIX)
    model.track_protocol_meter("node1", "house1")
    assert not model.replies_to_reset("node1")  # not announced yet
    announce = p.announce_topic(PREFIX, "node1")
    model.apply(announce, p.encode_announce(ANNOUNCE), True, NOW)
    assert not model.replies_to_reset("node1")
    model.apply(announce, p.encode_announce(replace(ANNOUNCE, version="1.2")), True, NOW)
    assert model.replies_to_reset("node1")
    topic = p.reset_result_topic(PREFIX, "node1", "house1")
    refused = b'{"ok":false,"error":"exception","detail":"slave error"}'
    assert model.apply(topic, refused, False, NOW + 1) == [
        ResetReplied(p.ResetResult("node1", "house1", False, "exception", "slave error"))
    ]
    assert model.nodes["node1"].heard == NOW + 1
    # An old reply the broker kept, and junk, are no reply.
    assert model.apply(topic, b'{"ok":true}', True, NOW + 2) == []
    assert model.apply(topic, b'{"ok":1}', False, NOW + 2) == []


# --- the fleet service's verdict ---------------------------------------------------------------


def _verdict(n: int = 1, *, detected: bool = True, at: float = NOW) -> p.ServiceVerdict:
    return p.ServiceVerdict(
        node="node1",
        pair="h1",
        id=f"node1/h1/{'theft' if detected else 'clear'}/{n}",
        name="House 1",
        event=p.VerdictEvent.DETECTED if detected else p.VerdictEvent.CLEARED,
        status="theft" if detected else "ok",
        at=at,
        since=NOW,
        mismatch_pct=18.0 if detected else 0.3,
        line_power_w=120.0,
        house_power_w=98.4,
        unaccounted_wh=4.5,
    )


VERDICT_TOPIC = p.verdict_topic(PREFIX, "node1", "h1")


def test_a_verdict_on_a_tracked_pair_is_kept_and_told(caplog: pytest.LogCaptureFixture) -> None:
    model = MeterModel(PREFIX)
    tracked = model.track_verdict("node1", "h1")
    assert (tracked.verdict, tracked.heard, tracked.current) == (None, False, False)
    detected = _verdict()
    with caplog.at_level("INFO"):
        changes = model.apply(VERDICT_TOPIC, p.encode_verdict(detected), True, NOW)
    assert changes == [VerdictHeard(tracked)]
    assert "Service verdict on pair node1/h1: detected (theft)" in caplog.text
    assert tracked == TrackedVerdict("node1", "h1", detected, heard=True, current=True)
    # The same verdict again (a redelivery, a second retained copy) changes nothing.
    assert model.apply(VERDICT_TOPIC, p.encode_verdict(detected), False, NOW + 1) == []
    cleared = _verdict(detected=False, at=NOW + 60)
    assert model.apply(VERDICT_TOPIC, p.encode_verdict(cleared), False, NOW + 60) == [
        VerdictHeard(tracked)
    ]
    assert tracked.verdict == cleared
    # A verdict is no message of the node: it does not count as hearing the node.
    assert "node1" not in model.nodes or model.nodes["node1"].heard is None


def test_a_verdict_on_a_pair_nobody_tracks_or_junk_changes_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = MeterModel(PREFIX)
    tracked = model.track_verdict("node1", "h1")
    other = p.verdict_topic(PREFIX, "node1", "h2")
    payload = p.encode_verdict(replace(_verdict(), pair="h2", id="node1/h2/theft/1"))
    with caplog.at_level("DEBUG"):
        assert model.apply(other, payload, True, NOW) == []
        assert model.apply(VERDICT_TOPIC, b'{"pair": "node1/h1", "event": "x"}', True, NOW) == []
    assert "no pair here (yet)" in caplog.text
    assert "unknown verdict event" in caplog.text
    assert tracked.verdict is None
    assert not tracked.heard
    assert set(model.verdicts) == {("node1", "h1")}


def test_a_pair_tracked_later_takes_the_verdict_heard_on_this_connection() -> None:
    model = MeterModel(PREFIX)
    topic = p.verdict_topic(PREFIX, "node1", "h2")
    verdict = replace(_verdict(), pair="h2", id="node1/h2/theft/1")
    gone = replace(verdict, pair="h3", id="node1/h3/theft/1")
    model.apply(topic, p.encode_verdict(verdict), True, NOW)
    model.apply(p.verdict_topic(PREFIX, "node1", "h3"), p.encode_verdict(gone), True, NOW)
    model.apply(p.verdict_topic(PREFIX, "node1", "h3"), b"", True, NOW)  # withdrawn
    assert model.track_verdict("node1", "h2") == TrackedVerdict(
        "node1", "h2", verdict, heard=True, current=True
    )
    assert model.track_verdict("node1", "h3") == TrackedVerdict("node1", "h3")
    # Heard before a lost connection: the broker hands it again if it still stands.
    later = replace(verdict, pair="h4", id="node1/h4/theft/1")
    model.apply(p.verdict_topic(PREFIX, "node1", "h4"), p.encode_verdict(later), True, NOW)
    model.connection_lost()
    assert model.track_verdict("node1", "h4") == TrackedVerdict("node1", "h4")


def test_a_withdrawn_verdict_is_told_only_once_one_was_heard() -> None:
    model = MeterModel(PREFIX)
    tracked = model.track_verdict("node1", "h1")
    assert model.apply(VERDICT_TOPIC, b"", True, NOW) == []
    assert not tracked.heard
    model.apply(VERDICT_TOPIC, p.encode_verdict(_verdict()), True, NOW)
    assert model.apply(VERDICT_TOPIC, b"", True, NOW + 1) == [VerdictHeard(tracked)]
    assert (tracked.verdict, tracked.heard, tracked.current) == (None, True, True)
    assert model.apply(VERDICT_TOPIC, b"", True, NOW + 2) == []


def test_after_a_lost_connection_the_same_verdict_is_current_again_when_it_comes(
    caplog: pytest.LogCaptureFixture,
) -> None:
    model = MeterModel(PREFIX)
    tracked = model.track_verdict("node1", "h1")
    detected = _verdict()
    model.apply(VERDICT_TOPIC, p.encode_verdict(detected), True, NOW)
    model.connection_lost()
    assert not tracked.current
    assert tracked.verdict == detected  # kept for the diagnostics
    caplog.clear()
    with caplog.at_level("INFO"):
        assert model.apply(VERDICT_TOPIC, p.encode_verdict(detected), True, NOW + 30) == [
            VerdictHeard(tracked)
        ]
    assert tracked.current
    # Handed again, not changed: no news worth an info line.
    assert "Service verdict" not in caplog.text
