"""Node health for the user: offline/online said once, a repair issue after a silent day."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.smart_energy_meter.const import DOMAIN
from tests.integration.common import (
    HOUSE_1,
    TestNode,
    make_entry,
    setup_entry,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker


def _issue(hass: HomeAssistant, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"node_silent_{entry.entry_id}_node1")


def _after(hass: HomeAssistant, hours: float) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(hours=hours))


async def _running(hass: HomeAssistant, broker: Broker, prefix: str, node: TestNode) -> Any:
    entry = make_entry(hass, broker, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await node.snapshot("house1", 30.0)
    await wait_state(hass, "sensor.house_1_power", "30.0")
    return entry


async def test_a_silent_day_raises_an_issue_until_the_node_speaks(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await _running(hass, mosquitto, prefix, node)
    assert entry.runtime_data.fleet.nodes["node1"].heard is not None
    _after(hass, 23)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is None

    _after(hass, 25)
    await hass.async_block_till_done()
    issue = _issue(hass, entry)
    assert issue is not None
    assert issue.translation_key == "node_silent"
    assert issue.translation_placeholders == {"node": "node1", "hours": "24", "prefix": prefix}
    assert issue.severity is ir.IssueSeverity.WARNING
    assert not issue.is_fixable
    silent = [r for r in caplog.records if "has not been heard from" in r.getMessage()]
    assert len(silent) == 1

    # The node's birth message (status online) clears it at once.
    await node.status("online")
    await wait_for(hass, lambda: _issue(hass, entry) is None, "the issue to go")
    assert any("heard from again" in r.getMessage() for r in caplog.records)

    # Another silent day; this time only a reading arrives: the next look clears the issue.
    _after(hass, 49)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is not None
    await node.snapshot("house1", 31.0)
    await wait_state(hass, "sensor.house_1_power", "31.0")
    _after(hass, 50)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_retained_replays_and_the_last_will_are_not_the_node_speaking(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    # Everything is retained before Home Assistant subscribes, then the broker says "offline".
    await node.announce()
    await node.status("offline")
    await node.snapshot("house1", 30.0)
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    nodes = entry.runtime_data.fleet.nodes
    await wait_for(hass, lambda: "node1" in nodes and nodes["node1"].announce is not None, "replay")
    assert nodes["node1"].heard is None
    await node.status("offline")  # live, but it is the broker speaking for a dead node
    await hass.async_block_till_done()
    assert nodes["node1"].heard is None
    _after(hass, 25)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is not None
    await node.snapshot("house1", 30.5)
    await wait_for(hass, lambda: nodes["node1"].heard is not None, "a live reading")
    await hass.config_entries.async_unload(entry.entry_id)


async def test_no_issue_while_the_broker_is_away(
    hass: HomeAssistant, own_mosquitto: Broker, prefix: str
) -> None:
    async with TestNode(own_mosquitto, prefix) as node:
        entry = await _running(hass, own_mosquitto, prefix, node)
    own_mosquitto.stop()
    await wait_state(hass, "sensor.house_1_power", "unavailable")
    _after(hass, 25)
    await hass.async_block_till_done()
    # The node could not be heard: that is the broker's outage, already logged, not the node's.
    assert _issue(hass, entry) is None
    own_mosquitto.start()
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reconnection")
    # Its day starts again at the reconnection.
    _after(hass, 23)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is None
    _after(hass, 25)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is not None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_silent_node_can_be_deleted(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode, hass_ws_client: Any
) -> None:
    assert await async_setup_component(hass, "config", {})
    entry = await _running(hass, mosquitto, prefix, node)
    node_device = entry.runtime_data.node_devices["node1"]
    client = await hass_ws_client(hass)

    async def remove() -> bool:
        await client.send_json_auto_id(
            {"type": "config/device_registry/remove", "device_id": node_device}
        )
        return bool((await client.receive_json())["success"])

    # Announced and used by a pair: it stays.
    assert not await remove()
    _after(hass, 25)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is not None
    # Silent for a day, its retained announce notwithstanding: the user may delete it.
    assert await remove()
    assert _issue(hass, entry) is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_offline_and_back_are_logged_once_each(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.smart_energy_meter")
    entry = await _running(hass, mosquitto, prefix, node)
    for _ in range(3):
        await node.status("offline")
    await wait_state(hass, "sensor.house_1_power", "unavailable")
    await node.announce()  # a node change that is no status change
    for _ in range(2):
        await node.status("online")
    await wait_state(hass, "binary_sensor.pole_7_status", "on")
    await node.status("online")
    await hass.async_block_till_done()
    messages = [r.getMessage() for r in caplog.records if r.name.endswith("node_watch")]
    assert messages == [
        "Node node1 is offline; its meters are unavailable",
        "Node node1 is online again",
    ]
    assert all(r.levelno == logging.INFO for r in caplog.records if r.name.endswith("node_watch"))
    await hass.config_entries.async_unload(entry.entry_id)


async def test_a_pzem_that_stops_answering_is_logged_once_and_when_back(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.smart_energy_meter")
    entry = await _running(hass, mosquitto, prefix, node)
    for seq in (10, 11, 12):
        error = f'{{"seq": {seq}, "ts": {time.time()}, "error": "timeout"}}'
        await node.publish(f"{prefix}/node1/house1/state", error)
    await wait_state(hass, "sensor.house_1_power", "unavailable")
    await node.snapshot("house1", 33.0)
    await wait_state(hass, "sensor.house_1_power", "33.0")
    messages = [r.getMessage() for r in caplog.records if r.name.endswith(".meters")]
    assert messages == [
        "Meter node1/house1 is unavailable: the node reports timeout",
        "Meter node1/house1 answers again",
    ]
    await hass.config_entries.async_unload(entry.entry_id)


async def test_deleting_the_entry_takes_its_issues_along(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await _running(hass, mosquitto, prefix, node)
    other = make_entry(hass, mosquitto, f"{prefix}b", pairs=[])
    ir.async_create_issue(
        hass,
        DOMAIN,
        f"node_removed_{other.entry_id}_node9",
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key="node_removed",
        translation_placeholders={"node": "node9"},
    )
    _after(hass, 25)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is not None
    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert _issue(hass, entry) is None
    remaining = ir.async_get(hass).async_get_issue(DOMAIN, f"node_removed_{other.entry_id}_node9")
    assert remaining is not None


async def test_silence_is_measured_from_the_last_live_message(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """In real time, with a day shortened to 0.4 s: readings keep the issue away."""
    with (
        patch("custom_components.smart_energy_meter.node_watch.SILENT_AFTER", 0.4),
        patch("custom_components.smart_energy_meter.node_watch.RECHECK", 0.1),
    ):
        entry = await _running(hass, mosquitto, prefix, node)
        for step in range(8):  # 0.8 s of readings every 0.1 s: twice the silence limit
            await node.snapshot("house1", 30.0 + step)
            await _sleep(hass, 0.1)
        assert _issue(hass, entry) is None
        await wait_for(hass, lambda: _issue(hass, entry) is not None, "the issue", within=2.0)
        # Still silent at the next looks: the issue stays.
        await _sleep(hass, 0.3)
        assert _issue(hass, entry) is not None
        await node.snapshot("house1", 40.0)
        await wait_for(hass, lambda: _issue(hass, entry) is None, "the issue to go", within=2.0)
        await hass.config_entries.async_unload(entry.entry_id)


async def _sleep(hass: HomeAssistant, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await hass.async_block_till_done()
