"""Base entities: one device per pair (a house), one per node (the ESP32)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .fleet import NodeKey
from .pair import PairRuntime
from .recording import Measurement
from .runtime import SemRuntime, node_identifier, pair_identifier
from .semcore.protocol import Role
from .semcore.state_writes import Deadband

# What a pair entity showed before it was first added.
_NOTHING_SHOWN: Final = object()


def broker_connected(pair: PairRuntime) -> bool:
    """Known while the broker is connected: the balance's figures hold through a silent meter
    or an unplugged node (an alarm outlives them), not through a lost broker."""
    return pair.hub_connected


def balance_only(pair: PairRuntime) -> tuple[Role, ...]:
    """Moves with the balance, not with every reading."""
    return ()


@dataclass(frozen=True, kw_only=True)
class PairFigureDescription(EntityDescription):
    """What a pair's figure or verdict needs besides its value: when it is known, which
    meters' readings move it, and whether it is a measurement of every reading (its writes
    then share the change's context)."""

    available_fn: Callable[[PairRuntime], bool] = broker_connected
    readings_fn: Callable[[PairRuntime], tuple[Role, ...]] = balance_only
    measurement: bool = False


class PairEntity(Entity):
    """An entity of a pair's device, updated when the pair changes.

    A pair changes with every reading; an entity writes its state only when what it shows
    (availability and value) changed, as Home Assistant's MQTT entities do. `_reading_roles`
    are the meters whose readings it shows; availability changes reach every entity.
    """

    _attr_has_entity_name = True
    _attr_should_poll = False
    _reading_roles: tuple[Role, ...] = (Role.LINE, Role.HOUSE)
    # Measurements (which the logbook leaves out) write their states under one context per
    # change of the pair. Home Assistant links a context back to its first event; with a new
    # context per write, each write leaves a reference cycle that lives as long as the state,
    # so outlives the young collections and waits for a full one. Shared: one per change.
    _shares_change_context = False

    def __init__(
        self, runtime: SemRuntime, pair: PairRuntime, description: EntityDescription
    ) -> None:
        self.entity_description = description
        self._pair = pair
        entry_id = runtime.entry_id
        self._attr_unique_id = f"{entry_id}_{pair.subentry_id}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={pair_identifier(entry_id, pair.subentry_id)}
        )
        self._shown: object = _NOTHING_SHOWN

    async def async_added_to_hass(self) -> None:
        """Follow the pair."""
        # Added (again): Home Assistant writes the state once this returns, so that write shows
        # the pair as it is now, and later updates write only what changes after it.
        self._refresh()
        self.async_on_remove(
            self._pair.async_add_listener(self._handle_update, self._reading_roles)
        )
        self.async_on_remove(self._pair.async_add_entity(self))

    def _shown_value(self) -> object:
        """The value the state shows besides availability (None: availability only)."""
        return None

    def _shows(self) -> object:
        """What the state shows; equal twice means nothing to write."""
        return (self.available, self._shown_value())

    def _refresh(self) -> bool:
        """Take what the pair shows now; True when that differs from what was last taken."""
        shown = self._shows()
        if shown == self._shown:
            return False
        self._shown = shown
        return True

    @callback
    def _handle_update(self) -> None:
        if self._refresh():
            self._write()

    def _write(self) -> None:
        if self._shares_change_context:
            self.async_set_context(self._pair.change_context())
        self.async_write_ha_state()


class MeasuredEntity(PairEntity):
    """A measurement whose state is written as the entry's write policy says: a change of
    availability at once, a new value when it moved by `_deadband`, otherwise at the next
    heartbeat. With `_own_statistics`, every reading
    counts in its statistics, written or not. The state shows what was last written."""

    _deadband: Deadband
    _own_statistics = False
    _attr_available = False
    _written: float | None = None

    def __init__(
        self, runtime: SemRuntime, pair: PairRuntime, description: EntityDescription
    ) -> None:
        super().__init__(runtime, pair, description)
        self._recording = runtime.recording
        self._measurement: Measurement | None = None

    @property
    def available(self) -> bool:
        """As last written."""
        return self._attr_available

    @property
    def native_value(self) -> float | None:
        """As last written."""
        return self._written

    async def async_added_to_hass(self) -> None:
        """Follow the pair, under the entry's write policy."""
        self._measurement, forget = self._recording.measurement(
            self._deadband, self._flush, self._statistic if self._own_statistics else None
        )
        self.async_on_remove(forget)
        await super().async_added_to_hass()

    def _statistic(self) -> tuple[str, str | None, str | None] | None:
        """The statistic the readings go to, while the state is in the entity's own unit."""
        unit = self.unit_of_measurement
        if unit != getattr(self, "native_unit_of_measurement", unit):
            return None  # converted for display: the recorder's own compilation stands
        return self.entity_id, self.device_class, unit

    def _current(self) -> tuple[bool, float | None]:
        """Whether the measurement is available now, and its value (None: unknown)."""
        raise NotImplementedError

    def _refresh(self) -> bool:
        available, value = self._current()
        measurement = self._measurement
        if measurement is not None:
            measurement.read(value if available else None, time.time())
        if available is self._attr_available and value == self._written:
            return False
        # A change of availability, or to or from unknown, is written at once; a new value
        # when the gate lets it through.
        if measurement is not None:
            if (
                available is self._attr_available
                and value is not None
                and self._written is not None
                and not measurement.gate.offer(value)
            ):
                return False
            measurement.gate.wrote(value)
        self._attr_available = available
        self._written = value
        return True

    @callback
    def _flush(self) -> None:
        """The heartbeat: write the value held back, if it is still current."""
        available, value = self._current()
        if not available or value is None or value == self._written:
            return
        if self._measurement is not None:
            self._measurement.gate.wrote(value)
        self._written = value
        self._write()


class DescribedPairEntity(PairEntity):
    """A pair entity whose description says when it is known and what moves it."""

    entity_description: PairFigureDescription

    def __init__(
        self, runtime: SemRuntime, pair: PairRuntime, description: PairFigureDescription
    ) -> None:
        super().__init__(runtime, pair, description)
        self._reading_roles = description.readings_fn(pair)
        self._shares_change_context = description.measurement

    @property
    def available(self) -> bool:
        """As the description says (the broker connection, unless it says more)."""
        return self.entity_description.available_fn(self._pair)


class NodeEntity(Entity):
    """A diagnostic entity of a node's device."""

    _attr_has_entity_name = True
    _attr_should_poll = False

    def __init__(self, runtime: SemRuntime, node: str, description: EntityDescription) -> None:
        self.entity_description = description
        self._runtime = runtime
        self._node = node
        entry_id = runtime.entry_id
        self._attr_unique_id = f"{entry_id}_node_{node}_{description.key}"
        self._attr_device_info = DeviceInfo(identifiers={node_identifier(entry_id, node)})

    async def async_added_to_hass(self) -> None:
        """Follow the node and the broker connection."""
        self.async_on_remove(
            self._runtime.fleet.async_subscribe(NodeKey(self._node), self._handle_update)
        )
        self.async_on_remove(self._runtime.hub.async_add_listener(self._handle_update))

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()
