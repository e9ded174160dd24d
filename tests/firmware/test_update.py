"""Firmware updates end to end: the firmware under the MicroPython unix port as a board with its
own flash (semsim.board, restarted after every reset), a real mosquitto, and the integration's
sender (semcore.firmware) over a plain MQTT client."""

from __future__ import annotations

import asyncio
import json
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from custom_components.smart_energy_meter.semcore import firmware as fw
from tests.firmware.board import (
    SHIPPED,
    Board,
    bundle_of,
    firmware_sources,
    install,
    sender,
)
from tests.mosquitto import Broker

pytestmark = pytest.mark.skipif(
    shutil.which("micropython") is None, reason="the MicroPython unix port is not installed"
)

NODE = "upd-node"
PREFIX = "sem"
OLD = "1.0.0"
KEY = "pole-7 update key, 32 bytes....."


def scenario(directory: Path, key: str | None = None) -> Path:
    node: dict[str, Any] = {
        "node": NODE,
        "name": "Update node",
        "backoff_cap_ms": 500,
        "houses": [
            {
                "pair": "house1",
                "line": {"id": "line1", "addr": 1},
                "house": {"id": "house1", "addr": 2},
                "relay": {"id": "r1", "pin": 26, "power_on": "restore"},
                "load": {"constant": 100, "pf": 0.9},
            }
        ],
    }
    if key is not None:
        node["key"] = key
    path = directory / "scenario.json"
    path.write_text(
        json.dumps(
            {
                "name": "update",
                "interval": 1,
                "keepalive": 5,
                "seed": 5,
                "wire_timing": False,
                "pzem": {"min_gap_ms": 0, "timeout_ms": 60, "retries": 1},
                "nodes": [node],
            }
        )
    )
    return path


@pytest.fixture
def flash(tmp_path: Path) -> Path:
    folder = tmp_path / "flash"
    install(folder, OLD)
    return folder


def start(broker: Broker, flash: Path, tmp_path: Path, *extra: str, key: str | None = None):
    return Board(broker, flash, scenario(tmp_path, key), NODE, *extra)


@pytest.fixture
def board(mosquitto: Broker, flash: Path, tmp_path: Path) -> Iterator[Board]:
    node = start(mosquitto, flash, tmp_path)
    yield node
    node.stop()


def shipped() -> fw.Bundle:
    return fw.load_bundle(SHIPPED)


def transfer(bundle: fw.Bundle, name: str, **kwargs: Any) -> fw.Transfer:
    return fw.Transfer(bundle, PREFIX, NODE, name, **kwargs)


async def test_update_installs_the_shipped_firmware_and_comes_back_announcing_it(
    mosquitto: Broker, board: Board, flash: Path
) -> None:
    bundle = shipped()
    async with sender(mosquitto, PREFIX, NODE) as peer:
        await board.wait_line("mqtt: connected")
        await asyncio.sleep(0.3)
        old = json.loads(peer.announces[-1])
        assert old["fw"] == OLD
        assert old["update"] == 1
        assert old["mpy"] == bundle.mpy
        assert old["mp"].startswith("1.29")
        started = time.monotonic()
        final = await peer.send(transfer(bundle, "u1"))
        took = time.monotonic() - started
        assert final.state == fw.INSTALLED
        assert final.version == bundle.version
        await asyncio.sleep(0.3)
        assert peer.announced_version() == bundle.version
    assert peer.progress[0] == 0
    assert peer.progress[-1] == 100
    assert peer.progress == sorted(peer.progress)
    assert board.boots == 2
    boot = json.loads((flash / "fw" / "boot.json").read_text())
    assert boot["active"] == "fw/a"
    assert boot["trial"] is None
    assert boot["last"] == {"id": "u1", "state": "installed", "version": bundle.version}
    # the new copy is the bundle byte for byte; the copy by hand stays as it was
    for entry in bundle.files:
        assert (flash / "fw" / "a" / entry.path).read_bytes() == entry.data
    assert (flash / "semfw" / "__init__.py").exists()
    print(
        f"update: {bundle.size} bytes in {len(bundle.files)} files, {peer.published} messages "
        f"({peer.bytes} bytes) sent, Install to installed in {took:.2f} s"
    )


