"""Base entities: one device per pair (a house), one per node (the ESP32)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .fleet import NodeKey
from .pair import PairRuntime
from .runtime import SemRuntime, node_identifier, pair_identifier
from .semcore.protocol import Role

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
            if self._shares_change_context:
                self.async_set_context(self._pair.change_context())
            self.async_write_ha_state()


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
