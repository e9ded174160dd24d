"""Binary sensors: the pair's theft verdict, tamper and meter fault, and each node's status."""

from __future__ import annotations

from homeassistant.components.binary_sensor import (
    BinarySensorEntity,
    BinarySensorEntityDescription,
)

try:
    from homeassistant.components.binary_sensor.const import BinarySensorDeviceClass
except ImportError:  # Home Assistant before 2026.10 has no const module here
    from homeassistant.components.binary_sensor import (  # type: ignore[attr-defined]
        BinarySensorDeviceClass,
    )
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import SemConfigEntry
from .entity import NodeEntity, PairEntity
from .pair import PairRuntime
from .runtime import SemRuntime, signal_new_node
from .semcore.protocol import Role
from .semcore.theft_engine import Status

# Entities are pushed, never polled.
PARALLEL_UPDATES = 0

THEFT = BinarySensorEntityDescription(
    key="theft",
    translation_key="theft",
    device_class=BinarySensorDeviceClass.PROBLEM,
)

# The balance's other two alarms, for dashboards and alerts that want an on/off.
TAMPER = BinarySensorEntityDescription(
    key="tamper",
    translation_key="tamper",
    device_class=BinarySensorDeviceClass.TAMPER,
)
# Off until wanted (the detection status also says "meter fault"): fewer default entities per
# pair let one config entry hold more pairs within Home Assistant's 10,000.
METER_FAULT = BinarySensorEntityDescription(
    key="meter_fault",
    translation_key="meter_fault",
    device_class=BinarySensorDeviceClass.PROBLEM,
    entity_category=EntityCategory.DIAGNOSTIC,
    entity_registry_enabled_default=False,
)

NODE_STATUS = BinarySensorEntityDescription(
    key="status",
    translation_key="status",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


class PairBinarySensor(PairEntity, BinarySensorEntity):
    """A binary sensor of a pair: its state is on, off or unknown."""

    def _shown_value(self) -> object:
        return self.is_on


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each pair's theft sensor, and a node's status once it announces itself."""
    runtime = entry.runtime_data
    for pair in runtime.pairs.values():
        async_add_entities(
            [
                TheftBinarySensor(runtime, pair, THEFT),
                BalanceAlarmBinarySensor(runtime, pair, TAMPER),
                BalanceAlarmBinarySensor(runtime, pair, METER_FAULT),
            ],
            config_subentry_id=pair.subentry_id,
        )

    @callback
    def add_node(node: str) -> None:
        async_add_entities([NodeStatusBinarySensor(runtime, node, NODE_STATUS)])

    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_node(entry.entry_id), add_node))


class TheftBinarySensor(PairBinarySensor):
    """On while the detector the pair follows (balance or paper rule) says theft."""

    def __init__(
        self, runtime: SemRuntime, pair: PairRuntime, description: EntityDescription
    ) -> None:
        super().__init__(runtime, pair, description)
        # The paper's verdict moves with every reading, the balance's only with the balance.
        self._reading_roles = () if pair.follows_balance else (Role.LINE, Role.HOUSE)

    @property
    def available(self) -> bool:
        """The paper's verdict needs both meters' power; the balance's only the broker."""
        return self._pair.theft_verdict_available

    @property
    def is_on(self) -> bool | None:
        """The verdict; unknown while the balance is not evaluable."""
        return self._pair.theft


_ALARMS = {TAMPER.key: Status.TAMPER_SUSPECTED, METER_FAULT.key: Status.METER_FAULT}


class BalanceAlarmBinarySensor(PairBinarySensor):
    """On while the balance's status is this alarm (tamper suspected, or meter fault)."""

    # Updated when the balance changes, not with every reading.
    _reading_roles = ()

    @property
    def available(self) -> bool:
        """The status holds through a silent meter; not through a lost broker."""
        return self._pair.hub_connected

    @property
    def is_on(self) -> bool | None:
        """The alarm; unknown while the balance is not evaluable."""
        status = self._pair.status
        if status is Status.NOT_EVALUABLE:
            return None
        return status is _ALARMS[self.entity_description.key]


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
