"""The node's MQTT client against a broker that stops answering (CPython asyncio, fake broker).

A real mosquitto cannot be made to accept a connection and then ignore PINGREQ, so this one
behaviour is checked against a minimal scripted broker.
"""

from __future__ import annotations

import asyncio
import contextlib

from semfw.backoff import Backoff
from semfw.mqtt import Client
from semsim.clock import SimClock


async def test_keepalive_detects_a_silent_broker_and_reconnects() -> None:
    connects: list[bytes] = []
    reconnected = asyncio.Event()
    pings = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal pings
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readexactly(2)
                body = await reader.readexactly(head[1])
                if head[0] == 0x10:
                    connects.append(body)
                    if len(connects) == 2:
                        reconnected.set()
                    writer.write(b"\x20\x02\x00\x00")  # CONNACK, accepted
                    await writer.drain()
                elif head[0] == 0xC0:
                    pings += 1  # and never a PINGRESP
        writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    lines: list[str] = []
    client = Client(
        "n1",
        "127.0.0.1",
        port,
        SimClock(1.0),
        keepalive_s=1,
        backoff=Backoff(100, 200),
        log=lines.append,
    )
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(reconnected.wait(), 10)
    finally:
        await client.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.close()
    assert pings >= 1
    assert any("no answer from the broker" in line for line in lines)
    assert len(connects) >= 2  # the client came back on its own


async def test_a_refused_connection_is_retried_with_backoff() -> None:
    lines: list[str] = []
    refused_thrice = asyncio.Event()

    def log(line: str) -> None:
        lines.append(line)
        if sum("not authorised" in entry for entry in lines) == 3:
            refused_thrice.set()

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read(100)
        writer.write(b"\x20\x02\x00\x05")  # CONNACK: not authorised
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(refuse, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = Client("n1", "127.0.0.1", port, SimClock(1.0), backoff=Backoff(50, 100), log=log)
    task = asyncio.create_task(client.run())
    try:
        await asyncio.wait_for(refused_thrice.wait(), 10)
    finally:
        await client.disconnect()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        server.close()
    assert client.connections == 0
    assert not client.connected
