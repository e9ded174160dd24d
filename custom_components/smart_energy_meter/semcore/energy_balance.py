"""Theft detection for one line/house pair: windowed energy balance with loss compensation.

Feed it every reading of the pair's two meters (in any interleaving, each meter in time order);
it integrates both into fixed windows, subtracts the service cable's I²·R loss (and the offset
and gain mismatch a commissioning fit found), compares the unexplained energy with a threshold
and debounces the verdicts into a status. It only reports: nothing here switches a relay.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import asdict, astuple, dataclass, field, replace
from enum import StrEnum
from typing import Any

from .cable_loss import CableSpec
from .calibration import MeterGains
from .commissioning import BalanceSample, CommissioningFit, FitError, fit_commissioning
from .debounce import UNDECIDED, Change, DebounceConfig, Status, StatusMachine, Verdict
from .pairing import CyclePairing, cycle_tolerance
from .protocol import Role
from .state import StateError, mapping, member, number, optional_number, sequence, whole
from .uncertainty import Threshold, UncertaintyModel, WindowQuantities, window_threshold
from .windows import HeldReading, MeterIntegrator, PowerHistory, WindowTotals, mismatch_pct

__all__ = [
    "UNDECIDED",
    "EnergySource",
    "Evaluation",
    "MeterReading",
    "Role",
    "Status",
    "TheftConfig",
    "TheftEngine",
    "Transition",
    "Verdict",
    "WindowResult",
]

# Windows at most this much short of full coverage still count as covered (float rounding).
_COVERAGE_SLACK_S = 1e-6
# Commissioning results beyond these are wiring faults or theft, not meter tolerances.
_MAX_GAIN_MISMATCH = 0.05
_MAX_OFFSET_W = 50.0
# A fitted resistance this far below zero is noise around a negligible cable, not an error.
_RESISTANCE_NOISE_OHM = 1e-4
# A commissioning fit must determine what it fits well enough to be worth more than the
# defaults: at least 30 minutes of 15 s windows, the gain ratio to 0.25 % (the threshold is
# 3 x its uncertainty), R to 25 % (or 5 mohm: at 40 A and 230 V that is 0.1 % of the power).
_MIN_COMMISSIONING_WINDOWS = 120
_MAX_GAIN_SE = 0.0025
_MAX_RESISTANCE_REL_SE = 0.25
_MAX_RESISTANCE_SE = 0.005
# Power resolution of the meters (PZEM: 0.1 W), twice: a change between two readings must
# exceed it to count as a load step.
_RESOLUTION_W = 0.2
# Empty windows in a row beyond which more of them cannot change the status any further.
_EMPTY_WINDOW_CAP = 64


class EnergySource(StrEnum):
    """What the window energies are computed from."""

    POWER = "power"  # integrated power readings: short windows, no quantisation
    COUNTERS = "counters"  # the meters' energy counters: long windows (1 Wh steps)


@dataclass(frozen=True, slots=True)
class TheftConfig:
    """Everything that tunes one pair's detection. Defaults: see docs/theft-detection.md.

    The cable loss uses `resistance_ohm` when set (fitted or measured), else `cable`, else none.
    `offset_w` and `house_gain` come from commissioning; `line_gains`/`house_gains` from a
    multimeter calibration of each meter.
    """

    window_s: float = 15.0
    max_hold_s: float = 5.0
    energy_source: EnergySource = EnergySource.POWER
    cable: CableSpec | None = None
    resistance_ohm: float | None = None
    offset_w: float = 0.0
    house_gain: float = 1.0
    line_gains: MeterGains = field(default_factory=MeterGains)
    house_gains: MeterGains = field(default_factory=MeterGains)
    uncertainty: UncertaintyModel = field(default_factory=UncertaintyModel)
    debounce: DebounceConfig = field(default_factory=DebounceConfig)
    tamper_floor_w: float = 10.0
    nominal_voltage_v: float = 230.0
    clock_tolerance_s: float = 30.0

    def __post_init__(self) -> None:
        if not (math.isfinite(self.window_s) and self.window_s > 0):
            raise ValueError(f"window_s must be > 0, got {self.window_s}")
        if not (math.isfinite(self.max_hold_s) and self.max_hold_s > 0):
            raise ValueError(f"max_hold_s must be > 0, got {self.max_hold_s}")
        if self.resistance_ohm is not None and not (
            math.isfinite(self.resistance_ohm) and self.resistance_ohm >= 0
        ):
            raise ValueError(f"resistance_ohm must be >= 0, got {self.resistance_ohm}")
        if not (math.isfinite(self.house_gain) and 0.5 < self.house_gain < 1.5):
            raise ValueError(f"house_gain must be near 1, got {self.house_gain}")
        for name in ("offset_w", "tamper_floor_w", "nominal_voltage_v", "clock_tolerance_s"):
            if not math.isfinite(getattr(self, name)):
                raise ValueError(f"{name} must be finite")
        if self.nominal_voltage_v <= 0:
            raise ValueError("nominal_voltage_v must be > 0")

    @property
    def effective_resistance_ohm(self) -> float:
        """The cable resistance used: measured or fitted when given, else from the cable data."""
        if self.resistance_ohm is not None:
            return self.resistance_ohm
        return self.cable.resistance_ohm if self.cable is not None else 0.0


@dataclass(frozen=True, slots=True)
class MeterReading:
    """One reading of one meter. `available=False` marks a failed read or an offline node at
    `ts`; its values are ignored. `current_a` may be missing (then P/V is used for the loss)."""

    ts: float
    power_w: float | None = None
    voltage_v: float | None = None
    current_a: float | None = None
    energy_wh: float | None = None
    available: bool = True


@dataclass(frozen=True, slots=True)
class WindowResult:
    """One closed window: energies (Wh), the threshold and the verdict.

    unexplained_wh = line - house - loss, after gains. mismatch_pct is the paper's indicator on
    the window energies (no loss compensation); unexplained_pct is the compensated one.
    """

    start: float
    end: float
    verdict: Verdict
    line_wh: float | None = None
    house_wh: float | None = None
    loss_wh: float | None = None
    unexplained_wh: float | None = None
    threshold: Threshold | None = None

    @property
    def mismatch_pct(self) -> float | None:
        """The window's line/house mismatch in percent, None when not balanced."""
        if self.line_wh is None or self.house_wh is None:
            return None
        return mismatch_pct(self.line_wh, self.house_wh)

    @property
    def unexplained_pct(self) -> float | None:
        """The unexplained share of the line energy in percent, None when unknown."""
        if self.line_wh is None or self.unexplained_wh is None or self.line_wh <= 0:
            return None
        return 100.0 * self.unexplained_wh / self.line_wh

    def as_dict(self) -> dict[str, Any]:
        """Stored form."""
        return {
            "start": self.start,
            "end": self.end,
            "verdict": self.verdict.value,
            "line_wh": self.line_wh,
            "house_wh": self.house_wh,
            "loss_wh": self.loss_wh,
            "unexplained_wh": self.unexplained_wh,
            "threshold": None if self.threshold is None else list(astuple(self.threshold)),
        }

    @classmethod
    def from_dict(cls, data: Any) -> WindowResult:
        """Read the stored form (StateError if it is not one)."""
        data = mapping(data, "window result")
        threshold = data.get("threshold")
        start = number(data.get("start"), "window start", minimum=0)
        end = number(data.get("end"), "window end", minimum=start)
        return cls(
            start,
            end,
            member(Verdict, data.get("verdict"), "verdict"),
            optional_number(data.get("line_wh"), "line energy"),
            optional_number(data.get("house_wh"), "house energy"),
            optional_number(data.get("loss_wh"), "loss"),
            optional_number(data.get("unexplained_wh"), "unexplained energy"),
            None
            if threshold is None
            else Threshold(
                *(number(level, "threshold") for level in sequence(threshold, "threshold", 6))
            ),
        )


