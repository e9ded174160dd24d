"""`scripts/simulate`: the fleet command the demo uses, end to end against a real broker."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from pathlib import Path

from custom_components.smart_energy_meter.semcore import firmware as fw
from custom_components.smart_energy_meter.semcore import protocol as codec
from tests.firmware.board import SHIPPED, sender
from tests.firmware.e2e import observe
from tests.mosquitto import Broker

REPO = Path(__file__).parents[2]
SIMULATE = REPO / "scripts" / "simulate"


def _running_nodes(port: int) -> list[int]:
    """Processes whose command line names this broker port (our simulated nodes)."""
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if (
            b"--port" in cmdline
            and str(port).encode() in cmdline
            and any(part.endswith(b"semsim/run.py") for part in cmdline)
        ):
            pids.append(int(entry.name))
    return pids


def _start(broker: Broker, *args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(SIMULATE), *args, "--host", broker.host, "--port", str(broker.port)],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def _mismatch(line: list[codec.Snapshot], house: list[codec.Snapshot]) -> float:
    pairs = list(zip(line, house, strict=False))
    return sum((a.power - b.power) / a.power for a, b in pairs) / len(pairs)


async def test_paper_scenario_shows_theft_in_house_2_and_stops_on_sigint(
    mosquitto: Broker,
) -> None:
    prefix = "sim-paper"
    async with observe(mosquitto, prefix) as obs:
        proc = _start(mosquitto, "paper", "--prefix", prefix, "--interval", "0.25")
        try:
            await obs.wait(
                lambda ms: sum(m.topic.endswith("/house2/state") for m in ms) >= 8,
                within=20,
                what="house 2 snapshots",
            )
        finally:
            proc.send_signal(signal.SIGINT)
            output = await asyncio.to_thread(proc.communicate, timeout=15)
        assert proc.returncode == 0, output[0].decode()[-2000:]
        await obs.wait_topic(f"{prefix}/paper-node/status", b"offline")
        decoded = [d for _, d in obs.decoded()]
        assert not [d for d in decoded if isinstance(d, codec.Rejected)]
        (announce,) = [d for d in decoded if isinstance(d, codec.Announce)]
        assert announce.node == "paper-node"
        assert announce.name == "Paper demo node"
        assert announce.pair_names == {"house1": "House 1", "house2": "House 2"}
        assert {m.id: m.pair for m in announce.meters} == {
            "line1": "house1",
            "house1": "house1",
            "line2": "house2",
            "house2": "house2",
        }
        assert {r.id: r.pair for r in announce.relays} == {"r1": "house1", "r2": "house2"}
        snaps: dict[str, list[codec.Snapshot]] = {}
        for d in decoded:
            if isinstance(d, codec.Snapshot):
                snaps.setdefault(d.meter, []).append(d)
        # One 20 W lamp at the start, as in the paper's first step.
        assert abs(snaps["line1"][0].power - 20) < 0.5
        # Counters continue from the scenario's installed readings, never from a fake 0.
        assert {meter: int(s[0].energy) for meter, s in snaps.items()} == {
            "line1": 1318,
            "house1": 1254,
            "line2": 1467,
            "house2": 1052,
        }
        assert 0.16 < _mismatch(snaps["line2"], snaps["house2"]) < 0.20
        assert 0.0 < _mismatch(snaps["line1"], snaps["house1"]) < 0.02
    assert _running_nodes(mosquitto.port) == []


async def test_a_fleet_starts_and_stops_on_sigterm(mosquitto: Broker) -> None:
    prefix = "sim-street"
    async with observe(mosquitto, prefix) as obs:
        proc = _start(mosquitto, "street", "--prefix", prefix)
        try:
            await obs.wait(
                lambda ms: sum(m.topic.endswith("/announce") for m in ms) == 3,
                within=20,
                what="three nodes announcing",
            )
            assert len(_running_nodes(mosquitto.port)) == 3
        finally:
            proc.send_signal(signal.SIGTERM)
            output = await asyncio.to_thread(proc.communicate, timeout=15)
        assert proc.returncode == 0, output[0].decode()[-2000:]
        for node in ("pole-1", "pole-2", "pole-3"):
            await obs.wait_topic(f"{prefix}/{node}/status", b"offline")
    assert _running_nodes(mosquitto.port) == []


def test_unknown_scenario_is_a_clear_error(mosquitto: Broker) -> None:
    proc = _start(mosquitto, "no-such-scenario")
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode != 0
    assert b"no scenario 'no-such-scenario'" in out
    assert b"paper" in out


def test_killing_the_supervisor_leaves_no_node_behind(mosquitto: Broker) -> None:
    proc = _start(mosquitto, "paper", "--prefix", "sim-kill")
    deadline = time.monotonic() + 15
    while not _running_nodes(mosquitto.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running_nodes(mosquitto.port)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(10)
    deadline = time.monotonic() + 10
    while _running_nodes(mosquitto.port) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _running_nodes(mosquitto.port) == []


async def test_boards_take_an_update_and_are_powered_again(
    mosquitto: Broker, tmp_path: Path
) -> None:
    """`--boards`: the node runs from a flash of its own set up as a board is, takes the
    shipped firmware from the update sender, resets into it and is started again."""
    prefix = "sim-boards"
    boards = tmp_path / "boards"
    proc = _start(mosquitto, "paper", "--prefix", prefix, "--boards", str(boards))
    try:
        async with sender(mosquitto, prefix, "paper-node") as peer:
            for _ in range(200):
                if peer.announces and json.loads(peer.announces[-1]).get("update") == 1:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError(f"no announce offering updates: {peer.announces[-1:]}")
            bundle = fw.load_bundle(SHIPPED)
            final = await peer.send(fw.Transfer(bundle, prefix, "paper-node", "u1"))
            assert final.state == fw.INSTALLED, final
    finally:
        proc.send_signal(signal.SIGTERM)
        output = (await asyncio.to_thread(proc.communicate, timeout=15))[0].decode()
    assert proc.returncode == 0, output[-2000:]
    assert "simulate: node paper-node reset; powering it again" in output
    flash = boards / "paper-node"
    assert (flash / "semboot.py").exists()
    assert json.loads((flash / "fw" / "boot.json").read_text())["active"] == "fw/a"
