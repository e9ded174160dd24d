"""What hassfest and HACS check on a custom integration, checked here without them."""

from __future__ import annotations

import json
import os
import re
from importlib import metadata
from pathlib import Path

from awesomeversion import AwesomeVersion
from packaging.requirements import Requirement
from PIL import Image

ROOT = Path(__file__).parents[2]
INTEGRATION = ROOT / "custom_components" / "smart_energy_meter"
MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text())
HACS = json.loads((ROOT / "hacs.json").read_text())


def test_manifest_key_order_and_required_keys() -> None:
    keys = list(MANIFEST)
    assert keys[:2] == ["domain", "name"]
    assert keys[2:] == sorted(keys[2:])
    required = {
        "domain", "name", "codeowners", "config_flow", "documentation", "integration_type",
        "iot_class", "issue_tracker", "loggers", "requirements", "version",
    }  # fmt: skip
    assert required <= set(keys)


def test_manifest_values() -> None:
    assert MANIFEST["domain"] == INTEGRATION.name
    assert MANIFEST["config_flow"] is True
    assert MANIFEST["integration_type"] == "hub"
    assert MANIFEST["iot_class"] == "local_push"
    assert MANIFEST["documentation"].startswith("https://")
    assert MANIFEST["issue_tracker"].startswith("https://")
    assert all(owner.startswith("@") for owner in MANIFEST["codeowners"])
    assert re.fullmatch(r"\d+\.\d+\.\d+", MANIFEST["version"])


def test_manifest_requirements_are_installed_and_fit_home_assistant() -> None:
    """Each requirement is pinned, is what the tests ran with, and accepts HA's paho-mqtt."""
    for line in MANIFEST["requirements"]:
        req = Requirement(line)
        assert str(req.specifier).startswith("=="), line
        assert metadata.version(req.name) in req.specifier, line
    aiomqtt_needs = [
        Requirement(r) for r in metadata.requires("aiomqtt") or [] if r.startswith("paho")
    ]
    assert aiomqtt_needs, "aiomqtt declares its paho-mqtt dependency"
    paho = metadata.version("paho-mqtt")
    assert all(paho in r.specifier for r in aiomqtt_needs)


def test_hacs_json() -> None:
    assert set(HACS) <= {
        "name", "content_in_root", "zip_release", "filename", "hide_default_branch",
        "country", "homeassistant", "hacs", "persistent_directory", "render_readme",
    }  # fmt: skip
    assert isinstance(HACS["name"], str)
    assert HACS["name"]
    assert HACS["render_readme"] is True
    # A lower bound: the suite runs on it (scripts/test's second environment) and on newer.
    minimum = AwesomeVersion(HACS["homeassistant"])
    installed = AwesomeVersion(metadata.version("homeassistant"))
    assert installed >= minimum
    if os.environ.get("SEM_REQUIREMENTS") == "requirements_ha_min.txt":
        assert installed == minimum, "the oldest environment runs the declared minimum"


def test_every_blueprint_imports_on_the_oldest_supported_release() -> None:
    # A user on the minimum hacs.json names must be able to import what the README offers.
    minimum = AwesomeVersion(HACS["homeassistant"])
    blueprints = sorted((ROOT / "blueprints").rglob("*.yaml"))
    assert blueprints
    for path in blueprints:
        found = re.search(r'^\s+min_version: "([^"]+)"$', path.read_text(), re.MULTILINE)
        assert found, f"{path.name}: no min_version"
        assert AwesomeVersion(found[1]) <= minimum, f"{path.name} needs {found[1]}"


def test_the_tested_range_is_stated() -> None:
    readme = (ROOT / "README.md").read_text()
    newest = (ROOT / "requirements_test.txt").read_text()
    oldest = (ROOT / "requirements_ha_min.txt").read_text()
    plugin = re.compile(r"^pytest-homeassistant-custom-component==\S+$", re.MULTILINE)
    assert plugin.search(newest)
    assert plugin.search(oldest)
    assert f"Home Assistant {HACS['homeassistant']} " in readme


def test_brand_images() -> None:
    brand = INTEGRATION / "brand"
    for name, size in (("icon.png", (256, 256)), ("icon@2x.png", (512, 512))):
        with Image.open(brand / name) as img:
            assert img.size == size
            assert img.mode == "RGBA"
    for name, height in (("logo.png", 128), ("logo@2x.png", 256)):
        with Image.open(brand / name) as img:
            assert img.size[1] == height
            assert img.size[0] > img.size[1]
