"""The integration inside a real Home Assistant core consuming the virtual fleet.

Home Assistant runs in this process (the same core the test suite uses, without HTTP), with one
config entry and one meter-pair subentry per virtual node. Every snapshot the fleet publishes
changes a power or energy state, so state writes count processed snapshots. Latency is the time
from the snapshot's publish (its `ts`) to the state write.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from homeassistant import loader
from homeassistant.config_entries import ConfigSubentryData
from homeassistant.const import EVENT_STATE_CHANGED
from homeassistant.core import Event, HomeAssistant, callback
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)

from benchmarks.ingest.ceiling import Figures, cpu_time
from benchmarks.ingest.fleet import node_ids
from custom_components.smart_energy_meter.const import DOMAIN, SUBENTRY_PAIR
from custom_components.smart_energy_meter.fleet import protocol_meter_key


def _pair(node: str) -> dict[str, Any]:
    return {
        "pair": "house",
        "name": node.replace("-", " ").title(),
        "line": {"node": node, "meter": "line"},
        "house": {"node": node, "meter": "house"},
    }


def _entity_meters(pairs: int) -> dict[str, str]:
    """Entity id → meter key of the states that change with every snapshot."""
    watched = {}
    for node in node_ids(pairs):
        slug = node.replace("-", "_")
        watched[f"sensor.{slug}_line_power"] = protocol_meter_key(node, "line")
        watched[f"sensor.{slug}_energy"] = protocol_meter_key(node, "house")
    return watched


async def _wait(predicate: Any, what: str, within: float) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError(what)
        await asyncio.sleep(0.05)


async def consume(port: int, prefix: str, pairs: int, warmup: float, seconds: float) -> Figures:
    """Set the integration up against the broker and measure it for `seconds` after `warmup`."""
    async with async_test_home_assistant() as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)  # load custom_components/ from the repo
        return await _measure(hass, port, prefix, pairs, warmup, seconds)


async def _measure(
    hass: HomeAssistant, port: int, prefix: str, pairs: int, warmup: float, seconds: float
) -> Figures:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="bench",
        data={"host": "127.0.0.1", "port": port, "username": None, "password": None,
              "tls": False, "ca_cert": None, "prefix": prefix},
        unique_id=f"127.0.0.1:{port}/{prefix}",
        subentries_data=[
            ConfigSubentryData(data=_pair(node), subentry_type=SUBENTRY_PAIR,
                               title=_pair(node)["name"], unique_id=f"{node}/house")
            for node in node_ids(pairs)
        ],
    )  # fmt: skip
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await _wait(lambda: entry.runtime_data.hub.connected, "broker connection", 60)
    watched = _entity_meters(pairs)
    meters = entry.runtime_data.fleet.meters
    latencies: list[float] = []
    count = 0
    measuring = False

    @callback
    def on_state(event: Event[Any]) -> None:
        nonlocal count
        key = watched.get(event.data["entity_id"])
        if not measuring or key is None or event.data["new_state"] is None:
            return
        meter = meters.get(key)
        ts = getattr(meter, "power_ts", None)
        count += 1
        if ts is not None:
            latencies.append((time.time() - ts) * 1000)

    unsub = hass.bus.async_listen(EVENT_STATE_CHANGED, on_state)
    await asyncio.sleep(warmup)
    measuring = True
    cpu0 = cpu_time()
    await asyncio.sleep(seconds)
    measuring = False
    cpu = cpu_time() - cpu0
    unsub()
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    return Figures(count, seconds, cpu, latencies)
