"""After setup: a new pair label offers "New meter pair found"; a removed node goes stale."""

from __future__ import annotations

import json
from types import MappingProxyType
from typing import Any

import pytest
from homeassistant.config_entries import (
    SOURCE_IGNORE,
    SOURCE_INTEGRATION_DISCOVERY,
    ConfigSubentry,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component

from custom_components.smart_energy_meter import async_remove_config_entry_device
from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.fleet import foreign_protocol
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
from tests.mosquitto import Broker


def _discovery_flows(hass: HomeAssistant) -> list[Any]:
    return [
        flow
        for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN)
        if flow["context"]["source"] == SOURCE_INTEGRATION_DISCOVERY
    ]


async def test_new_pair_is_offered_and_added(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await wait_for(hass, lambda: len(_discovery_flows(hass)) == 1, "the discovery flow")
    flow = _discovery_flows(hass)[0]
    assert flow["step_id"] == "confirm_pair"
    assert flow["context"]["title_placeholders"] == {"name": "House 2"}
    assert flow["context"]["unique_id"] == f"{entry.entry_id}:node1/house2"
    # The same announce again (a node reconnecting) does not offer it twice.
    await node.announce()
    await hass.async_block_till_done()
    assert len(_discovery_flows(hass)) == 1

    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "pair_added"
    subentry = next(s for s in entry.subentries.values() if s.title == "House 2")
    assert subentry.unique_id == "node1/house2"
    assert dict(subentry.data) == HOUSE_2
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")
    await node.snapshot("house2", 12.5)
    await wait_state(hass, "sensor.house_2_power", "12.5")
    # Everything announced is paired now: nothing more is offered after the reload.
    assert _discovery_flows(hass) == []


async def test_a_node_that_removes_itself_withdraws_its_offers(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """An announcement flood followed by each node's empty announce leaves no flow behind."""
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    others = [TestNode(mosquitto, prefix, node=f"flood{index}") for index in range(20)]
    for other in others:
        await other.__aenter__()
    try:
        await node.announce()
        for other in others:
            await other.announce()
        # node1's house 2 and each flood node's two houses.
        await wait_for(hass, lambda: len(_discovery_flows(hass)) == 41, "the discovery flows")
        for other in others:
            await other.publish(f"{prefix}/{other.node}/announce", b"", retain=True)
        await wait_for(hass, lambda: len(_discovery_flows(hass)) == 1, "the withdrawals")
        assert _discovery_flows(hass)[0]["context"]["unique_id"] == (
            f"{entry.entry_id}:node1/house2"
        )
        # A node that comes back offers its pairs again.
        await others[0].announce()
        await wait_for(hass, lambda: len(_discovery_flows(hass)) == 3, "the offers again")
    finally:
        for other in others:
            await other.__aexit__(None, None, None)


async def test_ignored_pair_is_not_offered_again(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await wait_for(hass, lambda: len(_discovery_flows(hass)) == 1, "the discovery flow")
    flow = _discovery_flows(hass)[0]
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_IGNORE},
        data={"unique_id": flow["context"]["unique_id"], "title": "House 2"},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _discovery_flows(hass) == []
    # A restart of the entry sees the retained announce again; the ignored pair stays ignored.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")
    await wait_for(hass, lambda: "node1" in entry.runtime_data.fleet.nodes, "the announce")
    await hass.async_block_till_done()
    assert _discovery_flows(hass) == []
    assert len(entry.subentries) == 1


async def test_confirm_after_the_pair_was_added_another_way(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    data = {"entry_id": entry.entry_id, **HOUSE_2}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=data
    )
    assert result["step_id"] == "confirm_pair"
    assert result["description_placeholders"] == {
        "name": "House 2",
        "line": "node1/line2",
        "house": "node1/house2",
    }
    # Meanwhile the user added the same meters through "Add meter pair".
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType(HOUSE_2),
            subentry_type="meter_pair",
            title="House 2",
            unique_id="node1/line2+node1/house2",
        ),
    )
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    # And offering it again now aborts at once.
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=data
    )
    assert result["reason"] == "already_configured"
    await hass.async_block_till_done()


async def test_confirm_after_the_broker_entry_was_removed(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    data = {"entry_id": entry.entry_id, **HOUSE_2}
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=data
    )
    await hass.config_entries.async_remove(entry.entry_id)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_found"
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_INTEGRATION_DISCOVERY}, data=data
    )
    assert result["reason"] == "entry_not_found"


async def test_removed_node_goes_stale_and_can_be_deleted(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode, hass_ws_client: Any
) -> None:
    assert await async_setup_component(hass, "config", {})
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await node.snapshot("house1", 30.0)
    await wait_state(hass, "sensor.house_1_power", "30.0")
    devices = dr.async_get(hass)
    node_device = entry.runtime_data.node_devices["node1"]
    pair_device = next(iter(entry.runtime_data.pairs.values())).device_id
    client = await hass_ws_client(hass)

    async def remove(device_id: str) -> bool:
        await client.send_json_auto_id(
            {
                "type": "config/device_registry/remove",
                "device_id": device_id,
            }
        )
        response = await client.receive_json()
        return bool(response["success"])

    # While the node announces itself its device stays; a pair goes with its subentry.
    assert not await remove(node_device)
    assert not await remove(pair_device)

    await node.publish(f"{prefix}/node1/announce", b"", retain=True)
    await wait_state(hass, "sensor.house_1_power", "unavailable")
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"node_removed_{entry.entry_id}_node1")
    assert issue is not None
    assert issue.translation_key == "node_removed"
    assert issue.translation_placeholders == {"node": "node1"}
    # Never deleted silently: the device is still there until the user removes it.
    assert devices.async_get(node_device) is not None
    assert await remove(node_device)
    assert devices.async_get(node_device) is None
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"node_removed_{entry.entry_id}_node1") is None
    )
    # With the entry unloaded nothing says the node is alive: its device may go.
    assert await hass.config_entries.async_reload(entry.entry_id)
    node_device = entry.runtime_data.node_devices["node1"]
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await remove(node_device)
    assert devices.async_get(node_device) is None


