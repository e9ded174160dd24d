"""The hub hands each message on as the client reads it: a handler that fails on one message
logs it, and neither the connection nor the messages after it are lost."""

from __future__ import annotations

import logging
from unittest.mock import patch

import pytest
from homeassistant.core import HomeAssistant

from tests.integration.common import EVERY_READING, TestNode, setup_with_node_online, wait_state
from tests.mosquitto import Broker


async def test_a_failing_message_loses_neither_the_connection_nor_the_next_ones(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await setup_with_node_online(hass, mosquitto, prefix, node, EVERY_READING)
    await node.snapshot("line1", 100.0)
    await wait_state(hass, "sensor.house_1_line_power", "100.0")
    hub = entry.runtime_data.hub
    fleet = entry.runtime_data.fleet
    connection_changes: list[bool] = []
    stop = hub.async_add_listener(lambda: connection_changes.append(hub.connected))
    failing_topic = f"{prefix}/node1/line1/state"

    def fail_on_line(topic: str, payload: bytes, retained: bool) -> None:
        if topic == failing_topic:
            raise RuntimeError("handler failed")
        fleet.async_handle_message(topic, payload, retained)

    with (
        caplog.at_level(logging.ERROR, logger="custom_components.smart_energy_meter"),
        patch.object(hub, "_on_message", fail_on_line),
    ):
        await node.snapshot("line1", 140.0)
        await node.snapshot("house1", 99.0)
        await wait_state(hass, "sensor.house_1_power", "99.0")
    assert f"Error handling a message on {failing_topic}" in caplog.text
    # The failed reading changed nothing; the one after it on the same topic is taken.
    assert hass.states.get("sensor.house_1_line_power").state == "100.0"  # type: ignore[union-attr]
    await node.snapshot("line1", 101.0)
    await wait_state(hass, "sensor.house_1_line_power", "101.0")
    assert hub.connected
    assert connection_changes == []  # no reconnect
    stop()
