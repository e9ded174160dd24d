"""One partition's detection: the integration's meter model and pair monitors, fed from the
stream, checkpointed whole.

Every message carries its stream sequence and the time the cluster stored it; that time is the
arrival time the meter model judges timestamps by, so a worker that replays the stream after a
restore sees the same arrival times as the one before it, and derives the same verdicts. A
message at or below the partition's sequence is already in the state and is skipped.

An alarm's id is the pair's key and its ordinal (`<node>/<pair>/theft/3`): a restored worker
that derives an alarm again gives it the same id, and the events stream drops it as a duplicate.

Pure Python: no NATS, no clock of its own.
"""

from __future__ import annotations

import json
import logging
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Final

from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.debounce import Status
from custom_components.smart_energy_meter.semcore.energy_balance import TheftEngine
from custom_components.smart_energy_meter.semcore.instant_rule import PairDetector, TheftEvent
from custom_components.smart_energy_meter.semcore.meters import (
    Announced,
    Changed,
    Heard,
    MeterKey,
    MeterModel,
    NodeKey,
    NodeRemoved,
    ProtocolMeter,
    Quantity,
    announced_pairs,
)
from custom_components.smart_energy_meter.semcore.pair_monitor import PairMonitor, TheftChange
from custom_components.smart_energy_meter.semcore.signing import (
    SIGNED_KINDS,
    TAMPER_HOLD,
    Ignored,
    Refused,
    SignedNodes,
)

from .pairs import Overrides, pair_key

_LOGGER = logging.getLogger(__name__)

CHECKPOINT_VERSION: Final = 1
# Days of unaccounted energy kept per pair.
DAYS_KEPT: Final = 14


def utc_day(at: float) -> str:
    """The UTC date of a time, as the per-day figures are keyed."""
    return time.strftime("%Y-%m-%d", time.gmtime(at))


@dataclass(frozen=True, slots=True)
class Event:
    """A pair's theft verdict changed."""

    id: str
    pair: str
    name: str
    event: str  # "detected" or "cleared"
    status: str  # the balance's new status
    at: float  # arrival time of the reading (or tick) that decided it
    since: float | None  # when the theft going on was detected
    mismatch_pct: float | None
    line_power_w: float | None
    house_power_w: float | None
    unaccounted_wh: float

    @property
    def order(self) -> int:
        """Where the event stands among its pair's: theft n is 2n - 1, its clear 2n."""
        return event_order(self.id)

    def as_json(self) -> bytes:
        """The event's payload in the events stream and on the verdict topic."""
        return json.dumps(
            {
                "id": self.id,
                "pair": self.pair,
                "name": self.name,
                "event": self.event,
                "status": self.status,
                "at": round(self.at, 3),
                "since": None if self.since is None else round(self.since, 3),
                "mismatch_pct": _rounded(self.mismatch_pct, 2),
                "line_power_w": _rounded(self.line_power_w, 1),
                "house_power_w": _rounded(self.house_power_w, 1),
                "unaccounted_wh": round(self.unaccounted_wh, 2),
            }
        ).encode()


def event_order(event_id: str) -> int:
    """The place of an event among its pair's, from its id (`…/theft/3` is 5, `…/clear/3` 6)."""
    _, kind, ordinal = event_id.rsplit("/", 2)
    return 2 * int(ordinal) - (1 if kind == "theft" else 0)


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


@dataclass(slots=True)
class WatchedPair:
    """One pair, its two meters and its detection."""

    node: str
    label: str
    name: str
    line: ProtocolMeter
    house: ProtocolMeter
    monitor: PairMonitor
    alarms: int = 0  # theft detections so far: the ordinal in the alarm's id
    since: float | None = None  # when the theft going on was detected
    days: dict[str, float] = field(default_factory=dict)  # unaccounted Wh per UTC day
    counted_wh: float = 0.0  # the balance's unaccounted total already put into a day

    @property
    def key(self) -> str:
        """`<node>/<pair label>`."""
        return pair_key(self.node, self.label)

    @property
    def status(self) -> Status:
        """The balance's status."""
        return self.monitor.evaluation.status

    def as_dict(self) -> dict[str, Any]:
        """Stored form (the meters are the model's, stored with it)."""
        return {
            "node": self.node,
            "label": self.label,
            "name": self.name,
            "line": self.line.meter,
            "house": self.house.meter,
            "monitor": self.monitor.as_dict(),
            "alarms": self.alarms,
            "since": self.since,
            "days": self.days,
            "counted_wh": self.counted_wh,
        }


