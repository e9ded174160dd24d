"""Node firmware updates of one entry: the shipped bundle, the nodes' update states, the sends.

The nodes' retained `update/state` messages come here instead of the meter model; an update in
progress receives them through a queue (semcore.firmware.send does the rest).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .hub import Hub, NotConnectedError
from .semcore.firmware import (
    Bundle,
    BundleError,
    Transfer,
    UpdateState,
    decode_update_state,
    load_bundle,
    send,
)
from .semcore.protocol import Rejected, valid_id

_LOGGER = logging.getLogger(__name__)

BUNDLE_DIR: Final = Path(__file__).parent / "node_firmware"
STATE_SUFFIX: Final = "/update/state"


class NodeUpdates:
    """The entry's side of node firmware updates."""

    def __init__(self, hass: HomeAssistant, prefix: str, hub: Hub) -> None:
        self._hass = hass
        self._prefix = prefix
        self._hub = hub
        self.bundle: Bundle | None = None
        self.states: dict[str, UpdateState] = {}
        self._queues: dict[str, asyncio.Queue[UpdateState]] = {}
        self._listeners: dict[str, list[Callable[[], None]]] = {}

    async def async_load_bundle(self) -> None:
        """Read the firmware that ships with the integration (once)."""
        if self.bundle is not None:
            return
        try:
            self.bundle = await self._hass.async_add_executor_job(load_bundle, BUNDLE_DIR)
        except BundleError as err:
            _LOGGER.error("The node firmware shipped with the integration is damaged: %s", err)

    @callback
    def async_handle_message(self, topic: str, payload: bytes) -> None:
        """A node's `update/state`."""
        node = topic[len(self._prefix) + 1 : -len(STATE_SUFFIX)]
        if not valid_id(node):
            _LOGGER.warning("Update state on %.80s ignored: not a node's topic", topic)
            return
        state = decode_update_state(payload)
        if isinstance(state, Rejected):
            _LOGGER.warning("Update state of node %s ignored: %s", node, state.reason)
            return
        self.states[node] = state
        if (queue := self._queues.get(node)) is not None:
            queue.put_nowait(state)
        for listener in list(self._listeners.get(node, ())):
            listener()

    @callback
    def async_subscribe(self, node: str, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` when the node's update state changes."""
        self._listeners.setdefault(node, []).append(listener)
        return lambda: self._listeners[node].remove(listener)

    async def _publish(self, topic: str, payload: bytes, qos: int) -> bool:
        try:
            await self._hub.async_publish(topic, payload, retain=False, qos=qos)
        except NotConnectedError:
            return False  # sent again when the node asks again
        return True

    async def async_send(self, transfer: Transfer, progress: Callable[[int], None]) -> UpdateState:
        """Send the transfer and wait for the node's verdict (see semcore.firmware.send)."""
        if transfer.node in self._queues:
            raise RuntimeError(f"an update of node {transfer.node} is already running")
        queue: asyncio.Queue[UpdateState] = asyncio.Queue()
        self._queues[transfer.node] = queue
        try:
            return await send(transfer, self._publish, queue, progress)
        finally:
            del self._queues[transfer.node]

    def busy(self, node: str) -> bool:
        """True while an update of the node runs."""
        return node in self._queues
