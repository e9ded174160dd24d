"""End to end: the firmware simulator's `paper` scenario, set up through the real config flow."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path
from unittest.mock import patch

import pytest
from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.smart_energy_meter.const import DOMAIN, EVENT_THEFT_DETECTED
from tests.firmware.e2e import SimNode
from tests.integration.common import state_of, wait_for, wait_state
from tests.mosquitto import Broker

PAPER = Path(__file__).parents[2] / "firmware" / "scenarios" / "paper.json"
SPEED = 5  # simulated seconds per real second: the 10 s debounce takes 2 s

pytestmark = pytest.mark.skipif(
    shutil.which("micropython") is None, reason="the MicroPython unix port is not installed"
)


@pytest.fixture
def paper_node(mosquitto: Broker, prefix: str) -> Iterator[SimNode]:
    """The simulated paper node: two houses, house 2 with a bypass."""
    node = SimNode(
        mosquitto, "--prefix", prefix, "--speed", str(SPEED), scenario=PAPER, node="paper-node"
    )
    try:
        yield node
    finally:
        node.kill()


async def test_paper_scenario_end_to_end(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, paper_node: SimNode
) -> None:
    await paper_node.wait_line("node paper-node")
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    with patch("custom_components.smart_energy_meter.config_flow.DISCOVERY_SECONDS", 1.0):
        result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
        result = await hass.config_entries.flow.async_configure(
            result["flow_id"],
            {"host": mosquitto.host, "port": mosquitto.port, "tls": False, "prefix": prefix},
        )
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        await hass.async_block_till_done()
        result = await hass.config_entries.flow.async_configure(result["flow_id"])
    assert result["step_id"] == "pairs"
    assert result["description_placeholders"]["count"] == "2"
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {"pairs": ["paper-node/house1", "paper-node/house2"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    await hass.async_block_till_done()

    # House 2's bypass draws 18 % of its load before the meter; house 1 is honest.
    await wait_state(hass, "binary_sensor.house_2_theft", "on", within=30)
    assert [e.data["pair"] for e in detected] == ["house2"]
    assert 15 < detected[0].data["mismatch_percent"] < 21
    assert state_of(hass, "binary_sensor.house_1_theft") == "off"
    assert abs(float(state_of(hass, "sensor.house_1_theft_percentage"))) < 2
    assert 200 < float(state_of(hass, "sensor.house_2_voltage")) < 250
    assert float(state_of(hass, "sensor.house_2_line_power")) > float(
        state_of(hass, "sensor.house_2_power")
    )

    # The relay: switched only by the node's read-back.
    await wait_state(hass, "switch.house_2_relay", "on")
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.house_2_relay"}, blocking=True
    )
    assert state_of(hass, "switch.house_2_relay") == "off"
    # With the house cut off, the house meter reads 0 W: a real zero, below the load floor.
    await wait_state(hass, "sensor.house_2_power", "0.0", within=10)
    # A relay whose pin ignores writes: the node reads back "off", so no confirmation.
    paper_node.send("stuck r2")
    await paper_node.wait_line(r"control: stuck r2")
    with (
        patch("custom_components.smart_energy_meter.pair.RELAY_TIMEOUT", 1.0),
        pytest.raises(HomeAssistantError) as raised,
    ):
        await hass.services.async_call(
            "switch", "turn_on", {ATTR_ENTITY_ID: "switch.house_2_relay"}, blocking=True
        )
    assert raised.value.translation_key == "relay_timeout"
    assert state_of(hass, "switch.house_2_relay") == "off"

    # The node goes away: its last will marks everything unavailable.
    paper_node.kill()
    await wait_state(hass, "sensor.house_1_power", STATE_UNAVAILABLE, within=60)
    assert state_of(hass, "switch.house_2_relay") == STATE_UNAVAILABLE
    await wait_for(hass, lambda: not entry.runtime_data.fleet.nodes["paper-node"].online, "LWT")
    await hass.config_entries.async_unload(entry.entry_id)
