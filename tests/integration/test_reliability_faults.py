"""Faults with real parts: a real mosquitto killed and restarted, the firmware simulator
publishing at 1 Hz, the integration in Home Assistant.

SEM_OUTAGES sets the number of broker outages (20 by default).
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_energy_meter.broker import BrokerSettings, connected, create_client
from tests.firmware.e2e import SimNode
from tests.integration.common import (
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.integration.simnode import (
    StateLog,
    requires_micropython,
    setup_sim_entry,
    sim_meters,
    start_node,
    write_scenario,
)
from tests.mosquitto import Broker

pytestmark = requires_micropython

INTERVAL = 1.0  # the simulator publishes every meter once a second
OUTAGES = int(os.environ.get("SEM_OUTAGES", "20"))
SHORT_OUTAGE = 0.5
# Longer than three intervals: the meters also go stale while the broker is away.
LONG_OUTAGE = 3.5
ENERGY = ("sensor.house_1_energy", "sensor.house_1_line_energy")
RELAY = "switch.house_1_relay"
NODE_STATUS = "binary_sensor.sim_node_status"
INTEGRATION_LOGGER = "custom_components.smart_energy_meter"


@pytest.fixture
def sim_nodes() -> Iterator[list[SimNode]]:
    """Holds the simulated nodes a test starts, and stops them at the end."""
    nodes: list[SimNode] = []
    yield nodes
    for node in nodes:
        node.stop()


def _entities(hass: HomeAssistant, entry: MockConfigEntry) -> list[str]:
    registry = er.async_get(hass)
    return sorted(
        e.entity_id
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if e.disabled_by is None
    )


def _all(hass: HomeAssistant, entity_ids: list[str], test: Callable[[str], bool]) -> bool:
    states = [hass.states.get(entity_id) for entity_id in entity_ids]
    return all(state is not None and test(state.state) for state in states)


def _count(caplog: pytest.LogCaptureFixture, text: str) -> int:
    return sum(
        r.name.startswith(INTEGRATION_LOGGER)
        and r.getMessage().startswith("Broker ")
        and text in r.getMessage()
        for r in caplog.records
    )


async def _sleep(hass: HomeAssistant, seconds: float) -> None:
    await asyncio.sleep(seconds)
    await hass.async_block_till_done()


def _assert_never_decreases(log: StateLog, entity_id: str) -> list[float]:
    values = log.numbers(entity_id)
    assert len(values) > 5, (entity_id, values)
    drops = [(a, b) for a, b in itertools.pairwise(values) if b < a]
    assert drops == [], f"{entity_id} went down: {drops}"
    return values


def _integration_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith(INTEGRATION_LOGGER) and r.levelno >= logging.WARNING
    ]


async def test_broker_outages(
    hass: HomeAssistant,
    own_mosquitto: Broker,
    prefix: str,
    tmp_path: Path,
    sim_nodes: list[SimNode],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=INTEGRATION_LOGGER)
    node = await start_node(own_mosquitto, prefix, write_scenario(tmp_path))
    sim_nodes.append(node)
    entry = await setup_sim_entry(hass, own_mosquitto, prefix)
    hub = entry.runtime_data.hub
    log = StateLog(hass)
    # The node's own entities appear with its first announce, after the entry is set up.
    await wait_for(
        hass, lambda: hass.states.get(NODE_STATUS) is not None, "the node's entities", within=15
    )
    entities = _entities(hass, entry)
    assert len(entities) >= 15  # window mismatch, meter fault and IP address are off by default
    assert set(ENERGY) | {RELAY, NODE_STATUS} <= set(entities)
    meters = list(sim_meters(entry).values())
    loop = asyncio.get_running_loop()

    def recovered(since: float) -> bool:
        # Connected, every entity back, and both meters read after the broker returned.
        return (
            hub.connected
            and _all(hass, entities, lambda s: s != STATE_UNAVAILABLE)
            and state_of(hass, NODE_STATUS) == "on"
            and all(m.snapshot is not None and m.snapshot.ts >= since for m in meters)
        )

    await wait_for(hass, lambda: recovered(0.0), "the first readings", within=15)
    await wait_state(hass, RELAY, "on")
    recoveries: list[float] = []
    for outage in range(OUTAGES):
        lost, back = _count(caplog, "is unavailable"), _count(caplog, "available again")
        own_mosquitto.kill()
        await wait_for(
            hass,
            lambda: not hub.connected and _all(hass, entities, lambda s: s == STATE_UNAVAILABLE),
            f"every entity unavailable in outage {outage + 1}",
            within=2.0,
        )
        await _sleep(hass, LONG_OUTAGE if outage % 5 == 4 else SHORT_OUTAGE)
        assert _all(hass, entities, lambda s: s == STATE_UNAVAILABLE)
        own_mosquitto.start()
        returned_at, returned = time.time(), loop.time()
        await wait_for(
            hass,
            lambda: recovered(returned_at),  # noqa: B023 - called within this iteration
            f"the recovery after outage {outage + 1}",
            within=6 * INTERVAL,
        )
        recoveries.append(loop.time() - returned)
        # Said once per outage: one line when it went, one when it came back.
        assert _count(caplog, "is unavailable") == lost + 1
        assert _count(caplog, "available again") == back + 1
        await _sleep(hass, INTERVAL)  # some readings between the outages

    print(
        f"\n{OUTAGES} broker outages survived; back after the broker returned: "
        f"min {min(recoveries):.2f} s, median {sorted(recoveries)[len(recoveries) // 2]:.2f} s, "
        f"max {max(recoveries):.2f} s (limit {2 * INTERVAL:.1f} s)"
    )
    assert max(recoveries) <= 2 * INTERVAL, recoveries
    for entity_id in (*ENERGY, "sensor.house_1_unaccounted_energy"):
        _assert_never_decreases(log, entity_id)
    # The relay was on from boot and was never switched: no command, one pin write (boot).
    assert set(log.states(RELAY)) == {"on", STATE_UNAVAILABLE}
    assert "commanded" not in node.output()
    stats = await node.stats()
    assert stats["relay_writes"] == "r1=1"
    assert int(stats["connections"]) == OUTAGES + 1
    assert _integration_problems(caplog) == []
    log.stop()
    await hass.config_entries.async_unload(entry.entry_id)


RETAINED = (
    "sensor.house_1_voltage",
    "sensor.house_1_current",
    "sensor.house_1_power",
    "sensor.house_1_power_factor",
    "sensor.house_1_frequency",
    "sensor.house_1_energy",
    "sensor.house_1_line_power",
    "sensor.house_1_theft_percentage",
    "switch.house_1_relay",
    "binary_sensor.pole_7_status",
    "sensor.pole_7_ip_address",
)


@pytest.mark.usefixtures("entity_registry_enabled_by_default")  # the IP address is off by default
async def test_restart_brings_the_retained_state_back(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    await node.relay_state("r1", "ON")
    await node.snapshot("line1", 1000.0, energy=123456.0)
    await node.snapshot("house1", 990.0, energy=120000.0, voltage=221.3, current=4.472)
    await wait_state(hass, "sensor.house_1_theft_percentage", "1.0")
    await wait_state(hass, "switch.house_1_relay", "on")
    before = {entity_id: state_of(hass, entity_id) for entity_id in RETAINED}
    assert before["sensor.house_1_energy"] == "120.0"  # kWh

    # Home Assistant goes away and comes back; the node publishes nothing new meanwhile.
    await hass.config_entries.async_unload(entry.entry_id)
    assert {state_of(hass, entity_id) for entity_id in RETAINED} == {STATE_UNAVAILABLE}
    await setup_entry(hass, entry)
    await wait_for(
        hass,
        lambda: {e: state_of(hass, e) for e in RETAINED} == before,
        "the retained values",
    )
    # Nothing was commanded because of the restart.
    assert node.relay_commands == []
    assert node.reset_commands == []
    await hass.config_entries.async_unload(entry.entry_id)


async def test_unload_during_a_refused_connect_logs_no_error(
    hass: HomeAssistant, mosquitto_auth: Broker, caplog: pytest.LogCaptureFixture
) -> None:
    """A connection attempt cancelled half-way (the entry unloads while the hub retries) is let
    finish; when it then fails, that is no error for the log: nobody waits for it any more."""
    settings = BrokerSettings(
        mosquitto_auth.host, mosquitto_auth.port, "sem-test", "wrong", False, None, "sem"
    )
    for _ in range(5):
        task = hass.async_create_task(_connect(settings))
        await asyncio.sleep(0)  # the attempt has started
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    await _sleep(hass, 0.5)  # the refusals arrive
    assert "exception in shielded future" not in caplog.text
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def _connect(settings: BrokerSettings) -> None:
    async with connected(create_client(settings, None)):
        pass
