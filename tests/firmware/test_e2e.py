"""End to end: the firmware under MicroPython with emulated PZEMs, a real mosquitto, and a plain
MQTT client on the other side."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from collections.abc import Iterator

import aiomqtt
import pytest

from custom_components.smart_energy_meter.semcore import protocol as codec
from tests.conftest import BROKER_PASSWORD, BROKER_USER
from tests.firmware.e2e import SimNode, observe
from tests.mosquitto import Broker

NODE = "e2e-node"
METERS = ("line1", "house1", "line2", "house2")


@pytest.fixture
def nodes() -> Iterator[list[SimNode]]:
    """Simulated nodes started by a test; none outlives it."""
    started: list[SimNode] = []
    yield started
    for node in started:
        node.kill()


def _state(seen: object) -> dict[str, object]:
    return json.loads(seen.payload)  # type: ignore[attr-defined,no-any-return]


async def test_a_plain_subscriber_sees_status_announce_and_states(
    mosquitto: Broker, nodes: list[SimNode]
) -> None:
    prefix = "e2e-a"
    async with observe(mosquitto, prefix) as obs:
        nodes.append(SimNode(mosquitto, "--prefix", prefix))
        await obs.wait(
            lambda ms: all(sum(m.topic.endswith(f"/{m_}/state") for m in ms) >= 3 for m_ in METERS),
            what="three states of every meter",
        )
        decoded = obs.decoded()
        rejected = [(m.topic, d) for m, d in decoded if isinstance(d, codec.Rejected)]
        assert rejected == []
        assert obs.messages[0].topic == f"{prefix}/{NODE}/status"
        assert obs.messages[0].payload == b"online"
        announces = [d for _, d in decoded if isinstance(d, codec.Announce)]
        assert len(announces) == 1
        announce = announces[0]
        assert announce.node == NODE
        assert announce.name == "E2E node"
        assert announce.interval == 0.2
        assert [(m.id, m.role.value, m.pair, m.address) for m in announce.meters] == [
            ("line1", "line", "house1", 1),
            ("house1", "house", "house1", 2),
            ("line2", "line", "house2", 3),
            ("house2", "house", "house2", 4),
        ]
        assert [(r.id, r.pair) for r in announce.relays] == [("r1", "house1"), ("r2", "house2")]
        assert announce.pair_names == {"house1": "House 1", "house2": "House 2"}
        assert announce.mac is not None
        relay_states = {
            d.relay: d.state for _, d in decoded if isinstance(d, codec.RelayStateMessage)
        }
        assert relay_states == {"r1": codec.RelayState.OFF, "r2": codec.RelayState.ON}

        snapshots = [d for _, d in decoded if isinstance(d, codec.Snapshot)]
        by_meter: dict[str, list[codec.Snapshot]] = {}
        for snap in snapshots:
            by_meter.setdefault(snap.meter, []).append(snap)
        for meter, snaps in by_meter.items():
            assert [s.seq for s in snaps] == list(range(len(snaps))), meter
            assert all(abs(s.ts - time.time()) < 30 for s in snaps)
            assert all(b.ts > a.ts for a, b in itertools.pairwise(snaps))
        # r1 is off at power-on: house 1 draws nothing, a real and reported zero.
        assert by_meter["line1"][-1].power == 0
        line2, house2 = by_meter["line2"][-1], by_meter["house2"][-1]
        assert line2.power == pytest.approx(200, rel=0.01)
        assert line2.voltage == pytest.approx(226.6, rel=0.006)
        assert (line2.power - house2.power) / line2.power == pytest.approx(0.2, abs=0.012)

    # A subscriber that arrives later gets the retained picture of the node.
    async with observe(mosquitto, prefix) as late:
        await late.wait(lambda ms: len({m.topic for m in ms}) >= 8, what="retained topics")
        retained = {m.topic: m for m in late.messages if m.retain}
        for topic in ("status", "announce", "relay/r1/state", "relay/r2/state"):
            assert f"{prefix}/{NODE}/{topic}" in retained, topic
        for meter in METERS:
            assert f"{prefix}/{NODE}/{meter}/state" in retained
    assert nodes[0].stop() == 0


async def test_relay_set_comes_back_as_a_confirmed_state(
    mosquitto: Broker, nodes: list[SimNode]
) -> None:
    prefix = "e2e-b"
    async with observe(mosquitto, prefix) as obs:
        node = SimNode(mosquitto, "--prefix", prefix)
        nodes.append(node)
        state_topic = f"{prefix}/{NODE}/relay/r1/state"
        await obs.wait_topic(state_topic, b"OFF")
        before_on = time.monotonic()
        await obs.client.publish(f"{prefix}/{NODE}/relay/r1/set", b"ON", qos=1)
        await obs.wait_topic(state_topic, b"ON", since=before_on)
        await node.wait_line(r"relay r1: commanded ON, reads back ON")
        # The relay cuts house 1's load: with it on, the line meter sees the 100 W.
        await obs.wait(
            lambda ms: any(
                m.topic == f"{prefix}/{NODE}/line1/state"
                and m.at > before_on
                and json.loads(m.payload).get("p", 0) > 90
                for m in ms
            ),
            what="house 1 drawing power",
        )
        before_off = time.monotonic()
        await obs.client.publish(f"{prefix}/{NODE}/relay/r1/set", b"OFF", qos=1)
        await obs.wait_topic(state_topic, b"OFF", since=before_off)
        # Junk is ignored with a log line and changes nothing.
        await obs.client.publish(f"{prefix}/{NODE}/relay/r1/set", b"toggle", qos=1)
        await node.wait_line(r"relay payload b'toggle' is not ON/OFF")
        assert obs.on(state_topic, since=before_off)[-1].payload == b"OFF"
    stats = await node.stats()
    assert stats["relay_writes"] == "r1=3,r2=1"  # power-on, ON, OFF; nothing for the junk


async def test_a_retained_set_is_ignored(mosquitto: Broker, nodes: list[SimNode]) -> None:
    prefix = "e2e-c"
    set_topic = f"{prefix}/{NODE}/relay/r1/set"
    async with aiomqtt.Client(mosquitto.host, mosquitto.port) as commander:
        await commander.publish(set_topic, b"ON", qos=1, retain=True)
    try:
        async with observe(mosquitto, prefix) as obs:
            node = SimNode(mosquitto, "--prefix", prefix)
            nodes.append(node)
            await node.wait_line(rf"command ignored: retained message on {set_topic}")
            await obs.wait(
                lambda ms: sum(m.topic.endswith("/line1/state") for m in ms) >= 3, what="states"
            )
            states = obs.on(f"{prefix}/{NODE}/relay/r1/state")
            assert [m.payload for m in states] == [b"OFF"]
            stats = await node.stats()
            assert stats["relay_writes"].startswith("r1=1,")  # only the power-on policy
    finally:
        async with aiomqtt.Client(mosquitto.host, mosquitto.port) as commander:
            await commander.publish(set_topic, b"", qos=1, retain=True)


async def test_reconnect_after_a_broker_restart_republishes_without_toggling(
    own_mosquitto: Broker, nodes: list[SimNode]
) -> None:
    node = SimNode(own_mosquitto)
    nodes.append(node)
    async with observe(own_mosquitto) as obs:
        await obs.wait_topic(f"sem/{NODE}/announce")
        await obs.client.publish(f"sem/{NODE}/relay/r1/set", b"ON", qos=1)
        await obs.wait_topic(f"sem/{NODE}/relay/r1/state", b"ON")
    own_mosquitto.kill()
    await node.wait_line(r"mqtt: connection lost")
    await asyncio.sleep(1.0)  # the node retries against a dead port meanwhile
    own_mosquitto.start()
    async with observe(own_mosquitto) as obs:
        # mosquitto runs without persistence: everything seen now was re-published.
        await obs.wait_topic(f"sem/{NODE}/status", b"online", within=15)
        await obs.wait_topic(f"sem/{NODE}/announce")
        assert obs.on(f"sem/{NODE}/relay/r1/state")[-1].payload == b"ON"
        assert obs.on(f"sem/{NODE}/relay/r2/state")[-1].payload == b"ON"
        await obs.wait(lambda ms: any(m.topic.endswith("/house2/state") for m in ms), what="states")
        # Re-subscribed: a command after the reconnect is obeyed.
        since = time.monotonic()
        await obs.client.publish(f"sem/{NODE}/relay/r2/set", b"OFF", qos=1)
        await obs.wait_topic(f"sem/{NODE}/relay/r2/state", b"OFF", since=since)
    stats = await node.stats()
    assert stats["connections"] == "2"
    # Power-on and one command each: the reconnect itself wrote no pin.
    assert stats["relay_writes"] == "r1=2,r2=2"


async def test_a_pzem_that_stops_answering_gives_the_error_form(
    mosquitto: Broker, nodes: list[SimNode]
) -> None:
    prefix = "e2e-d"
    topic = f"{prefix}/{NODE}/house2/state"
    async with observe(mosquitto, prefix) as obs:
        node = SimNode(mosquitto, "--prefix", prefix)
        nodes.append(node)
        await obs.wait_topic(topic)
        node.send("offline house2")
        await obs.wait(
            lambda ms: any(m.topic == topic and b'"error"' in m.payload for m in ms),
            what="an error form",
        )
        errors = [m for m in obs.on(topic) if b'"error"' in m.payload]
        decoded = codec.decode(prefix, topic, errors[0].payload)
        assert isinstance(decoded, codec.SensorError)
        assert decoded.error == "timeout"
        body = _state(errors[0])
        # No readings at all, certainly no zeros; what went wrong in the node's words.
        assert set(body) == {"seq", "ts", "error", "detail"}
        assert body["detail"] == "no reply"
        since = time.monotonic()
        node.send("online house2")
        await obs.wait(
            lambda ms: any(m.topic == topic and m.at > since and b'"p"' in m.payload for m in ms),
            what="readings again",
        )
        seqs = [_state(m)["seq"] for m in obs.on(topic)]
        assert seqs == list(range(len(seqs)))  # errors count as publications too
        # The other meters kept publishing meanwhile.
        other = [m for m in obs.on(f"{prefix}/{NODE}/line2/state") if m.at >= errors[0].at]
        assert other
        assert all(b'"error"' not in m.payload for m in other)
        node.send("crc line1 1.0")
        await obs.wait(
            lambda ms: any(
                m.topic.endswith("/line1/state") and b'"error":"crc"' in m.payload for m in ms
            ),
            what="a crc error form",
        )


async def test_the_last_will_and_a_clean_stop(mosquitto: Broker, nodes: list[SimNode]) -> None:
    prefix = "e2e-e"
    status = f"{prefix}/{NODE}/status"
    async with observe(mosquitto, prefix) as obs:
        node = SimNode(mosquitto, "--prefix", prefix)
        nodes.append(node)
        await obs.wait_topic(status, b"online")
        node.kill()  # power cut: the broker publishes the will
        await obs.wait_topic(status, b"offline", within=15)
        since = time.monotonic()
        node = SimNode(mosquitto, "--prefix", prefix)
        nodes.append(node)
        await obs.wait_topic(status, b"online", since=since)
        assert node.stop() == 0
        await obs.wait_topic(status, b"offline", since=time.monotonic() - 1)
    assert "stopped" in node.output()


async def test_broker_credentials(mosquitto_auth: Broker, nodes: list[SimNode]) -> None:
    prefix = "e2e-f"
    auth = {"username": BROKER_USER, "password": BROKER_PASSWORD}
    async with observe(mosquitto_auth, prefix, **auth) as obs:
        wrong = SimNode(
            mosquitto_auth, "--prefix", prefix, "--username", BROKER_USER, "--password", "wrong"
        )
        nodes.append(wrong)
        await wrong.wait_line(r"broker refused the connection: (not authorised|bad user name)")
        assert wrong.stop() == 0
        node = SimNode(
            mosquitto_auth,
            "--prefix",
            prefix,
            "--username",
            BROKER_USER,
            "--password",
            BROKER_PASSWORD,
        )
        nodes.append(node)
        await obs.wait_topic(f"{prefix}/{NODE}/announce")
