"""Config entry diagnostics: what the entry knows, with the credentials redacted."""

from __future__ import annotations

from homeassistant.core import HomeAssistant

from custom_components.smart_energy_meter.diagnostics import async_get_config_entry_diagnostics
from tests.integration.common import HOUSE_1, TestNode, make_entry, setup_entry, wait_state
from tests.mosquitto import Broker


async def test_diagnostics(hass: HomeAssistant, mosquitto_auth: Broker, prefix: str) -> None:
    entry = make_entry(hass, mosquitto_auth, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    async with TestNode(mosquitto_auth, prefix) as node:
        await node.announce()
        await node.status("online")
        # The node says it dropped two readings of the line meter since its boot.
        await node.snapshot("line1", 100.0, energy=10.0, dropped=2)
        await node.snapshot("house1", 82.23, energy=9.0)
        await wait_state(hass, "sensor.house_1_theft_percentage", "17.77")
        diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["entry"]["password"] == "**REDACTED**"
    assert diagnostics["entry"]["username"] == "**REDACTED**"
    assert diagnostics["entry"]["prefix"] == prefix
    assert diagnostics["connected"] is True
    assert diagnostics["nodes"]["node1"]["status"] == "online"
    assert diagnostics["nodes"]["node1"]["announce"]["name"] == "Pole 7"
    clock = diagnostics["nodes"]["node1"]["clock"]
    assert (clock["refused_timestamps"], clock["jumps"], clock["shift_s"]) == (0, 0, 0.0)
    assert 0.0 <= clock["offset_s"] < 5.0  # the test node stamps with this machine's clock
    assert diagnostics["meters"]["node1/house1"] == {
        "energy_wh": 9.0,
        "energy_register_wh": 9.0,
        "readings": {"voltage": 225.7, "current": 0.108, "power": 82.23},
        "samples": 1,
        "fresh": True,
        "error": None,
        "error_detail": None,
        "dropped_since_boot": None,
    }
    assert diagnostics["meters"]["node1/line1"]["dropped_since_boot"] == 2
    house = diagnostics["pairs"]["House 1"]
    assert house["theft"] is False
    assert house["options"]["threshold"] == 2.0
    assert round(house["evaluation"]["mismatch"], 2) == 17.77
