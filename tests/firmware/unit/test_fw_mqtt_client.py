"""The MQTT client's connection handling against a scripted broker on 127.0.0.1: a broker that
never answers the CONNECT, one whose ACL refuses subscriptions, and one that drops what the node
publishes. Runs under CPython and the MicroPython unix port alike."""

import asyncio

from semfw.backoff import Backoff
from semfw.mqtt import CONNECT, PUBLISH, SUBSCRIBE, Client, ca_certificates, publish_packet
from semsim.clock import SimClock

from tests.firmware.unit.support import raises, run

CHECK = "sem/n1/status"


async def _read(reader):
    head = await reader.readexactly(1)
    length = shift = 0
    while True:
        byte = (await reader.readexactly(1))[0]
        length |= (byte & 0x7F) << shift
        shift += 7
        if not byte & 0x80:
            break
    body = await reader.readexactly(length) if length else b""
    return head[0], body


def _broker(echo, refuse=(), answer_connect=True):
    """A handler: CONNACK, SUBACK (0x80 for the filters in refuse), PUBACK; a retained publish
    to CHECK is handed back on subscription when echo is true."""
    retained = {}

    async def handle(reader, writer):
        try:
            while True:
                first, body = await _read(reader)
                kind = first & 0xF0
                if kind == CONNECT:
                    if not answer_connect:
                        continue
                    writer.write(b"\x20\x02\x00\x00")
                elif kind == PUBLISH:
                    length = (body[0] << 8) | body[1]
                    topic = bytes(body[2 : 2 + length]).decode()
                    packet_id = body[2 + length : 4 + length]
                    if first & 0x01:
                        retained[topic] = bytes(body[4 + length :])
                    writer.write(b"\x40\x02" + bytes(packet_id))
                elif first == SUBSCRIBE:
                    codes = b""
                    index = 2
                    topics = []
                    while index < len(body):
                        length = (body[index] << 8) | body[index + 1]
                        topics.append(bytes(body[index + 2 : index + 2 + length]).decode())
                        index += 3 + length
                        codes += b"\x80" if topics[-1] in refuse else b"\x01"
                    writer.write(bytes((0x90, 2 + len(codes))) + bytes(body[:2]) + codes)
                    for topic in topics:
                        if echo and topic in retained:
                            writer.write(publish_packet(topic, retained[topic], 0, True))
                await writer.drain()
        except (EOFError, OSError):
            pass
        writer.close()

    return handle


async def _serve(handler):
    """Listen on a free port of 127.0.0.1 (MicroPython's server cannot tell its port)."""
    port = 23000 + SimClock().ticks_ms() % 1000
    for attempt in range(40):
        try:
            server = await asyncio.start_server(handler, "127.0.0.1", port + attempt * 997)
        except OSError:
            continue
        return server, port + attempt * 997
    raise AssertionError("no free port")


async def _run_client(handler, until, on_connect=None, **client_args):
    """Run a client against the handler until `until(client, lines)`; the client and its log.
    on_connect(client) makes the client's on_connect."""
    server, port = await _serve(handler)
    lines = []
    client = Client(
        "n1",
        "127.0.0.1",
        port,
        SimClock(),
        backoff=Backoff(50, 100),
        log=lines.append,
        **client_args,
    )
    if on_connect is not None:
        client.on_connect = on_connect(client)
    task = asyncio.create_task(client.run())
    try:
        for _ in range(400):
            if until(client, lines):
                break
            await asyncio.sleep(0.025)
    finally:
        await client.disconnect()
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
        server.close()
    return client, lines


def _said(text):
    return lambda client, lines: any(text in line for line in lines)


def _publish_status(client):
    async def on_connect():
        await client.publish(CHECK, b"online", True)
        await client.subscribe([("sem/n1/relay/r1/set", 1)])

    return on_connect


def test_a_connect_timeout_says_that_it_timed_out():
    handler = _broker(True, answer_connect=False)
    _, lines = run(_run_client(handler, _said("cannot connect"), connect_timeout_ms=150))
    failure = [line for line in lines if "cannot connect" in line][0]
    assert "(timed out); retry in" in failure, failure


def test_a_broker_that_hands_the_status_back_delivers():
    def checked(client, lines):
        return client.delivering is not None

    client, lines = run(_run_client(_broker(True), checked, _publish_status, check_topic=CHECK))
    assert client.delivering is True
    assert not any("drops" in line or "refused" in line for line in lines), lines


def test_a_broker_that_drops_the_nodes_publishes_is_named_in_the_log():
    client, lines = run(
        _run_client(
            _broker(False),
            _said("drops this node's messages"),
            _publish_status,
            check_topic=CHECK,
            user="sem",
        )
    )
    assert client.delivering is False
    line = [line for line in lines if "drops" in line][0]
    assert "user 'sem'" in line and "node id 'n1'" in line, line


def test_a_refused_subscription_is_named_in_the_log():
    results = []

    def subscribe_two(client):
        async def on_connect():
            results.append(await client.subscribe([("sem/n1/a", 1), ("sem/n1/relay/r1/set", 1)]))

        return on_connect

    handler = _broker(True, refuse=("sem/n1/relay/r1/set",))
    _, lines = run(_run_client(handler, lambda client, lines: results, subscribe_two))
    assert results == [False]
    refused = [line for line in lines if "refused the subscription" in line]
    assert len(refused) == 1 and "sem/n1/relay/r1/set" in refused[0], lines


PEM = (
    b"-----BEGIN CERTIFICATE-----\nAAEC\nAwQ=\n-----END CERTIFICATE-----\n"
    b"junk between\n-----BEGIN CERTIFICATE-----\r\nBQYH\r\n-----END CERTIFICATE-----\r\n"
)


def test_ca_certificates_from_pem_or_der():
    assert ca_certificates(PEM) == [b"\x00\x01\x02\x03\x04", b"\x05\x06\x07"]
    assert ca_certificates(b"\x30\x82\x01\x00") == [b"\x30\x82\x01\x00"]
    raises(ValueError, ca_certificates, b"-----BEGIN PRIVATE KEY-----\nAAEC\n")
