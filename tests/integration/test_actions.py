"""The calibrate and commissioning actions: what they store, what the balance does with it, and
each refusal with its translated reason."""

from __future__ import annotations

import math
import time
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers.service import async_get_all_descriptions
from homeassistant.helpers.translation import async_get_translations
from homeassistant.setup import async_setup_component

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.diagnostics import async_get_config_entry_diagnostics
from custom_components.smart_energy_meter.runtime import PAIR_MODEL
from custom_components.smart_energy_meter.semcore.calibration import MeterGains
from tests.integration.common import (
    HOUSE_1,
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_state,
)
from tests.integration.feeder import Feeder
from tests.mosquitto import Broker

# The window mismatch and the meter fault sensor are off by default; these tests read them.
pytestmark = pytest.mark.usefixtures("entity_registry_enabled_by_default")

STATUS = "sensor.house_1_detection_status"
MISMATCH = "sensor.house_1_window_mismatch"


async def _running(
    hass: HomeAssistant, broker: Broker, prefix: str, node: TestNode, **pair: Any
) -> tuple[Any, Feeder]:
    entry = make_entry(hass, broker, prefix, pairs=[HOUSE_1 | pair])
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    # Whole node seconds: 4 s apart, the readings' spacing stays exact.
    return entry, Feeder(hass, entry, node, start=float(round(time.time()) - 4000), spacing=4.0)


async def _call(
    hass: HomeAssistant, service: str, data: dict[str, Any], *, response: bool = True
) -> Any:
    return await hass.services.async_call(
        DOMAIN, service, data, blocking=True, return_response=response
    )


async def _refused(hass: HomeAssistant, service: str, data: dict[str, Any]) -> str:
    """The translation key of the refusal, after checking its text exists in both languages."""
    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, service, data, response=False)
    key = raised.value.translation_key
    assert key is not None
    assert raised.value.translation_domain == DOMAIN
    for language in ("en", "id"):
        texts = await async_get_translations(hass, language, "exceptions", {DOMAIN})
        assert f"component.{DOMAIN}.exceptions.{key}.message" in texts, (language, key)
    return key