def used_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def broken(version: str, **patches: Any) -> fw.Bundle:
    return bundle_of(firmware_sources(version, patches), version)


async def stays_on_old(board: Board, peer: Any, flash: Path, rolled_back: bool = False) -> None:
    """The node runs the old firmware and boots it next; a refused update left nothing (a
    rolled-back copy stays until the next update overwrites it)."""
    await asyncio.sleep(0.3)
    assert peer.announced_version() == OLD
    state = flash / "fw" / "boot.json"
    if state.exists():
        boot = json.loads(state.read_text())
        assert (boot["active"], boot["trial"]) == ("", None)
    if not rolled_back:
        assert not (flash / "fw" / "a" / "semfw" / "node.py").exists()
        assert not (flash / "fw" / "a" / "semfw" / "node.mpy").exists()


async def test_a_corrupted_chunk_is_refused_and_the_node_stays(
    mosquitto: Broker, board: Board, flash: Path
) -> None:
    bundle = shipped()
    async with sender(mosquitto, PREFIX, NODE) as peer:
        await board.wait_line("mqtt: connected")
        hit = []

        def corrupt(topic: str, payload: bytes) -> bytes:
            if topic.endswith("/chunk") and not hit and payload.startswith(b"u2 3 "):
                hit.append(True)
                return payload[:-1] + bytes([payload[-1] ^ 0x01])
            return payload

        peer.tamper = corrupt
        with pytest.raises(fw.UpdateFailed) as failed:
            await peer.send(transfer(bundle, "u2"))
        assert failed.value.error == "hash"
        assert failed.value.detail == bundle.files[3].path
        await stays_on_old(board, peer, flash)
    assert board.boots == 1


async def test_a_manifest_with_a_wrong_hash_is_refused(
    mosquitto: Broker, board: Board, flash: Path
) -> None:
    good = shipped()
    files = list(good.files)
    files[0] = fw.BundleFile(files[0].path, files[0].data + b"\x00")
    wrong = fw.Bundle(good.version, good.interpreter, good.mpy, "", tuple(files))

    class Lying(fw.Transfer):
        def chunk_at(self, index: int, offset: int) -> tuple[str, bytes] | None:
            # the manifest says one thing, the chunks carry the shipped bytes
            real = fw.Transfer(good, PREFIX, NODE, self.id)
            if index == 0 and offset >= len(good.files[0].data):
                return real.chunk_at(1, 0) and (
                    fw.chunk_topic(PREFIX, NODE),
                    f"{self.id} 0 {offset}\n".encode() + b"\x01",
                )
            return real.chunk_at(index, offset)

    async with sender(mosquitto, PREFIX, NODE) as peer:
        await board.wait_line("mqtt: connected")
        with pytest.raises(fw.UpdateFailed) as failed:
            await peer.send(Lying(wrong, PREFIX, NODE, "u3"))
        assert failed.value.error == "hash"
        await stays_on_old(board, peer, flash)


async def test_a_manifest_signed_with_another_key_or_unsigned_is_refused(
    mosquitto: Broker, flash: Path, tmp_path: Path
) -> None:
    node = start(mosquitto, flash, tmp_path, key=KEY)
    try:
        async with sender(mosquitto, PREFIX, NODE) as peer:
            await node.wait_line("mqtt: connected")
            bundle = shipped()
            for name, key in (("u4", b"another key of 32 bytes........."), ("u5", None)):
                with pytest.raises(fw.UpdateFailed) as failed:
                    await peer.send(transfer(bundle, name, key=key))
                assert failed.value.error == "bad_signature"
            await stays_on_old(node, peer, flash)
            final = await peer.send(transfer(bundle, "u6", key=KEY.encode()))
            assert final.state == fw.INSTALLED
    finally:
        node.stop()


