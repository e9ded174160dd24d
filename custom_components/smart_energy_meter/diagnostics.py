"""Diagnostics: the broker settings (redacted), nodes, meters and the pairs' detectors."""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from . import SemConfigEntry
from .const import CONF_CA_CERT, CONF_PASSWORD, CONF_USERNAME
from .fleet import ProtocolMeter

TO_REDACT = {CONF_PASSWORD, CONF_USERNAME, CONF_CA_CERT}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: SemConfigEntry
) -> dict[str, Any]:
    """What the entry knows right now."""
    runtime = entry.runtime_data
    return {
        "entry": async_redact_data(dict(entry.data), TO_REDACT),
        "options": dict(entry.options),
        "connected": runtime.hub.connected,
        "nodes": {
            node: {
                "status": state.status,
                "gone": state.gone,
                "announce": dataclasses.asdict(state.announce) if state.announce else None,
            }
            for node, state in runtime.fleet.nodes.items()
        },
        "meters": {
            key: {
                "energy_wh": meter.energy.value,
                "samples": meter.samples,
                "fresh": sorted(meter.fresh) if isinstance(meter.fresh, set) else meter.fresh,
                "error": meter.error if isinstance(meter, ProtocolMeter) else None,
            }
            for key, meter in runtime.fleet.meters.items()
        },
        "pairs": {
            pair.name: {
                "config": pair.config.as_data(),
                "options": dataclasses.asdict(pair.detector.options),
                "theft": pair.detector.theft,
                "evaluation": (
                    dataclasses.asdict(pair.detector.evaluation)
                    if pair.detector.evaluation
                    else None
                ),
            }
            for pair in runtime.pairs.values()
        },
    }
