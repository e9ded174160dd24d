"""The meter model: what the messages under one broker prefix mean for nodes, meters and relays.

`MeterModel.apply` takes one MQTT message and answers with what changed, as typed changes; the
caller owns the transport, the timers and whoever listens (Home Assistant's `fleet.py`, or any
service that runs the same model). Every message goes through the pure codec first; only decoded
messages change state. A snapshot's timestamp is judged by its node's clock (`clock.py`) against
when it arrived, and its energy register by the meter's counter (`counter.py`): what either
refuses changes nothing. A meter goes stale when the caller's timer for a `Heard` change runs
out: `expire` then marks it silent. The fleet service's verdict on a pair (protocol 1.2) is kept
for the pairs the caller tracks, and told as a `VerdictHeard`.

Pure Python: no Home Assistant import; every call carries its own time (wall-clock seconds).
"""

from __future__ import annotations

import json
import logging
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from .clock import NodeClock, Refused
from .counter import EnergyCounter, Verdict
from .protocol import (
    MAX_PAYLOAD_BYTES,
    PAPER_TOPICS,
    PROTOCOL_MAJOR,
    RECENT_READINGS,
    Announce,
    Message,
    NodeGone,
    NodeStatus,
    PaperValue,
    Rejected,
    RelayState,
    RelayStateMessage,
    ResetResult,
    Role,
    SensorError,
    ServiceVerdict,
    Snapshot,
    StatusMessage,
    VerdictWithdrawn,
    decode,
    decode_paper_value,
    paper_topic,
    valid_id,
)

_LOGGER = logging.getLogger(__name__)

# A meter with no reading for this many intervals is unavailable.
STALE_INTERVALS: Final = 3
# Interval assumed for a node that has not announced one.
FALLBACK_INTERVAL: Final = 10.0
# Seconds between two warnings about one node's timestamps (each refusal is counted).
CLOCK_WARNING_INTERVAL: Final = 3600.0

# Messages a node publishes itself (commands come from Home Assistant).
_FROM_NODE = (Snapshot, SensorError, StatusMessage, Announce, RelayStateMessage, ResetResult)


class Quantity(StrEnum):
    """A reading a meter provides."""

    VOLTAGE = "voltage"
    CURRENT = "current"
    POWER = "power"
    ENERGY = "energy"
    FREQUENCY = "frequency"
    POWER_FACTOR = "power_factor"


VALUE_TOPIC_QUANTITIES: Final[dict[str, Quantity]] = {
    "vac": Quantity.VOLTAGE,
    "iac": Quantity.CURRENT,
    "pac": Quantity.POWER,
    "energy": Quantity.ENERGY,
    "pf": Quantity.POWER_FACTOR,
}


def protocol_meter_key(node: str, meter: str) -> str:
    """Key of a protocol v1 meter (also its energy total's key in storage)."""
    return f"{node}/{meter}"


def value_topics_meter_key(base: str) -> str:
    """Key of a value-topics meter (one plain number per topic, as the paper's)."""
    return f"paper:{base}"


def foreign_protocol(payload: bytes) -> str | None:
    """The `proto` of an announce that speaks another major version, else None."""
    try:
        proto = json.loads(payload).get("proto")
    except ValueError, AttributeError:
        return None
    if not isinstance(proto, str) or len(proto) > 16:
        return None
    major = proto.partition(".")[0]
    return proto if major.isdigit() and int(major) != PROTOCOL_MAJOR else None


# --- what can be listened to ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class NodeKey:
    """A node's state (status, announce, removal, signature alarm)."""

    node: str


@dataclass(frozen=True, slots=True)
class MeterKey:
    """A meter's readings and availability."""

    key: str


@dataclass(frozen=True, slots=True)
class RelayKey:
    """A relay's confirmed state."""

    node: str
    relay: str


type ChangeKey = NodeKey | MeterKey | RelayKey


# --- state -----------------------------------------------------------------------------------


@dataclass(slots=True)
class NodeState:
    """One node: its announce and its status."""

    node: str
    announce: Announce | None = None
    status: NodeStatus | None = None
    gone: bool = False
    # Wall-clock time of the node's last live (not retained) message; the broker's last will
    # and retained replays do not count.
    heard: float | None = None
    clock: NodeClock = field(default_factory=NodeClock)
    clock_warned: float | None = None  # when its timestamps were last warned about

    @property
    def online(self) -> bool:
        """False when the node said offline (its last will) or was removed."""
        return not self.gone and self.status is not NodeStatus.OFFLINE

    @property
    def interval(self) -> float:
        """Seconds between snapshots, as announced."""
        return self.announce.interval if self.announce else FALLBACK_INTERVAL


