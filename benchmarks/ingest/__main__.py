"""Ingest benchmark: python -m benchmarks.ingest [--pairs 10,100,500,1000] [--seconds 20]
[--step-seconds 15] [--repeat 1] [--gc-freeze] [--profile DIR]

For each fleet size it starts a fresh mosquitto on 127.0.0.1 and a publisher process with one
virtual node per pair, and measures consumers of that stream in turn: the bare aiomqtt loop that
only decodes (the ceiling), the integration in a real Home Assistant, and (`--consumers
...,mqtt_peer`) the peer: Home Assistant's own MQTT integration with discovered sensors reading
the same stream (`mqtt_peer_theft`: plus a template sensor per pair for the theft %). Each
consumer is
measured at the offered rate (two snapshots per pair per second, after a warm-up that waits
until every pair shows readings and the start-up backlog is gone), then at saturation: the
offered rate goes up in steps of 1.5x until the consumer no longer keeps up, with one more step
between the last two; the highest rate it kept up with is its saturation throughput. On two or
more cores the consumer runs on its own core, the broker and the publisher on the last one.
Every consumer's run is a process of its own. Figures only; nothing is asserted.

`--broker nats`: the fleet service's three-server NATS cluster instead of mosquitto, the
publisher and the consumer on its first server's MQTT listener, the snapshots unretained (NATS
stores a retained message in a replicated stream before it reads the connection's next packet).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from benchmarks.ingest.ceiling import Ceiling
from benchmarks.ingest.fleet import PAIRS_PER_ENTRY, prefixes
from benchmarks.ingest.home_assistant import HomeAssistantConsumer
from benchmarks.ingest.measure import Figures, Offered, drained, spread, window
from benchmarks.ingest.mqtt_peer import MqttPeerConsumer
from benchmarks.ingest.state_writes import WriteCost
from semservice.cluster import Cluster
from tests.mosquitto import Broker

CEILING_SETTLE = 5.0
FLOOR_ENTITIES = 5000
CHILD_MARK = "ingest run: "
DRAIN_WITHIN = 120.0
STEP_SETTLE = 2.0
STEP_FACTOR = 1.5
# A step is kept up with when this share of the offered snapshots was processed in the window
# (a collection pause moves a few from one window to the next) and the median latency stayed
# below KEPT_UP_P50_MS: no backlog building up.
KEPT_UP_SHARE = 0.95
KEPT_UP_P50_MS = 250.0

LABELS = {
    "ceiling": "bare aiomqtt + codec",
    "home_assistant": "Home Assistant + integration",
    "gc_freeze": "Home Assistant + integration, gc.freeze() after start-up",
    "mqtt_peer": "peer: Home Assistant MQTT integration, discovered sensors",
    "mqtt_peer_theft": "peer + template sensor for the theft %",
}
PEERS = ("mqtt_peer", "mqtt_peer_theft")


def machine() -> str:
    """One line naming the machine the figures come from."""
    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError), open("/proc/cpuinfo", encoding="utf-8") as info:
        for line in info:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


@dataclass(frozen=True)
class Cores:
    """The cores of the consumer (this process) and of the broker and publisher."""

    consumer: set[int] | None
    publisher: set[int] | None

    @classmethod
    def split(cls, pin: bool) -> Cores:
        cores = sorted(os.sched_getaffinity(0))
        if not pin or len(cores) < 2:
            return cls(None, None)
        return cls(set(cores[:-1]), {cores[-1]})

    def describe(self) -> str:
        if self.consumer is None or self.publisher is None:
            return "not pinned"
        return (
            f"consumer on cores {sorted(self.consumer)}, "
            f"broker + publisher on {sorted(self.publisher)}"
        )

    @contextlib.contextmanager
    def publishing(self) -> Iterator[None]:
        """Processes started in this block inherit the publisher's cores."""
        if self.publisher is None or self.consumer is None:
            yield
            return
        os.sched_setaffinity(0, self.publisher)
        try:
            yield
        finally:
            os.sched_setaffinity(0, self.consumer)


