"""The real node firmware (MicroPython unix port, emulated PZEM-004T meters) against the MQTT
listener of the service's three-server NATS cluster: what a node relies on in a broker works
there (retained announce and state, the last will, QoS 1), its readings land in the partitioned
stream, and the worker flags the house with a bypass from them; the verdict reaches MQTT
subscribers on another server of the cluster, and stays there retained. Losing the server that
leads NATS's store of the nodes' messages (`$MQTT_msgs`) costs the node its acknowledgements and
its connection; what it sends again after reconnecting leaves no reading missing.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from custom_components.smart_energy_meter.semcore import protocol as codec
from semservice import layout
from semservice.stack import Stack, wait_for
from tests.conftest import _allow_loopback_sockets
from tests.firmware.e2e import SimNode, observe
from tests.integration.simnode import NODE as SIM_NODE
from tests.integration.simnode import write_scenario
from tests.mosquitto import Broker
from tests.service.cluster_tools import detected, readings_stream, stored, stream

PREFIX = "sem"
NODE = "e2e-node"  # tests/firmware/scenarios/e2e.json: house2 has a 20 % bypass


@dataclass
class Listener:
    """One server's MQTT listener, where a node or a subscriber connects."""

    host: str
    port: int


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    _allow_loopback_sockets()
    overrides = tmp_path / "overrides.json"
    overrides.write_text(json.dumps({"defaults": {"window_s": 4, "raise_windows": 2}}))
    stack = Stack(tmp_path, prefix=PREFIX, partitions=4, workers=1, overrides=overrides)
    try:
        stack.start_cluster()
        stack.start_worker(0)
        yield stack
    finally:
        stack.stop()
        for server in stack.cluster.servers:  # shown when a test fails
            print(f"--- {server.name} ---\n{server.log_tail(2000)}")


def _listener(stack: Stack, index: int) -> Broker:
    server = stack.cluster.servers[index]
    return Listener("127.0.0.1", server.mqtt_port)  # type: ignore[return-value]


async def test_the_firmware_speaks_to_the_cluster_and_its_thief_is_flagged(
    stack: Stack,
) -> None:
    node = SimNode(_listener(stack, 0))
    try:
        await node.wait_line("connected", within=15)
        await asyncio.sleep(2)
        # A subscriber that comes later, on another server, gets the retained announce.
        async with observe(_listener(stack, 2), PREFIX) as obs:
            announce = await obs.wait_topic(f"{PREFIX}/{NODE}/announce", within=10)
            assert announce.retain
            decoded = codec.decode(PREFIX, announce.topic, announce.payload, retained=True)
            assert isinstance(decoded, codec.Announce)
            status = await obs.wait_topic(f"{PREFIX}/{NODE}/status", b"online", within=10)
            assert status.retain
            await obs.wait_topic(f"{PREFIX}/{NODE}/house2/state", within=10)
            # The worker flags house2 from the readings in the stream, and only house2.
            verdict = await obs.wait_topic(f"{PREFIX}/{NODE}/house2/verdict", within=45)
            # The pair's current verdict is retained: a client that connects later (a Home
            # Assistant after a restart) gets it at once, from any server.
            async with observe(_listener(stack, 1), PREFIX) as later:
                kept = await later.wait_topic(f"{PREFIX}/{NODE}/house2/verdict", within=10)
                assert kept.retain
                assert kept.payload == verdict.payload
            event = json.loads(verdict.payload)
            assert event["event"] == "detected"
            assert event["pair"] == f"{NODE}/house2"
            assert 15 < event["mismatch_pct"] < 25
            assert await asyncio.to_thread(detected, stack) == {f"{NODE}/house2": 1}
            # A node that dies: its last will reaches subscribers and the stream.
            stored, _ = await asyncio.to_thread(readings_stream, stack)
            node.kill()
            will = await obs.wait_topic(f"{PREFIX}/{NODE}/status", b"offline", within=30)
            assert will.retain is False  # a live will is delivered as published, not a replay
        assert (await asyncio.to_thread(readings_stream, stack))[0] > stored
        report = await stack.report()
        assert [pair.pair for pair in report.flagged] in ([], [f"{NODE}/house2"])
    finally:
        node.kill()
        print(node.output()[-1500:])


