"""Binary sensors: the pair's theft verdict, tamper and meter fault, and each node's status."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

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
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import SemConfigEntry
from .entity import DescribedPairEntity, NodeEntity, PairFigureDescription
from .pair import PairRuntime
from .runtime import signal_new_node, signal_new_pair
from .semcore.energy_balance import Status
from .semcore.protocol import Role

# Entities are pushed, never polled.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class PairBinarySensorDescription(PairFigureDescription, BinarySensorEntityDescription):
    """A verdict of a pair's detectors and how to read it."""

    is_on_fn: Callable[[PairRuntime], bool | None]


def _alarm(alarm: Status) -> Callable[[PairRuntime], bool | None]:
    """On while the balance's status is this alarm, off otherwise: an alarm that was not
    raised is clear, also while the balance is still evaluating, so a pair's first verdict is
    one change on its device, not three."""

    def is_on(pair: PairRuntime) -> bool | None:
        return pair.status is alarm

    return is_on


THEFT = PairBinarySensorDescription(
    key="theft",
    translation_key="theft",
    device_class=BinarySensorDeviceClass.PROBLEM,
    # The verdict of the detector the pair follows. The paper's rule moves with every reading
    # and needs both meters' power; the balance's holds through a silent meter.
    is_on_fn=lambda pair: pair.theft,
    available_fn=lambda pair: pair.theft_verdict_available,
    readings_fn=lambda pair: () if pair.follows_balance else (Role.LINE, Role.HOUSE),
)

# The balance's other two alarms, for dashboards and alerts that want an on/off.
TAMPER = PairBinarySensorDescription(
    key="tamper",
    translation_key="tamper",
    device_class=BinarySensorDeviceClass.TAMPER,
    is_on_fn=_alarm(Status.TAMPER_SUSPECTED),
)
# On by default like the other alarms: a meter fault means the balance cannot see theft until
# the wiring or the meter is fixed. Diagnostic: it is about the meters, not the house.
METER_FAULT = PairBinarySensorDescription(
    key="meter_fault",
    translation_key="meter_fault",
    device_class=BinarySensorDeviceClass.PROBLEM,
    entity_category=EntityCategory.DIAGNOSTIC,
    is_on_fn=_alarm(Status.METER_FAULT),
)

NODE_STATUS = BinarySensorEntityDescription(
    key="status",
    translation_key="status",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


PAIR_SENSORS = (THEFT, TAMPER, METER_FAULT)


class PairBinarySensor(DescribedPairEntity, BinarySensorEntity):
    """A verdict of a pair's detectors, as its description reads it."""

    entity_description: PairBinarySensorDescription

    @property
    def is_on(self) -> bool | None:
        """As the description reads it from the pair."""
        return self.entity_description.is_on_fn(self._pair)

    def _shown_value(self) -> object:
        return self.is_on


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each pair's verdicts (of a pair added later too), and a node's status once it
    announces itself."""
    runtime = entry.runtime_data

    @callback
    def add_pair(subentry_id: str) -> None:
        pair = runtime.pairs[subentry_id]
        async_add_entities(
            [PairBinarySensor(runtime, pair, description) for description in PAIR_SENSORS],
            config_subentry_id=subentry_id,
        )

    for subentry_id in runtime.pairs:
        add_pair(subentry_id)
    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_pair(entry.entry_id), add_pair))

    @callback
    def add_node(node: str) -> None:
        async_add_entities([NodeStatusBinarySensor(runtime, node, NODE_STATUS)])

    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_node(entry.entry_id), add_node))


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
