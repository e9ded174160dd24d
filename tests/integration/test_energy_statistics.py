"""The Energy dashboard's statistics after every way a register can go wrong: a corrupt value,
an impossible one, a wrap across a gap, a reload that hands out a held-off drop again, and a
replaced meter. The recorder compiles the sums; none may show a spike or a double count."""

from __future__ import annotations

import itertools
import logging
import time
from typing import Any

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.typing import RecorderInstanceContextManager

from custom_components.smart_energy_meter.semcore.protocol import ENERGY_WRAP_WH, Role, state_topic
from tests.integration.common import (
    EVERY_READING,
    TestNode,
    make_entry,
    script_clock,
    setup_entry,
    wait_for,
)
from tests.integration.simnode import StateLog
from tests.integration.statistics import compiled_statistics
from tests.mosquitto import Broker

ENERGY = "sensor.house_1_energy"


@pytest.fixture
async def mock_recorder_before_hass(
    async_setup_recorder_instance: RecorderInstanceContextManager,
) -> None:
    """The recorder's database is prepared before Home Assistant starts."""


async def test_no_spike_and_no_double_count_in_the_energy_statistics(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    started = dt_util.utcnow()
    entry = make_entry(hass, mosquitto, prefix, options=EVERY_READING)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    log = StateLog(hass)
    ts = time.time()  # the reload's retained reading arrives before the test's clock is back

    def house() -> Any:
        return next(iter(entry.runtime_data.pairs.values())).meters[Role.HOUSE]

    async def read(energy: float, after: float = 1.0) -> None:
        nonlocal ts
        ts += after
        target = house().samples + 1
        await node.snapshot("house1", 50.0, energy=energy, ts=ts)
        await wait_for(hass, lambda: house().samples >= target, f"the reading {energy}")

    script_clock(entry, node)
    top = ENERGY_WRAP_WH - 30.0
    measured = 0.0  # what the meter really measured from the first reading on
    await read(top)
    await read(top + 1)
    measured += 1
    await read(4_000_000.0)  # corrupt, inside the range: more than 25 kW can do in a second
    await node.publish(  # corrupt, outside the range: never a reading
        state_topic(prefix, "node1", "house1"),
        f'{{"seq":99,"ts":{ts + 0.5},"v":230,"i":0.2,"p":50,"e":4294967295,"f":50,"pf":1}}',
    )
    await read(top + 2)
    measured += 1
    await read(12.0, after=300.0)  # the wrap, across five minutes of outage
    measured += 30.0 - 2.0 + 12.0
    await read(11.0)  # a drop: held off
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")
    script_clock(entry, node)
    await read(11.0)  # the broker's retained 11 came first; the node repeats it: still held off
    await read(13.0)
    measured += 1.0
    for energy in (0.0, 1.0, 2.0):  # a replaced PZEM, starting from 0
        await read(energy)
    measured += 2.0
    await read(5.0)
    measured += 3.0
    await hass.config_entries.async_unload(entry.entry_id)
    log.stop()

    values = log.numbers(ENERGY)
    assert values == sorted(values), values  # never a decrease the statistics could count
    first, last = values[0], values[-1]
    assert (last - first) * 1000 == pytest.approx(measured)
    assert max(b - a for a, b in itertools.pairwise(values)) * 1000 <= 40.0 + 1e-6

    stats = await compiled_statistics(hass, recorder_mock, started, {ENERGY})
    sums = [row["sum"] for row in stats[ENERGY]]
    assert sums == sorted(sums)
    # Exactly what the meter measured, in kWh: no spike, no double count.
    assert sums[-1] == pytest.approx(measured / 1000, abs=1e-9)
    assert "not strictly increasing" not in caplog.text
