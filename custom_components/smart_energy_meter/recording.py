"""What the recorder keeps of an entry's measurements.

States are written on significant changes (`semcore.state_writes`); the pending ones at each
minute's heartbeat, a few seconds before the minute ends, so the last state of every statistics
period holds the counter as it stood at its end. The recorder compiles statistics from states,
so for the measurements whose states were held back, the statistics of every reading
(`semcore.period_stats`) are written over the recorder's own once it compiled a period.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Final

from homeassistant.components.sensor.const import UNIT_CONVERTERS
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_utc_time_change

from .semcore.period_stats import HOURLY_S, SHORT_TERM_S, PeriodStats, PeriodSummary
from .semcore.state_writes import EVERY_CHANGE, Deadband, Policy, StateGate

if TYPE_CHECKING:
    from homeassistant.components.recorder.models import StatisticData, StatisticMetaData

_LOGGER = logging.getLogger(__name__)

RECORDER: Final = "recorder"
# Seconds into the minute of the heartbeat: before the minute, and so each 5-minute period, ends.
HEARTBEAT_SECOND: Final = 57
# Seconds after a period ends: the recorder compiles it 10 s after; this comes after that.
IMPORT_SECOND: Final = 40


@dataclass(slots=True, eq=False)
class Measurement:
    """One measurement's write gate and, when it has statistics of its own, their periods."""

    gate: StateGate
    flush: Callable[[], None]
    short_term: PeriodStats | None = None
    hourly: PeriodStats | None = None
    statistic: Callable[[], tuple[str, str | None, str | None] | None] = field(default=lambda: None)

    def read(self, value: float | None, now: float) -> None:
        """Every reading, written or not, counts in the statistics."""
        if self.short_term is not None and self.hourly is not None:
            self.short_term.add(value, now)
            self.hourly.add(value, now)


class Recording:
    """The write policy of one entry and its measurements' heartbeat and statistics."""

    def __init__(self, hass: HomeAssistant, policy: Policy) -> None:
        self._hass = hass
        self.policy = policy
        self._measurements: set[Measurement] = set()
        self._unsubs: list[CALLBACK_TYPE] = []

    def measurement(
        self,
        deadband: Deadband,
        flush: Callable[[], None],
        statistic: Callable[[], tuple[str, str | None, str | None] | None] | None = None,
    ) -> tuple[Measurement, CALLBACK_TYPE]:
        """A gate for a measurement; `statistic` (entity id, device class, unit; None while
        not known) when the statistics are to come from every reading."""
        # Without the recorder there are no statistics to write: nothing to keep.
        kept = (
            self.policy is Policy.SIGNIFICANT
            and statistic is not None
            and RECORDER in self._hass.config.components
        )
        measurement = Measurement(
            StateGate(deadband if self.policy is Policy.SIGNIFICANT else EVERY_CHANGE),
            flush,
            PeriodStats(SHORT_TERM_S) if kept else None,
            PeriodStats(HOURLY_S) if kept else None,
        )
        if statistic is not None:
            measurement.statistic = statistic
        self._measurements.add(measurement)
        return measurement, lambda: self._measurements.discard(measurement)

    @callback
    def async_start(self) -> None:
        """Start the heartbeat, and the statistics when the recorder runs."""
        if self.policy is Policy.EVERY_READING:
            return
        self._unsubs.append(
            async_track_utc_time_change(self._hass, self._heartbeat, second=HEARTBEAT_SECOND)
        )
        if RECORDER in self._hass.config.components:
            self._unsubs.append(
                async_track_utc_time_change(
                    self._hass,
                    self._import,
                    minute=range(0, 60, 5),
                    second=IMPORT_SECOND,
                )
            )

    @callback
    def async_stop(self) -> None:
        """Stop the heartbeat and the statistics."""
        while self._unsubs:
            self._unsubs.pop()()

    @callback
    def async_heartbeat(self) -> None:
        """Write the values held back."""
        for measurement in list(self._measurements):
            if measurement.gate.pending:
                measurement.flush()

    @callback
    def _heartbeat(self, _now: datetime) -> None:
        # A callback: a plain function would run in a worker thread, off the event loop.
        self.async_heartbeat()

    @callback
    def _import(self, _now: datetime) -> None:
        self.async_write_statistics(time.time())

    @callback
    def async_write_statistics(self, now: float) -> None:
        """Write the statistics of every period that ended by `now` (Unix time) over the
        recorder's own."""
        for measurement in self._measurements:
            if measurement.short_term is None or measurement.hourly is None:
                continue
            short_term = measurement.short_term.close(now)
            hourly = measurement.hourly.close(now)
            if (statistic := measurement.statistic()) is not None:
                _async_write(self._hass, statistic, short_term, hourly)


def _async_write(
    hass: HomeAssistant,
    statistic: tuple[str, str | None, str | None],
    short_term: list[PeriodSummary],
    hourly: list[PeriodSummary],
) -> None:
    """Write the periods over the recorder's own rows of the entity."""
    if not short_term and not hourly:
        return
    from homeassistant.components.recorder.db_schema import StatisticsShortTerm
    from homeassistant.components.recorder.models import StatisticMeanType
    from homeassistant.components.recorder.statistics import (
        STATISTIC_UNIT_TO_UNIT_CONVERTER,
        async_import_statistics,
    )
    from homeassistant.helpers.recorder import get_instance

    entity_id, device_class, unit = statistic
    unit_class: str | None = None
    if (
        device_class
        and (converter := UNIT_CONVERTERS.get(device_class))
        and unit in converter.VALID_UNITS
    ) or (converter := STATISTIC_UNIT_TO_UNIT_CONVERTER.get(unit)):
        unit_class = converter.UNIT_CLASS
    # As the sensor's own compilation describes the statistic, so that the two agree.
    metadata: StatisticMetaData = {
        "has_sum": False,
        "mean_type": StatisticMeanType.ARITHMETIC,
        "name": None,
        "source": RECORDER,
        "statistic_id": entity_id,
        "unit_class": unit_class,
        "unit_of_measurement": unit,
    }
    if short_term:
        get_instance(hass).async_import_statistics(
            metadata, [_row(summary) for summary in short_term], StatisticsShortTerm
        )
    if hourly:
        async_import_statistics(hass, metadata, [_row(summary) for summary in hourly])
    _LOGGER.debug(
        "%s: statistics of every reading for %d + %d periods",
        entity_id,
        len(short_term),
        len(hourly),
    )


def _row(summary: PeriodSummary) -> StatisticData:
    return {
        "start": datetime.fromtimestamp(summary.start, UTC),
        "mean": summary.mean,
        "min": summary.min,
        "max": summary.max,
    }
