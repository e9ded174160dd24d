"""A worker runs the integration's core without Home Assistant."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).parents[2]


def test_the_service_imports_the_core_and_not_home_assistant() -> None:
    code = (
        "import sys\n"
        "from semservice.standalone import without_home_assistant\n"
        "without_home_assistant()\n"
        "import semservice.worker, semservice.report\n"
        "from custom_components.smart_energy_meter.semcore.meters import MeterModel\n"
        "MeterModel('sem')\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'homeassistant'))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr


def test_the_command_line_answers_without_a_cluster() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "semservice", "worker", "--help"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
    )
    assert "--overrides" in out.stdout
