"""From per-window verdicts to a pair status: debounce to raise, hysteresis to clear.

One window above the threshold is not an alarm: a load step under a clock skew, a dropped
reading or a glitch can produce one. The status changes only after N consecutive windows agree
(or, in CUSUM mode, once the excess above the threshold has accumulated to h thresholds), and an
alarm clears only after M consecutive clean windows, clean meaning below a lower level than the
trigger. Missing data never clears an alarm: a thief unplugging the node must not reset it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from .state import count, mapping, member, number, sequence


class Status(StrEnum):
    """What the pair's balance says."""

    OK = "ok"
    THEFT = "theft"
    METER_FAULT = "meter_fault"
    TAMPER_SUSPECTED = "tamper_suspected"
    NOT_EVALUABLE = "not_evaluable"
    EVALUATING = "evaluating"  # since start, no window has decided yet


ALARMS = frozenset({Status.THEFT, Status.METER_FAULT, Status.TAMPER_SUSPECTED})
# No verdict either way: the theft, tamper and meter fault sensors are unknown.
UNDECIDED = frozenset({Status.EVALUATING, Status.NOT_EVALUABLE})


class Verdict(StrEnum):
    """What one window says on its own."""

    EXCESS = "excess"  # line above house + losses beyond the threshold
    DEFICIT = "deficit"  # house above line beyond the threshold: meter or wiring fault
    CLEAN = "clean"  # within the clear band
    GREY = "grey"  # between the clear band and the threshold: no change either way
    HOUSE_SILENT = "house_silent"  # no house reading while the line draws above the floor
    NO_DATA = "no_data"  # the window cannot be evaluated


class DebounceMode(StrEnum):
    """How windows beyond the threshold add up to an alarm."""

    CONSECUTIVE = "consecutive"
    CUSUM = "cusum"


