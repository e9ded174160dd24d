"""The pair's reset-energy button."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import SemConfigEntry
from .entity import PairEntity
from .runtime import signal_new_pair

# Entities are pushed, never polled; commands may run side by side.
PARALLEL_UPDATES = 0

# Resetting erases both meters' counters for good: a maintenance step (a new meter, a new
# billing period), kept in the device's configuration section and off until the user enables it,
# so neither a stray click on the device page nor a generated dashboard can trigger it.
RESET_ENERGY = ButtonEntityDescription(
    key="reset_energy",
    translation_key="reset_energy",
    entity_category=EntityCategory.CONFIG,
    entity_registry_enabled_default=False,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the button to pairs with protocol meters (value-topics devices take no commands),
    of a pair added later too."""
    runtime = entry.runtime_data

    @callback
    def add_pair(subentry_id: str) -> None:
        pair = runtime.pairs[subentry_id]
        if pair.supports_reset:
            async_add_entities(
                [ResetEnergyButton(runtime, pair, RESET_ENERGY)], config_subentry_id=subentry_id
            )

    for subentry_id in runtime.pairs:
        add_pair(subentry_id)
    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_pair(entry.entry_id), add_pair))


class ResetEnergyButton(PairEntity, ButtonEntity):
    """Resets the energy counters of the pair's meters."""

    # Only its availability changes.
    _reading_roles = ()

    @property
    def available(self) -> bool:
        """Commands need the broker and online nodes."""
        return self._pair.commands_available

    async def async_press(self) -> None:
        """Send reset_energy to the line and house meters."""
        await self._pair.async_reset_energy()
