"""Fixtures for tests that run the integration inside Home Assistant."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from unittest.mock import PropertyMock, patch

import pytest

from tests.conftest import _allow_loopback_sockets
from tests.integration.common import TestNode
from tests.mosquitto import Broker, running_broker
from tests.tls import TlsFiles


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/ in every integration test."""


@pytest.fixture(autouse=True)
def fast_reconnect() -> Iterator[None]:
    """Reconnect within a fraction of a second instead of the production backoff."""
    with (
        patch("custom_components.smart_energy_meter.hub.BACKOFF_MIN", 0.05),
        patch("custom_components.smart_energy_meter.hub.BACKOFF_MAX", 0.2),
    ):
        yield


@pytest.fixture
def entity_registry_enabled_by_default() -> Iterator[None]:
    """Create every entity enabled, also those off by default (as in Home Assistant's tests)."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        new_callable=PropertyMock,
        return_value=True,
    ):
        yield


@pytest.fixture
def prefix() -> str:
    """A topic prefix of this test alone: retained messages of other tests never reach it."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
async def node(mosquitto: Broker, prefix: str) -> AsyncIterator[TestNode]:
    """A scripted meter node on the shared broker, answering relay commands."""
    async with TestNode(mosquitto, prefix) as test_node:
        yield test_node


@pytest.fixture(scope="session")
def mosquitto_tls(
    tmp_path_factory: pytest.TempPathFactory, broker_tls: TlsFiles
) -> Iterator[Broker]:
    """An anonymous mosquitto whose only listener speaks TLS."""
    _allow_loopback_sockets()
    with running_broker(tmp_path_factory.mktemp("mosquitto-tls"), tls=broker_tls) as broker:
        yield broker
