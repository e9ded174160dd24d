"""The pair's reset-energy button."""

from __future__ import annotations

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from . import SemConfigEntry
from .entity import PairEntity

# Entities are pushed, never polled; commands may run side by side.
PARALLEL_UPDATES = 0

RESET_ENERGY = ButtonEntityDescription(
    key="reset_energy",
    translation_key="reset_energy",
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the button to pairs with protocol meters (value-topics devices take no commands)."""
    runtime = entry.runtime_data
    for pair in runtime.pairs.values():
        if pair.supports_reset:
            async_add_entities(
                [ResetEnergyButton(runtime, pair, RESET_ENERGY)],
                config_subentry_id=pair.subentry_id,
            )


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
