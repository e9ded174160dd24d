"""The ceiling: the same broker stream consumed by a bare aiomqtt loop that only decodes."""

from __future__ import annotations

import asyncio
import contextlib
from types import TracebackType

import aiomqtt

from benchmarks.ingest.measure import Counter
from custom_components.smart_energy_meter.semcore import protocol as p


class Ceiling:
    """Subscribes to every prefix's state topics and decodes each message with the codec."""

    def __init__(self, port: int, prefixes: list[str]) -> None:
        self.counter = Counter()
        self._port = port
        self._prefixes = prefixes
        self._task: asyncio.Task[None] | None = None
        self._subscribed = asyncio.Event()

    async def __aenter__(self) -> Ceiling:
        self._task = asyncio.create_task(self._run())
        await asyncio.wait_for(self._subscribed.wait(), 30)
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def ready(self, settle: float) -> None:
        """Let the retained replay pass."""
        await asyncio.sleep(settle)

    async def _run(self) -> None:
        async with aiomqtt.Client("127.0.0.1", self._port, identifier="bench-ceiling") as client:
            for prefix in self._prefixes:
                await client.subscribe(f"{prefix}/+/+/state", qos=1)
            self._subscribed.set()
            async for message in client.messages:
                topic = message.topic.value
                decoded = p.decode(
                    topic.partition("/")[0], topic, message.payload,  # type: ignore[arg-type]
                    retained=message.retain,
                )  # fmt: skip
                if isinstance(decoded, p.Snapshot) and not message.retain:
                    self.counter.processed(decoded.ts)
