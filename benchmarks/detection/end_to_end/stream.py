"""Scenario files end to end: a real mosquitto, the firmware simulator, and a plain subscriber
that decodes every message with the integration's codec and feeds each pair's detectors.

One `scripts/simulate` per scenario file (its nodes run the real firmware under the MicroPython
unix port, against emulated PZEM-004T meters), all at once, each under its own topic prefix.
The simulators stop by themselves after the file's `duration_s` of simulated time.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
import signal
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import aiomqtt

from benchmarks.detection.detectors import Detector, Ours, PaperDebounced, PaperInstant
from benchmarks.detection.end_to_end.truth import PairTruth, ScenarioFile
from benchmarks.detection.evaluate import OURS, OURS_CUSUM, Score, tally
from benchmarks.detection.scenarios import DAY
from benchmarks.detection.simulation import MeterRead
from custom_components.smart_energy_meter.semcore import protocol as codec
from custom_components.smart_energy_meter.semcore.debounce import DebounceConfig, DebounceMode
from custom_components.smart_energy_meter.semcore.energy_balance import TheftConfig
from tests.mosquitto import Broker, running_broker

REPO = Path(__file__).resolve().parents[3]
SIMULATE = REPO / "scripts" / "simulate"
# run.py's start line: "[node 0.1] node NODE: ..., sim time 0 at unix 1764072000000 ms"
_EPOCH = re.compile(r"\] node (\S+): .*sim time 0 at unix (\d+) ms")
_STARTUP_S = 60.0  # allowance on top of the simulated duration for starting and stopping


def detectors_for(config: TheftConfig) -> list[Detector]:
    """The paper's rule, the integration's debounced rule, and ours (both debounce modes)."""
    cusum = replace(config, debounce=DebounceConfig(mode=DebounceMode.CUSUM))
    return [
        PaperInstant(),
        PaperDebounced(),
        Ours(config, name=OURS),
        Ours(cusum, name=OURS_CUSUM),
    ]


@dataclass
class PairFeed:
    truth: PairTruth
    detectors: list[Detector]
    readings: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})  # by is_line
    sensor_errors: dict[bool, int] = field(default_factory=lambda: {True: 0, False: 0})


@dataclass
class Traffic:
    """What the subscriber got for one scenario file."""

    snapshots: int = 0
    sensor_errors: int = 0
    rejected: int = 0
    missed: int = 0  # publications missing from the seq numbers
    unknown: int = 0  # readings of meters no announce named
    longest_gap_s: float = 0.0  # between two publications of one meter, in simulated time
    long_gaps: int = 0  # gaps longer than the engine bridges (max_hold_s): windows left out
    problems: list[str] = field(default_factory=list)


class Router:
    """Decodes every message and feeds its reading to the detectors of its pair."""

    def __init__(self, files: list[ScenarioFile]) -> None:
        self.files = {f.prefix: f for f in files}
        self.pairs = {
            (f.prefix, p.node, p.pair): PairFeed(p, detectors_for(p.config))
            for f in files
            for p in f.pairs
        }
        self.traffic = {f.prefix: Traffic() for f in files}
        self._meters: dict[tuple[str, str, str], tuple[PairFeed, bool]] = {}
        self._announced: set[tuple[str, str]] = set()
        self._pending: dict[tuple[str, str], list[codec.Snapshot | codec.SensorError]] = {}
        self._seq: dict[tuple[str, str, str], tuple[int, float]] = {}
        self._nodes = {(f.prefix, p.node) for f in files for p in f.pairs}
        self._stopped: set[tuple[str, str]] = set()
        # Set once every node's `offline` status arrived: it follows the node's last reading.
        self.all_stopped = asyncio.Event()

    def handle(self, topic: str, payload: bytes, retained: bool) -> None:
        prefix = next((p for p in self.files if topic.startswith(p + "/")), None)
        if prefix is None or retained:
            # Retained copies predate this run (a broker used before); live ones arrive unflagged.
            return
        message = codec.decode(prefix, topic, payload)
        traffic = self.traffic[prefix]
        match message:
            case codec.Rejected(reason=reason):
                traffic.rejected += 1
                self._problem(traffic, f"{topic}: rejected ({reason})")
            case codec.Announce():
                self._announce(prefix, message)
            case codec.Snapshot() | codec.SensorError():
                self._reading(prefix, message)
            case codec.StatusMessage(node=node, status=codec.NodeStatus.OFFLINE):
                self._stopped.add((prefix, node))
                if self._nodes <= self._stopped:
                    self.all_stopped.set()
            case _:
                pass

    @staticmethod
    def _problem(traffic: Traffic, text: str) -> None:
        if len(traffic.problems) < 10:
            traffic.problems.append(text)

    def _announce(self, prefix: str, announce: codec.Announce) -> None:
        meters = {m.id: m for m in announce.meters}
        for (p, node, _), feed in self.pairs.items():
            if p != prefix or node != announce.node:
                continue
            for meter_id, role, is_line in (
                (feed.truth.line_meter, codec.Role.LINE, True),
                (feed.truth.house_meter, codec.Role.HOUSE, False),
            ):
                info = meters.get(meter_id)
                if info is None or info.role is not role or info.pair != feed.truth.pair:
                    self._problem(
                        self.traffic[prefix],
                        f"{node}: the announce does not have {meter_id} as the {role.value} "
                        f"meter of {feed.truth.pair}",
                    )
                    continue
                self._meters[(prefix, node, meter_id)] = (feed, is_line)
        self._announced.add((prefix, announce.node))
        for reading in self._pending.pop((prefix, announce.node), []):
            self._reading(prefix, reading)

    def _reading(self, prefix: str, message: codec.Snapshot | codec.SensorError) -> None:
        traffic = self.traffic[prefix]
        node_key = (prefix, message.node)
        if node_key not in self._announced:
            self._pending.setdefault(node_key, []).append(message)
            return
        key = (prefix, message.node, message.meter)
        last = self._seq.get(key)
        if last is not None:
            traffic.missed += max(0, message.seq - last[0] - 1)
            gap = message.ts - last[1]
            traffic.longest_gap_s = max(traffic.longest_gap_s, gap)
            traffic.long_gaps += gap > TheftConfig().max_hold_s
        self._seq[key] = (message.seq, message.ts)
        target = self._meters.get(key)
        if target is None:
            traffic.unknown += 1
            return
        feed, is_line = target
        if isinstance(message, codec.Snapshot):
            traffic.snapshots += 1
            feed.readings[is_line] += 1
            read = MeterRead(
                message.ts,
                True,
                message.voltage,
                message.current,
                message.power,
                message.energy,
            )
        else:
            traffic.sensor_errors += 1
            feed.sensor_errors[is_line] += 1
            read = MeterRead(message.ts, False)
        for detector in feed.detectors:
            detector.feed(is_line, read)


class Simulator:
    """One `scripts/simulate` process, its output kept, and the nodes' simulated-time origins."""

    def __init__(self, proc: asyncio.subprocess.Process, file: ScenarioFile) -> None:
        self.proc = proc
        self.file = file
        self.lines: list[str] = []
        self.epochs: dict[str, float] = {}  # node -> Unix time (s) of its simulated time 0
        self.timed_out = False
        self._reader = asyncio.create_task(self._read())

    @classmethod
    async def start(cls, file: ScenarioFile, broker: Broker, speed: float | None) -> Simulator:
        args = [
            str(SIMULATE),
            str(file.path),
            "--host",
            broker.host,
            "--port",
            str(broker.port),
            "--prefix",
            file.prefix,
            "--duration",
            f"{file.duration_s:g}",
        ]
        if speed is not None:
            args += ["--speed", f"{speed:g}"]
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        return cls(proc, file)

    async def _read(self) -> None:
        assert self.proc.stdout is not None
        async for raw in self.proc.stdout:
            line = raw.decode(errors="replace").rstrip("\n")
            self.lines.append(line)
            if found := _EPOCH.search(line):
                self.epochs[found.group(1)] = int(found.group(2)) / 1000.0

    async def wait(self, within: float) -> int:
        """Wait for the run to end by itself; stop it (SIGTERM) when it takes too long."""
        try:
            await asyncio.wait_for(self.proc.wait(), within)
        except TimeoutError:
            self.timed_out = True
            self.lines.append(f"(still running after {within:.0f} s: stopped)")
            await self.stop()
        await self._reader
        return self.proc.returncode if self.proc.returncode is not None else -1

    async def stop(self) -> None:
        if self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(self.proc.wait(), 15)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()

    def output(self, tail: int = 40) -> str:
        return "\n".join(self.lines[-tail:])


