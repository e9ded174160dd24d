"""End-to-end helpers: a simulated node process and a plain MQTT observer (aiomqtt)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import shutil
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

import aiomqtt

from custom_components.smart_energy_meter.semcore import protocol as codec
from tests.mosquitto import Broker

REPO = Path(__file__).parents[2]
RUN = REPO / "firmware" / "semsim" / "run.py"
SCENARIO = Path(__file__).parent / "scenarios" / "e2e.json"


class SimNode:
    """One `micropython firmware/semsim/run.py` process, steered through its stdin."""

    def __init__(
        self,
        broker: Broker,
        *extra: str,
        scenario: Path = SCENARIO,
        node: str = "e2e-node",
        run: Path = RUN,
    ) -> None:
        binary = shutil.which("micropython")
        assert binary, "micropython is not installed"
        cmd = [
            binary,
            str(run),
            str(scenario),
            node,
            "--host",
            broker.host,
            "--port",
            str(broker.port),
            "--control",
            *extra,
        ]
        self.proc = subprocess.Popen(
            cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line.rstrip("\n"))

    def send(self, command: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(command + "\n")
        self.proc.stdin.flush()

    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_line(self, pattern: str, within: float = 10.0) -> re.Match[str]:
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in list(self.lines):
                if found := regex.search(line):
                    return found
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.output()[-3000:]}")

    async def stats(self) -> dict[str, str]:
        count = sum("stats:" in line for line in self.lines)
        self.send("stats")
        deadline = time.monotonic() + 5
        while sum("stats:" in line for line in self.lines) == count:
            assert time.monotonic() < deadline, self.output()[-2000:]
            await asyncio.sleep(0.05)
        line = [line for line in self.lines if "stats:" in line][-1]
        return dict(item.split("=", 1) for item in line.split("stats: ")[1].split())

    def stop(self, within: float = 10.0) -> int:
        if self.proc.poll() is None:
            with contextlib.suppress(OSError):
                self.send("quit")
            try:
                self.proc.wait(within)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(2)
        return self.proc.returncode

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._reader.join(2)


@dataclass
class Seen:
    """One message as a plain subscriber received it."""

    topic: str
    payload: bytes
    retain: bool
    at: float = field(default_factory=time.monotonic)


class Observer:
    """A plain aiomqtt subscriber on `<prefix>/#`, keeping everything it receives."""

    def __init__(self, client: aiomqtt.Client, prefix: str) -> None:
        self.client = client
        self.prefix = prefix
        self.messages: list[Seen] = []

    async def _collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            self.messages.append(Seen(message.topic.value, payload, message.retain))

    def decoded(self, since: float = 0.0) -> list[tuple[Seen, object]]:
        return [
            (m, codec.decode(self.prefix, m.topic, m.payload, retained=m.retain))
            for m in self.messages
            if m.at >= since
        ]

    def on(self, topic: str, since: float = 0.0) -> list[Seen]:
        return [m for m in self.messages if m.topic == topic and m.at >= since]

    async def wait(
        self, predicate: Callable[[list[Seen]], bool], within: float = 10.0, what: str = ""
    ) -> None:
        deadline = time.monotonic() + within
        while not predicate(self.messages):
            if time.monotonic() > deadline:
                topics = sorted({m.topic for m in self.messages})
                raise AssertionError(f"timed out waiting for {what}; topics seen: {topics}")
            await asyncio.sleep(0.05)

    async def wait_topic(
        self, topic: str, payload: bytes | None = None, since: float = 0.0, within: float = 10.0
    ) -> Seen:
        def match(messages: list[Seen]) -> bool:
            return any(
                m.topic == topic and m.at >= since and (payload is None or m.payload == payload)
                for m in messages
            )

        await self.wait(match, within, f"{topic} {payload!r}")
        return next(
            m
            for m in reversed(self.messages)
            if m.topic == topic and m.at >= since and (payload is None or m.payload == payload)
        )


@contextlib.asynccontextmanager
async def observe(broker: Broker, prefix: str = "sem", **auth: str) -> AsyncIterator[Observer]:
    async with aiomqtt.Client(broker.host, broker.port, **auth) as client:  # type: ignore[arg-type]
        observer = Observer(client, prefix)
        await client.subscribe(prefix + "/#", qos=1)
        task = asyncio.create_task(observer._collect())
        try:
            yield observer
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


def meters_scenario(
    path: Path, node: str, meters: int, uarts: int = 1, interval: float = 1.0
) -> Path:
    """A node with `meters` PZEMs (line/house pairs) spread evenly over `uarts` UARTs, at the
    9600-baud wire timing, written to `path`."""
    uart_specs = [{"id": 2, "tx": 17, "rx": 16}, {"id": 1, "tx": 33, "rx": 32}][:uarts]
    houses = []
    for index in range(meters // 2):
        uart = uart_specs[index * uarts // (meters // 2)]["id"]
        houses.append(
            {
                "pair": f"house{index + 1}",
                "line": {"id": f"line{index + 1}", "addr": 2 * index + 1, "uart": uart},
                "house": {"id": f"house{index + 1}", "addr": 2 * index + 2, "uart": uart},
                "load": {"constant": 100 + 10 * index, "pf": 0.9},
            }
        )
    scenario = {
        "name": path.stem,
        "interval": interval,
        "seed": 7,
        "wire_timing": True,
        "pzem": {"min_gap_ms": 0, "timeout_ms": 200, "retries": 1},
        "nodes": [{"node": node, "uarts": uart_specs, "houses": houses}],
    }
    path.write_text(json.dumps(scenario))
    return path
