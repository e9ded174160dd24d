"""Actions on a meter pair: calibrate a meter, commission the pair's energy balance.

Both store what they measure with the pair (its config subentry) and apply it to the running
balance at once. Neither touches the relay.
"""

from __future__ import annotations

import logging
import math
from dataclasses import replace
from typing import Any, Final

import probatio
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv

from .const import DOMAIN
from .fleet import Quantity
from .pair import PairRuntime
from .runtime import SemRuntime
from .semcore.calibration import (
    GAIN_RANGE,
    CalibrationError,
    MeterGains,
    ReferencePoint,
    fit_meter_gains,
)
from .semcore.commissioning import FitError
from .semcore.protocol import Role
from .tuning import Commissioned

_LOGGER = logging.getLogger(__name__)

SERVICE_CALIBRATE: Final = "calibrate"
SERVICE_START_COMMISSIONING: Final = "start_commissioning"
SERVICE_FINISH_COMMISSIONING: Final = "finish_commissioning"
SERVICE_CLEAR_CALIBRATION: Final = "clear_calibration"

ATTR_METER: Final = "meter"
ATTR_VOLTAGE: Final = "voltage"
ATTR_CURRENT: Final = "current"
ATTR_FIT_RESISTANCE: Final = "fit_resistance"
ATTR_MATCH_GAIN: Final = "match_gain"

CALIBRATE_SCHEMA: Final = probatio.Schema(
    {
        probatio.Required(ATTR_DEVICE_ID): cv.string,
        probatio.Required(ATTR_METER): probatio.In([role.value for role in Role]),
        probatio.Optional(ATTR_VOLTAGE): probatio.Coerce(float),
        probatio.Optional(ATTR_CURRENT): probatio.Coerce(float),
    }
)
CLEAR_CALIBRATION_SCHEMA: Final = probatio.Schema(
    {
        probatio.Required(ATTR_DEVICE_ID): cv.string,
        probatio.Optional(ATTR_METER): probatio.In([role.value for role in Role]),
    }
)
START_SCHEMA: Final = probatio.Schema({probatio.Required(ATTR_DEVICE_ID): cv.string})
FINISH_SCHEMA: Final = probatio.Schema(
    {
        probatio.Required(ATTR_DEVICE_ID): cv.string,
        probatio.Optional(ATTR_FIT_RESISTANCE, default=True): cv.boolean,
        probatio.Optional(ATTR_MATCH_GAIN, default=True): cv.boolean,
    }
)


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    """Register the actions of the integration."""
    hass.services.async_register(
        DOMAIN,
        SERVICE_CALIBRATE,
        _async_calibrate,
        schema=CALIBRATE_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_CLEAR_CALIBRATION,
        _async_clear_calibration,
        schema=CLEAR_CALIBRATION_SCHEMA,
    )
    hass.services.async_register(
        DOMAIN, SERVICE_START_COMMISSIONING, _async_start_commissioning, schema=START_SCHEMA
    )
    hass.services.async_register(
        DOMAIN,
        SERVICE_FINISH_COMMISSIONING,
        _async_finish_commissioning,
        schema=FINISH_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )


def _invalid(key: str, **placeholders: str) -> ServiceValidationError:
    return ServiceValidationError(
        translation_domain=DOMAIN, translation_key=key, translation_placeholders=placeholders
    )


def _pair_of(hass: HomeAssistant, device_id: str) -> tuple[SemRuntime, PairRuntime]:
    """The loaded pair whose device this is."""
    for entry in hass.config_entries.async_loaded_entries(DOMAIN):
        runtime: SemRuntime = entry.runtime_data
        for pair in runtime.pairs.values():
            if pair.device_id == device_id:
                return runtime, pair
    raise _invalid("not_a_pair", device_id=device_id)


