"""The energy balance inside Home Assistant: its entities, theft, cable loss, tamper, restore.

Readings go through a real broker, stamped on a scripted node clock (1 reading per node second
and meter); the balance's 15 s windows close as the readings arrive.
"""

from __future__ import annotations

import json
import time
from datetime import timedelta
from types import SimpleNamespace
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.json import JSONEncoder
from homeassistant.helpers.translation import async_get_translations
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    async_capture_events,
    async_fire_time_changed,
    mock_restore_cache_with_extra_data,
)

from custom_components.smart_energy_meter.const import (
    DOMAIN,
    EVENT_THEFT_CLEARED,
    EVENT_THEFT_DETECTED,
)
from custom_components.smart_energy_meter.diagnostics import async_get_config_entry_diagnostics
from custom_components.smart_energy_meter.pair import PairRuntime
from custom_components.smart_energy_meter.semcore.energy_balance import Status
from custom_components.smart_energy_meter.semcore.protocol import Role
from tests.integration.common import (
    HOUSE_1,
    HOUSE_2,
    TestNode,
    make_entry,
    script_clock,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.feeder import BYPASS, HONEST, LINE, Feeder, house_1
from tests.mosquitto import Broker

# Aluminium 2x16 mm², 40 m at 20 °C: 0.141 ohm. At 40 A and 230 V it loses 2.45 %.
LONG_CABLE = {
    "cable_length": 40.0,
    "cable_cross_section": 16.0,
    "cable_material": "aluminium",
    "cable_temperature": 20.0,
}
CABLE_OHM = 2.82e-8 * 80 / 16e-6
AMPS = 40.0
LINE_40A = 230.0 * AMPS
HOUSE_40A = LINE_40A - AMPS**2 * CABLE_OHM

# The window mismatch and the meter fault sensor are off by default; these tests read them.
pytestmark = pytest.mark.usefixtures("entity_registry_enabled_by_default")

STATUS = "sensor.house_1_detection_status"
THEFT = "binary_sensor.house_1_theft"
TAMPER = "binary_sensor.house_1_tamper"
FAULT = "binary_sensor.house_1_meter_fault"
MISMATCH = "sensor.house_1_window_mismatch"
UNACCOUNTED = "sensor.house_1_unaccounted_energy"


def _float(hass: HomeAssistant, entity_id: str) -> float:
    return float(state_of(hass, entity_id))


async def test_entities_of_the_balance(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    registry = er.async_get(hass)
    for entity_id in (STATUS, MISMATCH, UNACCOUNTED, TAMPER, FAULT):
        assert registry.async_get(entity_id) is not None, entity_id
    fault = registry.async_get(FAULT)
    assert fault is not None
    assert fault.entity_category is er.EntityCategory.DIAGNOSTIC

    # Nothing balanced yet: evaluating, no verdict, no figure; the total starts at 0.
    assert state_of(hass, STATUS) == "evaluating"
    assert state_of(hass, MISMATCH) == STATE_UNKNOWN
    assert state_of(hass, UNACCOUNTED) == "0.0"
    # No theft verdict yet; the alarms were not raised.
    assert state_of(hass, THEFT) == STATE_UNKNOWN
    for entity_id in (TAMPER, FAULT):
        assert state_of(hass, entity_id) == "off", entity_id

    await feeder.run(40, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    # The paper's house 1: 0.96 % apart, within what two uncalibrated meters explain.
    assert state_of(hass, MISMATCH) == "0.96"
    assert state_of(hass, "sensor.house_1_theft_percentage") == "0.96"
    for entity_id in (THEFT, TAMPER, FAULT):
        assert state_of(hass, entity_id) == "off", entity_id

    status = hass.states.get(STATUS)
    assert status is not None
    assert status.attributes["device_class"] == "enum"
    assert status.attributes["options"] == [
        "ok",
        "theft",
        "meter_fault",
        "tamper_suspected",
        "not_evaluable",
        "evaluating",
    ]
    mismatch = hass.states.get(MISMATCH)
    assert mismatch is not None
    assert mismatch.attributes["unit_of_measurement"] == "%"
    assert mismatch.attributes["state_class"] == "measurement"
    total = hass.states.get(UNACCOUNTED)
    assert total is not None
    assert total.attributes["device_class"] == "energy"
    assert total.attributes["state_class"] == "total"
    assert total.attributes["unit_of_measurement"] == "Wh"
    # 0.96 W unexplained in each balanced window: 0.004 Wh per 15 s.
    windows = round(float(total.state) / (0.96 * 15 / 3600))
    assert 1 <= windows <= 2
    assert float(total.state) == pytest.approx(windows * 0.96 * 15 / 3600)
    tamper = hass.states.get(TAMPER)
    assert tamper is not None
    assert tamper.attributes["device_class"] == "tamper"

    # Diagnostics show the balance, as JSON.
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    balance = json.loads(json.dumps(diagnostics, cls=JSONEncoder))["pairs"]["House 1"]["balance"]
    assert balance["status"] == "ok"
    assert balance["last_window"]["verdict"] == "clean"
    assert balance["config"]["uncertainty"]["mode"] == "uncertainty"


async def test_bypass_detected_and_cleared_by_the_balance(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    cleared = async_capture_events(hass, EVENT_THEFT_CLEARED)
    totals: list[float] = []

    def record(event: Event[Any]) -> None:
        state = event.data["new_state"]
        if event.data["entity_id"] == UNACCOUNTED and state.state != STATE_UNAVAILABLE:
            totals.append(float(state.state))

    hass.bus.async_listen("state_changed", record)
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    before = _float(hass, UNACCOUNTED)

    # Two windows of bypass: suspicious, not yet an alarm (three windows in a row).
    await feeder.run(32, LINE, BYPASS)
    assert state_of(hass, THEFT) == "off"
    assert detected == []
    await feeder.run(30, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    assert state_of(hass, STATUS) == "theft"
    assert state_of(hass, MISMATCH) == "17.77"
    assert len(detected) == 1
    assert detected[0].data == {
        "device_id": feeder.pair.device_id,
        "pair": "house1",
        "name": "House 1",
        "detection": "balance",
        "status": "theft",
        "mismatch_percent": 17.77,
        "line_power": 100.0,
        "house_power": 82.2,
    }
    event = hass.states.get("event.house_1_theft_events")
    assert event is not None
    assert event.attributes["event_type"] == "theft_detected"
    assert event.attributes["status"] == "theft"
    # 17.77 W unexplained: about 0.074 Wh per window, accumulated.
    during = _float(hass, UNACCOUNTED)
    assert during - before > 3 * 17.77 * 15 / 3600

    # Bypass removed: three clean windows clear it.
    await feeder.run(40, LINE, HONEST)
    assert state_of(hass, THEFT) == "on"  # still clearing
    await feeder.run(30, LINE, HONEST)
    await wait_state(hass, THEFT, "off")
    assert state_of(hass, STATUS) == "ok"
    assert len(cleared) == 1
    assert cleared[0].data["status"] == "ok"
    assert cleared[0].data["mismatch_percent"] == 0.96
    assert len(detected) == 1

    # The total only ever grew, and the theft is in it for good.
    assert totals == sorted(totals)
    assert totals[-1] >= during
    engine = entry.runtime_data.pairs[feeder.pair.subentry_id].engine
    assert engine.unaccounted_wh == pytest.approx(totals[-1])


async def test_long_cable_is_a_loss_not_a_theft(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """2.45 % cable loss at 40 A: the paper's rule flags it, the balance with cable data not."""
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    paper_pair = HOUSE_2 | LONG_CABLE | {"detection": "paper"}
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1 | LONG_CABLE, paper_pair])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    balance, paper = Feeder(hass, entry, node, 1), Feeder(hass, entry, node, 2)
    assert balance.pair.engine.config.effective_resistance_ohm == pytest.approx(CABLE_OHM)
    house_volts = 230.0 - AMPS * CABLE_OHM
    for _ in range(6):  # both pairs side by side, 90 s
        await balance.run(15, LINE_40A, HOUSE_40A, house_volts=house_volts)
        await paper.run(15, LINE_40A, HOUSE_40A, house_volts=house_volts)
    await wait_state(hass, "binary_sensor.house_2_theft", "on")
    assert state_of(hass, "sensor.house_1_theft_percentage") == "2.45"
    assert state_of(hass, STATUS) == "ok"
    assert state_of(hass, THEFT) == "off"
    # The cable's I²·R is explained: nothing is left over.
    assert abs(_float(hass, MISMATCH)) < 0.01
    assert _float(hass, UNACCOUNTED) < 0.1
    assert [event.data["pair"] for event in detected] == ["house2"]
    assert detected[0].data["detection"] == "paper"


async def test_tamper_when_the_house_meter_goes_silent(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    _, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    # The house PZEM stops answering while the line keeps drawing 100 W.
    await feeder.run(65, LINE, None)
    await wait_state(hass, TAMPER, "on")
    assert state_of(hass, "sensor.house_1_power") == STATE_UNAVAILABLE
    assert state_of(hass, STATUS) == "tamper_suspected"
    assert state_of(hass, THEFT) == "off"
    assert state_of(hass, MISMATCH) == STATE_UNKNOWN
    assert detected == []  # tamper is its own alarm, not a theft event
    # Back: three clean windows clear it.
    await feeder.run(65, LINE, HONEST)
    await wait_state(hass, TAMPER, "off")
    assert state_of(hass, STATUS) == "ok"


async def test_house_above_line_is_a_meter_fault(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    _, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await feeder.run(65, LINE, 110.0)
    await wait_state(hass, FAULT, "on")
    assert state_of(hass, STATUS) == "meter_fault"
    assert state_of(hass, THEFT) == "off"
    assert state_of(hass, MISMATCH) == "-10.0"
    assert detected == []


async def test_unaccounted_energy_restored_after_restart(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(UNACCOUNTED, "123.4"),
                {"native_value": 123.4, "native_unit_of_measurement": "Wh"},
            )
        ],
    )
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    assert state_of(hass, UNACCOUNTED) == "123.4"
    assert feeder.pair.engine.unaccounted_wh == 123.4
    await feeder.run(35, LINE, BYPASS)
    await wait_for(hass, lambda: _float(hass, UNACCOUNTED) > 123.4, "the total to grow")
    grown = _float(hass, UNACCOUNTED)

    # A restart (the entry reloaded): the total carries on from where it was.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")
    pair = next(iter(entry.runtime_data.pairs.values()))
    assert pair is not feeder.pair
    assert pair.engine.unaccounted_wh == pytest.approx(grown)
    assert _float(hass, UNACCOUNTED) == pytest.approx(grown)
    feeder = Feeder(hass, entry, node, start=feeder.ts)
    await feeder.run(35, LINE, BYPASS)
    await wait_for(hass, lambda: _float(hass, UNACCOUNTED) > grown, "the total to grow again")


@pytest.mark.parametrize(
    ("stored", "unit"),
    [("lots", "Wh"), (12.0, "kWh"), (None, "Wh"), (-5.0, "Wh")],
)
async def test_unusable_restored_total_is_ignored(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    stored: object,
    unit: str,
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State(UNACCOUNTED, str(stored)),
                {"native_value": stored, "native_unit_of_measurement": unit},
            )
        ],
    )
    _, feeder = await house_1(hass, mosquitto, prefix, node)
    assert feeder.pair.engine.unaccounted_wh == 0.0
    assert state_of(hass, UNACCOUNTED) == "0.0"


def _later(seconds: float) -> Any:
    """The integration's clock (as its tick reads it) `seconds` ahead of the real one."""
    return patch(
        "custom_components.smart_energy_meter.runtime.time",
        SimpleNamespace(time=lambda: time.time() + seconds),
    )


def _tick(hass: HomeAssistant) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=6))


