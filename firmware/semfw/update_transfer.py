"""The transfer of a firmware update (semfw.update): manifest checks, writing and verifying the
files, and the switch to them. Imported when an update begins and dropped from RAM when it ends,
so that a node that is not being updated does not carry it.
"""

import hashlib
import json
import os

import semboot

from semfw import VERSION, protocol

MAX_CHUNK = 3584  # with its header line and topic, inside the protocol's 4096-byte payload
MAX_FILES = 48
MAX_FILE = 262144
# Kept free besides the new copy: LittleFS needs spare blocks to write at all.
SPACE_MARGIN = 16384
_HEX = "0123456789abcdef"
_NAME_CHARS = "abcdefghijklmnopqrstuvwxyz0123456789_"
_SIG_TAIL = len(',"sig":"') + 64 + 2


def version_key(text):
    """`1.2.3` (anything after `-` or `+` ignored) as a tuple of ints, or None."""
    if not isinstance(text, str) or not 0 < len(text) <= 32:
        return None
    core = text.split("+")[0].split("-")[0]
    parts = core.split(".")
    key = []
    for part in parts:
        if not part or not part.isdigit():
            return None
        key.append(int(part))
    return tuple(key)


def _valid_path(path):
    """Only files of the firmware package: `semfw/<name>.mpy` or `.py`."""
    if not isinstance(path, str) or not path.startswith("semfw/"):
        return False
    name = path[6:]
    if name.endswith(".mpy"):
        stem = name[:-4]
    elif name.endswith(".py"):
        stem = name[:-3]
    else:
        return False
    if not 0 < len(stem) <= 32:
        return False
    for char in stem:
        if char not in _NAME_CHARS:
            return False
    return True


def _valid_hash(text):
    if not isinstance(text, str) or len(text) != 64:
        return False
    for char in text:
        if char not in _HEX:
            return False
    return True


def _int(value, low, high):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def unsigned(payload):
    """The payload without its trailing `"sig"` member, or None when it has none."""
    if len(payload) < _SIG_TAIL + 2 or payload[-_SIG_TAIL : -_SIG_TAIL + 8] != b',"sig":"':
        return None
    return payload[:-_SIG_TAIL] + b"}"


def same(a, b):
    """Equal byte strings, compared in a time that does not depend on where they differ."""
    if len(a) != len(b):
        return False
    diff = 0
    for x, y in zip(a, b):
        diff |= x ^ y
    return diff == 0


def check_manifest(obj, running, mpy):
    """The manifest's problem as (error code, detail), or None when it can be installed.

    `running` is the running firmware's version, `mpy` the .mpy format this interpreter loads.
    """
    if not isinstance(obj, dict):
        return "bad_manifest", "not a JSON object"
    if not protocol.valid_id(obj.get("id")):
        return "bad_manifest", "id"
    version = version_key(obj.get("version"))
    if version is None:
        return "bad_manifest", "version"
    if obj.get("mpy") != mpy:
        return "interpreter", "built for .mpy format %r, this interpreter loads %r" % (
            obj.get("mpy"),
            mpy,
        )
    current = version_key(running)
    if current is not None and version < current and obj.get("downgrade") is not True:
        return "downgrade", "%s is older than %s" % (obj["version"], running)
    if not _int(obj.get("chunk"), 256, MAX_CHUNK):
        return "bad_manifest", "chunk"
    if not _int(obj.get("confirm_s", semboot.CONFIRM_S), 5, 3600):
        return "bad_manifest", "confirm_s"
    files = obj.get("files")
    if not isinstance(files, list) or not 0 < len(files) <= MAX_FILES:
        return "bad_manifest", "files"
    seen = set()
    for entry in files:
        if not isinstance(entry, dict):
            return "bad_manifest", "files"
        path = entry.get("path")
        if not _valid_path(path) or path in seen:
            return "bad_manifest", "path %r" % (path,)
        seen.add(path)
        if not _int(entry.get("size"), 0, MAX_FILE) or not _valid_hash(entry.get("sha256")):
            return "bad_manifest", path
    if "semfw/__init__.mpy" not in seen and "semfw/__init__.py" not in seen:
        return "bad_manifest", "no semfw/__init__"
    return None


