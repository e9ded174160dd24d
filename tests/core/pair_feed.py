"""A pair's detection fed without Home Assistant: a meter model with the pair's two meters,
read once a second, and the pair monitor they feed."""

from __future__ import annotations

import json
from typing import Any

from custom_components.smart_energy_meter.semcore import protocol as p
from custom_components.smart_energy_meter.semcore.energy_balance import TheftConfig, TheftEngine
from custom_components.smart_energy_meter.semcore.instant_rule import (
    DetectionOptions,
    PairDetector,
)
from custom_components.smart_energy_meter.semcore.meters import (
    MeterModel,
    ProtocolMeter,
    Quantity,
)
from custom_components.smart_energy_meter.semcore.pair_monitor import PairMonitor, TheftChange

START = 1_764_072_000.0
LINE, HONEST, BYPASS = 100.0, 99.04, 82.23


class Pair:
    """A meter model with a pair's two meters, read once a second; `start` and `seq` continue
    an earlier run's node."""

    def __init__(
        self,
        config: TheftConfig | None = None,
        *,
        follows_balance: bool = True,
        start: float = START,
        seq: int = 0,
    ) -> None:
        self.model = MeterModel("sem")
        self.meters: dict[p.Role, ProtocolMeter] = {
            p.Role.LINE: self.model.track_protocol_meter("node1", "line1"),
            p.Role.HOUSE: self.model.track_protocol_meter("node1", "house1"),
        }
        self.monitor = PairMonitor(
            "House 1",
            PairDetector(DetectionOptions()),
            TheftEngine(config),
            follows_balance=follows_balance,
        )
        self.ts = start
        self.seq = seq

    @property
    def now(self) -> float:
        """Wall-clock time of the newest reading's arrival."""
        return self.ts + 0.11

    def read(self, role: p.Role, power: float, offset: float = 0.0) -> list[TheftChange]:
        meter = self.meters[role]
        snapshot = p.Snapshot(
            "node1", meter.meter, self.seq, self.ts + offset, 230.0, power / 230, power, 5.0,
            50.0, 1.0, False,
        )  # fmt: skip
        self.seq += 1
        topic = p.state_topic("sem", "node1", meter.meter)
        self.model.apply(topic, p.encode_state(snapshot), False, self.ts + offset + 0.01)
        live = self.model.available(meter, Quantity.POWER)
        return self.monitor.update(role, meter, live, self.ts + offset + 0.01)

    def seconds(self, count: int, house: float) -> list[TheftChange]:
        changes: list[TheftChange] = []
        for _ in range(count):
            changes += self.read(p.Role.LINE, LINE)
            changes += self.read(p.Role.HOUSE, house, 0.1)
            self.ts += 1.0
        return changes

    def stored(self) -> dict[str, Any]:
        """What the store keeps: the state through JSON."""
        stored: dict[str, Any] = json.loads(json.dumps(self.monitor.as_dict()))
        return stored

    def next_run(self, config: TheftConfig | None = None, *, after: float = 0.5) -> Pair:
        """The same pair in a new run started `after` seconds later, continued from the stored
        state; its node goes on where it was."""
        pair = Pair(config, start=self.ts, seq=self.seq)
        assert pair.monitor.restore(self.stored(), self.now + after)
        return pair
