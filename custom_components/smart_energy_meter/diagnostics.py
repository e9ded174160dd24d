"""Diagnostics: the broker settings (redacted), nodes, meters and the pairs' detectors; for one
device, the part that concerns it."""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.const import (
    CONF_PASSWORD,
    CONF_USERNAME,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr

from . import SemConfigEntry
from .const import (
    CONF_CA_CERT,
    CONF_KEY,
    CONF_NODE,
    SUBENTRY_NODE_KEY,
)
from .fleet import NodeState, ProtocolMeter, Quantity, ValueTopicsMeter
from .pair import PairRuntime
from .pair_config import ProtocolSource
from .runtime import SemRuntime

# Credentials, and any secret a node or pair may carry under these names.
TO_REDACT = {
    CONF_PASSWORD,
    CONF_USERNAME,
    CONF_CA_CERT,
    "key",
    "keys",
    "node_keys",
    "secret",
    "signing_key",
    "token",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: SemConfigEntry
) -> dict[str, Any]:
    """What the entry knows right now."""
    runtime = entry.runtime_data
    return async_redact_data(
        {
            **_entry(entry),
            "nodes": {node: _node(state, runtime) for node, state in runtime.fleet.nodes.items()},
            "meters": {key: _meter(meter) for key, meter in runtime.fleet.meters.items()},
            "pairs": {pair.name: _pair(pair) for pair in runtime.pairs.values()},
        },
        TO_REDACT,
    )


async def async_get_device_diagnostics(
    hass: HomeAssistant, entry: SemConfigEntry, device: dr.DeviceEntry
) -> dict[str, Any]:
    """One pair (a house) with its meters and nodes, or one node with its meters."""
    runtime = entry.runtime_data
    data = _entry(entry)
    if (pair := _pair_of(runtime, device)) is not None:
        nodes = {
            source.node
            for source in (pair.config.line, pair.config.house)
            if isinstance(source, ProtocolSource)
        }
        data["pair"] = {"name": pair.name, **_pair(pair)}
        data["meters"] = {
            key: _meter(meter)
            for key in sorted(pair.config.meter_keys)
            if (meter := runtime.fleet.meters.get(key)) is not None
        }
    else:
        nodes = {node for node, device_id in runtime.node_devices.items() if device_id == device.id}
        data["meters"] = {
            key: _meter(meter)
            for key, meter in runtime.fleet.meters.items()
            if isinstance(meter, ProtocolMeter) and meter.node in nodes
        }
    data["nodes"] = {
        node: _node(state, runtime)
        for node in sorted(nodes)
        if (state := runtime.fleet.nodes.get(node))
    }
    return async_redact_data(data, TO_REDACT)


def _pair_of(runtime: SemRuntime, device: dr.DeviceEntry) -> PairRuntime | None:
    return next((p for p in runtime.pairs.values() if p.device_id == device.id), None)


def _entry(entry: SemConfigEntry) -> dict[str, Any]:
    return {
        "entry": dict(entry.data),
        "options": dict(entry.options),
        "connected": entry.runtime_data.hub.connected,
        "signing": _signing(entry),
        "node_firmware": _node_firmware(entry.runtime_data),
    }


def _node_firmware(runtime: SemRuntime) -> dict[str, Any] | None:
    """The node firmware shipped with the integration (None: missing or damaged)."""
    bundle = runtime.updates.bundle
    if bundle is None:
        return None
    return {"version": bundle.version, "interpreter": bundle.interpreter, "mpy": bundle.mpy}


def _signing(entry: SemConfigEntry) -> dict[str, Any]:
    """The nodes with a signing key (the key is redacted) and what was accepted and refused."""
    signed = entry.runtime_data.fleet.signed
    counts = signed.diagnostics() if signed is not None else {}
    return {
        subentry.data[CONF_NODE]: {CONF_KEY: subentry.data[CONF_KEY]}
        | counts.get(subentry.data[CONF_NODE], {})
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_NODE_KEY
    }


def _node(state: NodeState, runtime: SemRuntime) -> dict[str, Any]:
    update = runtime.updates.states.get(state.node)
    return {
        "status": state.status,
        # the node's last update state: a transfer under way or the last outcome
        "update": dataclasses.asdict(update) if update is not None else None,
        "gone": state.gone,
        "heard": state.heard,
        "announce": dataclasses.asdict(state.announce) if state.announce else None,
        "clock": {
            "offset_s": state.clock.offset,
            "shift_s": state.clock.shift,
            "refused_timestamps": state.clock.refused,
            "jumps": state.clock.jumps,
        },
    }


def _meter(meter: ProtocolMeter | ValueTopicsMeter) -> dict[str, Any]:
    return {
        "energy_wh": meter.energy.value,
        "energy_register_wh": meter.energy.raw,
        # The meter's own readings: what is shown has the pair's calibration gains applied.
        "readings": {
            quantity.value: meter.value(quantity)
            for quantity in (Quantity.VOLTAGE, Quantity.CURRENT, Quantity.POWER)
        },
        "samples": meter.samples,
        "fresh": sorted(meter.fresh) if isinstance(meter.fresh, set) else meter.fresh,
        "error": meter.error if isinstance(meter, ProtocolMeter) else None,
        "error_detail": meter.error_detail if isinstance(meter, ProtocolMeter) else None,
        # Readings the node could not hand to the broker (its queue was full): seq gaps.
        "dropped_since_boot": meter.dropped if isinstance(meter, ProtocolMeter) else None,
    }


def _pair(pair: PairRuntime) -> dict[str, Any]:
    return {
        "config": pair.config.as_data(),
        "options": dataclasses.asdict(pair.detector.options),
        "theft": pair.detector.theft,
        "evaluation": (
            dataclasses.asdict(pair.detector.evaluation) if pair.detector.evaluation else None
        ),
        "detection": pair.detection,
        "balance": {
            "config": dataclasses.asdict(pair.engine.config),
            "status": pair.engine.status,
            "unaccounted_wh": pair.engine.unaccounted_wh,
            "commissioning": pair.engine.commissioning,
            "last_window": (
                dataclasses.asdict(pair.evaluation.window) if pair.evaluation.window else None
            ),
        },
        "service_verdict": _service_verdict(pair),
    }


def _service_verdict(pair: PairRuntime) -> dict[str, Any] | None:
    """The fleet service's last verdict on the pair; None for a pair it cannot judge."""
    tracked = pair.service_verdict
    if tracked is None:
        return None
    return {
        "topic_pair": f"{tracked.node}/{tracked.pair}",
        "heard": tracked.heard,
        "current": tracked.current,
        "last": dataclasses.asdict(tracked.verdict) if tracked.verdict else None,
    }
