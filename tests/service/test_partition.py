"""One partition's detection without NATS: the integration's meter model and pair monitors fed
stream messages, its checkpoint, and the stable ids of its alarms."""

from __future__ import annotations

import json
import logging
import zlib
from pathlib import Path

import pytest

from benchmarks.ingest.fleet import VirtualNode
from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.meters import Quantity
from custom_components.smart_energy_meter.semcore.signing import sign_payload
from semservice.pairs import Overrides, node_keys
from semservice.partition import Event, PartitionState, event_order

PREFIX = "fleet"
START = 1_764_072_000.0
FAST = Overrides({"window_s": 5.0})


class Feed:
    """Stream messages of virtual nodes, one reading per meter per second, numbered as a stream
    numbers them."""

    def __init__(self, nodes: list[VirtualNode]) -> None:
        self.nodes = nodes
        self.seq = 0
        self.reading = 0

    def messages(self, seconds: int) -> list[tuple[int, str, bytes, float]]:
        out: list[tuple[int, str, bytes, float]] = []
        if self.seq == 0:
            for node in self.nodes:
                out.append(self._next(p.announce_topic(PREFIX, node.node), node.announce(), 0))
        for _ in range(seconds):
            at = START + self.reading
            for node in self.nodes:
                line, house = _stamped(node, self.reading, at)
                out.append(self._next(p.state_topic(PREFIX, node.node, "line"), line, at))
                out.append(self._next(p.state_topic(PREFIX, node.node, "house"), house, at))
            self.reading += 1
        return out

    def _next(self, topic: str, payload: bytes, at: float) -> tuple[int, str, bytes, float]:
        self.seq += 1
        return self.seq, topic, payload, (at or START) + 0.05


def _stamped(node: VirtualNode, reading: int, at: float) -> tuple[bytes, bytes]:
    """The node's snapshots of `reading`, stamped `at` (not the wall clock)."""
    line, house = node.snapshots(reading)
    return _restamp(line, at), _restamp(house, at + 0.1)


def _restamp(payload: bytes, at: float) -> bytes:
    data = json.loads(payload)
    data["ts"] = at
    return json.dumps(data).encode()


def _run(state: PartitionState, messages: list[tuple[int, str, bytes, float]]) -> list[Event]:
    events: list[Event] = []
    for seq, topic, payload, at in messages:
        events += state.apply(seq, topic, payload, at)
    return events


def _nodes() -> list[VirtualNode]:
    return [
        VirtualNode(PREFIX, "v-honest", 0),
        VirtualNode(PREFIX, "v-thief", 1, stolen=0.2),
    ]


def test_a_thief_is_flagged_and_an_honest_house_is_not() -> None:
    state = PartitionState(0, PREFIX, FAST)
    events = _run(state, Feed(_nodes()).messages(60))
    assert [(e.pair, e.event, e.id) for e in events] == [
        ("v-thief/house", "detected", "v-thief/house/theft/1")
    ]
    (event,) = events
    assert event.mismatch_pct is not None
    assert 15 < event.mismatch_pct < 25
    assert state.pairs["v-thief/house"].status.value == "theft"
    assert state.pairs["v-honest/house"].status.value == "ok"
    thief = state.pairs["v-thief/house"]
    assert thief.since == event.at
    # Unaccounted energy is counted per day once the balance says it is missing.
    (wh,) = thief.days.values()
    assert wh == pytest.approx(event.unaccounted_wh + sum(_unaccounted_after(state, event)))
    # The honest pair's meters differ by their tolerance only: a trace of it counts.
    (honest,) = state.pairs["v-honest/house"].days.values()
    assert honest < wh / 5


def test_a_restored_partition_derives_the_same_alarm_once() -> None:
    """A worker checkpoints, the stream goes on, the worker dies before the next checkpoint: its
    successor replays from the checkpoint and gives the alarm the same id."""
    feed = Feed(_nodes())
    first = PartitionState(0, PREFIX, FAST)
    assert _run(first, feed.messages(10)) == []
    checkpoint = first.checkpoint()
    later = feed.messages(50)
    events = _run(first, later)
    successor = PartitionState.restore(checkpoint, 0, PREFIX, FAST)
    assert successor.seq == 10 * 4 + 2
    # The stream hands the successor everything after the checkpoint, and some before it too.
    replayed = _run(successor, feed_before(checkpoint_seq=successor.seq) + later)
    assert [e.id for e in replayed] == [e.id for e in events] == ["v-thief/house/theft/1"]
    assert replayed[0].at == events[0].at
    # Once flagged, the alarm is not raised again by a successor of a later checkpoint.
    third = PartitionState.restore(first.checkpoint(), 0, PREFIX, FAST)
    assert _run(third, feed.messages(30)) == []
    assert third.pairs["v-thief/house"].status.value == "theft"
    assert third.pairs["v-thief/house"].alarms == 1


