"""A pair's energy-balance settings: option values and stored fits, turned into a TheftConfig.

The options (detection mode, threshold mode, debounce style, cable data) are entry-wide defaults
with per-pair overrides. What the actions measure is stored with the pair only: the meters'
calibration gains, and the commissioning fit (cable resistance, constant draw, gain matching).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from .const import (
    CONF_CABLE_CROSS_SECTION,
    CONF_CABLE_LENGTH,
    CONF_CABLE_MATERIAL,
    CONF_CABLE_TEMPERATURE,
    CONF_CALIBRATION,
    CONF_COMMISSIONING,
    CONF_DEBOUNCE_MODE,
    CONF_RESISTANCE,
    CONF_THRESHOLD,
    CONF_THRESHOLD_MODE,
)
from .semcore.cable_loss import CableSpec, Conductor
from .semcore.calibration import MeterGains
from .semcore.commissioning import CommissioningFit
from .semcore.debounce import DebounceConfig, DebounceMode
from .semcore.energy_balance import TheftConfig
from .semcore.protocol import Role
from .semcore.uncertainty import ThresholdMode, UncertaintyModel

# Keys of the stored calibration and commissioning.
_VOLTAGE = "voltage"
_CURRENT = "current"
_OFFSET = "offset"
_HOUSE_GAIN = "house_gain"
_GAIN_MATCH_PCT = "gain_match_pct"
_RESISTANCE_PCT = "resistance_pct"
_WINDOWS = "windows"
_RESIDUAL = "residual"


@dataclass(frozen=True, slots=True)
class Commissioned:
    """What a commissioning fit left for the pair.

    resistance_ohm is the fitted resistance (None when the cable data's was kept); its
    uncertainty resistance_pct applies only while the pair still uses that resistance.
    """

    offset_w: float
    house_gain: float
    gain_match_pct: float | None
    resistance_ohm: float | None
    resistance_pct: float | None
    windows: int
    residual_w: float

    @classmethod
    def from_fit(cls, fit: CommissioningFit, applied: TheftConfig) -> Commissioned:
        """The fit as the engine applied it (`applied` is its configuration afterwards)."""
        unc = applied.uncertainty
        return cls(
            offset_w=applied.offset_w,
            house_gain=applied.house_gain,
            gain_match_pct=unc.gain_match_pct if fit.gain_matched else None,
            resistance_ohm=applied.resistance_ohm if fit.resistance_fitted else None,
            resistance_pct=unc.resistance_pct if fit.resistance_fitted else None,
            windows=fit.windows,
            residual_w=fit.residual_w,
        )

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> Commissioned:
        """Read the stored form."""

        def optional(key: str) -> float | None:
            value = data.get(key)
            return None if value is None else float(value)

        return cls(
            offset_w=float(data[_OFFSET]),
            house_gain=float(data[_HOUSE_GAIN]),
            gain_match_pct=optional(_GAIN_MATCH_PCT),
            resistance_ohm=optional(CONF_RESISTANCE),
            resistance_pct=optional(_RESISTANCE_PCT),
            windows=int(data.get(_WINDOWS, 0)),
            residual_w=float(data.get(_RESIDUAL, 0.0)),
        )

    def as_data(self) -> dict[str, Any]:
        """Stored form (subentry data)."""
        return {
            _OFFSET: self.offset_w,
            _HOUSE_GAIN: self.house_gain,
            _GAIN_MATCH_PCT: self.gain_match_pct,
            CONF_RESISTANCE: self.resistance_ohm,
            _RESISTANCE_PCT: self.resistance_pct,
            _WINDOWS: self.windows,
            _RESIDUAL: self.residual_w,
        }


def _default_gains() -> dict[Role, MeterGains]:
    return {Role.LINE: MeterGains(), Role.HOUSE: MeterGains()}


@dataclass(frozen=True, slots=True)
class PairTuning:
    """Per-pair values that are not options: resistance, calibration gains, commissioning."""

    resistance_ohm: float | None = None
    gains: Mapping[Role, MeterGains] = field(default_factory=_default_gains)
    commissioned: Commissioned | None = None

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PairTuning:
        """Read the pair's subentry data (absent keys: nothing calibrated or fitted)."""
        resistance = data.get(CONF_RESISTANCE)
        calibration = data.get(CONF_CALIBRATION) or {}
        gains = _default_gains()
        for role in Role:
            if stored := calibration.get(role.value):
                gains[role] = MeterGains(
                    voltage=float(stored.get(_VOLTAGE, 1.0)),
                    current=float(stored.get(_CURRENT, 1.0)),
                )
        commissioning = data.get(CONF_COMMISSIONING)
        return cls(
            resistance_ohm=None if resistance is None else float(resistance),
            gains=gains,
            commissioned=Commissioned.from_data(commissioning) if commissioning else None,
        )

    def as_data(self) -> dict[str, Any]:
        """Subentry data keys of what is set."""
        data: dict[str, Any] = {}
        if self.resistance_ohm is not None:
            data[CONF_RESISTANCE] = self.resistance_ohm
        calibrated = {
            role.value: {_VOLTAGE: gains.voltage, _CURRENT: gains.current}
            for role, gains in self.gains.items()
            if gains != MeterGains()
        }
        if calibrated:
            data[CONF_CALIBRATION] = calibrated
        if self.commissioned is not None:
            data[CONF_COMMISSIONING] = self.commissioned.as_data()
        return data


def cable_spec(options: Mapping[str, Any]) -> CableSpec | None:
    """The service cable between the meters; None when its length is 0 (none entered)."""
    length = float(options[CONF_CABLE_LENGTH])
    if length <= 0:
        return None
    return CableSpec(
        length_m=length,
        cross_section_mm2=float(options[CONF_CABLE_CROSS_SECTION]),
        conductor=Conductor(options[CONF_CABLE_MATERIAL]),
        temperature_c=float(options[CONF_CABLE_TEMPERATURE]),
    )


def theft_config(options: Mapping[str, Any], tuning: PairTuning) -> TheftConfig:
    """The engine's configuration from a pair's options and tuning (ValueError if invalid)."""
    unc = UncertaintyModel(
        mode=ThresholdMode(options[CONF_THRESHOLD_MODE]),
        fixed_pct=float(options[CONF_THRESHOLD]),
    )
    offset_w, house_gain = 0.0, 1.0
    if (fit := tuning.commissioned) is not None:
        offset_w, house_gain = fit.offset_w, fit.house_gain
        if fit.gain_match_pct is not None:
            unc = replace(unc, gain_match_pct=fit.gain_match_pct)
        # The fitted resistance's own uncertainty, as long as the pair still uses it.
        if fit.resistance_pct is not None and fit.resistance_ohm == tuning.resistance_ohm:
            unc = replace(unc, resistance_pct=fit.resistance_pct)
    return TheftConfig(
        cable=cable_spec(options),
        resistance_ohm=tuning.resistance_ohm,
        offset_w=offset_w,
        house_gain=house_gain,
        line_gains=tuning.gains[Role.LINE],
        house_gains=tuning.gains[Role.HOUSE],
        uncertainty=unc,
        debounce=DebounceConfig(mode=DebounceMode(options[CONF_DEBOUNCE_MODE])),
    )
