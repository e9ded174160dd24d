"""`scripts/demo` as a user runs it: clear failure on a taken port, nothing left after Ctrl-C.

These run `python -m demo` (what scripts/demo runs inside the environment) as a child process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from demo.hass_api import HassClient, HassError
from demo.processes import port_is_free
from demo.stack import Stack, _core_storage
from tests.mosquitto import free_port

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def taken_port() -> Iterator[int]:
    """A port something is listening on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


def _demo(*args: str, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "demo", *args],
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        text=True,
        start_new_session=True,
        **kwargs,  # type: ignore[call-overload]
    )


@pytest.mark.parametrize("which", ["--http-port", "--mqtt-port"])
def test_taken_port_named_and_exit_non_zero(taken_port: int, which: str) -> None:
    other = "--mqtt-port" if which == "--http-port" else "--http-port"
    proc = _demo(
        which,
        str(taken_port),
        other,
        str(free_port()),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 1, out
    assert f"port {taken_port}" in out
    assert which in out  # it says how to choose another one
    assert "mosquitto listening" not in out  # it failed before starting anything
    assert "logs kept" not in out  # there are none


def _descendants(pid: int) -> set[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_ctrl_c_stops_every_process_and_frees_the_ports(tmp_path: Path) -> None:
    http, mqtt = free_port(), free_port()
    log = tmp_path / "demo.out"
    with log.open("w") as out:
        proc = _demo("--http-port", str(http), "--mqtt-port", str(mqtt), stdout=out, stderr=out)
    try:
        deadline = time.monotonic() + 180
        while "open http://" not in log.read_text():
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        children = _descendants(proc.pid)
        assert children  # at least mosquitto and Home Assistant
        assert not port_is_free(http)
        assert not port_is_free(mqtt)

        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(90) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert [pid for pid in children if _alive(pid)] == []
    assert port_is_free(http)
    assert port_is_free(mqtt)
    assert log.read_text().rstrip().endswith("demo: stopped")


def test_no_setup_leaves_the_integration_to_the_user(tmp_path: Path) -> None:
    """--no-setup starts without the integration's entry: nothing is asked of Home Assistant,
    and --check (which needs the entry) is refused."""

    class NoCalls:
        def __getattr__(self, name: str) -> object:
            raise AssertionError(f"Home Assistant was asked for {name}")

    stack = Stack(workdir=tmp_path, set_up=False)
    stack.client = NoCalls()  # type: ignore[assignment]
    stack._set_up_integration()
    assert not stack.integration_ready
    proc = _demo("--no-setup", "--check", stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 2, out
    assert "--check needs the integration" in out


def _wait_log(proc: subprocess.Popen[str], log: Path, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while text not in (out := log.read_text()):
        assert proc.poll() is None, out
        assert time.monotonic() < deadline, out
        time.sleep(0.5)
    return out


async def _shown_repairs(port: int, token: str) -> list[dict[str, Any]]:
    """The issues Settings -> Repairs lists (ignored ones are hidden there)."""
    async with (
        aiohttp.ClientSession() as session,
        session.ws_connect(f"http://127.0.0.1:{port}/api/websocket") as ws,
    ):
        await ws.receive_json()  # auth_required
        await ws.send_json({"type": "auth", "access_token": token})
        assert (await ws.receive_json())["type"] == "auth_ok"
        await ws.send_json({"id": 1, "type": "repairs/list_issues"})
        issues: list[dict[str, Any]] = (await ws.receive_json())["result"]["issues"]
    return [issue for issue in issues if not issue["ignored"]]


def test_a_restart_from_the_ui_restarts_home_assistant_inside_the_demo(tmp_path: Path) -> None:
    """Settings -> System -> Restart (the homeassistant.restart action): Home Assistant exits
    with its restart code and the demo starts it again; the broker and the fleet go on, the
    integration comes back, and Ctrl-C still stops everything. Neither the log nor Settings
    show errors the user has nothing to do with."""
    http, mqtt = free_port(), free_port()
    config = tmp_path / "config"
    log = tmp_path / "demo.out"
    with log.open("w") as out:
        proc = _demo(
            "--http-port", str(http), "--mqtt-port", str(mqtt), "--config-dir", str(config),
            stdout=out, stderr=out,
        )  # fmt: skip
    try:
        out = _wait_log(proc, log, "open http://", 180)
        assert f"log: {config / 'home-assistant.log'}" in out
        broker_and_fleet = {
            pid
            for pid in _descendants(proc.pid)
            if "mosquitto" in _cmd(pid) or "semsim" in _cmd(pid)
        }
        assert len(broker_and_fleet) >= 2
        client = HassClient(http)
        client.login_trusted_network()
        with contextlib.suppress(HassError):  # the answer may be cut by the stop
            client.call_service("homeassistant", "restart", {})
        _wait_log(proc, log, "Home Assistant running again", 180)
        client.login_trusted_network()
        deadline = time.monotonic() + 60
        while not _number(client.state("sensor.house_1_voltage")):
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.5)
        assert broker_and_fleet <= {pid for pid in _descendants(proc.pid) if _alive(pid)}
        assert client.token is not None
        assert asyncio.run(_shown_repairs(http, client.token)) == []

        os.kill(proc.pid, signal.SIGINT)
        assert proc.wait(90) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    out = log.read_text()
    assert "FAILED" not in out
    assert out.rstrip().endswith("demo: stopped")
    # Both runs of Home Assistant (the log of the first is rotated at the restart).
    for name in ("home-assistant.log", "home-assistant.log.1"):
        errors = [line for line in (config / name).read_text().splitlines() if " ERROR " in line]
        assert errors == [], name


def _cmd(pid: int) -> str:
    try:
        return (Path("/proc") / str(pid) / "cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def _number(state: dict[str, Any] | None) -> float | None:
    try:
        return float(state["state"]) if state else None
    except ValueError:
        return None


def test_home_settings_stored_where_the_user_can_change_them(tmp_path: Path) -> None:
    # In YAML they would be locked in Settings -> System -> Home information, language included.
    template = (REPO / "demo" / "config" / "configuration.yaml").read_text()
    assert "language:" not in template
    stored = tmp_path / "core.config"
    first = _core_storage(stored, 8123)
    assert first["data"]["language"] == "en"
    assert first["data"]["time_zone"] == "Asia/Jakarta"
    # A kept config dir keeps what the user chose; the address follows the port of this run.
    first["data"]["language"] = "id"
    stored.write_text(json.dumps(first))
    again = _core_storage(stored, 8205)
    assert again["data"]["language"] == "id"
    assert again["data"]["internal_url"] == "http://127.0.0.1:8205"