def feed_before(checkpoint_seq: int) -> list[tuple[int, str, bytes, float]]:
    """Messages numbered at or below the checkpoint's sequence: already in the state."""
    return [(seq, "fleet/v-thief/house/state", b"{}", START) for seq in range(1, checkpoint_seq)]


def _unaccounted_after(state: PartitionState, event: Event) -> list[float]:
    """What the thief's balance counted after the alarm's event."""
    return [state.pairs[event.pair].monitor.evaluation.unaccounted_wh - event.unaccounted_wh]


class SteadyNode(VirtualNode):
    """A node whose house draws a steady load (a clean window under hysteresis needs one)."""

    def snapshots(self, seq: int) -> tuple[bytes, bytes]:
        line, house = 100.0, 99.04 * (1.0 - self.stolen)
        return tuple(  # type: ignore[return-value]
            p.encode_state(
                p.Snapshot(self.node, meter, seq, 0.0, 230.0, power / 230, power,
                           1000.0 + seq * power / 3600, 50.0, 1.0, False)
            )
            for meter, power in (("line", line), ("house", house))
        )  # fmt: skip


def test_a_clear_follows_the_end_of_the_theft_with_the_alarm_ordinal() -> None:
    feed = Feed([SteadyNode(PREFIX, "v-thief", 1, stolen=0.2)])
    state = PartitionState(0, PREFIX, FAST)
    (detected,) = _run(state, feed.messages(60))
    feed.nodes = [SteadyNode(PREFIX, "v-thief", 1)]  # the bypass is removed
    events = _run(state, feed.messages(60))
    assert [(e.id, e.event, e.since) for e in events] == [
        ("v-thief/house/clear/1", "cleared", detected.at)
    ]
    assert state.pairs["v-thief/house"].since is None
    assert state.pairs["v-thief/house"].status.value == "ok"


def test_events_of_a_pair_are_ordered_by_their_ids() -> None:
    orders = [event_order(f"v-1/house/{kind}/{n}") for n in (1, 2) for kind in ("theft", "clear")]
    assert orders == [1, 2, 3, 4]


def test_silent_meters_are_not_evaluated_as_current(caplog: pytest.LogCaptureFixture) -> None:
    feed = Feed(_nodes())
    state = PartitionState(0, PREFIX, FAST)
    _run(state, feed.messages(5))
    meter = state.pairs["v-thief/house"].house
    assert state.model.available(meter, Quantity.POWER)
    state.tick(START + 5 + 1.0)  # within three intervals of the last reading: still current
    assert state.model.available(meter, Quantity.POWER)
    with caplog.at_level(logging.INFO):
        state.tick(START + 5 + 3 * 1.0 + 1)
    assert not state.model.available(meter, Quantity.POWER)
    assert "v-thief/house is unavailable" in caplog.text


def test_a_checkpoint_of_another_layout_or_corrupt_is_refused() -> None:
    state = PartitionState(3, PREFIX)
    _run(state, Feed(_nodes()).messages(2))
    data = state.checkpoint()
    with pytest.raises(ValueError, match="another layout"):
        PartitionState.restore(data, 4, PREFIX)
    with pytest.raises(ValueError, match="another layout"):
        PartitionState.restore(data, 3, "other")
    with pytest.raises(ValueError, match="unreadable"):
        PartitionState.restore(b"junk", 3, PREFIX)
    stored = json.loads(zlib.decompress(data))
    stored["version"] = 99
    with pytest.raises(ValueError, match="not version 1"):
        PartitionState.restore(zlib.compress(json.dumps(stored).encode()), 3, PREFIX)