class Publisher:
    """The publisher process and the rate it reports."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        assert process.stdout is not None
        self.offered = Offered(process.stdout)

    @property
    def next_seq(self) -> int:
        """After stop(): the reading number a next publisher goes on from (energy never goes
        backwards)."""
        return self.offered.seq + 1

    @classmethod
    async def start(
        cls,
        cores: Cores,
        port: int,
        pairs: int,
        mode: str,
        first_seq: int = 0,
        rate: float = 0,
        *,
        discovery: bool = False,
        retained: bool = True,
    ) -> Publisher:
        """`discovery`: the nodes also publish the peer's MQTT-discovery configs; `retained`:
        the snapshots are retained, as the protocol has them."""
        with cores.publishing():
            process = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "benchmarks.ingest.publish", str(port), str(pairs), mode,
                str(first_seq), str(rate), "discovery" if discovery else "-",
                "retained" if retained else "unretained",
                stdout=asyncio.subprocess.PIPE,
            )  # fmt: skip
        return cls(process)

    async def stop(self) -> None:
        """Terminate the publisher and read its last report."""
        with contextlib.suppress(ProcessLookupError):
            self.process.terminate()
        await self.process.wait()
        await self.offered.task


def kept_up(figures: Figures) -> bool:
    return (
        figures.rate >= KEPT_UP_SHARE * figures.offered and figures.percentile(0.5) < KEPT_UP_P50_MS
    )


@dataclass(frozen=True)
class Run:
    paced: Figures
    steps: list[Figures]  # the saturation search, in rising offered rate
    setup_seconds: float
    drain_seconds: float  # after the set-up, until the start-up backlog was gone

    @property
    def saturation(self) -> Figures | None:
        """The highest rate the consumer kept up with (the offered rate counts as a step)."""
        kept = [step for step in (self.paced, *self.steps) if kept_up(step)]
        return max(kept, key=lambda step: step.offered) if kept else None

    @property
    def beyond(self) -> Figures | None:
        """The lowest rate it did not keep up with."""
        missed = [step for step in (self.paced, *self.steps) if not kept_up(step)]
        return min(missed, key=lambda step: step.offered) if missed else None


async def measure(kind: str, cores: Cores, port: int, pairs: int, args: argparse.Namespace) -> Run:
    """One consumer: warm-up, a window at the offered rate, a window at saturation."""
    discovery = kind in PEERS
    retained = args.broker == "mosquitto"
    publisher = await Publisher.start(
        cores, port, pairs, "paced", discovery=discovery, retained=retained
    )
    try:
        consumer: Ceiling | HomeAssistantConsumer | MqttPeerConsumer
        if kind == "ceiling":
            consumer = Ceiling(port, prefixes(pairs))
            settle = CEILING_SETTLE
        elif kind in PEERS:
            consumer = MqttPeerConsumer(port, pairs, theft=kind == "mqtt_peer_theft")
            settle = args.settle
        else:
            consumer = HomeAssistantConsumer(port, pairs, gc_freeze=kind == "gc_freeze")
            settle = args.settle
        async with consumer:
            await consumer.ready(settle)
            drain = await drained(consumer.counter, DRAIN_WITHIN)
            with profiled(args.profile if kind != "ceiling" else None, f"{kind}-{pairs}"):
                paced = await window(consumer.counter, publisher.offered, args.seconds)
            steps: list[Figures] = []

            async def step(rate: float) -> bool:
                nonlocal publisher
                await publisher.stop()
                publisher = await Publisher.start(
                    cores, port, pairs, "flood", publisher.next_seq, rate,
                    discovery=discovery, retained=retained,
                )  # fmt: skip
                await asyncio.sleep(STEP_SETTLE)
                steps.append(await window(consumer.counter, publisher.offered, args.step_seconds))
                return kept_up(steps[-1])

            rate = max(args.step_from, STEP_FACTOR * 2 * pairs)
            while args.step_seconds > 0 and rate <= args.step_max and await step(rate):
                rate *= STEP_FACTOR
            if args.step_seconds > 0 and rate <= args.step_max:
                # One more step between the last rate kept up with and the first one missed.
                await step(rate / STEP_FACTOR**0.5)
            # The stream stops before Home Assistant unloads.
            await publisher.stop()
        setup = 0.0 if isinstance(consumer, Ceiling) else consumer.setup_seconds
        return Run(paced, steps, setup, drain)
    finally:
        await publisher.stop()


@contextlib.contextmanager
def profiled(folder: Path | None, name: str) -> Iterator[None]:
    """Sample the event loop's thread with pyinstrument (pip install pyinstrument) and write
    the call tree to `folder`/`name`.txt, and the session (`pyinstrument --load`) beside it;
    nothing without a folder."""
    if folder is None:
        yield
        return
    from pyinstrument import Profiler  # optional: imported only when asked for

    profiler = Profiler(interval=0.0005, async_mode="disabled")
    profiler.start()
    try:
        yield
    finally:
        profiler.stop()
        folder.mkdir(parents=True, exist_ok=True)
        text = profiler.output_text(unicode=True, show_all=False, short_mode=False)
        (folder / f"{name}.txt").write_text(text, encoding="utf-8")
        profiler.last_session.save(str(folder / f"{name}.pyisession"))


def run_apart(kind: str, pairs: int) -> Run:
    """One consumer's run in a process of its own, with this command's options: no heap left
    over from an earlier run lengthens its collections."""
    argv = [sys.executable, "-m", "benchmarks.ingest", *sys.argv[1:], "--child", f"{kind}:{pairs}"]
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True).stdout
    data = json.loads(out.rpartition(CHILD_MARK)[2])
    return Run(
        Figures(**data["paced"]),
        [Figures(**step) for step in data["steps"]],
        data["setup_seconds"],
        data["drain_seconds"],
    )


def run(kind: str, cores: Cores, pairs: int, args: argparse.Namespace) -> Run:
    with tempfile.TemporaryDirectory() as tmp:
        broker: Broker | Cluster
        if args.broker == "nats":
            broker = Cluster(Path(tmp) / "nats")
            port = broker.servers[0].mqtt_port
        else:
            broker = Broker(Path(tmp))
            port = broker.port
        with cores.publishing():
            broker.start()
        try:
            return asyncio.run(measure(kind, cores, port, pairs, args))
        finally:
            broker.stop()


def paced_row(kind: str, pairs: int, runs: list[Run], ceiling: list[Run] | None) -> str:
    figures = [r.paced for r in runs]
    rates = [f.rate for f in figures]
    ratio = "1.00" if kind == "ceiling" else "n/a"
    if ceiling:
        ratio = spread([f.rate / c.paced.rate for f, c in zip(figures, ceiling, strict=False)], 2)
    return (
        f"| {LABELS[kind]} | {pairs} | {spread([f.offered for f in figures], 0)} "
        f"| {spread(rates, 0)} | {spread([f.percentile(0.5) for f in figures], 1)} "
        f"| {spread([f.percentile(0.99) for f in figures], 1)} "
        f"| {spread([f.cpu_per_1000 for f in figures], 3)} | {ratio} "
        f"| {spread([float(f.full_gcs) for f in figures], 0)} "
        f"| {spread([f.longest_gc_ms for f in figures], 0)} "
        f"| {writes_per_snapshot(kind, figures)} |"
    )


def writes_per_snapshot(kind: str, figures: list[Figures]) -> str:
    if kind == "ceiling":
        return "n/a"
    return spread([f.writes_per_snapshot for f in figures], 2)


def saturation_row(kind: str, pairs: int, runs: list[Run], ceiling: list[Run] | None) -> str:
    tops = [r.saturation for r in runs]
    rates = [t.rate if t is not None else 0.0 for t in tops]
    kept = spread(rates, 0)
    if not any(rates):
        kept = f"below {min(r.paced.offered for r in runs):.0f}"
    ratio = "1.00" if kind == "ceiling" else "n/a"
    if ceiling:
        ratios = [
            rate / c.saturation.rate
            for rate, c in zip(rates, ceiling, strict=False)
            if c.saturation is not None
        ]
        ratio = spread(ratios, 2)
    found = [t for t in tops if t is not None]
    beyond = [r.beyond for r in runs if r.beyond is not None]
    if beyond:
        next_step = (
            f"{spread([b.offered for b in beyond], 0)} → {spread([b.rate for b in beyond], 0)}"
            f" at {spread([100 * b.cpu_seconds / b.seconds for b in beyond], 0)} % CPU"
        )
    else:
        next_step = "not reached (--step-max)"
    return (
        f"| {LABELS[kind]} | {pairs} | {kept} "
        f"| {spread([t.percentile(0.99) for t in found], 1)} "
        f"| {spread([t.cpu_per_1000 for t in found], 3)} "
        f"| {spread([100 * t.cpu_seconds / t.seconds for t in found], 0)} "
        f"| {next_step} | {ratio} |"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", default="10,100,500,1000")
    parser.add_argument("--seconds", type=float, default=20.0, help="window at the offered rate")
    parser.add_argument(
        "--step-seconds",
        type=float,
        default=15.0,
        # Long enough that one full-collection pause of Home Assistant's heap (up to about
        # 0.6 s at 1,000 pairs) holds back fewer snapshots than the 5 % a step may miss.
        help="window per saturation step (0: none)",
    )
    parser.add_argument(
        "--step-from", type=float, default=1000.0, help="first saturation step, snapshots/s"
    )
    parser.add_argument(
        "--step-max", type=float, default=40_000.0, help="last saturation step, snapshots/s"
    )
    parser.add_argument(
        "--settle", type=float, default=15.0, help="Home Assistant: seconds after all readings"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs per figure (median, range)")
    parser.add_argument(
        "--consumers",
        default="ceiling,home_assistant",
        help="of ceiling, home_assistant, mqtt_peer, mqtt_peer_theft",
    )
    parser.add_argument(
        "--gc-freeze", action="store_true", help="also measure with gc.freeze() after start-up"
    )
    parser.add_argument(
        "--profile", type=Path, help="folder for a pyinstrument profile of each paced window"
    )
    parser.add_argument(
        "--floor-seconds",
        type=float,
        default=10.0,
        help="Home Assistant's own cost per state write, measured for this long (0: not)",
    )
    parser.add_argument("--no-pin", action="store_true", help="do not pin processes to cores")
    parser.add_argument(
        "--broker",
        choices=("mosquitto", "nats"),
        default="mosquitto",
        help="nats: the fleet service's three-server cluster, through its MQTT listener",
    )
    parser.add_argument("--child", help=argparse.SUPPRESS)  # KIND:PAIRS, one run (run_apart)
    args = parser.parse_args()
    kinds = args.consumers.split(",") + (["gc_freeze"] if args.gc_freeze else [])
    cores = Cores.split(not args.no_pin)
    if cores.consumer is not None:
        os.sched_setaffinity(0, cores.consumer)
    if args.child:
        kind, _, pairs = args.child.partition(":")
        print(CHILD_MARK + json.dumps(dataclasses.asdict(run(kind, cores, int(pairs), args))))
        return
    print(f"machine: {machine()}; {cores.describe()}; broker: {args.broker}")
    print(f"pairs per config entry: at most {PAIRS_PER_ENTRY}; runs per figure: {args.repeat}")
    print()
    print(f"At the offered rate ({args.seconds:g} s window; median, range over the runs):")
    print()
    print(
        "| consumer | pairs | offered snapshots/s | processed/s | p50 ms | p99 ms "
        "| CPU s per 1000 | ratio to ceiling | full GCs | longest GC pause ms "
        "| state writes per snapshot |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    saturation: list[str] = []
    setups: list[str] = []
    floor_runs: dict[str, list[Run]] = {}
    for pairs in (int(n) for n in args.pairs.split(",")):
        results: dict[str, list[Run]] = {}
        for _ in range(args.repeat):
            for kind in kinds:
                results.setdefault(kind, []).append(run_apart(kind, pairs))
        ceiling = results.get("ceiling")
        floor_runs = results  # the largest fleet's, for the bound below
        for kind, runs in results.items():
            top = ceiling if kind != "ceiling" else None
            print(paced_row(kind, pairs, runs, top), flush=True)
            if args.step_seconds > 0:
                saturation.append(saturation_row(kind, pairs, runs, top))
            if kind != "ceiling":
                seconds = spread([r.setup_seconds for r in runs], 0)
                drain = spread([r.drain_seconds for r in runs], 0)
                setups.append(
                    f"{LABELS[kind]}, {pairs} pairs: {seconds} s, backlog gone {drain} s later"
                )
    if saturation:
        print()
        print(
            f"At saturation (offered rate raised by {STEP_FACTOR:g}x per {args.step_seconds:g} s "
            "step; the highest rate kept up with, and the next step: offered → processed, and the "
            "consumer's CPU there. Kept up: at least "
            f"{KEPT_UP_SHARE:.0%} processed, median latency below {KEPT_UP_P50_MS:g} ms):"
        )
        print()
        print("| consumer | pairs | snapshots/s kept up with | p99 ms there | CPU s per 1000 "
              "| CPU % | next step | ratio to ceiling |")  # fmt: skip
        print("|---|---|---|---|---|---|---|---|")
        print("\n".join(saturation))
    if setups:
        print()
        print(
            "Set-up until every pair shows readings; after a further "
            f"{args.settle:g} s, the time until a second's median latency was below 50 ms "
            f"(given up at {DRAIN_WITHIN:g} s): " + "; ".join(setups)
        )
    if floor_runs and args.floor_seconds > 0:
        print()
        print(floor_line(floor_runs, args.floor_seconds))


def floor_line(runs: dict[str, list[Run]], seconds: float) -> str:
    """Home Assistant's own cost per state write, and the bound it sets with the ceiling's cost
    per snapshot and the writes per snapshot measured at the largest fleet."""
    # In a process of its own too, like every run.
    argv = [sys.executable, "-m", "benchmarks.ingest.state_writes", "--json",
            "--entities", str(FLOOR_ENTITIES), "--seconds", str(seconds)]  # fmt: skip
    out = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=True).stdout
    cost = WriteCost(**json.loads(out.splitlines()[-1]))
    line = (
        f"Home Assistant alone (benchmarks.ingest.state_writes, {FLOOR_ENTITIES} sensor "
        f"entities, a state-changed listener): {cost.us_per_write:.1f} µs CPU per state write, "
        f"{cost.full_gcs} full collections in {seconds:g} s (longest {cost.longest_gc_ms:.0f} ms)"
    )
    # The ceiling's work per snapshot where it is cheapest: at saturation, if measured.
    ceiling = [(r.saturation or r.paced).cpu_per_1000 for r in runs.get("ceiling", [])]
    writes = [r.paced.writes_per_snapshot for r in runs.get("home_assistant", [])]
    if not ceiling or not writes:
        return line + "."
    ceiling_us = 1000 * statistics.median(ceiling)
    writes_each = statistics.median(writes)
    per_snapshot_us = ceiling_us + writes_each * cost.us_per_write
    ratio = ceiling_us / per_snapshot_us
    return (
        f"{line}. With the ceiling's own work per snapshot and "
        f"{writes_each:.2f} state writes per snapshot, no integration gets past "
        f"{1e6 / per_snapshot_us:.0f} snapshots/s on one core, {ratio:.2f}x the ceiling."
    )


if __name__ == "__main__":
    main()