def _remove_tree(path):
    """Delete a folder and everything in it; a missing folder is fine."""
    try:
        entries = list(os.ilistdir(path)) if hasattr(os, "ilistdir") else None
    except OSError:
        return
    if entries is None:
        try:
            names = os.listdir(path)
        except OSError:
            return
        entries = [(name, 0x4000 if _is_dir(path + "/" + name) else 0x8000) for name in names]
    for entry in entries:
        child = path + "/" + entry[0]
        if entry[1] == 0x4000:
            _remove_tree(child)
        else:
            os.remove(child)
    os.rmdir(path)


def _is_dir(path):
    try:
        return os.stat(path)[0] & 0x4000 != 0
    except OSError:
        return False


def _append(path, data):
    with open(path, "ab") as f:
        f.write(data)


def _create(path):
    """An empty file (a file may be empty; each starts empty)."""
    open(path, "wb").close()


def _mkdirs(path):
    built = ""
    for part in path.split("/"):
        built = built + "/" + part if built else part
        try:
            os.mkdir(built)
        except OSError:
            pass  # exists


class Transfer:
    """One update being received: where it is written and how far it got."""

    def __init__(self, manifest, slot):
        self.id = manifest["id"]
        self.version = manifest["version"]
        self.chunk = manifest["chunk"]
        self.confirm_s = manifest.get("confirm_s", semboot.CONFIRM_S)
        self.files = manifest["files"]
        self.slot = slot
        self.index = 0
        self.offset = 0
        self.hash = hashlib.sha256()
        self.total = 0
        for entry in self.files:
            self.total += entry["size"]
        self.done = 0

    def state(self):
        return {
            "id": self.id,
            "state": "receiving",
            "version": self.version,
            "file": self.index,
            "offset": self.offset,
            "done": self.done,
            "total": self.total,
        }


async def _refuse(u, transfer_id, error, detail):
    u.log("update %s refused: %s (%s)" % (transfer_id, error, detail))
    await u.publish_state({"id": transfer_id, "state": "failed", "error": error, "detail": detail})


async def fail(u, transfer_id, error, detail):
    """Give the transfer up: its partial copy is deleted; the running firmware stays."""
    transfer = u.transfer
    u.transfer = None
    if transfer is not None:
        _discard(u, transfer.slot)
    await _refuse(u, transfer_id, error, detail)


def _discard(u, slot):
    try:
        _remove_tree(u.root + slot)
    except OSError as err:
        u.log("update: could not delete %s (%s)" % (slot, err))


def _signed(u, payload):
    """The manifest's bytes to parse, or None when its signature does not hold."""
    if u.key is None:
        bare = unsigned(payload)
        return payload if bare is None else bare
    bare = unsigned(payload)
    if bare is None:
        return None
    return bare if same(protocol.sign(u.key, u.begin_topic, bare), payload) else None


