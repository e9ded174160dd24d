"""The connection test of the flows and the setup: what a server answers, told apart at once."""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from unittest.mock import patch

import aiomqtt
import pytest
from homeassistant.core import HomeAssistant

from custom_components.smart_energy_meter.broker import (
    BrokerError,
    BrokerSettings,
    async_check_connection,
    classify,
    connect_packet,
    connected,
    create_client,
)
from tests.conftest import BROKER_USER
from tests.mosquitto import Broker, free_port

type Answer = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _settings(port: int, **changes: object) -> BrokerSettings:
    values: dict[str, object] = {
        "host": "127.0.0.1",
        "port": port,
        "username": None,
        "password": None,
        "tls": False,
        "ca_cert": None,
        "prefix": "sem",
    }
    return BrokerSettings(**(values | changes))  # type: ignore[arg-type]


@asynccontextmanager
async def _server(answer: Answer) -> AsyncIterator[int]:
    """A TCP server on 127.0.0.1 that reads the CONNECT and answers it with `answer`."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(2)
        await answer(reader, writer)
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    async with server:
        yield server.sockets[0].getsockname()[1]


async def _reason(hass: HomeAssistant, answer: Answer) -> BrokerError:
    async with _server(answer) as port:
        with pytest.raises(BrokerError) as caught:
            await async_check_connection(hass, _settings(port))
    return caught.value


def _send(data: bytes) -> Answer:
    async def answer(_: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(data)
        await writer.drain()

    return answer


async def test_a_broker_that_refuses_for_another_reason(hass: HomeAssistant) -> None:
    err = await _reason(hass, _send(b"\x20\x02\x00\x03"))
    assert (err.key, str(err)) == ("cannot_connect", "the broker is unavailable")
    err = await _reason(hass, _send(b"\x20\x02\x00\x09"))
    assert (err.key, str(err)) == ("cannot_connect", "CONNACK return code 9")


async def test_hanging_up_without_an_answer(hass: HomeAssistant) -> None:
    assert (await _reason(hass, _send(b""))).key == "no_answer"
    # A TLS alert: a TLS server that was spoken to in plain MQTT.
    assert (await _reason(hass, _send(b"\x15\x03\x01\x00\x02\x02\x46"))).key == "no_answer"


async def test_an_answer_that_is_not_mqtt(hass: HomeAssistant) -> None:
    assert (await _reason(hass, _send(b"SSH-2.0-OpenSSH_9.6\r\n"))).key == "not_mqtt"
    # Half a CONNACK, then nothing.
    assert (await _reason(hass, _send(b"\x20\x02"))).key == "not_mqtt"


async def test_tls_towards_a_server_without_tls(hass: HomeAssistant) -> None:
    async with _server(_send(b"HTTP/1.1 400 Bad Request\r\n\r\n")) as port:
        with pytest.raises(BrokerError) as caught:
            await async_check_connection(hass, _settings(port, tls=True))
    assert (caught.value.key, str(caught.value)) == ("tls_error", "wrong version number")


def test_connect_packet() -> None:
    settings = _settings(1883, username="ha", password="pw")
    assert connect_packet(settings, "c") == (
        b"\x10\x15\x00\x04MQTT\x04\xc2\x00\x3c\x00\x01c\x00\x02ha\x00\x02pw"
    )
    assert connect_packet(_settings(1883, username="ha"), "c") == (
        b"\x10\x11\x00\x04MQTT\x04\x82\x00\x3c\x00\x01c\x00\x02ha"
    )
    # As the client: a password without a user name is not sent.
    assert connect_packet(_settings(1883, password="pw"), "c") == (
        b"\x10\x0d\x00\x04MQTT\x04\x02\x00\x3c\x00\x01c"
    )


async def test_long_logins_are_well_formed(hass: HomeAssistant, mosquitto_auth: Broker) -> None:
    """A CONNECT longer than 127 bytes has a two-byte length: the broker reads it, and says
    the login is wrong, not that the packet is."""
    settings = _settings(mosquitto_auth.port, username=BROKER_USER, password="x" * 300)
    assert len(connect_packet(settings, "c")) > 300
    with pytest.raises(BrokerError) as caught:
        await async_check_connection(hass, settings)
    assert caught.value.key == "invalid_auth"


async def test_client_failures_are_classified_alike() -> None:
    """The running connection's failures (logged by the hub) use the same reasons."""
    with pytest.raises(aiomqtt.MqttError) as caught:
        async with connected(create_client(_settings(free_port()), None)):
            pass
    assert classify(caught.value).key == "connection_refused"


async def test_no_route_to_the_host(hass: HomeAssistant) -> None:
    unreachable = OSError(errno.EHOSTUNREACH, "No route to host")
    with (
        patch("asyncio.open_connection", side_effect=unreachable),
        pytest.raises(BrokerError) as caught,
    ):
        await async_check_connection(hass, _settings(1883))
    assert (caught.value.key, str(caught.value)) == ("cannot_connect", str(unreachable))


@pytest.mark.parametrize(
    ("cause", "key"),
    [
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "unknown_host"),
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), "connection_refused"),
        (ssl.SSLCertVerificationError(1, "certificate verify failed"), "tls_error"),
        (OSError(errno.EHOSTUNREACH, "No route to host"), "cannot_connect"),
    ],
)
def test_the_clients_socket_errors(cause: OSError, key: str) -> None:
    """The client re-raises a socket error as MqttError "from None"; its context says why."""

    def fail() -> None:
        try:
            raise cause
        except OSError:
            raise aiomqtt.MqttError(str(cause)) from None

    with pytest.raises(aiomqtt.MqttError) as caught:
        fail()
    assert classify(caught.value).key == key
