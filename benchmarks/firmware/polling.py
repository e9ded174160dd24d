"""Polling against a slow broker: the node under MicroPython, its PZEMs emulated at the 9600-baud
wire timing, a real mosquitto behind a proxy that adds a network round trip or freezes it.

- PZEMs per node at 1 Hz: 16 PZEMs polled back to back (0.2 s interval, so every cycle overruns)
  on one UART or on two; the state messages a plain subscriber receives per second are the
  readings the node can take and deliver, i.e. how many PZEMs it serves at 1 Hz.
- 16 PZEMs at a 1 s interval behind a 100 ms round trip: poll cycles per (simulated) second.
- A frozen broker (nothing comes back for 12 s, longer than the 10 s acknowledgement timeout):
  poll cycles of a four-PZEM node at 1 s while it lasts.

Every figure comes from a firmware tree, so `--baseline REV` measures an earlier commit's
firmware with the same harness (see __main__).
"""

from __future__ import annotations

import asyncio
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

from tests.firmware.e2e import SimNode, meters_scenario, observe
from tests.latency_proxy import latency_proxy
from tests.mosquitto import Broker

ROUND_TRIPS_MS = (0, 10, 30, 100)
FREEZE_S = 12.0
_names = itertools.count()


@dataclass
class PollFigures:
    per_uart_count: dict[tuple[int, int], float]  # (uarts, round trip ms) -> readings per second
    sixteen_hz: float  # poll cycles per second of 16 PZEMs at 1 s behind 100 ms
    frozen_cycles: int  # poll cycles during the freeze
    frozen_expected: float


def _node(broker: Broker, port: int, run: Path, scenario: Path, node: str, prefix: str) -> SimNode:
    return SimNode(
        broker, "--prefix", prefix, "--port", str(port), scenario=scenario, node=node, run=run
    )


async def _readings_per_second(
    broker: Broker, run: Path, tmp: Path, uarts: int, round_trip_ms: float, window_s: float
) -> float:
    name = f"bench{next(_names)}"
    scenario = meters_scenario(tmp / f"{name}.json", name, meters=16, uarts=uarts, interval=0.2)
    with latency_proxy(broker, round_trip_ms) as proxy:
        async with observe(broker, name) as obs:
            node = _node(broker, proxy.port, run, scenario, name, name)
            try:
                await node.wait_line("mqtt: connected")
                await asyncio.sleep(2 + round_trip_ms / 50)  # past the first cycles
                start = time.monotonic()
                await asyncio.sleep(window_s)
                end = time.monotonic()
                count = sum(
                    1 for m in obs.messages if m.topic.endswith("/state") and start <= m.at < end
                )
            finally:
                node.kill()
    return count / window_s


async def _cycles_per_second(broker: Broker, run: Path, tmp: Path, window_s: float) -> float:
    name = f"bench{next(_names)}"
    scenario = meters_scenario(tmp / f"{name}.json", name, meters=16, interval=1.0)
    with latency_proxy(broker, 100) as proxy:
        node = _node(broker, proxy.port, run, scenario, name, name)
        try:
            await node.wait_line("mqtt: connected")
            await asyncio.sleep(3)
            before = await node.stats()
            await asyncio.sleep(window_s)
            after = await node.stats()
        finally:
            node.kill()
    polls = int(after["polls"]) - int(before["polls"])
    return polls / (float(after["sim_s"]) - float(before["sim_s"]))


async def _frozen(broker: Broker, run: Path, tmp: Path) -> tuple[int, float]:
    name = f"bench{next(_names)}"
    scenario = meters_scenario(tmp / f"{name}.json", name, meters=4, interval=1.0)
    with latency_proxy(broker) as proxy:
        node = _node(broker, proxy.port, run, scenario, name, name)
        try:
            await node.wait_line("mqtt: connected")
            await asyncio.sleep(2.5)
            proxy.freeze()
            before = await node.stats()
            await asyncio.sleep(FREEZE_S)
            after = await node.stats()
            proxy.thaw()
        finally:
            node.kill()
    sim_s = float(after["sim_s"]) - float(before["sim_s"])
    return int(after["polls"]) - int(before["polls"]), sim_s


async def measure(broker: Broker, run: Path, tmp: Path, window_s: float) -> PollFigures:
    counts: dict[tuple[int, int], float] = {}
    for rtt in ROUND_TRIPS_MS:
        counts[(1, rtt)] = await _readings_per_second(broker, run, tmp, 1, rtt, window_s)
    for rtt in (0, 100):
        counts[(2, rtt)] = await _readings_per_second(broker, run, tmp, 2, rtt, window_s)
    sixteen = await _cycles_per_second(broker, run, tmp, window_s + 2)
    frozen, frozen_s = await _frozen(broker, run, tmp)
    return PollFigures(counts, sixteen, frozen, frozen_s)
