"""The paper's theft experiment through the broker, with the theft sensor following the paper's
instantaneous rule: events, entities, triggers."""

from __future__ import annotations

import pytest
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.const import STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_get_device_automations,
)

from custom_components.smart_energy_meter import device_trigger
from custom_components.smart_energy_meter.const import (
    DOMAIN,
    EVENT_THEFT_CLEARED,
    EVENT_THEFT_DETECTED,
)
from tests.integration.common import (
    HOUSE_1,
    HOUSE_2,
    TestNode,
    capture_device_triggers,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.feeder import LINE, Feeder
from tests.mosquitto import Broker

NORMAL_1 = 99.04  # 0.96 %
NORMAL_2 = 98.46  # 1.54 %
BYPASS_2 = 82.23  # 17.77 %
PAPER_RULE = {"detection": "paper"}


@pytest.fixture
async def houses(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> tuple[Feeder, Feeder]:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2], options=PAPER_RULE)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    return Feeder(hass, entry, node, 1), Feeder(hass, entry, node, 2)


async def test_paper_normal_operation_raises_no_event(
    hass: HomeAssistant, houses: tuple[Feeder, Feeder]
) -> None:
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    house_1, house_2 = houses
    await house_1.run(15, LINE, NORMAL_1)
    await house_2.run(15, LINE, NORMAL_2)
    assert state_of(hass, "sensor.house_1_theft_percentage") == "0.96"
    assert state_of(hass, "sensor.house_2_theft_percentage") == "1.54"
    assert state_of(hass, "binary_sensor.house_1_theft") == "off"
    assert state_of(hass, "binary_sensor.house_2_theft") == "off"
    assert state_of(hass, "event.house_2_theft_events") == STATE_UNKNOWN  # never fired
    assert detected == []


async def test_paper_bypass_detected_after_debounce_and_cleared(
    hass: HomeAssistant, houses: tuple[Feeder, Feeder]
) -> None:
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    cleared = async_capture_events(hass, EVENT_THEFT_CLEARED)
    _, house_2 = houses
    # Nine node-seconds of bypass: above 2 % but not yet for the 10 s debounce.
    await house_2.run(10, LINE, BYPASS_2)
    assert state_of(hass, "sensor.house_2_theft_percentage") == "17.77"
    assert state_of(hass, "binary_sensor.house_2_theft") == "off"
    assert detected == []
    await house_2.run(2, LINE, BYPASS_2)
    await wait_state(hass, "binary_sensor.house_2_theft", "on")
    assert len(detected) == 1
    device = dr.async_get(hass).async_get(house_2.pair.device_id)
    assert device is not None
    assert device.name == "House 2"
    assert detected[0].data == {
        "device_id": device.id,
        "pair": "house2",
        "name": "House 2",
        "detection": "paper",
        "status": "theft",
        "mismatch_percent": 17.77,
        "line_power": LINE,
        "house_power": BYPASS_2,
    }
    event = hass.states.get("event.house_2_theft_events")
    assert event is not None
    assert event.attributes["event_type"] == "theft_detected"
    assert event.attributes["mismatch_percent"] == 17.77
    assert state_of(hass, "binary_sensor.house_1_theft") != "on"

    # Bypass removed: back to the normal 1.54 %; cleared after the debounce.
    await house_2.run(5, LINE, NORMAL_2)
    assert state_of(hass, "binary_sensor.house_2_theft") == "on"
    await house_2.run(8, LINE, NORMAL_2)
    await wait_state(hass, "binary_sensor.house_2_theft", "off")
    assert len(cleared) == 1
    assert cleared[0].data["mismatch_percent"] == 1.54
    event = hass.states.get("event.house_2_theft_events")
    assert event is not None
    assert event.attributes["event_type"] == "theft_cleared"
    assert len(detected) == 1


async def test_minimum_load_floor_holds(hass: HomeAssistant, houses: tuple[Feeder, Feeder]) -> None:
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    house_1, _ = houses
    # 9 W on the line, 5 W in the house: 44 % "mismatch" from meter error at a tiny load.
    await house_1.run(30, 9.0, 5.0)
    assert state_of(hass, "sensor.house_1_theft_percentage") == STATE_UNKNOWN
    assert state_of(hass, "binary_sensor.house_1_theft") == "off"
    assert detected == []


async def test_pair_options_override_entry_defaults(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    strict = HOUSE_2 | {"threshold": 20.0}
    entry = make_entry(
        hass, mosquitto, prefix, pairs=[HOUSE_1, strict], options={"debounce": 2.0, **PAPER_RULE}
    )
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    house_1, house_2 = Feeder(hass, entry, node, 1), Feeder(hass, entry, node, 2)
    assert house_2.pair.detector.options.threshold == 20.0
    assert house_2.pair.detector.options.debounce == 2.0  # the entry-wide default
    await house_2.run(6, LINE, BYPASS_2)
    assert detected == []
    await house_1.run(4, LINE, BYPASS_2)  # 2 % threshold, 2 s debounce
    await wait_state(hass, "binary_sensor.house_1_theft", "on")
    assert [e.data["pair"] for e in detected] == ["house1"]


async def test_device_triggers(hass: HomeAssistant, houses: tuple[Feeder, Feeder]) -> None:
    _, house_2 = houses
    device_id = house_2.pair.device_id
    assert device_id is not None
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device_id)
    ours = sorted(t["type"] for t in triggers if t["domain"] == DOMAIN)
    assert ours == ["theft_cleared", "theft_detected"]
    fired = await capture_device_triggers(hass, device_id)
    await house_2.run(12, LINE, BYPASS_2)
    await wait_for(hass, lambda: len(fired) == 1, "the theft_detected automation")
    await house_2.run(12, LINE, NORMAL_2)
    await wait_for(hass, lambda: len(fired) == 2, "the theft_cleared automation")
    assert [e.data["kind"] for e in fired] == ["theft_detected", "theft_cleared"]


async def test_node_device_has_no_triggers(
    hass: HomeAssistant, houses: tuple[Feeder, Feeder]
) -> None:
    entry_id = houses[0].pair.subentry_id  # any pair: find the node device through the runtime
    entry = next(e for e in hass.config_entries.async_entries(DOMAIN) if entry_id in e.subentries)
    node_device = entry.runtime_data.node_devices["node1"]
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, node_device)
    assert [t for t in triggers if t["domain"] == DOMAIN] == []


async def test_unknown_device_has_no_triggers(hass: HomeAssistant) -> None:
    assert await device_trigger.async_get_triggers(hass, "no-such-device") == []