async def test_downgrade_interpreter_and_space_are_checked_before_anything_is_written(
    mosquitto: Broker, flash: Path, tmp_path: Path
) -> None:
    sources = firmware_sources("0.9.0")
    used = used_bytes(flash)
    # room for one more copy of the sources and the margin, with 20 KB to spare
    limit_kb = (used + sum(map(len, sources.values())) + 16384 + 20480) // 1024
    node = start(mosquitto, flash, tmp_path, "--flash-kb", str(limit_kb))
    try:
        async with sender(mosquitto, PREFIX, NODE) as peer:
            await node.wait_line("mqtt: connected")
            with pytest.raises(fw.UpdateFailed) as failed:
                await peer.send(transfer(bundle_of(sources, "0.9.0"), "d1"))
            assert failed.value.error == "downgrade"
            with pytest.raises(fw.UpdateFailed) as failed:
                await peer.send(transfer(bundle_of(sources, "2.0.0", mpy="5"), "d2"))
            assert failed.value.error == "interpreter"
            big = dict(sources)
            big["semfw/padding.py"] = b"#" * 40_000
            with pytest.raises(fw.UpdateFailed) as failed:
                await peer.send(transfer(bundle_of(big, "2.0.0"), "d3"))
            assert failed.value.error == "no_space"
            await stays_on_old(node, peer, flash)
            # an explicit downgrade is installed
            final = await peer.send(transfer(bundle_of(sources, "0.9.0"), "d4", downgrade=True))
            assert final.version == "0.9.0"
    finally:
        node.stop()


async def test_power_cut_in_the_middle_of_the_transfer_comes_back_on_the_old_firmware(
    mosquitto: Broker, board: Board, flash: Path
) -> None:
    bundle = shipped()
    async with sender(mosquitto, PREFIX, NODE) as peer:
        await board.wait_line("mqtt: connected")
        sent: list[str] = []

        def cut_midway(topic: str, payload: bytes) -> bytes:
            if topic.endswith("/chunk"):
                sent.append(topic)
                if len(sent) == 6:
                    board.power_cut()
            return payload

        peer.tamper = cut_midway
        with pytest.raises(fw.UpdateFailed) as failed:
            await peer.send(transfer(bundle, "p1"))
        assert failed.value.error == "interrupted"
        await board.wait_line("mqtt: connected", after=await board.boot_start(2))
        await stays_on_old(board, peer, flash)
        assert not (flash / "fw" / "boot.json").exists()


async def test_power_cut_during_the_first_boot_of_the_new_firmware_goes_back(
    mosquitto: Broker, board: Board, flash: Path
) -> None:
    """Cut while switching: the new copy had its one boot and did not confirm."""
    slow = broken(
        "1.2.0",
        **{
            "node.py": lambda text: text.replace(
                "        announced = await self._publish(",
                "        await asyncio.sleep(30)\n        announced = await self._publish(",
            )
        },
    )
    async with sender(mosquitto, PREFIX, NODE) as peer:
        await board.wait_line("mqtt: connected")
        task = asyncio.create_task(peer.send(transfer(slow, "p2")))
        await board.wait_line("running fw/a on trial", within=30)
        await board.wait_line("mqtt: connected", after=await board.boot_start(2))
        board.power_cut()
        with pytest.raises(fw.UpdateFailed) as failed:
            await task
        assert failed.value.error == "not_confirmed"
        assert failed.value.version == "1.2.0"
        await stays_on_old(board, peer, flash, rolled_back=True)
    assert board.boots == 3


async def test_new_firmware_that_raises_at_import_is_rolled_back(
    mosquitto: Broker, board: Board, flash: Path
) -> None:
    crashing = broken(
        "1.2.0", **{"node.py": lambda text: 'raise ImportError("broken build")\n' + text}
    )
    async with sender(mosquitto, PREFIX, NODE) as peer:
        await board.wait_line("mqtt: connected")
        with pytest.raises(fw.UpdateFailed) as failed:
            await peer.send(transfer(crashing, "c1"))
        assert failed.value.error == "crashed"
        await stays_on_old(board, peer, flash, rolled_back=True)
    assert board.boots == 3
    assert "semboot: the new firmware failed" in board.output()