@dataclass(slots=True)
class Meter:
    """Readings of one meter. `samples` counts power readings, for the detector."""

    key: str
    energy: EnergyCounter = field(default_factory=EnergyCounter)
    samples: int = 0
    power_ts: float | None = None  # on the node's consistent time base (see NodeClock)
    # Seconds between two polls of the meter: its node's announced interval, or the one
    # configured for value topics. The pair's theft percentage pairs reads within half of it.
    interval: float = FALLBACK_INTERVAL
    energy_refusing: bool = False  # the counter refuses readings: warned once until it stops
    silent: bool = False  # went unavailable for lack of readings: logged once until heard
    # What its listeners subscribe to, and the change every reading tells: built once, no
    # allocation per message.
    change_key: MeterKey = field(init=False)
    changed: Changed = field(init=False)

    def __post_init__(self) -> None:
        self.change_key = MeterKey(self.key)
        self.changed = Changed(self.change_key)


@dataclass(slots=True)
class ProtocolMeter(Meter):
    """A protocol v1 meter: JSON snapshots on `<prefix>/<node>/<meter>/state`."""

    node: str = ""
    meter: str = ""
    snapshot: Snapshot | None = None
    error: str | None = None
    error_detail: str | None = None  # the node's words for the error (protocol 1.2)
    dropped: int | None = None  # readings the node dropped since its boot, as it last said
    fresh: bool = False
    # (boot, seq, ts) of its latest readings: one seen again is a copy, not a new reading.
    recent: deque[tuple[int | None, int, float]] = field(
        default_factory=lambda: deque(maxlen=RECENT_READINGS)
    )

    def value(self, quantity: Quantity) -> float | None:
        """The latest value of a quantity, None before the first snapshot."""
        if self.snapshot is None:
            return None
        if quantity is Quantity.ENERGY:
            return self.energy.value
        # The quantity names the attribute (a StrEnum is a str, no `.value` lookup needed).
        value: float = getattr(self.snapshot, quantity)
        return value


@dataclass(slots=True)
class ValueTopicsMeter(Meter):
    """A device that publishes only `<base>/vac`, `iac`, `pac`, `energy`, `pf`."""

    base: str = ""
    values: dict[Quantity, float] = field(default_factory=dict)
    fresh: set[Quantity] = field(default_factory=set)

    def value(self, quantity: Quantity) -> float | None:
        """The latest value of a quantity, None before it first arrived."""
        if quantity is Quantity.ENERGY:
            return self.energy.value
        return self.values.get(quantity)


@dataclass(slots=True)
class TrackedRelay:
    """A relay's confirmed (read-back) state."""

    node: str
    relay: str
    state: RelayState | None = None

    @property
    def change_key(self) -> RelayKey:
        """What its listeners subscribe to."""
        return RelayKey(self.node, self.relay)


@dataclass(slots=True)
class TrackedVerdict:
    """The fleet service's verdict on one pair (protocol 1.2): its last message, retained."""

    node: str
    pair: str
    verdict: ServiceVerdict | None = None  # None: never heard, or withdrawn
    heard: bool = False  # a verdict arrived once: the pair has something to show
    # Heard on the broker connection as it is: a connection that was lost may have missed a
    # withdrawal (an empty retained message is not replayed), so the verdict is not shown as
    # current until the broker hands it again.
    current: bool = False


# --- what changed ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Changed:
    """The state behind a key changed: its listeners look again."""

    key: ChangeKey


@dataclass(frozen=True, slots=True)
class Heard:
    """A reading of a meter (or of one value topic) arrived: it goes stale after `delay` s
    without another, when the caller calls `expire`. `slot` names the timer."""

    meter: ProtocolMeter | ValueTopicsMeter
    quantity: Quantity | None
    delay: float
    slot: tuple[str, Quantity | None]


@dataclass(frozen=True, slots=True)
class Announced:
    """A node described itself (again)."""

    announce: Announce


@dataclass(frozen=True, slots=True)
class NodeRemoved:
    """A node published the empty announce: removed on purpose."""

    node: str