@dataclass(frozen=True, slots=True)
class Transition:
    """A status change, stamped with the end of the window that caused it."""

    at: float
    previous: Status
    status: Status
    reason: str
    window: WindowResult


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The pair as it stands after one call.

    window_mismatch_pct is the last balance window's unexplained share (after cable loss and
    gain matching), the figure the detector judges; instant_mismatch_pct is the paper's
    instantaneous indicator from the two readings of the latest poll cycle both meters were
    read in (`semcore/pairing.py`), None while a meter is unavailable. `rejected` says why the
    reading fed in this call was ignored, if it was.
    """

    status: Status
    instant_mismatch_pct: float | None
    window_mismatch_pct: float | None
    unaccounted_wh: float
    window: WindowResult | None
    transitions: tuple[Transition, ...] = ()
    rejected: str | None = None


class TheftEngine:
    """Detection state of one pair. Not thread-safe; one instance per pair."""

    _meters: dict[Role, MeterIntegrator]
    _history: PowerHistory
    _frontier: dict[Role, float | None]
    _pairing: CyclePairing[HeldReading]
    _instant_pct: float | None
    _next_window: int | None

    def __init__(self, config: TheftConfig | None = None, *, unaccounted_wh: float = 0.0) -> None:
        if not (math.isfinite(unaccounted_wh) and unaccounted_wh >= 0):
            raise ValueError(f"unaccounted_wh must be a finite number >= 0, got {unaccounted_wh}")
        self._config = config or TheftConfig()
        self._machine = StatusMachine(self._config.debounce)
        self._unaccounted_wh = unaccounted_wh
        self._last_window: WindowResult | None = None
        self._last_balance: WindowResult | None = None
        self._commissioning: list[BalanceSample] | None = None
        self._reset_windows()

    # -- public API ------------------------------------------------------------------------

    @property
    def config(self) -> TheftConfig:
        """The configuration in force."""
        return self._config

    @property
    def status(self) -> Status:
        """The debounced verdict."""
        return self._machine.status

    @property
    def unaccounted_wh(self) -> float:
        """Running total of positive unexplained energy (Wh); never decreases."""
        return self._unaccounted_wh

    @property
    def commissioning(self) -> bool:
        """True while commissioning windows are being collected."""
        return self._commissioning is not None

    def feed(self, role: Role, reading: MeterReading) -> Evaluation:
        """Account one reading of the line or the house meter."""
        reason = self._validate(role, reading)
        if reason is not None:
            return self._evaluation((), rejected=reason)
        self._frontier[role] = reading.ts
        if reading.available:
            held = self._held(role, reading)
            previous = self._meters[role].last
            if previous is not None and held.ts - previous.ts <= self._config.max_hold_s:
                self._spacing[role] = held.ts - previous.ts
            self._meters[role].add(held)
            self._pair(role, held)
            if role is Role.LINE:
                self._history.add(held.ts, held.power_w)
        else:
            self._pairing.clear()
            self._instant_pct = None
        if self._next_window is None:
            self._next_window = self._meters[role].index(reading.ts)
        return self._evaluation(self._close_windows(None))

    def feed_line(self, reading: MeterReading) -> Evaluation:
        """Account one reading of the line meter."""
        return self.feed(Role.LINE, reading)

    def feed_house(self, reading: MeterReading) -> Evaluation:
        """Account one reading of the house meter."""
        return self.feed(Role.HOUSE, reading)

    def tick(self, now: float) -> Evaluation:
        """Let time pass without readings (both meters silent). `now` is on the readings'
        clock; it is trusted only `clock_tolerance_s` behind, so a clock offset between the
        caller and the node does not make a live meter look silent."""
        if not math.isfinite(now) or self._next_window is None:
            return self._evaluation(())
        return self._evaluation(self._close_windows(now - self._config.clock_tolerance_s))

    def evaluation(self) -> Evaluation:
        """Current state without feeding anything."""
        return self._evaluation(())

    def reconfigure(self, config: TheftConfig) -> None:
        """Apply new settings. Status and the unaccounted total carry over; the open windows
        restart, since they were integrated with the old gains."""
        self._config = config
        self._machine.config = config.debounce
        self._reset_windows()

    def restore_status(self, status: Status) -> None:
        """Continue from the status of an earlier run (before anything is fed)."""
        self._machine.restore(status)

    @property
    def open_since(self) -> float | None:
        """Start of the oldest window not closed yet (None before the first reading)."""
        if self._next_window is None:
            return None
        return self._next_window * self._config.window_s

    def as_dict(self) -> dict[str, Any]:
        """Stored form of everything a later run continues from: the open windows, the
        debounce, the unaccounted total, the last window and the commissioning in progress.

        The configuration is not in it (the later run has its own), only its fingerprint: open
        windows integrated under another configuration are not continued.
        """
        cfg = self._config
        windows: dict[str, Any] | None = None
        if self._next_window is not None:
            windows = {
                "config": _fingerprint(cfg),
                "next": self._next_window,
                "meters": {role.value: m.as_dict() for role, m in self._meters.items()},
                "history": self._history.as_list(),
                "spacing": {role.value: s for role, s in self._spacing.items()},
                "frontier": {role.value: t for role, t in self._frontier.items()},
                # A cycle waiting for its second reading is not kept: the next cycle pairs.
                "instant_pct": self._instant_pct,
            }
        return {
            "debounce": self._machine.as_dict(),
            "unaccounted_wh": self._unaccounted_wh,
            "last_window": None if self._last_window is None else self._last_window.as_dict(),
            "last_balance": None if self._last_balance is None else self._last_balance.as_dict(),
            "commissioning": (
                None
                if self._commissioning is None
                else [list(astuple(sample)) for sample in self._commissioning]
            ),
            "windows": windows,
        }

    @classmethod
    def from_dict(cls, data: Any, config: TheftConfig) -> TheftEngine:
        """Continue from the stored form under `config` (StateError if it is not one)."""
        data = mapping(data, "balance")
        engine = cls(
            config, unaccounted_wh=number(data.get("unaccounted_wh"), "unaccounted", minimum=0)
        )
        engine._machine = StatusMachine.from_dict(data.get("debounce"), config.debounce)
        for key in ("last_window", "last_balance"):
            if (stored := data.get(key)) is not None:
                setattr(engine, f"_{key}", WindowResult.from_dict(stored))
        if (samples := data.get("commissioning")) is not None:
            engine._commissioning = [
                BalanceSample(
                    *(number(v, "commissioning window") for v in sequence(item, "sample", 3))
                )
                for item in sequence(samples, "commissioning")
            ]
        windows = data.get("windows")
        if windows is not None and mapping(windows, "windows").get("config") == _fingerprint(
            config
        ):
            engine._restore_windows(windows)
        return engine

    def discard_windows(self) -> None:
        """Forget the open windows: the data stopped for longer than a reading is held (Home
        Assistant was down), so they can never be complete. No run of windows goes on across
        the gap; the status, the total and commissioning do."""
        self._reset_windows()
        self._machine.interrupt()

    def start_commissioning(self) -> None:
        """Collect balance windows from now on for a theft-free commissioning fit."""
        self._commissioning = []

    def cancel_commissioning(self) -> None:
        """Stop collecting commissioning windows; nothing is fitted."""
        self._commissioning = None

    def finish_commissioning(
        self, *, fit_resistance: bool = True, match_gain: bool = True, gain_drift_pct: float = 0.2
    ) -> CommissioningFit:
        """Fit the loss model on the collected windows and apply it.

        With `fit_resistance` false, R stays as configured (cable data) and only the offset
        (and gain) are fitted. The fitted parameters' standard errors set the uncertainty
        model: R's relative error (at least 5 %: the cable's temperature will differ from the
        commissioning days) and, when gains were matched, the remaining gain uncertainty
        together with `gain_drift_pct` for the meters' drift. Raises FitError (collection
        continues) when the data cannot determine the model.
        """
        if self._commissioning is None:
            raise FitError("commissioning was not started")
        if len(self._commissioning) < _MIN_COMMISSIONING_WINDOWS:
            raise FitError(
                f"{len(self._commissioning)} quiet windows so far, at least "
                f"{_MIN_COMMISSIONING_WINDOWS} are needed: commission for longer"
            )
        cfg = self._config
        fit = fit_commissioning(
            self._commissioning,
            resistance_ohm=None if fit_resistance else cfg.effective_resistance_ohm,
            match_gain=match_gain,
        )
        if fit.gain_mismatch_se > _MAX_GAIN_SE:
            raise FitError(
                f"the gain ratio is only known to ±{100 * fit.gain_mismatch_se:.2f} %: vary the "
                "load more, or commission for longer"
            )
        r_tolerance = max(_MAX_RESISTANCE_REL_SE * abs(fit.resistance_ohm), _MAX_RESISTANCE_SE)
        if fit.resistance_se_ohm > r_tolerance:
            raise FitError(
                f"the cable resistance is only known to ±{fit.resistance_se_ohm:.3f} ohm: vary "
                "the load more (up to a few kW), or commission for longer"
            )
        if abs(fit.gain_mismatch) > _MAX_GAIN_MISMATCH:
            raise FitError(
                f"the meters disagree by {100 * fit.gain_mismatch:+.1f} %, beyond any meter "
                "class: check the wiring, or theft during commissioning"
            )
        if abs(fit.offset_w) > _MAX_OFFSET_W:
            raise FitError(
                f"a constant {fit.offset_w:+.0f} W between the meters is more than a node "
                "draws: check the wiring, or theft during commissioning"
            )
        if fit.resistance_ohm < -max(3.0 * fit.resistance_se_ohm, _RESISTANCE_NOISE_OHM):
            raise FitError(
                "the fitted cable resistance is negative: the load did not vary enough, or "
                "the period was not theft-free"
            )
        resistance = max(fit.resistance_ohm, 0.0)  # a cable with no measurable resistance
        unc = cfg.uncertainty
        if fit.resistance_fitted and resistance > 0:
            unc = replace(unc, resistance_pct=max(5.0, 100.0 * fit.resistance_se_ohm / resistance))
        if fit.gain_matched:
            unc = replace(
                unc, gain_match_pct=math.hypot(100.0 * fit.gain_mismatch_se, gain_drift_pct)
            )
        self.reconfigure(
            replace(
                cfg,
                resistance_ohm=resistance,
                offset_w=fit.offset_w,
                house_gain=cfg.house_gain * (1.0 + fit.gain_mismatch),
                uncertainty=unc,
            )
        )
        self._commissioning = None
        return fit

    # -- internals -------------------------------------------------------------------------

    def _reset_windows(self) -> None:
        cfg = self._config
        self._meters = {
            Role.LINE: MeterIntegrator(cfg.window_s, cfg.max_hold_s),
            Role.HOUSE: MeterIntegrator(cfg.window_s, cfg.max_hold_s),
        }
        reach = cfg.uncertainty.max_skew_s + cfg.max_hold_s
        self._history = PowerHistory(cfg.window_s + 2 * reach + cfg.max_hold_s)
        self._spacing = {Role.LINE: cfg.max_hold_s, Role.HOUSE: cfg.max_hold_s}
        self._frontier = {Role.LINE: None, Role.HOUSE: None}
        self._pairing = CyclePairing()
        self._instant_pct = None
        self._next_window: int | None = None

    def _restore_windows(self, data: Any) -> None:
        cfg = self._config
        data = mapping(data, "windows")

        def by_role(key: str) -> Mapping[str, Any]:
            values = mapping(data.get(key), key)
            if set(values) != {role.value for role in Role}:
                raise StateError(f"{key}: not one value per meter")
            return values

        meters, spacing = by_role("meters"), by_role("spacing")
        # A stored form of an earlier version may hold each meter's newest reading ("latest"):
        # not continued, a cycle never pairs across a restart.
        frontier = by_role("frontier")
        self._meters = {
            role: MeterIntegrator.from_dict(meters[role.value], cfg.window_s, cfg.max_hold_s)
            for role in Role
        }
        self._history = PowerHistory.from_list(data.get("history"), self._history.keep_s)
        self._spacing = {role: number(spacing[role.value], "spacing", minimum=0) for role in Role}
        self._frontier = {
            role: optional_number(frontier[role.value], "frontier", minimum=0) for role in Role
        }
        self._instant_pct = optional_number(data.get("instant_pct"), "instant_pct")
        self._next_window = whole(data.get("next"), "next window")

    @property
    def _read_interval_s(self) -> float:
        """Longest recent gap between two readings of one meter (at most max_hold_s)."""
        return max(self._spacing.values())

    def _validate(self, role: Role, reading: MeterReading) -> str | None:
        if not (math.isfinite(reading.ts) and reading.ts >= 0):
            return "invalid timestamp"
        last = self._frontier[role]
        if last is not None and reading.ts <= last:
            return "timestamp not after the previous reading"
        if not reading.available:
            return None
        if reading.power_w is None:
            return "reading without power"
        for value in (reading.power_w, reading.voltage_v, reading.current_a, reading.energy_wh):
            if value is not None and not (math.isfinite(value) and value >= 0):
                return "reading with a negative or non-finite value"
        return None

    def _held(self, role: Role, reading: MeterReading) -> HeldReading:
        cfg = self._config
        gains = cfg.line_gains if role is Role.LINE else cfg.house_gains
        power_gain = gains.power * (cfg.house_gain if role is Role.HOUSE else 1.0)
        assert reading.power_w is not None  # checked by _validate
        power = reading.power_w * power_gain
        if reading.current_a is not None:
            current = reading.current_a * gains.current
        else:
            volts = reading.voltage_v * gains.voltage if reading.voltage_v else 0.0
            current = power / (volts if volts > 0 else cfg.nominal_voltage_v)
        energy = reading.energy_wh * power_gain if reading.energy_wh is not None else None
        return HeldReading(reading.ts, power, current, energy)

    def _pair(self, role: Role, held: HeldReading) -> None:
        """The paper's indicator of the cycle this reading completes; it stands until the next
        cycle of both meters (reads of one cycle: half the shorter recent read spacing)."""
        tolerance = cycle_tolerance(min(self._spacing.values()), self._config.max_hold_s)
        cycle = self._pairing.add(role, held, tolerance)
        if cycle is not None:
            line, house = cycle
            self._instant_pct = mismatch_pct(line.power_w, house.power_w)

    def _evaluation(
        self, transitions: Iterable[Transition], rejected: str | None = None
    ) -> Evaluation:
        balance = self._last_balance
        return Evaluation(
            status=self._machine.status,
            instant_mismatch_pct=self._instant_pct,
            window_mismatch_pct=balance.unexplained_pct if balance is not None else None,
            unaccounted_wh=self._unaccounted_wh,
            window=self._last_window,
            transitions=tuple(transitions),
            rejected=rejected,
        )

    def _closable_until(self, tick_ref: float | None) -> float:
        """Latest window end that can be closed now.

        A window closes once each meter has reported past its end (plus the skew margin, so the
        edge readings are known), or has gone silent for longer than it may be held.
        """
        cfg = self._config
        # The edges' readings must be in: skew, and the read that shows a step at the edge.
        margin = cfg.uncertainty.max_skew_s + self._read_interval_s
        seen = [t for t in (*self._frontier.values(), tick_ref) if t is not None]
        ref = max(seen)  # never empty: called after a reading or with a tick
        limit = ref - margin
        for t in self._frontier.values():
            if t is None or ref - t >= cfg.max_hold_s + margin:
                continue  # silent: its data up to now is all there will be
            limit = min(limit, t - margin)
        return limit

    def _close_windows(self, tick_ref: float | None) -> list[Transition]:
        until = self._closable_until(tick_ref)
        assert self._next_window is not None  # set by the first reading, before any close
        cfg = self._config
        last = math.floor(until / cfg.window_s) - 1  # last window whose end is <= until
        transitions: list[Transition] = []
        w = self._next_window
        while w <= last:
            firsts = [i for m in self._meters.values() if (i := m.first_index()) is not None]
            upcoming = min((i for i in firsts if i >= w), default=None)
            if upcoming is None or upcoming > w:
                # A stretch without any data: a few empty windows saturate the debounce.
                stop = last + 1 if upcoming is None else min(upcoming, last + 1)
                for k in range(w, min(stop, w + _EMPTY_WINDOW_CAP)):
                    transitions += self._account(self._empty_window(k))
                w = stop
                continue
            line, house = self._meters[Role.LINE].pop(w), self._meters[Role.HOUSE].pop(w)
            transitions += self._account(self._judge(w, line, house))
            w += 1
        self._next_window = w
        for meter in self._meters.values():
            meter.drop_before(w)
        return transitions

    def _empty_window(self, index: int) -> WindowResult:
        start = index * self._config.window_s
        return WindowResult(start, start + self._config.window_s, Verdict.NO_DATA)

    def _judge(self, index: int, line: WindowTotals, house: WindowTotals) -> WindowResult:
        cfg = self._config
        start = index * cfg.window_s
        end = start + cfg.window_s
        full = cfg.window_s - _COVERAGE_SLACK_S
        if line.covered_s < full:
            return WindowResult(start, end, Verdict.NO_DATA)
        counters = cfg.energy_source is EnergySource.COUNTERS
        if counters and not line.counter_valid:
            return WindowResult(start, end, Verdict.NO_DATA)
        line_wh = line.counter_wh if counters else line.energy_wh
        if house.covered_s < full or (counters and not house.counter_valid):
            silent = line_wh * 3600.0 / cfg.window_s >= cfg.tamper_floor_w
            verdict = Verdict.HOUSE_SILENT if silent else Verdict.NO_DATA
            return WindowResult(start, end, verdict, line_wh=line_wh)
        house_wh = house.counter_wh if counters else house.energy_wh
        cable_wh = cfg.effective_resistance_ohm * line.current_sq_as / 3600.0
        loss_wh = cable_wh + cfg.offset_w * cfg.window_s / 3600.0
        unexplained = line_wh - house_wh - loss_wh
        unc = cfg.uncertainty
        interval = self._read_interval_s
        reach = unc.max_skew_s + interval
        history = self._history
        threshold = window_threshold(
            unc,
            WindowQuantities(
                duration_s=cfg.window_s,
                line_wh=line_wh,
                house_wh=house_wh,
                cable_loss_wh=cable_wh,
                line_samples=line.samples,
                house_samples=house.samples,
                edge_step_w=history.edge_step_w(start, end, unc.max_skew_s, cfg.max_hold_s),
                # A step the line saw up to skew + interval outside the window can still land
                # inside it in the house's view.
                steps_w=history.steps_w(
                    start - reach, end + reach, unc.reading_noise_pct / 100.0, _RESOLUTION_W
                ),
                read_interval_s=interval,
                from_counters=counters,
            ),
        )
        if unexplained > threshold.trigger_wh:
            verdict = Verdict.EXCESS
        elif unexplained < -threshold.trigger_wh:
            verdict = Verdict.DEFICIT
        elif abs(unexplained) < threshold.clear_wh:
            verdict = Verdict.CLEAN
        else:
            verdict = Verdict.GREY
        if self._commissioning is not None and threshold.timing_wh <= threshold.sigma_wh:
            # Only windows without big steps: their timing errors would bias the fit.
            hours = cfg.window_s / 3600.0
            self._commissioning.append(
                BalanceSample(
                    line_w=line_wh / hours,
                    house_w=house_wh / hours,
                    current_sq_a2=line.current_sq_as / cfg.window_s,
                )
            )
        self._unaccounted_wh += max(0.0, unexplained)
        return WindowResult(start, end, verdict, line_wh, house_wh, loss_wh, unexplained, threshold)

    def _account(self, window: WindowResult) -> list[Transition]:
        self._last_window = window
        if window.unexplained_wh is not None:
            self._last_balance = window
        score = 0.0
        if window.unexplained_wh is not None and window.threshold is not None:
            score = window.unexplained_wh / max(window.threshold.trigger_wh, 1e-12)
        change: Change | None = self._machine.step(window.verdict, score)
        if change is None:
            return []
        return [Transition(window.end, change.previous, change.status, change.reason, window)]


def _fingerprint(config: TheftConfig) -> str:
    """The configuration as text: equal for equal configurations, across runs."""
    return json.dumps(asdict(config), sort_keys=True)
