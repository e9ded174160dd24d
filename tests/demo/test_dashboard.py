"""The dashboard users paste: Home Assistant loads it, and it shows what the paper's UI showed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import yaml
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from demo.stack import DEMO_HISTORY_HOURS, demo_dashboard_yaml

REPO = Path(__file__).resolve().parents[2]
DASHBOARD = REPO / "dashboards" / "smart_energy_meter.yaml"
DASHBOARD_ID = REPO / "dashboards" / "smart_energy_meter_id.yaml"
# The Indonesian dashboard's labels of its own, by their English originals.
INDONESIAN = {"Last theft event": "Peristiwa pencurian terakhir", "Never": "Belum pernah"}
STRINGS = REPO / "custom_components" / "smart_energy_meter" / "strings.json"

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
        ("sensor", "detection_status"),
        ("sensor", "unaccounted_energy"),
        ("binary_sensor", "theft"),
        ("event", "theft_events"),
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
    for item in card.get("entities", []):
        row = item.get("row", item) if isinstance(item, dict) else item  # conditional rows
        if isinstance(row, str) or "entity" in row:
            ids.append(row if isinstance(row, str) else row["entity"])
    return ids


def _visible_in(card: dict[str, Any], state: str) -> bool:
    """Whether the card's state conditions (all on one entity here) let it show in `state`."""
    for condition in card.get("visibility", []):
        if "state" in condition and state not in _listed(condition["state"]):
            return False
        if "state_not" in condition and state in _listed(condition["state_not"]):
            return False
    return True


def _listed(value: str | list[str]) -> list[str]:
    return [value] if isinstance(value, str) else value


def test_no_gauge_ever_shows_a_non_number() -> None:
    # A gauge shows an error card for a state that is not a number: each gives way to a tile
    # (which shows "Unknown" / "Unavailable") for exactly those states, so one of them shows.
    config = yaml.safe_load(DASHBOARD.read_text())
    cards = _cards(config)
    for gauge in (card for card in cards if card["type"] == "gauge"):
        entity = gauge["entity"]
        others = [c for c in cards if c is not gauge and c.get("entity") == entity]
        for state in ("unknown", "unavailable"):
            assert not _visible_in(gauge, state), (entity, state)
            assert any(_visible_in(c, state) for c in others), (entity, state)
        assert _visible_in(gauge, "12.5")
        assert not any(_visible_in(c, "12.5") for c in others), entity


def test_the_verdict_shows_one_coloured_icon_in_every_status() -> None:
    config = yaml.safe_load(DASHBOARD.read_text())
    options = [*json.loads(STRINGS.read_text())["entity"]["sensor"]["detection_status"]["state"]]
    for number in (1, 2):
        status = f"sensor.house_{number}_detection_status"
        icons = [c for c in _cards(config) if c["type"] == "button" and c.get("entity") == status]
        for state in (*options, "unknown", "unavailable"):
            shown = [c.get("color") for c in icons if _visible_in(c, state)]
            assert len(shown) == 1, (status, state, shown)
        colour = {
            state: next(c["color"] for c in icons if _visible_in(c, state))
            for state in ("theft", "ok", "evaluating", "not_evaluable")
        }
        assert colour == {
            "theft": "red",
            "ok": "green",
            "evaluating": "blue",
            "not_evaluable": "disabled",
        }


def test_labels_are_the_entities_translated_names() -> None:
    # No English label on an entity: the cards take the entity's name, in the user's language.
    config = yaml.safe_load(DASHBOARD.read_text())
    for card in _cards(config):
        named = [card, *(r for r in card.get("entities", []) if isinstance(r, dict))]
        for item in named:
            if "entity" in item:
                assert item.get("name", {"type": "entity"}) == {"type": "entity"}, item


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
            for key in (
                "voltage",
                "current",
                "power",
                "line_power",
                "theft_percentage",
                "power_factor",
            )
        }
        # Energy is a counter: a value, not a gauge.
        values = {card["entity"] for card in cards if card["type"] == "entity"}
        assert f"sensor.{prefix}_energy" in values
        assert f"sensor.{prefix}_detection_status" in values
        rows = {e for card in cards if card["type"] == "entities" for e in _entity_ids(card)}
        assert f"switch.{prefix}_relay" in rows
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


def _literal_labels(node: Any) -> set[str]:
    """Every label the dashboard writes itself (not an entity's name, not a heading)."""
    found: set[str] = set()
    if isinstance(node, dict):
        for key in ("name", "text"):
            if isinstance(node.get(key), str) and node.get("type") != "heading":
                found.add(node[key])
        for value in node.values():
            found |= _literal_labels(value)
    elif isinstance(node, list):
        for value in node:
            found |= _literal_labels(value)
    return found


def test_indonesian_dashboard_is_the_same_with_its_own_labels_translated() -> None:
    english = yaml.safe_load(DASHBOARD.read_text())
    indonesian = yaml.safe_load(DASHBOARD_ID.read_text())
    assert _literal_labels(english) == set(INDONESIAN)
    assert _literal_labels(indonesian) == set(INDONESIAN.values())
    back = DASHBOARD_ID.read_text()
    for original, translated in INDONESIAN.items():
        back = back.replace(f": {translated}\n", f": {original}\n")
    assert yaml.safe_load(back) == english
    demo = yaml.safe_load(demo_dashboard_yaml(DASHBOARD_ID))
    assert _literal_labels(demo) == set(INDONESIAN.values())