@dataclass
class Result:
    files: list[ScenarioFile]
    scores: list[Score]
    traffic: dict[str, Traffic]  # by scenario name
    pairs: list[PairFeed]
    real_s: float
    speeds: dict[str, float]  # by scenario name
    cpu_s: dict[str, float]  # CPU time of the subscriber (with the detectors) and the simulators


def score(file: ScenarioFile, router: Router, epochs: dict[str, float]) -> list[Score]:
    """One score per detector, summed over the file's pairs."""
    by_detector: dict[str, list[tuple[PairTruth, Detector]]] = {}
    for pair in file.pairs:
        for detector in router.pairs[(file.prefix, pair.node, pair.pair)].detectors:
            by_detector.setdefault(detector.name, []).append((pair, detector))
    scores = []
    for name, entries in by_detector.items():
        episodes = detected = fast = false = 0
        latencies: list[float] = []
        quiet_s = 0.0
        for pair, detector in entries:
            found = tally(detector.alarms, epochs[pair.node], list(pair.episodes), pair.kind)
            episodes += len(pair.episodes)
            detected += found.detected
            fast += found.fast
            false += found.false_alarms
            latencies += found.latencies
            quiet_s += file.duration_s - sum(b - a for a, b in pair.episodes)
        scores.append(
            Score(
                file.name,
                file.group,
                name,
                len(entries) * file.duration_s / DAY,
                episodes,
                detected,
                fast,
                tuple(latencies),
                false,
                quiet_s / DAY,
            )
        )
    return scores


