"""The whole service on one machine, as separate processes: the three servers, the workers
(`python -m semservice worker`) and the virtual fleet (`python -m benchmarks.fleet.publish`).
`scripts/fleet`, the fault tests and the benchmark start and kill them through this.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import nats

from . import layout
from .cluster import Cluster, free_port
from .report import Report, read_report

REPO = Path(__file__).resolve().parents[1]


@dataclass
class WorkerProcess:
    """One worker process and where it reports."""

    index: int
    metrics_port: int
    log: Path
    proc: subprocess.Popen[bytes]

    def metrics(self) -> str:
        """Its /metrics text ("" when it does not answer)."""
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                text: str = response.read().decode()
                return text
        except OSError:
            return ""


@dataclass
class Stack:
    """Cluster, workers and fleet under one work directory."""

    workdir: Path
    prefix: str = "fleet"
    partitions: int = 8
    workers: int = 2
    lease_s: float = 5.0
    checkpoint_s: float = 5.0
    overrides: Path | None = None
    cluster: Cluster = field(init=False)
    running: dict[int, WorkerProcess] = field(default_factory=dict)
    fleet: subprocess.Popen[bytes] | None = None
    fleet_seq: int = 0  # the reading number a restarted fleet goes on from

    def __post_init__(self) -> None:
        self.workdir = self.workdir.resolve()
        self.cluster = Cluster(self.workdir / "cluster")

    @property
    def servers(self) -> str:
        """The servers' URLs, comma-separated."""
        return ",".join(self.cluster.urls)

    def start_cluster(self) -> None:
        """Start the three servers, with the streams and buckets in place and every MQTT
        listener answering before any node or worker connects (nothing published before is
        lost to the stream, no first connect waits for the server's MQTT setup)."""
        self.cluster.start()
        asyncio.run(self._ensure())
        self.cluster.wait_mqtt()

    async def _ensure(self) -> None:
        nc = await nats.connect(servers=self.cluster.urls)
        try:
            await layout.ensure(nc.jetstream(), self.prefix, self.partitions, 3, self.lease_s)
        finally:
            await nc.close()

    def start_worker(self, index: int) -> WorkerProcess:
        """Start worker `index` of `workers`."""
        log = self.workdir / f"worker-{index}.log"
        port = free_port()
        command = [
            sys.executable, "-m", "semservice", "worker", "--servers", self.servers,
            "--index", str(index), "--workers", str(self.workers),
            "--prefix", self.prefix, "--partitions", str(self.partitions),
            "--lease-s", str(self.lease_s), "--checkpoint-s", str(self.checkpoint_s),
            "--metrics-port", str(port),
            "--mqtt", ",".join(f"127.0.0.1:{s.mqtt_port}" for s in self.cluster.servers),
        ]  # fmt: skip
        if self.overrides is not None:
            command += ["--overrides", str(self.overrides)]
        with log.open("ab") as out:
            proc = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT)
        worker = self.running[index] = WorkerProcess(index, port, log, proc)
        return worker

    def kill_worker(self, index: int) -> None:
        """Kill a worker outright (SIGKILL): no checkpoint, no lease given back."""
        worker = self.running.pop(index)
        worker.proc.send_signal(signal.SIGKILL)
        worker.proc.wait(10)

    def stop_worker(self, index: int) -> int:
        """Stop a worker cleanly (it checkpoints and gives its leases back); its exit status."""
        worker = self.running.pop(index)
        worker.proc.terminate()
        try:
            return worker.proc.wait(30)
        except subprocess.TimeoutExpired:
            worker.proc.kill()
            worker.proc.wait(5)
            raise

    def start_fleet(
        self, pairs: int, thieves: int, server: int = 0, *, retained: bool = False
    ) -> None:
        """Start the virtual fleet on server `server`'s MQTT listener (the others its fallback,
        in turn), going on from the last reading number an earlier fleet sent; `retained`: its
        messages retained, as a real node's (see benchmarks/fleet/publish.py for what that costs
        one connection)."""
        ports = self.cluster.mqtt_ports
        listeners = ",".join(str(port) for port in ports[server:] + ports[:server])
        log = self.workdir / "fleet.log"
        with log.open("ab") as out:
            self.fleet = subprocess.Popen(
                [sys.executable, "-m", "benchmarks.fleet.publish", listeners, str(pairs),
                 str(self.fleet_seq), str(thieves), self.prefix,
                 "retained" if retained else "unretained"],
                cwd=REPO, stdout=subprocess.PIPE, stderr=out,
            )  # fmt: skip

    def stop_fleet(self) -> tuple[int, int]:
        """Stop the fleet; (snapshots it sent, the reading number it had reached)."""
        assert self.fleet is not None
        self.fleet.terminate()
        out, _ = self.fleet.communicate(timeout=15)
        self.fleet = None
        reports = [line for line in out.decode().split("\n") if line.strip()]
        if not reports:
            return 0, self.fleet_seq - 1  # stopped before it sent a snapshot
        sent, _, seq = reports[-1].split()
        self.fleet_seq = int(seq) + 1
        return int(sent), int(seq)

    def stop(self) -> None:
        """Stop everything that runs."""
        if self.fleet is not None:
            with contextlib.suppress(Exception):
                self.stop_fleet()
        for index in list(self.running):
            with contextlib.suppress(Exception):
                self.stop_worker(index)
        self.cluster.stop()

    def worker_logs(self) -> str:
        """Every worker's log, for failure messages."""
        return "\n".join(
            f"--- worker {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(self.workdir.glob("worker-*.log"))
        )

    async def report(self) -> Report:
        """The report, from the checkpoints."""
        nc = await nats.connect(servers=self.cluster.running_urls)
        try:
            checkpoints = await nc.jetstream().key_value(layout.CHECKPOINTS)
            return await read_report(checkpoints, self.prefix, self.partitions)
        finally:
            await nc.close()


def wait_for(condition: object, within: float, what: str, step: float = 0.5) -> float:
    """Poll `condition()` until true; the seconds it took (TimeoutError naming `what`)."""
    assert callable(condition)
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > within:
            raise TimeoutError(f"{what}: not within {within} s")
        time.sleep(step)
    return time.monotonic() - started


def report_now(stack: Stack) -> Report:
    """The report, from synchronous code."""
    return asyncio.run(stack.report())
