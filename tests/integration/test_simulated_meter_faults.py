"""A PZEM's bad days, end to end: the firmware under the MicroPython unix port with emulated
PZEMs, a real mosquitto, the integration in Home Assistant. An impossible register value shows
the meter unavailable with its reason, line noise before every reply changes nothing, and a
reset the PZEM refused or never answered fails the reset button with the node's reason."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.firmware.e2e import SimNode
from tests.integration.common import wait_for, wait_state
from tests.integration.simnode import (
    StateLog,
    requires_micropython,
    setup_sim_entry,
    sim_meters,
    start_node,
    write_scenario,
)
from tests.mosquitto import Broker

pytestmark = [requires_micropython, pytest.mark.usefixtures("entity_registry_enabled_by_default")]

HOUSE_STATUS = "sensor.house_1_house_meter_status"
LINE_STATUS = "sensor.house_1_line_meter_status"
BUTTON = "button.house_1_reset_energy"

# A register value no PZEM measures, and the reason the node gives for it.
IMPOSSIBLE = (
    ("energy", 0xFFFFFFFF, "energy 4294967295 Wh above 10000000 Wh"),
    ("voltage", 0xFFFF, "voltage 6553.5 V above 300 V"),
    ("current", 0xFFFFFFFF, "current 4294967.295 A above 100 A"),
    ("power", 0xFFFFFFFF, "power 429496729.5 W above 25000 W"),
    ("pf", 150, "power factor 1.5 above 1"),
    ("frequency", 0, "frequency 0 Hz outside 45-65 Hz"),
)


@pytest.fixture
async def sim(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, tmp_path: Path
) -> AsyncIterator[tuple[SimNode, MockConfigEntry]]:
    node = await start_node(mosquitto, prefix, write_scenario(tmp_path, house_w=1000.0))
    try:
        entry = await setup_sim_entry(hass, mosquitto, prefix)
        await wait_state(hass, HOUSE_STATUS, "ok", within=15)
        await wait_state(hass, LINE_STATUS, "ok", within=15)
        yield node, entry
    finally:
        node.stop()


async def test_each_impossible_reading_shows_the_meter_unavailable_with_its_reason(
    hass: HomeAssistant, sim: tuple[SimNode, MockConfigEntry]
) -> None:
    node, _ = sim
    for register, value, detail in IMPOSSIBLE:
        node.send(f"register house1 {register} {value}")
        await wait_state(hass, HOUSE_STATUS, "out_of_range", within=5)
        assert hass.states.get(HOUSE_STATUS).attributes["detail"] == detail
        for quantity in ("power", "energy", "voltage", "current", "frequency", "power_factor"):
            state = hass.states.get(f"sensor.house_1_{quantity}")
            assert state.state == STATE_UNAVAILABLE, (register, quantity, state.state)
        assert hass.states.get(LINE_STATUS).state == "ok"
        node.send(f"register house1 {register} off")
        await wait_state(hass, HOUSE_STATUS, "ok", within=5)
        assert hass.states.get("sensor.house_1_power").state != STATE_UNAVAILABLE
    # The node said it once per episode, and once that the meter answers again.
    assert node.output().count("meter house1: out_of_range: energy 4294967295 Wh") == 1
    assert node.output().count("meter house1: answering again") == len(IMPOSSIBLE)


async def test_line_noise_before_every_reply_changes_nothing(
    hass: HomeAssistant, sim: tuple[SimNode, MockConfigEntry]
) -> None:
    node, entry = sim
    house = sim_meters(entry)["house1"]
    log = StateLog(hass)
    node.send("garbage house1 00ff0104")
    await node.wait_line("control: garbage house1")
    samples = house.samples
    await wait_for(hass, lambda: house.samples >= samples + 4, "four more readings", within=10)
    log.stop()
    assert set(log.states(HOUSE_STATUS)) <= {"ok"}
    assert STATE_UNAVAILABLE not in log.states("sensor.house_1_power")
    assert "meter house1: crc" not in node.output()


async def _press(hass: HomeAssistant) -> None:
    await hass.services.async_call("button", "press", {ATTR_ENTITY_ID: BUTTON}, blocking=True)


async def test_a_reset_the_node_could_not_do_fails_the_button(
    hass: HomeAssistant, sim: tuple[SimNode, MockConfigEntry]
) -> None:
    node, _ = sim
    await wait_state(hass, BUTTON, "unknown", within=10)

    node.send("refusereset house1 1")  # the PZEM answers 0xC2
    await node.wait_line("control: refusereset house1 1")
    with pytest.raises(HomeAssistantError) as raised:
        await _press(hass)
    assert raised.value.translation_key == "reset_failed"
    assert raised.value.translation_placeholders["meter"] == "sim-node/house1"
    assert raised.value.translation_placeholders["reason"] == "exception (slave error)"
    await node.wait_line("meter house1: energy reset failed")

    node.send("refusereset house1 0")
    node.send("offline line1")  # the PZEM does not answer at all
    await node.wait_line("control: offline line1")
    with pytest.raises(HomeAssistantError) as raised:
        await _press(hass)
    assert raised.value.translation_key == "reset_failed"
    assert raised.value.translation_placeholders["meter"] == "sim-node/line1"
    assert raised.value.translation_placeholders["reason"] == "timeout (no reply)"

    node.send("online line1")
    await wait_state(hass, LINE_STATUS, "ok", within=5)
    await _press(hass)  # both reset: no error
    await node.wait_line("meter line1: energy counter reset")
