"""State that outlives one message: timestamps, clock jumps and energy counters, on a real broker.

One reading stamped far from its arrival must not switch detection off; a clock that really
jumped is followed; an energy register that reports what no meter could measure is refused
without freezing the total, a wrap is followed after any gap, and the total survives reloads.
"""

from __future__ import annotations

import json
import logging
import time
from datetime import timedelta
from typing import Any

import pytest
from homeassistant.core import Event, HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_fire_time_changed,
)

from custom_components.smart_energy_meter.const import EVENT_THEFT_DETECTED
from custom_components.smart_energy_meter.semcore.protocol import ENERGY_WRAP_WH, Role, state_topic
from custom_components.smart_energy_meter.state_store import SAVE_DELAY
from tests.integration.common import (
    EVERY_READING,
    TestNode,
    script_clock,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.feeder import BYPASS, HONEST, LINE, Feeder, house_1
from tests.mosquitto import Broker

STATUS = "sensor.house_1_detection_status"
THEFT = "binary_sensor.house_1_theft"
ENERGY = "sensor.house_1_energy"
TEN_YEARS = 10 * 365 * 86400.0


async def _raw_reading(node: TestNode, meter: str, **fields: Any) -> None:
    """A reading published as is: its timestamp does not move the test's arrival clock."""
    payload = {"seq": 900_000, "v": 230.0, "i": 0.4, "p": 95.0, "e": 38, "f": 50.0, "pf": 1.0}
    await node.publish(
        state_topic(node.prefix, node.node, meter), json.dumps(payload | fields), retain=True
    )


@pytest.mark.parametrize("offset", [TEN_YEARS, -TEN_YEARS], ids=["future", "past"])
async def test_one_reading_far_off_in_time_does_not_blind_the_detector(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
    offset: float,
) -> None:
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    detected: list[Event] = async_capture_events(hass, EVENT_THEFT_DETECTED)
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    clock = entry.runtime_data.fleet.nodes["node1"].clock

    # One message, as anyone who may publish under the prefix could send it.
    await _raw_reading(node, "house1", ts=feeder.ts + offset)
    await wait_for(hass, lambda: clock.refused == 1, "the refusal")
    assert "Reading of meter node1/house1 refused" in caplog.text

    # A real bypass right after it is flagged as fast as without the message (as in
    # test_balance.test_bypass_detected_and_cleared_by_the_balance: within 62 s of it).
    await feeder.run(62, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    assert state_of(hass, STATUS) == "theft"
    assert len(detected) == 1
    assert clock.refused == 1
    assert clock.jumps == 0


async def test_a_clock_set_back_by_seven_hours_is_followed(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A node on local time (UTC+7) that later synchronises to UTC."""
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    caplog.set_level(logging.WARNING)
    feeder.ts -= 7 * 3600
    node.clock_skew -= 7 * 3600
    await feeder.run(62, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    clock = entry.runtime_data.fleet.nodes["node1"].clock
    assert clock.jumps == 1
    assert "The clock of node node1 jumped by -25200 s" in caplog.text
    # Two readings of the line meter waited for the third to confirm the jump.
    assert clock.refused <= 4


async def test_a_node_without_ntp_is_evaluated(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """An isolated network: the node's clock counts from its boot, 56 years behind."""
    entry, _ = await house_1(hass, mosquitto, prefix, node)
    feeder = Feeder(hass, entry, node, start=12.0)
    node.clock_skew = 12.0 - time.time()
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    await feeder.run(62, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    clock = entry.runtime_data.fleet.nodes["node1"].clock
    assert (clock.refused, clock.jumps) == (0, 0)


# --- energy ------------------------------------------------------------------------------------


class Register:
    """One meter's readings with a chosen energy register, each awaited, one node second apart."""

    def __init__(self, hass: HomeAssistant, entry: Any, node: TestNode, start: float) -> None:
        self.hass = hass
        self.entry = entry
        self.node = node
        self.ts = start
        script_clock(entry, node)

    @property
    def meter(self) -> Any:
        pair = next(iter(self.entry.runtime_data.pairs.values()))
        return pair.meters[Role.HOUSE]

    async def read(self, energy: float, *, after: float = 1.0) -> None:
        self.ts += after
        target = self.meter.samples + 1
        await self.node.snapshot("house1", HONEST, energy=energy, ts=self.ts)
        await wait_for(self.hass, lambda: self.meter.samples >= target, f"the reading {energy}")


def _kwh(hass: HomeAssistant) -> float:
    return float(state_of(hass, ENERGY))


async def test_impossible_registers_are_refused_without_freezing(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry, feeder = await house_1(hass, mosquitto, prefix, node, EVERY_READING)
    register = Register(hass, entry, node, feeder.ts)
    await register.read(5000.0)
    await wait_state(hass, ENERGY, "5.0")
    # Valid JSON, outside the register's range: the whole reading is refused by the codec.
    for energy in ("1e308", "4294967295", "1" * 400):
        payload = (
            f'{{"seq":7,"ts":{register.ts + 0.5},"v":230,"i":0.4,"p":95,"e":{energy},'
            '"f":50,"pf":1}'
        )
        await node.publish(state_topic(prefix, "node1", "house1"), payload)
    # Inside the range but more than the meter can measure in a second: refused by the counter.
    await register.read(4_000_000.0)
    assert _kwh(hass) == 5.0
    assert "more than the meter can measure" in caplog.text
    # The next good readings go on from the total: nothing froze.
    for wh in (5001.0, 5002.0, 5003.0):
        await register.read(wh)
    await wait_state(hass, ENERGY, "5.003")
    assert "Traceback" not in caplog.text
    assert "OverflowError" not in caplog.text


async def test_a_wrap_is_followed_across_a_gap(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    register = Register(hass, entry, node, feeder.ts)
    top = ENERGY_WRAP_WH - 20.0
    await register.read(top)
    # A broker outage across the wrap: ten minutes later, at 2 kW, the register is past 0.
    await register.read(313.0, after=600.0)
    assert _kwh(hass) == pytest.approx((top + 20.0 + 313.0) / 1000)
    await register.read(314.0)
    assert _kwh(hass) == pytest.approx((top + 20.0 + 314.0) / 1000)


async def test_the_floor_and_the_total_survive_a_reload(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
) -> None:
    entry, feeder = await house_1(hass, mosquitto, prefix, node, EVERY_READING)
    register = Register(hass, entry, node, feeder.ts)
    await register.read(5095.0)
    await register.read(4121.0)  # a drop held off
    assert _kwh(hass) == 5.095

    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the connection")
    script_clock(entry, node)
    # The broker hands out the retained 4121 Wh first: still a drop, still held off.
    await wait_state(hass, ENERGY, "5.095")
    await register.read(4121.0)
    assert _kwh(hass) == 5.095
    # The register going on from there is a replaced meter: followed without the jump.
    for wh in (4122.0, 4123.0):
        await register.read(wh)
    await wait_state(hass, ENERGY, "5.097")
    stored = hass_storage[f"smart_energy_meter.{entry.entry_id}.energy"]["data"]["meters"]
    assert stored["node1/house1"]["value"] == 5095.0  # written when the entry unloaded


async def test_the_totals_are_written_while_running(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
) -> None:
    """A restart (or a crash) finds totals at most SAVE_DELAY seconds old."""
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    register = Register(hass, entry, node, feeder.ts)
    key = f"smart_energy_meter.{entry.entry_id}.energy"
    await register.read(7000.0)
    await register.read(7001.0)
    assert key not in hass_storage
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=SAVE_DELAY + 1))
    await hass.async_block_till_done()
    assert hass_storage[key]["data"]["meters"]["node1/house1"]["value"] == 7001.0
