"""Scripted readings of a pair's two meters, stamped on a node clock the test controls.

The energy balance runs on the readings' own timestamps, judged against their arrival: the
entry's arrival clock follows the node's, so a minute of node time can be published in a second,
one reading at a time: windows close as fast as the broker delivers.
"""

from __future__ import annotations

import json
import time
from typing import Any

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_energy_meter.pair import PairRuntime
from custom_components.smart_energy_meter.semcore.protocol import Role, state_topic
from tests.integration.common import (
    HOUSE_1,
    TestNode,
    make_entry,
    script_clock,
    setup_entry,
    wait_for,
)
from tests.mosquitto import Broker

VOLTS = 230.0
# The paper's house 1: line power, the honest house meter (0.96 % below the line: meter
# disagreement) and the bypass (17.77 % of the line power never reaches the house meter).
LINE = 100.0
HONEST = 99.04
BYPASS = 82.23


class Feeder:
    """Publishes one reading of each meter of pair `index` per `spacing` node seconds."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: Any,
        node: TestNode,
        index: int = 1,
        *,
        start: float | None = None,
        spacing: float = 1.0,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.node = node
        self.line = f"line{index}"
        self.house = f"house{index}"
        self.pair: PairRuntime = next(
            p for p in entry.runtime_data.pairs.values() if p.config.pair == f"house{index}"
        )
        self.ts = time.time() if start is None else start
        self.spacing = spacing
        script_clock(entry, node)
        self._error_seq = 1_000_000

    async def run(
        self,
        seconds: float,
        line: float,
        house: float | None,
        *,
        line_volts: float = VOLTS,
        house_volts: float | None = None,
    ) -> None:
        """`seconds` of node time at constant powers; house None: the house meter errors.

        Currents follow from P = V·I (unity power factor); the house meter reads 0.1 s after
        the line meter. Returns once every reading has reached the pair.
        """
        house_volts = line_volts if house_volts is None else house_volts
        meters = self.pair.meters
        fleet = self.entry.runtime_data.fleet

        def heard() -> int:
            # Readings taken, and readings refused for their timestamp (a clock jump).
            node = fleet.nodes.get(self.node.node)
            refused = node.clock.refused if node is not None else 0
            return meters[Role.LINE].samples + meters[Role.HOUSE].samples + refused

        target = heard()

        def arrived() -> bool:
            return heard() >= target

        for _ in range(round(seconds / self.spacing)):
            await self.node.snapshot(
                self.line, line, ts=self.ts, voltage=line_volts, current=line / line_volts
            )
            target += 1
            if house is None:
                await self.error(self.ts + 0.1)
            else:
                await self.node.snapshot(
                    self.house,
                    house,
                    ts=self.ts + 0.1,
                    voltage=house_volts,
                    current=house / house_volts,
                )
                target += 1
            self.ts += self.spacing
            await wait_for(self.hass, arrived, f"readings of pair {self.pair.name}")

    async def error(self, ts: float) -> None:
        """The house PZEM did not answer (the protocol's error form)."""
        self._error_seq += 1
        payload = json.dumps({"seq": self._error_seq, "ts": ts, "error": "timeout"})
        await self.node.publish(
            state_topic(self.node.prefix, self.node.node, self.house), payload, retain=True
        )


async def house_1(
    hass: HomeAssistant,
    broker: Broker,
    prefix: str,
    node: TestNode,
    options: dict[str, Any] | None = None,
    **pair: Any,
) -> tuple[MockConfigEntry, Feeder]:
    """The entry with house 1 (its subentry data changed by `pair`), its node announced and
    online, and a feeder for its meters."""
    entry = make_entry(hass, broker, prefix, pairs=[HOUSE_1 | pair], options=options)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    return entry, Feeder(hass, entry, node)
