"""Base entities: one device per pair (a house), one per node (the ESP32)."""

from __future__ import annotations

from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import Entity, EntityDescription

from .pair import PairRuntime
from .runtime import SemRuntime, node_identifier, pair_identifier


class PairEntity(Entity):
    """An entity of a pair's device, updated when the pair changes."""

    _attr_has_entity_name = True
    _attr_should_poll = False

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

    async def async_added_to_hass(self) -> None:
        """Follow the pair."""
        self.async_on_remove(self._pair.async_add_listener(self._handle_update))

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()


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
            self._runtime.fleet.async_listen(f"node:{self._node}", self._handle_update)
        )
        self.async_on_remove(self._runtime.hub.async_add_listener(self._handle_update))

    @callback
    def _handle_update(self) -> None:
        self.async_write_ha_state()
