"""Node firmware updates, the sender's side (docs/protocol.md, "Firmware updates").

The firmware bundle that ships inside the integration (`node_firmware/`: the node's compiled
files and a manifest, made by `scripts/node_firmware`), the messages that carry it to a node
over MQTT, and the loop that sends it: one chunk at a time, each when the node asks for it on
its retained `update/state`. Pure Python, no Home Assistant import.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import re
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from .protocol import MAX_PAYLOAD_BYTES, Rejected, valid_id

UPDATE_PROTOCOL: Final = 1
CHUNK_BYTES: Final = 3584  # the node's limit: with header and topic inside 4096 bytes
CONFIRM_S: Final = 120  # the time a new firmware has to connect and announce
BUNDLE_MANIFEST: Final = "manifest.json"
_VERSION_RE: Final = re.compile(r"(\d+(?:\.\d+)*)(?:[-+].*)?")
_HEX64_RE: Final = re.compile(r"[0-9a-f]{64}")

# What an `update/state` says, and the states that end an update.
RECEIVING: Final = "receiving"
RESTARTING: Final = "restarting"
INSTALLED: Final = "installed"
ROLLED_BACK: Final = "rolled_back"
FAILED: Final = "failed"
IDLE: Final = "idle"
STATES: Final = frozenset({RECEIVING, RESTARTING, INSTALLED, ROLLED_BACK, FAILED, IDLE})


def begin_topic(prefix: str, node: str) -> str:
    """Where a sender publishes the manifest (never retained)."""
    return f"{prefix}/{node}/update/begin"


def chunk_topic(prefix: str, node: str) -> str:
    """Where a sender publishes the chunks (never retained)."""
    return f"{prefix}/{node}/update/chunk"


def state_topic(prefix: str, node: str) -> str:
    """The node's retained update state."""
    return f"{prefix}/{node}/update/state"


def version_key(text: str | None) -> tuple[int, ...] | None:
    """`1.2.3` (a `-` or `+` suffix ignored) as numbers to compare, None when it is not one."""
    if not text or (match := _VERSION_RE.fullmatch(text)) is None:
        return None
    return tuple(int(part) for part in match.group(1).split("."))


@dataclass(frozen=True, slots=True)
class BundleFile:
    """One file of the bundle, by its path on the node."""

    path: str
    data: bytes

    @property
    def sha256(self) -> str:
        """The hash the node checks."""
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True, slots=True)
class Bundle:
    """The node firmware shipped with the integration."""

    version: str
    interpreter: str  # the MicroPython version it was compiled for (mpy-cross)
    mpy: str  # the .mpy format version of its files
    notes: str
    files: tuple[BundleFile, ...]

    @property
    def size(self) -> int:
        """Bytes sent, and written on the node beside the running copy."""
        return sum(len(f.data) for f in self.files)

    def loads_on(self, interpreter: str | None, mpy: str | None) -> bool:
        """True when a node announcing MicroPython `interpreter` and `.mpy` format `mpy` can run
        these files: the same format, and a MicroPython at least as new as the mpy-cross that
        compiled them (an older one may lack what the compiled code calls)."""
        node, built = _release(interpreter), _release(self.interpreter)
        return mpy == self.mpy and node is not None and built is not None and node >= built


