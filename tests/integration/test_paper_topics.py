"""A device that publishes only the paper's per-value topics (vac, iac, pac, energy, pf)."""

from __future__ import annotations

from datetime import timedelta

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.smart_energy_meter.const import EVENT_THEFT_DETECTED
from tests.integration.common import (
    EVERY_READING,
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_state,
)
from tests.mosquitto import Broker


def _paper_pair(prefix: str) -> dict[str, object]:
    return {
        "pair": "house_3",
        "name": "House 3",
        "line": {"topic_base": f"paper/{prefix}/line"},
        "house": {"topic_base": f"paper/{prefix}/house"},
        "interval": 2.0,
        "debounce": 0.0,
        "detection": "paper",  # the theft sensor follows the instantaneous rule
    }


async def _values(node: TestNode, base: str, **values: str) -> None:
    for quantity, value in values.items():
        await node.publish(f"{base}/{quantity}", value)


async def test_paper_topics_give_entity_values(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[_paper_pair(prefix)], options=EVERY_READING)
    await setup_entry(hass, entry)
    registry = er.async_get(hass)
    ids = {e.entity_id for e in er.async_entries_for_config_entry(registry, entry.entry_id)}
    # No frequency on these topics, no relay, no command topics: those entities do not exist.
    assert "sensor.house_3_frequency" not in ids
    assert "switch.house_3_relay" not in ids
    assert "button.house_3_reset_energy" not in ids
    assert {
        "sensor.house_3_power",
        "sensor.house_3_line_power",
        "binary_sensor.house_3_theft",
    } <= ids

    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    house = f"paper/{prefix}/house"
    line = f"paper/{prefix}/line"
    await _values(node, house, vac="226.64", iac="0.376", energy="1500", pf="0.98")
    await wait_state(hass, "sensor.house_3_power_factor", "0.98")  # the last one published
    assert state_of(hass, "sensor.house_3_voltage") == "226.64"
    # Each value stands alone: power has not arrived, so it is unavailable, not 0.
    assert state_of(hass, "sensor.house_3_power") == STATE_UNAVAILABLE
    assert state_of(hass, "sensor.house_3_current") == "0.376"
    assert state_of(hass, "sensor.house_3_energy") == "1.5"
    await _values(node, house, pac="82.23")
    await _values(node, line, pac="100")
    await wait_state(hass, "sensor.house_3_theft_percentage", "17.77")
    assert state_of(hass, "sensor.house_3_line_power") == "100.0"
    # Debounce 0 for this pair: flagged on the first evaluation.
    await wait_state(hass, "binary_sensor.house_3_theft", "on")
    assert len(detected) == 1

    # Junk on a paper topic changes nothing.
    await _values(node, house, pac="lots", vac="NaN", iac="-1", pf="1.5")
    await _values(node, house, energy="1501")
    await wait_state(hass, "sensor.house_3_energy", "1.501")
    assert state_of(hass, "sensor.house_3_power") == "82.23"
    assert state_of(hass, "sensor.house_3_voltage") == "226.64"
    assert state_of(hass, "sensor.house_3_current") == "0.376"
    assert state_of(hass, "sensor.house_3_power_factor") == "0.98"

    # Interval 2 s: silent for 6 s means unavailable.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=6.5))
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.house_3_power") == STATE_UNAVAILABLE
    assert state_of(hass, "sensor.house_3_theft_percentage") == STATE_UNAVAILABLE
    await _values(node, house, pac="99.04")
    await wait_state(hass, "sensor.house_3_power", "99.04")
    assert state_of(hass, "sensor.house_3_voltage") == STATE_UNAVAILABLE
