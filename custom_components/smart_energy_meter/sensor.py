"""Sensors: the house's readings, the line's, both detectors' figures, and node diagnostics."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.components.sensor import (
    RestoreSensor,
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfFrequency,
    UnitOfPower,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.restore_state import RestoreEntity
from homeassistant.helpers.typing import StateType
from homeassistant.util import dt as dt_util

from . import SemConfigEntry
from .entity import DescribedPairEntity, MeasuredEntity, NodeEntity, PairFigureDescription
from .fleet import Quantity
from .pair import METER_STATUSES, PairRuntime
from .runtime import (
    SemRuntime,
    signal_new_node,
    signal_new_pair,
    signal_new_service_verdict,
    signal_pair_verdict,
)
from .semcore.energy_balance import Status
from .semcore.protocol import Role, VerdictEvent
from .semcore.state_writes import (
    CURRENT_DEADBAND,
    ENERGY_DEADBAND,
    FREQUENCY_DEADBAND,
    PERCENT_DEADBAND,
    POWER_DEADBAND,
    POWER_FACTOR_DEADBAND,
    VOLTAGE_DEADBAND,
    Deadband,
)

# Entities are pushed, never polled.
PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class MeterSensorDescription(SensorEntityDescription):
    """A reading of one of the pair's meters."""

    role: Role
    quantity: Quantity


# How each quantity is shown, whichever meter it comes from.
_SHOWN: Final[dict[Quantity, dict[str, Any]]] = {
    Quantity.VOLTAGE: {
        "device_class": SensorDeviceClass.VOLTAGE,
        "native_unit_of_measurement": UnitOfElectricPotential.VOLT,
        "suggested_display_precision": 1,
    },
    Quantity.CURRENT: {
        "device_class": SensorDeviceClass.CURRENT,
        "native_unit_of_measurement": UnitOfElectricCurrent.AMPERE,
        "suggested_display_precision": 3,
    },
    Quantity.POWER: {
        "device_class": SensorDeviceClass.POWER,
        "native_unit_of_measurement": UnitOfPower.WATT,
        "suggested_display_precision": 1,
    },
    Quantity.POWER_FACTOR: {
        "device_class": SensorDeviceClass.POWER_FACTOR,
        "suggested_display_precision": 2,
    },
    Quantity.FREQUENCY: {
        "device_class": SensorDeviceClass.FREQUENCY,
        "native_unit_of_measurement": UnitOfFrequency.HERTZ,
        "suggested_display_precision": 1,
    },
    Quantity.ENERGY: {
        "device_class": SensorDeviceClass.ENERGY,
        "state_class": SensorStateClass.TOTAL_INCREASING,
        "native_unit_of_measurement": UnitOfEnergy.WATT_HOUR,
        "suggested_unit_of_measurement": UnitOfEnergy.KILO_WATT_HOUR,
        "suggested_display_precision": 3,
    },
}


# What change of each quantity is written at once; the rest waits for the heartbeat.
_DEADBANDS: Final[dict[Quantity, Deadband]] = {
    Quantity.VOLTAGE: VOLTAGE_DEADBAND,
    Quantity.CURRENT: CURRENT_DEADBAND,
    Quantity.POWER: POWER_DEADBAND,
    Quantity.POWER_FACTOR: POWER_FACTOR_DEADBAND,
    Quantity.FREQUENCY: FREQUENCY_DEADBAND,
    Quantity.ENERGY: ENERGY_DEADBAND,
}


def _reading(
    key: str, role: Role, quantity: Quantity, *, enabled: bool = True
) -> MeterSensorDescription:
    """A meter reading's description: the quantity decides how it is shown."""
    shown = {"state_class": SensorStateClass.MEASUREMENT, **_SHOWN[quantity]}
    return MeterSensorDescription(
        key=key,
        translation_key=key,
        role=role,
        quantity=quantity,
        entity_registry_enabled_default=enabled,
        **shown,
    )


