"""The integration on the fleet service's NATS cluster instead of mosquitto: Home Assistant
connects to one server's MQTT listener, the real firmware (MicroPython unix port) to another's.
What the integration relies on in a broker works there: the retained announce and state of a
node that published before Home Assistant connected, live readings, the theft percentage, a
relay command (never retained) and its read-back, and the last will. With a worker of the
service running, the pair shows the service's verdict beside its own detection.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant

from tests.conftest import _allow_loopback_sockets
from tests.firmware.e2e import SimNode, observe
from tests.integration.common import (
    EVERY_READING,
    make_entry,
    setup_entry,
    state_of,
    wait_number,
    wait_state,
)
from tests.integration.simnode import NODE, SIM_PAIR, requires_micropython, write_scenario

pytest.importorskip("nats", reason="nats-py is not installed")
pytestmark = [
    requires_micropython,
    pytest.mark.skipif(shutil.which("nats-server") is None, reason="nats-server is not installed"),
]

from semservice.stack import Stack  # noqa: E402  (after the skip: it imports nats-py)

PREFIX = "sem"


@dataclass
class Listener:
    """One server's MQTT listener, where Home Assistant or a node connects."""

    host: str
    port: int
    username: str | None = None
    password: str | None = None


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    _allow_loopback_sockets()
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"defaults": {"window_s": 4, "raise_windows": 2}}))
    stack = Stack(tmp_path / "fleet", prefix=PREFIX, partitions=4, workers=1, overrides=overrides)
    try:
        stack.start_cluster()
        yield stack
    finally:
        stack.stop()
        for server in stack.cluster.servers:  # shown when a test fails
            print(f"--- {server.name} ---\n{server.log_tail(2000)}")


def test_every_listener_answers_a_first_connect_once_the_cluster_is_up(stack: Stack) -> None:
    # Each server's MQTT state is set up before start_cluster returns: a first client (a node,
    # Home Assistant) is answered without waiting on it, on whichever server it picks.
    for server in stack.cluster.servers:
        assert "Creating MQTT streams/consumers" in server.log_path.read_text(), server.name
        started = time.monotonic()
        assert server.mqtt_answers(timeout=5.0), server.name
        assert time.monotonic() - started < 2.0, server.name
    stack.cluster.servers[2].kill()
    assert not stack.cluster.servers[2].mqtt_answers(timeout=1.0)


def _listener(stack: Stack, index: int) -> Listener:
    return Listener("127.0.0.1", stack.cluster.servers[index].mqtt_port)


async def test_the_integration_works_on_the_clusters_mqtt_listener(
    hass: HomeAssistant, stack: Stack, tmp_path: Path
) -> None:
    scenario = write_scenario(tmp_path, house_w=1000.0, bypass=0.2)
    node = SimNode(_listener(stack, 1), "--prefix", PREFIX, scenario=scenario, node=NODE)  # type: ignore[arg-type]
    try:
        await node.wait_line("mqtt: connected", within=15)
        # Home Assistant comes later, to another server: the retained messages bring it up.
        async with observe(_listener(stack, 0), PREFIX) as obs:  # type: ignore[arg-type]
            await obs.wait_topic(f"{PREFIX}/{NODE}/house1/state", within=10)
        entry = make_entry(hass, _listener(stack, 0), PREFIX, [SIM_PAIR], EVERY_READING)  # type: ignore[arg-type]
        await setup_entry(hass, entry)
        await wait_state(hass, "binary_sensor.sim_node_status", "on", within=10)

        value = await wait_number(hass, "sensor.house_1_theft_percentage", within=20)
        assert 15 < value < 25, value
        assert float(state_of(hass, "sensor.house_1_line_power")) > float(
            state_of(hass, "sensor.house_1_power")
        )

        # A relay command through NATS; the switch follows the node's read-back.
        async with observe(_listener(stack, 2), PREFIX) as commands:
            await wait_state(hass, "switch.house_1_relay", "on")
            await hass.services.async_call(
                "switch", "turn_off", {ATTR_ENTITY_ID: "switch.house_1_relay"}, blocking=True
            )
            assert state_of(hass, "switch.house_1_relay") == "off"
            await node.wait_line("relay r1: commanded OFF, reads back OFF", within=10)
            sent = commands.on(f"{PREFIX}/{NODE}/relay/r1/set")
            assert [m.payload for m in sent] == [b"OFF"]
            assert not sent[0].retain
        # The node dies: its last will reaches Home Assistant through the other server.
        node.kill()
        await wait_state(hass, "binary_sensor.sim_node_status", "off", within=30)
        await wait_state(hass, "sensor.house_1_power", STATE_UNAVAILABLE)
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        node.kill()
        print(node.output()[-1500:])


async def test_the_service_verdict_reaches_home_assistant(
    hass: HomeAssistant, stack: Stack, tmp_path: Path
) -> None:
    stack.start_worker(0)
    scenario = write_scenario(tmp_path, house_w=1000.0, bypass=0.2)
    node = SimNode(_listener(stack, 1), "--prefix", PREFIX, scenario=scenario, node=NODE)  # type: ignore[arg-type]
    try:
        await node.wait_line("mqtt: connected", within=30)
        entry = make_entry(hass, _listener(stack, 0), PREFIX, [SIM_PAIR])  # type: ignore[arg-type]
        await setup_entry(hass, entry)
        # The worker flags the bypass; its retained verdict comes through the cluster.
        await wait_state(hass, "sensor.house_1_service_verdict", "theft", within=60)
        attributes = hass.states.get("sensor.house_1_service_verdict").attributes  # type: ignore[union-attr]
        assert 15 < attributes["mismatch"] < 25, attributes
        await hass.config_entries.async_unload(entry.entry_id)
    finally:
        node.kill()
        print(stack.worker_logs()[-2000:])
