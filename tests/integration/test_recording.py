"""What the recorder keeps under the default write policy: significant changes at once, the
rest at the heartbeat, and statistics of every reading, not of the written states only."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)
from pytest_homeassistant_custom_component.typing import RecorderInstanceContextManager

from custom_components.smart_energy_meter.fleet import protocol_meter_key
from tests.integration.common import (
    EVERY_READING,
    TestNode,
    make_entry,
    setup_entry,
    setup_with_node_online,
    wait_for,
    wait_state,
)
from tests.integration.statistics import compiled_statistics, five_minutes
from tests.mosquitto import Broker

POWER = "sensor.house_1_power"
ENERGY = "sensor.house_1_energy"


@pytest.fixture
async def mock_recorder_before_hass(
    async_setup_recorder_instance: RecorderInstanceContextManager,
) -> None:
    """The recorder's database is prepared before Home Assistant starts."""


async def _read(hass: HomeAssistant, entry: Any, node: TestNode, **values: Any) -> None:
    tracked = entry.runtime_data.fleet.meters[protocol_meter_key("node1", "house1")]
    seen = tracked.samples
    await node.snapshot("house1", **values)
    await wait_for(hass, lambda: tracked.samples > seen, "the reading taken in")
    await hass.async_block_till_done()


def _state(hass: HomeAssistant, entity_id: str) -> str:
    state = hass.states.get(entity_id)
    assert state is not None
    return state.state


async def test_small_changes_wait_for_the_heartbeat_and_large_ones_do_not(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await setup_with_node_online(hass, mosquitto, prefix, node)
    await _read(hass, entry, node, power=100.0, energy=5000.0)
    await wait_state(hass, POWER, "100.0")
    # 4 W on 100 W, 3 Wh more: shown later, not now.
    await _read(hass, entry, node, power=104.0, energy=5003.0)
    assert _state(hass, POWER) == "100.0"
    assert _state(hass, ENERGY) == "5.0"
    # 6 W: a change a user notices is shown with its reading.
    await _read(hass, entry, node, power=110.0, energy=5004.0)
    assert _state(hass, POWER) == "110.0"
    await _read(hass, entry, node, power=111.0, energy=5005.0)
    assert _state(hass, POWER) == "110.0"

    # The heartbeat, a few seconds before the minute ends, writes what was held back (called
    # directly: a minute of test time would also let the meter go silent).
    entry.runtime_data.recording.async_heartbeat()
    await hass.async_block_till_done()
    assert _state(hass, POWER) == "111.0"
    assert _state(hass, ENERGY) == "5.005"


async def test_the_heartbeat_runs_each_minute(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix)
    await setup_entry(hass, entry)
    await node.announce(interval=60.0)  # silent for three minutes before it is unavailable
    await node.status("online")
    await _read(hass, entry, node, power=100.0)
    await _read(hass, entry, node, power=103.0)
    assert _state(hass, POWER) == "100.0"
    now = dt_util.utcnow()
    async_fire_time_changed(hass, now.replace(second=57, microsecond=0) + timedelta(minutes=1))
    await hass.async_block_till_done()
    assert _state(hass, POWER) == "103.0"


async def test_every_reading_writes_every_change(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await setup_with_node_online(hass, mosquitto, prefix, node, EVERY_READING)
    await _read(hass, entry, node, power=100.0, energy=5000.0)
    await _read(hass, entry, node, power=100.3, energy=5001.0)
    assert _state(hass, POWER) == "100.3"
    assert _state(hass, ENERGY) == "5.001"


async def _rows(hass: HomeAssistant, recorder: Recorder, start: Any, period: str) -> dict[str, Any]:
    await async_wait_recording_done(hass)
    rows: dict[str, list[dict[str, Any]]] = await recorder.async_add_executor_job(
        statistics_during_period, hass, start, None, {POWER}, period, None, {"mean", "min", "max"}
    )
    return rows[POWER][0]


async def test_statistics_come_from_every_reading(
    recorder_mock: Recorder, hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await setup_with_node_online(hass, mosquitto, prefix, node)
    await _read(hass, entry, node, power=100.0)
    await wait_state(hass, POWER, "100.0")
    await _read(hass, entry, node, power=104.0)  # held back: the state stays at 100 W
    assert _state(hass, POWER) == "100.0"

    period = five_minutes(dt_util.utcnow())
    do_adhoc_statistics(hass, start=period)
    compiled = await _rows(hass, recorder_mock, period, "5minute")
    # What the recorder compiles from the states alone: 104 W never happened.
    assert compiled["max"] == pytest.approx(100.0)

    # Once the period ended, the statistics of every reading are written over it.
    hour_end = period.replace(minute=0) + timedelta(hours=1)
    entry.runtime_data.recording.async_write_statistics(hour_end.timestamp())
    row = await _rows(hass, recorder_mock, period, "5minute")
    assert (row["min"], row["max"]) == (pytest.approx(100.0), pytest.approx(104.0))
    assert 103.0 < row["mean"] < 104.0  # 104 W held from its reading to the period's end
    hourly = await _rows(hass, recorder_mock, period.replace(minute=0), "hour")
    assert hourly["max"] == pytest.approx(104.0)
    assert 103.0 < hourly["mean"] <= 104.0


async def test_energy_statistics_equal_the_register(
    recorder_mock: Recorder, hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    started = dt_util.utcnow()
    entry = await setup_with_node_online(hass, mosquitto, prefix, node)
    await _read(hass, entry, node, power=100.0, energy=5000.0)
    await wait_state(hass, ENERGY, "5.0")
    for energy in (5001.0, 5002.0, 5003.0):  # each step under 10 Wh: held back
        await _read(hass, entry, node, power=100.0, energy=energy)
    assert _state(hass, ENERGY) == "5.0"
    # The heartbeat before the period's end writes the register as it stands.
    entry.runtime_data.recording.async_heartbeat()
    await hass.async_block_till_done()
    rows = await compiled_statistics(hass, recorder_mock, started, {ENERGY})
    last = rows[ENERGY][-1]
    assert last["state"] == pytest.approx(5.003)
    assert last["sum"] == pytest.approx(0.003)
