"""The dashboard users paste: Home Assistant loads it, and it shows what the paper's UI showed."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from demo.stack import DEMO_HISTORY_HOURS, demo_dashboard_yaml

DASHBOARD = Path(__file__).resolve().parents[2] / "dashboards" / "smart_energy_meter.yaml"

# The entity ids the integration gives a pair named "House N".
ENTITIES = {
    f"{domain}.house_{n}_{key}"
    for n in (1, 2)
    for domain, key in [
        ("sensor", "voltage"),
        ("sensor", "current"),
        ("sensor", "power"),
        ("sensor", "power_factor"),
        ("sensor", "frequency"),
        ("sensor", "energy"),
        ("sensor", "line_power"),
        ("sensor", "theft_percentage"),
        ("binary_sensor", "theft"),
        ("event", "theft"),
        ("switch", "relay"),
        ("button", "reset_energy"),
    ]
}


def _cards(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if "type" in node and ("entity" in node or "entities" in node):
            found.append(node)
        for value in node.values():
            found += _cards(value)
    elif isinstance(node, list):
        for value in node:
            found += _cards(value)
    return found


def _entity_ids(card: dict[str, Any]) -> list[str]:
    ids = [card["entity"]] if "entity" in card else []
    for row in card.get("entities", []):
        ids.append(row if isinstance(row, str) else row["entity"])
    return ids


async def test_home_assistant_serves_it_as_a_yaml_dashboard(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, tmp_path: Path
) -> None:
    hass.config.config_dir = str(tmp_path)
    shutil.copy(DASHBOARD, tmp_path / "smart_energy_meter.yaml")
    assert await async_setup_component(
        hass,
        "lovelace",
        {
            "lovelace": {
                "dashboards": {
                    "smart-energy": {
                        "mode": "yaml",
                        "title": "Smart Energy Meter",
                        "filename": "smart_energy_meter.yaml",
                    }
                }
            }
        },
    )
    client = await hass_ws_client(hass)
    await client.send_json_auto_id({"type": "lovelace/config", "url_path": "smart-energy"})
    response = await client.receive_json()
    assert response["success"], response
    served = response["result"]
    assert served == yaml.safe_load(DASHBOARD.read_text())


def test_each_house_shows_the_papers_panel() -> None:
    config = yaml.safe_load(DASHBOARD.read_text())
    sections = config["views"][0]["sections"]
    assert len(sections) == 2
    for number, section in enumerate(sections, start=1):
        cards = _cards(section)
        prefix = f"house_{number}"
        gauges = {card["entity"] for card in cards if card["type"] == "gauge"}
        assert gauges == {
            f"sensor.{prefix}_{key}"
            for key in ("voltage", "current", "power", "line_power", "energy", "theft_percentage")
        }
        rows = {e for card in cards if card["type"] == "entities" for e in _entity_ids(card)}
        assert {f"switch.{prefix}_relay", f"binary_sensor.{prefix}_theft"} <= rows
        (graph,) = [card for card in cards if card["type"] == "history-graph"]
        assert set(_entity_ids(graph)) == {f"sensor.{prefix}_line_power", f"sensor.{prefix}_power"}


def test_only_entities_the_integration_creates() -> None:
    config = yaml.safe_load(DASHBOARD.read_text())
    used = {entity for card in _cards(config) for entity in _entity_ids(card)}
    assert used <= ENTITIES, used - ENTITIES


def test_demo_copy_differs_only_in_history_length() -> None:
    original = yaml.safe_load(DASHBOARD.read_text())
    demo = yaml.safe_load(demo_dashboard_yaml())
    graphs = [card for card in _cards(demo) if card["type"] == "history-graph"]
    assert graphs
    assert all(card["hours_to_show"] == DEMO_HISTORY_HOURS for card in graphs)
    for card in graphs:
        card["hours_to_show"] = 24
    assert demo == original
