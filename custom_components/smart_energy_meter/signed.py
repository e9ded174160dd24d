"""Signed readings: the nodes that have a key, what of theirs is believed, and the tamper alarm.

See "Signed readings" in docs/protocol.md. For a node with a key, a `state` or `announce` is
used only when its HMAC matches and, for a `state`, when its `seq`/`ts` are fresh (ReplayGuard).
Anything else is refused: counted, logged once per episode, and shown as tamper suspected with a
repair issue until TAMPER_HOLD seconds pass without another refusal. Keys never leave this
module: no log line, issue or diagnostics value carries one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from functools import partial
from typing import Any, Final

from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_call_later

from .issues import NodeIssue, async_clear, async_raise
from .semcore.protocol import Announce, NodeGone, SensorError, Snapshot
from .semcore.signing import ReplayGuard, verify_payload

_LOGGER = logging.getLogger(__name__)

# How long tamper stays suspected after the last refused reading.
TAMPER_HOLD: Final = 600.0

type SignedMessage = Snapshot | SensorError | Announce | NodeGone
SIGNED_KINDS: Final = (Snapshot, SensorError, Announce, NodeGone)


class Refusal(StrEnum):
    """Why a reading of a node with a key was not believed."""

    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"
    CLOCK = "clock"


@dataclass(slots=True)
class _NodeSigning:
    key: bytes
    guard: ReplayGuard = field(default_factory=ReplayGuard)
    # Per meter, the signature of the last accepted reading: the broker re-delivers it as the
    # retained message after every reconnect, which is a duplicate, not a replay attack.
    last_signature: dict[str, str] = field(default_factory=dict)
    accepted: int = 0
    refused: Counter[Refusal] = field(default_factory=Counter)
    suspected: bool = False
    cancel_hold: CALLBACK_TYPE | None = None


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
        self._nodes = {node: _NodeSigning(key) for node, key in keys.items()}
        self._on_change = on_change

    def suspected(self, node: str) -> bool:
        """True while readings of the node were refused within TAMPER_HOLD."""
        signing = self._nodes.get(node)
        return signing is not None and signing.suspected

    @callback
    def admit(self, message: SignedMessage, topic: str, payload: bytes, retained: bool) -> bool:
        """Whether a decoded `state` or `announce` may be used."""
        signing = self._nodes.get(message.node)
        if signing is None:
            return True
        if not verify_payload(signing.key, topic, payload):
            unsigned = b'"sig":' not in payload
            return self._refuse(
                message.node,
                topic,
                Refusal.UNSIGNED if unsigned else Refusal.BAD_SIGNATURE,
                "no signature" if unsigned else "the signature does not match the node's key",
            )
        if isinstance(message, Snapshot | SensorError):
            assert message.signature is not None  # verified above
            if signing.last_signature.get(message.meter) == message.signature:
                # The same reading again (a retained one after a reconnect): nothing new.
                _LOGGER.debug("Ignoring %s: the same signed reading again", topic)
                return False
            reason = signing.guard.check(message.meter, message.seq, message.ts, time.time())
            if reason is not None:
                if retained:
                    # Kept by the broker, so possibly old by nature: not used, not an attack.
                    _LOGGER.debug("Not using the retained reading on %s: %s", topic, reason)
                    return False
                kind = Refusal.CLOCK if "clock" in reason else Refusal.REPLAYED
                return self._refuse(message.node, topic, kind, reason)
            signing.last_signature[message.meter] = message.signature
        signing.accepted += 1
        return True

    def _refuse(self, node: str, topic: str, kind: Refusal, detail: str) -> bool:
        signing = self._nodes[node]
        signing.refused[kind] += 1
        if signing.cancel_hold is not None:
            signing.cancel_hold()
        signing.cancel_hold = async_call_later(
            self._hass, TAMPER_HOLD, partial(self._release, node)
        )
        if signing.suspected:
            _LOGGER.debug("Refused a reading on %s: %s", topic, detail)
            return False
        signing.suspected = True
        _LOGGER.warning(
            "Refused a reading of node %s on %s (%s): tamper suspected", node, topic, detail
        )
        async_raise(
            self._hass,
            NodeIssue.SIGNATURE_REFUSED,
            self._entry_id,
            node,
            minutes=f"{TAMPER_HOLD / 60:g}",
        )
        self._on_change(node)
        return False

    @callback
    def _release(self, node: str, _now: datetime) -> None:
        signing = self._nodes[node]
        signing.cancel_hold = None
        signing.suspected = False
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
        for node, signing in self._nodes.items():
            if signing.cancel_hold is not None:
                signing.cancel_hold()
                signing.cancel_hold = None
            async_clear(self._hass, self._entry_id, node, NodeIssue.SIGNATURE_REFUSED)

    def diagnostics(self) -> dict[str, Any]:
        """Counts per node; never the key."""
        return {
            node: {
                "accepted": signing.accepted,
                "refused": {kind.value: signing.refused[kind] for kind in Refusal},
                "tamper_suspected": signing.suspected,
            }
            for node, signing in sorted(self._nodes.items())
        }