async def test_silent_pair_becomes_not_evaluable_by_the_clock(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    # The node's clock is an hour behind Home Assistant's: the tick follows the node's.
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    feeder.ts = time.time() - 3600
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    for _ in range(3):
        _tick(hass)
        await hass.async_block_till_done()
    await feeder.run(35, LINE, HONEST)  # still fed: nothing was closed ahead of the readings
    assert state_of(hass, STATUS) == "ok"
    assert state_of(hass, MISMATCH) == "0.96"
    # Both meters silent for two minutes: the balance cannot tell, the tick closes the windows.
    with _later(120):
        _tick(hass)
        await wait_state(hass, STATUS, "not_evaluable")
    assert state_of(hass, THEFT) == STATE_UNKNOWN

    # The timer belongs to the entry: unloaded, nothing ticks.
    with patch.object(PairRuntime, "async_tick") as tick:
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=12))
        await hass.async_block_till_done()
        assert tick.called
        assert await hass.config_entries.async_unload(entry.entry_id)
        tick.reset_mock()
        async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=30))
        await hass.async_block_till_done()
        tick.assert_not_called()


async def test_theft_alarm_outlives_an_unplugged_node(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    _, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await feeder.run(65, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    # The thief unplugs the node: its last will arrives, ten minutes pass.
    await node.status("offline")
    await wait_state(hass, "sensor.house_1_power", STATE_UNAVAILABLE)
    with _later(600):
        _tick(hass)
        await hass.async_block_till_done()
    assert feeder.pair.evaluation.window is not None
    assert feeder.pair.evaluation.window.verdict == "no_data"  # the clock did move it on
    assert state_of(hass, THEFT) == "on"
    assert state_of(hass, STATUS) == "theft"


async def test_renamed_total_is_not_counted_twice(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """Renaming the entity re-adds it: the total must not be restored on top of itself."""
    _, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, BYPASS)
    await wait_for(hass, lambda: feeder.pair.engine.unaccounted_wh > 0, "a total")
    total = feeder.pair.engine.unaccounted_wh
    # Away and back: the way back finds the total saved when it was renamed away.
    registry = er.async_get(hass)
    registry.async_update_entity(UNACCOUNTED, new_entity_id="sensor.kos_1_unaccounted")
    await wait_for(hass, lambda: hass.states.get("sensor.kos_1_unaccounted") is not None, "kos")
    registry.async_update_entity("sensor.kos_1_unaccounted", new_entity_id=UNACCOUNTED)
    await wait_for(hass, lambda: hass.states.get(UNACCOUNTED) is not None, "the old name")
    assert feeder.pair.engine.unaccounted_wh == total
    assert _float(hass, UNACCOUNTED) == pytest.approx(total)


async def test_replayed_and_out_of_order_readings_change_nothing(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    engine = feeder.pair.engine
    total, window = engine.unaccounted_wh, feeder.pair.evaluation.window
    clock = entry.runtime_data.fleet.nodes["node1"].clock
    # A bypass reading stamped before the last one: refused, counted, never shown or integrated.
    await node.snapshot("house1", BYPASS, ts=feeder.ts - 10)
    await wait_for(hass, lambda: clock.refused == 1, "the refusal")
    assert "Reading of meter node1/house1 refused: timestamp not after the previous" in (
        caplog.text
    )
    assert state_of(hass, "sensor.house_1_power") == str(HONEST)
    assert engine.unaccounted_wh == total
    assert feeder.pair.evaluation.window == window


async def test_status_states_and_options_are_translated(hass: HomeAssistant) -> None:
    prefix = "component.smart_energy_meter"
    for language in ("en", "id"):
        entity = await async_get_translations(hass, language, "entity", {DOMAIN})
        for status in Status:
            key = f"{prefix}.entity.sensor.detection_status.state.{status.value}"
            assert entity.get(key), (language, key)
        for key in ("unaccounted_energy", "window_mismatch"):
            assert entity.get(f"{prefix}.entity.sensor.{key}.name"), (language, key)
        for key in ("tamper", "meter_fault"):
            assert entity.get(f"{prefix}.entity.binary_sensor.{key}.name"), (language, key)
        selectors = await async_get_translations(hass, language, "selector", {DOMAIN})
        for selector, options in (
            ("detection", ("balance", "paper")),
            ("threshold_mode", ("uncertainty", "fixed")),
            ("debounce_mode", ("consecutive", "cusum")),
            ("cable_material", ("copper", "aluminium")),
            ("meter", ("line", "house")),
        ):
            for option in options:
                key = f"{prefix}.selector.{selector}.options.{option}"
                assert selectors.get(key), (language, key)


async def test_tamper_when_the_house_meters_node_goes_offline(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """Line meter on the pole's node, house meter on the house's own node, which is unplugged."""
    pair = HOUSE_1 | {"house": {"node": "node2", "meter": "house1"}}
    entry = make_entry(hass, mosquitto, prefix, pairs=[pair])
    await setup_entry(hass, entry)
    pair_runtime = next(iter(entry.runtime_data.pairs.values()))
    async with TestNode(mosquitto, prefix, node="node2") as house_node:
        await node.announce()
        await house_node.announce(name="Meter box 1")
        for each in (node, house_node):
            await each.status("online")
        ts = time.time()
        script_clock(entry, node, house_node)
        meters = pair_runtime.meters
        for second in range(100):
            await node.snapshot("line1", LINE, ts=ts + second)
            if second < 35:
                await house_node.snapshot("house1", HONEST, ts=ts + second + 0.1)
            if second == 35:
                await house_node.status("offline")  # its last will
            await wait_for(
                hass,
                lambda second=second: (
                    meters[Role.LINE].samples > second
                    and meters[Role.HOUSE].samples >= min(second + 1, 35)
                ),
                "the readings",
            )
        await wait_state(hass, TAMPER, "on")
        assert state_of(hass, STATUS) == "tamper_suspected"
        assert state_of(hass, "binary_sensor.pole_7_status") == "on"
        assert state_of(hass, "binary_sensor.meter_box_1_status") == "off"
        assert state_of(hass, "sensor.house_1_power") == STATE_UNAVAILABLE


async def test_a_theft_outlives_a_reload_without_a_second_event(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """The verdict is shown again at once after a reload, and its events are not repeated."""
    detected = async_capture_events(hass, EVENT_THEFT_DETECTED)
    cleared = async_capture_events(hass, EVENT_THEFT_CLEARED)
    entry, feeder = await house_1(hass, mosquitto, prefix, node)
    await feeder.run(35, LINE, HONEST)
    await wait_state(hass, STATUS, "ok")
    await feeder.run(62, LINE, BYPASS)
    await wait_state(hass, THEFT, "on")
    assert len(detected) == 1

    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")
    # Before any reading of the new run: the verdict of the last one.
    assert state_of(hass, THEFT) == "on"
    assert state_of(hass, STATUS) == "theft"
    feeder = Feeder(hass, entry, node, start=feeder.ts)
    await feeder.run(62, LINE, BYPASS)
    assert state_of(hass, THEFT) == "on"
    assert len(detected) == 1  # the same theft: no second event, trigger or logbook entry
    await feeder.run(62, LINE, HONEST)
    # A loaded machine may hand the last window to the periodic tick rather than a reading.
    await wait_state(hass, THEFT, "off", within=40)
    assert len(cleared) == 1
    assert len(detected) == 1


@pytest.mark.parametrize(
    ("stored", "theft"),
    [("theft", "on"), ("ok", "off"), ("tamper_suspected", STATE_UNKNOWN), ("lots", STATE_UNKNOWN)],
)
async def test_a_restart_shows_the_last_verdict_at_once(
    hass: HomeAssistant,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
    stored: str,
    theft: str,
) -> None:
    """Home Assistant restarts mid-theft: theft at once, not after a minute of readings.
    Tamper (which may come from refused signatures) and junk start over."""
    mock_restore_cache_with_extra_data(hass, [(State(STATUS, stored), {})])
    await house_1(hass, mosquitto, prefix, node)
    assert state_of(hass, THEFT) == theft
