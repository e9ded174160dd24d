"""The meter model of one entry inside Home Assistant: transport in, timers and listeners out.

The pure `semcore.meters.MeterModel` decides what each message means; this adapter gives it
the arrival time, the signed-reading admission and its stale timers, resolves relay commands
waiting for a confirmation, stores energy totals, and tells listeners: per typed key
(`async_subscribe`) on the hot path, and through dispatcher signals for what the entry as a
whole handles (announces, removals, foreign protocols).

A meter's stale timer is not moved with every reading: when it fires after a newer reading, it
waits for the rest of the delay.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_send_internal
from homeassistant.helpers.event import async_call_later
from homeassistant.util.signal_type import SignalType

from .const import DOMAIN
from .semcore.meters import (
    VALUE_TOPIC_QUANTITIES,
    Announced,
    Change,
    Changed,
    ChangeKey,
    EnergyCounted,
    ForeignProtocol,
    Heard,
    MeterKey,
    MeterModel,
    NodeKey,
    NodeRemoved,
    NodeState,
    ProtocolMeter,
    Quantity,
    RelayKey,
    ResetReplied,
    TrackedRelay,
    TrackedVerdict,
    ValueTopicsMeter,
    VerdictHeard,
    foreign_protocol,
    protocol_meter_key,
    value_topics_meter_key,
)
from .semcore.protocol import Announce, Message, RelayState, ResetResult
from .signed import SignedReadings
from .state_store import Counters, StateStore

__all__ = [
    "VALUE_TOPIC_QUANTITIES",
    "Fleet",
    "MeterKey",
    "NodeKey",
    "NodeState",
    "ProtocolMeter",
    "Quantity",
    "Relay",
    "RelayKey",
    "ValueTopicsMeter",
    "foreign_protocol",
    "protocol_meter_key",
    "signal_announce",
    "signal_foreign_protocol",
    "signal_node_removed",
    "signal_service_verdict",
    "value_topics_meter_key",
]


def signal_announce(entry_id: str) -> SignalType[Announce]:
    """A node of the entry announced itself."""
    return SignalType(f"{DOMAIN}_{entry_id}_announce")


def signal_node_removed(entry_id: str) -> SignalType[str]:
    """A node of the entry published the empty announce (its id)."""
    return SignalType(f"{DOMAIN}_{entry_id}_node_removed")


def signal_foreign_protocol(entry_id: str) -> SignalType[str, str]:
    """A node of the entry speaks another major protocol version (its id and version)."""
    return SignalType(f"{DOMAIN}_{entry_id}_foreign_protocol")


def signal_service_verdict(entry_id: str) -> SignalType[TrackedVerdict]:
    """The fleet service's verdict on a pair of the entry changed (protocol 1.2)."""
    return SignalType(f"{DOMAIN}_{entry_id}_service_verdict")


@dataclass(slots=True)
class Relay:
    """A relay's confirmed state and the commands waiting for a confirmation."""

    tracked: TrackedRelay
    waiters: list[tuple[RelayState, asyncio.Future[None]]] = field(default_factory=list)

    @property
    def node(self) -> str:
        """The relay's node."""
        return self.tracked.node

    @property
    def relay(self) -> str:
        """The relay's id on its node."""
        return self.tracked.relay

    @property
    def state(self) -> RelayState | None:
        """The confirmed state, None before the node told it."""
        return self.tracked.state

    @property
    def key(self) -> RelayKey:
        """What its listeners subscribe to."""
        return self.tracked.change_key


@dataclass(slots=True)
class _Expiry:
    """When a meter (or one value topic) goes stale if nothing more arrives."""

    heard: Heard
    due: float  # loop time the timer fires at
    last: float  # loop time of the latest reading
    last_at: float  # time.time() of the latest reading
    cancel: CALLBACK_TYPE


