"""Build the node firmware bundle: firmware/semfw compiled with mpy-cross, and its manifest.

Run through `scripts/node_firmware` after changing the firmware; `tests/core/test_node_firmware.py`
fails while the committed bundle differs from what this builds. The bundle ships inside the
integration folder (HACS installs only that folder), so it holds compiled files only: no
sources, no simulator. The manifest names the firmware version, the MicroPython version the
files were compiled for and their .mpy format, each file's size and SHA-256, and the release
notes: the newest "Node firmware" section of CHANGELOG.md.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SOURCE = ROOT / "firmware" / "semfw"
BUNDLE = ROOT / "custom_components" / "smart_energy_meter" / "node_firmware"


def firmware_version() -> str:
    text = (SOURCE / "__init__.py").read_text()
    match = re.search(r'^VERSION = "([^"]+)"', text, re.MULTILINE)
    if match is None:
        raise SystemExit("no VERSION in firmware/semfw/__init__.py")
    return match.group(1)


def compiler_version() -> str:
    """The MicroPython version of mpy-cross, e.g. 1.29.0."""
    out = subprocess.run(["mpy-cross", "--version"], capture_output=True, text=True, check=True)
    match = re.search(r"MicroPython v(\d+\.\d+\.\d+)", out.stdout)
    if match is None:
        raise SystemExit(f"cannot read the mpy-cross version from {out.stdout!r}")
    return match.group(1)


def release_notes() -> str:
    """The newest `### Node firmware` section of the changelog, without its heading."""
    text = (ROOT / "CHANGELOG.md").read_text()
    match = re.search(r"^### Node firmware[^\n]*\n(.*?)(?=^##)", text, re.MULTILINE | re.DOTALL)
    return match.group(1).strip() if match else ""


def build(out: Path) -> None:
    """Write the bundle into `out` (emptied first)."""
    if out.exists():
        shutil.rmtree(out)
    (out / "semfw").mkdir(parents=True)
    entries = []
    mpy = None
    for source in sorted(SOURCE.glob("*.py")):
        path = f"semfw/{source.stem}.mpy"
        subprocess.run(
            ["mpy-cross", "-s", f"semfw/{source.name}", "-o", str(out / path), str(source)],
            check=True,
        )
        data = (out / path).read_bytes()
        mpy = str(data[1])  # header: 'M', then the format version bytecode depends on
        entries.append(
            {"path": path, "size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
        )
    manifest = {
        "version": firmware_version(),
        "mp": compiler_version(),
        "mpy": mpy,
        "notes": release_notes(),
        "files": entries,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


def main() -> int:
    if sys.argv[1:] == ["--check"]:
        with tempfile.TemporaryDirectory() as tmp:
            build(Path(tmp) / "bundle")
            built = {
                p.relative_to(Path(tmp) / "bundle"): p.read_bytes()
                for p in (Path(tmp) / "bundle").rglob("*")
                if p.is_file()
            }
        shipped = {p.relative_to(BUNDLE): p.read_bytes() for p in BUNDLE.rglob("*") if p.is_file()}
        if built != shipped:
            print("node_firmware/ differs from firmware/: run scripts/node_firmware")
            return 1
        print("node_firmware/ matches firmware/")
        return 0
    build(BUNDLE)
    size = sum(p.stat().st_size for p in BUNDLE.rglob("*.mpy"))
    print(f"{BUNDLE.relative_to(ROOT)}: {size} bytes of firmware")
    return 0


if __name__ == "__main__":
    sys.exit(main())
