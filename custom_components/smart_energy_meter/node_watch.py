"""The nodes' health, for the user: a log line when a node goes offline or comes back, a repair
issue when a node has not been heard from for a day while the broker was connected, and one when
nothing at all arrived from a node (or, for an entry without meter pairs, from any node) in the
first minutes of a connection: a node the broker does not let publish looks exactly like that.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from datetime import datetime
from functools import partial
from typing import Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .fleet import Fleet, NodeKey
from .hub import Hub
from .issues import (
    NodeIssue,
    async_clear,
    async_clear_nothing_heard,
    async_is_raised,
    async_nothing_heard_raised,
    async_raise,
    async_raise_nothing_heard,
)

_LOGGER = logging.getLogger(__name__)

# A node unheard for this long while the broker was connected gets a repair issue.
SILENT_AFTER: Final = 24 * 3600.0
# While the issue is open, how often to look whether the node spoke again.
RECHECK: Final = 600.0
# Nothing at all (not even a retained message) from a node this long after the broker connected:
# a node is running but the broker drops what it publishes (ACL, user name), or it is not running.
UNHEARD_AFTER: Final = 600.0
# While such an issue is open, how often to look whether something arrived.
UNHEARD_RECHECK: Final = 60.0


class NodeWatch:
    """Watches the nodes the meter pairs use."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry_id: str,
        prefix: str,
        fleet: Fleet,
        hub: Hub,
        nodes: Iterable[str],
    ) -> None:
        self._hass = hass
        self._entry_id = entry_id
        self._prefix = prefix
        self._fleet = fleet
        self._hub = hub
        self._nodes = tuple(dict.fromkeys(nodes))
        self._connected_at = 0.0
        self._timers: dict[str, CALLBACK_TYPE] = {}
        # Silent nodes, with the `heard` time they had when the issue was raised.
        self._silent: dict[str, float | None] = {}
        self._offline: set[str] = set()
        self._unheard: set[str] = set()
        self._nothing_heard = False
        self._unheard_timer: CALLBACK_TYPE | None = None
        self._unsubs: list[CALLBACK_TYPE] = []

    @callback
    def async_start(self) -> None:
        """Follow the nodes and the broker connection."""
        # Issues of nothing heard that the entry's previous run raised are this run's to clear.
        hass, entry_id = self._hass, self._entry_id
        self._unheard = {
            n for n in self._nodes if async_is_raised(hass, NodeIssue.UNHEARD, entry_id, n)
        }
        self._nothing_heard = async_nothing_heard_raised(hass, entry_id)
        self._unsubs.append(self._hub.async_add_listener(self._on_connection))
        for node in self._nodes:
            self._unsubs.append(
                self._fleet.async_subscribe(NodeKey(node), partial(self._on_node, node))
            )

    @callback
    def async_stop(self) -> None:
        """Stop following; open issues stay until the node is heard or its device is deleted."""
        while self._unsubs:
            self._unsubs.pop()()
        for cancel in self._timers.values():
            cancel()
        self._timers.clear()
        self._cancel_unheard()

    def is_silent(self, node: str) -> bool:
        """True while the node's silence issue is open."""
        return node in self._silent

    # --- connection -------------------------------------------------------------------------

    @callback
    def _on_connection(self) -> None:
        if self._hub.connected:
            # A node cannot be heard without the broker: its day starts at the connection.
            self._connected_at = time.time()
            for node in self._nodes:
                self._schedule(node, RECHECK if node in self._silent else SILENT_AFTER)
            self._schedule_unheard(UNHEARD_AFTER)
        else:
            for cancel in self._timers.values():
                cancel()
            self._timers.clear()
            self._cancel_unheard()

    def _schedule(self, node: str, delay: float) -> None:
        if (cancel := self._timers.pop(node, None)) is not None:
            cancel()
        self._timers[node] = async_call_later(self._hass, delay, partial(self._check, node))

    def _heard(self, node: str) -> float | None:
        state = self._fleet.nodes.get(node)
        return state.heard if state is not None else None

    @callback
    def _check(self, node: str, now: datetime) -> None:
        # Timers run only while connected: a lost connection cancels them.
        self._timers.pop(node, None)
        heard = self._heard(node)
        if node in self._silent:
            if heard != self._silent[node]:
                self._clear(node)
            else:
                self._schedule(node, RECHECK)
            return
        remaining = max(heard or 0.0, self._connected_at) + SILENT_AFTER - now.timestamp()
        if remaining > 0:
            self._schedule(node, remaining)
            return
        self._silent[node] = heard
        hours = f"{SILENT_AFTER / 3600:g}"
        _LOGGER.warning("Node %s has not been heard from for %s hours", node, hours)
        async_raise(
            self._hass, NodeIssue.SILENT, self._entry_id, node, hours=hours, prefix=self._prefix
        )
        self._schedule(node, RECHECK)

    def _clear(self, node: str) -> None:
        del self._silent[node]
        _LOGGER.info("Node %s is heard from again", node)
        async_clear(self._hass, self._entry_id, node, NodeIssue.SILENT)
        self._schedule(node, SILENT_AFTER)

    # --- nothing heard at all ----------------------------------------------------------------

    def _schedule_unheard(self, delay: float) -> None:
        self._cancel_unheard()
        self._unheard_timer = async_call_later(self._hass, delay, self._check_unheard)

    def _cancel_unheard(self) -> None:
        if self._unheard_timer is not None:
            self._unheard_timer()
            self._unheard_timer = None

    @callback
    def _check_unheard(self, _now: datetime) -> None:
        self._unheard_timer = None
        known = self._fleet.nodes
        minutes = f"{UNHEARD_AFTER / 60:g}"
        for node in self._nodes:
            if node in known:
                self._clear_unheard(node)
            elif node not in self._unheard:
                self._unheard.add(node)
                _LOGGER.warning(
                    "Nothing arrived from node %s under %s/ in %s minutes; is the broker "
                    "dropping what it publishes?",
                    node,
                    self._prefix,
                    minutes,
                )
                async_raise(
                    self._hass,
                    NodeIssue.UNHEARD,
                    self._entry_id,
                    node,
                    minutes=minutes,
                    prefix=self._prefix,
                )
        # An entry without pairs waits for nodes to announce themselves; value-topics meters
        # are not nodes.
        waiting = not self._nodes and not self._fleet.value_topics
        if waiting and not known and not self._nothing_heard:
            self._nothing_heard = True
            _LOGGER.warning("No node published under %s/ in %s minutes", self._prefix, minutes)
            async_raise_nothing_heard(
                self._hass, self._entry_id, minutes=minutes, prefix=self._prefix
            )
        elif self._nothing_heard and (known or not waiting):
            self._nothing_heard = False
            async_clear_nothing_heard(self._hass, self._entry_id)
        if self._unheard or self._nothing_heard:
            self._schedule_unheard(UNHEARD_RECHECK)

    def _clear_unheard(self, node: str) -> None:
        if node in self._unheard:
            self._unheard.discard(node)
            async_clear(self._hass, self._entry_id, node, NodeIssue.UNHEARD)

    # --- status -----------------------------------------------------------------------------

    @callback
    def _on_node(self, node: str) -> None:
        state = self._fleet.nodes[node]  # notified after the fleet made its state
        self._clear_unheard(node)
        if node in self._silent and state.heard != self._silent[node]:
            self._clear(node)
        # Offline is the node's last will (or its removal); said once, and once when it is back.
        if not state.online and node not in self._offline:
            self._offline.add(node)
            _LOGGER.info("Node %s is offline; its meters are unavailable", node)
        elif state.online and state.status is not None and node in self._offline:
            self._offline.discard(node)
            _LOGGER.info("Node %s is online again", node)
