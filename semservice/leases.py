"""A worker's leases, renewed from a thread of its own.

A lease is an entry in the `sem_leases` bucket, whose entries expire: whoever created it holds
the partition while renewing it (an update against the revision it last wrote). The renewals
run on their own event loop and connection, so a worker whose main loop is busy (a checkpoint
of a large partition, a restore, a starved CPU) keeps its partitions; a worker that dies stops
renewing, and its partitions go to others once the entries expire.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Callable

import nats
from nats.aio.client import Client
from nats.errors import Error as NatsError
from nats.js.errors import Error as JetStreamError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError
from nats.js.kv import KeyValue

from . import layout

_LOGGER = logging.getLogger(__name__)


def lease_key(partition: int) -> str:
    """The lease entry of a partition."""
    return f"p{partition}"


def presence_key(index: int) -> str:
    """The entry that says worker `index` is up (its home partitions are handed back to it)."""
    return f"w{index}"


class LeaseKeeper:
    """Renews the leases handed to it, and the worker's presence, every third of their
    lifetime; calls `on_lost(partition)` (from its thread) when another worker holds one now."""

    def __init__(
        self,
        servers: list[str],
        worker_id: str,
        index: int,
        lease_s: float,
        on_lost: Callable[[int], None],
    ) -> None:
        self._servers = servers
        self._presence = presence_key(index)
        self._me = worker_id.encode()
        self._lease_s = lease_s
        self._on_lost = on_lost
        self._held: dict[int, int] = {}  # partition -> revision last written
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="leases", daemon=True)

    def start(self) -> None:
        """Start renewing."""
        self._thread.start()

    def stop(self) -> None:
        """Stop renewing (the leases expire unless released)."""
        self._stop.set()
        self._thread.join(10)

    def hold(self, partition: int, revision: int) -> None:
        """Renew this lease from now on; `revision` is its entry's revision."""
        with self._lock:
            self._held[partition] = revision

    def forget(self, partition: int) -> int | None:
        """Stop renewing a lease; its last revision (None when it was not held)."""
        with self._lock:
            return self._held.pop(partition, None)

    def _run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        nc = await self._connect()
        if nc is None:
            return
        kv: KeyValue | None = None
        try:
            while not self._stop.is_set():
                try:
                    if kv is None:
                        js = nc.jetstream(timeout=max(1.0, self._lease_s / 3))
                        kv = await js.key_value(layout.LEASES)
                    with self._lock:
                        held = list(self._held.items())
                    await asyncio.gather(
                        self._present(kv), *(self._renew(kv, p, r) for p, r in held)
                    )
                except (TimeoutError, JetStreamError) as err:
                    # The cluster is starting or electing: the next round tries again.
                    _LOGGER.debug("Leases not renewed this round: %s", err)
                await asyncio.sleep(self._lease_s / 3)
            if kv is not None:
                with contextlib.suppress(Exception):
                    await kv.delete(self._presence)
        finally:
            with contextlib.suppress(Exception):
                await nc.close()

    async def _connect(self) -> Client | None:
        while not self._stop.is_set():
            try:
                return await nats.connect(
                    servers=self._servers, max_reconnect_attempts=-1, reconnect_time_wait=0.5
                )
            except (OSError, TimeoutError, NatsError) as err:
                _LOGGER.debug("Lease connection not made yet: %s", err)
                await asyncio.sleep(0.5)
        return None

    async def _present(self, kv: KeyValue) -> None:
        with contextlib.suppress(TimeoutError, JetStreamError):
            await kv.put(self._presence, self._me)

    async def _renew(self, kv: KeyValue, partition: int, revision: int) -> None:
        key = lease_key(partition)
        try:
            self._renewed(partition, revision, await kv.update(key, self._me, last=revision))
            return
        except KeyWrongLastSequenceError, KeyNotFoundError:
            pass
        except (TimeoutError, JetStreamError) as err:
            _LOGGER.debug("Partition %d: lease not renewed this round: %s", partition, err)
            return
        # It expired before it was renewed: still ours if nobody created it since.
        try:
            self._renewed(partition, revision, await kv.create(key, self._me))
            _LOGGER.info("Partition %d: lease renewed late", partition)
        except KeyWrongLastSequenceError:
            _LOGGER.warning("Partition %d: lease lost, another worker holds it", partition)
            if self.forget(partition) is not None:
                self._on_lost(partition)
        except (TimeoutError, JetStreamError) as err:
            _LOGGER.debug("Partition %d: lease not renewed this round: %s", partition, err)

    def _renewed(self, partition: int, old: int, new: int) -> None:
        with self._lock:
            if self._held.get(partition) == old:  # not forgotten meanwhile
                self._held[partition] = new
