"""What the entry knows about the nodes, meters and relays on its broker prefix.

Every MQTT message goes through the pure codec first; only decoded messages change state here.
A snapshot's timestamp is judged by its node's clock (`semcore.clock`) against when it arrived,
and its energy register by the meter's counter (`semcore.counter`): what either refuses changes
nothing.
Meters go stale (unavailable) when no reading arrived within 3x their interval; that is kept
with timers, so availability changes even when nothing is received. A meter's timer is not moved
with every reading: when it fires after a newer reading, it waits for the rest of the delay.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import partial

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .const import FALLBACK_INTERVAL, STALE_INTERVALS
from .energy_store import Counters, EnergyStore
from .semcore.clock import NodeClock, Refused
from .semcore.counter import EnergyCounter, Verdict
from .semcore.protocol import (
    MAX_PAYLOAD_BYTES,
    PAPER_TOPICS,
    PROTOCOL_MAJOR,
    Announce,
    NodeGone,
    NodeStatus,
    PaperValue,
    Rejected,
    RelayState,
    RelayStateMessage,
    SensorError,
    Snapshot,
    StatusMessage,
    decode,
    decode_paper_value,
    paper_topic,
    valid_id,
)
from .signed import SIGNED_KINDS, SignedReadings

_LOGGER = logging.getLogger(__name__)


# Messages a node publishes itself (commands come from Home Assistant).
_FROM_NODE = (Snapshot, SensorError, StatusMessage, Announce, RelayStateMessage)
# Seconds between two warnings about one node's timestamps (each refusal is counted).
CLOCK_WARNING_INTERVAL = 3600.0


class Quantity(StrEnum):
    """A reading a meter provides."""

    VOLTAGE = "voltage"
    CURRENT = "current"
    POWER = "power"
    ENERGY = "energy"
    FREQUENCY = "frequency"
    POWER_FACTOR = "power_factor"


PAPER_QUANTITIES: dict[str, Quantity] = {
    "vac": Quantity.VOLTAGE,
    "iac": Quantity.CURRENT,
    "pac": Quantity.POWER,
    "energy": Quantity.ENERGY,
    "pf": Quantity.POWER_FACTOR,
}


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


def protocol_meter_key(node: str, meter: str) -> str:
    """Key of a protocol v1 meter."""
    return f"{node}/{meter}"


def paper_meter_key(base: str) -> str:
    """Key of a meter that publishes only the paper's per-value topics."""
    return f"paper:{base}"


@dataclass(slots=True)
class NodeState:
    """One node: its announce and its status."""

    node: str
    announce: Announce | None = None
    status: NodeStatus | None = None
    gone: bool = False
    # time.time() of the node's last live (not retained) message; the broker's last will and
    # retained replays do not count.
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
    energy_refusing: bool = False  # the counter refuses readings: warned once until it stops
    silent: bool = False  # went unavailable for lack of readings: logged once until heard


@dataclass(slots=True)
class ProtocolMeter(Meter):
    """A protocol v1 meter: JSON snapshots on `<prefix>/<node>/<meter>/state`."""

    node: str = ""
    meter: str = ""
    snapshot: Snapshot | None = None
    error: str | None = None
    fresh: bool = False

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
class PaperMeter(Meter):
    """A device that publishes only `<base>/vac`, `iac`, `pac`, `energy`, `pf`."""

    base: str = ""
    interval: float = FALLBACK_INTERVAL
    values: dict[Quantity, float] = field(default_factory=dict)
    fresh: set[Quantity] = field(default_factory=set)

    def value(self, quantity: Quantity) -> float | None:
        """The latest value of a quantity, None before it first arrived."""
        if quantity is Quantity.ENERGY:
            return self.energy.value
        return self.values.get(quantity)


@dataclass(slots=True)
class _Expiry:
    """When a meter (or a paper value) goes stale if nothing more arrives."""

    meter: ProtocolMeter | PaperMeter
    quantity: Quantity | None
    delay: float
    due: float  # loop time the timer fires at
    heard: float  # loop time of the latest reading
    heard_at: float  # time.time() of the latest reading
    cancel: CALLBACK_TYPE


