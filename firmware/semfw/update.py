"""Firmware updates over the node's MQTT connection (docs/protocol.md, "Firmware updates").

The sender publishes a manifest on `update/begin` (the files, each with its size and SHA-256,
signed with the node's key when it has one), then each chunk the node asks for on
`update/chunk`. The node writes the files into the slot that is not running (see semboot),
hashes them as they arrive, and publishes on `update/state` (retained) which chunk it needs
next; one chunk is in flight at a time, so a lost or repeated message costs a re-send, never a
hole. When every file matches its hash the slot is recorded as on trial and the node restarts
into it; the new firmware confirms itself after it connected and announced (`connected`).

Nothing a transfer writes is run before it is complete and verified: a power cut or a broker
outage at any moment leaves the running firmware as the one that boots. The transfer itself
lives in semfw.update_transfer, loaded only while an update runs.
"""

import asyncio
import json
import sys

import semboot

from semfw import VERSION

UPDATE_PROTOCOL = 1
IDLE_MS = 300000  # a transfer with no chunk for this long is given up


def interpreter():
    """The MicroPython (or host Python) version, as announced."""
    return "%d.%d.%d" % tuple(sys.implementation.version[:3])


def mpy_version():
    """The .mpy format version this interpreter loads (bytecode of another one does not load;
    the sub-version only matters for native code), or None where it loads none (CPython)."""
    value = getattr(sys.implementation, "_mpy", None)
    return None if value is None else str(value & 0xFF)


class Updater:
    """The node's side of an update; `Node` hands it the messages of its topics."""

    def __init__(self, node, flash, root="", mpy=None, log=print):
        cfg = node.cfg
        self.client = node.client
        self.clock = node.hw.net_clock
        self.flash = flash
        self.key = cfg.key
        self.root = root
        self.mpy = mpy_version() if mpy is None else mpy
        self.log = log
        self.status_topic = node.status_topic
        base = cfg.prefix + "/" + cfg.node + "/update/"
        self.begin_topic = base + "begin"
        self.chunk_topic = base + "chunk"
        self.state_topic = base + "state"
        self.state_path = root + semboot.STATE
        self.transfer = None
        self._inbox = []
        self._event = asyncio.Event()
        self.last_chunk = self.clock.ticks_ms()

    # --- what the node asks ------------------------------------------------------------------

    def announce_fields(self):
        """Members for the announce: interpreter, .mpy format, update protocol."""
        fields = [("mp", json.dumps(interpreter()))]
        if self.mpy is not None:
            fields.append(("mpy", json.dumps(self.mpy)))
        fields.append(("update", str(UPDATE_PROTOCOL)))
        return fields

    def topics(self):
        return [(self.begin_topic, 1), (self.chunk_topic, 1)]

    def owns(self, topic):
        return topic == self.begin_topic or topic == self.chunk_topic

    def receive(self, topic, payload):
        """Called from the MQTT reader: queue, never block. One chunk is in flight at a time, so
        the queue stays short; a flood is cut rather than kept in RAM."""
        if len(self._inbox) >= 4:
            self._inbox.pop(0)
        self._inbox.append((topic, payload))
        self._event.set()

    async def connected(self):
        """After every (re)connection, once the announce went out: a new firmware on trial has
        proved itself; then the update state is published again (a sender resumes from it)."""
        state = semboot.read_state(self.state_path)
        if semboot.confirm(state, VERSION):
            semboot.write_state(state, self.state_path)
            self.log("update: version %s confirmed after its first connection" % VERSION)
        if self.transfer is not None:
            await self.publish_state(self.transfer.state())
        elif state["last"] is not None:
            await self.publish_state(state["last"])
        else:
            await self.publish_state({"state": "idle", "version": VERSION})

    # --- the transfer ------------------------------------------------------------------------

    async def run(self):
        while True:
            try:
                await asyncio.wait_for(self._event.wait(), 10)
            except asyncio.TimeoutError:
                pass
            self._event.clear()
            if not self._inbox and self.transfer is None:
                continue
            from semfw import update_transfer as steps

            while self._inbox:
                topic, payload = self._inbox.pop(0)
                try:
                    if topic == self.begin_topic:
                        await steps.begin(self, payload)
                    else:
                        await steps.chunk(self, payload)
                except Exception as err:  # noqa: BLE001 - the node must keep measuring
                    self.log("update: message on %s not handled (%r)" % (topic, err))
                    if self.transfer is not None:
                        await steps.fail(self, self.transfer.id, "write", repr(err)[:100])
            transfer = self.transfer
            if transfer is not None:
                idle = self.clock.ticks_diff(self.clock.ticks_ms(), self.last_chunk)
                if idle > IDLE_MS:
                    detail = "no chunk for %d s" % (idle // 1000)
                    await steps.fail(self, transfer.id, "timeout", detail)
            if self.transfer is None:
                # Nothing under way: let the transfer code go from RAM until the next update.
                steps = None
                sys.modules.pop("semfw.update_transfer", None)
                package = sys.modules.get("semfw")
                if package is not None and hasattr(package, "update_transfer"):
                    delattr(package, "update_transfer")

    async def publish_state(self, state):
        await self.client.publish(self.state_topic, json.dumps(state).encode(), True)
