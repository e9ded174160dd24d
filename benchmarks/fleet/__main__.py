"""The fleet service's benchmark: prints figures, asserts none.

    python -m benchmarks.fleet [PAIRS ...] [--seconds S] [--workers N] [--partitions P]

For each fleet size (default 1,000 and 10,000 pairs): the three-server cluster, N workers
(separate processes) and the virtual fleet at one snapshot per meter per second (2 per pair),
unretained at QoS 1, through one server's MQTT listener. After a warm-up it measures for S seconds:
messages applied per second against those offered, the workers' CPU time (pairs per worker
core at 1 Hz = pairs x wall seconds / worker CPU seconds), the lag left, the latency from a
snapshot's `ts` (its publish) to its evaluation (p50/p99 of the workers' samples), the time
from the start to each thief's alarm; then it kills worker 0 and measures until the survivor
holds every partition caught up. When the workers fall behind the fleet, it also stops the
fleet and measures how fast they catch up (their throughput per core without the publisher).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
import tempfile
import time
from pathlib import Path

import nats

from benchmarks.fleet.publish import node_id, thieves
from semservice import layout
from semservice.stack import Stack, WorkerProcess, report_now, wait_for
from tests.service.cluster_tools import events, metric, readings_stream

WARMUP_S = 20.0
DRAIN_S = 30.0
RETAINED_PROBE_PAIRS = 100


def retained_rate(stack: Stack) -> float:
    """Retained messages per second one MQTT connection gets stored: a fleet of
    RETAINED_PROBE_PAIRS nodes announcing itself, retained, as real nodes do."""
    before, _ = readings_stream(stack)
    started = time.monotonic()
    stack.start_fleet(RETAINED_PROBE_PAIRS, 0, retained=True)
    wanted = before + 2 * RETAINED_PROBE_PAIRS
    wait_for(lambda: readings_stream(stack)[0] >= wanted, 300, "retained announces", 0.2)
    took = time.monotonic() - started
    stack.stop_fleet()
    return 2 * RETAINED_PROBE_PAIRS / took


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quantiles(workers: list[WorkerProcess]) -> tuple[float, float]:
    """The p50 and p99 latency over the workers' samples (their mean, per quantile)."""
    found: dict[str, list[float]] = {"0.5": [], "0.99": []}
    for worker in workers:
        for line in worker.metrics().splitlines():
            if line.startswith("semsvc_reading_latency_seconds"):
                quantile = line.split('quantile="')[1].split('"')[0]
                found[quantile].append(float(line.split()[-1]))
    # The slower worker's: a fleet's figure is its worst partition's.
    return (max(found["0.5"], default=float("nan")), max(found["0.99"], default=float("nan")))


async def _stream_bytes(urls: list[str]) -> tuple[int, int]:
    nc = await nats.connect(servers=urls)
    try:
        info = await nc.jetstream().stream_info(layout.READINGS)
        return info.state.messages, info.state.bytes
    finally:
        await nc.close()


def stream_bytes(stack: Stack) -> tuple[int, int]:
    """Messages and bytes in the readings stream (one replica's)."""
    return asyncio.run(_stream_bytes(stack.cluster.running_urls))


def applied(workers: list[WorkerProcess]) -> int:
    """Messages the workers applied so far."""
    return int(sum(sum(metric(w.metrics(), "semsvc_readings_total").values()) for w in workers))


