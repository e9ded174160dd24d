"""The firmware under MicroPython against the broker of docs/mosquitto, set up as its README says:
the CA and certificate its commands make, mosquitto run with the shipped configuration (TLS only,
a password per account) and the shipped ACL, where a node's user name must be its node id."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import ssl
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiomqtt
import pytest

from tests.docs_broker import make_certificates, running_docs_broker
from tests.firmware.e2e import Observer, SimNode
from tests.mosquitto import Broker
from tests.tls import TlsFiles, make_ca_and_server

REPO = Path(__file__).parents[2]
NODE = "e2e-node"
USERS = {"homeassistant": "ha-secret-1", NODE: "node-secret", "sem": "change me"}


@pytest.fixture
def docs_tls(tmp_path: Path) -> TlsFiles:
    """The CA and the broker's certificate made by docs/mosquitto/README.md's commands."""
    return make_certificates(tmp_path / "ca")


@pytest.fixture
def secure_broker(tmp_path: Path, docs_tls: TlsFiles) -> Iterator[Broker]:
    """mosquitto run with docs/mosquitto/mosquitto.conf and sem.acl as shipped."""
    with running_docs_broker(tmp_path / "mosquitto", docs_tls, USERS) as broker:
        yield broker


@pytest.fixture
def nodes() -> Iterator[list[SimNode]]:
    started: list[SimNode] = []
    yield started
    for node in started:
        node.kill()


@contextlib.asynccontextmanager
async def observe_tls(broker: Broker, tls: TlsFiles) -> AsyncIterator[Observer]:
    """Home Assistant's account, subscribed to sem/# over TLS."""
    context = ssl.create_default_context(cafile=str(tls.ca_cert))
    async with aiomqtt.Client(
        broker.host,
        broker.port,
        username="homeassistant",
        password=USERS["homeassistant"],
        tls_context=context,
    ) as client:
        observer = Observer(client, "sem")
        await client.subscribe("sem/#", qos=1)
        task = asyncio.create_task(observer._collect())
        try:
            yield observer
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task


def _node(broker: Broker, ca: Path, user: str, *extra: str) -> SimNode:
    return SimNode(
        broker,
        "--prefix",
        "sem",
        "--tls-ca",
        str(ca),
        "--username",
        user,
        "--password",
        USERS[user],
        *extra,
    )


async def test_node_over_tls_with_its_own_account(
    secure_broker: Broker, docs_tls: TlsFiles, nodes: list[SimNode]
) -> None:
    async with observe_tls(secure_broker, docs_tls) as obs:
        node = _node(secure_broker, docs_tls.ca_cert, NODE)
        nodes.append(node)
        await node.wait_line("mqtt: connected to 127.0.0.1")
        await obs.wait_topic(f"sem/{NODE}/status", b"online")
        await obs.wait_topic(f"sem/{NODE}/announce")
        state = await obs.wait_topic(f"sem/{NODE}/house2/state", within=15)
        assert json.loads(state.payload)["p"] > 0
        # A relay command from Home Assistant's account reaches the node and comes back.
        since = time.monotonic()
        await obs.client.publish(f"sem/{NODE}/relay/r1/set", b"ON", qos=1)
        await obs.wait_topic(f"sem/{NODE}/relay/r1/state", b"ON", since=since)
        await asyncio.sleep(6)  # longer than the node's delivery check
        assert node.stop() == 0
    out = node.output()
    assert "drops this node's messages" not in out
    assert "refused the subscription" not in out
    assert "cannot connect" not in out


async def test_a_user_name_other_than_the_node_id_is_noticed(
    secure_broker: Broker, docs_tls: TlsFiles, nodes: list[SimNode]
) -> None:
    # The login is accepted, and the shipped ACL drops everything the node publishes.
    async with observe_tls(secure_broker, docs_tls) as obs:
        node = _node(secure_broker, docs_tls.ca_cert, "sem")
        nodes.append(node)
        await node.wait_line("mqtt: connected to 127.0.0.1")
        await node.wait_line(
            r"mqtt: the broker drops this node's messages: sem/e2e-node/status did not come "
            r"back within 5 s\. Its ACL does not let user 'sem' publish there \(the shipped ACL "
            r"wants the user name to be the node id 'e2e-node'\)",
            within=15,
        )
        # mosquitto grants the subscriptions and delivers nothing: only the check tells.
        assert node.stop() == 0
        assert obs.messages == []


@pytest.mark.parametrize("wrong", ["ca", "server_name"])
async def test_a_broker_that_is_not_the_one_configured_is_refused(
    secure_broker: Broker, docs_tls: TlsFiles, nodes: list[SimNode], tmp_path: Path, wrong: str
) -> None:
    if wrong == "ca":
        other = make_ca_and_server(tmp_path / "other", ca_name="someone else")
        node = _node(secure_broker, other.ca_cert, NODE)
    else:
        node = _node(secure_broker, docs_tls.ca_cert, NODE, "--tls-server-name", "broker.example")
    nodes.append(node)
    failure = await node.wait_line(r"mqtt: cannot connect to 127\.0\.0\.1:\d+ \((.+)\); retry")
    assert failure.group(1).strip("() ")
    await asyncio.sleep(1)
    assert node.stop() == 0
    assert "mqtt: connected" not in node.output()


async def test_a_missing_ca_file_is_said_and_retried(
    secure_broker: Broker, nodes: list[SimNode], tmp_path: Path
) -> None:
    node = _node(secure_broker, tmp_path / "absent.crt", NODE)
    nodes.append(node)
    await node.wait_line(r"cannot connect .*TLS: cannot use the CA certificate .*absent\.crt")
    assert node.stop() == 0


def _simulate(*args: str) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [str(REPO / "scripts" / "simulate"), *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


async def test_scripts_simulate_over_tls(secure_broker: Broker, docs_tls: TlsFiles) -> None:
    # The fleet command passes TLS on to its nodes (port 8883 unless --port says otherwise).
    scenario = REPO / "tests" / "firmware" / "scenarios" / "e2e.json"
    async with observe_tls(secure_broker, docs_tls) as obs:
        proc = _simulate(
            str(scenario),
            "--host",
            secure_broker.host,
            "--port",
            str(secure_broker.port),
            "--prefix",
            "sem",
            "--tls-ca",
            str(docs_tls.ca_cert),
            "--username",
            NODE,
            "--password",
            USERS[NODE],
        )
        try:
            await obs.wait_topic(f"sem/{NODE}/line1/state", within=20)
        finally:
            proc.send_signal(signal.SIGTERM)
            output = await asyncio.to_thread(proc.communicate, timeout=15)
        assert proc.returncode == 0, output[0].decode()[-2000:]
        await obs.wait_topic(f"sem/{NODE}/status", b"offline")
    assert "drops this node's messages" not in output[0].decode()