@dataclass(frozen=True, slots=True)
class DebounceConfig:
    """raise_windows: consecutive excess/deficit windows that raise an alarm (and no-data
    windows that make the pair not evaluable); clear_windows: consecutive clean windows that
    clear it; tamper_windows: consecutive house-silent windows; cusum_h: accumulated excess, in
    thresholds, that raises in CUSUM mode."""

    mode: DebounceMode = DebounceMode.CONSECUTIVE
    raise_windows: int = 3
    clear_windows: int = 3
    tamper_windows: int = 3
    cusum_h: float = 2.0

    def __post_init__(self) -> None:
        for name in ("raise_windows", "clear_windows", "tamper_windows"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1")
        if not self.cusum_h > 0:
            raise ValueError("cusum_h must be > 0")


@dataclass(frozen=True, slots=True)
class Change:
    """A status change and the rule that caused it."""

    previous: Status
    status: Status
    reason: str


_ALARM_OF = {
    Verdict.EXCESS: Status.THEFT,
    Verdict.DEFICIT: Status.METER_FAULT,
    Verdict.HOUSE_SILENT: Status.TAMPER_SUSPECTED,
}


class StatusMachine:
    """Debounced status of one pair; feed it one verdict per closed window.

    Grey windows are inconclusive (typically a load step whose edge uncertainty swamps the
    window): they neither extend nor break a run of excess, deficit or clean windows.
    """

    def __init__(self, config: DebounceConfig | None = None) -> None:
        self.config = config or DebounceConfig()
        self.status = Status.EVALUATING
        self._runs: dict[Verdict, int] = dict.fromkeys(Verdict, 0)
        self._cusum_excess = 0.0
        self._cusum_deficit = 0.0
        # Clean or grey windows in a row: a pair still evaluating is not called ok on grey
        # windows alone (a thief's first window often straddles a load step) until as many
        # of them have passed as an alarm needs.
        self._quiet = 0

    def restore(self, status: Status) -> None:
        """Continue from the status of an earlier run, before any window of this one: an alarm
        then needs its clean windows to clear, and is not raised again by the windows that
        confirm it."""
        if self.status is Status.EVALUATING and not any(self._runs.values()):
            self.status = status

    def interrupt(self) -> None:
        """A gap in the data between two runs: no run of windows goes on across it (as the
        missing windows would have broken it); the status and the CUSUM statistics stay."""
        self._runs = dict.fromkeys(Verdict, 0)
        self._quiet = 0

    def as_dict(self) -> dict[str, Any]:
        """Stored form: status, runs and CUSUM statistics (the configuration is not in it)."""
        return {
            "status": self.status.value,
            "runs": {verdict.value: run for verdict, run in self._runs.items() if run},
            "cusum": [self._cusum_excess, self._cusum_deficit],
            "quiet": self._quiet,
        }

    @classmethod
    def from_dict(cls, data: Any, config: DebounceConfig) -> StatusMachine:
        """Continue from the stored form under `config` (StateError if invalid)."""
        data = mapping(data, "debounce")
        machine = cls(config)
        machine.status = member(Status, data.get("status"), "status")
        for verdict, run in mapping(data.get("runs"), "runs").items():
            machine._runs[member(Verdict, verdict, "run")] = count(run, "run length")
        excess, deficit = sequence(data.get("cusum"), "cusum", 2)
        machine._cusum_excess = number(excess, "cusum excess", minimum=0)
        machine._cusum_deficit = number(deficit, "cusum deficit", minimum=0)
        # Absent in state stored before it existed: no quiet run then.
        machine._quiet = count(data.get("quiet", 0), "quiet windows")
        return machine

    @property
    def cusum(self) -> tuple[float, float]:
        """Accumulated excess and deficit statistics (thresholds), for diagnostics."""
        return self._cusum_excess, self._cusum_deficit

    def run(self, verdict: Verdict) -> int:
        """Length of the current run of this verdict (grey windows skipped)."""
        return self._runs[verdict]

    def step(self, verdict: Verdict, score: float = 0.0) -> Change | None:
        """Account one window. `score` is unexplained energy / trigger level (signed)."""
        cfg = self.config
        quiet = verdict in (Verdict.CLEAN, Verdict.GREY)
        self._quiet = self._quiet + 1 if quiet else 0
        if verdict is not Verdict.GREY:
            for kind in self._runs:
                self._runs[kind] = self._runs[kind] + 1 if kind is verdict else 0
        if verdict in (Verdict.EXCESS, Verdict.DEFICIT, Verdict.CLEAN, Verdict.GREY):
            # CUSUM with a reference of one threshold: only excess above it accumulates, so a
            # steady error just under the threshold never adds up to an alarm.
            self._cusum_excess = max(0.0, self._cusum_excess + score - 1.0)
            self._cusum_deficit = max(0.0, self._cusum_deficit - score - 1.0)

        target = self._raised(verdict)
        if target is not None and target is not self.status:
            return self._move(target, f"{verdict.value}_windows")
        if self.status in ALARMS:
            if self._runs[Verdict.CLEAN] >= cfg.clear_windows:
                return self._move(Status.OK, "clean_windows")
            return None
        if quiet:
            # One clean window decides (its band is narrowed by timing allowances); grey
            # windows are inconclusive one by one and decide only as a run.
            if self.status in UNDECIDED and (
                verdict is Verdict.CLEAN or self._quiet >= cfg.raise_windows
            ):
                return self._move(Status.OK, "evaluable")
            return None
        if (
            verdict is Verdict.NO_DATA
            and self._runs[Verdict.NO_DATA] >= cfg.raise_windows
            and self.status in (Status.OK, Status.EVALUATING)
        ):
            return self._move(Status.NOT_EVALUABLE, "no_data_windows")
        return None

    def _raised(self, verdict: Verdict) -> Status | None:
        cfg = self.config
        alarm = _ALARM_OF.get(verdict)
        if alarm is None:
            return None
        if verdict is Verdict.HOUSE_SILENT:
            return alarm if self._runs[verdict] >= cfg.tamper_windows else None
        if cfg.mode is DebounceMode.CUSUM:
            statistic = self._cusum_excess if verdict is Verdict.EXCESS else self._cusum_deficit
            return alarm if statistic >= cfg.cusum_h else None
        return alarm if self._runs[verdict] >= cfg.raise_windows else None

    def _move(self, status: Status, reason: str) -> Change:
        change = Change(self.status, status, reason)
        self.status = status
        if status is Status.OK:
            self._cusum_excess = self._cusum_deficit = 0.0
        return change
