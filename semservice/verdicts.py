"""The pairs' verdict topics, published retained through the cluster's MQTT listeners.

A pair's service verdict is its current state, so an MQTT client that connects later (a Home
Assistant after a restart) must get it at once: retained. NATS keeps retained messages only
for what MQTT clients publish, so the worker publishes through an MQTT connection of its own,
to the first listener that answers. The events stream stays the record; this is the view.

At most one verdict per pair waits while no listener answers: a newer one supersedes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiomqtt

_LOGGER = logging.getLogger(__name__)

# Between two rounds over the listeners when none answered.
RETRY_S = 1.0


class VerdictPublisher:
    """Publishes each pair's latest verdict retained at QoS 1; one connection per worker."""

    def __init__(self, listeners: list[tuple[str, int]], client_id: str) -> None:
        self.listeners = listeners
        self.client_id = client_id
        self._pending: dict[str, bytes] = {}  # topic -> latest payload not yet acknowledged
        self._ready = asyncio.Event()
        self._drained = asyncio.Event()  # set while nothing is pending
        self._drained.set()
        self._task: asyncio.Task[None] | None = None
        self.published = 0

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self, within: float = 5.0) -> None:
        """Give what is pending `within` seconds to go out, then close."""
        if self._task is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._drained.wait(), within)
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task

    def publish(self, topic: str, payload: bytes) -> None:
        """Queue a pair's verdict; it replaces the pair's verdict still waiting, if any."""
        self._pending[topic] = payload
        self._drained.clear()
        self._ready.set()

    async def _run(self) -> None:
        index = failures = 0
        while True:
            host, port = self.listeners[index]
            try:
                async with aiomqtt.Client(
                    host, port, identifier=self.client_id, timeout=5
                ) as client:
                    failures = 0
                    _LOGGER.info("Verdicts go to the MQTT listener %s:%d", host, port)
                    await self._serve(client)
            except aiomqtt.MqttError as err:
                # That server may be gone: the next one, and a pause after a round of them.
                _LOGGER.warning("MQTT listener %s:%d: %s; verdicts wait", host, port, err)
                index = (index + 1) % len(self.listeners)
                failures += 1
                if failures % len(self.listeners) == 0:
                    await asyncio.sleep(RETRY_S)

    async def _serve(self, client: aiomqtt.Client) -> None:
        while True:
            await self._ready.wait()
            self._ready.clear()
            for topic, payload in list(self._pending.items()):
                await client.publish(topic, payload, qos=1, retain=True)
                # Only what is still the latest is done: a newer one may have come meanwhile.
                if self._pending.get(topic) is payload:
                    del self._pending[topic]
                self.published += 1
            if not self._pending:
                self._drained.set()