async def begin(u, payload):
    """A manifest on `update/begin`: check it and start writing, or refuse it."""
    try:
        obj = json.loads(payload)
    except ValueError:
        obj = None
    transfer_id = obj.get("id") if isinstance(obj, dict) else None
    if not protocol.valid_id(transfer_id):
        transfer_id = "?"
    current = u.transfer
    if current is not None and current.id == transfer_id:
        await u.publish_state(current.state())  # a repeated begin: say where it is
        return
    bare = _signed(u, payload)
    if bare is None:
        await _refuse(
            u, transfer_id, "bad_signature", "the manifest is not signed with the node key"
        )
        return
    if bare is not payload:
        obj = json.loads(bare)
    problem = check_manifest(obj, VERSION, u.mpy)
    if problem is not None:
        await _refuse(u, transfer_id, problem[0], problem[1])
        return
    if current is not None:
        u.log("update %s abandoned for %s" % (current.id, transfer_id))
        u.transfer = None
        _discard(u, current.slot)
    state = semboot.read_state(u.state_path)
    if state["trial"] is not None:
        await _refuse(u, transfer_id, "busy", "a new firmware is waiting for its restart")
        return
    slot = semboot.SLOTS[1] if state["active"] == semboot.SLOTS[0] else semboot.SLOTS[0]
    _discard(u, slot)  # what an earlier update left there is not running
    transfer = Transfer(obj, slot)
    free = u.flash.free_bytes()
    if transfer.total + SPACE_MARGIN > free:
        await _refuse(
            u,
            transfer_id,
            "no_space",
            "%d bytes needed beside the running firmware, %d free"
            % (transfer.total + SPACE_MARGIN, free),
        )
        return
    try:
        _mkdirs(u.root + slot + "/semfw")
    except OSError as err:
        await _refuse(u, transfer_id, "write", str(err))
        return
    u.transfer = transfer
    u.last_chunk = u.clock.ticks_ms()
    u.log(
        "update %s: version %s, %d files, %d bytes into %s"
        % (transfer_id, transfer.version, len(transfer.files), transfer.total, slot)
    )
    await _advance(u, transfer)


async def chunk(u, payload):
    """A chunk on `update/chunk`: write it when it is the one asked for."""
    transfer = u.transfer
    head_end = payload.find(b"\n")
    if transfer is None or head_end < 0:
        return  # nothing being received: a late or stray chunk
    try:
        transfer_id, index, offset = payload[:head_end].decode().split(" ")
        index = int(index)
        offset = int(offset)
    except ValueError:
        u.log("update: chunk with a malformed header dropped")
        return
    if transfer_id != transfer.id or index != transfer.index or offset != transfer.offset:
        return  # a repeat of a chunk already written, or of another transfer
    data = payload[head_end + 1 :]
    entry = transfer.files[index]
    if not data or len(data) > transfer.chunk or offset + len(data) > entry["size"]:
        await fail(u, transfer.id, "bad_chunk", "%s at %d" % (entry["path"], offset))
        return
    try:
        _append(u.root + transfer.slot + "/" + entry["path"], data)
    except OSError as err:
        await fail(u, transfer.id, "write", "%s: %s" % (entry["path"], err))
        return
    transfer.hash.update(data)
    transfer.offset += len(data)
    transfer.done += len(data)
    u.last_chunk = u.clock.ticks_ms()
    await _advance(u, transfer)


async def _advance(u, transfer):
    """Close every complete file (checking its hash), then ask for the next chunk or, when
    all files are in, switch to them."""
    while transfer.index < len(transfer.files):
        entry = transfer.files[transfer.index]
        path = u.root + transfer.slot + "/" + entry["path"]
        if transfer.offset == 0:
            try:
                _create(path)
            except OSError as err:
                await fail(u, transfer.id, "write", "%s: %s" % (entry["path"], err))
                return
        if transfer.offset < entry["size"]:
            await u.publish_state(transfer.state())
            return
        digest = protocol.hex_text(transfer.hash.digest())
        if digest != entry["sha256"]:
            await fail(u, transfer.id, "hash", entry["path"])
            return
        transfer.index += 1
        transfer.offset = 0
        transfer.hash = hashlib.sha256()
    await _switch(u, transfer)


async def _switch(u, transfer):
    state = semboot.read_state(u.state_path)
    semboot.offer(state, transfer.slot, transfer.id, transfer.version, transfer.confirm_s)
    try:
        semboot.write_state(state, u.state_path)
    except OSError as err:
        await fail(u, transfer.id, "write", "boot state: %s" % err)
        return
    u.transfer = None
    u.log("update %s: verified; restarting into version %s" % (transfer.id, transfer.version))
    await u.publish_state({"id": transfer.id, "state": "restarting", "version": transfer.version})
    await u.client.publish(u.status_topic, b"offline", True)
    await u.client.disconnect()
    u.flash.reset()
