"""Fixtures for tests that run the integration inside Home Assistant."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import PropertyMock, patch

import pytest
import voluptuous as vol
from homeassistant.config_entries import ConfigSubentryFlow, OptionsFlow
from homeassistant.data_entry_flow import FlowHandler, section

from tests.conftest import _allow_loopback_sockets
from tests.integration.common import TestNode
from tests.mosquitto import Broker, running_broker
from tests.tls import TlsFiles


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let Home Assistant load custom_components/ in every integration test."""


STRINGS = json.loads(
    (Path(__file__).parents[2] / "custom_components/smart_energy_meter/strings.json").read_text()
)


def _step_texts(flow: FlowHandler[Any, Any, Any], step_id: str) -> dict[str, Any]:
    """The strings.json texts of a step of a config, options or subentry flow."""
    if isinstance(flow, ConfigSubentryFlow):
        steps = STRINGS["config_subentries"][flow.handler[1]]["step"]
    elif isinstance(flow, OptionsFlow):
        steps = STRINGS["options"]["step"]
    else:
        steps = STRINGS["config"]["step"]
    assert step_id in steps, f"step {step_id} has no texts"
    texts: dict[str, Any] = steps[step_id]
    return texts


def _check_fields(schema: vol.Schema, texts: dict[str, Any], where: str) -> None:
    for marker, value in schema.schema.items():
        key = str(marker)
        if isinstance(value, section):
            sub = texts.get("sections", {}).get(key)
            assert sub is not None, f"{where}: section {key} has no texts"
            _check_fields(value.schema, sub, f"{where}.{key}")
            continue
        assert key in texts.get("data", {}), f"{where}: field {key} has no label"
        assert key in texts.get("data_description", {}), f"{where}: field {key} has no description"


@pytest.fixture(autouse=True)
def every_form_field_is_described() -> Iterator[None]:
    """Every field of every form a test shows has a label and a description (quality scale:
    config-flow). The config flow's full coverage makes that every form there is."""
    show_form = FlowHandler.async_show_form

    def checked(self: FlowHandler[Any, Any, Any], **kwargs: Any) -> Any:
        schema = kwargs.get("data_schema")
        step_id = kwargs.get("step_id") or (self.cur_step and self.cur_step.get("step_id"))
        if schema is not None and step_id:
            _check_fields(schema, _step_texts(self, step_id), f"{type(self).__name__}.{step_id}")
        return show_form(self, **kwargs)

    with patch.object(FlowHandler, "async_show_form", checked):
        yield


@pytest.fixture(autouse=True)
def no_deprecated_calls(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """Home Assistant reports a deprecated call of a custom integration as a log line; one
    from this integration's own code fails the test."""
    yield
    reports = [
        record.getMessage()
        for record in caplog.get_records("call")
        if "custom integration 'smart_energy_meter'" in record.getMessage()
        and "deprecated" in record.getMessage()
    ]
    assert not reports, reports


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
