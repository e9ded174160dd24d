"""What one entry keeps across reloads and restarts: the meters' energy totals and each pair's
detection state (open balance windows, debounce, status, commissioning in progress).

Without the totals a reload would start each total from whatever the register says first, and a
drop held off before the reload would be shown after it, which the statistics count as a meter
reset. Without the detection state a reload or restart would show no verdict for a minute, then
a false all-clear, and announce a theft that went on as a new one.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Final

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.storage import Store

from .const import DOMAIN

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION: Final = 1
# Seconds between a change and its write: at most this much is lost by a crash; an unload
# writes at once, and so does Home Assistant's final write when it stops.
SAVE_DELAY: Final = 60.0

type Counters = dict[str, dict[str, Any]]
# Each pair's stored detection state (`PairMonitor.as_dict`), by subentry id.
type PairStates = dict[str, dict[str, Any]]


class StateStore:
    """Loads what the last run left once, then writes at most every SAVE_DELAY seconds."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        # The key of the first version, which kept only the energy totals.
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.energy"
        )
        self.saved_meters: Counters = {}
        self.saved_pairs: PairStates = {}
        self._meters: Callable[[], Counters] = dict
        self._pairs: Callable[[], PairStates] = dict
        self._pending = False

    async def async_load(self) -> None:
        """Read what the last run left; a part that is not what it should be is ignored."""
        data = await self._store.async_load()
        if data is None:
            return
        meters = data.get("meters", {}) if isinstance(data, dict) else None
        pairs = data.get("pairs", {}) if isinstance(data, dict) else None
        if not isinstance(meters, dict) or not isinstance(pairs, dict):
            _LOGGER.warning("Stored state of %s ignored: not what this version stores", self.key)
            return
        self.saved_meters = meters
        self.saved_pairs = pairs

    @property
    def key(self) -> str:
        """The storage key (the file's name)."""
        return self._store.key

    def bind(self, meters: Callable[[], Counters], pairs: Callable[[], PairStates]) -> None:
        """Where each write takes the totals and the pairs' states from."""
        self._meters = meters
        self._pairs = pairs

    def _data(self) -> dict[str, Any]:
        self._pending = False
        return {"meters": self._meters(), "pairs": self._pairs()}

    @callback
    def async_schedule(self) -> None:
        """Write soon. Not re-armed on every change: state that never stops changing would
        otherwise postpone the write forever."""
        if self._pending:
            return
        self._pending = True
        self._store.async_delay_save(self._data, SAVE_DELAY)

    async def async_flush(self) -> None:
        """Write now (the entry is being unloaded)."""
        await self._store.async_save(self._data())

    async def async_remove(self) -> None:
        """Forget everything (the entry was deleted)."""
        await self._store.async_remove()
