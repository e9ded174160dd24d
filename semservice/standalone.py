"""The integration's pure core without Home Assistant.

`custom_components/smart_energy_meter/__init__.py` imports Home Assistant, and importing
`custom_components.smart_energy_meter.semcore` runs it first. A worker has no Home Assistant:
before anything imports the core, the two parent packages are registered as plain packages
over their directories, so the core's modules load under their usual names and the
integration's own `__init__` never runs. Inside one process with the integration loaded (the
tests) this does nothing.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path

PARENTS = ("custom_components", "custom_components.smart_energy_meter")


def without_home_assistant() -> None:
    """Make the core importable without importing the integration (and Home Assistant)."""
    if PARENTS[1] in sys.modules:
        return
    directory = Path(__file__).resolve().parents[1] / "custom_components"
    for name, path in zip(PARENTS, (directory, directory / "smart_energy_meter"), strict=True):
        if name not in sys.modules:
            package = types.ModuleType(name)
            package.__path__ = [str(path)]
            sys.modules[name] = package