async def test_calibrate_stores_gains_and_the_balance_uses_them(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry, feeder = await _running(hass, mosquitto, prefix, node)
    runtime = entry.runtime_data
    pair = feeder.pair
    # The house meter reads 4 % low in power (2 % in voltage and current): that looks like theft.
    await feeder.run(100, 1000.0, 960.0, house_volts=225.4)
    await wait_state(hass, STATUS, "theft")
    assert state_of(hass, MISMATCH) == "4.0"

    # The multimeter at the house meter: 230 V, and the clamp the 1000 W / 230 V it really draws.
    response = await _call(
        hass,
        "calibrate",
        {"device_id": pair.device_id, "meter": "house", "voltage": 230.0, "current": 1000 / 230},
    )
    current_gain = (1000 / 230) / (960 / 225.4)
    assert response["voltage_gain"] == pytest.approx(230.0 / 225.4)
    assert response["current_gain"] == pytest.approx(current_gain)
    subentry = entry.subentries[pair.subentry_id]
    assert subentry.data["calibration"] == {
        "house": {"voltage": response["voltage_gain"], "current": response["current_gain"]}
    }
    assert subentry.data["pair"] == "house1"  # the rest of the pair stays
    # Applied at once, without a reload.
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime
    assert runtime.pairs[pair.subentry_id] is pair
    house_gains = MeterGains(response["voltage_gain"], response["current_gain"])
    assert pair.engine.config.house_gains == house_gains
    await feeder.run(90, 1000.0, 960.0, house_volts=225.4)
    await wait_state(hass, STATUS, "ok")
    assert state_of(hass, MISMATCH) == "0.0"

    # Voltage only, on the line meter: its current gain stays, the house's gains stay.
    response = await _call(
        hass, "calibrate", {"device_id": pair.device_id, "meter": "line", "voltage": 229.0}
    )
    assert response == {"voltage_gain": pytest.approx(229.0 / 230.0), "current_gain": 1.0}
    assert pair.engine.config.line_gains == MeterGains(response["voltage_gain"], 1.0)
    assert response["voltage_gain"] == pytest.approx(229.0 / 230.0)
    assert pair.engine.config.house_gains == house_gains

    # A restart keeps them.
    gains = pair.engine.config
    assert await hass.config_entries.async_reload(entry.entry_id)
    reloaded = next(iter(entry.runtime_data.pairs.values()))
    assert reloaded.engine.config == gains


async def test_calibrate_refusals(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry, feeder = await _running(hass, mosquitto, prefix, node)
    device = feeder.pair.device_id
    await node.snapshot("house1", 50.0, voltage=225.7, current=0.0)
    await wait_state(hass, "sensor.house_1_power", "50.0")

    assert await _refused(hass, "calibrate", {"device_id": device, "meter": "house"}) == (
        "no_reference"
    )
    for bad in (0.0, -230.0, math.nan):
        key = await _refused(
            hass, "calibrate", {"device_id": device, "meter": "house", "voltage": bad}
        )
        assert key == "invalid_reference"
    # The line meter has sent nothing; the house meter reads 0 A.
    key = await _refused(hass, "calibrate", {"device_id": device, "meter": "line", "voltage": 230})
    assert key == "no_reading"
    key = await _refused(hass, "calibrate", {"device_id": device, "meter": "house", "current": 1})
    assert key == "no_reading"
    # 250 V against a meter reading 225.7 V: an 11 % gain is a wrong reference, not a meter.
    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "calibrate", {"device_id": device, "meter": "house", "voltage": 250.0})
    assert raised.value.translation_key == "gain_out_of_range"
    assert raised.value.translation_placeholders == {
        "name": "House 1",
        "meter": "house",
        "quantity": "voltage",
        "gain": "1.1077",
        "low": "0.9",
        "high": "1.1",
    }
    # Not a pair: a node's device, an unknown id, a pair of an unloaded entry.
    node_device = entry.runtime_data.node_devices["node1"]
    for device_id in (node_device, "no-such-device"):
        key = await _refused(
            hass, "calibrate", {"device_id": device_id, "meter": "house", "voltage": 230}
        )
        assert key == "not_a_pair"
    assert "calibration" not in entry.subentries[feeder.pair.subentry_id].data
    assert await hass.config_entries.async_unload(entry.entry_id)
    key = await _refused(hass, "calibrate", {"device_id": device, "meter": "house", "voltage": 230})
    assert key == "not_a_pair"


def _house(line: float, *, offset: float, ohm: float, gain: float) -> float:
    """What a house meter reading `gain` too low shows behind a cable of `ohm` and a constant
    draw of `offset` W between the meters (the commissioning model, exactly)."""
    amps = line / 230.0
    return (line - offset - ohm * amps**2) / (1.0 + gain)


async def test_commissioning_fits_stores_and_applies(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry, feeder = await _running(hass, mosquitto, prefix, node)
    runtime, pair = entry.runtime_data, feeder.pair
    device = pair.device_id
    assert await _refused(hass, "finish_commissioning", {"device_id": device}) == (
        "not_commissioning"
    )
    assert await _refused(hass, "start_commissioning", {"device_id": "nope"}) == "not_a_pair"

    await _call(hass, "start_commissioning", {"device_id": device}, response=False)
    assert pair.engine.commissioning
    levels = (300.0, 1200.0, 2500.0, 4000.0, 800.0, 5500.0, 150.0, 3000.0, 6500.0, 2000.0)
    truth = {"offset": 2.0, "ohm": 0.12, "gain": 0.004}
    await feeder.run(300, 1000.0, _house(1000.0, **truth))
    # Too short: refused with the engine's reason; the collection goes on.
    with pytest.raises(ServiceValidationError) as raised:
        await _call(hass, "finish_commissioning", {"device_id": device})
    assert raised.value.translation_key == "commissioning_failed"
    assert "at least 120 are needed" in raised.value.translation_placeholders["reason"]
    assert pair.engine.commissioning

    for _ in range(3):  # 30 load levels of 90 s each: well over 120 quiet windows
        for line in levels:
            await feeder.run(90, line, _house(line, **truth))
    response = await _call(hass, "finish_commissioning", {"device_id": device})
    assert response["windows"] >= 120
    assert response["resistance_fitted"] is True
    assert response["resistance_ohm"] == pytest.approx(0.12, rel=1e-3)
    assert response["offset_w"] == pytest.approx(2.0, abs=0.05)
    assert response["gain_mismatch_percent"] == pytest.approx(0.4, abs=0.01)
    assert not pair.engine.commissioning

    data = entry.subentries[pair.subentry_id].data
    assert data["resistance"] == pytest.approx(0.12, rel=1e-3)
    stored = data["commissioning"]
    assert stored["windows"] == response["windows"]
    assert stored["house_gain"] == pytest.approx(1.004, abs=1e-4)
    assert stored["resistance"] == data["resistance"]
    assert stored["gain_match_pct"] is not None
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime  # applied without a reload

    # From now on the cable, the node's draw and the gain mismatch are explained.
    await feeder.run(60, 5000.0, _house(5000.0, **truth))
    await wait_state(hass, MISMATCH, "0.0")
    config = pair.engine.config
    assert config.resistance_ohm == data["resistance"]
    assert config.uncertainty.gain_match_pct == stored["gain_match_pct"]
    assert config.uncertainty.resistance_pct == stored["resistance_pct"]
    # And after a restart.
    assert await hass.config_entries.async_reload(entry.entry_id)
    assert next(iter(entry.runtime_data.pairs.values())).engine.config == config


async def test_commissioning_keeps_the_cable_data_resistance(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    # Copper 2x10 mm², 15 m at 20 °C: 0.0517 ohm, known; only the node's 3 W draw is fitted.
    cable = {"cable_length": 15.0, "cable_cross_section": 10.0, "cable_material": "copper"}
    entry, feeder = await _running(hass, mosquitto, prefix, node, **cable, cable_temperature=20.0)
    pair = feeder.pair
    ohm = pair.engine.config.effective_resistance_ohm
    assert ohm == pytest.approx(1.7241e-8 * 30 / 10e-6)
    await _call(hass, "start_commissioning", {"device_id": pair.device_id}, response=False)
    await _call(hass, "start_commissioning", {"device_id": pair.device_id}, response=False)
    truth = {"offset": 3.0, "ohm": ohm, "gain": 0.0}
    await feeder.run(1900, 2000.0, _house(2000.0, **truth))
    response = await _call(
        hass,
        "finish_commissioning",
        {"device_id": pair.device_id, "fit_resistance": False, "match_gain": False},
    )
    assert response["resistance_fitted"] is False
    assert response["gain_mismatch_percent"] is None
    assert response["offset_w"] == pytest.approx(3.0, abs=0.05)
    data = entry.subentries[pair.subentry_id].data
    assert "resistance" not in data  # still the cable data's
    assert data["commissioning"]["resistance"] is None
    assert data["commissioning"]["gain_match_pct"] is None
    assert pair.engine.config.effective_resistance_ohm == pytest.approx(ohm)
    assert pair.engine.config.offset_w == pytest.approx(3.0, abs=0.05)
    assert pair.engine.config.uncertainty.gain_match_pct is None


async def test_action_descriptions_load(hass: HomeAssistant) -> None:
    """Home Assistant reads services.yaml, its selectors validated."""
    assert await async_setup_component(hass, DOMAIN, {})
    descriptions = (await async_get_all_descriptions(hass))[DOMAIN]
    assert set(descriptions) == {
        "calibrate",
        "clear_calibration",
        "start_commissioning",
        "finish_commissioning",
    }
    calibrate = descriptions["calibrate"]
    assert set(calibrate["fields"]) == {"device_id", "meter", "voltage", "current"}
    device = calibrate["fields"]["device_id"]["selector"]["device"]
    # The picker offers exactly the pairs' devices.
    assert device["filter"] == [{"integration": DOMAIN, "model": PAIR_MODEL}]
    assert descriptions["finish_commissioning"]["fields"]["fit_resistance"]["default"] is True
    assert set(descriptions["clear_calibration"]["fields"]) == {"device_id", "meter"}


async def test_calibration_is_shown_and_can_be_undone(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """After calibrating, the house's voltage, current and power agree with the multimeter;
    the raw readings stay in the diagnostics; clearing shows the meter's own again."""
    entry, feeder = await _running(hass, mosquitto, prefix, node)
    pair = feeder.pair
    await feeder.run(8, 1000.0, 960.0, house_volts=225.4)
    assert state_of(hass, "sensor.house_1_voltage") == "225.4"
    energy = state_of(hass, "sensor.house_1_energy")
    await _call(
        hass,
        "calibrate",
        {"device_id": pair.device_id, "meter": "house", "voltage": 230.0, "current": 1000 / 230},
    )
    await feeder.run(4, 1000.0, 960.0, house_volts=225.4)
    assert state_of(hass, "sensor.house_1_voltage") == "230.0"
    assert float(state_of(hass, "sensor.house_1_current")) == pytest.approx(1000 / 230, abs=1e-4)
    assert float(state_of(hass, "sensor.house_1_power")) == pytest.approx(1000.0, abs=0.01)
    # The energy total stays the meter's own (no jump in the statistics), the line is untouched.
    assert state_of(hass, "sensor.house_1_energy") == energy
    assert state_of(hass, "sensor.house_1_line_power") == "1000.0"
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics["meters"]["node1/house1"]["readings"] == {
        "voltage": 225.4,
        "current": pytest.approx(960.0 / 225.4),
        "power": 960.0,
    }

    await _call(
        hass, "clear_calibration", {"device_id": pair.device_id, "meter": "house"}, response=False
    )
    await feeder.run(4, 1000.0, 960.0, house_volts=225.4)
    assert state_of(hass, "sensor.house_1_voltage") == "225.4"
    assert state_of(hass, "sensor.house_1_power") == "960.0"
    assert "calibration" not in entry.subentries[pair.subentry_id].data
