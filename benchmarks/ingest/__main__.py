"""Ingest benchmark: python -m benchmarks.ingest [--pairs 10,100,500,1000] [--seconds 20].

For each fleet size it starts a mosquitto on 127.0.0.1 and a publisher process with one virtual
node per pair (two snapshots per pair per second), then measures two consumers of that stream in
turn: the bare aiomqtt loop that only decodes (the ceiling), and the integration in a real Home
Assistant. Figures only; nothing is asserted.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import sys
import tempfile
from pathlib import Path

from benchmarks.ingest import ceiling, home_assistant
from benchmarks.ingest.ceiling import Figures
from tests.mosquitto import running_broker

WARMUP = 3.0


def machine() -> str:
    """One line naming the machine the figures come from."""
    cpu = "unknown CPU"
    with open("/proc/cpuinfo") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def row(label: str, pairs: int, figures: Figures, ceiling: Figures | None = None) -> str:
    ratio = f"{figures.rate / ceiling.rate:.2f}" if ceiling and ceiling.rate else "1.00"
    return (
        f"| {label} | {pairs} | {2 * pairs} | {figures.rate:.0f} | {figures.percentile(0.5):.1f} "
        f"| {figures.percentile(0.99):.1f} | {figures.cpu_per_1000:.3f} | {ratio} |"
    )


async def measure(consumer: str, port: int, pairs: int, seconds: float) -> Figures:
    # The publisher is its own process so that its CPU time is not counted as the consumer's.
    publisher = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "benchmarks.ingest.publish", str(port), str(pairs),
        str(seconds + WARMUP + 30),
    )  # fmt: skip
    try:
        if consumer == "ceiling":
            return await ceiling.consume("127.0.0.1", port, "bench", WARMUP, seconds)
        return await home_assistant.consume(port, "bench", pairs, WARMUP, seconds)
    finally:
        publisher.terminate()
        await publisher.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", default="10,100,500,1000")
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    print(f"machine: {machine()}")
    print("| consumer | pairs | offered snapshots/s | processed/s | p50 ms | p99 ms "
          "| CPU s per 1000 | ratio to ceiling |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|")
    for pairs in (int(n) for n in args.pairs.split(",")):
        with (
            tempfile.TemporaryDirectory() as tmp,
            running_broker(Path(tmp)) as broker,
        ):
            top = asyncio.run(measure("ceiling", broker.port, pairs, args.seconds))
        print(row("bare aiomqtt + codec", pairs, top), flush=True)
        with (
            tempfile.TemporaryDirectory() as tmp,
            running_broker(Path(tmp)) as broker,
        ):
            ha = asyncio.run(measure("home_assistant", broker.port, pairs, args.seconds))
        print(row("Home Assistant + integration", pairs, ha, top), flush=True)


if __name__ == "__main__":
    main()
