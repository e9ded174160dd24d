"""Home Assistant's long-term statistics as the recorder compiles them, for the energy tests."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from homeassistant.components.recorder import Recorder
from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)


def five_minutes(moment: datetime) -> datetime:
    """The start of the 5-minute statistics period holding `moment`."""
    return moment.replace(minute=moment.minute - moment.minute % 5, second=0, microsecond=0)


async def compiled_statistics(
    hass: HomeAssistant, recorder: Recorder, started: datetime, entity_ids: set[str]
) -> dict[str, list[dict[str, Any]]]:
    """Compile every 5-minute period since `started` and return the rows of the entities."""
    await async_wait_recording_done(hass)
    start = five_minutes(started)
    period = start
    while period <= dt_util.utcnow():
        do_adhoc_statistics(hass, start=period)
        await async_wait_recording_done(hass)
        period += timedelta(minutes=5)
    rows: dict[str, list[dict[str, Any]]] = await recorder.async_add_executor_job(
        statistics_during_period, hass, start, None, entity_ids, "5minute", None, {"sum", "state"}
    )
    return rows
