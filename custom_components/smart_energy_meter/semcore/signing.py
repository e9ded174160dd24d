"""Signed readings: HMAC-SHA256 over the exact published bytes, replay rejection (readings
ordered by boot counter and sequence), and which readings of the nodes with a key are believed
(`SignedNodes`).

See "Signed readings" in docs/protocol.md. The signature is the last JSON member,
`,"sig":"<64 hex>"}`; the signed bytes are the topic, a newline and the payload without that
member. Signing bytes, not a re-serialisation, keeps both sides independent of float formatting.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from .protocol import RECENT_READINGS, Announce, Message, NodeGone, SensorError, Snapshot

MIN_KEY_BYTES: Final = 16
# How long tamper stays suspected after the last refused reading.
TAMPER_HOLD: Final = 600.0
# The messages a node with a key signs; its status and relay states are not signed.
type SignedMessage = Snapshot | SensorError | Announce | NodeGone
SIGNED_KINDS: Final = (Snapshot, SensorError, Announce, NodeGone)
REBOOT_TS_MARGIN: Final = 5.0
MAX_CLOCK_SKEW: Final = 60.0
# A `ts` before this (2001-09-09) is not Unix time: a clock never set, counting from its boot.
UNIX_TIME_FROM: Final = 1e9
# The rank of a reading without a boot counter: before every counted boot.
NO_BOOT: Final = -1

_SIG_SUFFIX: Final = re.compile(rb',"sig":"([0-9a-f]{64})"\}\Z')


def signature(key: bytes, topic: str, unsigned_payload: bytes) -> str:
    """Return the lower-case hex HMAC-SHA256 of a message."""
    return hmac.new(key, topic.encode() + b"\n" + unsigned_payload, hashlib.sha256).hexdigest()


def sign_payload(key: bytes, topic: str, unsigned_payload: bytes) -> bytes:
    """Append the `sig` member to a compact JSON object payload."""
    if not unsigned_payload.endswith(b"}") or unsigned_payload == b"{}":
        raise ValueError("only a non-empty JSON object can be signed")
    sig = signature(key, topic, unsigned_payload)
    return unsigned_payload[:-1] + b',"sig":"' + sig.encode() + b'"}'


def verify_payload(key: bytes, topic: str, payload: bytes) -> bool:
    """Return True when the payload carries a valid signature for this topic and key."""
    match = _SIG_SUFFIX.search(payload)
    if match is None:
        return False
    unsigned = payload[: match.start()] + b"}"
    expected = signature(key, topic, unsigned)
    return hmac.compare_digest(expected, match.group(1).decode())


@dataclass(slots=True)
class ReplayGuard:
    """One node's `boot`/`seq`/`ts` bookkeeping that refuses replayed or stale signed readings.

    A node that counts its boots (protocol 1.1) orders its readings by (boot, seq): a reading is
    new only when it comes after the last accepted one of its meter, and no reading may come
    from a boot before the node's latest. A reading without `boot` (an older node) ranks before
    every counted boot and keeps the 1.0 rule: `seq` restarts are believed only with a `ts` more
    than `reboot_margin` newer.

    Freshness: a `ts` in Unix time must be within `max_clock_skew` of the receiver's clock. A
    counted node whose clock was never set (no NTP, `ts` before `UNIX_TIME_FROM`) is judged on
    its own clock: a reading may not arrive more than `max_clock_skew` later, against its `ts`,
    than the node's last accepted reading of the same boot did.
    """

    max_clock_skew: float = MAX_CLOCK_SKEW
    reboot_margin: float = REBOOT_TS_MARGIN
    # Per meter: boot (NO_BOOT without a counter), seq and ts of the last accepted reading.
    _last: dict[str, tuple[int, int, float]] = field(default_factory=dict)
    _boot: int | None = None  # the node's latest accepted boot
    # A clock without NTP: the boot and `now - ts` of the node's last accepted reading.
    _delay: tuple[int, float] | None = None

    @property
    def latest_boot(self) -> int | None:
        """The node's latest accepted boot (NO_BOOT for a node without a counter)."""
        return self._boot

    def check(
        self,
        meter: str,
        seq: int,
        ts: float,
        now: float,
        boot: int | None = None,
        *,
        retained: bool = False,
    ) -> str | None:
        """Return None and remember the reading if it is fresh, else the reason it is refused.

        A reason about time says "clock"; one about order says "replayed".
        """
        rank = NO_BOOT if boot is None else boot
        delay = now - ts
        if boot is None or ts >= UNIX_TIME_FROM:
            if abs(ts - now) > self.max_clock_skew:
                return f"timestamp {ts:.0f} is {ts - now:+.0f} s away from this clock"
        elif self._delay is not None and self._delay[0] == boot:
            # Only the node signs, so a reading newer than expected is the node's own clock:
            # a replay is always older.
            if delay - self._delay[1] > self.max_clock_skew:
                return (
                    f"timestamp {ts:.0f} is {delay - self._delay[1]:.0f} s older than the "
                    "node's clock"
                )
        elif retained:
            # The first reading of a boot seen here: without NTP its age cannot be told.
            return "the age of a reading of a clock without NTP cannot be checked"
        if self._boot is not None and rank < self._boot:
            if boot is None:
                return f"replayed reading: no boot counter after boot {self._boot}"
            return f"replayed reading: boot {boot} after boot {self._boot}"
        last = self._last.get(meter)
        # Without a counter a reboot restarts seq at 0; it is believed only with a clearly
        # newer timestamp.
        if (
            last is not None
            and rank == last[0]
            and seq <= last[1]
            and (boot is not None or ts <= last[2] + self.reboot_margin)
        ):
            return f"replayed reading: seq {seq} after {last[1]}"
        self._last[meter] = (rank, seq, ts)
        self._boot = rank if self._boot is None else max(self._boot, rank)
        if boot is not None and ts < UNIX_TIME_FROM:
            self._delay = (boot, delay)
        return None


