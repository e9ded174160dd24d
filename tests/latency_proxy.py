"""A TCP proxy in front of a broker that adds network round-trip time, or freezes the broker.

Each direction delays every chunk by half the round trip and keeps the order. `freeze()` holds
everything in both directions (a broker that stopped answering: the connection stays open, no
byte comes back) until `thaw()`; `mute()` holds only what the broker sends (its
acknowledgements are lost, what the client sends still arrives) until `unmute()`; `sever()`
closes every connection (with what it held) at once. It runs its
own event loop in a thread, so synchronous tests, asyncio tests and benchmarks use it alike.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from collections.abc import Iterator

from tests.mosquitto import Broker


class LatencyProxy:
    def __init__(self, upstream_host: str, upstream_port: int, round_trip_ms: float = 0.0) -> None:
        self.upstream = (upstream_host, upstream_port)
        self.round_trip_ms = round_trip_ms
        self.host = "127.0.0.1"
        self.port = 0
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._flowing: asyncio.Event | None = None
        self._replying: asyncio.Event | None = None
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    def _call(self, coro: object) -> object:
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    def start(self) -> None:
        self._thread.start()

        async def serve() -> None:
            self._flowing = asyncio.Event()
            self._flowing.set()
            self._replying = asyncio.Event()
            self._replying.set()
            self._server = await asyncio.start_server(self._connection, self.host, 0)
            self.port = self._server.sockets[0].getsockname()[1]

        self._call(serve())

    def stop(self) -> None:
        async def close() -> None:
            assert self._server is not None
            self._server.close()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.sleep(0)

        self._call(close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def freeze(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.clear)

    def thaw(self) -> None:
        assert self._flowing is not None
        self._loop.call_soon_threadsafe(self._flowing.set)

    def mute(self) -> None:
        assert self._replying is not None
        self._loop.call_soon_threadsafe(self._replying.clear)

    def unmute(self) -> None:
        assert self._replying is not None
        self._loop.call_soon_threadsafe(self._replying.set)

    def sever(self) -> None:
        def cancel() -> None:
            for task in list(self._tasks):
                task.cancel()

        self._loop.call_soon_threadsafe(cancel)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        except OSError:
            writer.close()
            return
        for task in (
            asyncio.ensure_future(self._pipe(reader, up_writer)),
            asyncio.ensure_future(self._pipe(up_reader, writer, replies=True)),
        ):
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _pipe(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, replies: bool = False
    ) -> None:
        queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue()

        async def forward() -> None:
            assert self._flowing is not None
            while True:
                due, data = await queue.get()
                if not data:
                    break
                wait = due - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                await self._flowing.wait()
                if replies:
                    assert self._replying is not None
                    await self._replying.wait()
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(forward())
        try:
            while True:
                data = await reader.read(65536)
                queue.put_nowait((time.monotonic() + self.round_trip_ms / 2000, data))
                if not data:
                    break
            await sender
        except OSError, asyncio.CancelledError:
            pass
        finally:
            sender.cancel()
            with contextlib.suppress(OSError, RuntimeError):
                writer.close()


@contextlib.contextmanager
def latency_proxy(broker: Broker, round_trip_ms: float = 0.0) -> Iterator[LatencyProxy]:
    proxy = LatencyProxy(broker.host, broker.port, round_trip_ms)
    proxy.start()
    try:
        yield proxy
    finally:
        proxy.stop()
