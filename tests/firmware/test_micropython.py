"""The firmware under the real MicroPython unix port: unit tests, and mpy-cross for every file."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
FIRMWARE = REPO / "firmware"
RUNNER = REPO / "tests" / "firmware" / "unit" / "mp_runner.py"
SUMMARY = re.compile(r"^(\d+) passed, (\d+) failed$", re.MULTILINE)


def _micropython() -> str:
    binary = shutil.which("micropython")
    assert binary, "micropython is not installed (scripts/provision.d/20-micropython.sh)"
    return binary


def _run_unit_tests(firmware_dir: Path) -> tuple[int, int, str]:
    proc = subprocess.run(
        [_micropython(), str(RUNNER), str(REPO), str(firmware_dir)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    output = proc.stdout + proc.stderr
    found = SUMMARY.findall(output)
    assert found, f"no summary line from the MicroPython runner:\n{output[-3000:]}"
    passed, failed = (int(n) for n in found[-1])
    return passed, failed, output


def test_micropython_is_the_unix_port() -> None:
    proc = subprocess.run(
        [_micropython(), "-c", "import sys; print(sys.implementation.name, sys.platform)"],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert proc.stdout.split() == ["micropython", "linux"]


def test_unit_tests_pass_under_micropython() -> None:
    passed, failed, output = _run_unit_tests(FIRMWARE)
    assert f"firmware: {FIRMWARE}/semfw/__init__.py" in output
    assert failed == 0, output[-5000:]
    assert passed >= 100, output[-2000:]


def test_runner_reports_failures(tmp_path: Path) -> None:
    """The runner's summary can say failed (so the test above can fail)."""
    broken = tmp_path / "firmware"
    shutil.copytree(FIRMWARE, broken)
    modbus = broken / "semfw" / "modbus.py"
    modbus.write_text(modbus.read_text().replace("crc ^= byte", "crc ^= byte ^ 1"))
    passed, failed, _ = _run_unit_tests(broken)
    assert failed > 0
    assert passed > 0


def _python_files() -> list[Path]:
    return sorted(p for p in FIRMWARE.rglob("*.py") if "esphome" not in p.parts)


def test_every_firmware_file_is_found() -> None:
    names = {p.relative_to(FIRMWARE).as_posix() for p in _python_files()}
    assert {"main.py", "semfw/node.py", "semfw/hw.py", "semsim/run.py"} <= names


@pytest.fixture(scope="module")
def compiled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every firmware file compiled by mpy-cross, in the same layout."""
    out = tmp_path_factory.mktemp("mpy")
    mpy_cross = shutil.which("mpy-cross")
    assert mpy_cross, "mpy-cross is not installed (requirements_test.txt)"
    for source in _python_files():
        relative = source.relative_to(FIRMWARE)
        target = (out / relative).with_suffix(".mpy")
        target.parent.mkdir(parents=True, exist_ok=True)
        proc = subprocess.run(
            [mpy_cross, "-s", relative.as_posix(), "-o", str(target), str(source)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert proc.returncode == 0, f"mpy-cross failed on {relative}:\n{proc.stderr}"
    return out


def test_mpy_cross_compiles_every_firmware_file(compiled: Path) -> None:
    outputs = sorted(compiled.rglob("*.mpy"))
    assert len(outputs) == len(_python_files())
    for mpy in outputs:
        header = mpy.read_bytes()[:2]
        assert header == b"M\x06", f"{mpy.name}: not a version 6 .mpy file"


def test_unit_tests_pass_on_the_compiled_firmware(compiled: Path) -> None:
    """The .mpy files (what goes on a board) behave like the sources."""
    passed, failed, output = _run_unit_tests(compiled)
    assert f"firmware: {compiled}/semfw/__init__.mpy" in output
    assert failed == 0, output[-5000:]
    assert passed >= 100


def test_esp32_adapters_run_against_stand_ins(tmp_path: Path) -> None:
    """hw/app/tools call the ESP32 APIs as intended, and safe mode holds (see mp_hw_smoke.py)."""
    proc = subprocess.run(
        [
            _micropython(),
            str(REPO / "tests" / "firmware" / "unit" / "mp_hw_smoke.py"),
            str(REPO),
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    output = proc.stdout + proc.stderr
    found = SUMMARY.findall(output)
    assert found, output[-3000:]
    passed, failed = (int(n) for n in found[-1])
    assert (passed, failed) == (7, 0), output[-3000:]
    assert "the configuration cannot be used; the node is idle." in output
    assert "  - meters: at least one meter is needed" in output
