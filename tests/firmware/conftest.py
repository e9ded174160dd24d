"""Firmware tests import the firmware packages (semfw, semsim) from firmware/."""

from __future__ import annotations

import sys
from pathlib import Path

FIRMWARE = Path(__file__).parents[2] / "firmware"
if str(FIRMWARE) not in sys.path:
    sys.path.insert(0, str(FIRMWARE))
