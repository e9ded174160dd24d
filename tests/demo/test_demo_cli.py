"""`scripts/demo` as a user runs it: clear failure on a taken port, nothing left after Ctrl-C.

These run `python -m demo` (what scripts/demo runs inside the environment) as a child process.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.processes import port_is_free
from demo.stack import Stack
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
