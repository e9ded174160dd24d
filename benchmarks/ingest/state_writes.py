"""What one entity state write costs Home Assistant itself:

    python -m benchmarks.ingest.state_writes [--entities 5000] [--seconds 10]

Sensor entities like the integration's power sensors (device class, state class, unit, display
precision, has_entity_name), each written through `async_write_ha_state` with a new value, in
the same Home Assistant core the ingest benchmark runs, with one state-changed listener (the
ingest benchmark's; in a full Home Assistant the recorder, logbook and frontend listen too, and
without a listener no event is made at all). No MQTT and no integration: the floor under the
state writes a snapshot causes. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import tempfile
from dataclasses import dataclass
from typing import Any

from homeassistant.components.sensor import SensorDeviceClass, SensorEntity, SensorStateClass
from homeassistant.const import EVENT_STATE_CHANGED, UnitOfPower
from homeassistant.core import Event, callback
from pytest_homeassistant_custom_component.common import (
    MockEntityPlatform,
    async_test_home_assistant,
)

from benchmarks.ingest.measure import GcWatch, cpu_time

BATCH = 200  # writes between two passes of the event loop


class _PowerSensor(SensorEntity):
    _attr_should_poll = False
    _attr_has_entity_name = True
    _attr_device_class = SensorDeviceClass.POWER
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_native_unit_of_measurement = UnitOfPower.WATT
    _attr_suggested_display_precision = 1

    def __init__(self, index: int) -> None:
        self._attr_unique_id = f"bench_power_{index}"
        self._attr_name = f"Power {index}"
        self._attr_native_value = 0.0


@dataclass(frozen=True)
class WriteCost:
    """CPU per state write, and the full collections seen while writing."""

    writes: int
    cpu_seconds: float
    full_gcs: int
    longest_gc_ms: float

    @property
    def us_per_write(self) -> float:
        return 1e6 * self.cpu_seconds / self.writes


async def measure_writes(entities: int, seconds: float) -> WriteCost:
    """Write every entity's state in turn, a new value each time, for `seconds`."""
    with tempfile.TemporaryDirectory() as config_dir:
        async with async_test_home_assistant(config_dir=config_dir) as hass:
            platform = MockEntityPlatform(hass, domain="sensor", platform_name="bench")
            sensors = [_PowerSensor(n) for n in range(entities)]
            await platform.async_add_entities(sensors)
            await hass.async_block_till_done()
            changes = 0

            @callback
            def on_state(_event: Event[Any]) -> None:
                nonlocal changes
                changes += 1

            hass.bus.async_listen(EVENT_STATE_CHANGED, on_state)
            loop = asyncio.get_running_loop()
            watch = GcWatch()
            gc.callbacks.append(watch)
            writes = 0
            cpu0 = cpu_time()
            deadline = loop.time() + seconds
            try:
                while loop.time() < deadline:
                    for _ in range(BATCH):
                        sensor = sensors[writes % entities]
                        # Each round a new value: an unchanged state is not written at all.
                        value = float(writes // entities % 1000) / 10
                        sensor._attr_native_value = value
                        sensor.async_write_ha_state()
                        writes += 1
                    await asyncio.sleep(0)  # let the state-changed events be dispatched
            finally:
                cpu = cpu_time() - cpu0
                gc.callbacks.remove(watch)
            await platform.async_reset()
            assert changes >= writes - BATCH  # every write changed the state
            return WriteCost(writes, cpu, watch.full, 1000 * watch.longest)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--entities", type=int, default=5000)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()
    cost = asyncio.run(measure_writes(args.entities, args.seconds))
    if args.json:
        print(json.dumps(dataclasses.asdict(cost)))
        return
    print(
        f"{cost.writes} state writes of {args.entities} sensor entities: "
        f"{cost.us_per_write:.1f} µs CPU each, {cost.full_gcs} full collections "
        f"(longest {cost.longest_gc_ms:.0f} ms)"
    )


if __name__ == "__main__":
    main()
