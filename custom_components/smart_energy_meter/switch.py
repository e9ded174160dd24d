"""The pair's relay: switched only when the node confirms the read-back state."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import SemConfigEntry
from .entity import PairEntity
from .runtime import signal_new_pair
from .semcore.protocol import RelayState

# Entities are pushed, never polled; commands may run side by side.
PARALLEL_UPDATES = 0

RELAY = SwitchEntityDescription(key="relay", translation_key="relay")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the relay of each pair that has one (of a pair added later too)."""
    runtime = entry.runtime_data

    @callback
    def add_pair(subentry_id: str) -> None:
        pair = runtime.pairs[subentry_id]
        if pair.relay is not None:
            async_add_entities([RelaySwitch(runtime, pair, RELAY)], config_subentry_id=subentry_id)

    for subentry_id in runtime.pairs:
        add_pair(subentry_id)
    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_pair(entry.entry_id), add_pair))


class RelaySwitch(PairEntity, SwitchEntity):
    """The house's relay; its state is what the node last confirmed."""

    # The relay's state and availability, not the meters' readings.
    _reading_roles = ()

    def _shown_value(self) -> object:
        return self.is_on

    @property
    def available(self) -> bool:
        """Commands need the broker and an online node."""
        return self._pair.relay_available

    @property
    def is_on(self) -> bool | None:
        """The confirmed state, unknown before the first confirmation."""
        relay = self._pair.relay
        if relay is None or relay.state is None:
            return None
        return relay.state is RelayState.ON

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Switch on and wait for the confirmation."""
        await self._pair.async_set_relay(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Switch off and wait for the confirmation."""
        await self._pair.async_set_relay(False)