HOUSE_SENSORS: tuple[MeterSensorDescription, ...] = (
    _reading("voltage", Role.HOUSE, Quantity.VOLTAGE),
    _reading("current", Role.HOUSE, Quantity.CURRENT),
    _reading("power", Role.HOUSE, Quantity.POWER),
    _reading("power_factor", Role.HOUSE, Quantity.POWER_FACTOR),
    _reading("frequency", Role.HOUSE, Quantity.FREQUENCY),
    _reading("energy", Role.HOUSE, Quantity.ENERGY),
)
# Of the line meter only its power is shown by default, next to the house's (the paper's UI).
LINE_SENSORS: tuple[MeterSensorDescription, ...] = (
    _reading("line_power", Role.LINE, Quantity.POWER),
    _reading("line_voltage", Role.LINE, Quantity.VOLTAGE, enabled=False),
    _reading("line_current", Role.LINE, Quantity.CURRENT, enabled=False),
    _reading("line_energy", Role.LINE, Quantity.ENERGY, enabled=False),
)


@dataclass(frozen=True, kw_only=True)
class PairSensorDescription(PairFigureDescription, SensorEntityDescription):
    """A figure of a pair's detectors and how to read it."""

    value_fn: Callable[[PairRuntime], StateType]


def _percent(value: float | None) -> float | None:
    # + 0.0: a figure that rounds to -0.0 shows as 0.0.
    return None if value is None else round(value, 2) + 0.0


THEFT_PERCENTAGE = PairSensorDescription(
    key="theft_percentage",
    translation_key="theft_percentage",
    native_unit_of_measurement=PERCENTAGE,
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=2,
    # The paper's (P_line - P_house) / P_line x 100: needs both powers, unknown below the
    # minimum load.
    value_fn=lambda pair: _percent(pair.mismatch),
    available_fn=lambda pair: pair.theft_available,
    readings_fn=lambda pair: (Role.LINE, Role.HOUSE),
    measurement=True,
)

UNACCOUNTED_ENERGY = PairSensorDescription(
    key="unaccounted_energy",
    translation_key="unaccounted_energy",
    device_class=SensorDeviceClass.ENERGY,
    state_class=SensorStateClass.TOTAL,
    native_unit_of_measurement=UnitOfEnergy.WATT_HOUR,
    suggested_display_precision=1,
    # Energy that entered the line and was neither metered nor a loss; never decreases.
    value_fn=lambda pair: pair.engine.unaccounted_wh,
)

# Off until wanted: the status says what the window found; its percentage is for commissioning
# and tuning.
WINDOW_MISMATCH = PairSensorDescription(
    key="window_mismatch",
    translation_key="window_mismatch",
    entity_category=EntityCategory.DIAGNOSTIC,
    entity_registry_enabled_default=False,
    native_unit_of_measurement=PERCENTAGE,
    state_class=SensorStateClass.MEASUREMENT,
    suggested_display_precision=2,
    # The last window's unexplained share, after cable loss and gain matching; unknown when
    # that window was not balanced.
    value_fn=lambda pair: _percent(pair.window_mismatch),
)

DETECTION_STATUS = PairSensorDescription(
    key="detection_status",
    translation_key="detection_status",
    device_class=SensorDeviceClass.ENUM,
    options=[status.value for status in Status],
    # The balance's debounced status; tamper suspected also while signed readings are refused.
    value_fn=lambda pair: pair.status.value,
)


def _service_status(pair: PairRuntime) -> str | None:
    verdict = pair.service_verdict.verdict if pair.service_verdict else None
    return None if verdict is None else verdict.status


# An enum sensor, not a binary sensor: the service's status says more than theft or not (a
# cleared alarm may be a meter fault), and it reads as the local Detection status does, with the
# same states, beside it. Unknown when the service withdrew its verdict; unavailable until the
# broker hands the verdict on the connection as it is.
SERVICE_VERDICT = PairSensorDescription(
    key="service_verdict",
    translation_key="service_verdict",
    device_class=SensorDeviceClass.ENUM,
    options=[status.value for status in Status],
    value_fn=_service_status,
    available_fn=lambda pair: pair.service_verdict_current,
)


def _meter_status(key: str, role: Role) -> PairSensorDescription:
    """Why a meter's readings are unavailable: unavailable entities carry no reason."""
    return PairSensorDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.ENUM,
        entity_category=EntityCategory.DIAGNOSTIC,
        options=list(METER_STATUSES),
        value_fn=lambda pair: pair.meter_status(role),
        readings_fn=lambda pair: (role,),
    )


