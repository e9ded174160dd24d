"""The theft-alert blueprint, loaded and run by Home Assistant's own blueprint machinery."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import persistent_notification
from homeassistant.components.automation.helpers import async_get_blueprints
from homeassistant.core import HomeAssistant, ServiceCall
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_mock_service,
)

from custom_components.smart_energy_meter.runtime import MANUFACTURER, PAIR_MODEL

BLUEPRINT = (
    Path(__file__).resolve().parents[2]
    / "blueprints"
    / "automation"
    / "smart_energy_meter"
    / "theft_alert.yaml"
)
BLUEPRINT_PATH = "smart_energy_meter/theft_alert.yaml"
DOMAIN = "smart_energy_meter"
DETECTED = "smart_energy_meter_theft_detected"
CLEARED = "smart_energy_meter_theft_cleared"


@pytest.fixture
def config_dir(hass: HomeAssistant, tmp_path: Path) -> Path:
    """A config directory holding the blueprint where users import it to."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / "smart_energy_meter"
    target.mkdir(parents=True)
    shutil.copy(BLUEPRINT, target / BLUEPRINT.name)
    return tmp_path


@pytest.fixture
def houses(hass: HomeAssistant) -> dict[str, str]:
    """Two pair devices as the integration registers them, each with its relay switch."""
    entry = MockConfigEntry(domain=DOMAIN, title="127.0.0.1:1883 sem")
    entry.add_to_hass(hass)
    devices = dr.async_get(hass)
    entities = er.async_get(hass)
    ids = {}
    for number in (1, 2):
        device = devices.async_get_or_create(
            config_entry_id=entry.entry_id,
            identifiers={(DOMAIN, f"paper-node/house{number}")},
            name=f"House {number}",
        )
        entities.async_get_or_create(
            "switch",
            DOMAIN,
            f"paper-node-r{number}",
            device_id=device.id,
            config_entry=entry,
            suggested_object_id=f"house_{number}_relay",
        )
        ids[f"house{number}"] = device.id
    return ids


async def _set_up(hass: HomeAssistant, inputs: dict[str, Any]) -> None:
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": {
                "id": "theft_alert",
                "alias": "Theft alert",
                "use_blueprint": {"path": BLUEPRINT_PATH, "input": inputs},
            }
        },
    )
    await hass.async_block_till_done()
    assert hass.states.get("automation.theft_alert").state == "on"


def _theft(device_id: str) -> dict[str, Any]:
    return {
        "device_id": device_id,
        "pair": "house2",
        "mismatch_percent": 17.77,
        "line_power": 121.63,
        "house_power": 100.02,
    }


async def test_blueprint_passes_home_assistant_validation(
    hass: HomeAssistant, config_dir: Path
) -> None:
    blueprint = await async_get_blueprints(hass).async_get_blueprint(BLUEPRINT_PATH)
    assert blueprint.domain == "automation"
    assert set(blueprint.inputs) == {"pairs", "notify", "cut_relay", "cut_after"}
    # Every input has a default, so the blueprint works with no input at all.
    assert all("default" in spec for spec in blueprint.inputs.values())


def _offered(hass: HomeAssistant, device: dr.DeviceEntry, device_filter: list[Any]) -> bool:
    """Whether the device picker offers `device` under the selector's filter: one entry of
    the list whose every key matches (what Home Assistant's device selector does)."""
    owner = hass.config_entries.async_get_entry(device.config_entry_id or "")
    domains = {owner.domain} if owner else set()
    values = {"manufacturer": device.manufacturer, "model": device.model}
    values |= {"model_id": device.model_id}
    return any(
        all(
            value in domains if key == "integration" else values.get(key) == value
            for key, value in entry.items()
        )
        for entry in device_filter
    )


async def test_houses_picker_offers_only_the_pairs_not_the_node(
    hass: HomeAssistant, config_dir: Path
) -> None:
    blueprint = await async_get_blueprints(hass).async_get_blueprint(BLUEPRINT_PATH)
    device_filter = blueprint.inputs["pairs"]["selector"]["device"]["filter"]
    entry = MockConfigEntry(domain=DOMAIN, title="127.0.0.1:1883 sem")
    entry.add_to_hass(hass)
    devices = dr.async_get(hass)
    # As the integration registers them: the node with the model it announces, the pair.
    node = devices.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, "node/paper-node")},
        manufacturer=MANUFACTURER,
        model="ESP32 + 2x PZEM-004T v3",
        name="Paper node",
    )
    pair = devices.async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, "pair/house2")},
        manufacturer=MANUFACTURER,
        model=PAIR_MODEL,
        name="House 2",
        via_device_id=node.id,
    )
    other = MockConfigEntry(domain="demo")
    other.add_to_hass(hass)
    foreign = devices.async_get_or_create(
        config_entry_id=other.entry_id, identifiers={("demo", "x")}, model=PAIR_MODEL
    )
    assert _offered(hass, pair, device_filter)
    assert not _offered(hass, node, device_filter)
    assert not _offered(hass, foreign, device_filter)


