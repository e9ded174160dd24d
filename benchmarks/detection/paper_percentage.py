"""python -m benchmarks.detection.paper_percentage [--seconds N]

The theft percentage on the paper's experiment: how often it leaves ±2 % on the honest house.

The firmware simulator's `paper` scenario (firmware/scenarios/paper.json: five 220 V / 20 W
lamps, one more switched on every 25 s and then all but one off again; house 1 honest with its
meter reading 1 % low, house 2 with a bypass taking 18 %) is run in-process at 1 Hz: in every
poll cycle the scenario's emulated PZEM-004T are read one after the other, as the firmware polls
them (line 1, house 1, line 2, house 2, 50 ms apart), and each reading goes, as its own `state`
message stamped with the time of its read, through the integration's meter model
(semcore/meters.py) and pair monitor (semcore/pair_monitor.py), as in Home Assistant.

Every value the theft percentage takes after a message is counted, twice: as the integration
evaluates it (the two readings of one poll cycle, once both are in) and as the paper's program
did (the latest reading of each meter, after every message).
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.energy_balance import TheftEngine
from custom_components.smart_energy_meter.semcore.instant_rule import (
    PairDetector,
    TheftEvent,
    mismatch_percent,
)
from custom_components.smart_energy_meter.semcore.meters import MeterModel, ProtocolMeter, Quantity
from custom_components.smart_energy_meter.semcore.pair_monitor import PairMonitor

REPO = Path(__file__).resolve().parents[2]
PAPER = REPO / "firmware" / "scenarios" / "paper.json"
START = 1_764_072_000.0  # node time of the first cycle (Unix seconds)
READ_S = 0.05  # one PZEM-004T read at 9600 baud, and the gap before the next
DELAY_S = 0.01  # from the read to its arrival
LIMIT = 2.0  # percent: the paper's threshold, either way


@dataclass
class Tally:
    """The values of one pair's theft percentage, as one pairing shows them."""

    values: list[float] = field(default_factory=list)

    def add(self, value: float | None) -> None:
        if value is not None:
            self.values.append(value)

    @property
    def above(self) -> int:
        return sum(1 for v in self.values if v > LIMIT)

    @property
    def below(self) -> int:
        return sum(1 for v in self.values if v < -LIMIT)

    def line(self, name: str) -> str:
        low, high = min(self.values), max(self.values)
        return (
            f"{name}: {len(self.values)} evaluations, {self.above} above +{LIMIT:g} %, "
            f"{self.below} below -{LIMIT:g} % (from {low:+.1f} % to {high:+.1f} %)"
        )


@dataclass
class PairResult:
    """One pair of the scenario: both tallies and the verdict of the integration's rule."""

    pair: str
    cycles: Tally = field(default_factory=Tally)  # the integration's: one poll cycle
    latest: Tally = field(default_factory=Tally)  # the paper's: the latest two readings
    detected_at: float | None = None  # the cycle flagged (seconds into the run), or None


def _simulator(scenario: dict[str, Any], node: dict[str, Any]) -> Any:
    """The scenario node's emulated hardware, its relays on (the paper's houses are supplied)."""
    firmware = str(REPO / "firmware")
    if firmware not in sys.path:
        sys.path.insert(0, firmware)
    from semsim import scenario as scen
    from semsim.clock import SimClock

    sim = scen.SimNode(scenario, node, SimClock(1.0), SimClock(1.0), wire_timing=False)
    for pin in sim.pins.values():
        pin.level = 1
    return sim


def _announce(node: dict[str, Any], interval: float) -> p.Announce:
    meters, names = [], {}
    for house in node["houses"]:
        for role in p.Role:
            meter = house[role.value]
            meters.append(p.MeterInfo(meter["id"], role, house["pair"], meter["addr"]))
        names[house["pair"]] = house.get("name", house["pair"])
    return p.Announce(
        node=node["node"],
        version="1.0",
        name=node.get("name", node["node"]),
        model="ESP32 + PZEM-004T v3",
        firmware="1.0.0",
        mac="02:53:00:00:00:01",
        interval=interval,
        meters=tuple(meters),
        relays=(),
        pair_names=names,
        ip="192.168.1.50",
    )


def run(seconds: int = 3600, path: Path = PAPER) -> list[PairResult]:
    """Run the scenario for `seconds` cycles after the first (both ends included)."""
    scenario = json.loads(path.read_text())
    node = scenario["nodes"][0]
    interval = float(scenario.get("interval", 1))
    sim = _simulator(scenario, node)
    from semfw.pzem import parse_measurements

    prefix, name = "sem", node["node"]
    model = MeterModel(prefix)
    model.apply(
        p.announce_topic(prefix, name), p.encode_announce(_announce(node, interval)), False, START
    )
    houses: list[tuple[PairMonitor, dict[p.Role, ProtocolMeter], PairResult, dict[p.Role, float]]]
    houses = []
    for house in node["houses"]:
        monitor = PairMonitor(house["pair"], PairDetector(), TheftEngine(), follows_balance=False)
        meters = {
            role: model.track_protocol_meter(name, house[role.value]["id"]) for role in p.Role
        }
        houses.append((monitor, meters, PairResult(house["pair"]), {}))
    seq = 0
    for cycle in range(seconds + 1):
        read_at = START + cycle * interval
        for monitor, meters, result, latest in houses:
            for role in p.Role:  # line first, as the firmware lists them
                meter = meters[role]
                reading = parse_measurements(sim.pzems[meter.meter].measurements(read_at - START))
                snapshot = p.Snapshot(
                    name, meter.meter, seq, read_at, reading.voltage_dv / 10,
                    reading.current_ma / 1000, reading.power_dw / 10, reading.energy_wh,
                    reading.frequency_dhz / 10, reading.pf_c / 100, False,
                )  # fmt: skip
                seq += 1
                arrival = read_at + DELAY_S
                model.apply(
                    p.state_topic(prefix, name, meter.meter),
                    p.encode_state(snapshot),
                    False,
                    arrival,
                )
                before = monitor.detector.evaluation
                live = model.available(meter, Quantity.POWER)
                for change in monitor.update(role, meter, live, arrival):
                    if change.event is TheftEvent.DETECTED and result.detected_at is None:
                        result.detected_at = cycle * interval
                evaluation = monitor.detector.evaluation
                if evaluation is not before and evaluation is not None:
                    result.cycles.add(evaluation.mismatch)  # a new evaluation
                latest[role] = snapshot.power
                if len(latest) == 2 and latest[p.Role.LINE] > 0:
                    result.latest.add(mismatch_percent(latest[p.Role.LINE], latest[p.Role.HOUSE]))
                read_at += READ_S
    return [result for _, _, result, _ in houses]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.detection.paper_percentage", description=__doc__
    )
    parser.add_argument("--seconds", type=int, default=3600, help="poll cycles after the first")
    args = parser.parse_args(argv)
    for result in run(args.seconds):
        print(f"{result.pair}:")
        print("  " + result.cycles.line("one poll cycle (the integration)"))
        print("  " + result.latest.line("latest two readings (the paper)"))
        flagged = "never" if result.detected_at is None else f"after {result.detected_at:.0f} s"
        print(f"  theft flagged by the 2 % rule (10 s debounce): {flagged}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
