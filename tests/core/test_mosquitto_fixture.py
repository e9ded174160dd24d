"""The broker fixtures are real mosquitto processes that tests can rely on."""

from __future__ import annotations

import aiomqtt
import pytest

from tests.conftest import BROKER_PASSWORD, BROKER_USER
from tests.mosquitto import Broker


async def _round_trip(broker: Broker, **auth: str) -> bytes:
    async with aiomqtt.Client(broker.host, broker.port, **auth) as client:
        await client.subscribe("fixture/test")
        await client.publish("fixture/test", b"hello", qos=1)
        async for message in client.messages:
            return bytes(message.payload)  # type: ignore[arg-type]
    raise AssertionError("no message")


async def test_anonymous_broker_round_trip(mosquitto: Broker) -> None:
    assert mosquitto.host == "127.0.0.1"
    assert await _round_trip(mosquitto) == b"hello"


async def test_auth_broker_accepts_the_password(mosquitto_auth: Broker) -> None:
    assert (
        await _round_trip(mosquitto_auth, username=BROKER_USER, password=BROKER_PASSWORD)
        == b"hello"
    )


@pytest.mark.parametrize("auth", [{}, {"username": BROKER_USER, "password": "wrong"}])
async def test_auth_broker_refuses_others(mosquitto_auth: Broker, auth: dict[str, str]) -> None:
    with pytest.raises(aiomqtt.MqttError):
        await _round_trip(mosquitto_auth, **auth)


async def test_own_broker_restarts_on_the_same_port(own_mosquitto: Broker) -> None:
    port = own_mosquitto.port
    own_mosquitto.kill()
    assert not own_mosquitto.running
    with pytest.raises(aiomqtt.MqttError):
        await _round_trip(own_mosquitto)
    own_mosquitto.start()
    assert own_mosquitto.port == port
    assert await _round_trip(own_mosquitto) == b"hello"
