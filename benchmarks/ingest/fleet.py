"""A lightweight protocol v1 publisher: N virtual nodes with one line/house pair each.

Each node publishes its retained announce and status once, then one snapshot per meter per
period. Snapshots carry their publish time in `ts`, so a consumer can measure broker-to-consumer
latency. Publishing is spread evenly over the period, as real nodes drift apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass

import aiomqtt

from custom_components.smart_energy_meter.semcore import protocol as p

CONNECTIONS = 8  # virtual nodes share a few connections; the broker is not what is measured


@dataclass(frozen=True)
class VirtualNode:
    """One node id with a line and a house meter forming the pair `house`."""

    node: str

    def announce(self) -> bytes:
        return p.encode_announce(
            p.Announce(
                node=self.node,
                version=p.PROTOCOL_VERSION,
                name=self.node,
                model="virtual",
                firmware="bench",
                mac=None,
                interval=1.0,
                meters=(
                    p.MeterInfo("line", p.Role.LINE, "house", 1),
                    p.MeterInfo("house", p.Role.HOUSE, "house", 2),
                ),
                relays=(),
            )
        )


def node_ids(count: int) -> list[str]:
    """Ids of the virtual nodes."""
    return [f"bench-{n:04d}" for n in range(count)]


def snapshot(node: str, meter: str, seq: int, power: float) -> bytes:
    """A plausible reading stamped with the current time."""
    return p.encode_state(
        p.Snapshot(
            node, meter, seq, round(time.time(), 6), 230.0, round(power / 230, 3),
            power, 1000.0 + seq, 50.0, 1.0, False,
        )
    )  # fmt: skip


async def announce_all(host: str, port: int, prefix: str, nodes: list[str]) -> None:
    """Publish every node's retained announce and status."""
    async with aiomqtt.Client(host, port, identifier="bench-announcer") as client:
        for node in nodes:
            await client.publish(
                p.announce_topic(prefix, node), VirtualNode(node).announce(), qos=1, retain=True
            )
            await client.publish(p.status_topic(prefix, node), b"online", qos=1, retain=True)


async def clear_all(host: str, port: int, prefix: str, nodes: list[str]) -> None:
    """Remove the retained messages the fleet left."""
    async with aiomqtt.Client(host, port, identifier="bench-cleaner") as client:
        for node in nodes:
            await client.publish(p.announce_topic(prefix, node), b"", qos=1, retain=True)
            await client.publish(p.status_topic(prefix, node), b"", qos=1, retain=True)
            for meter in ("line", "house"):
                await client.publish(p.state_topic(prefix, node, meter), b"", qos=1, retain=True)


async def _publish_share(
    host: str, port: int, prefix: str, nodes: list[str], seconds: float, index: int
) -> int:
    sent = 0
    period = 1.0
    async with aiomqtt.Client(host, port, identifier=f"bench-pub-{index}") as client:
        start = time.monotonic()
        seq = 0
        while time.monotonic() - start < seconds:
            tick = time.monotonic()
            for n, node in enumerate(nodes):
                # Spread this share's nodes evenly over the period.
                due = tick + period * n / max(len(nodes), 1)
                if (delay := due - time.monotonic()) > 0:
                    await asyncio.sleep(delay)
                # Power changes with every snapshot, so every snapshot is a state change.
                line = 200.0 + (n % 50) + (seq % 10) / 10
                for meter, power in (("line", line), ("house", line * 0.99)):
                    await client.publish(
                        p.state_topic(prefix, node, meter),
                        snapshot(node, meter, seq, power),
                        qos=0,
                        retain=True,
                    )
                    sent += 1
            seq += 1
            if (rest := tick + period - time.monotonic()) > 0:
                await asyncio.sleep(rest)
    return sent


async def publish(host: str, port: int, prefix: str, nodes: list[str], seconds: float) -> int:
    """Publish snapshots at 1 Hz per meter for `seconds`; return how many were sent."""
    shares = [nodes[i::CONNECTIONS] for i in range(CONNECTIONS) if nodes[i::CONNECTIONS]]
    counts = await asyncio.gather(
        *(_publish_share(host, port, prefix, share, seconds, i) for i, share in enumerate(shares))
    )
    return sum(counts)


@contextlib.asynccontextmanager
async def running_fleet(host: str, port: int, prefix: str, nodes: list[str], seconds: float):  # type: ignore[no-untyped-def]
    """Run the publisher in the background for the duration of a block."""
    task = asyncio.create_task(publish(host, port, prefix, nodes, seconds))
    try:
        yield task
    finally:
        if not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
