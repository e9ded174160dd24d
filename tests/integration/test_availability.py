"""Unavailable, never a fake 0: LWT offline, broker down, a silent node, a PZEM error."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import timedelta

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.smart_energy_meter.hub import NotConnectedError
from custom_components.smart_energy_meter.semcore.protocol import state_topic
from tests.integration.common import (
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker

HOUSE_ENTITIES = (
    "sensor.house_1_voltage",
    "sensor.house_1_current",
    "sensor.house_1_power",
    "sensor.house_1_power_factor",
    "sensor.house_1_frequency",
    "sensor.house_1_energy",
)


async def _running(hass: HomeAssistant, broker: Broker, prefix: str, node: TestNode) -> None:
    entry = make_entry(hass, broker, prefix)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await node.relay_state("r1", "OFF")
    await node.snapshot("line1", 100.0)
    await node.snapshot("house1", 99.04)
    await wait_state(hass, "sensor.house_1_theft_percentage", "0.96")
    await wait_state(hass, "switch.house_1_relay", "off")


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the reset button is off by default
async def test_node_offline_makes_everything_unavailable_then_recovers(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    await _running(hass, mosquitto, prefix, node)
    await node.status("offline")  # what the broker publishes as the node's last will
    await wait_state(hass, "sensor.house_1_power", STATE_UNAVAILABLE)
    for entity_id in (
        *HOUSE_ENTITIES,
        "sensor.house_1_line_power",
        "sensor.house_1_theft_percentage",
        "switch.house_1_relay",
        "button.house_1_reset_energy",
    ):
        assert state_of(hass, entity_id) == STATE_UNAVAILABLE, entity_id
    # The balance's verdict is not lost with the node: an alarm must outlive an unplugged node.
    assert state_of(hass, "binary_sensor.house_1_theft") != STATE_UNAVAILABLE
    assert state_of(hass, "sensor.house_1_detection_status") != STATE_UNAVAILABLE
    assert state_of(hass, "binary_sensor.pole_7_status") == "off"

    await node.status("online")
    await wait_state(hass, "binary_sensor.pole_7_status", "on")
    await node.snapshot("line1", 100.0)
    await node.snapshot("house1", 98.46)
    await wait_state(hass, "sensor.house_1_theft_percentage", "1.54")
    assert state_of(hass, "sensor.house_1_power") == "98.46"
    assert state_of(hass, "switch.house_1_relay") == "off"


async def test_silent_node_goes_unavailable_after_three_intervals(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, "custom_components.smart_energy_meter")
    await _running(hass, mosquitto, prefix, node)
    # The node announced a 1 s interval: 2 s of silence is still fine, 3 s is not.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=2.0))
    await hass.async_block_till_done()
    assert state_of(hass, "sensor.house_1_power") == "99.04"
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=3.5))
    await hass.async_block_till_done()
    for entity_id in (*HOUSE_ENTITIES, "sensor.house_1_theft_percentage"):
        assert state_of(hass, entity_id) == STATE_UNAVAILABLE, entity_id
    # The node itself is still online, so its relay stays usable.
    assert state_of(hass, "switch.house_1_relay") == "off"

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=10.0))
    await hass.async_block_till_done()

    await node.snapshot("house1", 99.04)
    await wait_state(hass, "sensor.house_1_power", "99.04")
    assert state_of(hass, "sensor.house_1_line_power") == STATE_UNAVAILABLE
    await node.snapshot("line1", 100.0)
    await wait_state(hass, "sensor.house_1_theft_percentage", "0.96")
    # Quality scale log-when-unavailable: one line when a meter goes, one when it is back.
    for meter in ("node1/house1", "node1/line1"):
        lines = [r for r in caplog.records if r.getMessage().startswith(f"Meter {meter} ")]
        assert [(r.levelno, r.getMessage()) for r in lines] == [
            (logging.INFO, f"Meter {meter} is unavailable: nothing heard for 3 s"),
            (logging.INFO, f"Meter {meter} is heard again"),
        ]


async def test_pzem_error_form_is_unavailable_not_zero(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    await _running(hass, mosquitto, prefix, node)
    for seq in (99, 100):  # the same error twice: still unavailable
        error = f'{{"seq": {seq}, "ts": {time.time()}, "error": "timeout"}}'
        await node.publish(state_topic(prefix, "node1", "house1"), error, retain=True)
    await wait_state(hass, "sensor.house_1_power", STATE_UNAVAILABLE)
    for entity_id in (*HOUSE_ENTITIES, "sensor.house_1_theft_percentage"):
        assert state_of(hass, entity_id) == STATE_UNAVAILABLE, entity_id
    assert state_of(hass, "sensor.house_1_line_power") == "100.0"
    await node.snapshot("house1", 99.04)
    await wait_state(hass, "sensor.house_1_power", "99.04")


async def test_broker_loss_is_logged_once_and_recovers(
    hass: HomeAssistant, own_mosquitto: Broker, prefix: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="custom_components.smart_energy_meter")
    async with TestNode(own_mosquitto, prefix) as node:
        await _running(hass, own_mosquitto, prefix, node)
        entry = hass.config_entries.async_entries("smart_energy_meter")[0]
        own_mosquitto.stop()
        await wait_state(hass, "sensor.house_1_power", STATE_UNAVAILABLE)
    assert state_of(hass, "switch.house_1_relay") == STATE_UNAVAILABLE
    assert state_of(hass, "sensor.house_1_theft_percentage") == STATE_UNAVAILABLE
    assert state_of(hass, "binary_sensor.pole_7_status") == STATE_UNAVAILABLE
    with pytest.raises(NotConnectedError):
        await entry.runtime_data.hub.async_publish(f"{prefix}/x", b"")
    # Several reconnect attempts fail (backoff 0.05..0.2 s in tests): one line only.
    await _sleep(hass, 0.8)
    lost = [r for r in caplog.records if "is unavailable" in r.getMessage()]
    assert len(lost) == 1
    assert lost[0].levelno == logging.INFO

    own_mosquitto.start()
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reconnection")
    back = [r for r in caplog.records if "available again" in r.getMessage()]
    assert len(back) == 1
    assert back[0].levelno == logging.INFO
    async with TestNode(own_mosquitto, prefix) as node:
        # The restarted broker kept nothing (no persistence): the node re-publishes.
        await node.announce()
        await node.status("online")
        await node.snapshot("line1", 100.0)
        await node.snapshot("house1", 82.23)
        await wait_state(hass, "sensor.house_1_theft_percentage", "17.77")
        assert state_of(hass, "sensor.house_1_power") == "82.23"
    await hass.config_entries.async_unload(entry.entry_id)


async def _sleep(hass: HomeAssistant, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await hass.async_block_till_done()


async def test_invalid_stored_ca_fails_setup(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto, prefix)
    hass.config_entries.async_update_entry(entry, data={**entry.data, "tls": True, "ca_cert": "x"})
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason == "The stored CA certificate is not a valid PEM certificate"