# --- admission: which readings of the nodes with a key are believed --------------------------


class Refusal(StrEnum):
    """Why a reading of a node with a key was not believed."""

    UNSIGNED = "unsigned"
    BAD_SIGNATURE = "bad_signature"
    REPLAYED = "replayed"
    CLOCK = "clock"


@dataclass(frozen=True, slots=True)
class Admitted:
    """Believed (or the node has no key)."""


@dataclass(frozen=True, slots=True)
class Ignored:
    """Not used, and no attack either: a retained reading the broker hands out again."""

    reason: str


@dataclass(frozen=True, slots=True)
class Refused:
    """Not believed: counted, and tamper is suspected. `new` is the first of an episode."""

    kind: Refusal
    detail: str
    new: bool


type Admission = Admitted | Ignored | Refused

ADMITTED: Final = Admitted()


@dataclass(slots=True)
class _NodeSigning:
    key: bytes
    guard: ReplayGuard = field(default_factory=ReplayGuard)
    # Per meter, (signature, boot, seq) of the latest accepted readings of this boot, in
    # order: the broker re-delivers the last as the retained message after every reconnect,
    # and a node sends again what the broker did not acknowledge (at most RECENT_READINGS in
    # flight). Both are copies, not a replay attack, and are not used either. A capture from
    # an earlier boot, or older than that, is still a replay.
    recent: dict[str, deque[tuple[str, int | None, int]]] = field(default_factory=dict)
    accepted: int = 0
    refused: Counter[Refusal] = field(default_factory=Counter)
    suspected: bool = False

    def remember(
        self, meter: str, signature: str, boot: int | None, seq: int, *, new_boot: bool
    ) -> None:
        """Keep an accepted reading's signature, forgetting what another boot sent."""
        if new_boot:
            self.recent.clear()
        recent = self.recent.get(meter)
        if recent is None:
            recent = self.recent[meter] = deque(maxlen=RECENT_READINGS)
        elif recent and (recent[-1][1] != boot or recent[-1][2] >= seq):
            recent.clear()  # seq started again: a reboot of a node without a boot counter
        recent.append((signature, boot, seq))


class SignedNodes:
    """The nodes that have a key, and what of theirs is believed. Keys never leave it."""

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._nodes = {node: _NodeSigning(key) for node, key in keys.items()}

    def suspected(self, node: str) -> bool:
        """True from a refused reading of the node until `release`."""
        signing = self._nodes.get(node)
        return signing is not None and signing.suspected

    def admit(
        self,
        node: str,
        reading: tuple[str, int, float, str | None, int | None] | None,
        topic: str,
        payload: bytes,
        retained: bool,
        now: float,
    ) -> Admission:
        """Judge a decoded `state` (`reading`: meter, seq, ts, signature, boot) or `announce`
        (`reading` None) of `node`, published on `topic` as `payload`."""
        signing = self._nodes.get(node)
        if signing is None:
            return ADMITTED
        if not verify_payload(signing.key, topic, payload):
            if b'"sig":' not in payload:
                return self._refuse(signing, Refusal.UNSIGNED, "no signature")
            return self._refuse(
                signing, Refusal.BAD_SIGNATURE, "the signature does not match the node's key"
            )
        if reading is not None:
            meter, seq, ts, signature, boot = reading
            assert signature is not None  # verified above
            recent = signing.recent.get(meter, ())
            if any(copy[0] == signature for copy in recent):
                return Ignored("the same signed reading again")
            boot_before = signing.guard.latest_boot
            reason = signing.guard.check(meter, seq, ts, now, boot, retained=retained)
            if reason is not None:
                if retained:
                    # Kept by the broker, so possibly old by nature: not used, not an attack.
                    return Ignored(reason)
                kind = Refusal.CLOCK if "clock" in reason else Refusal.REPLAYED
                return self._refuse(signing, kind, reason)
            signing.remember(
                meter, signature, boot, seq, new_boot=boot_before != signing.guard.latest_boot
            )
        signing.accepted += 1
        return ADMITTED

    def admit_message(
        self, message: Message, topic: str, payload: bytes, retained: bool, now: float
    ) -> Admission:
        """Judge a decoded message published on `topic` as `payload`: what a node with a
        key signs is judged by `admit`, anything else is admitted."""
        if not isinstance(message, SIGNED_KINDS):
            return ADMITTED
        reading = (
            (message.meter, message.seq, message.ts, message.signature, message.boot)
            if isinstance(message, Snapshot | SensorError)
            else None
        )
        return self.admit(message.node, reading, topic, payload, retained, now)

    @staticmethod
    def _refuse(signing: _NodeSigning, kind: Refusal, detail: str) -> Refused:
        signing.refused[kind] += 1
        new = not signing.suspected
        signing.suspected = True
        return Refused(kind, detail, new)

    def release(self, node: str) -> None:
        """No refused reading for the hold time: tamper is no longer suspected."""
        self._nodes[node].suspected = False

    @property
    def nodes(self) -> list[str]:
        """The nodes with a key."""
        return list(self._nodes)

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