async def _async_calibrate(call: ServiceCall) -> ServiceResponse:
    """Gains of one meter from multimeter readings taken now, against its latest raw reading."""
    runtime, pair = _pair_of(call.hass, call.data[ATTR_DEVICE_ID])
    role = Role(call.data[ATTR_METER])
    references = {
        quantity: call.data[key]
        for key, quantity in ((ATTR_VOLTAGE, Quantity.VOLTAGE), (ATTR_CURRENT, Quantity.CURRENT))
        if key in call.data
    }
    if not references:
        raise _invalid("no_reference")
    readings: dict[Quantity, float] = {}
    for quantity, reference in references.items():
        if not (math.isfinite(reference) and reference > 0):
            raise _invalid("invalid_reference", quantity=quantity.value)
        # Against the meter's own value: the gains in force refine, they are not compounded.
        raw = pair.raw_value(role, quantity)
        if raw is None or raw <= 0:
            raise _invalid("no_reading", name=pair.name, meter=role.value, quantity=quantity.value)
        readings[quantity] = raw
    point = ReferencePoint(
        meter_voltage=readings.get(Quantity.VOLTAGE),
        reference_voltage=references.get(Quantity.VOLTAGE),
        meter_current=readings.get(Quantity.CURRENT),
        reference_current=references.get(Quantity.CURRENT),
    )
    tuning = pair.config.tuning
    try:
        gains = fit_meter_gains([point], current=tuning.gains[role])
    except CalibrationError as err:
        # The references are valid numbers: the gain of one quantity is out of range.
        quantity = max(references, key=lambda q: abs(math.log(references[q] / readings[q])))
        gain = references[quantity] / readings[quantity]
        raise _invalid(
            "gain_out_of_range",
            name=pair.name,
            meter=role.value,
            quantity=quantity.value,
            gain=f"{gain:.4f}",
            low=f"{GAIN_RANGE[0]:g}",
            high=f"{GAIN_RANGE[1]:g}",
        ) from err
    runtime.async_update_tuning(
        pair.subentry_id, replace(tuning, gains={**tuning.gains, role: gains})
    )
    _LOGGER.info(
        "%s: %s meter calibrated: voltage gain %.5f, current gain %.5f",
        pair.name,
        role.value,
        gains.voltage,
        gains.current,
    )
    return {"voltage_gain": gains.voltage, "current_gain": gains.current}


async def _async_clear_calibration(call: ServiceCall) -> None:
    """Undo a calibration: the meter (or both) shows and counts its own readings again."""
    runtime, pair = _pair_of(call.hass, call.data[ATTR_DEVICE_ID])
    roles = [Role(call.data[ATTR_METER])] if ATTR_METER in call.data else list(Role)
    tuning = pair.config.tuning
    gains = {**tuning.gains, **dict.fromkeys(roles, MeterGains())}
    runtime.async_update_tuning(pair.subentry_id, replace(tuning, gains=gains))
    _LOGGER.info(
        "%s: calibration of the %s meter cleared", pair.name, " and ".join(r.value for r in roles)
    )


async def _async_start_commissioning(call: ServiceCall) -> None:
    """Collect theft-free balance windows from now on (a second start begins afresh)."""
    _, pair = _pair_of(call.hass, call.data[ATTR_DEVICE_ID])
    pair.engine.start_commissioning()
    _LOGGER.info("%s: commissioning started; keep the period theft-free", pair.name)


async def _async_finish_commissioning(call: ServiceCall) -> ServiceResponse:
    """Fit the pair's loss model on the collected windows, store and apply it."""
    runtime, pair = _pair_of(call.hass, call.data[ATTR_DEVICE_ID])
    if not pair.engine.commissioning:
        raise _invalid("not_commissioning", name=pair.name)
    try:
        fit = pair.engine.finish_commissioning(
            fit_resistance=call.data[ATTR_FIT_RESISTANCE], match_gain=call.data[ATTR_MATCH_GAIN]
        )
    except FitError as err:
        # The engine keeps collecting: finishing later, with more data, may succeed.
        raise _invalid("commissioning_failed", name=pair.name, reason=str(err)) from err
    tuning = pair.config.tuning
    commissioned = Commissioned.from_fit(fit, pair.engine.config)
    runtime.async_update_tuning(
        pair.subentry_id,
        replace(
            tuning,
            resistance_ohm=(
                tuning.resistance_ohm
                if commissioned.resistance_ohm is None
                else commissioned.resistance_ohm
            ),
            commissioned=commissioned,
        ),
    )
    _LOGGER.info(
        "%s: commissioned on %d windows: R %.4f ohm, offset %.1f W, gain mismatch %+.3f %%",
        pair.name,
        fit.windows,
        pair.engine.config.effective_resistance_ohm,
        fit.offset_w,
        100 * fit.gain_mismatch,
    )
    response: dict[str, Any] = {
        "windows": fit.windows,
        "resistance_ohm": pair.engine.config.effective_resistance_ohm,
        "resistance_fitted": fit.resistance_fitted,
        "offset_w": fit.offset_w,
        "gain_mismatch_percent": 100 * fit.gain_mismatch if fit.gain_matched else None,
        "residual_w": fit.residual_w,
    }
    return response
