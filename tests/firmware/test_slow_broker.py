"""Polling that a slow or frozen broker cannot stall: the firmware under MicroPython, with its
PZEMs at the 9600-baud wire timing, behind a proxy that delays or freezes a real mosquitto."""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from custom_components.smart_energy_meter.semcore import protocol as codec
from tests.firmware.e2e import Seen, SimNode, meters_scenario, observe
from tests.latency_proxy import LatencyProxy, latency_proxy
from tests.mosquitto import Broker


@pytest.fixture
def nodes() -> Iterator[list[SimNode]]:
    started: list[SimNode] = []
    yield started
    for node in started:
        node.kill()


def _seqs(messages: list[Seen], topic: str) -> list[int]:
    return [json.loads(m.payload)["seq"] for m in messages if m.topic == topic]


async def _polls_over(node: SimNode, seconds: float) -> tuple[float, float]:
    """(poll cycles, simulated seconds) that passed in `seconds`."""
    before = await node.stats()
    await asyncio.sleep(seconds)
    after = await node.stats()
    return (
        int(after["polls"]) - int(before["polls"]),
        float(after["sim_s"]) - float(before["sim_s"]),
    )


async def test_sixteen_pzems_at_one_hertz_behind_a_100_ms_round_trip(
    mosquitto: Broker, nodes: list[SimNode], tmp_path: Path
) -> None:
    prefix = "slow-a"
    scenario = meters_scenario(tmp_path / "sixteen.json", "slow16", meters=16, interval=1.0)
    with latency_proxy(mosquitto, round_trip_ms=100) as proxy:
        async with observe(mosquitto, prefix) as obs:
            node = SimNode(
                mosquitto, "--prefix", prefix, "--port", str(proxy.port), scenario=scenario,
                node="slow16",
            )  # fmt: skip
            nodes.append(node)
            await node.wait_line("mqtt: connected")
            await asyncio.sleep(2)  # past the first cycle
            polls, sim_s = await _polls_over(node, 6)
            assert polls / sim_s >= 0.95, node.output()[-2000:]
            await asyncio.sleep(1)
            messages = list(obs.messages)
            log = node.output()  # before the proxy closes the connection
    for index in range(1, 9):
        for meter in (f"line{index}", f"house{index}"):
            seqs = _seqs(messages, f"{prefix}/slow16/{meter}/state")
            assert len(seqs) >= 6, meter
            assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), meter  # none dropped
    assert "readings dropped" not in log


async def test_polling_goes_on_at_full_rate_while_the_broker_is_frozen(
    mosquitto: Broker, nodes: list[SimNode], tmp_path: Path
) -> None:
    prefix = "slow-b"
    scenario = meters_scenario(tmp_path / "four.json", "frozen4", meters=4, interval=0.5)
    proxy: LatencyProxy
    with latency_proxy(mosquitto) as proxy:
        async with observe(mosquitto, prefix) as obs:
            node = SimNode(
                mosquitto, "--prefix", prefix, "--port", str(proxy.port), scenario=scenario,
                node="frozen4",
            )  # fmt: skip
            nodes.append(node)
            await node.wait_line("mqtt: connected")
            await obs.wait_topic(f"{prefix}/frozen4/house2/state")
            proxy.freeze()
            # Shorter than the 10 s acknowledgement timeout: the connection stays up throughout.
            polls, sim_s = await _polls_over(node, 6)
            await node.wait_line(r"readings dropped: publish queue full")
            proxy.thaw()
            await node.wait_line(r"publishing caught up; \d+ readings were dropped")
            await asyncio.sleep(1.5)
            decoded = obs.decoded()
            log = node.output()  # before the proxy closes the connection
    assert polls >= 11, f"{polls} cycles in {sim_s} s frozen"
    assert polls / sim_s >= 0.9 * 2
    assert "connection lost" not in log
    for meter in ("line1", "house1", "line2", "house2"):
        topic = f"{prefix}/frozen4/{meter}/state"
        states = [(json.loads(m.payload), d) for m, d in decoded if m.topic == topic]
        # The integration's codec takes every state, `dropped` included.
        assert all(isinstance(d, codec.Snapshot) for _, d in states), states[-1]
        seqs = [s["seq"] for s, _ in states]
        assert seqs == sorted(seqs)
        gaps = sum(b - a - 1 for a, b in itertools.pairwise(seqs))
        assert gaps > 0, meter
        # Every reading missing from the broker's stream is counted in the next one's `dropped`.
        assert states[-1][0]["dropped"] == gaps, (meter, seqs, states[-1][0])