LINE_METER_STATUS = _meter_status("line_meter_status", Role.LINE)
HOUSE_METER_STATUS = _meter_status("house_meter_status", Role.HOUSE)
METER_STATUS_ROLES: Final = {LINE_METER_STATUS.key: Role.LINE, HOUSE_METER_STATUS.key: Role.HOUSE}

# Off until wanted: the node's device shows its MAC address; its IP address (which DHCP may
# change) is for finding the node on the network, as with Home Assistant's other network
# devices.
NODE_IP = SensorEntityDescription(
    key="ip_address",
    translation_key="ip_address",
    entity_category=EntityCategory.DIAGNOSTIC,
    entity_registry_enabled_default=False,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each pair's sensors (of a pair added later too), and the node diagnostics once a
    node announces itself."""
    runtime = entry.runtime_data

    @callback
    def add_pair(subentry_id: str) -> None:
        pair = runtime.pairs[subentry_id]
        entities: list[SensorEntity] = [
            MeterSensor(runtime, pair, description)
            for description in (*HOUSE_SENSORS, *LINE_SENSORS)
            if pair.provides(description.role, description.quantity)
        ]
        entities += [
            TheftPercentageSensor(runtime, pair, THEFT_PERCENTAGE),
            UnaccountedEnergySensor(runtime, pair, UNACCOUNTED_ENERGY),
            PairSensor(runtime, pair, WINDOW_MISMATCH),
            DetectionStatusSensor(runtime, pair, DETECTION_STATUS),
            MeterStatusSensor(runtime, pair, LINE_METER_STATUS),
            MeterStatusSensor(runtime, pair, HOUSE_METER_STATUS),
        ]
        if pair.service_verdict is not None and pair.service_verdict.heard:
            # Made again (the detector the pair follows changed): it was shown before.
            pair.service_verdict_entity = True
            entities.append(ServiceVerdictSensor(runtime, pair, SERVICE_VERDICT))
        async_add_entities(entities, config_subentry_id=subentry_id)

    for subentry_id in runtime.pairs:
        add_pair(subentry_id)
    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_pair(entry.entry_id), add_pair))

    @callback
    def add_service_verdict(subentry_id: str) -> None:
        pair = runtime.pairs[subentry_id]
        async_add_entities(
            [ServiceVerdictSensor(runtime, pair, SERVICE_VERDICT)], config_subentry_id=subentry_id
        )

    entry.async_on_unload(
        async_dispatcher_connect(
            hass, signal_new_service_verdict(entry.entry_id), add_service_verdict
        )
    )

    @callback
    def add_node(node: str) -> None:
        async_add_entities([NodeIpSensor(runtime, node, NODE_IP)])

    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_node(entry.entry_id), add_node))


class MeterSensor(MeasuredEntity, SensorEntity):
    """One reading of the line or house meter; unavailable rather than a made-up value."""

    entity_description: MeterSensorDescription
    _shares_change_context = True

    def __init__(
        self, runtime: SemRuntime, pair: PairRuntime, description: MeterSensorDescription
    ) -> None:
        super().__init__(runtime, pair, description)
        # A reading of the other meter does not change this one.
        self._reading_roles = (description.role,)
        self._deadband = _DEADBANDS[description.quantity]
        # A counter's statistics are its last state of each period, which the heartbeat keeps
        # current; a measurement's mean, minimum and maximum come from every reading.
        self._own_statistics = description.state_class is SensorStateClass.MEASUREMENT

    def _current(self) -> tuple[bool, float | None]:
        # Most state writes are these sensors': one lookup per reading. The value is None
        # exactly when there is no current reading.
        value = self._pair.value(self.entity_description.role, self.entity_description.quantity)
        return value is not None, value


class PairSensor(DescribedPairEntity, SensorEntity):
    """A figure of a pair's detectors, as its description reads it."""

    entity_description: PairSensorDescription

    @property
    def native_value(self) -> StateType:
        """As the description reads it from the pair."""
        return self.entity_description.value_fn(self._pair)

    def _shown_value(self) -> object:
        return self.native_value


class TheftPercentageSensor(MeasuredEntity, PairSensor):
    """The paper's theft percentage, moving with every power reading: a measurement."""

    _deadband = PERCENT_DEADBAND
    _own_statistics = True

    def _current(self) -> tuple[bool, float | None]:
        description = self.entity_description
        value = description.value_fn(self._pair)
        return description.available_fn(self._pair), None if value is None else float(value)


class MeterStatusSensor(PairSensor):
    """Why a meter's readings are unavailable, with the node's own words as `detail`."""

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """The node's words for the error (protocol 1.2 nodes), None otherwise."""
        return {"detail": self._pair.meter_detail(METER_STATUS_ROLES[self.entity_description.key])}

    def _shown_value(self) -> object:
        return self.native_value, self.extra_state_attributes["detail"]


class UnaccountedEnergySensor(PairSensor, RestoreSensor):
    """The unaccounted-energy total, continued from the previous run."""

    async def async_added_to_hass(self) -> None:
        """Continue the total of the previous run."""
        await super().async_added_to_hass()
        self._pair.async_restore_unaccounted(await self._last_total())

    async def _last_total(self) -> float | None:
        last = await self.async_get_last_sensor_data()
        if last is None or last.native_unit_of_measurement != UnitOfEnergy.WATT_HOUR:
            return None
        try:
            total = float(last.native_value)  # type: ignore[arg-type]
        except TypeError, ValueError:
            return None
        return total if math.isfinite(total) and total > 0 else None


class DetectionStatusSensor(PairSensor, RestoreEntity):
    """The balance's status, continued from the previous run: a theft shows at once after a
    restart or reload, and its events are not repeated."""

    async def async_added_to_hass(self) -> None:
        """Continue from the status shown when the previous run ended."""
        await super().async_added_to_hass()
        last = await self.async_get_last_state()
        self._pair.async_restore_status(last.state if last is not None else None)


class ServiceVerdictSensor(PairSensor):
    """The fleet service's verdict on the pair, beside the local detection (never driving it);
    its figures as attributes, so that one verdict writes one state."""

    def __init__(
        self, runtime: SemRuntime, pair: PairRuntime, description: PairSensorDescription
    ) -> None:
        super().__init__(runtime, pair, description)
        self._entry_id = runtime.entry_id

    async def async_added_to_hass(self) -> None:
        """Follow the pair, and the service's verdict on it."""
        await super().async_added_to_hass()
        self.async_on_remove(
            async_dispatcher_connect(
                self.hass,
                signal_pair_verdict(self._entry_id, self._pair.subentry_id),
                self._handle_update,
            )
        )
        self.async_on_remove(self._forget)

    @callback
    def _forget(self) -> None:
        # Removed (made again, or the entry unloads): the next verdict asks for it anew.
        self._pair.service_verdict_entity = False

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        """Since when the theft goes on, when the service decided, its window's mismatch and
        the pair's unaccounted energy by its count; None when unknown."""
        tracked = self._pair.service_verdict
        verdict = tracked.verdict if tracked is not None else None
        if verdict is None:
            return dict.fromkeys(("theft_since", "decided_at", "mismatch", "unaccounted_energy"))
        return {
            "theft_since": _utc(verdict.since if verdict.event is VerdictEvent.DETECTED else None),
            "decided_at": _utc(verdict.at),
            "mismatch": verdict.mismatch_pct,
            "unaccounted_energy": verdict.unaccounted_wh,
        }

    def _shown_value(self) -> object:
        return self.native_value, tuple(self.extra_state_attributes.values())


def _utc(timestamp: float | None) -> str | None:
    return None if timestamp is None else dt_util.utc_from_timestamp(timestamp).isoformat()


class NodeIpSensor(NodeEntity, SensorEntity):
    """The node's IP address, as announced."""

    @property
    def available(self) -> bool:
        """Known while connected and announced."""
        state = self._runtime.fleet.nodes.get(self._node)
        return self._runtime.hub.connected and state is not None and state.announce is not None

    @property
    def native_value(self) -> str | None:
        """The address, None when the node does not send it."""
        state = self._runtime.fleet.nodes.get(self._node)
        return state.announce.ip if state is not None and state.announce is not None else None
