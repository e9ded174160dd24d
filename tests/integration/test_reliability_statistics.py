"""Energy in Home Assistant's statistics through a node reboot, a Home Assistant restart and a
PZEM energy reset: the firmware simulator on a real mosquitto, the recorder compiling the sums."""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.typing import RecorderInstanceContextManager

from tests.firmware.e2e import SimNode
from tests.integration.common import setup_entry, state_of, wait_for, wait_state
from tests.integration.simnode import (
    StateLog,
    requires_micropython,
    setup_sim_entry,
    sim_meters,
    start_node,
    write_scenario,
)
from tests.integration.statistics import compiled_statistics
from tests.mosquitto import Broker

pytestmark = requires_micropython

ENERGY = ("sensor.house_1_energy", "sensor.house_1_line_energy")
NODE_STATUS = "binary_sensor.sim_node_status"


@pytest.fixture
async def mock_recorder_before_hass(
    async_setup_recorder_instance: RecorderInstanceContextManager,
) -> None:
    """The recorder's database is prepared before Home Assistant starts."""


@pytest.fixture
def sim_nodes() -> Iterator[list[SimNode]]:
    nodes: list[SimNode] = []
    yield nodes
    for node in nodes:
        node.stop()


def _expected_sum(values: list[float]) -> float:
    """total_increasing as Home Assistant documents it: a drop starts a new cycle from 0."""
    total = 0.0
    for previous, value in itertools.pairwise(values):
        total += value - previous if value >= previous else value
    return total


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the reset button is off by default
async def test_reboot_restart_and_reset_in_energy_statistics(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    own_mosquitto: Broker,
    prefix: str,
    tmp_path: Path,
    sim_nodes: list[SimNode],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    started = dt_util.utcnow()
    node = await start_node(own_mosquitto, prefix, write_scenario(tmp_path))
    sim_nodes.append(node)
    entry = await setup_sim_entry(hass, own_mosquitto, prefix)
    log = StateLog(hass)
    house = sim_meters(entry)["house1"]

    def readings(count: int) -> Callable[[], bool]:
        target = house.samples + count
        return lambda: house.samples >= target and house.energy.value is not None

    await wait_for(hass, readings(3), "the first readings", within=15)
    before_reboot = house.energy.value
    assert before_reboot is not None
    assert before_reboot > 0

    # The board resets; the PZEMs keep counting. Its last will, then seq from 0 again.
    seen = len(log.writes)
    node.send("reboot")
    await node.wait_line("rebooted")
    await wait_for(
        hass,
        lambda: (
            [w.state for w in log.writes[seen:] if w.entity_id == NODE_STATUS][-2:] == ["off", "on"]
        ),
        "the last will, then online",
    )
    await wait_for(hass, readings(3), "readings after the reboot", within=10)
    assert house.snapshot is not None
    assert house.snapshot.seq < 10
    assert house.energy.value is not None
    assert house.energy.value > before_reboot

    # Home Assistant restarts: the retained state is there at once, and nothing is commanded.
    await hass.config_entries.async_unload(entry.entry_id)
    assert state_of(hass, "sensor.house_1_energy") == STATE_UNAVAILABLE
    await setup_entry(hass, entry)
    house = sim_meters(entry)["house1"]
    await wait_for(hass, readings(3), "readings after the restart", within=10)
    await wait_state(hass, "switch.house_1_relay", "on")

    # reset_energy: the counters drop to 0 and start over.
    before_reset = house.energy.value
    assert before_reset is not None
    await hass.services.async_call(
        "button", "press", {"entity_id": "button.house_1_reset_energy"}, blocking=True
    )
    await node.wait_line("meter house1: energy counter reset")
    await node.wait_line("meter line1: energy counter reset")
    await wait_for(
        hass,
        lambda: house.energy.value is not None and house.energy.value < before_reset / 2,
        "the reset counter",
    )
    await wait_for(hass, readings(3), "readings after the reset", within=10)
    await hass.config_entries.async_unload(entry.entry_id)
    log.stop()

    for entity_id in ENERGY:
        values = log.numbers(entity_id)
        drops = [(a, b) for a, b in itertools.pairwise(values) if b < a]
        # One drop, the reset, well below the 90 % Home Assistant reads as a new cycle; never a
        # decrease otherwise.
        assert len(drops) == 1, (entity_id, drops)
        assert drops[0][1] < 0.5 * drops[0][0], (entity_id, drops)
    assert "commanded" not in node.output()
    # No register step was refused: the reboot, the restart and the reset are all believable.
    assert "more than the meter can measure" not in caplog.text

    # Home Assistant's long-term statistics: compile every 5-minute period of the test.
    stats = await compiled_statistics(hass, recorder_mock, started, set(ENERGY))
    for entity_id in ENERGY:
        sums = [row["sum"] for row in stats[entity_id]]
        assert sums == sorted(sums), (entity_id, sums)
        values = log.numbers(entity_id)
        # Counted once: before the reset (across the reboot and the restart), then from 0.
        assert sums[-1] == pytest.approx(_expected_sum(values), abs=1e-6), entity_id
        assert sums[-1] > values[-1] > 0
        print(
            f"\n{entity_id}: {len(values)} values, sum {sums[-1]:.3f} = "
            f"{values[0]:.3f} -> {max(values):.3f} before the reset, then 0 -> {values[-1]:.3f}"
        )
    assert "not strictly increasing" not in caplog.text