async def test_default_notification_names_house_and_figures(
    hass: HomeAssistant, config_dir: Path, houses: dict[str, str]
) -> None:
    created: list[dict[str, Any]] = []

    def on_update(_kind: Any, notifications: dict[str, Any]) -> None:
        created.extend(dict(n) for n in notifications.values())

    await async_setup_component(hass, "persistent_notification", {})
    unsub = persistent_notification.async_register_callback(hass, on_update)
    await _set_up(hass, {})

    hass.bus.async_fire(DETECTED, _theft(houses["house2"]))
    await hass.async_block_till_done()
    unsub()

    assert len(created) == 1
    note = created[0]
    assert note["title"] == "Electricity theft suspected: House 2"
    assert "121.6 W" in note["message"]
    assert "100.0 W" in note["message"]
    assert "17.8 %" in note["message"]


async def test_only_the_chosen_houses_notify(
    hass: HomeAssistant, config_dir: Path, houses: dict[str, str]
) -> None:
    calls = async_mock_service(hass, "test", "notify")
    await _set_up(
        hass,
        {
            "pairs": [houses["house1"]],
            "notify": [{"action": "test.notify", "data": {"message": "{{ house }}"}}],
        },
    )

    hass.bus.async_fire(DETECTED, _theft(houses["house2"]))
    await hass.async_block_till_done()
    assert calls == []

    hass.bus.async_fire(DETECTED, _theft(houses["house1"]))
    await hass.async_block_till_done()
    assert [call.data["message"] for call in calls] == ["House 1"]


async def _settle(hass: HomeAssistant) -> None:
    """Let the automation run up to its wait: block_till_done would wait for the wait too."""
    for _ in range(50):
        await asyncio.sleep(0)


async def _tick(hass: HomeAssistant, freezer: FrozenDateTimeFactory, seconds: float) -> None:
    freezer.tick(timedelta(seconds=seconds))
    async_fire_time_changed(hass)
    await _settle(hass)


async def _run_theft(
    hass: HomeAssistant,
    freezer: FrozenDateTimeFactory,
    device_id: str,
    *,
    clear_after: float | None,
    wait: float,
) -> None:
    hass.bus.async_fire(DETECTED, _theft(device_id))
    await _settle(hass)
    if clear_after is not None:
        await _tick(hass, freezer, clear_after)
        hass.bus.async_fire(CLEARED, {"device_id": device_id, "pair": "house2"})
        await _settle(hass)
        wait -= clear_after
    await _tick(hass, freezer, wait)


def _relays_cut(calls: list[ServiceCall]) -> list[Any]:
    return [call.data["entity_id"] for call in calls]


async def test_relay_cut_after_confirmation_time_when_enabled(
    hass: HomeAssistant,
    config_dir: Path,
    houses: dict[str, str],
    freezer: FrozenDateTimeFactory,
) -> None:
    turn_off = async_mock_service(hass, "switch", "turn_off")
    await _set_up(hass, {"cut_relay": True, "cut_after": 2, "notify": []})

    await _run_theft(hass, freezer, houses["house2"], clear_after=None, wait=90)
    assert turn_off == []  # still inside the confirmation time

    await _tick(hass, freezer, 31)
    await hass.async_block_till_done()
    assert _relays_cut(turn_off) == [["switch.house_2_relay"]]


async def test_relay_kept_when_theft_clears_in_time(
    hass: HomeAssistant,
    config_dir: Path,
    houses: dict[str, str],
    freezer: FrozenDateTimeFactory,
) -> None:
    turn_off = async_mock_service(hass, "switch", "turn_off")
    await _set_up(hass, {"cut_relay": True, "cut_after": 2, "notify": []})

    await _run_theft(hass, freezer, houses["house2"], clear_after=60, wait=300)
    assert turn_off == []


async def test_clearing_another_house_does_not_spare_this_one(
    hass: HomeAssistant,
    config_dir: Path,
    houses: dict[str, str],
    freezer: FrozenDateTimeFactory,
) -> None:
    turn_off = async_mock_service(hass, "switch", "turn_off")
    await _set_up(hass, {"cut_relay": True, "cut_after": 2, "notify": []})

    hass.bus.async_fire(DETECTED, _theft(houses["house2"]))
    await _settle(hass)
    hass.bus.async_fire(CLEARED, {"device_id": houses["house1"], "pair": "house1"})
    await _tick(hass, freezer, 121)
    await hass.async_block_till_done()
    assert _relays_cut(turn_off) == [["switch.house_2_relay"]]


async def test_relay_never_cut_by_default(
    hass: HomeAssistant,
    config_dir: Path,
    houses: dict[str, str],
    freezer: FrozenDateTimeFactory,
) -> None:
    turn_off = async_mock_service(hass, "switch", "turn_off")
    await _set_up(hass, {"notify": []})

    await _run_theft(hass, freezer, houses["house2"], clear_after=None, wait=3600)
    assert turn_off == []