async def test_returning_node_clears_the_issue(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await node.publish(f"{prefix}/node1/announce", b"", retain=True)
    issue_id = f"node_removed_{entry.entry_id}_node1"
    await wait_for(
        hass, lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None, "issue"
    )
    assert state_of(hass, "binary_sensor.pole_7_status") == "off"
    await node.announce()
    await wait_for(
        hass, lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None, "no issue"
    )
    await wait_state(hass, "binary_sensor.pole_7_status", "on")
    # An unknown node's removal raises nothing.
    await node.publish(f"{prefix}/node7/announce", b"", retain=False)
    await hass.async_block_till_done()
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"node_removed_{entry.entry_id}_node7") is None
    )


async def test_node_on_another_major_version(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    future = json.dumps({"proto": "2.1", "node": "node1", "interval": 1, "meters": []})
    issue_id = f"unsupported_protocol_{entry.entry_id}_node1"
    for _ in range(2):
        await node.publish(f"{prefix}/node1/announce", future, retain=True)
    await wait_for(
        hass, lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None, "issue"
    )
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders == {"node": "node1", "version": "2.1"}
    await node.status("online")
    nodes = entry.runtime_data.fleet.nodes
    await wait_for(hass, lambda: "node1" in nodes and nodes["node1"].online, "the status")
    lines = [r for r in caplog.records if "speaks protocol 2.1" in r.getMessage()]
    assert [r.getMessage() for r in lines] == [
        "Node node1 speaks protocol 2.1; this integration speaks 1.x"
    ]
    # Nothing of the foreign announce was taken.
    assert entry.runtime_data.fleet.nodes["node1"].announce is None
    await node.announce()
    await wait_for(
        hass, lambda: ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None, "no issue"
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (b'{"proto": "2.0"}', "2.0"),
        (b'{"proto": "10.3"}', "10.3"),
        (b'{"proto": "1.7"}', None),
        (b'{"proto": "x.1"}', None),
        (b'{"proto": 2}', None),
        (b'{"proto": "2.0000000000000000000"}', None),
        (b"[1, 2]", None),
        (b"{not json", None),
        (b"\xff\xfe", None),
    ],
)
def test_foreign_protocol(payload: bytes, expected: str | None) -> None:
    assert foreign_protocol(payload) == expected


async def test_a_node_device_goes_with_the_last_pair_that_used_it(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """Quality scale stale-devices: no node device stays behind its deleted houses."""
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    await node.announce()
    await node.publish(f"{prefix}/node1/announce", b"", retain=True)  # the node is retired
    await wait_for(
        hass,
        lambda: (
            ir.async_get(hass).async_get_issue(DOMAIN, f"node_removed_{entry.entry_id}_node1")
            is not None
        ),
        "the repair issue",
    )
    devices = dr.async_get(hass)
    node_device = entry.runtime_data.node_devices["node1"]
    subentries = list(entry.subentries)
    # One house left: the node still measures it, its device stays.
    assert hass.config_entries.async_remove_subentry(entry, subentries[0])
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")
    assert devices.async_get(node_device) is not None
    # The last one: the node's device goes with it, and so does its repair issue.
    assert hass.config_entries.async_remove_subentry(entry, subentries[1])
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")
    assert devices.async_get(node_device) is None
    assert dr.async_entries_for_config_entry(devices, entry.entry_id) == []
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"node_removed_{entry.entry_id}_node1") is None
    )


async def test_deleting_a_node_device_takes_every_issue_of_the_node_along(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """The protocol issue too, not only the removed and silent ones."""
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    future = json.dumps({"proto": "2.1", "node": "node1", "interval": 1, "meters": []})
    await node.publish(f"{prefix}/node1/announce", future, retain=True)
    issue_id = f"unsupported_protocol_{entry.entry_id}_node1"
    issues = ir.async_get(hass)
    await wait_for(hass, lambda: issues.async_get_issue(DOMAIN, issue_id) is not None, "issue")
    device = dr.async_get(hass).async_get(entry.runtime_data.node_devices["node1"])
    assert device is not None
    assert await async_remove_config_entry_device(hass, entry, device)
    assert issues.async_get_issue(DOMAIN, issue_id) is None


async def test_a_pair_named_like_another_is_added_with_its_node(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """A second node announcing "House 1" gets a pair named apart from the first one."""
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    async with TestNode(mosquitto, prefix, node="node2") as other:
        await other.announce(relays=())
        await wait_for(hass, lambda: len(_discovery_flows(hass)) == 2, "the discovery flows")
        flow = next(
            f
            for f in _discovery_flows(hass)
            if f["context"]["title_placeholders"]["name"] == "House 1"
        )
        result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
        assert result["reason"] == "pair_added"
        titles = sorted(s.title for s in entry.subentries.values())
        assert titles == ["House 1", "House 1 (node2)"]
        added = next(s for s in entry.subentries.values() if s.title == "House 1 (node2)")
        assert added.data["name"] == "House 1 (node2)"
        await hass.async_block_till_done()
        for leftover in _discovery_flows(hass):
            hass.config_entries.flow.async_abort(leftover["flow_id"])
