"""State writes follow what changed: a reading writes the entities whose shown value or
availability changed, nothing else; a meter that keeps reporting stays available, and goes
unavailable once it stops."""

from __future__ import annotations

import asyncio
from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, EVENT_STATE_REPORTED, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, callback

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
from tests.mosquitto import Broker

POWER = "sensor.house_1_power"


class Writes:
    """Entities of house 1 whose state was written (changed or reported unchanged)."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.entities: list[str] = []

        @callback
        def house_1(data: Any) -> bool:
            entity_id: str = data["entity_id"]
            return entity_id.startswith(("sensor.house_1_", "binary_sensor.house_1_"))

        @callback
        def record(event: Event[Any]) -> None:
            self.entities.append(event.data["entity_id"])

        self.stops = [
            hass.bus.async_listen(kind, record, event_filter=house_1)
            for kind in (EVENT_STATE_CHANGED, EVENT_STATE_REPORTED)
        ]

    def take(self) -> set[str]:
        taken = set(self.entities)
        self.entities.clear()
        return taken


async def _reading(
    hass: HomeAssistant, entry: Any, node: TestNode, meter: str, **values: Any
) -> None:
    """Publish a snapshot and wait until the integration took it in."""
    tracked = entry.runtime_data.fleet.meters[protocol_meter_key("node1", meter)]
    seen = tracked.samples
    await node.snapshot(meter, **values)
    await wait_for(hass, lambda: tracked.samples > seen, f"{meter} reading taken in")
    await hass.async_block_till_done()


async def _house_1_online(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> Any:
    """The entry set up, its node online, and one reading of each meter shown (0.96 %)."""
    entry = await setup_with_node_online(hass, mosquitto, prefix, node, EVERY_READING)
    await node.snapshot("line1", 100.0)
    await node.snapshot("house1", 99.04)
    await wait_state(hass, "sensor.house_1_theft_percentage", "0.96")
    return entry


async def test_a_reading_writes_only_what_it_changed(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await _house_1_online(hass, mosquitto, prefix, node)
    await hass.async_block_till_done()
    writes = Writes(hass)

    # The same values again: nothing shown changes, nothing is written.
    await _reading(hass, entry, node, "house1", power=99.04)
    assert writes.take() == set()

    # Only the voltage moves: only the voltage is written (the powers, so the mismatch, stay).
    await _reading(hass, entry, node, "house1", power=99.04, voltage=226.1)
    assert writes.take() == {"sensor.house_1_voltage"}
    assert hass.states.get("sensor.house_1_voltage").state == "226.1"  # type: ignore[union-attr]

    # A new line power: the line's power and the mismatch; none of the house's readings.
    await _reading(hass, entry, node, "line1", power=101.0)
    assert writes.take() == {"sensor.house_1_line_power", "sensor.house_1_theft_percentage"}
    assert hass.states.get("sensor.house_1_theft_percentage").state == "1.94"  # type: ignore[union-attr]

    # Availability is written too: the node going offline reaches every reading.
    await node.status("offline")
    await wait_state(hass, POWER, STATE_UNAVAILABLE)
    await hass.async_block_till_done()
    assert {
        "sensor.house_1_voltage",
        "sensor.house_1_power",
        "sensor.house_1_line_power",
        "sensor.house_1_theft_percentage",
    } <= writes.take()
    for stop in writes.stops:
        stop()


async def test_a_meter_that_keeps_reporting_stays_available(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, options=EVERY_READING)
    await setup_entry(hass, entry)
    # Stale after 3 intervals (1.5 s) without a reading; readings come every 0.25 s for 4 s,
    # so the staleness timer fires while newer readings keep arriving.
    await node.announce(interval=0.5)
    await node.status("online")
    await node.snapshot("house1", 90.0)
    await wait_state(hass, POWER, "90.0")
    shown: list[str] = []

    @callback
    def record(event: Event[Any]) -> None:
        if event.data["entity_id"] == POWER:
            shown.append(event.data["new_state"].state)

    stop = hass.bus.async_listen(EVENT_STATE_CHANGED, record)
    for n in range(16):
        await node.snapshot("house1", 91.0 + n)
        await asyncio.sleep(0.25)
    await wait_state(hass, POWER, "106.0")
    assert STATE_UNAVAILABLE not in shown
    assert len(shown) >= 8  # the readings did arrive

    # Silent: unavailable after the delay, not a made-up value.
    await wait_state(hass, POWER, STATE_UNAVAILABLE, within=5.0)
    stop()
    assert entry.runtime_data.fleet.meters[protocol_meter_key("node1", "house1")].fresh is False


async def test_the_readings_of_one_snapshot_share_a_context(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = await _house_1_online(hass, mosquitto, prefix, node)
    measurements = (
        "sensor.house_1_voltage",
        "sensor.house_1_current",
        "sensor.house_1_power",
        "sensor.house_1_theft_percentage",
    )

    def contexts() -> set[str]:
        return {hass.states.get(entity_id).context.id for entity_id in measurements}  # type: ignore[union-attr]

    # One snapshot moves all four (the line's reading of its poll cycle came first, unchanged):
    # written under one context, as one change.
    await _reading(hass, entry, node, "line1", power=100.0)
    await _reading(hass, entry, node, "house1", power=98.0, voltage=226.1, current=0.43)
    first = contexts()
    assert len(first) == 1
    # The next snapshot is another change, with a context of its own.
    await _reading(hass, entry, node, "line1", power=100.0)
    await _reading(hass, entry, node, "house1", power=97.0, voltage=226.2, current=0.42)
    second = contexts()
    assert len(second) == 1
    assert second != first
