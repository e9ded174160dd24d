"""Entity registry rules: names by translation key, categories, disabled defaults, device classes;
a pair's device goes with its subentry."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry
from pytest_homeassistant_custom_component.syrupy import HomeAssistantSnapshotExtension
from syrupy.assertion import SnapshotAssertion

from tests.integration.common import (
    HOUSE_1,
    HOUSE_2,
    TestNode,
    make_entry,
    publish_verdict,
    service_verdict,
    setup_entry,
    wait_for,
)
from tests.mosquitto import Broker

COMPONENT = Path(__file__).parents[2] / "custom_components/smart_energy_meter"
STRINGS = json.loads((COMPONENT / "strings.json").read_text())
LANGUAGES = {
    path.stem: json.loads(path.read_text()) for path in (COMPONENT / "translations").glob("*.json")
}
# The device class each unit of the meters' readings must come with.
UNIT_CLASSES = {
    "V": "voltage",
    "A": "current",
    "W": "power",
    "Wh": "energy",
    "kWh": "energy",
    "Hz": "frequency",
}


async def _entities(
    hass: HomeAssistant, broker: Broker, prefix: str, node: TestNode
) -> tuple[MockConfigEntry, list[er.RegistryEntry]]:
    entry = make_entry(hass, broker, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    # The fleet service judges both houses: their service verdicts are among the entities.
    for pair in ("house1", "house2"):
        await publish_verdict(node, service_verdict(pair), pair)
    registry = er.async_get(hass)
    await wait_for(
        hass,
        lambda: (
            registry.async_get("binary_sensor.pole_7_status") is not None
            and registry.async_get("sensor.house_2_service_verdict") is not None
            and registry.async_get("sensor.house_1_service_verdict") is not None
        ),
        "the node's entities and the service verdicts",
    )
    return entry, er.async_entries_for_config_entry(registry, entry.entry_id)


async def test_every_entity_is_named_by_a_translation_key(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    _, entities = await _entities(hass, mosquitto, prefix, node)
    assert len(entities) > 20
    for entity in entities:
        assert entity.has_entity_name, entity.entity_id
        assert entity.translation_key, entity.entity_id
        assert entity.translation_key in STRINGS["entity"][entity.domain], entity.entity_id
        assert entity.unique_id, entity.entity_id


async def test_no_two_entities_of_a_device_share_a_name(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    # History, the logbook and device pages list a device's entities by name: each must tell
    # itself apart from the others, in every language (disabled entities included).
    _, entities = await _entities(hass, mosquitto, prefix, node)
    by_device: dict[str, list[er.RegistryEntry]] = {}
    for entity in entities:
        assert entity.device_id is not None, entity.entity_id
        by_device.setdefault(entity.device_id, []).append(entity)
    assert len(by_device) == 3  # two pairs and the node
    assert set(LANGUAGES) == {"en", "id"}
    for language, strings in LANGUAGES.items():
        for device_entities in by_device.values():
            names = [
                strings["entity"][e.domain][e.translation_key]["name"].casefold()
                for e in device_entities
            ]
            duplicates = {name for name in names if names.count(name) > 1}
            assert not duplicates, (language, duplicates)


async def test_categories_and_disabled_defaults(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry, entities = await _entities(hass, mosquitto, prefix, node)
    devices = dr.async_get(hass)
    node_device = entry.runtime_data.node_devices["node1"]
    by_id = {entity.entity_id: entity for entity in entities}
    # Everything of the ESP32 itself is diagnostic, but its firmware update, which is
    # configuration (as on ESPHome and Shelly devices).
    node_entities = [e for e in entities if e.device_id == node_device]
    assert {e.entity_id for e in node_entities} >= {
        "binary_sensor.pole_7_status",
        "sensor.pole_7_ip_address",
        "update.pole_7_firmware",
    }
    firmware = by_id["update.pole_7_firmware"]
    assert firmware.entity_category is EntityCategory.CONFIG
    assert firmware.disabled_by is None
    assert all(
        e.entity_category is EntityCategory.DIAGNOSTIC for e in node_entities if e is not firmware
    )
    # Resetting erases both counters: in the configuration section, and off until enabled.
    reset = by_id["button.house_1_reset_energy"]
    assert reset.entity_category is EntityCategory.CONFIG
    assert reset.disabled_by is er.RegistryEntryDisabler.INTEGRATION
    # A house's readings and verdict are primary: no category.
    for entity_id in (
        "sensor.house_1_power",
        "sensor.house_1_energy",
        "sensor.house_1_theft_percentage",
        "binary_sensor.house_1_theft",
        "switch.house_1_relay",
    ):
        assert by_id[entity_id].entity_category is None, entity_id
        assert by_id[entity_id].disabled_by is None, entity_id
    # The line meter's own voltage, current and energy are there but off until wanted.
    for entity_id in (
        "sensor.house_1_line_voltage",
        "sensor.house_1_line_current",
        "sensor.house_1_line_energy",
    ):
        assert by_id[entity_id].disabled_by is er.RegistryEntryDisabler.INTEGRATION, entity_id
    assert by_id["sensor.house_1_line_power"].disabled_by is None
    # Tuning figures and the node's address are diagnostic and off until wanted (the README
    # says so); the meter fault alarm is diagnostic and on, as the other alarms.
    assert by_id["binary_sensor.house_1_meter_fault"].entity_category is EntityCategory.DIAGNOSTIC
    for entity_id in (
        "sensor.house_1_window_mismatch",
        "sensor.pole_7_ip_address",
    ):
        assert by_id[entity_id].disabled_by is er.RegistryEntryDisabler.INTEGRATION, entity_id
        assert by_id[entity_id].entity_category is EntityCategory.DIAGNOSTIC, entity_id
    pair_device = entry.runtime_data.pairs[_house_1(entry)].device_id
    enabled = {e.entity_id for e in entities if e.disabled_by is None}
    assert {e.entity_id for e in entities if e.device_id == pair_device} & enabled == {
        "sensor.house_1_voltage",
        "sensor.house_1_current",
        "sensor.house_1_power",
        "sensor.house_1_power_factor",
        "sensor.house_1_frequency",
        "sensor.house_1_energy",
        "sensor.house_1_line_power",
        "sensor.house_1_theft_percentage",
        "sensor.house_1_unaccounted_energy",
        "sensor.house_1_detection_status",
        "sensor.house_1_service_verdict",
        "sensor.house_1_line_meter_status",
        "sensor.house_1_house_meter_status",
        "binary_sensor.house_1_theft",
        "binary_sensor.house_1_tamper",
        "binary_sensor.house_1_meter_fault",
        "event.house_1_theft_events",
        "switch.house_1_relay",
    }
    assert {e.entity_id for e in node_entities} & enabled == {
        "binary_sensor.pole_7_status",
        "update.pole_7_firmware",
    }
    assert devices.async_get(node_device) is not None


def _house_1(entry: MockConfigEntry) -> str:
    return next(
        subentry_id
        for subentry_id, pair in entry.runtime_data.pairs.items()
        if pair.name == "House 1"
    )


async def test_device_classes(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    _, entities = await _entities(hass, mosquitto, prefix, node)
    by_id = {entity.entity_id: entity for entity in entities}
    expected = {
        "sensor.house_1_voltage": "voltage",
        "sensor.house_1_current": "current",
        "sensor.house_1_power": "power",
        "sensor.house_1_line_power": "power",
        "sensor.house_1_energy": "energy",
        "sensor.house_1_power_factor": "power_factor",
        "sensor.house_1_frequency": "frequency",
        "binary_sensor.house_1_theft": "problem",
        "binary_sensor.pole_7_status": "connectivity",
        "sensor.house_1_service_verdict": "enum",
    }
    for entity_id, device_class in expected.items():
        assert by_id[entity_id].original_device_class == device_class, entity_id
    # Any sensor in an electrical unit says what it measures.
    for entity in entities:
        unit = entity.unit_of_measurement
        if entity.domain == "sensor" and unit in UNIT_CLASSES:
            assert entity.original_device_class == UNIT_CLASSES[unit], entity.entity_id


async def test_deleting_a_pair_removes_its_device_and_entities(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry, _ = await _entities(hass, mosquitto, prefix, node)
    runtime = entry.runtime_data
    house_2 = next(p for p in runtime.pairs.values() if p.name == "House 2")
    device_id = house_2.device_id
    devices = dr.async_get(hass)
    registry = er.async_get(hass)
    assert registry.async_get("sensor.house_2_power") is not None
    assert hass.config_entries.async_remove_subentry(entry, house_2.subentry_id)
    await hass.async_block_till_done()
    assert devices.async_get(device_id) is None
    assert registry.async_get("sensor.house_2_power") is None
    # House 1 and the node stay.
    assert registry.async_get("sensor.house_1_power") is not None
    assert registry.async_get("binary_sensor.pole_7_status") is not None
    await wait_for(
        hass,
        lambda: entry.runtime_data.hub.connected and len(entry.runtime_data.pairs) == 1,
        "the reload without the pair",
    )
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
def snapshot(snapshot: SnapshotAssertion) -> SnapshotAssertion:
    """Home Assistant's snapshot format, kept in tests/integration/snapshots/."""
    return snapshot.use_extension(HomeAssistantSnapshotExtension)


async def test_every_entity_of_a_pair_and_a_node(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    snapshot: SnapshotAssertion,
) -> None:
    """What one house and one node add to Home Assistant, as a file to review with a change."""
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    registry = er.async_get(hass)
    await wait_for(
        hass, lambda: registry.async_get("binary_sensor.pole_7_status") is not None, "the node"
    )
    listed = {
        entity.entity_id: {
            "unique_id": entity.unique_id.removeprefix(entry.entry_id),
            "translation_key": entity.translation_key,
            "device_class": entity.device_class or entity.original_device_class,
            "unit": entity.unit_of_measurement,
            "category": entity.entity_category,
            "enabled_by_default": entity.disabled_by is None,
            "state_class": (entity.capabilities or {}).get("state_class"),
        }
        for entity in er.async_entries_for_config_entry(registry, entry.entry_id)
    }
    subentry = next(iter(entry.subentries))
    for figures in listed.values():
        figures["unique_id"] = figures["unique_id"].replace(subentry, "<pair>")
    assert dict(sorted(listed.items())) == snapshot
