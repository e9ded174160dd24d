"""`scripts/fleet`: the service on this machine, end to end, and what its report shows."""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from .report import render
from .stack import Stack, report_now


def run_cluster(workdir: Path) -> None:
    """Run the three servers until interrupted, printing where they listen."""
    stack = Stack(workdir)
    stack.start_cluster()
    for server in stack.cluster.servers:
        print(f"{server.name}: NATS {server.url}  MQTT 127.0.0.1:{server.mqtt_port}", flush=True)
    try:
        while True:
            time.sleep(3600)
    finally:
        stack.stop()


def run_demo(args: argparse.Namespace) -> None:
    """Cluster, workers and virtual fleet for `args.seconds`, then the report."""
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="semservice-"))
    stack = Stack(workdir, args.prefix, args.partitions, args.workers, overrides=args.overrides)
    try:
        print(f"Starting the three servers (work directory {workdir})", flush=True)
        stack.start_cluster()
        for index in range(args.workers):
            stack.start_worker(index)
        print(
            f"{args.workers} workers, {args.partitions} partitions; virtual fleet of "
            f"{args.pairs} pairs ({args.thieves} with a 20 % bypass) for {args.seconds:.0f} s",
            flush=True,
        )
        stack.start_fleet(args.pairs, args.thieves)
        time.sleep(args.seconds)
        sent, _ = stack.stop_fleet()
        time.sleep(stack.checkpoint_s + 1)  # the last readings into the checkpoints
        print(f"The fleet sent {sent} snapshots.\n", flush=True)
        print(render(report_now(stack)), flush=True)
    finally:
        stack.stop()
