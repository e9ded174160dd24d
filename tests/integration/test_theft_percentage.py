"""The theft percentage through the broker while the paper's lamps are switched: the line and
house readings of one poll cycle arrive as two messages, one after the other, and the sensor only
ever shows what the two meters measured in one cycle, never a new reading of one meter against
the other's reading of the cycle before."""

from __future__ import annotations

from typing import Any

from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant, callback
from pytest_homeassistant_custom_component.common import async_capture_events

from custom_components.smart_energy_meter.const import EVENT_THEFT_DETECTED
from custom_components.smart_energy_meter.semcore.protocol import Role
from tests.integration.common import (
    TestNode,
    make_entry,
    script_clock,
    setup_entry,
    wait_for,
    wait_state,
)
from tests.integration.feeder import house_1
from tests.mosquitto import Broker

PERCENTAGE = "sensor.house_1_theft_percentage"
THEFT = "binary_sensor.house_1_theft"
# The paper's 20 W lamps: one more every step, then back to one (at 1 lamp the line reads
# 20 W; a new line reading of 100 W against the old house reading of 19.8 W would read 80 %).
LAMPS = (1, 2, 3, 4, 5, 1, 2, 3, 4, 5, 1)
HONEST = 0.9904  # house power per line watt: 0.96 %, the paper's house 1
BYPASS = 0.8223  # 17.77 %, the paper's house 2 with its bypass


class Shown:
    """Every state an entity takes."""

    def __init__(self, hass: HomeAssistant, entity_id: str) -> None:
        self.states: list[str] = []

        @callback
        def record(event: Event[Any]) -> None:
            if event.data["entity_id"] == entity_id and event.data["new_state"] is not None:
                self.states.append(event.data["new_state"].state)

        self.stop = hass.bus.async_listen(EVENT_STATE_CHANGED, record)

    def figures(self) -> set[str]:
        """The percentages shown (not unknown or unavailable)."""
        return {s for s in self.states if s not in (STATE_UNKNOWN, STATE_UNAVAILABLE)}


async def test_lamp_steps_never_show_a_percentage_of_two_cycles(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    shown = Shown(hass, PERCENTAGE)
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    _entry, feeder = await house_1(hass, mosquitto, prefix, node, detection="paper")
    for lamps in LAMPS:  # the honest house: two poll cycles per step
        await feeder.run(2, 20.0 * lamps, 20.0 * lamps * HONEST)
    await wait_state(hass, PERCENTAGE, "0.96")
    assert shown.figures() == {"0.96"}
    assert len(shown.states) >= 2  # unknown, then the first cycle's figure

    # The bypass, lamps still switching: every figure is the bypass's, and theft is flagged.
    for lamps in (5, 1, 2, 3, 4, 5):
        await feeder.run(3, 20.0 * lamps, 20.0 * lamps * BYPASS)
    await wait_state(hass, THEFT, "on")
    assert shown.figures() == {"0.96", "17.77"}
    assert [e.data["mismatch_percent"] for e in detected] == [17.77]
    shown.stop()


async def test_paper_topics_pair_the_values_that_arrive_together(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """The per-value topics carry no timestamp: their arrival time pairs them."""
    line, house = f"paper/{prefix}/line", f"paper/{prefix}/house"
    pair = {
        "pair": "house1",
        "name": "House 1",
        "line": {"topic_base": line},
        "house": {"topic_base": house},
        "interval": 1.0,
        "detection": "paper",
    }
    entry = make_entry(hass, mosquitto, prefix, pairs=[pair])
    await setup_entry(hass, entry)
    script_clock(entry, node)
    runtime = next(iter(entry.runtime_data.pairs.values()))
    shown = Shown(hass, PERCENTAGE)
    node.arrival = 1_764_072_000.0

    async def cycle(line_w: float, house_w: float, house_first: bool) -> None:
        """One poll cycle of the device: both powers, one message each, a second after the
        previous cycle."""
        node.arrival += 1.0
        target = sum(runtime.meters[role].samples for role in Role) + 2
        values = [(line, line_w), (house, house_w)]
        for base, watts in reversed(values) if house_first else values:
            await node.publish(f"{base}/pac", str(round(watts, 3)))
        await wait_for(
            hass,
            lambda: sum(runtime.meters[role].samples for role in Role) >= target,
            "the cycle's two powers",
        )

    for step, lamps in enumerate(LAMPS):
        for second in range(2):
            await cycle(20.0 * lamps, 20.0 * lamps * HONEST, (step + second) % 2 == 1)
    await wait_state(hass, PERCENTAGE, "0.96")
    assert shown.figures() == {"0.96"}
    for lamps in (5, 1, 2, 3, 4, 5):
        for second in range(3):
            await cycle(20.0 * lamps, 20.0 * lamps * BYPASS, second == 1)
    await wait_state(hass, THEFT, "on")
    assert shown.figures() == {"0.96", "17.77"}
    shown.stop()