@dataclass(frozen=True, slots=True)
class ForeignProtocol:
    """A node speaks another major protocol version (told once per node)."""

    node: str
    proto: str


@dataclass(frozen=True, slots=True)
class EnergyCounted:
    """A meter's energy total moved: worth storing."""

    meter: ProtocolMeter | ValueTopicsMeter


@dataclass(frozen=True, slots=True)
class ResetReplied:
    """A node answered an energy reset (protocol 1.2)."""

    result: ResetResult


@dataclass(frozen=True, slots=True)
class VerdictHeard:
    """The service's verdict on a tracked pair changed, was withdrawn, or came again after the
    connection was lost."""

    tracked: TrackedVerdict


type Change = (
    Changed
    | Heard
    | Announced
    | NodeRemoved
    | ForeignProtocol
    | EnergyCounted
    | ResetReplied
    | VerdictHeard
)
# Whether a decoded `state` or `announce` may be used (signed readings); None: all may.
type Admission = Callable[[Message, str, bytes, bool], bool]


class MeterModel:
    """Nodes, the meters and relays that pairs use, under one topic prefix."""

    def __init__(self, prefix: str, energy: Mapping[str, Any] | None = None) -> None:
        self.prefix = prefix
        self.nodes: dict[str, NodeState] = {}
        self.meters: dict[str, ProtocolMeter | ValueTopicsMeter] = {}
        self.relays: dict[tuple[str, str], TrackedRelay] = {}
        self.verdicts: dict[tuple[str, str], TrackedVerdict] = {}
        # Verdicts on pairs nobody tracks yet, heard on this connection: a pair added later
        # shows its verdict at once (the broker hands retained messages only at subscription).
        self._unclaimed: dict[tuple[str, str], ServiceVerdict] = {}
        self._value_topics: dict[str, tuple[ValueTopicsMeter, str]] = {}
        self._energy = energy or {}  # totals stored by an earlier run, by meter key
        self._foreign: set[str] = set()
        # The same Heard for every reading of a meter while its delay stays the same.
        self._heard_changes: dict[tuple[str, Quantity | None], Heard] = {}

    # --- what pairs use --------------------------------------------------------------------

    def track_protocol_meter(self, node: str, meter: str) -> ProtocolMeter:
        """Start keeping the readings of a protocol meter."""
        key = protocol_meter_key(node, meter)
        existing = self.meters.get(key)
        if isinstance(existing, ProtocolMeter):
            return existing
        tracked = ProtocolMeter(key, self._restored_energy(key), node=node, meter=meter)
        self.meters[key] = tracked
        return tracked

    def track_value_topics_meter(self, base: str, interval: float) -> ValueTopicsMeter:
        """Start keeping the readings of a value-topics meter."""
        key = value_topics_meter_key(base)
        existing = self.meters.get(key)
        if isinstance(existing, ValueTopicsMeter):
            return existing
        tracked = ValueTopicsMeter(key, self._restored_energy(key), base=base, interval=interval)
        self.meters[key] = tracked
        for topic in PAPER_TOPICS:
            self._value_topics[paper_topic(base, topic)] = (tracked, topic)
        return tracked

    def track_relay(self, node: str, relay: str) -> TrackedRelay:
        """Start keeping a relay's confirmed state."""
        return self.relays.setdefault((node, relay), TrackedRelay(node, relay))

    def track_verdict(self, node: str, pair: str) -> TrackedVerdict:
        """Start keeping the service's verdict on the pair `<node>/<pair label>`, with the one
        heard before, if any."""
        tracked = self.verdicts.get((node, pair))
        if tracked is None:
            tracked = self.verdicts[(node, pair)] = TrackedVerdict(node, pair)
            if (verdict := self._unclaimed.pop((node, pair), None)) is not None:
                tracked.verdict, tracked.heard, tracked.current = verdict, True, True
        return tracked

    def connection_lost(self) -> None:
        """The broker connection went down: no verdict is current until it is heard again."""
        self._unclaimed.clear()
        for tracked in self.verdicts.values():
            tracked.current = False

    def _restored_energy(self, key: str) -> EnergyCounter:
        return EnergyCounter.from_dict(self._energy.get(key))

    def energy_counters(self) -> dict[str, dict[str, Any]]:
        """Every tracked meter's energy total, as stored between runs."""
        return {
            key: meter.energy.as_dict()
            for key, meter in self.meters.items()
            if meter.energy.value is not None
        }

    @property
    def value_topics(self) -> list[str]:
        """Exact topics of the tracked value-topics meters."""
        return list(self._value_topics)

    def node(self, node: str) -> NodeState:
        """The state of a node (created on first use)."""
        state = self.nodes.get(node)
        if state is None:
            # Not setdefault: that would build a NodeState for every message.
            state = self.nodes[node] = NodeState(node)
        return state

    def available(self, meter: ProtocolMeter | ValueTopicsMeter, quantity: Quantity) -> bool:
        """True when the quantity has a current value: never a stale or made-up one. (The
        broker connection is the caller's to add.)"""
        if isinstance(meter, ValueTopicsMeter):
            return quantity in meter.fresh and meter.value(quantity) is not None
        state = self.nodes.get(meter.node)
        if state is not None and not state.online:
            return False
        return meter.fresh and meter.error is None and meter.value(quantity) is not None

    def replies_to_reset(self, node: str) -> bool:
        """True when the node announced protocol 1.2 or later: it answers `reset_energy`."""
        state = self.nodes.get(node)
        if state is None or state.announce is None:
            return False
        major, _, minor = state.announce.version.partition(".")
        return major.isdigit() and minor.isdigit() and (int(major), int(minor)) >= (1, 2)

    def node_online(self, node: str) -> bool:
        """False once the node said offline or was removed; unknown nodes count as online."""
        state = self.nodes.get(node)
        return state is None or state.online

    # --- messages ---------------------------------------------------------------------------

    def apply(
        self,
        topic: str,
        payload: bytes,
        retained: bool,
        now: float,
        admit: Admission | None = None,
    ) -> list[Change]:
        """Decode one MQTT message that arrived at `now` and apply it; junk is logged at debug
        and changes nothing."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            # Before anything parses it: the value topics, the codec, the foreign-version check.
            _LOGGER.debug(
                "Ignoring %s: payload of %d bytes exceeds %d",
                topic,
                len(payload),
                MAX_PAYLOAD_BYTES,
            )
            return []
        if (value_topic := self._value_topics.get(topic)) is not None:
            meter, quantity = value_topic
            value = decode_paper_value(meter.base, quantity, payload)
            if isinstance(value, Rejected):
                _LOGGER.debug("Ignoring %s: %s", topic, value.reason)
                return []
            return self._topic_value(meter, value, now)
        message = decode(self.prefix, topic, payload, retained=retained)
        if (
            admit is not None
            and not isinstance(message, Rejected)
            and not admit(message, topic, payload, retained)
        ):
            return []
        if (
            not retained
            and isinstance(message, _FROM_NODE)
            and (not isinstance(message, StatusMessage) or message.status is NodeStatus.ONLINE)
        ):
            self.node(message.node).heard = now
        match message:
            case Rejected(reason=reason):
                _LOGGER.debug("Ignoring %s: %s", topic, reason)
                return self._check_foreign(topic, payload)
            case Snapshot() | SensorError():
                return self._state(message, retained, now)
            case StatusMessage(node=node, status=status):
                self.node(node).status = status
                if status is NodeStatus.OFFLINE:
                    self._forget_readings(node)
                return [Changed(NodeKey(node))]
            case Announce():
                self._foreign.discard(message.node)
                state = self.node(message.node)
                state.announce = message
                state.gone = False
                return [Announced(message), Changed(NodeKey(message.node))]
            case NodeGone(node=node):
                self.node(node).gone = True
                self._forget_readings(node)
                return [NodeRemoved(node), Changed(NodeKey(node))]
            case RelayStateMessage():
                return self._relay_state(message)
            case ResetResult():
                return [ResetReplied(message)]
            case ServiceVerdict() | VerdictWithdrawn():
                return self._verdict(message)
            case _:
                # Commands (set, reset_energy) are for nodes; the integration never obeys them.
                _LOGGER.debug("Ignoring command on %s", topic)
                return []

    def _forget_readings(self, node: str) -> None:
        """A node that went away comes back with new readings: its last ones are not current
        when it says online again."""
        for meter in self.meters.values():
            if isinstance(meter, ProtocolMeter) and meter.node == node:
                meter.fresh = False

    def expire(self, heard: Heard) -> list[Change]:
        """The caller's timer for `heard` ran out without a newer reading."""
        meter, quantity = heard.meter, heard.quantity
        if isinstance(meter, ValueTopicsMeter):
            assert quantity is not None
            meter.fresh.discard(quantity)
        else:
            meter.fresh = False
        if meter.fresh:
            _LOGGER.debug("Meter %s: %s is silent", meter.key, quantity)
        else:
            # Once when it goes, once when it is back (quality scale: log-when-unavailable).
            meter.silent = True
            _LOGGER.info(
                "Meter %s is unavailable: nothing heard for %.0f s", meter.key, heard.delay
            )
        return [meter.changed]

    def _check_foreign(self, topic: str, payload: bytes) -> list[Change]:
        # A node on another major version: one clear line per node, not a debug line each time.
        node, _, kind = topic.removeprefix(self.prefix + "/").partition("/")
        if kind != "announce" or not valid_id(node) or node in self._foreign:
            return []
        if (proto := foreign_protocol(payload)) is None:
            return []
        self._foreign.add(node)
        _LOGGER.warning(
            "Node %s speaks protocol %s; this integration speaks %s.x",
            node,
            proto,
            PROTOCOL_MAJOR,
        )
        return [ForeignProtocol(node, proto)]

    def _state(self, message: Snapshot | SensorError, retained: bool, now: float) -> list[Change]:
        key = protocol_meter_key(message.node, message.meter)
        meter = self.meters.get(key)
        if not isinstance(meter, ProtocolMeter):
            return []  # a meter no pair uses
        changes: list[Change] = []
        if isinstance(message, SensorError):
            # The PZEM did not answer: unavailable, never zeros. The node itself is alive.
            if meter.error != message.error:
                _LOGGER.info(
                    "Meter %s is unavailable: the node reports %s%s",
                    key,
                    message.error,
                    f" ({message.detail})" if message.detail else "",
                )
            meter.error = message.error
            meter.error_detail = message.detail
        else:
            identity = (message.boot, message.seq, message.ts)
            if identity in meter.recent:
                # QoS 1 delivers at least once: a node resends what the broker did not
                # acknowledge, so this is a copy (its time would look like a clock jump).
                _LOGGER.debug("Reading %s of meter %s again: a copy, ignored", message.seq, key)
                return []
            placed = self._place(message, retained, now)
            if placed is None:
                return []
            meter.recent.append(identity)
            if meter.error is not None:
                _LOGGER.info("Meter %s answers again", key)
            if self._energy_counted(meter, message.energy, now):
                changes.append(EnergyCounted(meter))
            meter.snapshot = message
            meter.error = meter.error_detail = None
            meter.samples += 1
            meter.power_ts = placed
        meter.dropped = message.dropped
        interval = self.node(message.node).interval
        meter.interval = interval
        self._heard(meter)
        meter.fresh = True
        changes.append(self._heard_change(meter, None, STALE_INTERVALS * interval))
        changes.append(meter.changed)
        return changes

    def _heard_change(
        self, meter: ProtocolMeter | ValueTopicsMeter, quantity: Quantity | None, delay: float
    ) -> Heard:
        slot = (meter.key, quantity)
        heard = self._heard_changes.get(slot)
        if heard is None or heard.delay != delay or heard.meter is not meter:
            heard = self._heard_changes[slot] = Heard(meter, quantity, delay, slot)
        return heard

    def _place(self, message: Snapshot, retained: bool, now: float) -> float | None:
        """The snapshot's time on its node's consistent time base, None when refused."""
        state = self.node(message.node)
        placed = state.clock.place(message.meter, message.ts, now, retained=retained)
        if isinstance(placed, Refused):
            warn = placed.counted and (
                state.clock_warned is None or now - state.clock_warned >= CLOCK_WARNING_INTERVAL
            )
            if warn:
                state.clock_warned = now
            _LOGGER.log(
                logging.WARNING if warn else logging.DEBUG,
                "Reading of meter %s/%s refused: %s (ts %s; %d refused so far)",
                message.node,
                message.meter,
                placed.reason,
                message.ts,
                state.clock.refused,
            )
            return None
        if placed.jump is not None:
            _LOGGER.warning(
                "The clock of node %s jumped by %+.0f s; its readings continue on the new time",
                message.node,
                -placed.jump,
            )
        return placed.ts

    def _topic_value(self, meter: ValueTopicsMeter, value: PaperValue, now: float) -> list[Change]:
        changes: list[Change] = []
        quantity = VALUE_TOPIC_QUANTITIES[value.quantity]
        if quantity is Quantity.ENERGY and self._energy_counted(meter, value.value, now):
            changes.append(EnergyCounted(meter))
        meter.values[quantity] = value.value
        if quantity is Quantity.POWER:
            meter.samples += 1
            meter.power_ts = now  # no timestamp on the wire: the arrival time
        self._heard(meter)
        meter.fresh.add(quantity)
        changes.append(self._heard_change(meter, quantity, STALE_INTERVALS * meter.interval))
        changes.append(meter.changed)
        return changes

    @staticmethod
    def _heard(meter: Meter) -> None:
        if meter.silent:
            meter.silent = False
            _LOGGER.info("Meter %s is heard again", meter.key)

    @staticmethod
    def _energy_counted(meter: Meter, raw: float, now: float) -> bool:
        """Offer a register reading to the meter's counter; True when the total moved."""
        counter = meter.energy
        previous = counter.raw
        verdict = counter.update(raw, now)
        if verdict is Verdict.REFUSED:
            if not meter.energy_refusing:
                meter.energy_refusing = True
                _LOGGER.warning(
                    "Energy register of meter %s went from %s Wh to %s Wh, more than the meter "
                    "can measure in the time between; keeping the total at %s Wh",
                    meter.key,
                    previous,
                    raw,
                    counter.value,
                )
            return False
        meter.energy_refusing = False
        if verdict is Verdict.UNCHANGED:
            return False
        if verdict is Verdict.RESET:
            _LOGGER.info("Energy counter of meter %s was reset (%s Wh)", meter.key, raw)
        elif verdict is Verdict.WRAPPED:
            _LOGGER.info("Energy register of meter %s wrapped around to %s Wh", meter.key, raw)
        elif verdict is Verdict.REBASED:
            _LOGGER.warning(
                "Energy register of meter %s goes on from %s Wh (was %s Wh): a replaced or "
                "reset meter; the total continues at %s Wh without the jump",
                meter.key,
                raw,
                previous,
                counter.value,
            )
        return True

    def _verdict(self, message: ServiceVerdict | VerdictWithdrawn) -> list[Change]:
        key = (message.node, message.pair)
        tracked = self.verdicts.get(key)
        if tracked is None:
            _LOGGER.debug("Verdict on %s/%s: no pair here (yet)", message.node, message.pair)
            if isinstance(message, ServiceVerdict):
                self._unclaimed[key] = message
            else:
                self._unclaimed.pop(key, None)
            return []
        verdict = message if isinstance(message, ServiceVerdict) else None
        if tracked.current and verdict == tracked.verdict:
            return []  # the same verdict again (a redelivery): nothing to write
        if verdict is None and not tracked.heard:
            return []  # withdrawn before it was ever shown: still nothing to show
        # Said once per change: the same verdict handed again after a reconnect is not news.
        level = logging.INFO if verdict != tracked.verdict else logging.DEBUG
        tracked.verdict, tracked.heard, tracked.current = verdict, True, True
        if verdict is None:
            _LOGGER.log(level, "The service no longer judges pair %s/%s", *key)
        else:
            _LOGGER.log(
                level,
                "Service verdict on pair %s/%s: %s (%s)",
                *key,
                verdict.event.value,
                verdict.status,
            )
        return [VerdictHeard(tracked)]

    def _relay_state(self, message: RelayStateMessage) -> list[Change]:
        relay = self.relays.get((message.node, message.relay))
        if relay is None:
            return []
        relay.state = message.state
        return [Changed(relay.change_key)]


# --- pairs a node proposes -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnnouncedPair:
    """One `pair` label of an announce with exactly one line and one house meter."""

    node: str
    label: str
    name: str
    line: str
    house: str
    relay: str | None


def announced_pairs(announce: Announce) -> list[AnnouncedPair]:
    """Every label with exactly one line and one house meter on the node, in announce order;
    its relay is the first one announced for the label."""
    pairs: list[AnnouncedPair] = []
    for label in dict.fromkeys(meter.pair for meter in announce.meters):
        roles = {meter.role: meter.id for meter in announce.meters if meter.pair == label}
        if Role.LINE not in roles or Role.HOUSE not in roles:
            continue
        relay = next((r.id for r in announce.relays if r.pair == label), None)
        name = announce.pair_names.get(label, label)
        pairs.append(
            AnnouncedPair(announce.node, label, name, roles[Role.LINE], roles[Role.HOUSE], relay)
        )
    return pairs