def run(pairs: int, seconds: float, workers: int, partitions: int) -> None:
    thief_count = max(2, pairs // 100)
    workdir = Path(tempfile.mkdtemp(prefix=f"fleet-bench-{pairs}-", dir=Path.cwd() / ".scratch"))
    stack = Stack(workdir, partitions=partitions, workers=workers, checkpoint_s=5.0)
    try:
        stack.start_cluster()
        running = [stack.start_worker(index) for index in range(workers)]
        retained = retained_rate(stack)
        started = time.time()
        stack.start_fleet(pairs, thief_count)
        time.sleep(WARMUP_S)
        servers = [s.proc.pid for s in stack.cluster.servers if s.proc is not None]
        server0 = sum(cpu_seconds(pid) for pid in servers)
        cpu0 = [cpu_seconds(w.proc.pid) for w in running]
        n0, t0 = applied(running), time.monotonic()
        stored0, _ = readings_stream(stack)
        time.sleep(seconds)
        server1 = sum(cpu_seconds(pid) for pid in servers)
        cpu1 = [cpu_seconds(w.proc.pid) for w in running]
        n1, t1 = applied(running), time.monotonic()
        stored1, _ = readings_stream(stack)
        wall = t1 - t0
        cpu = sum(cpu1) - sum(cpu0)
        rate = (n1 - n0) / wall
        offered = 2 * pairs
        p50, p99 = quantiles(running)
        lag = sum(sum(metric(w.metrics(), "semsvc_lag_messages").values()) for w in running)
        print(f"\n== {pairs} pairs, {workers} workers, {partitions} partitions, {wall:.0f} s")
        print(
            f"offered {offered} msg/s; stored {(stored1 - stored0) / wall:.0f} msg/s; "
            f"applied {rate:.0f} msg/s; lag at the end {lag:.0f} messages"
        )
        print(
            f"the three servers' CPU {(server1 - server0) / wall:.2f} cores in all: "
            f"{(stored1 - stored0) / max(server1 - server0, 1e-9):.0f} messages stored (R3) "
            "per server CPU second"
        )
        print(
            f"worker CPU {cpu / wall:.2f} cores in all; "
            f"{rate / 2 / max(cpu / wall, 1e-9):.0f} pairs at 1 Hz per worker core"
        )
        print(f"retained messages through one MQTT connection: {retained:.0f}/s")
        messages, size = stream_bytes(stack)
        checkpoint = sum(
            sum(metric(w.metrics(), "semsvc_checkpoint_bytes").values()) for w in running
        )
        print(
            f"stream: {size / max(messages, 1):.0f} bytes per message (one replica); "
            f"checkpoints: {checkpoint / pairs:.0f} bytes per pair (compressed)"
        )
        print(f"snapshot publish -> evaluated: p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms")
        alarms = [e for e in events(stack) if e["event"] == "detected"]
        expected = {f"{node_id(n)}/house" for n in thieves(pairs, thief_count)}
        found = {e["pair"] for e in alarms}
        delays = sorted(e["at"] - started for e in alarms)
        print(
            f"thieves flagged {len(found & expected)} of {len(expected)} "
            f"(false alarms {len(found - expected)}); first alarm after "
            f"{delays[0] if delays else float('nan'):.0f} s, last "
            f"{delays[-1] if delays else float('nan'):.0f} s (windows 15 s, 3 to raise)"
        )
        if lag > 2 * pairs:
            # Behind the fleet: how fast the workers catch up once it stops, with the cores to
            # themselves and the servers (their throughput per core without the publisher).
            stack.stop_fleet()
            cpu0 = [cpu_seconds(w.proc.pid) for w in running]
            n0, t0 = applied(running), time.monotonic()
            time.sleep(DRAIN_S)
            cpu1 = [cpu_seconds(w.proc.pid) for w in running]
            n1, t1 = applied(running), time.monotonic()
            rate, cores = (n1 - n0) / (t1 - t0), (sum(cpu1) - sum(cpu0)) / (t1 - t0)
            print(
                f"fleet stopped, catching up for {t1 - t0:.0f} s: applied {rate:.0f} msg/s "
                f"on {cores:.2f} worker cores = {rate / 2 / max(cores, 1e-9):.0f} pairs at 1 Hz "
                f"per worker core"
            )
        survivor = running[1] if workers > 1 else None
        if survivor is not None:
            stack.kill_worker(0)
            killed = time.monotonic()

            def caught_up() -> bool:
                text = survivor.metrics()
                held = metric(text, "semsvc_takeover_seconds")
                lag = metric(text, "semsvc_lag_messages")
                return len(held) == partitions and all(v < 2 * pairs for v in lag.values())

            try:
                took = wait_for(caught_up, 120, "takeover", 0.2)
                print(
                    f"worker 0 killed: its partitions held and caught up by worker 1 after "
                    f"{took:.1f} s (lease {stack.lease_s:.0f} s, checkpoints every "
                    f"{stack.checkpoint_s:.0f} s)"
                )
            except TimeoutError:
                print(
                    f"worker 0 killed: not caught up within 120 s "
                    f"({time.monotonic() - killed:.0f} s)"
                )
        time.sleep(stack.checkpoint_s + 1)  # the report reads the checkpoints
        report = report_now(stack)
        print(f"report: {len(report.flagged)} flagged of {report.pairs} pairs")
    finally:
        stack.stop()


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    parser = argparse.ArgumentParser(prog="benchmarks.fleet")
    parser.add_argument("pairs", type=int, nargs="*", default=[1000, 10000])
    parser.add_argument("--seconds", type=float, default=45.0)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=8)
    args = parser.parse_args()
    (Path.cwd() / ".scratch").mkdir(exist_ok=True)
    for pairs in args.pairs:
        run(pairs, args.seconds, args.workers, args.partitions)


if __name__ == "__main__":
    main()
