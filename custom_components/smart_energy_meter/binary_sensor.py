"""Binary sensors: the pair's theft verdict, and each node's connectivity."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import SemConfigEntry
from .entity import NodeEntity, PairEntity

THEFT = BinarySensorEntityDescription(
    key="theft",
    translation_key="theft",
    device_class=BinarySensorDeviceClass.PROBLEM,
)

NODE_STATUS = BinarySensorEntityDescription(
    key="status",
    translation_key="status",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each pair's theft sensor, and a node's status once it announces itself."""
    runtime = entry.runtime_data
    for pair in runtime.pairs.values():
        async_add_entities(
            [TheftBinarySensor(runtime, pair, THEFT)], config_subentry_id=pair.subentry_id
        )

    @callback
    def add_node(node: str) -> None:
        async_add_entities([NodeStatusBinarySensor(runtime, node, NODE_STATUS)])

    runtime.node_entity_adders.append(add_node)


class TheftBinarySensor(PairEntity, BinarySensorEntity):
    """On while the pair's debounced mismatch says theft."""

    @property
    def available(self) -> bool:
        """The verdict is shown only while both meters report power."""
        return self._pair.theft_available

    @property
    def is_on(self) -> bool:
        """The detector's verdict."""
        return self._pair.detector.theft


class NodeStatusBinarySensor(NodeEntity, BinarySensorEntity):
    """The node's retained online/offline status (its MQTT last will)."""

    @property
    def available(self) -> bool:
        """Known only while the broker is connected."""
        return self._runtime.hub.connected

    @property
    def is_on(self) -> bool | None:
        """Online, offline, or unknown before the first status."""
        state = self._runtime.fleet.nodes.get(self._node)
        if state is None or (state.status is None and not state.gone):
            return None
        return state.online
