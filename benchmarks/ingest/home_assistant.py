"""The integration inside a real Home Assistant core consuming the virtual fleet.

Home Assistant runs in this process (the core the test suite uses, without HTTP or recorder),
with one config entry per prefix and one meter-pair subentry per virtual node. Every snapshot
changes its meter's power, so the state writes of the line and house power sensors count the
snapshots processed. Latency runs from the snapshot's publish (its `ts`) to that state write.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import tempfile
import time
from collections.abc import Callable
from types import TracebackType
from typing import Any

from homeassistant import loader
from homeassistant.config_entries import ConfigEntry, ConfigSubentryData
from homeassistant.const import EVENT_STATE_CHANGED, STATE_UNAVAILABLE
from homeassistant.core import Event, HomeAssistant, callback
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from benchmarks.ingest.fleet import VirtualNode, prefixes, virtual_nodes
from benchmarks.ingest.measure import Counter
from custom_components.smart_energy_meter.const import DOMAIN, SUBENTRY_PAIR
from custom_components.smart_energy_meter.fleet import protocol_meter_key

SETUP_TIMEOUT = 600.0


def _pair(node: VirtualNode) -> ConfigSubentryData:
    name = node.node.replace("-", " ").title()
    data = {
        "pair": "house",
        "name": name,
        "line": {"node": node.node, "meter": "line"},
        "house": {"node": node.node, "meter": "house"},
    }
    return ConfigSubentryData(
        data=data, subentry_type=SUBENTRY_PAIR, title=name, unique_id=f"{node.node}/house"
    )


def _entry(port: int, prefix: str, nodes: list[VirtualNode]) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title=prefix,
        data={"host": "127.0.0.1", "port": port, "username": None, "password": None,
              "tls": False, "ca_cert": None, "prefix": prefix},
        unique_id=f"127.0.0.1:{port}/{prefix}",
        subentries_data=[_pair(node) for node in nodes if node.prefix == prefix],
    )  # fmt: skip


class HomeAssistantConsumer:
    """A Home Assistant core with the integration set up against the fleet's broker."""

    def __init__(self, port: int, pairs: int, *, gc_freeze: bool = False) -> None:
        self.counter = Counter()
        self._port = port
        self._nodes = virtual_nodes(pairs)
        self._gc_freeze = gc_freeze
        self._stack = contextlib.AsyncExitStack()
        self._entries: list[ConfigEntry[Any]] = []
        self.hass: HomeAssistant | None = None
        self.setup_seconds = 0.0  # from the first setup to every pair showing readings
        self._started = 0.0

    async def __aenter__(self) -> HomeAssistantConsumer:
        # A throwaway config directory: the registries are written there, not into the venv.
        config_dir = self._stack.enter_context(tempfile.TemporaryDirectory())
        hass = await self._stack.enter_async_context(
            async_test_home_assistant(config_dir=config_dir)
        )
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # load custom_components/ from the repo
        self.hass = hass
        self._stack.push_async_callback(self._unload)
        self._started = time.monotonic()
        for prefix in prefixes(len(self._nodes)):
            entry = _entry(self._port, prefix, self._nodes)
            entry.add_to_hass(hass)
            self._entries.append(entry)
            assert await hass.config_entries.async_setup(entry.entry_id)
        self._watch(hass)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self._stack.aclose()

    async def _unload(self) -> None:
        assert self.hass is not None
        for entry in self._entries:
            await self.hass.config_entries.async_unload(entry.entry_id)
        await self.hass.async_block_till_done()

    def _watch(self, hass: HomeAssistant) -> None:
        # The power sensors whose states say every pair shows readings.
        watched: set[str] = set()
        counter = self.counter
        for entry in self._entries:
            fleet = entry.runtime_data.fleet
            for node in self._nodes:
                if node.prefix != entry.data["prefix"]:
                    continue
                slug = node.node.replace("-", "_")
                for entity, name in (("line_power", "line"), ("power", "house")):
                    meter = fleet.meters[protocol_meter_key(node.node, name)]
                    watched.add(f"sensor.{slug}_{entity}")
                    # Subscribed after the pair: called once the pair took the reading in and
                    # its entities wrote what they write (under the write policy, a reading may
                    # write no state at all), so this is when the snapshot is handled.
                    self._stack.callback(
                        fleet.async_subscribe(meter.change_key, _handled(counter, meter))
                    )
        self._watched = watched

        @callback
        def on_state(_event: Event[Any]) -> None:
            if counter.counting:
                counter.state_writes += 1

        self._stack.callback(hass.bus.async_listen(EVENT_STATE_CHANGED, on_state))

    async def ready(self, settle: float) -> None:
        """Wait until every pair shows readings, then `settle` more seconds (the registries'
        delayed saves, the backlog of the setup)."""
        assert self.hass is not None
        hass = self.hass
        deadline = time.monotonic() + SETUP_TIMEOUT
        while not all(entry.runtime_data.hub.connected for entry in self._entries) or any(
            (state := hass.states.get(entity_id)) is None or state.state == STATE_UNAVAILABLE
            for entity_id in self._watched
        ):
            if time.monotonic() > deadline:
                raise TimeoutError("the pairs' readings")
            await asyncio.sleep(0.25)
        self.setup_seconds = time.monotonic() - self._started
        await asyncio.sleep(settle)
        if self._gc_freeze:
            # What Home Assistant itself does not do: keep the start-up heap out of collections.
            gc.collect()
            gc.freeze()
            self._stack.callback(gc.unfreeze)


def _handled(counter: Counter, meter: Any) -> Callable[[], None]:
    @callback
    def handled() -> None:
        if counter.counting:
            counter.processed(meter.power_ts)

    return handled
