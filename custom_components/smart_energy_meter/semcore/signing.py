"""Signed readings: HMAC-SHA256 over the exact published bytes, and replay rejection.

See "Signed readings" in docs/protocol.md. The signature is the last JSON member,
`,"sig":"<64 hex>"}`; the signed bytes are the topic, a newline and the payload without that
member. Signing bytes, not a re-serialisation, keeps both sides independent of float formatting.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass, field
from typing import Final

MIN_KEY_BYTES: Final = 16
REBOOT_TS_MARGIN: Final = 5.0
MAX_CLOCK_SKEW: Final = 60.0

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
    """Per-meter `seq`/`ts` bookkeeping that refuses replayed or stale signed readings."""

    max_clock_skew: float = MAX_CLOCK_SKEW
    reboot_margin: float = REBOOT_TS_MARGIN
    _last: dict[str, tuple[int, float]] = field(default_factory=dict)

    def check(self, meter: str, seq: int, ts: float, now: float) -> str | None:
        """Return None and remember the reading if it is fresh, else the reason it is refused."""
        if abs(ts - now) > self.max_clock_skew:
            return f"timestamp {ts:.0f} is {ts - now:+.0f} s away from this clock"
        last = self._last.get(meter)
        if last is not None:
            last_seq, last_ts = last
            # A reboot restarts seq at 0; it is accepted only with a clearly newer timestamp.
            if seq <= last_seq and ts <= last_ts + self.reboot_margin:
                return f"replayed reading: seq {seq} after {last_seq}"
        self._last[meter] = (seq, ts)
        return None
