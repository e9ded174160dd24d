"""The actions exist from async_setup on, match services.yaml, and refuse what they cannot do
with a translated ServiceValidationError."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.setup import async_setup_component

from custom_components.smart_energy_meter.const import DOMAIN
from tests.integration.common import HOUSE_1, TestNode, make_entry, setup_entry, wait_for
from tests.mosquitto import Broker

COMPONENT = Path(__file__).parents[2] / "custom_components" / "smart_energy_meter"
SERVICES = yaml.safe_load((COMPONENT / "services.yaml").read_text())
STRINGS = json.loads((COMPONENT / "strings.json").read_text())


def _calls(device_id: str) -> list[tuple[str, dict[str, Any]]]:
    return [
        ("calibrate", {"device_id": device_id, "meter": "house", "voltage": 230.0}),
        ("clear_calibration", {"device_id": device_id}),
        ("start_commissioning", {"device_id": device_id}),
        ("finish_commissioning", {"device_id": device_id}),
    ]


async def test_actions_are_registered_without_any_entry(hass: HomeAssistant) -> None:
    assert await async_setup_component(hass, DOMAIN, {})
    assert hass.config_entries.async_entries(DOMAIN) == []
    assert set(hass.services.async_services_for_domain(DOMAIN)) == set(SERVICES)
    assert {name for name, _ in _calls("x")} == set(SERVICES)


async def _refused(hass: HomeAssistant, service: str, data: dict[str, Any]) -> str:
    with pytest.raises(ServiceValidationError) as raised:
        await hass.services.async_call(DOMAIN, service, data, blocking=True)
    assert raised.value.translation_domain == DOMAIN
    key = raised.value.translation_key
    assert key is not None
    assert key in STRINGS["exceptions"], key
    return key


async def test_actions_refuse_devices_they_cannot_act_on(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    runtime = entry.runtime_data
    await wait_for(hass, lambda: "node1" in runtime.node_devices, "the node's device")
    pair_device = next(iter(runtime.pairs.values())).device_id
    assert pair_device is not None
    keys = set()
    # Not a meter pair: an unknown id, and the ESP32's own device.
    for device_id in ("no-such-device", runtime.node_devices["node1"]):
        for service, data in _calls(device_id):
            keys.add(await _refused(hass, service, data))
    # A pair whose entry is not loaded.
    assert await hass.config_entries.async_unload(entry.entry_id)
    for service, data in _calls(pair_device):
        keys.add(await _refused(hass, service, data))
    assert len(keys) == 1