@dataclass(slots=True)
class Relay:
    """A relay's confirmed state and the commands waiting for a confirmation."""

    node: str
    relay: str
    state: RelayState | None = None
    waiters: list[tuple[RelayState, asyncio.Future[None]]] = field(default_factory=list)


class Fleet:
    """Nodes, the meters and relays that pairs use, and change listeners."""

    def __init__(
        self,
        hass: HomeAssistant,
        prefix: str,
        connected: Callable[[], bool],
        energy_store: EnergyStore | None = None,
    ) -> None:
        self._hass = hass
        self._prefix = prefix
        self._connected = connected
        self._energy_store = energy_store
        # Wall-clock time of arrival: node clocks and energy counters are judged against it.
        self.clock: Callable[[], float] = time.time
        self.nodes: dict[str, NodeState] = {}
        self.meters: dict[str, ProtocolMeter | PaperMeter] = {}
        self.relays: dict[tuple[str, str], Relay] = {}
        self._paper_topics: dict[str, tuple[PaperMeter, str]] = {}
        self._listeners: dict[str, list[Callable[[], None]]] = {}
        self._expiry: dict[str, _Expiry] = {}
        self.on_announce: Callable[[Announce], None] = lambda announce: None
        self.on_node_gone: Callable[[str], None] = lambda node: None
        self.on_foreign_protocol: Callable[[str, str], None] = lambda node, proto: None
        self._foreign: set[str] = set()
        # Verifies the nodes that have a signing key; None when no node has one.
        self.signed: SignedReadings | None = None

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

    def track_paper_meter(self, base: str, interval: float) -> PaperMeter:
        """Start keeping the readings of a paper-topics meter."""
        key = paper_meter_key(base)
        existing = self.meters.get(key)
        if isinstance(existing, PaperMeter):
            return existing
        tracked = PaperMeter(key, self._restored_energy(key), base=base, interval=interval)
        self.meters[key] = tracked
        for topic in PAPER_TOPICS:
            self._paper_topics[paper_topic(base, topic)] = (tracked, topic)
        return tracked

    def _restored_energy(self, key: str) -> EnergyCounter:
        saved = self._energy_store.saved if self._energy_store is not None else {}
        return EnergyCounter.from_dict(saved.get(key))

    def energy_counters(self) -> Counters:
        """Every tracked meter's energy total, as stored between runs."""
        return {
            key: meter.energy.as_dict()
            for key, meter in self.meters.items()
            if meter.energy.value is not None
        }

    def track_relay(self, node: str, relay: str) -> Relay:
        """Start keeping a relay's confirmed state."""
        return self.relays.setdefault((node, relay), Relay(node, relay))

    @property
    def paper_topics(self) -> list[str]:
        """Exact topics of the tracked paper-topics meters."""
        return list(self._paper_topics)

    def node(self, node: str) -> NodeState:
        """The state of a node (created on first use)."""
        state = self.nodes.get(node)
        if state is None:
            # Not setdefault: that would build a NodeState for every message.
            state = self.nodes[node] = NodeState(node)
        return state

    def available(self, meter: ProtocolMeter | PaperMeter, quantity: Quantity) -> bool:
        """True when the quantity has a current value: never a stale or made-up one."""
        if not self._connected():
            return False
        if isinstance(meter, PaperMeter):
            return quantity in meter.fresh and meter.value(quantity) is not None
        state = self.nodes.get(meter.node)
        if state is not None and not state.online:
            return False
        return meter.fresh and meter.error is None and meter.value(quantity) is not None

    def node_reachable(self, node: str) -> bool:
        """True when a command could reach the node."""
        state = self.nodes.get(node)
        return self._connected() and (state is None or state.online)

    @callback
    def async_listen(self, key: str, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` when the meter, node (`node:<id>`) or relay with `key` changes."""
        self._listeners.setdefault(key, []).append(listener)
        return lambda: self._listeners[key].remove(listener)

    def relay_waiter(self, relay: Relay, state: RelayState) -> asyncio.Future[None]:
        """A future resolved when the relay confirms `state`."""
        future: asyncio.Future[None] = self._hass.loop.create_future()
        relay.waiters.append((state, future))
        return future

    def drop_waiter(self, relay: Relay, future: asyncio.Future[None]) -> None:
        """Forget a waiter (done or given up)."""
        relay.waiters[:] = [(s, f) for s, f in relay.waiters if f is not future]

    @callback
    def use_keys(self, entry_id: str, keys: Mapping[str, bytes]) -> None:
        """Believe the readings of these nodes only when signed with their key."""
        self.signed = SignedReadings(
            self._hass, entry_id, keys, lambda node: self._notify(f"node:{node}")
        )

    def signature_refused(self, node: str) -> bool:
        """True while readings of a node with a key are being refused (tamper suspected)."""
        return self.signed is not None and self.signed.suspected(node)

    @callback
    def async_shutdown(self) -> None:
        """Cancel timers and pending waiters."""
        if self.signed is not None:
            self.signed.async_stop()
        for expiry in self._expiry.values():
            expiry.cancel()
        self._expiry.clear()
        for relay in self.relays.values():
            for _, future in relay.waiters:
                future.cancel()
            relay.waiters.clear()

    # --- messages ---------------------------------------------------------------------------

    @callback
    def async_handle_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """Decode one MQTT message and apply it; junk is logged at debug and changes nothing."""
        if len(payload) > MAX_PAYLOAD_BYTES:
            # Before anything parses it: the paper values, the codec, the foreign-version check.
            _LOGGER.debug(
                "Ignoring %s: payload of %d bytes exceeds %d",
                topic,
                len(payload),
                MAX_PAYLOAD_BYTES,
            )
            return
        if (paper := self._paper_topics.get(topic)) is not None:
            meter, quantity = paper
            value = decode_paper_value(meter.base, quantity, payload)
            if isinstance(value, Rejected):
                _LOGGER.debug("Ignoring %s: %s", topic, value.reason)
                return
            self._paper_value(meter, value)
            return
        message = decode(self._prefix, topic, payload, retained=retained)
        if (
            self.signed is not None
            and isinstance(message, SIGNED_KINDS)
            and not self.signed.admit(message, topic, payload, retained)
        ):
            return
        if (
            not retained
            and isinstance(message, _FROM_NODE)
            and (not isinstance(message, StatusMessage) or message.status is NodeStatus.ONLINE)
        ):
            self.node(message.node).heard = time.time()
        match message:
            case Rejected(reason=reason):
                _LOGGER.debug("Ignoring %s: %s", topic, reason)
                self._check_foreign(topic, payload)
            case Snapshot() | SensorError():
                self._state(message, retained)
            case StatusMessage(node=node, status=status):
                self.node(node).status = status
                self._notify(f"node:{node}")
            case Announce():
                self._foreign.discard(message.node)
                state = self.node(message.node)
                state.announce = message
                state.gone = False
                self.on_announce(message)
                self._notify(f"node:{message.node}")
            case NodeGone(node=node):
                self.node(node).gone = True
                self.on_node_gone(node)
                self._notify(f"node:{node}")
            case RelayStateMessage():
                self._relay_state(message)
            case _:
                # Commands (set, reset_energy) are for nodes; the integration never obeys them.
                _LOGGER.debug("Ignoring command on %s", topic)

    def _check_foreign(self, topic: str, payload: bytes) -> None:
        # A node on another major version: one clear line per node, not a debug line each time.
        node, _, kind = topic.removeprefix(self._prefix + "/").partition("/")
        if kind != "announce" or not valid_id(node) or node in self._foreign:
            return
        if (proto := foreign_protocol(payload)) is None:
            return
        self._foreign.add(node)
        _LOGGER.warning(
            "Node %s speaks protocol %s; this integration speaks %s.x",
            node,
            proto,
            PROTOCOL_MAJOR,
        )
        self.on_foreign_protocol(node, proto)

    def _state(self, message: Snapshot | SensorError, retained: bool) -> None:
        key = protocol_meter_key(message.node, message.meter)
        meter = self.meters.get(key)
        if not isinstance(meter, ProtocolMeter):
            return  # a meter no pair uses
        ts = message.ts
        if isinstance(message, Snapshot):
            placed = self._place(message, retained)
            if placed is None:
                return
            ts = placed
        if isinstance(message, SensorError):
            # The PZEM did not answer: unavailable, never zeros. The node itself is alive.
            if meter.error != message.error:
                _LOGGER.info("Meter %s is unavailable: the node reports %s", key, message.error)
            meter.error = message.error
        else:
            if meter.error is not None:
                _LOGGER.info("Meter %s answers again", key)
            self._energy(meter, message.energy)
            meter.snapshot = message
            meter.error = None
            meter.samples += 1
            meter.power_ts = ts
        self._heard(meter)
        meter.fresh = True
        self._touch(key, STALE_INTERVALS * self.node(message.node).interval, meter)
        self._notify(key)

    def _place(self, message: Snapshot, retained: bool) -> float | None:
        """The snapshot's time on its node's consistent time base, None when refused."""
        state = self.node(message.node)
        now = self.clock()
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

    def _paper_value(self, meter: PaperMeter, value: PaperValue) -> None:
        quantity = PAPER_QUANTITIES[value.quantity]
        if quantity is Quantity.ENERGY:
            self._energy(meter, value.value)
        meter.values[quantity] = value.value
        if quantity is Quantity.POWER:
            meter.samples += 1
            meter.power_ts = self.clock()  # no timestamp on the wire: the receive time
        self._heard(meter)
        meter.fresh.add(quantity)
        self._touch(f"{meter.key}#{quantity}", STALE_INTERVALS * meter.interval, meter, quantity)
        self._notify(meter.key)

    def _energy(self, meter: Meter, raw: float) -> None:
        counter = meter.energy
        previous = counter.raw
        verdict = counter.update(raw, self.clock())
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
            return
        meter.energy_refusing = False
        if verdict is Verdict.UNCHANGED:
            return
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
        if self._energy_store is not None:
            self._energy_store.async_schedule(self.energy_counters)

    def _relay_state(self, message: RelayStateMessage) -> None:
        relay = self.relays.get((message.node, message.relay))
        if relay is None:
            return
        relay.state = message.state
        for wanted, future in list(relay.waiters):
            if wanted is message.state and not future.done():
                future.set_result(None)
        self._notify(f"relay:{message.node}/{message.relay}")

    def _touch(
        self,
        key: str,
        delay: float,
        meter: ProtocolMeter | PaperMeter,
        quantity: Quantity | None = None,
    ) -> None:
        now = self._hass.loop.time()
        expiry = self._expiry.get(key)
        if expiry is not None and now + delay >= expiry.due:
            # The timer fires before this reading's delay is over and looks again then.
            expiry.delay, expiry.heard, expiry.heard_at = delay, now, time.time()
            return
        if expiry is not None:
            expiry.cancel()  # a shorter interval was announced
        self._expiry[key] = _Expiry(
            meter, quantity, delay, now + delay, now, time.time(), self._arm(key, delay)
        )

    def _arm(self, key: str, delay: float) -> CALLBACK_TYPE:
        return async_call_later(self._hass, delay, partial(self._expire, key))

    @callback
    def _expire(self, key: str, now: datetime) -> None:
        expiry = self._expiry.get(key)
        if expiry is None:
            return
        left = expiry.heard + expiry.delay - self._hass.loop.time()
        # Still fresh only when both clocks say a reading came within the delay: the loop's
        # (monotonic) and the wall clock the timer is called with (which tests move forward).
        if left > 0 and now.timestamp() - expiry.heard_at < expiry.delay:
            expiry.due = expiry.heard + expiry.delay
            expiry.cancel = self._arm(key, left)
            return
        del self._expiry[key]
        meter, quantity = expiry.meter, expiry.quantity
        if isinstance(meter, PaperMeter):
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
                "Meter %s is unavailable: nothing heard for %.0f s", meter.key, expiry.delay
            )
        self._notify(meter.key)

    @staticmethod
    def _heard(meter: Meter) -> None:
        if meter.silent:
            meter.silent = False
            _LOGGER.info("Meter %s is heard again", meter.key)

    def _notify(self, key: str) -> None:
        for listener in list(self._listeners.get(key, ())):
            listener()
