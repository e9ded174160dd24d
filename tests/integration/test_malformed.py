"""The shared malformed vectors, published on the real broker, change no state and add nothing."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components.smart_energy_meter.semcore.protocol import Role
from tests.integration.common import (
    HOUSE_1,
    TestNode,
    make_entry,
    setup_entry,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker
from tests.vectors import load_vectors


def _snapshot(hass: HomeAssistant, entry_id: str) -> dict[str, Any]:
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry_id)
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry_id)
    states = {}
    for entity in entities:
        state = hass.states.get(entity.entity_id)
        states[entity.entity_id] = (state.state, dict(state.attributes)) if state else None
    return {
        "entities": sorted(e.entity_id for e in entities),
        "devices": sorted((d.id, d.name, d.sw_version, str(d.connections)) for d in devices),
        "states": states,
    }


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the IP address is off by default
async def test_malformed_vectors_change_nothing(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await node.relay_state("r1", "OFF")
    await node.snapshot("line1", 100.0, energy=2000.0)
    await node.snapshot("house1", 98.46, energy=1000.0)
    await wait_state(hass, "sensor.house_1_theft_percentage", "1.54")
    await wait_state(hass, "switch.house_1_relay", "off")
    await wait_state(hass, "sensor.pole_7_ip_address", "192.168.1.50")
    before = _snapshot(hass, entry.entry_id)
    pair = next(iter(entry.runtime_data.pairs.values()))
    node.confirm_relays = False  # a retained `set` reaches a live subscriber as a plain message

    published = 0
    for vector in load_vectors():
        if vector.reject is None or not vector.topic.startswith(vector.prefix + "/"):
            continue
        if "+" in vector.topic or "#" in vector.topic:
            continue  # MQTT cannot publish to a wildcard topic; the codec tests cover them
        topic = prefix + vector.topic[len(vector.prefix) :]
        await node.publish(topic, vector.payload, retain=vector.retained)
        published += 1
    assert published >= 35
    # Valid messages about meters and relays no pair uses change nothing either.
    await node.snapshot("house2", 5.0)
    await node.relay_state("r2", "ON")
    # Commands are for nodes: the integration does not even subscribe to them, and a command
    # handed to it anyway is ignored.
    entry.runtime_data.fleet.async_handle_message(f"{prefix}/node1/relay/r1/set", b"ON", False)
    entry.runtime_data.fleet.async_handle_message(f"{prefix}/node1/line1/reset_energy", b"", False)

    # A valid reading after the junk: once it is in, everything before it was handled.
    samples = pair.meters[Role.LINE].samples
    await node.snapshot("line1", 100.0, energy=2000.0)
    await wait_for(hass, lambda: pair.meters[Role.LINE].samples > samples, "the marker reading")
    after = _snapshot(hass, entry.entry_id)
    for entity_id, state in before["states"].items():
        assert after["states"][entity_id] == state, entity_id
    assert after == before
    assert pair.meters[Role.HOUSE].energy.value == 1000.0
    assert set(entry.runtime_data.fleet.meters) == {"node1/line1", "node1/house1"}
    assert list(entry.runtime_data.fleet.relays) == [("node1", "r1")]
