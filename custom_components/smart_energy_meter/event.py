"""The pair's theft event entity: one event per change of the theft verdict, its type saying
what the change amounts to (`semcore.pair_monitor.Outcome`). Its logbook row, translated by
the frontend, is the sentence a person reads for that change."""

from __future__ import annotations

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import SemConfigEntry
from .const import ATTR_HOUSE_POWER, ATTR_LINE_POWER, ATTR_MISMATCH, ATTR_STATUS
from .entity import PairEntity
from .runtime import signal_new_pair
from .semcore.pair_monitor import Outcome, TheftChange, outcome

# Entities are pushed, never polled.
PARALLEL_UPDATES = 0

THEFT_EVENT = EventEntityDescription(
    key="theft_event",
    translation_key="theft",
    event_types=[kind.value for kind in Outcome],
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add each pair's event entity (of a pair added later too)."""
    runtime = entry.runtime_data

    @callback
    def add_pair(subentry_id: str) -> None:
        pair = runtime.pairs[subentry_id]
        async_add_entities(
            [TheftEventEntity(runtime, pair, THEFT_EVENT)], config_subentry_id=subentry_id
        )

    for subentry_id in runtime.pairs:
        add_pair(subentry_id)
    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_pair(entry.entry_id), add_pair))


class TheftEventEntity(PairEntity, EventEntity):
    """Fires when the verdict of the detector the pair follows changes."""

    # Its state changes with a transition (written then) or its availability, not a reading.
    _reading_roles = ()

    async def async_added_to_hass(self) -> None:
        """Follow the pair's transitions."""
        await super().async_added_to_hass()
        self.async_on_remove(self._pair.async_add_transition_listener(self._handle_transition))

    @property
    def available(self) -> bool:
        """Events can arrive while the broker is connected."""
        return self._pair.hub_connected

    @callback
    def _handle_transition(self, change: TheftChange) -> None:
        self._trigger_event(
            outcome(change, self._pair.detector.options.min_load).value,
            {
                ATTR_MISMATCH: None if change.mismatch is None else round(change.mismatch, 2),
                ATTR_LINE_POWER: change.line_power,
                ATTR_HOUSE_POWER: change.house_power,
                ATTR_STATUS: change.status,
            },
        )
        self.async_write_ha_state()
