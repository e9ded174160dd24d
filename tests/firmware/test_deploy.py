"""firmware/README.md's *Flashing MicroPython and deploying*, word by word, against a board-like
folder: its shell blocks run as written, with stand-ins for esptool (which only checks the image
it is given) and mpremote (which works on the folder as mpremote works on the board's file
system), the real mpy-cross, and then the real MicroPython unix port importing the firmware from
the folder."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
README = REPO / "firmware" / "README.md"
IMAGE = "ESP32_GENERIC-20260829-v1.29.0.bin"  # named as on micropython.org/download

# mpremote's commands as the README uses them, on the folder $BOARD (a board's file system).
MPREMOTE = r"""
import os, shutil, sys

board = os.environ["BOARD"]
with open(os.environ["TOOL_LOG"], "a") as log:
    log.write("mpremote " + " ".join(sys.argv[1:]) + "\n")


def remote(path):
    assert path.startswith(":"), "not a remote path: " + path
    return os.path.join(board, path[1:].lstrip("/"))


def fail(message):
    print("mpremote: " + message, file=sys.stderr)
    sys.exit(1)


args = sys.argv[1:]
while args:
    verb = args.pop(0)
    if verb == "+":
        continue
    words = []
    while args and args[0] != "+" and verb != "connect":
        words.append(args.pop(0))
    if verb == "connect":
        args.pop(0)  # the device; the next command follows without "+"
        continue
    flags = [w for w in words if w.startswith("-")]
    paths = [w for w in words if not w.startswith("-")]
    if verb == "cp":
        *sources, dest = paths
        for source in sources:
            target = remote(dest)
            if dest in (":", ":/") or os.path.isdir(target):
                target = os.path.join(target, os.path.basename(source.rstrip("/")))
            if os.path.isdir(source):
                if "-r" not in flags:
                    fail("cp: %s is a directory" % source)
                # Files are copied into the directory; what it held stays.
                for root, _, files in os.walk(source):
                    here = os.path.join(target, os.path.relpath(root, source))
                    os.makedirs(here, exist_ok=True)
                    for name in files:
                        shutil.copyfile(os.path.join(root, name), os.path.join(here, name))
            else:
                shutil.copyfile(source, target)
    elif verb == "rm":
        for path in paths:
            target = remote(path)
            if not os.path.exists(target):
                fail("rm: %s: no such file" % path)
            if os.path.isdir(target):
                if "-r" not in flags:
                    fail("rm: %s is a directory" % path)
                shutil.rmtree(target)
            else:
                os.remove(target)
    elif verb == "ls":
        for name in sorted(os.listdir(remote(paths[0] if paths else ":"))):
            print(name)
    elif verb in ("reset", "soft-reset", "repl"):
        pass
    else:
        fail("unexpected command " + verb)
"""

ESPTOOL = r"""
import os, sys

with open(os.environ["TOOL_LOG"], "a") as log:
    log.write("esptool " + " ".join(sys.argv[1:]) + "\n")
if "write-flash" in sys.argv:
    image = sys.argv[-1]
    if not os.path.isfile(image):
        print("esptool: no such image: " + image, file=sys.stderr)
        sys.exit(2)
"""


def _blocks() -> list[str]:
    text = README.read_text()
    section = text.split("## Flashing MicroPython and deploying", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    assert len(blocks) == 2, "the section should have its flashing and its bytecode block"
    return blocks


def _tool(bin_dir: Path, name: str, source: str) -> None:
    path = bin_dir / name
    path.write_text(f"#!{sys.executable}\n{source}")
    path.chmod(0o755)


@pytest.fixture
def desk(tmp_path: Path) -> dict[str, str]:
    """A checkout with the downloaded image and the broker's CA next to it, the stand-in tools
    first on PATH, and an empty board."""
    work = tmp_path / "checkout"
    work.mkdir()
    (work / "firmware").symlink_to(REPO / "firmware")
    (work / IMAGE).write_bytes(b"\xe9" + bytes(1023))
    (work / "ca.crt").write_text("-----BEGIN CERTIFICATE-----\nMA==\n-----END CERTIFICATE-----\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _tool(bin_dir, "mpremote", MPREMOTE)
    _tool(bin_dir, "esptool", ESPTOOL)
    board = tmp_path / "board"
    board.mkdir()
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "BOARD": str(board),
        "TOOL_LOG": str(tmp_path / "tools.log"),
        "WORK": str(work),
    }


def _run(block: str, env: dict[str, str]) -> None:
    proc = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", block],
        cwd=env["WORK"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert proc.returncode == 0, f"{block}\n{proc.stdout}\n{proc.stderr}"


def _on_board(env: dict[str, str], code: str) -> str:
    """Run code under MicroPython on the board folder; the import path is the board's."""
    binary = shutil.which("micropython")
    assert binary, "micropython is not installed"
    proc = subprocess.run(
        [binary, "-c", "import sys\nsys.path[:] = ['', '.frozen']\n" + code],
        cwd=env["BOARD"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc.stdout


def test_the_documented_sequence_runs_the_bytecode(desk: dict[str, str]) -> None:
    flashing, bytecode = _blocks()
    _run(flashing, desk)
    board = Path(desk["BOARD"])
    log = Path(desk["TOOL_LOG"]).read_text()
    assert f"write-flash -z 0x1000 {IMAGE}" in log  # the glob found the downloaded image
    assert sorted(p.name for p in board.iterdir()) == [
        "ca.crt",
        "config.json",
        "main.py",
        "semboot.py",
        "semfw",
    ]
    assert "semfw/node.py" in _on_board(desk, "import semfw.node\nprint(semfw.node.__file__)")

    _run(bytecode, desk)
    files = sorted(p.name for p in (board / "semfw").iterdir())
    assert files
    assert all(name.endswith(".mpy") for name in files), files
    assert len(files) == len(list((REPO / "firmware" / "semfw").glob("*.py")))
    out = _on_board(
        desk,
        "import semfw.node, semfw.mqtt\n"
        "print(semfw.node.__file__, semfw.mqtt.__file__)\n"
        "from semfw import app\n"
        "cfg = app.load_config('config.json', bytes(6))\n"
        "print(cfg.node, cfg.broker_user, cfg.broker_port, cfg.broker_tls)\n",
    )
    assert "semfw/node.mpy semfw/mqtt.mpy" in out
    # The shipped example works with the shipped ACL: user name = node id, TLS with ca.crt.
    assert "pole-7 pole-7 8883 ('ca.crt', '192.168.1.10')" in out


def test_without_the_removal_the_sources_would_still_run(desk: dict[str, str]) -> None:
    # Why the bytecode block removes :semfw first: copied over the sources, the .py files win.
    flashing, bytecode = _blocks()
    _run(flashing, desk)
    assert "rm -r :semfw + " in bytecode
    _run(bytecode.replace("rm -r :semfw + ", ""), desk)
    out = _on_board(desk, "import semfw.node\nprint(semfw.node.__file__)")
    assert "semfw/node.py" in out