async def test_losing_the_leader_of_the_nodes_message_store_loses_no_reading(
    stack: Stack, tmp_path: Path
) -> None:
    # NATS acknowledges a QoS 1 publish once $MQTT_msgs (R3) stored it. Its leader gone, no
    # PUBACK comes; after 5 s the server closes the node's connection. The node sends what was
    # not acknowledged again (the same bytes), so each reading is stored at least once.
    leader = (await asyncio.to_thread(stream, stack, layout.MQTT_MESSAGES))[1]
    index = next(i for i, s in enumerate(stack.cluster.servers) if s.name != leader)
    scenario = write_scenario(tmp_path, house_w=1000.0, bypass=0.2)
    node = SimNode(_listener(stack, index), scenario=scenario, node=SIM_NODE)
    topics = [f"{PREFIX}/{SIM_NODE}/{meter}/state" for meter in ("line1", "house1")]
    try:
        await node.wait_line("connected", within=15)
        await asyncio.sleep(3)
        server = stack.cluster.server(leader)
        server.kill()
        await asyncio.sleep(8)  # past NATS's 5 s, when it closes a connection left unanswered
        server.start()
        await asyncio.to_thread(stack.cluster.wait_healthy)
        await asyncio.sleep(3)
        node.stop()
        log = node.output()
    finally:
        node.kill()

    def everything_stored() -> bool:
        return all(_missing(stored(stack, topic)) == 0 for topic in topics)

    await asyncio.to_thread(wait_for, everything_stored, 20, "every reading stored", 1.0)
    for topic in topics:
        payloads = await asyncio.to_thread(stored, stack, topic)
        readings = [json.loads(payload) for payload in payloads]
        assert not [r for r in readings if "dropped" in r], topic
        print(topic, len(payloads), "stored,", len(payloads) - len(set(payloads)), "twice")
    assert "readings dropped" not in log, log[-3000:]
    # Whether the new leader came in time to acknowledge (it often does), or the node had to
    # send again, is NATS's timing; both must leave nothing missing.
    print("sent again:", "sent again once connected" in log)


def _missing(payloads: list[bytes]) -> int | None:
    """How many seqs from 0 to the last one stored are not there (copies allowed); None when
    nothing is stored."""
    seqs = {json.loads(payload)["seq"] for payload in payloads}
    return len(set(range(max(seqs) + 1)) - seqs) if seqs else None


async def test_a_node_moves_to_another_server_when_its_own_is_lost(
    stack: Stack, tmp_path: Path
) -> None:
    # The node knows the cluster's three listeners (`broker.fallback`): its server killed, it
    # connects to the next one and its readings go on.
    listeners = [_listener(stack, index) for index in range(3)]
    scenario = write_scenario(tmp_path, house_w=1000.0, bypass=0.2)
    fallback = ",".join(f"{b.host}:{b.port}" for b in listeners[1:])
    node = SimNode(listeners[0], "--fallback", fallback, scenario=scenario, node=SIM_NODE)
    topic = f"{PREFIX}/{SIM_NODE}/house1/state"
    try:
        # The first listener, or the next while a fresh cluster still sets up its MQTT state.
        first = await node.wait_line(r"connected to 127\.0\.0\.1:(\d+)", within=30)
        index = next(i for i, b in enumerate(listeners) if b.port == int(first[1]))
        survivor = listeners[(index + 1) % 3]
        async with observe(survivor, PREFIX) as obs:
            await obs.wait_topic(topic, within=10)
            server = stack.cluster.servers[index]
            server.kill()
            others = "|".join(str(b.port) for i, b in enumerate(listeners) if i != index)
            await node.wait_line(f"trying 127.0.0.1:({others})", within=30)
            await node.wait_line(f"connected to 127.0.0.1:({others})", within=40)
            moved = len(obs.on(topic))
            # Once the cluster has elected anew what the lost server led.
            await obs.wait(lambda seen: len(obs.on(topic)) >= moved + 5, within=60)
        server.start()
        await asyncio.to_thread(stack.cluster.wait_healthy)
        await asyncio.sleep(2)
        node.stop()
        log = node.output()
    finally:
        node.kill()
    payloads = await asyncio.to_thread(stored, stack, topic)
    # In the stream nothing is missing but what the node says it dropped.
    dropped = max(json.loads(payload).get("dropped", 0) for payload in payloads)
    assert _missing(payloads) == dropped, log[-2000:]
    print("stored", len(set(payloads)), "readings, dropped", dropped)
