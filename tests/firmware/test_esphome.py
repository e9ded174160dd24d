"""The ESPHome configuration for the paper's ENC28J60 boards, validated by `esphome config`."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from custom_components.smart_energy_meter.semcore import protocol as codec

ESPHOME_DIR = Path(__file__).parents[2] / "firmware" / "esphome"


def _esphome() -> str:
    venv = Path(os.environ.get("VIRTUAL_ENV", "/opt/venv"))
    binary = venv / "esphome" / "bin" / "esphome"
    assert binary.exists(), "ESPHome is not installed (scripts/provision.d/25-esphome.sh)"
    return str(binary)


def _config(directory: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_esphome(), "config", "paper-node.yaml"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.fixture
def copy(tmp_path: Path) -> Path:
    """The ESPHome files in a scratch directory (esphome may write next to them)."""
    target = tmp_path / "esphome"
    shutil.copytree(ESPHOME_DIR, target)
    return target


def test_paper_node_yaml_is_valid(copy: Path) -> None:
    proc = _config(copy)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "Configuration is valid!" in out + proc.stderr
    assert "type: ENC28J60" in out
    assert out.count("platform: pzemac") == 4
    for meter in ("line1", "house1", "line2", "house2"):
        assert f"topic: sem/paper-node/{meter}/state" in out
        assert f"topic: sem/paper-node/{meter}/reset_energy" in out
        assert f"state_topic: sem/paper-node/{meter}/vac" in out
    for relay in ("r1", "r2"):
        assert f"command_topic: sem/paper-node/relay/{relay}/set" in out
        assert f"state_topic: sem/paper-node/relay/{relay}/state" in out
    assert "topic: sem/paper-node/status" in out
    assert "topic: sem/paper-node/announce" in out


class _Loader(yaml.SafeLoader):
    """Reads esphome's resolved output; its tags (!lambda and the like) become plain values."""


_Loader.add_multi_constructor(
    "!",
    lambda loader, _suffix, node: loader.construct_scalar(node),  # type: ignore[arg-type]
)


def test_announce_and_status_follow_the_protocol(copy: Path) -> None:
    proc = _config(copy)
    assert proc.returncode == 0
    resolved = yaml.load(proc.stdout.split("INFO ")[0], Loader=_Loader)
    mqtt = resolved["mqtt"]
    assert mqtt["birth_message"] == {
        "topic": "sem/paper-node/status",
        "payload": "online",
        "qos": 1,
        "retain": True,
    }
    assert mqtt["will_message"]["payload"] == "offline"
    assert mqtt["will_message"]["retain"] is True
    assert mqtt["discovery"] is False
    (publish,) = [a["mqtt.publish"] for a in mqtt["on_connect"][0]["then"]]
    assert publish["retain"] is True
    decoded = codec.decode("sem", publish["topic"], publish["payload"].encode(), retained=True)
    assert isinstance(decoded, codec.Announce), decoded
    assert decoded.node == "paper-node"
    assert [m.address for m in decoded.meters] == [1, 2, 3, 4]
    assert decoded.paper_topics is True


def test_esphome_config_catches_a_broken_file(copy: Path) -> None:
    """The validation really validates (so the test above can fail)."""
    node = copy / "paper-node.yaml"
    node.write_text(node.read_text().replace("type: ENC28J60", "type: ENC99"))
    proc = _config(copy)
    assert proc.returncode != 0
    assert "ENC99" in proc.stdout + proc.stderr