async def test_new_firmware_that_never_connects_is_rolled_back_after_its_time_limit(
    mosquitto: Broker, board: Board, flash: Path
) -> None:
    lost = broken(
        "1.2.0",
        **{"mqtt.py": lambda text: text.replace("[(host, port)]", "[(host, 1)]")},
    )
    async with sender(mosquitto, PREFIX, NODE) as peer:
        await board.wait_line("mqtt: connected")
        started = time.monotonic()
        with pytest.raises(fw.UpdateFailed) as failed:
            await peer.send(transfer(lost, "c2", confirm_s=5))
        assert failed.value.error == "not_confirmed"
        assert 5 <= time.monotonic() - started < 30
        await stays_on_old(board, peer, flash, rolled_back=True)
    assert board.boots == 3


async def test_broker_restart_during_the_transfer_resumes_it(
    own_mosquitto: Broker, flash: Path, tmp_path: Path
) -> None:
    node = start(own_mosquitto, flash, tmp_path)
    bundle = shipped()
    plan = transfer(bundle, "r1")
    try:
        async with sender(own_mosquitto, PREFIX, NODE) as peer:
            await node.wait_line("mqtt: connected")
            chunks: list[str] = []

            def restart_midway(topic: str, payload: bytes) -> bytes:
                if topic.endswith("/chunk"):
                    chunks.append(topic)
                    if len(chunks) == 5:
                        own_mosquitto.kill()
                return payload

            peer.tamper = restart_midway
            with pytest.raises(fw.UpdateFailed):
                await peer.send(plan, silence_s=3)
        done_before = max(s.done or 0 for s in peer.seen if s.id == "r1")
        assert 0 < done_before < bundle.size
        own_mosquitto.start()
        await node.wait_line("mqtt: connected", after=len(node.lines) - 1, within=30)
        async with sender(own_mosquitto, PREFIX, NODE) as again:
            final = await again.send(plan)
        assert final.state == fw.INSTALLED
        # resumed where the node was (at least as far as the sender heard before the outage;
        # the node's last state may have been lost with the broker), not from the start
        resumed = [s for s in again.seen if s.id == "r1" and s.state == fw.RECEIVING]
        assert done_before <= (resumed[0].done or 0) < bundle.size
        assert again.chunk_heads[0] == f"r1 {resumed[0].file} {resumed[0].offset}"
        assert "r1 0 0" not in again.chunk_heads  # the first file was not sent again
        assert node.boots == 2
    finally:
        node.stop()


async def test_junk_and_retained_update_messages_change_nothing(
    mosquitto: Broker, board: Board, flash: Path
) -> None:
    begin = fw.begin_topic(PREFIX, NODE)
    chunk = fw.chunk_topic(PREFIX, NODE)
    async with sender(mosquitto, PREFIX, NODE) as peer:
        await board.wait_line("mqtt: connected")
        # A retained update would start again at every reconnection: the node never takes one.
        good = transfer(shipped(), "j1").begin()[1]
        await peer.client.publish(begin, good, qos=1, retain=True)
        await board.wait_line("update j1: version")  # live, it is a command like any other
        board.power_cut()
        second = await board.boot_start(2)
        await board.wait_line("mqtt: connected", after=second)
        await board.wait_line("command ignored: retained message on " + begin, after=second)
        assert not any("update j1" in line for line in board.lines[second:])
        await peer.client.publish(begin, b"", qos=1, retain=True)  # clear it from the broker
        await peer.client.publish(begin, b"not json", qos=1)
        await peer.client.publish(chunk, b"j1 0 0\nxyz", qos=1)  # no transfer running
        await peer.client.publish(chunk, b"\xff\xfe garbage", qos=1)
        state = await asyncio.wait_for(peer.states.get(), 5)
        while state.state != fw.FAILED:
            state = await asyncio.wait_for(peer.states.get(), 5)
        assert (state.id, state.error) == ("?", "bad_manifest")
        assert peer.seen[-1] == state  # the chunks answered nothing
        await board.wait_line(r"update \? refused: bad_manifest")
        # still measuring, never restarted, and an update still works
        lines = len(board.lines)
        final = await peer.send(transfer(shipped(), "j2"))
        assert final.state == fw.INSTALLED
    assert board.boots == 3
    assert "Traceback" not in "\n".join(board.lines[:lines])
