"""The pure core must never import Home Assistant (it runs in the simulator and benchmarks)."""

from __future__ import annotations

import ast
from pathlib import Path

CORE = Path(__file__).parents[2] / "custom_components" / "smart_energy_meter" / "semcore"
FORBIDDEN = ("homeassistant", "custom_components.smart_energy_meter")


def _imports(path: Path) -> list[str]:
    names: list[str] = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative imports stay inside the package
                names.append("." * node.level + (node.module or ""))
            else:
                names.append(node.module or "")
    return names


def test_core_has_modules() -> None:
    assert sorted(CORE.glob("*.py")), "semcore is empty"


def test_core_never_imports_homeassistant() -> None:
    offenders = [
        f"{path.name}: {name}"
        for path in sorted(CORE.rglob("*.py"))
        for name in _imports(path)
        if name.split(".")[0] == "homeassistant"
        or name.startswith(FORBIDDEN[1])
        or name.startswith("..")
    ]
    assert offenders == []


def test_detector_catches_an_offender(tmp_path: Path) -> None:
    """The import scan itself works (so the test above can fail)."""
    bad = tmp_path / "bad.py"
    bad.write_text("from homeassistant.core import HomeAssistant\nimport homeassistant.const\n")
    assert _imports(bad) == ["homeassistant.core", "homeassistant.const"]
