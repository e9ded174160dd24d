"""The fleet service's command line.

    python -m semservice worker --servers URLS --index I --workers N [options]
    python -m semservice report --servers URLS [--prefix fleet] [--partitions 8]
    python -m semservice cluster --workdir DIR
    python -m semservice run [--pairs 1000] [--thieves 10] [--workers 2] [--seconds 90]

`run` starts the three-server cluster, the workers and the virtual fleet on 127.0.0.1, prints
the report when the time is up and stops everything (`scripts/fleet` runs it).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
from pathlib import Path

from .standalone import without_home_assistant

PARTITIONS = 8


def _common(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--prefix", default="fleet", help="the nodes' topic prefix")
    parser.add_argument("--partitions", type=int, default=PARTITIONS)
    parser.add_argument("--replicas", type=int, default=3)


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="semservice", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="hold partitions and run their detection")
    worker.add_argument("--servers", required=True, help="comma-separated NATS URLs")
    worker.add_argument("--index", type=int, required=True)
    worker.add_argument("--workers", type=int, required=True)
    worker.add_argument("--id", default=None, help="the worker's name (default worker-INDEX)")
    worker.add_argument("--overrides", type=Path, default=None, help="pair overrides (JSON)")
    worker.add_argument("--metrics-port", type=int, default=None)
    worker.add_argument("--lease-s", type=float, default=5.0)
    worker.add_argument("--checkpoint-s", type=float, default=5.0)
    worker.add_argument(
        "--mqtt",
        default="",
        help="comma-separated HOST:PORT of MQTT listeners: verdict topics are published there, "
        "retained (without it, they go out unretained through NATS)",
    )
    _common(worker)
    report = commands.add_parser("report", help="the pairs flagged now")
    report.add_argument("--servers", required=True)
    _common(report)
    cluster = commands.add_parser("cluster", help="run the three servers until interrupted")
    cluster.add_argument("--workdir", type=Path, required=True)
    run = commands.add_parser("run", help="cluster, workers and virtual fleet, then the report")
    run.add_argument("--pairs", type=int, default=1000)
    run.add_argument("--thieves", type=int, default=10)
    run.add_argument("--workers", type=int, default=2)
    run.add_argument("--seconds", type=float, default=90.0)
    run.add_argument("--workdir", type=Path, default=None)
    run.add_argument("--overrides", type=Path, default=None)
    _common(run)
    return parser.parse_args(argv)


def _address(text: str) -> tuple[str, int]:
    host, _, port = text.rpartition(":")
    if not host or not port.isdigit():
        raise SystemExit(f"--mqtt: {text!r} is not HOST:PORT")
    return host, int(port)


async def _worker(args: argparse.Namespace) -> None:
    from .pairs import Overrides
    from .worker import Worker, WorkerOptions

    options = WorkerOptions(
        servers=args.servers.split(","),
        prefix=args.prefix,
        partitions=args.partitions,
        worker_id=args.id or f"worker-{args.index}",
        index=args.index,
        workers=args.workers,
        replicas=args.replicas,
        overrides=Overrides.load(args.overrides),
        lease_s=args.lease_s,
        checkpoint_s=args.checkpoint_s,
        metrics_port=args.metrics_port,
        mqtt=[_address(item) for item in args.mqtt.split(",") if item],
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await Worker(options).run(stop)


async def _report(args: argparse.Namespace) -> None:
    import nats

    from . import layout
    from .report import read_report, render

    nc = await nats.connect(servers=args.servers.split(","))
    try:
        checkpoints = await nc.jetstream().key_value(layout.CHECKPOINTS)
        print(render(await read_report(checkpoints, args.prefix, args.partitions)))
    finally:
        await nc.close()


def main(argv: list[str]) -> None:
    # Before anything imports the integration's core: a service runs without Home Assistant.
    without_home_assistant()
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.command == "worker":
        asyncio.run(_worker(args))
    elif args.command == "report":
        asyncio.run(_report(args))
    elif args.command == "cluster":
        from .demo import run_cluster

        run_cluster(args.workdir)
    else:
        from .demo import run_demo

        with contextlib.suppress(KeyboardInterrupt):
            run_demo(args)


if __name__ == "__main__":
    main(sys.argv[1:])
