"""Shared fixtures: real mosquitto brokers and Home Assistant's custom-integration loading."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import pytest_socket

from tests.mosquitto import Broker, running_broker
from tests.tls import TlsFiles, make_ca_and_server

BROKER_USER = "sem-test"
BROKER_PASSWORD = "correct horse battery"
REPO = Path(__file__).parents[1]
# Accounts of the secured broker: the integration and two nodes (user name = node id).
SECURE_USERS = {"homeassistant": "ha-secret-1", "node1": "node1-secret", "node2": "node2-secret"}


def _allow_loopback_sockets() -> None:
    # pytest-homeassistant-custom-component blocks every socket; real brokers on 127.0.0.1
    # are part of these tests, anything else stays blocked.
    pytest_socket.enable_socket()
    pytest_socket.socket_allow_hosts(["127.0.0.1"], allow_unix_socket=True)


@pytest.fixture(autouse=True)
def _loopback_sockets() -> None:
    """Allow connections to 127.0.0.1 in every test."""
    _allow_loopback_sockets()


@pytest.fixture(scope="session")
def mosquitto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """An anonymous mosquitto on a free 127.0.0.1 port, shared by the session."""
    _allow_loopback_sockets()  # session fixtures start before function fixtures run
    with running_broker(tmp_path_factory.mktemp("mosquitto-anon")) as broker:
        yield broker


@pytest.fixture(scope="session")
def mosquitto_auth(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A mosquitto that requires BROKER_USER / BROKER_PASSWORD."""
    _allow_loopback_sockets()  # session fixtures start before function fixtures run
    with running_broker(
        tmp_path_factory.mktemp("mosquitto-auth"), username=BROKER_USER, password=BROKER_PASSWORD
    ) as broker:
        yield broker


@pytest.fixture
def own_mosquitto(tmp_path: Path) -> Iterator[Broker]:
    """A broker for one test, which the test may stop, kill and restart."""
    _allow_loopback_sockets()  # session fixtures start before function fixtures run
    with running_broker(tmp_path / "mosquitto") as broker:
        yield broker


@pytest.fixture(scope="session")
def broker_tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    """A CA and a server certificate for 127.0.0.1."""
    return make_ca_and_server(tmp_path_factory.mktemp("tls"))


@pytest.fixture(scope="session")
def mosquitto_secure(
    tmp_path_factory: pytest.TempPathFactory, broker_tls: TlsFiles
) -> Iterator[Broker]:
    """TLS, a password file and the ACL shipped in docs/mosquitto/sem.acl."""
    _allow_loopback_sockets()  # session fixtures start before function fixtures run
    with running_broker(
        tmp_path_factory.mktemp("mosquitto-secure"),
        users=SECURE_USERS,
        acl_file=REPO / "docs" / "mosquitto" / "sem.acl",
        tls=broker_tls,
    ) as broker:
        yield broker