class PartitionState:
    """Nodes, pairs and verdicts of one partition, and how far into the stream it is."""

    def __init__(self, partition: int, prefix: str, overrides: Overrides | None = None) -> None:
        self.partition = partition
        self.prefix = prefix
        self.overrides = overrides or Overrides()
        self.model = MeterModel(prefix)
        self.pairs: dict[str, WatchedPair] = {}
        self.seq = 0  # last stream sequence applied
        self.now = 0.0  # latest arrival time seen
        self.readings = 0  # messages applied
        self.evaluated = 0  # pair updates
        self._by_meter: dict[str, list[tuple[WatchedPair, p.Role]]] = {}
        self._by_node: dict[str, list[WatchedPair]] = {}
        self._announces: dict[str, str] = {}  # raw announce per node, for the checkpoint
        self._heard: dict[tuple[str, Quantity | None], tuple[Heard, float]] = {}
        # The nodes with a key: their readings are used only when signed with it. What the
        # replay guard knows is not checkpointed: after a takeover it starts afresh, the first
        # reading of each meter judged by its signature and freshness alone.
        self.signed = SignedNodes(self.overrides.keys) if self.overrides.keys else None
        self.refused = 0  # readings of nodes with a key not believed
        self._refused_at: dict[str, float] = {}  # node -> its latest refused reading

    # --- messages -----------------------------------------------------------------------------

    def apply(self, seq: int, topic: str, payload: bytes, arrival: float) -> list[Event]:
        """Apply the stream's message `seq` (stored at `arrival`); answer the verdict changes."""
        if seq <= self.seq:
            return []  # in the state already: a replay from before the checkpoint
        self.seq = seq
        self.now = max(self.now, arrival)
        self.readings += 1
        events: list[Event] = []
        admit = self._admit if self.signed is not None else None
        for change in self.model.apply(topic, payload, False, arrival, admit):
            if isinstance(change, Changed):
                key = change.key
                if isinstance(key, MeterKey):
                    for pair, role in self._by_meter.get(key.key, ()):
                        events += self._update(pair, role, arrival)
                elif isinstance(key, NodeKey):
                    for pair in self._by_node.get(key.node, ()):
                        events += self._update(pair, p.Role.LINE, arrival)
                        events += self._update(pair, p.Role.HOUSE, arrival)
            elif isinstance(change, Heard):
                self._heard[change.slot] = (change, arrival)
            elif isinstance(change, Announced):
                self._announces[change.announce.node] = payload.decode()
                self._announced(change.announce)
            elif isinstance(change, NodeRemoved):
                _LOGGER.info("Node %s removed itself: its pairs stop being evaluated", change.node)
        return events

    def _admit(self, message: p.Message, topic: str, payload: bytes, retained: bool) -> bool:
        assert self.signed is not None
        verdict = self.signed.admit_message(message, topic, payload, retained, self.now)
        if isinstance(verdict, Ignored):
            return False
        if isinstance(verdict, Refused):
            assert isinstance(message, SIGNED_KINDS)  # nothing else is ever refused
            node = message.node
            self.refused += 1
            self._refused_at[node] = self.now
            # Once per episode: a forger keeps at it.
            _LOGGER.log(
                logging.WARNING if verdict.new else logging.DEBUG,
                "Refused a reading of node %s on %s (%s): tamper suspected",
                node,
                topic,
                verdict.detail,
            )
            return False
        return True

    def tick(self, now: float) -> list[Event]:
        """Mark meters silent for too long unavailable and let the balances close windows;
        `now` is the time the partition has reached (stream time, or the wall clock once
        caught up)."""
        events: list[Event] = []
        for slot, (heard, at) in list(self._heard.items()):
            if now - at < heard.delay:
                continue
            del self._heard[slot]
            for change in self.model.expire(heard):
                if isinstance(change, Changed) and isinstance(change.key, MeterKey):
                    for pair, role in self._by_meter.get(change.key.key, ()):
                        events += self._update(pair, role, now)
        for pair in self.pairs.values():
            events += self._outcomes(pair, pair.monitor.tick(now), now)
        if self.signed is not None:
            for node, at in list(self._refused_at.items()):
                if now - at >= TAMPER_HOLD:
                    del self._refused_at[node]
                    self.signed.release(node)
        return events

    def _announced(self, announce: p.Announce) -> None:
        for proposed in announced_pairs(announce):
            key = pair_key(proposed.node, proposed.label)
            existing = self.pairs.get(key)
            if existing is not None and (existing.line.meter, existing.house.meter) == (
                proposed.line,
                proposed.house,
            ):
                continue
            if existing is not None:
                _LOGGER.info("Pair %s has other meters now: its detection starts afresh", key)
                self._forget(existing)
            self._watch(proposed.node, proposed.label, proposed.name, proposed.line, proposed.house)

    def _watch(self, node: str, label: str, name: str, line: str, house: str) -> WatchedPair:
        key = pair_key(node, label)
        try:
            config = self.overrides.config(key)
        except (ValueError, KeyError, TypeError) as err:
            _LOGGER.warning("Overrides of pair %s unusable, defaults used: %s", key, err)
            config = Overrides().config(key)
        display = self.overrides.name(key, name)
        pair = WatchedPair(
            node,
            label,
            display,
            self.model.track_protocol_meter(node, line),
            self.model.track_protocol_meter(node, house),
            # Its log lines name the pair by key: names need not be unique in a fleet.
            PairMonitor(key, PairDetector(), TheftEngine(config), follows_balance=True),
        )
        self.pairs[key] = pair
        self._by_meter.setdefault(pair.line.key, []).append((pair, p.Role.LINE))
        self._by_meter.setdefault(pair.house.key, []).append((pair, p.Role.HOUSE))
        self._by_node.setdefault(node, []).append(pair)
        return pair

    def _forget(self, pair: WatchedPair) -> None:
        del self.pairs[pair.key]
        for meter in (pair.line, pair.house):
            self._by_meter[meter.key] = [e for e in self._by_meter[meter.key] if e[0] is not pair]
        self._by_node[pair.node].remove(pair)

    def _update(self, pair: WatchedPair, role: p.Role, now: float) -> list[Event]:
        meter = pair.line if role is p.Role.LINE else pair.house
        live = self.model.available(meter, Quantity.POWER)
        self.evaluated += 1
        return self._outcomes(pair, pair.monitor.update(role, meter, live, now), now)

    def _outcomes(self, pair: WatchedPair, changes: list[TheftChange], now: float) -> list[Event]:
        total = pair.monitor.evaluation.unaccounted_wh
        if total > pair.counted_wh:
            day = utc_day(now)
            pair.days[day] = pair.days.get(day, 0.0) + total - pair.counted_wh
            if len(pair.days) > DAYS_KEPT:
                del pair.days[min(pair.days)]
        pair.counted_wh = total
        events: list[Event] = []
        for change in changes:
            if change.event is TheftEvent.DETECTED:
                pair.alarms += 1
                pair.since = now
                kind = "theft"
            else:
                kind = "clear"
            events.append(
                Event(
                    id=f"{pair.key}/{kind}/{pair.alarms}",
                    pair=pair.key,
                    name=pair.name,
                    event="detected" if change.event is TheftEvent.DETECTED else "cleared",
                    status=change.status,
                    at=now,
                    since=pair.since,
                    mismatch_pct=change.mismatch,
                    line_power_w=change.line_power,
                    house_power_w=change.house_power,
                    unaccounted_wh=total,
                )
            )
            if change.event is TheftEvent.CLEARED:
                pair.since = None
        return events

    # --- checkpoint ---------------------------------------------------------------------------

    def as_dict(self) -> dict[str, Any]:
        """Everything a replacement continues from, with the stream position it is valid at."""
        return {
            "version": CHECKPOINT_VERSION,
            "partition": self.partition,
            "prefix": self.prefix,
            "seq": self.seq,
            "now": self.now,
            "readings": self.readings,
            "evaluated": self.evaluated,
            "energy": self.model.energy_counters(),
            "announces": self._announces,
            "pairs": {key: pair.as_dict() for key, pair in self.pairs.items()},
        }

    def checkpoint(self) -> bytes:
        """The stored form: compressed JSON."""
        return zlib.compress(json.dumps(self.as_dict(), separators=(",", ":")).encode(), 1)

    @classmethod
    def restore(
        cls, data: bytes, partition: int, prefix: str, overrides: Overrides | None = None
    ) -> PartitionState:
        """Continue from a checkpoint; a foreign or corrupt one raises ValueError."""
        try:
            stored = json.loads(zlib.decompress(data))
        except (zlib.error, ValueError) as err:
            raise ValueError(f"checkpoint of partition {partition} unreadable: {err}") from err
        if not isinstance(stored, dict) or stored.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"checkpoint of partition {partition}: not version 1")
        if stored.get("partition") != partition or stored.get("prefix") != prefix:
            raise ValueError(f"checkpoint of partition {partition} is of another layout")
        state = cls(partition, prefix, overrides)
        state.model = MeterModel(prefix, stored["energy"])
        state.seq = int(stored["seq"])
        state.now = float(stored["now"])
        state.readings = int(stored["readings"])
        state.evaluated = int(stored["evaluated"])
        for node, announce in stored["announces"].items():
            state._announces[node] = announce
            state.model.apply(p.announce_topic(prefix, node), announce.encode(), True, state.now)
        pairs: Mapping[str, Mapping[str, Any]] = stored["pairs"]
        for key, data_ in pairs.items():
            node, label = data_["node"], data_["label"]
            # An override's name wins; else the name the pair had (the report reads
            # checkpoints without the overrides file).
            name = state.overrides.name(
                key, data_.get("name") or state._announced_name(node, label)
            )
            pair = state._watch(node, label, name, data_["line"], data_["house"])
            pair.monitor.restore(data_["monitor"], state.now)
            pair.alarms = int(data_["alarms"])
            pair.since = data_["since"]
            pair.days = {str(day): float(wh) for day, wh in data_["days"].items()}
            pair.counted_wh = float(data_["counted_wh"])
        return state

    def _announced_name(self, node: str, label: str) -> str:
        state = self.model.nodes.get(node)
        if state is None or state.announce is None:
            return label
        return state.announce.pair_names.get(label, label)