def _release(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a MicroPython version such as "1.29.0", None when it is not one."""
    found = re.match(r"(\d+)\.(\d+)(?:\.\d+)?$", version or "")
    return (int(found[1]), int(found[2])) if found else None


class BundleError(Exception):
    """The bundle in the integration folder is damaged."""


def load_bundle(folder: Path) -> Bundle:
    """Read the bundle and check every file against its manifest (blocking: run it in an
    executor)."""
    try:
        manifest = json.loads((folder / BUNDLE_MANIFEST).read_text())
        files = []
        for entry in manifest["files"]:
            data = (folder / entry["path"]).read_bytes()
            if hashlib.sha256(data).hexdigest() != entry["sha256"] or len(data) != entry["size"]:
                raise BundleError(f"{entry['path']} does not match the manifest")
            files.append(BundleFile(entry["path"], data))
        return Bundle(
            version=manifest["version"],
            interpreter=manifest["mp"],
            mpy=manifest["mpy"],
            notes=manifest.get("notes", ""),
            files=tuple(files),
        )
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise BundleError(str(err)) from err


def manifest_entries(files: tuple[BundleFile, ...]) -> list[dict[str, Any]]:
    """The `files` member of a manifest."""
    return [{"path": f.path, "size": len(f.data), "sha256": f.sha256} for f in files]


def sign(key: bytes, topic: str, payload: bytes) -> bytes:
    r"""Append `"sig"`: HMAC-SHA256(key, topic + "\\n" + payload), as for `state` and
    `announce`."""
    digest = hmac.new(key, topic.encode() + b"\n" + payload, hashlib.sha256).hexdigest()
    return payload[:-1] + b',"sig":"' + digest.encode() + b'"}'


@dataclass(frozen=True, slots=True)
class UpdateState:
    """A node's retained `update/state`."""

    state: str
    id: str | None = None
    version: str | None = None
    file: int | None = None
    offset: int | None = None
    done: int | None = None
    total: int | None = None
    error: str | None = None
    detail: str | None = None


def decode_update_state(payload: bytes) -> UpdateState | Rejected:
    """Decode an `update/state` payload; anything unexpected is refused with a reason."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        return Rejected(f"update state of {len(payload)} bytes")
    try:
        obj = json.loads(payload)
    except ValueError, UnicodeDecodeError:
        return Rejected("update state is not JSON")
    if not isinstance(obj, dict):
        return Rejected("update state is not a JSON object")
    state = obj.get("state")
    if state not in STATES:
        return Rejected(f"update state {state!r:.40} is unknown")
    values: dict[str, Any] = {"state": state}
    for key in ("id", "version", "error", "detail"):
        value = obj.get(key)
        if value is not None and (not isinstance(value, str) or len(value) > 200):
            return Rejected(f"update state {key!r} is not a short string")
        values[key] = value
    for key in ("file", "offset", "done", "total"):
        value = obj.get(key)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            return Rejected(f"update state {key!r} is not a count")
        values[key] = value
    if state == RECEIVING and None in (values["id"], values["file"], values["offset"]):
        return Rejected("update state 'receiving' without id, file and offset")
    return UpdateState(**values)


@dataclass(slots=True)
class Transfer:
    """One update of one node: the manifest and the chunks it asks for."""

    bundle: Bundle
    prefix: str
    node: str
    id: str
    key: bytes | None = None
    downgrade: bool = False
    confirm_s: int = CONFIRM_S
    chunk: int = CHUNK_BYTES
    sent: tuple[int, int] | None = field(default=None, init=False)
    sent_at: float = field(default=0.0, init=False)

    def __post_init__(self) -> None:
        if not valid_id(self.id):
            raise ValueError(f"transfer id {self.id!r}")

    def begin(self) -> tuple[str, bytes]:
        """The manifest message, signed when the node has a key."""
        topic = begin_topic(self.prefix, self.node)
        manifest = {
            "id": self.id,
            "version": self.bundle.version,
            "mpy": self.bundle.mpy,
            "downgrade": self.downgrade,
            "chunk": self.chunk,
            "confirm_s": self.confirm_s,
            "files": manifest_entries(self.bundle.files),
        }
        payload = json.dumps(manifest, separators=(",", ":")).encode()
        if self.key is not None:
            payload = sign(self.key, topic, payload)
        if len(payload) > MAX_PAYLOAD_BYTES:
            raise ValueError(f"the manifest takes {len(payload)} bytes, more than a message")
        return topic, payload

    def chunk_at(self, index: int, offset: int) -> tuple[str, bytes] | None:
        """The chunk message starting at `offset` of file `index`, None when there is none."""
        if not 0 <= index < len(self.bundle.files):
            return None
        data = self.bundle.files[index].data
        if not 0 <= offset < len(data):
            return None
        head = f"{self.id} {index} {offset}\n".encode()
        return chunk_topic(self.prefix, self.node), head + data[offset : offset + self.chunk]

    def percentage(self, state: UpdateState) -> int:
        """How much of the firmware the node has, 0-100."""
        if state.done is None or not self.bundle.size:
            return 0
        return min(100, state.done * 100 // self.bundle.size)


class UpdateFailed(Exception):
    """The update did not install; `error` is the node's reason or the sender's."""

    def __init__(self, error: str, detail: str = "", version: str | None = None) -> None:
        super().__init__(f"{error}: {detail}" if detail else error)
        self.error = error
        self.detail = detail
        self.version = version


type Publish = Callable[[str, bytes, int], Awaitable[bool]]


async def send(
    transfer: Transfer,
    publish: Publish,
    states: asyncio.Queue[UpdateState],
    progress: Callable[[int], None] = lambda _: None,
    *,
    resend_s: float = 5.0,
    silence_s: float = 60.0,
    restart_s: float | None = None,
) -> UpdateState:
    """Send `transfer` and wait until the node confirmed the new firmware.

    `publish(topic, payload, qos)` sends one message, never retained, and is False when it could
    not. Chunks go at QoS 0: the node's next state acknowledges each (a QoS 1 chunk would have the
    node send its PUBACK right before that state, which TCP then holds back for a delayed ACK);
    `states` receives the node's `update/state` messages from now on. Returns the `installed`
    state; raises UpdateFailed with the node's reason (refused, a hash that does not match, a
    rollback) or the sender's (`no_answer`, `interrupted`: the node restarted or forgot the
    transfer). A message lost to a broker outage is sent again when the node asks again or after
    `resend_s` of silence.
    """
    restart_limit = restart_s if restart_s is not None else transfer.confirm_s + 120
    begun = False
    restarting = False
    waited = 0.0
    await publish(*transfer.begin(), 1)
    while True:
        limit = resend_s
        try:
            state = await asyncio.wait_for(states.get(), limit)
        except TimeoutError:
            waited += limit
            if restarting:
                if waited > restart_limit:
                    raise UpdateFailed("no_answer", "the node did not come back") from None
                continue
            if waited > silence_s:
                raise UpdateFailed("no_answer", "no answer from the node") from None
            if not begun:
                await publish(*transfer.begin(), 1)  # the node says where it is
            elif transfer.sent is not None and (message := transfer.chunk_at(*transfer.sent)):
                await publish(*message, 0)
            continue
        if state.id != transfer.id:
            if begun or restarting:
                # The node forgot this transfer (it restarted) or another sender took over.
                raise UpdateFailed("interrupted", state.state, state.version)
            continue  # an earlier update's state
        waited = 0.0
        match state.state:
            case "receiving":
                begun = True
                progress(transfer.percentage(state))
                position = (state.file or 0, state.offset or 0)
                now = time.monotonic()
                if position != transfer.sent or now - transfer.sent_at > resend_s:
                    message = transfer.chunk_at(*position)
                    if message is None:
                        raise UpdateFailed("bad_state", f"no chunk at {position}")
                    transfer.sent, transfer.sent_at = position, now
                    await publish(*message, 0)
            case "restarting":
                restarting = True
                progress(100)
            case "installed":
                return state
            case "failed" | "rolled_back":
                raise UpdateFailed(state.error or state.state, state.detail or "", state.version)
            case _:
                if begun or restarting:
                    raise UpdateFailed("interrupted", state.state, state.version)
