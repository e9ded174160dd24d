"""Pairs that come, change and go at runtime: a node's pair is offered, and once accepted its
devices and entities exist without the user doing anything else; renamed, removed or with new
options, nothing is reloaded, and the houses already there keep working and detecting."""

from __future__ import annotations

from types import MappingProxyType
from typing import Any

from homeassistant.config_entries import (
    SOURCE_INTEGRATION_DISCOVERY,
    SOURCE_RECONFIGURE,
    ConfigSubentry,
)
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.smart_energy_meter.const import (
    DOMAIN,
    EVENT_THEFT_CLEARED,
    EVENT_THEFT_DETECTED,
    SUBENTRY_PAIR,
)
from custom_components.smart_energy_meter.semcore.protocol import MeterInfo, Role
from tests.integration.common import (
    HOUSE_1,
    HOUSE_2,
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.feeder import BYPASS, HONEST, LINE, Feeder
from tests.integration.test_subentry_flow import _suggested
from tests.mosquitto import Broker

SHOP = (
    MeterInfo("line1", Role.LINE, "shop", 1),
    MeterInfo("house1", Role.HOUSE, "shop", 2),
)


async def test_a_new_node_gets_its_devices_and_entities(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    assert (
        devices.async_get_device_by_identifier(
            (DOMAIN, f"{entry.entry_id}_node_node2"), entry.entry_id
        )
        is None
    )

    async with TestNode(mosquitto, prefix, node="node2") as shop_node:
        await shop_node.announce(
            name="Shop pole",
            mac="24:6f:28:00:00:02",
            ip="192.168.1.51",
            meters=SHOP,
            relays=(),
            pair_names={"shop": "Shop"},
        )
        await shop_node.status("online")

        def offered() -> list[dict[str, object]]:
            return [
                dict(flow)
                for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
                if flow["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
                # node1's second house is offered too; this is about the shop
                and flow["context"]["title_placeholders"] == {"name": "Shop"}
            ]

        await wait_for(hass, lambda: len(offered()) == 1, "the offered pair")
        result = await hass.config_entries.flow.async_configure(offered()[0]["flow_id"], {})
        assert result["type"] is FlowResultType.ABORT
        assert result["reason"] == "pair_added"

        await wait_for(
            hass,
            lambda: entry.runtime_data.hub.connected and len(entry.runtime_data.pairs) == 2,
            "the entry with the new pair",
        )
        esp = devices.async_get_device_by_identifier(
            (DOMAIN, f"{entry.entry_id}_node_node2"), entry.entry_id
        )
        assert esp is not None
        await wait_for(
            hass,
            lambda: getattr(devices.async_get(esp.id), "name", None) == "Shop pole",
            "the node's announced name",
        )
        shop = next(p for p in entry.runtime_data.pairs.values() if p.name == "Shop")
        shop_device = devices.async_get(shop.device_id or "")
        assert shop_device is not None
        assert shop_device.via_device_id == esp.id
        await shop_node.snapshot("house1", 250.0)
        await wait_state(hass, "sensor.shop_power", "250.0")
        assert entities.async_get("sensor.shop_theft_percentage") is not None
        await wait_for(
            hass,
            lambda: entities.async_get("binary_sensor.shop_pole_status") is not None,
            "the node's diagnostic entities",
        )
    # The house that was there before still reads its meters.
    await node.snapshot("house1", 55.5)
    await wait_state(hass, "sensor.house_1_power", "55.5")
    await hass.config_entries.async_unload(entry.entry_id)


def _unavailable_writes(hass: HomeAssistant, prefix: str) -> list[str]:
    """Entities whose id starts with `prefix` (any platform) written as unavailable from now."""
    written: list[str] = []

    def record(event: Event[Any]) -> None:
        entity_id: str = event.data["entity_id"]
        state = event.data["new_state"]
        if entity_id.split(".", 1)[1].startswith(prefix) and (
            state is None or state.state == STATE_UNAVAILABLE
        ):
            written.append(entity_id)

    hass.bus.async_listen("state_changed", record)
    return written


async def test_pairs_renamed_added_and_removed_without_a_reload(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """House 2 is in theft all along: its entities are never unavailable, its windows go on
    closing, and its theft is not announced again, whatever happens to house 1."""
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    runtime = entry.runtime_data
    house_2 = Feeder(hass, entry, node, 2)
    await house_2.run(35, LINE, HONEST)
    await house_2.run(62, LINE, BYPASS)
    await wait_state(hass, "binary_sensor.house_2_theft", "on")
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    cleared = async_capture_events(hass, EVENT_THEFT_CLEARED)
    gone = _unavailable_writes(hass, "house_2_")
    devices = dr.async_get(hass)
    entities = er.async_get(hass)

    async def house_2_goes_on() -> None:
        window = house_2.pair.evaluation.window
        await house_2.run(20, LINE, BYPASS)  # a window closes, even one begun afresh
        assert house_2.pair.evaluation.window != window
        assert state_of(hass, "binary_sensor.house_2_theft") == "on"

    # Renamed: the device's name changes, its entity ids do not.
    house_1 = next(s for s in entry.subentries.values() if s.title == "House 1")
    pair_1 = runtime.pairs[house_1.subentry_id]
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_PAIR),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": house_1.subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _suggested(result["data_schema"]) | {"name": "Rumah 1"}
    )
    assert result["reason"] == "reconfigure_successful"
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime
    assert runtime.pairs[house_1.subentry_id] is pair_1
    device = devices.async_get(pair_1.device_id or "")
    assert device is not None
    assert device.name == "Rumah 1"
    power = hass.states.get("sensor.house_1_power")
    assert power is not None
    assert power.attributes["friendly_name"] == "Rumah 1 Power"
    await house_2_goes_on()

    # Removed: its device, entities and runtime go; the node stays (house 2 uses it).
    assert hass.config_entries.async_remove_subentry(entry, house_1.subentry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime
    assert house_1.subentry_id not in runtime.pairs
    assert devices.async_get(pair_1.device_id or "") is None
    assert entities.async_get("sensor.house_1_power") is None
    assert hass.states.get("sensor.house_1_power") is None
    assert devices.async_get_device_by_identifier(
        (DOMAIN, f"{entry.entry_id}_node_node1"), entry.entry_id
    )
    await house_2_goes_on()

    # Added again: its devices and entities come, and its meters are read.
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType(HOUSE_1),
            subentry_type=SUBENTRY_PAIR,
            title="House 1",
            unique_id="node1/house1",
        ),
    )
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime
    added = next(p for p in runtime.pairs.values() if p.config.pair == "house1")
    await node.snapshot("house1", 55.5)
    await wait_state(hass, "sensor.house_1_power", "55.5")
    assert added.device_id is not None
    await house_2_goes_on()

    # Options: the thresholds of every pair change in place.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    options = _suggested(result["data_schema"]) | {"threshold_mode": "fixed", "threshold": 5.0}
    result = await hass.config_entries.options.async_configure(result["flow_id"], options)
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime
    assert house_2.pair.engine.config.uncertainty.mode == "fixed"
    assert added.engine.config.uncertainty.fixed_pct == 5.0
    await house_2_goes_on()

    assert gone == []
    assert detected == []
    assert cleared == []


async def test_a_pair_switched_to_the_paper_rule_follows_it_without_a_reload(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """Its entities are made again (its theft sensor now moves with every reading); the other
    pair's are untouched."""
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    runtime = entry.runtime_data
    gone = _unavailable_writes(hass, "house_2_")
    house_1 = next(s for s in entry.subentries.values() if s.title == "House 1")
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_PAIR),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": house_1.subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], _suggested(result["data_schema"]) | {"detection": "paper"}
    )
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime
    feeder = Feeder(hass, entry, node, 1)
    assert not feeder.pair.follows_balance
    await feeder.run(14, LINE, BYPASS)  # the paper rule's 10 s debounce, long before a window
    await wait_state(hass, "binary_sensor.house_1_theft", "on")
    assert gone == []
