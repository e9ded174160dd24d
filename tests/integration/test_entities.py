"""Entities of a pair, their values from real broker traffic, and the devices behind them."""

from __future__ import annotations

import pytest
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components.smart_energy_meter.const import DOMAIN
from tests.integration.common import (
    HOUSE_1,
    HOUSE_2,
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_state,
)
from tests.mosquitto import Broker

PAIR_ENTITIES = {
    "sensor.house_1_voltage",
    "sensor.house_1_current",
    "sensor.house_1_power",
    "sensor.house_1_power_factor",
    "sensor.house_1_frequency",
    "sensor.house_1_energy",
    "sensor.house_1_line_power",
    "sensor.house_1_line_voltage",
    "sensor.house_1_line_current",
    "sensor.house_1_line_energy",
    "sensor.house_1_theft_percentage",
    "sensor.house_1_unaccounted_energy",
    "sensor.house_1_window_mismatch",
    "sensor.house_1_detection_status",
    "sensor.house_1_line_meter_status",
    "sensor.house_1_house_meter_status",
    "binary_sensor.house_1_theft",
    "binary_sensor.house_1_tamper",
    "binary_sensor.house_1_meter_fault",
    "event.house_1_theft_events",
    "switch.house_1_relay",
    "button.house_1_reset_energy",
}


async def test_entity_ids_and_values_from_snapshots(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    registry = er.async_get(hass)
    house_1 = {
        e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if e.entity_id.split(".")[1].startswith("house_1_")
    }
    assert house_1 == PAIR_ENTITIES
    for entity_id in ("line_voltage", "line_current", "line_energy"):
        entity = registry.async_get(f"sensor.house_1_{entity_id}")
        assert entity is not None
        assert entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    button = registry.async_get("button.house_1_reset_energy")
    assert button is not None
    assert button.entity_category is not None
    assert button.entity_category.value == "config"
    assert button.disabled_by is er.RegistryEntryDisabler.INTEGRATION

    # Before any reading: unavailable, never 0.
    assert state_of(hass, "sensor.house_1_power") == STATE_UNAVAILABLE
    assert state_of(hass, "sensor.house_1_theft_percentage") == STATE_UNAVAILABLE

    await node.announce()
    await node.status("online")
    await node.snapshot("line1", 100.0, energy=1200.0)
    await node.snapshot(
        "house1",
        82.23,
        energy=1000.0,
        voltage=226.64,
        current=0.376,
        frequency=50.1,
        power_factor=0.97,
    )
    await wait_state(hass, "sensor.house_1_theft_percentage", "17.77")
    assert state_of(hass, "sensor.house_1_voltage") == "226.64"
    assert state_of(hass, "sensor.house_1_current") == "0.376"
    assert state_of(hass, "sensor.house_1_power") == "82.23"
    assert state_of(hass, "sensor.house_1_power_factor") == "0.97"
    assert state_of(hass, "sensor.house_1_frequency") == "50.1"
    assert state_of(hass, "sensor.house_1_line_power") == "100.0"
    # Wh native, shown in kWh.
    energy = hass.states.get("sensor.house_1_energy")
    assert energy is not None
    assert energy.state == "1.0"
    assert energy.attributes["unit_of_measurement"] == "kWh"
    assert energy.attributes["state_class"] == "total_increasing"
    assert energy.attributes["device_class"] == "energy"
    theft = hass.states.get("sensor.house_1_theft_percentage")
    assert theft is not None
    assert theft.attributes["unit_of_measurement"] == "%"
    assert theft.attributes["state_class"] == "measurement"
    binary = hass.states.get("binary_sensor.house_1_theft")
    assert binary is not None
    # The energy balance has not closed a window yet: no verdict either way.
    assert binary.state == STATE_UNKNOWN
    assert binary.attributes["device_class"] == "problem"
    event = hass.states.get("event.house_1_theft_events")
    assert event is not None
    assert event.attributes["event_types"] == [
        "theft_detected",
        "theft_cleared",
        "no_load",
        "meter_fault",
        "tamper_suspected",
        "not_evaluable",
    ]
    # House 2 has no readings: its entities stay unavailable.
    assert state_of(hass, "sensor.house_2_power") == STATE_UNAVAILABLE


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the IP address is off by default
async def test_devices_pair_via_node(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await wait_state(hass, "binary_sensor.pole_7_status", "on")
    assert state_of(hass, "sensor.pole_7_ip_address") == "192.168.1.50"

    devices = dr.async_get(hass)
    subentry_id = _sub(entry, "House 1")
    house = devices.async_get_device_by_identifier(
        (DOMAIN, f"{entry.entry_id}_pair_{subentry_id}"), entry.entry_id
    )
    esp = devices.async_get_device_by_identifier(
        (DOMAIN, f"{entry.entry_id}_node_node1"), entry.entry_id
    )
    assert house is not None
    assert esp is not None
    assert house.name == "House 1"
    assert house.via_device_id == esp.id
    assert house.config_subentry_id == subentry_id
    assert esp.config_subentry_id is None
    assert esp.name == "Pole 7"
    assert esp.sw_version == "1.0.0"
    assert esp.model == "ESP32 + PZEM-004T v3"
    assert (dr.CONNECTION_NETWORK_MAC, "24:6f:28:a1:b2:c3") in esp.connections


def _sub(entry: object, title: str) -> str:
    from homeassistant.config_entries import ConfigEntry

    assert isinstance(entry, ConfigEntry)
    return next(s.subentry_id for s in entry.subentries.values() if s.title == title)


@pytest.mark.parametrize("missing", ["line", "house"])
async def test_theft_percentage_unavailable_without_both_meters(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode, missing: str
) -> None:
    entry = make_entry(hass, mosquitto, prefix)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    present = "house1" if missing == "line" else "line1"
    await node.snapshot(present, 50.0)
    entity = "sensor.house_1_power" if missing == "line" else "sensor.house_1_line_power"
    await wait_state(hass, entity, "50.0")
    assert state_of(hass, "sensor.house_1_theft_percentage") == STATE_UNAVAILABLE
    # The balance's verdict holds through a silent meter; it has none yet.
    assert state_of(hass, "binary_sensor.house_1_theft") == STATE_UNKNOWN


async def test_paper_rule_verdict_needs_both_meters(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, options={"detection": "paper"})
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await node.snapshot("line1", 50.0)
    await wait_state(hass, "sensor.house_1_line_power", "50.0")
    assert state_of(hass, "binary_sensor.house_1_theft") == STATE_UNAVAILABLE
    await node.snapshot("house1", 49.5)
    await wait_state(hass, "binary_sensor.house_1_theft", "off")


async def test_theft_percentage_unknown_below_min_load(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await node.snapshot("line1", 9.0)
    await node.snapshot("house1", 5.0)
    await wait_state(hass, "sensor.house_1_power", "5.0")
    assert state_of(hass, "sensor.house_1_theft_percentage") == STATE_UNKNOWN
    assert state_of(hass, "binary_sensor.house_1_theft") == STATE_UNKNOWN
