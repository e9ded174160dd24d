"""A simulated board with its own flash (firmware/semsim/board.py), kept powered: restarted
whenever it resets, as an ESP32's power would; `power_cut()` kills it at any moment."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import aiomqtt

from custom_components.smart_energy_meter.semcore import firmware as fw
from tests.mosquitto import Broker

REPO = Path(__file__).parents[2]
FIRMWARE = REPO / "firmware"
BOARD = FIRMWARE / "semsim" / "board.py"
SHIPPED = REPO / "custom_components" / "smart_energy_meter" / "node_firmware"
RESET_CODES = (3, 75)  # the board resets (semsim.board), its watchdog fires (semsim.run)


def with_version(source: str, version: str) -> str:
    return re.sub(r'^VERSION = "[^"]*"', f'VERSION = "{version}"', source, flags=re.MULTILINE)


def firmware_sources(version: str, patches: dict[str, Callable[[str], str]] | None = None):
    """{path on the board: bytes} of firmware/semfw as sources, at `version`, optionally with
    a module changed (a broken build)."""
    files: dict[str, bytes] = {}
    for source in sorted((FIRMWARE / "semfw").glob("*.py")):
        text = source.read_text()
        if source.name == "__init__.py":
            text = with_version(text, version)
        if patches and source.name in patches:
            text = patches[source.name](text)
        files[f"semfw/{source.name}"] = text.encode()
    return files


def install(flash: Path, version: str = "1.0.0") -> None:
    """What `mpremote` copies onto a board: the selector and the firmware (sources)."""
    (flash / "semfw").mkdir(parents=True, exist_ok=True)
    shutil.copy(FIRMWARE / "semboot.py", flash / "semboot.py")
    for path, data in firmware_sources(version).items():
        (flash / path).write_bytes(data)


def bundle_of(files: dict[str, bytes], version: str, mpy: str = "6") -> fw.Bundle:
    return fw.Bundle(
        version=version,
        interpreter="1.29.0",
        mpy=mpy,
        notes="",
        files=tuple(fw.BundleFile(path, data) for path, data in files.items()),
    )


class Board:
    """One simulated board process at a time, restarted after every reset or power cut."""

    def __init__(self, broker: Broker, flash: Path, scenario: Path, node: str, *extra: str) -> None:
        binary = shutil.which("micropython")
        assert binary, "micropython is not installed"
        self.cmd = [
            binary,
            str(BOARD),
            str(flash),
            str(scenario),
            node,
            "--host",
            broker.host,
            "--port",
            str(broker.port),
            "--control",
            *extra,
        ]
        self.flash = flash
        self.lines: list[str] = []
        self.exits: list[int] = []
        self.boots = 0
        self._stopping = False
        self._cut = False
        self.proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._power, daemon=True)
        self._thread.start()

    def _power(self) -> None:
        while not self._stopping:
            self.boots += 1
            self.lines.append(f"=== boot {self.boots}")
            proc = self.proc = subprocess.Popen(
                self.cmd,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
                text=True,
            )
            assert proc.stdout is not None
            for line in proc.stdout:
                self.lines.append(line.rstrip("\n"))
            code = proc.wait()
            self.exits.append(code)
            cut, self._cut = self._cut, False
            if not cut and code not in RESET_CODES:
                return

    def output(self) -> str:
        return "\n".join(self.lines)

    async def wait_line(self, pattern: str, within: float = 20.0, after: int = 0) -> str:
        """The first line matching `pattern` among the lines from index `after` on."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            for line in self.lines[after:]:
                if regex.search(line):
                    return line
            await asyncio.sleep(0.05)
        raise AssertionError(f"no line matching {pattern!r} in:\n{self.output()[-4000:]}")

    async def boot_start(self, number: int, within: float = 10.0) -> int:
        """The index of the line where boot `number` starts, once it started."""
        await self.wait_line(f"^=== boot {number}$", within)
        return self.lines.index(f"=== boot {number}")

    def power_cut(self) -> None:
        """The power goes and comes back: killed at once, started again."""
        self._cut = True
        if self.proc is not None:
            self.proc.kill()

    def stop(self, within: float = 10.0) -> None:
        self._stopping = True
        proc = self.proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(OSError, ValueError):
                assert proc.stdin is not None
                proc.stdin.write("quit\n")
                proc.stdin.flush()
            try:
                proc.wait(within)
            except subprocess.TimeoutExpired:
                proc.kill()
        self._thread.join(within)


class Sender:
    """Home Assistant's side of an update, over a plain MQTT client (semcore.firmware.send)."""

    def __init__(self, client: aiomqtt.Client, prefix: str, node: str) -> None:
        self.client = client
        self.prefix = prefix
        self.node = node
        self.states: asyncio.Queue[fw.UpdateState] = asyncio.Queue()
        self.seen: list[fw.UpdateState] = []
        self.progress: list[int] = []
        self.announces: list[bytes] = []
        self.published = 0
        self.bytes = 0
        self.chunk_heads: list[str] = []  # "<id> <file> <offset>" of each chunk sent
        # Changes a message before it goes out: (topic, payload) -> payload, or None to drop.
        self.tamper: Callable[[str, bytes], bytes | None] | None = None

    async def _collect(self) -> None:
        async for message in self.client.messages:
            payload = message.payload if isinstance(message.payload, bytes) else b""
            if message.topic.value.endswith("/announce"):
                self.announces.append(payload)
                continue
            state = fw.decode_update_state(payload)
            if isinstance(state, fw.UpdateState):
                self.seen.append(state)
                self.states.put_nowait(state)

    async def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        if self.tamper is not None:
            changed = self.tamper(topic, payload)
            if changed is None:
                return True
            payload = changed
        try:
            await self.client.publish(topic, payload, qos=qos)
        except aiomqtt.MqttError:
            return False
        self.published += 1
        self.bytes += len(payload)
        if topic.endswith("/chunk"):
            self.chunk_heads.append(payload.split(b"\n", 1)[0].decode())
        return True

    async def send(self, transfer: fw.Transfer, **kwargs: float) -> fw.UpdateState:
        return await fw.send(transfer, self.publish, self.states, self.progress.append, **kwargs)

    def announced_version(self) -> str | None:
        import json

        if not self.announces or not self.announces[-1]:
            return None
        return json.loads(self.announces[-1])["fw"]


@contextlib.asynccontextmanager
async def sender(
    broker: Broker, prefix: str, node: str, *, nodelay: bool = True
) -> AsyncIterator[Sender]:
    async with aiomqtt.Client(broker.host, broker.port) as client:
        if nodelay:  # as Home Assistant's connection does (broker.py): each chunk at once
            client._client.socket().setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        result = Sender(client, prefix, node)
        await client.subscribe(fw.state_topic(prefix, node), qos=1)
        await client.subscribe(f"{prefix}/{node}/announce", qos=1)
        task = asyncio.create_task(result._collect())
        try:
            yield result
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task
