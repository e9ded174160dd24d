"""The firmware simulator as a meter node for integration tests: a scenario, its pair, and a log
of every state write."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_energy_meter.const import DOMAIN
from custom_components.smart_energy_meter.fleet import ProtocolMeter
from tests.firmware.e2e import SimNode
from tests.integration.common import make_entry, setup_entry
from tests.mosquitto import Broker

requires_micropython = pytest.mark.skipif(
    shutil.which("micropython") is None, reason="the MicroPython unix port is not installed"
)

NODE = "sim-node"
NODE_NAME = "Sim node"


def write_scenario(
    directory: Path,
    *,
    house_w: float = 18000.0,
    bypass: float | None = None,
    key: str | None = None,
    interval: float = 1.0,
    backoff_cap_ms: int = 300,
) -> Path:
    """One node, one house with a relay (power-on: on). A large load makes the PZEM energy
    counters grow by several Wh per reading; `bypass` draws that share before the house meter."""
    house: dict[str, Any] = {
        "pair": "house1",
        "name": "House 1",
        "line": {"id": "line1", "addr": 1},
        "house": {"id": "house1", "addr": 2},
        "relay": {"id": "r1", "pin": 26, "power_on": "on"},
        "load": {"constant": house_w, "pf": 0.95},
    }
    if bypass is not None:
        house["bypass"] = {"fraction": bypass}
    node: dict[str, Any] = {
        "node": NODE,
        "name": NODE_NAME,
        "backoff_cap_ms": backoff_cap_ms,
        "houses": [house],
    }
    if key is not None:
        node["key"] = key
    scenario = {
        "name": "reliability",
        "interval": interval,
        "keepalive": 5,
        "seed": 3,
        "wire_timing": False,
        "noise": 0.002,
        "pzem": {"min_gap_ms": 0, "timeout_ms": 60, "retries": 1},
        "nodes": [node],
    }
    path = directory / "scenario.json"
    path.write_text(json.dumps(scenario))
    return path


# The scenario's house as a meter pair subentry of the integration.
SIM_PAIR: dict[str, Any] = {
    "pair": "house1",
    "name": "House 1",
    "line": {"node": NODE, "meter": "line1"},
    "house": {"node": NODE, "meter": "house1"},
    "relay": {"node": NODE, "relay": "r1"},
}


async def start_node(broker: Broker, prefix: str, scenario: Path) -> SimNode:
    """Start the simulated node and wait until it is connected to the broker."""
    node = SimNode(broker, "--prefix", prefix, scenario=scenario, node=NODE)
    try:
        await node.wait_line("mqtt: connected")
    except BaseException:
        node.kill()
        raise
    return node


@dataclass
class Write:
    """One state write, as the state machine saw it."""

    at: float
    entity_id: str
    state: str


class StateLog:
    """Every state write of every entity, in order."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.writes: list[Write] = []
        loop = hass.loop

        @callback
        def record(event: Event[EventStateChangedData]) -> None:
            new = event.data["new_state"]
            if new is not None:
                self.writes.append(Write(loop.time(), new.entity_id, new.state))

        self.stop = hass.bus.async_listen(EVENT_STATE_CHANGED, record)

    def states(self, entity_id: str) -> list[str]:
        """Every state written, unavailable included."""
        return [w.state for w in self.writes if w.entity_id == entity_id]

    def numbers(self, entity_id: str) -> list[float]:
        """The numeric states written."""
        return [
            float(s) for s in self.states(entity_id) if s not in (STATE_UNAVAILABLE, STATE_UNKNOWN)
        ]


async def setup_sim_entry(hass: HomeAssistant, broker: Broker, prefix: str) -> MockConfigEntry:
    """The entry with the simulator's pair, the line meter's energy sensor enabled too."""
    entry = make_entry(hass, broker, prefix, pairs=[SIM_PAIR])
    subentry_id = next(iter(entry.subentries))
    er.async_get(hass).async_get_or_create(
        "sensor",
        DOMAIN,
        f"{entry.entry_id}_{subentry_id}_line_energy",
        config_entry=entry,
        config_subentry_id=subentry_id,
        suggested_object_id="house_1_line_energy",
    )
    await setup_entry(hass, entry)
    return entry


def sim_meters(entry: MockConfigEntry) -> dict[str, ProtocolMeter]:
    """The entry's protocol meters by meter id."""
    meters = entry.runtime_data.fleet.meters.values()
    return {m.meter: m for m in meters if isinstance(m, ProtocolMeter)}