@contextlib.contextmanager
def _broker(broker: Broker | None) -> Iterator[Broker]:
    if broker is not None:
        yield broker
        return
    with (
        tempfile.TemporaryDirectory(prefix="sem-detection-") as workdir,
        running_broker(Path(workdir)) as own,
    ):
        yield own


async def run(
    files: list[ScenarioFile], broker: Broker | None = None, speed: float | None = None
) -> Result:
    """Run the scenario files at once and score every pair; a broker is started if none is
    given. `speed` overrides the files' own (simulated seconds per real second)."""
    started = time.perf_counter()
    own, children = resource.getrusage(resource.RUSAGE_SELF), _children_cpu()
    router = Router(files)
    with _broker(broker) as mqtt:
        async with aiomqtt.Client(mqtt.host, mqtt.port) as client:
            for file in files:
                await client.subscribe(file.prefix + "/#", qos=1)

            async def consume() -> None:
                async for message in client.messages:
                    payload = message.payload if isinstance(message.payload, bytes) else b""
                    router.handle(message.topic.value, payload, message.retain)

            consumer = asyncio.create_task(consume())
            sims: list[Simulator] = []
            try:
                for file in files:
                    sims.append(await Simulator.start(file, mqtt, speed))
                waits = [
                    sim.wait(sim.file.duration_s / (speed or sim.file.speed) + _STARTUP_S)
                    for sim in sims
                ]
                codes = await asyncio.gather(*waits)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(router.all_stopped.wait(), 10.0)
            finally:
                for sim in sims:
                    await sim.stop()
                consumer.cancel()
                with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                    await consumer
    for sim, code in zip(sims, codes, strict=True):
        missing = {p.node for p in sim.file.pairs} - set(sim.epochs)
        if code != 0 or missing or sim.timed_out:
            raise RuntimeError(
                f"simulator of {sim.file.path.name} exited with {code}"
                + (f", no start line from {sorted(missing)}" if missing else "")
                + f":\n{sim.output()}"
            )
    scores = [s for sim in sims for s in score(sim.file, router, sim.epochs)]
    now = resource.getrusage(resource.RUSAGE_SELF)
    cpu = {
        "subscriber": now.ru_utime + now.ru_stime - own.ru_utime - own.ru_stime,
        "simulators and broker": _children_cpu() - children,
    }
    return Result(
        files,
        scores,
        {f.name: router.traffic[f.prefix] for f in files},
        list(router.pairs.values()),
        time.perf_counter() - started,
        {f.name: speed or f.speed for f in files},
        cpu,
    )


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime
