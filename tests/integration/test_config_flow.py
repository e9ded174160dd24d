"""The config flow against real brokers: connection errors, node discovery, the created entry."""

from __future__ import annotations

import asyncio
import json
import socket
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from aiohttp import web
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.smart_energy_meter.broker import CHECK_TIMEOUT
from custom_components.smart_energy_meter.const import DOMAIN
from tests.conftest import BROKER_PASSWORD, BROKER_USER
from tests.integration.common import (
    PAPER_ANNOUNCE,
    TestNode,
    entry_data,
    make_entry,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker, free_port
from tests.tls import TlsFiles, make_ca_and_server

STRINGS = json.loads(
    (Path(__file__).parents[2] / "custom_components/smart_energy_meter/strings.json").read_text()
)


@pytest.fixture(autouse=True)
def short_discovery() -> Iterator[None]:
    """Listen for announces for a fraction of a second."""
    with patch("custom_components.smart_energy_meter.config_flow.DISCOVERY_SECONDS", 0.3):
        yield


def _user_input(broker: Broker, prefix: str, **changes: Any) -> dict[str, Any]:
    data = {
        "host": broker.host,
        "port": broker.port,
        "tls": False,
        "prefix": prefix,
    }
    if broker.username:
        data |= {"username": broker.username, "password": broker.password}
    return data | changes


async def _submit(hass: HomeAssistant, user_input: dict[str, Any]) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return dict(await hass.config_entries.flow.async_configure(result["flow_id"], user_input))


async def _finish_discovery(hass: HomeAssistant, result: dict[str, Any]) -> dict[str, Any]:
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    assert result["step_id"] == "discover"
    assert result["progress_action"] == "discover"
    assert result["description_placeholders"] == {"seconds": "0.3"}
    await hass.async_block_till_done()
    return dict(await hass.config_entries.flow.async_configure(result["flow_id"]))


def _suggested(result: dict[str, Any]) -> dict[str, Any]:
    return {
        str(key): key.description["suggested_value"]
        for key in result["data_schema"].schema
        if key.description and "suggested_value" in key.description
    }


async def test_full_flow_with_discovered_pairs(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    await node.announce()
    await node.status("online")
    result = await _submit(hass, _user_input(mosquitto, prefix))
    result = await _finish_discovery(hass, result)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pairs"
    assert result["description_placeholders"]["count"] == "2"
    nodes = result["description_placeholders"]["nodes"]
    assert "**Pole 7** (`node1`, 1.0.0)" in nodes
    assert "line1 (line, house1)" in nodes
    options = result["data_schema"].schema["pairs"].config["options"]
    assert [o["value"] for o in options] == ["node1/house1", "node1/house2"]
    assert options[0]["label"] == "House 1 (node1: node1/line1 → node1/house1)"

    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {"pairs": ["node1/house2"]}
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == f"{prefix} @ 127.0.0.1:{mosquitto.port}"
    assert result["data"] == entry_data(mosquitto, prefix)
    entry = result["result"]
    assert entry.unique_id == f"127.0.0.1:{mosquitto.port}/{prefix}"
    subentries = list(entry.subentries.values())
    assert len(subentries) == 1
    assert subentries[0].title == "House 2"
    assert subentries[0].unique_id == "node1/house2"
    assert subentries[0].subentry_type == "meter_pair"
    assert dict(subentries[0].data) == {
        "pair": "house2",
        "name": "House 2",
        "line": {"node": "node1", "meter": "line2"},
        "house": {"node": "node1", "meter": "house2"},
        "relay": {"node": "node1", "relay": "r2"},
    }
    # The entry is set up right away and reads the retained states.
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    await node.snapshot("house2", 82.23)
    await wait_state(hass, "sensor.house_2_power", "82.23")
    assert hass.states.get("sensor.house_1_power") is None
    await hass.config_entries.async_unload(entry.entry_id)


async def test_no_nodes_found(hass: HomeAssistant, mosquitto: Broker, prefix: str) -> None:
    result = await _submit(hass, _user_input(mosquitto, prefix))
    result = await _finish_discovery(hass, result)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "no_nodes"
    assert result["description_placeholders"] == {"prefix": prefix}
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert dict(result["result"].subentries) == {}
    await hass.async_block_till_done()
    await hass.config_entries.async_unload(result["result"].entry_id)


async def test_broker_lost_while_listening(
    hass: HomeAssistant, own_mosquitto: Broker, prefix: str
) -> None:
    result = await _submit(hass, _user_input(own_mosquitto, prefix))
    own_mosquitto.stop()
    result = await _finish_discovery(hass, result)
    assert result["step_id"] == "no_nodes"
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_pairs_step_without_complete_pairs(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """A node whose labels have no line+house pair is shown, but nothing is proposed."""
    await node.announce(meters=PAPER_ANNOUNCE.meters[:1], relays=(), firmware="")
    result = await _submit(hass, _user_input(mosquitto, prefix))
    result = await _finish_discovery(hass, result)
    assert result["step_id"] == "pairs"
    assert result["description_placeholders"]["count"] == "0"
    assert (
        "**Pole 7** (`node1`): line1 (line, house1)" in result["description_placeholders"]["nodes"]
    )
    assert "pairs" not in result["data_schema"].schema
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert dict(result["result"].subentries) == {}
    await hass.async_block_till_done()
    await hass.config_entries.async_unload(result["result"].entry_id)


async def test_authenticated_broker(
    hass: HomeAssistant, mosquitto_auth: Broker, prefix: str
) -> None:
    result = await _submit(hass, _user_input(mosquitto_auth, prefix, password="wrong password"))
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "invalid_auth"}
    # The form keeps what was typed.
    assert _suggested(result)["username"] == BROKER_USER
    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], _user_input(mosquitto_auth, prefix)
        )
    )
    result = await _finish_discovery(hass, result)
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["username"] == BROKER_USER
    assert result["data"]["password"] == BROKER_PASSWORD
    await hass.async_block_till_done()
    entry = result["result"]
    assert entry.state is ConfigEntryState.LOADED
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the connection")
    await hass.config_entries.async_unload(entry.entry_id)


@pytest.fixture
async def web_server() -> AsyncIterator[int]:
    """An HTTP server on 127.0.0.1, as Home Assistant's own port 8123: the port of a server
    that is not an MQTT broker."""
    app = web.Application()

    async def page(_: web.Request) -> web.Response:
        return web.Response(text="Home Assistant")

    app.router.add_get("/", page)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield port
    await runner.cleanup()


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers (a firewall, a hung server)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield sock.getsockname()[1]


async def test_connection_errors_say_what_happened_where(
    hass: HomeAssistant,
    mosquitto_auth: Broker,
    mosquitto_tls: Broker,
    web_server: int,
    silent_port: int,
    tmp_path: Path,
    prefix: str,
) -> None:
    """Each way a broker connection fails has its own error naming the host and port, and the
    form answers within the connection test's time limit."""
    other_ca = make_ca_and_server(tmp_path / "other", ca_name="another CA").ca_pem
    closed = free_port()
    flow = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    texts = STRINGS["config"]["error"]

    async def submit(host: str, port: int, **changes: Any) -> tuple[str, str, float]:
        user_input = {"host": host, "port": port, "tls": False, "prefix": prefix} | changes
        started = time.monotonic()
        result = await hass.config_entries.flow.async_configure(flow["flow_id"], user_input)
        elapsed = time.monotonic() - started
        assert result["type"] is FlowResultType.FORM
        assert result["step_id"] == "user"
        (key,) = result["errors"].values()
        # Every placeholder of the text is given.
        text = texts[key].format(**result["description_placeholders"])
        return key, text, elapsed

    key, text, elapsed = await submit("127.0.0.1", closed)
    assert key == "connection_refused"
    assert text.startswith(f"127.0.0.1:{closed} refused the connection: nothing listens on port")
    assert elapsed < 2

    key, text, elapsed = await submit("127.0.0.1", web_server)
    assert key == "not_mqtt"
    assert text.startswith(f"127.0.0.1:{web_server} answered, but it is not an MQTT broker")
    assert elapsed < 2  # at once, not after a timeout

    key, text, elapsed = await submit("127.0.0.1", mosquitto_tls.port, tls=True, ca_cert=other_ca)
    assert key == "tls_error"
    assert text.startswith(
        f"TLS with 127.0.0.1:{mosquitto_tls.port} failed: certificate verify failed: "
    )
    assert elapsed < 2

    # A TLS listener, asked in plain MQTT: it hangs up without a word.
    key, text, elapsed = await submit("127.0.0.1", mosquitto_tls.port)
    assert key == "no_answer"
    assert "turn on Use TLS" in text
    assert elapsed < 2

    key, text, elapsed = await submit(
        "127.0.0.1", mosquitto_auth.port, username=BROKER_USER, password="wrong"
    )
    assert key == "invalid_auth"
    assert text == f"127.0.0.1:{mosquitto_auth.port} refused the login: wrong username or password."
    assert elapsed < 2

    # Tests may not resolve names: the resolver answers as for a name that does not exist.
    unknown = socket.gaierror(socket.EAI_NONAME, "Name or service not known")
    with patch.object(hass.loop, "getaddrinfo", side_effect=unknown):
        key, text, elapsed = await submit("broker.invalid", 1883)
    assert key == "unknown_host"
    assert text.startswith("The host name broker.invalid is not known.")

    with patch("custom_components.smart_energy_meter.broker.CHECK_TIMEOUT", 0.5):
        key, text, elapsed = await submit("127.0.0.1", silent_port)
    assert key == "timeout"
    assert text.startswith(f"127.0.0.1:{silent_port} did not answer within 0.5 s.")
    assert elapsed < 2
    hass.config_entries.flow.async_abort(flow["flow_id"])


def test_connection_test_never_waits_longer_than_a_form_should() -> None:
    assert CHECK_TIMEOUT <= 10


async def test_invalid_prefix(hass: HomeAssistant, mosquitto: Broker) -> None:
    result = await _submit(hass, _user_input(mosquitto, "sem/+/x"))
    assert result["errors"] == {"prefix": "invalid_prefix"}


async def test_tls_broker_with_private_ca(
    hass: HomeAssistant, mosquitto_tls: Broker, broker_tls: TlsFiles, prefix: str
) -> None:
    result = await _submit(
        hass, _user_input(mosquitto_tls, prefix, tls=True, ca_cert=broker_tls.ca_pem)
    )
    result = await _finish_discovery(hass, result)
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"]["tls"] is True
    assert result["data"]["ca_cert"] == broker_tls.ca_pem
    await hass.async_block_till_done()
    entry = result["result"]
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the TLS connection")
    await hass.config_entries.async_unload(entry.entry_id)


async def test_tls_errors(
    hass: HomeAssistant,
    mosquitto: Broker,
    mosquitto_tls: Broker,
    broker_tls: TlsFiles,
    tmp_path: Path,
    prefix: str,
) -> None:
    other_ca = make_ca_and_server(tmp_path / "other", ca_name="another CA").ca_pem
    flow = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})

    async def submit(broker: Broker, **changes: Any) -> dict[str, str]:
        result = await hass.config_entries.flow.async_configure(
            flow["flow_id"], _user_input(broker, prefix, tls=True, **changes)
        )
        assert result["type"] is FlowResultType.FORM
        return dict(result["errors"] or {})

    # A CA that did not sign the broker's certificate.
    assert await submit(mosquitto_tls, ca_cert=other_ca) == {"base": "tls_error"}
    # No CA given: the system's authorities do not know the private CA either.
    assert await submit(mosquitto_tls) == {"base": "tls_error"}
    # TLS towards a plain listener.
    assert await submit(mosquitto) == {"base": "tls_error"}
    # Not a certificate at all.
    assert await submit(mosquitto_tls, ca_cert="junk") == {"ca_cert": "invalid_ca"}
    hass.config_entries.flow.async_abort(flow["flow_id"])


async def test_duplicate_broker_and_prefix_aborts(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    make_entry(hass, mosquitto, prefix)
    result = await _submit(hass, _user_input(mosquitto, prefix))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_prefilled_from_home_assistant_mqtt(hass: HomeAssistant) -> None:
    MockConfigEntry(
        domain="mqtt",
        data={"broker": "broker.lan", "port": 1884, "username": "ha", "password": "pw"},
    ).add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert _suggested(dict(result)) == {
        "host": "broker.lan",
        "port": 1884,
        "username": "ha",
        "password": "pw",
    }


async def test_no_prefill_without_home_assistant_mqtt(hass: HomeAssistant) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert _suggested(dict(result)) == {}


async def test_junk_and_removed_nodes_are_not_proposed(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    await node.announce()
    await node.publish(f"{prefix}/node9/announce", b'{"proto": "2.0"}', retain=True)
    with patch("custom_components.smart_energy_meter.config_flow.DISCOVERY_SECONDS", 1.0):
        result = await _submit(hass, _user_input(mosquitto, prefix))
        # node1 is removed while the flow listens (an empty announce, as a node does).
        await asyncio.sleep(0.5)
        await node.publish(f"{prefix}/node1/announce", b"", retain=True)
        assert result["type"] is FlowResultType.SHOW_PROGRESS
        await hass.async_block_till_done()
        result = dict(await hass.config_entries.flow.async_configure(result["flow_id"]))
    assert result["step_id"] == "no_nodes"
    hass.config_entries.flow.async_abort(result["flow_id"])


async def test_abandoned_flow_never_blocks_a_new_one(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """A flow left open (the browser tab closed on the pairs step) does not block a new flow
    for the same broker; the new one wins and the abandoned one goes."""
    await node.announce()
    abandoned = await _finish_discovery(hass, await _submit(hass, _user_input(mosquitto, prefix)))
    assert abandoned["step_id"] == "pairs"
    # Also one abandoned on the broker form, before anything was submitted.
    await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})

    result = await _submit(hass, _user_input(mosquitto, prefix))
    assert result["type"] is FlowResultType.SHOW_PROGRESS
    result = await _finish_discovery(hass, result)
    assert result["step_id"] == "pairs"
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], {}))
    assert result["type"] is FlowResultType.CREATE_ENTRY
    flows = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert abandoned["flow_id"] not in {flow["flow_id"] for flow in flows}
    # Another flow for the broker now finds it configured.
    again = await _submit(hass, _user_input(mosquitto, prefix))
    assert again["type"] is FlowResultType.ABORT
    assert again["reason"] == "already_configured"
    await hass.async_block_till_done()
    await hass.config_entries.async_unload(result["result"].entry_id)
    for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN):
        hass.config_entries.flow.async_abort(flow["flow_id"])


async def test_pairs_of_two_nodes_with_one_name_are_named_apart(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    await node.announce()
    async with TestNode(mosquitto, prefix, node="node2") as other:
        await other.announce()
        result = await _finish_discovery(hass, await _submit(hass, _user_input(mosquitto, prefix)))
        assert result["step_id"] == "pairs"
        result = dict(
            await hass.config_entries.flow.async_configure(
                result["flow_id"],
                {"pairs": ["node1/house1", "node1/house2", "node2/house1"]},
            )
        )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    titles = sorted(s.title for s in entry.subentries.values())
    assert titles == ["House 1", "House 1 (node2)", "House 2"]
    assert {s.data["name"] for s in entry.subentries.values()} == set(titles)
    await hass.async_block_till_done()
    await hass.config_entries.async_unload(entry.entry_id)
