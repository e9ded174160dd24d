"""The logbook as a person reads it: each change of the theft verdict is one row of the pair's
event entity, on the house's device, in the user's language and with an icon."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.recorder import Recorder
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.icon import async_get_icons
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import (
    RecorderInstanceContextManager,
    WebSocketGenerator,
)

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.semcore.pair_monitor import Outcome
from tests.integration.common import TestNode, wait_state
from tests.integration.feeder import BYPASS, HONEST, LINE, Feeder, house_1
from tests.mosquitto import Broker

EVENT = "event.house_1_theft_events"
THEFT = "binary_sensor.house_1_theft"
EVENT_TYPE = "component.smart_energy_meter.entity.event.theft.state_attributes.event_type.state"
SENTENCES = {
    "en": {
        Outcome.DETECTED: "Theft detected",
        Outcome.CLEARED: "Theft cleared: the meters agree again",
        Outcome.NO_LOAD: "Theft cleared only because no power is drawn",
    },
    "id": {
        Outcome.DETECTED: "Pencurian terdeteksi",
        Outcome.CLEARED: "Pencurian berakhir: kedua meter kembali sesuai",
        Outcome.NO_LOAD: "Pencurian berakhir hanya karena tidak ada daya yang dipakai",
    },
}


@pytest.fixture
async def mock_recorder_before_hass(
    async_setup_recorder_instance: RecorderInstanceContextManager,
) -> None:
    """The recorder's database is prepared before Home Assistant starts."""


@pytest.fixture
async def theft(
    recorder_mock: Recorder, hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> Feeder:
    """House 1 under the energy balance, evaluated and OK, with the logbook running."""
    assert await async_setup_component(hass, "logbook", {})
    _, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, "sensor.house_1_detection_status", "ok")
    return feeder


async def _rows(
    hass: HomeAssistant, ws: WebSocketGenerator, start: Any, **target: list[str]
) -> list[dict[str, Any]]:
    """The logbook's rows since `start` as the frontend asks for them."""
    await async_wait_recording_done(hass)
    client = await ws(hass)
    await client.send_json_auto_id(
        {"type": "logbook/get_events", "start_time": start.isoformat(), **target}
    )
    response = await client.receive_json()
    assert response["success"], response
    rows: list[dict[str, Any]] = response["result"]
    return rows


def _device_entities(hass: HomeAssistant, feeder: Feeder) -> list[str]:
    registry = er.async_get(hass)
    return [e.entity_id for e in er.async_entries_for_device(registry, str(feeder.pair.device_id))]


async def test_one_verdict_change_is_one_translated_sentence_on_the_device(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, theft: Feeder
) -> None:
    start = dt_util.utcnow()
    await theft.run(62, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    await theft.run(70, LINE, HONEST)
    await wait_state(hass, THEFT, "off")

    device = str(theft.pair.device_id)
    # The device page asks by device and entities, the Activity page filtered to the house by
    # its entities: both show the change.
    for target in (
        {"device_ids": [device], "entity_ids": _device_entities(hass, theft)},
        {"entity_ids": _device_entities(hass, theft)},
    ):
        rows = await _rows(hass, hass_ws_client, start, **target)
        # No row of a bare bus event: its text could be neither translated nor filtered.
        assert [r for r in rows if r.get("domain") == DOMAIN or "message" in r] == [], rows
        events = [r for r in rows if r.get("entity_id") == EVENT]
        assert [r["attributes"]["event_type"] for r in events] == [
            Outcome.DETECTED,
            Outcome.CLEARED,
        ], rows
    # What the frontend shows for those rows, in English and Indonesian, and their icons.
    for language, sentences in SENTENCES.items():
        texts = await async_get_translations(hass, language, "entity", {DOMAIN})
        for kind, sentence in sentences.items():
            assert texts[f"{EVENT_TYPE}.{kind}"] == sentence
    icons = (await async_get_icons(hass, "entity", {DOMAIN}))[DOMAIN]
    event_icons = icons["event"]["theft"]["state_attributes"]["event_type"]["state"]
    assert set(event_icons) == {kind.value for kind in Outcome}


async def test_theft_cleared_by_a_house_switched_off_says_so(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, theft: Feeder
) -> None:
    start = dt_util.utcnow()
    await theft.run(62, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    event = hass.states.get(EVENT)
    assert event is not None
    # The share of the line's power the house does not account for: 17.77 % of the line, which
    # is the line 21.6 % above the house.
    line, house = event.attributes["line_power"], event.attributes["house_power"]
    assert event.attributes["mismatch_percent"] == pytest.approx(17.77, abs=0.01)
    assert (line - house) / line * 100 == pytest.approx(17.77, abs=0.1)
    # The relay cuts the house: both meters read 0 W, windows balance at nothing.
    await theft.run(70, 0.0, 0.0)
    await wait_state(hass, THEFT, "off")
    rows = await _rows(hass, hass_ws_client, start, entity_ids=_device_entities(hass, theft))
    events = [r["attributes"]["event_type"] for r in rows if r.get("entity_id") == EVENT]
    assert events == [Outcome.DETECTED, Outcome.NO_LOAD]


async def test_the_first_verdict_changes_no_alarm_that_was_not_raised(
    recorder_mock: Recorder,
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
) -> None:
    """Tamper and meter fault are clear from the start, not unknown until the balance has
    judged: the first verdict is a change of the verdict's entities only."""
    assert await async_setup_component(hass, "logbook", {})
    start = dt_util.utcnow()
    _, feeder = await house_1(hass, mosquitto, prefix, node)
    alarms = ("binary_sensor.house_1_tamper", "binary_sensor.house_1_meter_fault")
    assert [hass.states.get(alarm).state for alarm in alarms] == ["off", "off"]  # type: ignore[union-attr]
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, "sensor.house_1_detection_status", "ok")
    rows = await _rows(hass, hass_ws_client, start, entity_ids=_device_entities(hass, feeder))
    # Each alarm's one row is the state it started in.
    for alarm in alarms:
        assert [r["state"] for r in rows if r.get("entity_id") == alarm] == ["off"], rows
