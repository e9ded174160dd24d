"""Device diagnostics: the part of the entry's knowledge that concerns one house or one node."""

from __future__ import annotations

from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from custom_components.smart_energy_meter.diagnostics import (
    async_get_config_entry_diagnostics,
    async_get_device_diagnostics,
)
from tests.integration.common import HOUSE_1, HOUSE_2, TestNode, make_entry, setup_entry, wait_state
from tests.mosquitto import Broker

REDACTED = "**REDACTED**"


async def test_pair_and_node_device_diagnostics(
    hass: HomeAssistant, mosquitto_auth: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto_auth, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    async with TestNode(mosquitto_auth, prefix) as node:
        await node.announce()
        await node.status("online")
        await node.snapshot("line1", 100.0, energy=10.0)
        await node.snapshot("house1", 82.23, energy=9.0)
        await wait_state(hass, "sensor.house_1_theft_percentage", "17.77")
        runtime = entry.runtime_data
        house_1 = next(p for p in runtime.pairs.values() if p.name == "House 1")
        devices = dr.async_get(hass)
        pair_device = devices.async_get(house_1.device_id)
        node_device = devices.async_get(runtime.node_devices["node1"])
        assert pair_device is not None
        assert node_device is not None
        pair = await async_get_device_diagnostics(hass, entry, pair_device)
        esp = await async_get_device_diagnostics(hass, entry, node_device)
        whole = await async_get_config_entry_diagnostics(hass, entry)

    for data in (pair, esp, whole):
        assert data["entry"]["username"] == REDACTED
        assert data["entry"]["password"] == REDACTED
        assert data["entry"]["prefix"] == prefix
        assert mosquitto_auth.password not in str(data)
    # The house: its pair, its two meters and the node they hang on; nothing of House 2.
    assert pair["pair"]["name"] == "House 1"
    assert pair["pair"]["config"]["house"] == {"node": "node1", "meter": "house1"}
    assert set(pair["meters"]) == {"node1/line1", "node1/house1"}
    assert pair["meters"]["node1/house1"]["energy_wh"] == 9.0
    assert set(pair["nodes"]) == {"node1"}
    assert pair["nodes"]["node1"]["announce"]["name"] == "Pole 7"
    assert "node1/house2" not in str(pair)
    # The ESP32: its state and every meter of it that a pair uses.
    assert "pair" not in esp
    assert set(esp["nodes"]) == {"node1"}
    assert esp["nodes"]["node1"]["status"] == "online"
    assert esp["nodes"]["node1"]["heard"] is not None
    assert set(esp["meters"]) == {"node1/line1", "node1/house1", "node1/line2", "node1/house2"}
    assert set(whole["pairs"]) == {"House 1", "House 2"}
    await hass.config_entries.async_unload(entry.entry_id)
