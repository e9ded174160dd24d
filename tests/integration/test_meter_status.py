"""Why a meter is unavailable: the error its node reports (with the node's words), the node
being offline, or nothing heard; never a stale reading in its place."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.smart_energy_meter.semcore.protocol import state_topic
from tests.integration.common import EVERY_READING, TestNode, make_entry, setup_entry, wait_state
from tests.mosquitto import Broker

HOUSE_STATUS = "sensor.house_1_house_meter_status"
LINE_STATUS = "sensor.house_1_line_meter_status"
DETAIL = "energy 4294967295 Wh above 10000000 Wh"


async def _error(node: TestNode, meter: str, seq: int, error: str, detail: str | None) -> None:
    obj: dict[str, object] = {"seq": seq, "ts": time.time(), "error": error}
    if detail is not None:
        obj["detail"] = detail
    await node.publish(state_topic(node.prefix, node.node, meter), json.dumps(obj), retain=True)


async def test_an_impossible_reading_shows_the_meter_unavailable_with_the_reason(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, options=EVERY_READING)
    await setup_entry(hass, entry)
    await node.announce(version="1.2")
    await node.status("online")
    await node.snapshot("house1", 50.0, energy=5000.0)
    await node.snapshot("line1", 51.0, energy=5100.0)
    await wait_state(hass, "sensor.house_1_energy", "5.0")
    await wait_state(hass, HOUSE_STATUS, "ok")
    assert hass.states.get(HOUSE_STATUS).attributes["detail"] is None

    await _error(node, "house1", 1, "out_of_range", DETAIL)
    await wait_state(hass, HOUSE_STATUS, "out_of_range")
    assert hass.states.get(HOUSE_STATUS).attributes["detail"] == DETAIL
    # Not the last good values: unavailable.
    for entity_id in ("sensor.house_1_power", "sensor.house_1_energy", "sensor.house_1_voltage"):
        assert hass.states.get(entity_id).state == STATE_UNAVAILABLE, entity_id
    assert hass.states.get(LINE_STATUS).state == "ok"

    # A 1.1 node's error form has no detail.
    await _error(node, "house1", 2, "timeout", None)
    await wait_state(hass, HOUSE_STATUS, "timeout")
    assert hass.states.get(HOUSE_STATUS).attributes["detail"] is None

    await node.snapshot("house1", 52.0, energy=5001.0)
    await wait_state(hass, HOUSE_STATUS, "ok")
    await wait_state(hass, "sensor.house_1_energy", "5.001")

    await node.status("offline")
    await wait_state(hass, HOUSE_STATUS, "node_offline")
    await wait_state(hass, "sensor.house_1_power", STATE_UNAVAILABLE)


async def test_an_error_that_is_no_longer_repeated_becomes_no_reading(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, options=EVERY_READING)
    await setup_entry(hass, entry)
    await node.announce(version="1.2")
    await node.status("online")
    await _error(node, "house1", 0, "crc", "bad CRC or truncated frame of 12 bytes")
    await wait_state(hass, HOUSE_STATUS, "crc")
    assert hass.states.get(HOUSE_STATUS).attributes["detail"] == (
        "bad CRC or truncated frame of 12 bytes"
    )
    # The node announced a 1 s interval: after three without a message, nothing is current.
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=3.5))
    await hass.async_block_till_done()
    assert hass.states.get(HOUSE_STATUS).state == "no_reading"
    assert hass.states.get(HOUSE_STATUS).attributes["detail"] is None
    assert hass.states.get(LINE_STATUS).state == "no_reading"