class Fleet:
    """The entry's meter model, with Home Assistant's timers and listeners."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        prefix: str,
        connected: Callable[[], bool],
        store: StateStore | None = None,
    ) -> None:
        self._hass = hass
        self._entry_id = entry_id
        self._connected = connected
        self._store = store
        self.model = MeterModel(prefix, store.saved_meters if store else None)
        # Wall-clock time of arrival: node clocks and energy counters are judged against it.
        self.clock: Callable[[], float] = time.time
        self.relays: dict[tuple[str, str], Relay] = {}
        self._listeners: dict[ChangeKey, list[Callable[[], None]]] = {}
        self._expiry: dict[tuple[str, Quantity | None], _Expiry] = {}
        # Verifies the nodes that have a signing key; None when no node has one.
        self.signed: SignedReadings | None = None
        # Energy resets waiting for their node's reply, by (node, meter).
        self._reset_waiters: dict[tuple[str, str], list[asyncio.Future[ResetResult]]] = {}

    # --- the model's state ------------------------------------------------------------------

    @property
    def nodes(self) -> dict[str, NodeState]:
        """Every node heard of, by id."""
        return self.model.nodes

    @property
    def meters(self) -> dict[str, ProtocolMeter | ValueTopicsMeter]:
        """Every tracked meter, by key."""
        return self.model.meters

    @property
    def value_topics(self) -> list[str]:
        """Exact topics of the tracked value-topics meters."""
        return self.model.value_topics

    def track_protocol_meter(self, node: str, meter: str) -> ProtocolMeter:
        """Start keeping the readings of a protocol meter."""
        return self.model.track_protocol_meter(node, meter)

    def track_value_topics_meter(self, base: str, interval: float) -> ValueTopicsMeter:
        """Start keeping the readings of a value-topics meter."""
        return self.model.track_value_topics_meter(base, interval)

    def track_verdict(self, node: str, pair: str) -> TrackedVerdict:
        """Start keeping the service's verdict on `<node>/<pair label>`."""
        return self.model.track_verdict(node, pair)

    def track_relay(self, node: str, relay: str) -> Relay:
        """Start keeping a relay's confirmed state."""
        existing = self.relays.get((node, relay))
        if existing is None:
            existing = self.relays[(node, relay)] = Relay(self.model.track_relay(node, relay))
        return existing

    def energy_counters(self) -> Counters:
        """Every tracked meter's energy total, as stored between runs."""
        return self.model.energy_counters()

    def available(self, meter: ProtocolMeter | ValueTopicsMeter, quantity: Quantity) -> bool:
        """True when the quantity has a current value: never a stale or made-up one."""
        return self._connected() and self.model.available(meter, quantity)

    def node_reachable(self, node: str) -> bool:
        """True when a command could reach the node."""
        return self._connected() and self.model.node_online(node)

    def replies_to_reset(self, node: str) -> bool:
        """True when the node answers `reset_energy` (protocol 1.2 or later)."""
        return self.model.replies_to_reset(node)

    def signature_refused(self, node: str) -> bool:
        """True while readings of a node with a key are being refused (tamper suspected)."""
        return self.signed is not None and self.signed.suspected(node)

    # --- listening ---------------------------------------------------------------------------

    @callback
    def async_subscribe(self, key: ChangeKey, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` when the node, meter or relay behind `key` changes."""
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

    def reset_waiter(self, node: str, meter: str) -> asyncio.Future[ResetResult]:
        """A future resolved with the node's next reply to a reset of `meter`."""
        future: asyncio.Future[ResetResult] = self._hass.loop.create_future()
        self._reset_waiters.setdefault((node, meter), []).append(future)
        return future

    def drop_reset_waiter(self, node: str, meter: str, future: asyncio.Future[ResetResult]) -> None:
        """Forget a reset waiter (answered or given up)."""
        waiters = self._reset_waiters.get((node, meter), [])
        if future in waiters:
            waiters.remove(future)
        if not waiters:
            self._reset_waiters.pop((node, meter), None)

    @callback
    def use_keys(self, keys: Mapping[str, bytes]) -> None:
        """Believe the readings of these nodes only when signed with their key."""
        self.signed = SignedReadings(
            self._hass, self._entry_id, keys, lambda node: self._notify(NodeKey(node))
        )

    @callback
    def async_connection_changed(self, connected: bool) -> None:
        """The broker connection came up or went down."""
        if not connected:
            self.model.connection_lost()

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
        for waiters in self._reset_waiters.values():
            for waiter in waiters:
                waiter.cancel()
        self._reset_waiters.clear()

    # --- messages ---------------------------------------------------------------------------

    @callback
    def async_handle_message(self, topic: str, payload: bytes, retained: bool) -> None:
        """Apply one MQTT message to the model and tell whom it concerns."""
        admit = self._admit if self.signed is not None else None
        changes = self.model.apply(topic, payload, retained, self.clock(), admit)
        if changes:
            self._apply(changes)

    def _admit(self, message: Message, topic: str, payload: bytes, retained: bool) -> bool:
        if self.signed is None:
            return True
        return self.signed.admit(message, topic, payload, retained)

    def _apply(self, changes: list[Change]) -> None:
        for change in changes:
            # The two of every reading first: this runs for every message.
            if isinstance(change, Changed):
                key = change.key
                if isinstance(key, RelayKey):
                    self._confirm(key)
                self._notify(key)
            elif isinstance(change, Heard):
                self._touch(change)
            else:
                self._apply_other(change)

    def _apply_other(self, change: Change) -> None:
        match change:
            case EnergyCounted():
                if self._store is not None:
                    self._store.async_schedule()
            case Announced(announce=announce):
                async_dispatcher_send_internal(
                    self._hass, signal_announce(self._entry_id), announce
                )
            case NodeRemoved(node=node):
                async_dispatcher_send_internal(
                    self._hass, signal_node_removed(self._entry_id), node
                )
            case ResetReplied(result=result):
                for waiter in self._reset_waiters.get((result.node, result.meter), []):
                    if not waiter.done():
                        waiter.set_result(result)
            case VerdictHeard(tracked=tracked):
                async_dispatcher_send_internal(
                    self._hass, signal_service_verdict(self._entry_id), tracked
                )
            case ForeignProtocol(node=node, proto=proto):
                async_dispatcher_send_internal(
                    self._hass, signal_foreign_protocol(self._entry_id), node, proto
                )

    def _confirm(self, key: RelayKey) -> None:
        relay = self.relays.get((key.node, key.relay))
        if relay is None:
            return
        for wanted, future in list(relay.waiters):
            if wanted is relay.state and not future.done():
                future.set_result(None)

    def _touch(self, heard: Heard) -> None:
        now = self._hass.loop.time()
        slot = heard.slot
        expiry = self._expiry.get(slot)
        if expiry is not None and now + heard.delay >= expiry.due:
            # The timer fires before this reading's delay is over and looks again then.
            expiry.heard, expiry.last, expiry.last_at = heard, now, time.time()
            return
        if expiry is not None:
            expiry.cancel()  # a shorter interval was announced
        self._expiry[slot] = _Expiry(
            heard, now + heard.delay, now, time.time(), self._arm(slot, heard.delay)
        )

    def _arm(self, slot: tuple[str, Quantity | None], delay: float) -> CALLBACK_TYPE:
        return async_call_later(self._hass, delay, partial(self._expire, slot))

    @callback
    def _expire(self, slot: tuple[str, Quantity | None], now: datetime) -> None:
        expiry = self._expiry.get(slot)
        if expiry is None:
            return
        delay = expiry.heard.delay
        left = expiry.last + delay - self._hass.loop.time()
        # Still fresh only when both clocks say a reading came within the delay: the loop's
        # (monotonic) and the wall clock the timer is called with (which tests move forward).
        if left > 0 and now.timestamp() - expiry.last_at < delay:
            expiry.due = expiry.last + delay
            expiry.cancel = self._arm(slot, left)
            return
        del self._expiry[slot]
        self._apply(self.model.expire(expiry.heard))

    def _notify(self, key: ChangeKey) -> None:
        for listener in list(self._listeners.get(key, ())):
            listener()
