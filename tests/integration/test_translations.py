"""Translations are complete: every key the code uses exists in English and Indonesian."""

from __future__ import annotations

import ast
import json
import re
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers.translation import async_get_translations

from custom_components.smart_energy_meter.const import DOMAIN

COMPONENT = Path(__file__).parents[2] / "custom_components" / "smart_energy_meter"
STRINGS = json.loads((COMPONENT / "strings.json").read_text())
LANGUAGES = {
    path.stem: json.loads(path.read_text()) for path in (COMPONENT / "translations").glob("*.json")
}


def _keys(tree: dict[str, Any], path: str = "") -> set[str]:
    keys = set()
    for key, value in tree.items():
        if isinstance(value, dict):
            keys |= _keys(value, f"{path}{key}.")
        else:
            keys.add(f"{path}{key}")
    return keys


def _leaves(tree: dict[str, Any], path: str = "") -> dict[str, str]:
    leaves: dict[str, str] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            leaves |= _leaves(value, f"{path}{key}.")
        else:
            leaves[f"{path}{key}"] = value
    return leaves


def test_english_is_strings_json() -> None:
    assert LANGUAGES["en"] == STRINGS


def test_languages_shipped() -> None:
    assert set(LANGUAGES) == {"en", "id"}


@pytest.mark.parametrize("language", ["id"])
def test_same_keys_and_placeholders(language: str) -> None:
    english = _leaves(STRINGS)
    other = _leaves(LANGUAGES[language])
    assert set(other) == set(english)
    for key, text in english.items():
        assert set(re.findall(r"\{\w+\}", other[key])) == set(re.findall(r"\{\w+\}", text)), key
        assert other[key].strip(), key


def _string_constants(source: str) -> set[str]:
    return {
        node.value
        for node in ast.walk(ast.parse(source))
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }


def test_flow_errors_and_aborts_are_translated() -> None:
    """Every error/abort reason written in the flows has a text."""
    source = (COMPONENT / "config_flow.py").read_text()
    broker = (COMPONENT / "broker.py").read_text()
    reasons = set(re.findall(r'reason="(\w+)"', source))
    reasons |= {"already_configured", "already_in_progress"}  # raised by Home Assistant
    errors = set(re.findall(r'errors\[[^]]+\] = "(\w+)"', source))
    errors |= set(re.findall(r'BrokerError\("(\w+)"', broker)) | {"cannot_connect", "tls_error"}
    errors |= set(re.findall(r'return \{CONF_\w+: "(\w+)"\}', source))
    flow_abort = set(STRINGS["config"]["abort"])
    sub_abort = {
        reason for flow in STRINGS["config_subentries"].values() for reason in flow.get("abort", {})
    }
    assert reasons <= flow_abort | sub_abort
    flow_errors = set(STRINGS["config"]["error"])
    sub_errors = {
        error for flow in STRINGS["config_subentries"].values() for error in flow.get("error", {})
    }
    options_errors = set(STRINGS["options"]["error"])
    assert errors <= flow_errors | sub_errors | options_errors
    assert {"cannot_connect", "invalid_auth", "tls_error", "invalid_ca"} <= flow_errors
    assert "hysteresis_too_large" in options_errors & sub_errors


def test_exceptions_and_issues_are_translated() -> None:
    pair = (COMPONENT / "pair.py").read_text()
    used = set(re.findall(r'_error\(\s*"(\w+)"', pair))
    assert used == {
        "node_unavailable",
        "not_connected",
        "relay_timeout",
        "reset_failed",
        "reset_no_reply",
    }
    assert used | {"invalid_ca"} <= set(STRINGS["exceptions"])
    assert "node_removed" in STRINGS["issues"]


async def test_entity_names_resolve(hass: HomeAssistant) -> None:
    """Home Assistant loads the entity names of both languages."""
    for language, expected in (("en", "Theft percentage"), ("id", "Persentase pencurian")):
        names = await async_get_translations(hass, language, "entity", {DOMAIN})
        assert names[f"component.{DOMAIN}.entity.sensor.theft_percentage.name"] == expected
    sources = "".join(
        (COMPONENT / name).read_text()
        for name in ("sensor.py", "binary_sensor.py", "event.py", "switch.py", "button.py")
    )
    used = set(re.findall(r'translation_key="(\w+)"', sources))
    used |= set(re.findall(r'_(?:voltage|current|power|energy)\("(\w+)"', sources))
    entity_keys = {key.split(".")[1] for key in _keys(STRINGS["entity"])}
    assert used <= entity_keys
    assert _string_constants(sources) >= {"theft", "relay", "reset_energy", "theft_percentage"}
