"""The detectors under comparison, behind one interface: feed readings, collect alarm spans.

- PaperInstant: the paper's rule as published, (P_line - P_house)/P_line > 2 % on the latest
  two readings, evaluated on every update, no debounce, no minimum load. A meter that stops
  publishing leaves its last value on screen (an MQTT subscriber keeps what it got last).
- PaperDebounced: the integration's simple rule (semcore/instant_rule.py): the same 2 %, with a
  10 W minimum load, pairing only reads close in time, 10 s debounce and hysteresis.
- Ours: the windowed energy balance (semcore/energy_balance.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from custom_components.smart_energy_meter.semcore.energy_balance import (
    MeterReading,
    Role,
    Status,
    TheftConfig,
    TheftEngine,
)
from custom_components.smart_energy_meter.semcore.instant_rule import PairDetector, TheftEvent

from .simulation import MeterRead

ALARM_STATUSES = (Status.THEFT, Status.METER_FAULT, Status.TAMPER_SUSPECTED)


@dataclass
class Span:
    raised: float
    cleared: float | None = None


@dataclass
class Spans:
    """Alarm spans per kind (theft, meter_fault, tamper_suspected)."""

    spans: dict[str, list[Span]] = field(default_factory=dict)

    def raise_(self, kind: str, at: float) -> None:
        self.spans.setdefault(kind, []).append(Span(at))

    def clear(self, kind: str, at: float) -> None:
        open_spans = self.spans.get(kind)
        if open_spans and open_spans[-1].cleared is None:
            open_spans[-1].cleared = at


class Detector:
    name = "detector"

    def __init__(self) -> None:
        self.alarms = Spans()

    def feed(self, is_line: bool, read: MeterRead) -> None:
        raise NotImplementedError


class PaperInstant(Detector):
    name = "paper 2 % instantaneous"

    def __init__(self, threshold_pct: float = 2.0) -> None:
        super().__init__()
        self.threshold = threshold_pct
        self.line: float | None = None
        self.house: float | None = None
        self.flag = False

    def feed(self, is_line: bool, read: MeterRead) -> None:
        if not read.available:
            return
        if is_line:
            self.line = read.power_w
        else:
            self.house = read.power_w
        if self.line is None or self.house is None:
            return
        flag = self.line > 0 and (self.line - self.house) / self.line * 100.0 > self.threshold
        if flag and not self.flag:
            self.alarms.raise_("theft", read.ts)
        elif self.flag and not flag:
            self.alarms.clear("theft", read.ts)
        self.flag = flag


class PaperDebounced(Detector):
    name = "2 % debounced (instant_rule.py)"

    def __init__(self) -> None:
        super().__init__()
        self.detector = PairDetector()

    def feed(self, is_line: bool, read: MeterRead) -> None:
        if not read.available:
            self.detector.interrupt()
            return
        update = self.detector.update_line if is_line else self.detector.update_house
        change = update(read.power_w, read.ts)
        if change is None:
            return
        if change.event is TheftEvent.DETECTED:
            self.alarms.raise_("theft", change.at)
        else:
            self.alarms.clear("theft", change.at)


class Ours(Detector):
    name = "windowed balance"

    def __init__(
        self, config: TheftConfig, commission_s: float = 0.0, name: str | None = None
    ) -> None:
        super().__init__()
        self.engine = TheftEngine(config)
        if name is not None:
            self.name = name
        self.commission_until: float | None = None
        self._commission_s = commission_s
        self.fit_error: str | None = None

    def feed(self, is_line: bool, read: MeterRead) -> None:
        engine = self.engine
        if self._commission_s > 0 and self.commission_until is None:
            self.commission_until = read.ts + self._commission_s
            engine.start_commissioning()
        if self.commission_until is not None and read.ts >= self.commission_until:
            self.commission_until = float("inf")
            try:
                engine.finish_commissioning()
            except ValueError as err:
                self.fit_error = str(err)
        reading = (
            MeterReading(
                read.ts,
                power_w=read.power_w,
                voltage_v=read.voltage_v,
                current_a=read.current_a,
                energy_wh=read.energy_wh,
            )
            if read.available
            else MeterReading(read.ts, available=False)
        )
        result = engine.feed(Role.LINE if is_line else Role.HOUSE, reading)
        for change in result.transitions:
            if change.previous in ALARM_STATUSES:
                self.alarms.clear(change.previous.value, change.at)
            if change.status in ALARM_STATUSES:
                self.alarms.raise_(change.status.value, change.at)
