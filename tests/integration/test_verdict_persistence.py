"""A verdict that outlives a reload and a restart: shown at once, its open balance window
continued, and no theft event, device trigger or logbook entry for a theft that went on."""

from __future__ import annotations

import logging
from typing import Any

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, State
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    mock_restore_cache_with_extra_data,
)

from custom_components.smart_energy_meter.const import (
    DOMAIN,
    EVENT_THEFT_CLEARED,
    EVENT_THEFT_DETECTED,
)
from custom_components.smart_energy_meter.semcore.energy_balance import Status, Verdict
from tests.integration.common import (
    TestNode,
    capture_device_triggers,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.feeder import BYPASS, HONEST, LINE, Feeder, house_1
from tests.mosquitto import Broker

STATUS = "sensor.house_1_detection_status"
THEFT = "binary_sensor.house_1_theft"
EVENT = "event.house_1_theft_events"


async def _watch_theft_events(hass: HomeAssistant, device_id: str) -> list[Any]:
    """Bus events, and device-trigger automations of the pair, of either kind."""
    events: list[Any] = []
    for kind in (EVENT_THEFT_DETECTED, EVENT_THEFT_CLEARED):
        events += [async_capture_events(hass, kind)]
    fired = await capture_device_triggers(hass, device_id)
    return [*events, fired]


async def _mid_theft(
    hass: HomeAssistant, broker: Broker, prefix: str, node: TestNode
) -> tuple[MockConfigEntry, Feeder]:
    """House 1 in theft, with a window half done."""
    entry, feeder = await house_1(hass, broker, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    await feeder.run(62, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    await feeder.run(7, LINE, BYPASS)
    return entry, feeder


async def _first_window_after(feeder: Feeder) -> Any:
    """Feed bypass readings until the balance closes a window; that window."""
    before = feeder.pair.evaluation.window
    for _ in range(30):
        await feeder.run(1, LINE, BYPASS)
        if (window := feeder.pair.evaluation.window) != before:
            return window
    raise AssertionError("no window closed")


async def _continues(
    hass: HomeAssistant, entry: MockConfigEntry, node: TestNode, feeder: Feeder, open_since: float
) -> None:
    """Theft shown before any reading; the window open at the end of the last run closes
    whole, when it would have; the theft goes on without a word."""
    assert state_of(hass, THEFT) == "on"
    assert state_of(hass, STATUS) == "theft"
    feeder = Feeder(hass, entry, node, start=feeder.ts)
    assert feeder.pair.engine.open_since == open_since
    window = await _first_window_after(feeder)
    assert window.start == open_since
    assert window.verdict is Verdict.EXCESS
    await feeder.run(40, LINE, BYPASS)
    assert state_of(hass, THEFT) == "on"


async def test_a_reload_mid_theft_goes_on_where_it_was(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry, feeder = await _mid_theft(hass, mosquitto, prefix, node)
    assert feeder.pair.device_id is not None
    watched = await _watch_theft_events(hass, feeder.pair.device_id)
    open_since = feeder.pair.engine.open_since
    assert open_since is not None
    last_event = state_of(hass, EVENT)

    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")
    await _continues(hass, entry, node, feeder, open_since)
    # No event, no trigger, and the event entity shows the same last event (no logbook entry).
    assert watched == [[], [], []]
    assert state_of(hass, EVENT) == last_event


@pytest.mark.parametrize("down_s", [0.0, 3 * 3600.0])
async def test_a_restart_mid_theft_shows_theft_at_once(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    down_s: float,
) -> None:
    """Home Assistant stops mid-theft and starts again from what it stored: at once (its
    window continued), or hours later (the window discarded, the verdict kept)."""
    entry, feeder = await _mid_theft(hass, mosquitto, prefix, node)
    subentry_id = feeder.pair.subentry_id
    open_since = feeder.pair.engine.open_since
    assert await hass.config_entries.async_unload(entry.entry_id)
    key = f"{DOMAIN}.{entry.entry_id}.energy"
    stored = hass_storage[key]["data"]["pairs"][subentry_id]
    assert stored["balance"]["debounce"]["status"] == "theft"
    stored["node_clock"][1] -= down_s
    # What a restart finds: the stored state and the entities' last states, nothing running.
    for state in hass.states.async_all():
        hass.states.async_remove(state.entity_id)
    mock_restore_cache_with_extra_data(hass, [(State(STATUS, "theft"), {})])
    assert feeder.pair.device_id is not None  # the device outlives the run
    watched = await _watch_theft_events(hass, feeder.pair.device_id)

    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the restarted entry")
    if down_s:
        assert state_of(hass, THEFT) == "on"
        pair = entry.runtime_data.pairs[subentry_id]
        assert pair.engine.status is Status.THEFT
        # Not continued: the retained readings may open it again, with nothing of the last run.
        line = pair.engine.as_dict()["windows"]["meters"]["line"]
        assert sum(window[5] for window in line["windows"]) == 0.0  # seconds covered
        feeder = Feeder(hass, entry, node, start=feeder.ts + down_s)
        await feeder.run(62, LINE, BYPASS)
        assert state_of(hass, THEFT) == "on"
    else:
        await _continues(hass, entry, node, feeder, open_since or 0.0)
    assert watched == [[], [], []]


@pytest.mark.parametrize(
    ("data", "logged"),
    [
        (["not", "a", "state"], "Stored state of smart_energy_meter."),
        ({"meters": {}, "pairs": "junk"}, "Stored state of smart_energy_meter."),
        (
            {"meters": {}, "pairs": {"SUBENTRY": {"version": 1, "balance": "junk"}}},
            "House 1: stored detection state ignored: balance: not an object",
        ),
        (
            {"meters": {}, "pairs": {"SUBENTRY": {"version": 7}}},
            "House 1: stored detection state ignored: version 7, not 1",
        ),
    ],
)
async def test_a_corrupt_store_is_ignored_with_a_log_line(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
    data: Any,
    logged: str,
) -> None:
    """The pair starts from the entities' last states instead (here: theft)."""
    entry = make_entry(hass, mosquitto, prefix)
    subentry_id = next(iter(entry.subentries))
    if isinstance(data, dict) and isinstance(data["pairs"], dict):
        data = {**data, "pairs": {subentry_id: data["pairs"]["SUBENTRY"]}}
    hass_storage[f"{DOMAIN}.{entry.entry_id}.energy"] = {"version": 1, "key": "k", "data": data}
    mock_restore_cache_with_extra_data(hass, [(State(STATUS, "theft"), {})])
    caplog.set_level(logging.WARNING)
    await setup_entry(hass, entry)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert len([w for w in warnings if logged in w]) == 1, warnings
    assert state_of(hass, THEFT) == "on"
    assert state_of(hass, STATUS) != STATE_UNAVAILABLE
