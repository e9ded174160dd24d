"""Relay and reset-energy commands against a test node; the energy counter never runs back."""

from __future__ import annotations

import asyncio
import logging
from unittest.mock import patch

import aiomqtt
import pytest
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.pair import PairRuntime
from tests.integration.common import (
    EVERY_READING,
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker


async def _setup(hass: HomeAssistant, broker: Broker, prefix: str, node: TestNode) -> PairRuntime:
    entry = make_entry(hass, broker, prefix, options=EVERY_READING)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await wait_state(hass, "binary_sensor.pole_7_status", "on")
    return next(iter(entry.runtime_data.pairs.values()))


async def _retained(broker: Broker, topic: str) -> list[bytes]:
    """Messages a brand-new subscriber gets for a filter right away: the retained ones."""
    received: list[bytes] = []
    async with aiomqtt.Client(broker.host, broker.port) as client:
        await client.subscribe(topic, qos=1)
        try:
            async with asyncio.timeout(0.3):
                async for message in client.messages:
                    received.append(message.payload)
        except TimeoutError:
            pass
    return received


async def test_relay_round_trip(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    await _setup(hass, mosquitto, prefix, node)
    # No state confirmed yet: unknown, not off.
    assert state_of(hass, "switch.house_1_relay") == STATE_UNKNOWN
    await hass.services.async_call(
        "switch", "turn_on", {ATTR_ENTITY_ID: "switch.house_1_relay"}, blocking=True
    )
    # The service returns only after the node's confirmation.
    assert state_of(hass, "switch.house_1_relay") == "on"
    await hass.services.async_call(
        "switch", "turn_off", {ATTR_ENTITY_ID: "switch.house_1_relay"}, blocking=True
    )
    assert state_of(hass, "switch.house_1_relay") == "off"
    assert node.relay_commands == [("r1", b"ON"), ("r1", b"OFF")]
    # Commands are never retained: a reconnecting node must not replay them.
    assert await _retained(mosquitto, f"{prefix}/node1/relay/+/set") == []
    assert await _retained(mosquitto, f"{prefix}/node1/relay/r1/state") == [b"OFF"]


async def test_relay_timeout_keeps_the_confirmed_state(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    await _setup(hass, mosquitto, prefix, node)
    await node.relay_state("r1", "OFF")
    await wait_state(hass, "switch.house_1_relay", "off")
    node.confirm_relays = False

    async def confirm_the_old_state() -> None:
        # A read-back of the other state does not count as the confirmation.
        await asyncio.sleep(0.1)
        await node.relay_state("r1", "OFF")

    with (
        patch("custom_components.smart_energy_meter.pair.RELAY_TIMEOUT", 0.3),
        pytest.raises(HomeAssistantError) as raised,
    ):
        await asyncio.gather(
            hass.services.async_call(
                "switch", "turn_on", {ATTR_ENTITY_ID: "switch.house_1_relay"}, blocking=True
            ),
            confirm_the_old_state(),
        )
    assert raised.value.translation_domain == DOMAIN
    assert raised.value.translation_key == "relay_timeout"
    assert raised.value.translation_placeholders == {
        "name": "House 1",
        "state": "ON",
        "timeout": "0.3",
    }
    assert str(raised.value) == (
        "House 1: the node did not confirm the relay ON within 0.3 s; "
        "the relay shows the last confirmed state"
    )
    assert node.relay_commands == [("r1", b"ON")]
    assert state_of(hass, "switch.house_1_relay") == "off"
    # A confirmation that arrives late is still shown: the state is what the node reports.
    await node.relay_state("r1", "ON")
    await wait_state(hass, "switch.house_1_relay", "on")


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the reset button is off by default
async def test_commands_refused_while_the_node_is_offline(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    pair = await _setup(hass, mosquitto, prefix, node)
    await node.status("offline")
    await wait_state(hass, "switch.house_1_relay", STATE_UNAVAILABLE)
    assert state_of(hass, "button.house_1_reset_energy") == STATE_UNAVAILABLE
    with pytest.raises(HomeAssistantError) as raised:
        await pair.async_set_relay(True)
    assert raised.value.translation_key == "node_unavailable"
    with pytest.raises(HomeAssistantError) as raised:
        await pair.async_reset_energy()
    assert raised.value.translation_key == "node_unavailable"
    await asyncio.sleep(0.1)
    assert node.relay_commands == []
    assert node.reset_commands == []


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the reset button is off by default
async def test_reset_energy_and_counter_guard(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await _setup(hass, mosquitto, prefix, node)
    await node.snapshot("house1", 50.0, energy=5000.0)
    await wait_state(hass, "sensor.house_1_energy", "5.0")
    # A drop without a reset is a glitch: logged, ignored, the counter holds.
    await node.snapshot("house1", 51.0, energy=4000.0)
    await wait_state(hass, "sensor.house_1_power", "51.0")
    assert state_of(hass, "sensor.house_1_energy") == "5.0"
    assert any(
        r.levelno == logging.WARNING
        and "went from 5000.0 Wh to 4000.0 Wh, more than the meter can measure" in r.getMessage()
        for r in caplog.records
    )
    await node.snapshot("house1", 51.5, energy=4001.0)
    await wait_state(hass, "sensor.house_1_power", "51.5")
    assert state_of(hass, "sensor.house_1_energy") == "5.0"
    drops = [r for r in caplog.records if "more than the meter can measure" in r.getMessage()]
    assert len(drops) == 1  # logged once, not on every reading
    await node.snapshot("house1", 52.0, energy=5001.0)
    await wait_state(hass, "sensor.house_1_energy", "5.001")

    await hass.services.async_call(
        "button", "press", {ATTR_ENTITY_ID: "button.house_1_reset_energy"}, blocking=True
    )
    await wait_for(hass, lambda: len(node.reset_commands) == 2, "both reset commands")
    assert sorted(node.reset_commands) == ["house1", "line1"]
    assert await _retained(mosquitto, f"{prefix}/node1/+/reset_energy") == []
    # The node's next snapshot carries the new, lower counter: a real reset.
    await node.snapshot("house1", 52.0, energy=300.0)
    await wait_state(hass, "sensor.house_1_energy", "0.3")


async def test_a_replaced_meter_is_followed_without_its_jump(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A new PZEM starts at 0: the total goes on from 5 kWh, so the Energy dashboard counts
    neither a reset nor the old counter again."""
    await _setup(hass, mosquitto, prefix, node)
    await node.snapshot("house1", 50.0, energy=5000.0)
    await wait_state(hass, "sensor.house_1_energy", "5.0")
    for power, energy in ((50.1, 0.0), (50.2, 1.0)):  # the replaced PZEM
        await node.snapshot("house1", power, energy=energy)
        await wait_state(hass, "sensor.house_1_power", str(power))
        assert state_of(hass, "sensor.house_1_energy") == "5.0"
    await node.snapshot("house1", 50.3, energy=2.0)
    await wait_state(hass, "sensor.house_1_energy", "5.002")
    assert "goes on from 2.0 Wh (was 5000.0 Wh): a replaced or reset meter" in caplog.text
    await node.snapshot("house1", 50.4, energy=3.0)
    await wait_state(hass, "sensor.house_1_energy", "5.003")
