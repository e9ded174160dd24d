"""The meters' energy totals of one entry, kept across reloads and restarts.

Without them a reload would start each total from whatever the register says first, and a drop
held off before the reload would be shown after it, which the statistics count as a meter reset.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store

from .const import DOMAIN

STORAGE_VERSION: Final = 1
# Seconds between a total's change and its write: at most this much is lost by a crash, and a
# restart or reload writes at once.
SAVE_DELAY: Final = 60.0

type Counters = dict[str, dict[str, Any]]


class EnergyStore:
    """Loads the totals once, then writes them at most every SAVE_DELAY seconds."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.energy"
        )
        self.saved: Counters = {}
        self._pending = False

    async def async_load(self) -> None:
        """Read what the last run left."""
        data = await self._store.async_load()
        meters = data.get("meters") if isinstance(data, dict) else None
        self.saved = meters if isinstance(meters, dict) else {}

    @callback
    def async_schedule(self, source: Callable[[], Counters]) -> None:
        """Write `source()` soon. Not re-armed on every change: a meter that never stops
        counting would otherwise postpone the write forever."""
        if self._pending:
            return
        self._pending = True

        def data() -> dict[str, Any]:
            self._pending = False
            return {"meters": source()}

        self._store.async_delay_save(data, SAVE_DELAY)

    async def async_flush(self, source: Callable[[], Counters]) -> None:
        """Write now (the entry is being unloaded)."""
        self._pending = False
        await self._store.async_save({"meters": source()})

    async def async_remove(self) -> None:
        """Forget everything (the entry was deleted)."""
        await self._store.async_remove()
