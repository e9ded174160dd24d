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


async def announced(board: Board, version: str, after: int = 0) -> None:
    await board.wait_line(r"mqtt: connected", after=after)
    await board.wait_line(rf"update: version {version} confirmed|announce", within=1, after=after)


def running_version(flash: Path) -> str:
    """The version the selector boots next, read as the board would."""
    state = json.loads((flash / "fw" / "boot.json").read_text())
    folder = flash / state["active"] if state["active"] else flash
    text = (folder / "semfw" / "__init__.py").read_text() if state["active"] == "" else ""
    if text:
        return text.split('VERSION = "')[1].split('"')[0]
    mpy = folder / "semfw" / "__init__.mpy"
    return "compiled" if mpy.exists() else "?"


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
