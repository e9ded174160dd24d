"""One meter pair's detection: which reading goes to which detector, and what the verdict did.

Every reading of either meter goes to the paper's instantaneous rule (the theft percentage),
which evaluates the two readings of one poll cycle once both are in, and to the windowed energy
balance (status, unaccounted energy, windowed mismatch), which integrates each meter on its own
timestamps. `follows_balance`
says which of the two decides the theft verdict and its events. `PairMonitor.update` takes a
meter's newest state and `tick` lets the balance close windows while both meters are silent;
both answer with the verdict changes to announce. Neither ever switches a relay.

Pure Python: no Home Assistant import; every call carries its own time.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Final

from .energy_balance import Evaluation, MeterReading, Status, TheftEngine, Transition
from .instant_rule import PairDetector, TheftEvent
from .instant_rule import Transition as PaperTransition
from .meters import ProtocolMeter, Quantity, ValueTopicsMeter
from .protocol import Role
from .state import StateError, flag, mapping, number, optional_number, sequence

_LOGGER = logging.getLogger(__name__)

# How far after a meter's last reading its unavailability is marked for the balance (node clock).
UNAVAILABLE_AFTER_S: Final = 0.001
# Version of the stored form (`PairMonitor.as_dict`); another version is not continued from.
STATE_VERSION: Final = 1


@dataclass(frozen=True, slots=True)
class TheftChange:
    """The theft verdict changed, by whichever detector the pair follows.

    mismatch is the share of the line's power (or the window's line energy) that the house
    meter does not account for, (line - house) / line x 100: the paper's instantaneous
    mismatch, or the balance window's unexplained share (after cable loss). 18 % of the line
    unaccounted is the line 22 % above the house. The powers are instantaneous or the window's
    means. status is the
    balance's new status ("theft", "ok", ...) or, for the paper's rule, "theft" or "ok".
    """

    event: TheftEvent
    mismatch: float | None
    line_power: float | None
    house_power: float | None
    status: str


class Outcome(StrEnum):
    """What a change of the theft verdict amounts to, as a person reads it: the event entity's
    event types, one translated sentence each."""

    DETECTED = TheftEvent.DETECTED.value
    CLEARED = TheftEvent.CLEARED.value  # the meters agree again under load
    NO_LOAD = "no_load"  # cleared by windows in which nothing drew power: nothing was compared
    METER_FAULT = Status.METER_FAULT.value  # the balance reports a meter fault instead
    TAMPER_SUSPECTED = Status.TAMPER_SUSPECTED.value  # ... or tampering instead
    NOT_EVALUABLE = Status.NOT_EVALUABLE.value


def outcome(change: TheftChange, min_load: float) -> Outcome:
    """What `change` amounts to; `min_load` is the line power (W) below which nothing is
    compared (the paper rule's minimum load)."""
    if change.event is TheftEvent.DETECTED:
        return Outcome.DETECTED
    if change.status == Status.OK.value:
        # The paper's rule only clears above the minimum load; the balance also clears on
        # windows of a house switched off, which balance at 0 Wh and prove nothing.
        no_load = change.line_power is not None and change.line_power < min_load
        return Outcome.NO_LOAD if no_load else Outcome.CLEARED
    try:
        return Outcome(change.status)
    except ValueError:
        return Outcome.NOT_EVALUABLE


class PairMonitor:
    """Both detectors of one pair and what has been fed to them."""

    def __init__(
        self, name: str, detector: PairDetector, engine: TheftEngine, *, follows_balance: bool
    ) -> None:
        self.name = name  # for log lines
        self.detector = detector
        self.engine = engine
        self.follows_balance = follows_balance
        self.evaluation: Evaluation = engine.evaluation()
        self._seen: dict[Role, int] = dict.fromkeys(Role, 0)
        self._fed: dict[Role, bool] = dict.fromkeys(Role, False)
        # Balance: the last node timestamp fed per meter, and whether it is live.
        self._engine_ts: dict[Role, float | None] = dict.fromkeys(Role)
        self._engine_live: dict[Role, bool] = dict.fromkeys(Role, False)
        # The newest reading's timestamp and when it arrived: the node's clock as the balance's
        # tick sees it, whatever the offset between the two clocks.
        self._node_clock: tuple[float, float] | None = None

    def balance_shown(self) -> tuple[object, ...]:
        """What the balance's entities show besides availability: status, unaccounted energy,
        the last window and its mismatch."""
        evaluation = self.evaluation
        return (
            evaluation.status,
            evaluation.unaccounted_wh,
            evaluation.window,
            evaluation.window_mismatch_pct,
        )

    def restore_unaccounted(self, wh: float) -> None:
        """Continue the unaccounted-energy total of an earlier run (before anything is fed)."""
        self.engine = TheftEngine(
            self.engine.config, unaccounted_wh=self.engine.unaccounted_wh + wh
        )
        self.evaluation = self.engine.evaluation()

    def restore_status(self, status: Status) -> None:
        """Continue from the balance's status of an earlier run (before anything is fed): a
        theft that goes on is not announced again, one that ended is cleared as usual."""
        self.engine.restore_status(status)
        self.evaluation = self.engine.evaluation()

    def as_dict(self) -> dict[str, Any]:
        """Stored form of what a later run continues from: the balance (open windows,
        debounce, status, total, commissioning) and the node clock it runs on. The paper's
        rule is not in it: its verdict is instantaneous and is seen again within seconds."""
        return {
            "version": STATE_VERSION,
            "balance": self.engine.as_dict(),
            "fed": {role.value: [self._engine_ts[role], self._engine_live[role]] for role in Role},
            "node_clock": None if self._node_clock is None else list(self._node_clock),
        }

    def restore(self, data: Mapping[str, Any] | None, now: float) -> bool:
        """Continue from the stored form of an earlier run, before anything is fed; `now` is
        the wall-clock time. False when there is none, or when it is unusable (corrupt,
        foreign, another version: one log line says why, and the pair starts afresh).

        Open windows continue only if the data did not stop for longer than a reading is held
        (a reload); after a longer gap (Home Assistant was down) they could never be complete
        and are discarded, while the status, the total and commissioning go on.
        """
        if data is None:
            return False
        try:
            stored = mapping(data, "pair state")
            if stored.get("version") != STATE_VERSION:
                raise StateError(f"version {stored.get('version')!r}, not {STATE_VERSION}")
            engine = TheftEngine.from_dict(stored.get("balance"), self.engine.config)
            fed = mapping(stored.get("fed"), "fed")
            engine_ts: dict[Role, float | None] = {}
            engine_live: dict[Role, bool] = {}
            for role in Role:
                ts, live = sequence(fed.get(role.value), "fed", 2)
                engine_ts[role] = optional_number(ts, "fed time", minimum=0)
                engine_live[role] = flag(live, "fed live")
            node_clock: tuple[float, float] | None = None
            if (clock := stored.get("node_clock")) is not None:
                node_ts, received = sequence(clock, "node clock", 2)
                node_clock = (number(node_ts, "node time"), number(received, "arrival time"))
        except StateError as err:
            _LOGGER.warning("%s: stored detection state ignored: %s", self.name, err)
            return False
        self.engine = engine
        if node_clock is not None and abs(now - node_clock[1]) <= engine.config.max_hold_s:
            self._engine_ts, self._engine_live = engine_ts, engine_live
            self._node_clock = node_clock
        elif engine.open_since is not None:
            _LOGGER.debug(
                "%s: the balance's open window is not continued: no reading for %.0f s",
                self.name,
                now - node_clock[1] if node_clock is not None else float("nan"),
            )
            engine.discard_windows()
        self.evaluation = engine.evaluation()
        return True

    def update(
        self, role: Role, meter: ProtocolMeter | ValueTopicsMeter, live: bool, now: float
    ) -> list[TheftChange]:
        """Feed the newest state of `role`'s meter; `live`: its power is current. `now` is the
        wall-clock time it is seen at."""
        changes: list[TheftChange] = []
        if not live:
            if self._fed[role]:
                # A gap in the data: the debounce must start over once both are back.
                self._fed = dict.fromkeys(Role, False)
                self.detector.interrupt()
            self._mark_unavailable(role, changes)
            return changes
        if meter.samples == self._seen[role]:
            return changes
        self._seen[role] = meter.samples
        self._fed[role] = True
        value = meter.value
        power = value(Quantity.POWER)
        assert power is not None
        ts = meter.power_ts
        assert ts is not None
        update = self.detector.update_line if role is Role.LINE else self.detector.update_house
        # The rule waits for the other meter's reading of the same poll cycle.
        transition = update(power, ts, meter.interval)
        if transition is not None and not self.follows_balance:
            changes.append(_paper_change(transition))
        # The balance applies the calibration gains itself: it gets the raw readings.
        reading = MeterReading(
            ts=ts,
            power_w=power,
            voltage_v=value(Quantity.VOLTAGE),
            current_a=value(Quantity.CURRENT),
            energy_wh=value(Quantity.ENERGY),
        )
        self._engine_live[role] = True
        self._engine_ts[role] = ts
        if self._node_clock is None or ts >= self._node_clock[0]:
            self._node_clock = (ts, now)
        self._balance(self.engine.feed(role, reading), changes, role)
        return changes

    def tick(self, now: float) -> list[TheftChange]:
        """Let the balance close windows while both meters are silent (`now`: wall clock)."""
        changes: list[TheftChange] = []
        if self._node_clock is None:
            return changes  # nothing fed yet: nothing to close
        node_ts, received = self._node_clock
        self._balance(self.engine.tick(node_ts + (now - received)), changes)
        return changes

    def _mark_unavailable(self, role: Role, changes: list[TheftChange]) -> None:
        """Tell the balance the meter stopped, just after its last reading (its own clock)."""
        last = self._engine_ts[role]
        if not self._engine_live[role] or last is None:
            return
        self._engine_live[role] = False
        ts = last + UNAVAILABLE_AFTER_S
        self._engine_ts[role] = ts
        self._balance(self.engine.feed(role, MeterReading(ts, available=False)), changes, role)

    def _balance(
        self, evaluation: Evaluation, changes: list[TheftChange], role: Role | None = None
    ) -> None:
        if evaluation.rejected is not None:
            _LOGGER.debug(
                "%s: %s reading not used by the balance: %s", self.name, role, evaluation.rejected
            )
        self.evaluation = evaluation
        for transition in evaluation.transitions:
            window = transition.window
            _LOGGER.info(
                "%s: energy balance %s -> %s (%s, window mismatch %s %%)",
                self.name,
                transition.previous,
                transition.status,
                transition.reason,
                None if window.unexplained_pct is None else round(window.unexplained_pct, 2),
            )
            if self.follows_balance and Status.THEFT in (transition.previous, transition.status):
                changes.append(_balance_change(transition))


def _paper_change(transition: PaperTransition) -> TheftChange:
    detected = transition.event is TheftEvent.DETECTED
    return TheftChange(
        transition.event,
        transition.mismatch,
        transition.line_power,
        transition.house_power,
        Status.THEFT.value if detected else Status.OK.value,
    )


def _balance_change(transition: Transition) -> TheftChange:
    """Into theft is "detected"; out of it, whatever the new status, "cleared"."""
    window = transition.window
    hours = (window.end - window.start) / 3600.0

    def mean_power(wh: float | None) -> float | None:
        return None if wh is None else round(wh / hours, 1)

    return TheftChange(
        TheftEvent.DETECTED if transition.status is Status.THEFT else TheftEvent.CLEARED,
        window.unexplained_pct,
        mean_power(window.line_wh),
        mean_power(window.house_wh),
        transition.status.value,
    )