def test_junk_changes_nothing(caplog: pytest.LogCaptureFixture) -> None:
    state = PartitionState(0, PREFIX)
    feed = Feed(_nodes())
    _run(state, feed.messages(3))
    before = state.pairs["v-thief/house"].monitor.as_dict()
    with caplog.at_level(logging.DEBUG):
        events = state.apply(feed.seq + 1, "fleet/v-thief/house/state", b"{nope", START + 3.2)
    assert events == []
    assert state.pairs["v-thief/house"].monitor.as_dict() == before
    assert "Ignoring fleet/v-thief/house/state" in caplog.text
    assert state.seq == feed.seq + 1  # the stream position moves on past it


def test_overrides_name_and_tune_a_pair(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "overrides.json"
    path.write_text(
        json.dumps(
            {
                "defaults": {"window_s": 5},
                "pairs": {
                    "v-thief/house": {
                        "name": "Warung Bu Sri",
                        "resistance_ohm": 0.05,
                        "threshold_mode": "fixed",
                        "threshold_pct": 3,
                    },
                    "v-honest/house": {"cable": {"length_m": 40}},  # cross-section missing
                },
            }
        )
    )
    with caplog.at_level(logging.WARNING):
        overrides = Overrides.load(path)
    assert "Overrides of pair v-honest/house ignored" in caplog.text
    config = overrides.config("v-thief/house")
    assert config.window_s == 5
    assert config.resistance_ohm == 0.05
    assert config.uncertainty.fixed_pct == 3
    assert overrides.config("v-honest/house").window_s == 5  # the defaults still apply
    state = PartitionState(0, PREFIX, overrides)
    _run(state, Feed(_nodes()).messages(1))
    assert state.pairs["v-thief/house"].name == "Warung Bu Sri"
    assert state.pairs["v-honest/house"].name == "house"
    # The report reads the checkpoints without the overrides: the names are in them.
    restored = PartitionState.restore(state.checkpoint(), 0, PREFIX)
    assert restored.pairs["v-thief/house"].name == "Warung Bu Sri"
    path.write_text(json.dumps({"defaults": {"windows": 5}}))
    with pytest.raises(ValueError, match="unknown keys"):
        Overrides.load(path)


KEY = "the thief's node key: 0123456789"


def test_a_node_with_a_key_is_believed_only_when_signed(caplog: pytest.LogCaptureFixture) -> None:
    # The thief's node signs; someone else publishes in its name what would hide the bypass:
    # the house meter reading as much as the line.
    overrides = Overrides({"window_s": 5.0}, keys=node_keys({"v-thief": KEY}))
    state = PartitionState(0, PREFIX, overrides)
    sent: list[tuple[str, bytes, float]] = []
    for _, topic, payload, at in Feed(_nodes()).messages(60):
        if "/v-thief/" not in topic:
            sent.append((topic, payload, at))
            continue
        signed = sign_payload(KEY.encode(), topic, payload)
        sent.append((topic, signed, at))
        if topic.endswith("/line/state") and at > START + 5:
            forged = json.loads(payload)
            forged["seq"] += 1000
            sent.append((topic.replace("/line/", "/house/"), json.dumps(forged).encode(), at))
    numbered = [(index + 1, *message) for index, message in enumerate(sent)]
    with caplog.at_level(logging.WARNING):
        events = _run(state, numbered)
    assert [(e.pair, e.event) for e in events] == [("v-thief/house", "detected")]
    forgeries = sum(
        1 for _, topic, payload, _ in numbered if b'"sig"' not in payload and "/v-thief/" in topic
    )
    assert state.refused == forgeries > 50
    refusals = [r.getMessage() for r in caplog.records if "Refused" in r.getMessage()]
    assert len(refusals) == 1  # once per episode
    assert "node v-thief" in refusals[0]
    assert "no signature" in refusals[0]
    # Ten minutes without a refusal end the episode; the next forgery is told again.
    state.tick(state.now + 601)
    assert not state.signed.suspected("v-thief")  # type: ignore[union-attr]


def test_an_unusable_node_key_stops_the_service(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    for keys, message in (
        ({"v-thief": "short"}, "shorter than 16 bytes"),
        ({"v/thief": KEY}, "is not a node id"),
        ([KEY], "not a JSON object"),
    ):
        path.write_text(json.dumps({"node_keys": keys}))
        with pytest.raises(ValueError, match=message):
            Overrides.load(path)
    path.write_text(json.dumps({"node_keys": {"v-thief": KEY}}))
    assert Overrides.load(path).keys == {"v-thief": KEY.encode()}
