"""Logbook descriptions of the theft events."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import LOGBOOK_ENTRY_MESSAGE, LOGBOOK_ENTRY_NAME
from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .const import (
    ATTR_MISMATCH,
    ATTR_PAIR,
    ATTR_STATUS,
    DOMAIN,
    EVENT_THEFT_CLEARED,
    EVENT_THEFT_DETECTED,
)


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event], dict[str, str]]], None],
) -> None:
    """Describe theft_detected and theft_cleared."""

    @callback
    def describe(event: Event[Any]) -> dict[str, str]:
        data = event.data
        name = str(data.get(ATTR_PAIR, ""))
        if (device_id := data.get(ATTR_DEVICE_ID)) and (
            device := dr.async_get(hass).async_get(device_id)
        ):
            name = device.name_by_user or device.name or name
        mismatch = data.get(ATTR_MISMATCH)
        if event.event_type == EVENT_THEFT_DETECTED:
            message = f"theft detected: line power {mismatch} % above house power"
        elif mismatch is None:
            # The balance left theft for another alarm (tamper suspected, meter fault).
            message = f"theft cleared: {data.get(ATTR_STATUS, 'status changed')}"
        else:
            message = f"theft cleared: mismatch back to {mismatch} %"
        return {LOGBOOK_ENTRY_NAME: name, LOGBOOK_ENTRY_MESSAGE: message}

    async_describe_event(DOMAIN, EVENT_THEFT_DETECTED, describe)
    async_describe_event(DOMAIN, EVENT_THEFT_CLEARED, describe)
