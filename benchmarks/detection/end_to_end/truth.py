"""What a simulator scenario file says really happens at each pair, and what its detector is told.

The simulator (firmware/semsim/scenario.py) reads the houses, loads, bypasses, cables and faults;
this harness reads the same file for the truth it scores against, plus two keys of its own:
`duration_s` (how long to run, in simulated seconds) and `fast_goal` (the ">= 99 % of thefts
detected within 2 minutes" goal applies).

Episodes, in simulated seconds since the node started:
- theft: each window of the house's bypass (a window in which it is switched on and off is one
  episode: the intermittent theft's campaign);
- meter offline: each `offline` window of the house meter's faults.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks.detection.evaluate import FAST_S
from custom_components.smart_energy_meter.semcore.cable_loss import CableSpec, Conductor
from custom_components.smart_energy_meter.semcore.energy_balance import TheftConfig

# What an installer enters for a cable: its data, at the integration's default temperature.
ENTERED_TEMPERATURE_C = 30.0

Window = tuple[float, float]


class ScenarioFileError(ValueError):
    pass


@dataclass(frozen=True)
class PairTruth:
    node: str
    pair: str
    line_meter: str
    house_meter: str
    episodes: tuple[Window, ...]
    kind: str  # the alarm expected in the episodes: "theft" or "tamper_suspected"
    config: TheftConfig  # what the detector is told about this pair


@dataclass(frozen=True)
class ScenarioFile:
    path: Path
    name: str
    group: str  # "no theft", "theft", "meter offline"
    duration_s: float
    speed: float
    interval_s: float
    fast_goal: bool
    pairs: tuple[PairTruth, ...]

    @property
    def prefix(self) -> str:
        """The topic prefix its simulator publishes under."""
        return "e2e/" + self.path.stem


def _windows(raw: Any, duration: float, what: str) -> tuple[Window, ...]:
    windows = []
    for item in raw:
        start, until = float(item[0]), duration if item[1] is None else float(item[1])
        if not 0 <= start < until <= duration:
            raise ScenarioFileError(f"{what}: window {item} is not inside 0..{duration:g} s")
        if start > duration - FAST_S:
            raise ScenarioFileError(
                f"{what}: window {item} starts less than {FAST_S:g} s before the end"
            )
        windows.append((start, until))
    return tuple(windows)


def _bypass_windows(bypass: dict[str, Any], duration: float, what: str) -> tuple[Window, ...]:
    if not bypass or not float(bypass.get("fraction", 0)):
        return ()
    if "windows" in bypass:
        return _windows(bypass["windows"], duration, what)
    return _windows([[bypass.get("from_s", 0), bypass.get("until_s")]], duration, what)


def _config(cable: dict[str, Any] | None) -> TheftConfig:
    if not cable:
        return TheftConfig()
    if "ohm" in cable:
        return TheftConfig(resistance_ohm=float(cable["ohm"]))
    spec = CableSpec(
        float(cable["length_m"]),
        float(cable["mm2"]),
        Conductor(cable.get("conductor", "copper")),
        temperature_c=ENTERED_TEMPERATURE_C,
        conductors=int(cable.get("conductors", 2)),
    )
    return TheftConfig(cable=spec)


def load(path: Path) -> ScenarioFile:
    """Read a scenario file and the truth of each of its pairs."""
    data = json.loads(path.read_text(encoding="utf-8"))
    duration = float(data["duration_s"])
    pairs = []
    for node in data["nodes"]:
        offline = {
            fault["meter"]: fault.get("offline", [])
            for fault in node.get("faults", [])
            if fault.get("offline")
        }
        for house in node["houses"]:
            what = f"{path.name}: {node['node']}/{house['pair']}"
            line, meter = house["line"]["id"], house["house"]["id"]
            if line in offline:
                raise ScenarioFileError(f"{what}: line meter outages are not scored here")
            thefts = _bypass_windows(house.get("bypass") or {}, duration, what)
            outages = _windows(offline.get(meter, []), duration, what)
            if thefts and outages:
                raise ScenarioFileError(f"{what}: theft and a house meter outage in one pair")
            pairs.append(
                PairTruth(
                    node["node"],
                    house["pair"],
                    line,
                    meter,
                    thefts or outages,
                    "tamper_suspected" if outages else "theft",
                    _config(house.get("cable")),
                )
            )
    kinds = {p.kind for p in pairs if p.episodes}
    if len(kinds) > 1:
        raise ScenarioFileError(f"{path.name}: thefts and meter outages in one scenario")
    if kinds == {"tamper_suspected"}:
        group = "meter offline"
    elif any(p.episodes for p in pairs):
        group = "theft"
    else:
        group = "no theft"
    return ScenarioFile(
        path,
        data.get("name", path.stem),
        group,
        duration,
        float(data.get("speed", 1)),
        float(data.get("interval", 1)),
        bool(data.get("fast_goal", False)),
        tuple(pairs),
    )
