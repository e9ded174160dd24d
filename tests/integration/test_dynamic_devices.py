"""A node that appears at runtime: its pair is offered, and once accepted its devices and entities
exist without the user doing anything else; the houses already there keep working."""

from __future__ import annotations

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.semcore.protocol import MeterInfo, Role
from tests.integration.common import (
    HOUSE_1,
    TestNode,
    make_entry,
    setup_entry,
    wait_for,
    wait_state,
)
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
