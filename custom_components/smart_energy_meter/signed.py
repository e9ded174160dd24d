"""Signed readings inside Home Assistant: the tamper alarm's timer, log lines and repair issue.

See "Signed readings" in docs/protocol.md. Which readings of a node with a key are believed is
`semcore.signing.SignedNodes`'s to decide; a refused one is logged once per episode, and shows as
tamper suspected with a repair issue until TAMPER_HOLD seconds pass without another refusal.
Keys never leave the pure part: no log line, issue or diagnostics value carries one.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from datetime import datetime
from functools import partial
from typing import Any

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .issues import NodeIssue, async_clear, async_raise
from .semcore.protocol import Message
from .semcore.signing import TAMPER_HOLD, Ignored, Refused, SignedNodes

_LOGGER = logging.getLogger(__name__)

__all__ = ["TAMPER_HOLD", "SignedReadings"]


class SignedReadings:
    """Verifies the readings of the nodes that have a key."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        keys: Mapping[str, bytes],
        on_change: Callable[[str], None],
    ) -> None:
        self._hass = hass
        self._entry_id = entry_id
        self._nodes = SignedNodes(keys)
        self._on_change = on_change
        self._holds: dict[str, CALLBACK_TYPE] = {}

    def suspected(self, node: str) -> bool:
        """True while readings of the node were refused within TAMPER_HOLD."""
        return self._nodes.suspected(node)

    @callback
    def admit(self, message: Message, topic: str, payload: bytes, retained: bool) -> bool:
        """Whether a decoded message may be used (what a node does not sign always may)."""
        verdict = self._nodes.admit_message(message, topic, payload, retained, time.time())
        if isinstance(verdict, Ignored):
            _LOGGER.debug("Not using the reading on %s: %s", topic, verdict.reason)
            return False
        if isinstance(verdict, Refused):
            self._refused(message.node, topic, verdict)
            return False
        return True

    def _refused(self, node: str, topic: str, refused: Refused) -> None:
        if (cancel := self._holds.pop(node, None)) is not None:
            cancel()
        self._holds[node] = async_call_later(self._hass, TAMPER_HOLD, partial(self._release, node))
        if not refused.new:
            _LOGGER.debug("Refused a reading on %s: %s", topic, refused.detail)
            return
        _LOGGER.warning(
            "Refused a reading of node %s on %s (%s): tamper suspected", node, topic, refused.detail
        )
        async_raise(
            self._hass,
            NodeIssue.SIGNATURE_REFUSED,
            self._entry_id,
            node,
            minutes=f"{TAMPER_HOLD / 60:g}",
        )
        self._on_change(node)

    @callback
    def _release(self, node: str, _now: datetime) -> None:
        self._holds.pop(node, None)
        self._nodes.release(node)
        _LOGGER.info(
            "Node %s: no refused reading for %g minutes; tamper no longer suspected",
            node,
            TAMPER_HOLD / 60,
        )
        async_clear(self._hass, self._entry_id, node, NodeIssue.SIGNATURE_REFUSED)
        self._on_change(node)

    @callback
    def async_stop(self) -> None:
        """Cancel the timers; the issues belong to this run and go with it."""
        for cancel in self._holds.values():
            cancel()
        self._holds.clear()
        for node in self._nodes.nodes:
            async_clear(self._hass, self._entry_id, node, NodeIssue.SIGNATURE_REFUSED)

    def diagnostics(self) -> dict[str, Any]:
        """Counts per node; never the key."""
        return self._nodes.diagnostics()
