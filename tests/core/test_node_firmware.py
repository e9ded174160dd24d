"""The node firmware bundle that ships inside the integration folder is firmware/ compiled, and
nothing else (HACS installs the integration folder only)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from custom_components.smart_energy_meter.semcore import firmware as fw
from scripts import node_firmware

requires_mpy_cross = pytest.mark.skipif(
    shutil.which("mpy-cross") is None, reason="mpy-cross is not installed"
)


@requires_mpy_cross
def test_the_shipped_bundle_is_the_firmware_compiled(tmp_path: Path) -> None:
    node_firmware.build(tmp_path / "bundle")
    built = {
        p.relative_to(tmp_path / "bundle"): p.read_bytes()
        for p in sorted(tmp_path.rglob("*"))
        if p.is_file()
    }
    shipped = {
        p.relative_to(node_firmware.BUNDLE): p.read_bytes()
        for p in sorted(node_firmware.BUNDLE.rglob("*"))
        if p.is_file()
    }
    assert sorted(map(str, shipped)) == sorted(map(str, built)), "run scripts/node_firmware"
    for path, data in built.items():
        assert shipped[path] == data, f"{path} differs: run scripts/node_firmware"


def test_the_bundle_covers_every_firmware_module_and_nothing_more() -> None:
    bundle = fw.load_bundle(node_firmware.BUNDLE)
    sources = sorted(p.stem for p in (node_firmware.SOURCE).glob("*.py"))
    assert [Path(f.path).stem for f in bundle.files] == sources
    assert all(f.path.startswith("semfw/") and f.path.endswith(".mpy") for f in bundle.files)
    assert bundle.version == node_firmware.firmware_version()
    assert bundle.mpy == "6"
    assert bundle.notes  # the release notes come from the changelog
    # small enough to ship with every install of the integration
    assert bundle.size < 64 * 1024


def test_a_damaged_bundle_is_refused(tmp_path: Path) -> None:
    copy = tmp_path / "bundle"
    shutil.copytree(node_firmware.BUNDLE, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    target = copy / manifest["files"][2]["path"]
    target.write_bytes(target.read_bytes()[:-1] + b"\x00")
    with pytest.raises(fw.BundleError, match=manifest["files"][2]["path"]):
        fw.load_bundle(copy)
