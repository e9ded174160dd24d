"""A node Home Assistant hears nothing from after setup: a repair issue a user can act on (the
broker dropping the node's messages looks exactly like this), gone once something arrives."""

from __future__ import annotations

from datetime import timedelta

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.smart_energy_meter.const import DOMAIN
from tests.integration.common import HOUSE_1, TestNode, make_entry, setup_entry, wait_for
from tests.mosquitto import Broker


def _unheard(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"node_unheard_{entry.entry_id}_node1")


def _nothing(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"nothing_heard_{entry.entry_id}")


async def _after(hass: HomeAssistant, minutes: float) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=minutes))
    await hass.async_block_till_done()


async def test_a_paired_node_never_heard_raises_an_issue_until_it_speaks(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await _after(hass, 9)
    assert _unheard(hass, entry) is None
    await _after(hass, 11)
    issue = _unheard(hass, entry)
    assert issue is not None
    assert issue.translation_key == "node_unheard"
    assert issue.translation_placeholders == {"node": "node1", "minutes": "10", "prefix": prefix}
    assert issue.severity is ir.IssueSeverity.WARNING
    assert _nothing(hass, entry) is None  # the entry's pairs name their node
    said = [r for r in caplog.records if "Nothing arrived from node node1" in r.getMessage()]
    assert len(said) == 1
    # Later looks say nothing more.
    await _after(hass, 13)
    said = [r for r in caplog.records if "Nothing arrived from node node1" in r.getMessage()]
    assert len(said) == 1

    await node.status("online")
    await wait_for(hass, lambda: _unheard(hass, entry) is None, "the issue to go")
    await hass.config_entries.async_unload(entry.entry_id)


async def test_retained_messages_of_a_node_are_something_heard(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    # A node that worked before and is down now: the broker kept its announce and last will.
    await node.announce()
    await node.status("offline")
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await _after(hass, 11)
    assert _unheard(hass, entry) is None  # the day-long silence issue is the one for it
    await hass.config_entries.async_unload(entry.entry_id)


async def test_an_entry_without_pairs_that_hears_no_node(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[])
    await setup_entry(hass, entry)
    await _after(hass, 11)
    issue = _nothing(hass, entry)
    assert issue is not None
    assert issue.translation_key == "nothing_heard"
    assert issue.translation_placeholders == {"minutes": "10", "prefix": prefix}
    # A node appears: the next look (each minute) clears the issue.
    await node.announce()
    await wait_for(hass, lambda: "node1" in entry.runtime_data.fleet.nodes, "the announce")
    await _after(hass, 12)
    assert _nothing(hass, entry) is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_the_entry_issue_goes_with_the_entry(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[])
    await setup_entry(hass, entry)
    await _after(hass, 11)
    assert _nothing(hass, entry) is not None
    await hass.config_entries.async_remove(entry.entry_id)
    assert _nothing(hass, entry) is None


async def test_issues_left_by_a_previous_run_are_cleared(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[])
    await setup_entry(hass, entry)
    await _after(hass, 11)
    assert _nothing(hass, entry) is not None
    # Reloaded (a restart, a changed option): the issue stays until this run hears a node.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reconnection")
    assert _nothing(hass, entry) is not None
    await node.announce()
    await wait_for(hass, lambda: "node1" in entry.runtime_data.fleet.nodes, "the announce")
    await _after(hass, 22)
    assert _nothing(hass, entry) is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_paired_node_left_unheard_by_a_previous_run(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await _after(hass, 11)
    assert _unheard(hass, entry) is not None
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reconnection")
    await node.status("online")
    await wait_for(hass, lambda: _unheard(hass, entry) is None, "the issue to go")
    await hass.config_entries.async_unload(entry.entry_id)
