"""The shipped ACL and TLS setup (docs/mosquitto/) on a real mosquitto."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import aiomqtt
import pytest

from tests.conftest import SECURE_USERS
from tests.mosquitto import Broker
from tests.tls import TlsFiles, make_ca_and_server


def _client(broker: Broker, user: str, ca: Path) -> aiomqtt.Client:
    context = ssl.create_default_context(cafile=str(ca))
    return aiomqtt.Client(
        broker.host,
        broker.port,
        username=user,
        password=SECURE_USERS[user],
        tls_context=context,
        identifier=f"test-{user}",
    )


async def _published_by(broker: Broker, ca: Path, user: str, topics: list[str]) -> set[str]:
    """Publish to each topic as user; return which ones the integration's account received."""
    received: set[str] = set()
    async with _client(broker, "homeassistant", ca) as ha:
        await ha.subscribe("sem/#", qos=1)
        async with _client(broker, user, ca) as node:
            for topic in topics:
                await node.publish(topic, b"ON", qos=1)
            # A marker this user may publish shows that every earlier message was handled.
            await node.publish(f"sem/{user}/status", b"online", qos=1)

        async def collect() -> None:
            async for message in ha.messages:
                if message.topic.value == f"sem/{user}/status":
                    return
                received.add(message.topic.value)

        await asyncio.wait_for(collect(), 10)
    return received


async def test_node_writes_only_its_own_topics(
    mosquitto_secure: Broker, broker_tls: TlsFiles
) -> None:
    own = [
        "sem/node1/announce",
        "sem/node1/house1/state",
        "sem/node1/relay/r1/state",
        "sem/node1/house1/reset_energy/result",
        "sem/node1/update/state",
    ]
    foreign = [
        "sem/node2/announce",
        "sem/node2/house1/reset_energy/result",
        "sem/node2/house1/state",
        "sem/node2/relay/r1/state",
        "sem/node1/relay/r1/set",  # a node cannot command relays, not even its own
        "sem/node2/update/begin",  # nor send another node a firmware
        "sem/node2/update/chunk",
        "other/topic",
    ]
    received = await _published_by(mosquitto_secure, broker_tls.ca_cert, "node1", own + foreign)
    assert received == set(own)


async def test_integration_writes_only_commands(
    mosquitto_secure: Broker, broker_tls: TlsFiles
) -> None:
    got: list[str] = []
    async with _client(mosquitto_secure, "node1", broker_tls.ca_cert) as node:
        await node.subscribe("sem/node1/#", qos=1)
        async with _client(mosquitto_secure, "homeassistant", broker_tls.ca_cert) as ha:
            await ha.publish("sem/node1/house1/state", b"{}", qos=1)  # forged reading
            await ha.publish("sem/node1/status", b"offline", qos=1)  # forged status
            await ha.publish("sem/node1/relay/r1/set", b"OFF", qos=1)
            await ha.publish("sem/node1/house1/reset_energy", b"", qos=1)
            await ha.publish("sem/node1/update/state", b"{}", qos=1)  # forged update state
            await ha.publish("sem/node1/update/begin", b"{}", qos=1)
            await ha.publish("sem/node1/update/chunk", b"", qos=1)

        async def collect() -> None:
            async for message in node.messages:
                got.append(message.topic.value)
                if message.topic.value.endswith("update/chunk"):
                    return

        await asyncio.wait_for(collect(), 10)
    assert got == [
        "sem/node1/relay/r1/set",
        "sem/node1/house1/reset_energy",
        "sem/node1/update/begin",
        "sem/node1/update/chunk",
    ]


async def test_wrong_ca_is_refused(mosquitto_secure: Broker, tmp_path: Path) -> None:
    other = make_ca_and_server(tmp_path, ca_name="someone else")
    with pytest.raises(aiomqtt.MqttError):
        async with _client(mosquitto_secure, "homeassistant", other.ca_cert):
            pass


async def test_wrong_password_is_refused(mosquitto_secure: Broker, broker_tls: TlsFiles) -> None:
    context = ssl.create_default_context(cafile=str(broker_tls.ca_cert))
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(
            mosquitto_secure.host,
            mosquitto_secure.port,
            username="homeassistant",
            password="wrong",
            tls_context=context,
        ):
            pass
