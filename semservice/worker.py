"""A worker: holds partitions of the readings stream, runs their detection, checkpoints it.

Ownership of a partition is a lease in a key-value bucket whose entries expire (`LEASES`): a
worker creates the lease (only one create succeeds), renews it while it runs (from a thread of
its own, `leases.py`), and a worker that dies stops renewing, so the lease expires and another
worker creates it and takes the partition over. A worker claims its home partitions at once
and any other free one after a grace period.
The checkpoint of a partition is written with the revision its owner last wrote: a worker that
lost its lease without noticing cannot overwrite its successor's state (it stops instead).

Per partition one loop pulls the stream in batches from the checkpoint's sequence on (a pull
consumer without acks: the checkpoint is the position), applies each message, publishes the
verdict changes, and between batches ticks the detection and writes checkpoints, so a
checkpoint never holds a verdict that was not published.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from dataclasses import dataclass, field

import nats
from nats.aio.client import Client
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import Error as JetStreamError
from nats.js.errors import KeyNotFoundError, KeyWrongLastSequenceError, NotFoundError
from nats.js.kv import KeyValue

from . import layout
from .leases import LeaseKeeper, lease_key, presence_key
from .metrics import Metrics
from .pairs import Overrides
from .partition import Event, PartitionState, event_order
from .verdicts import VerdictPublisher

_LOGGER = logging.getLogger(__name__)

# How often the detection ticks (closes windows, expires silent meters).
TICK_S = 1.0
# Share of the message latencies sampled for the metrics.
SAMPLE_EVERY = 16
# Messages pulled per request: the loop comes back to leases and ticks between batches.
FETCH_BATCH = 256
# Empty pulls in a row after which the consumer is made anew (it may have gone with a server).
IDLE_FETCHES = 5
# How long a clean stop waits for the partitions' last checkpoints.
STOP_WITHIN_S = 10.0
# A consumer nobody pulls from for this long is removed by the server.
CONSUMER_INACTIVE_S = 30.0


@dataclass
class WorkerOptions:
    """What a worker is told."""

    servers: list[str]
    prefix: str
    partitions: int
    worker_id: str
    index: int
    workers: int
    replicas: int = 3
    overrides: Overrides = field(default_factory=Overrides)
    lease_s: float = 5.0
    checkpoint_s: float = 5.0
    metrics_port: int | None = None
    # MQTT listeners (host, port) the verdicts are published through, retained; without any,
    # they go out as plain NATS messages, which MQTT subscribers get live but not retained.
    mqtt: list[tuple[str, int]] = field(default_factory=list)


class LostPartitionError(Exception):
    """Another worker holds the partition now."""


class Worker:
    """One worker process's partitions."""

    def __init__(self, options: WorkerOptions) -> None:
        self.options = options
        self.metrics = Metrics(options.worker_id)
        self.states: dict[int, PartitionState] = {}
        self._tasks: dict[int, asyncio.Task[None]] = {}
        self._keeper: LeaseKeeper | None = None
        # Partitions of another worker's home that go back to it once it is up.
        self._handing_back: set[int] = set()
        self._presence_seen: dict[int, int] = {}  # worker index -> presence revision
        self._handed_back: dict[int, float] = {}  # partition -> when it was handed back
        self._nc: Client | None = None
        self._js: JetStreamContext | None = None
        self._checkpoints: KeyValue | None = None
        self._leases: KeyValue | None = None
        self._started = 0.0
        self._verdicts = (
            VerdictPublisher(options.mqtt, f"sem-service-{options.worker_id}")
            if options.mqtt
            else None
        )

    @property
    def js(self) -> JetStreamContext:
        """The JetStream context (once connected)."""
        assert self._js is not None
        return self._js

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, hold partitions until `stop` is set, then checkpoint and release them."""
        options = self.options
        self._nc = await nats.connect(
            servers=options.servers,
            name=options.worker_id,
            max_reconnect_attempts=-1,
            reconnect_time_wait=0.5,
            connect_timeout=2,
        )
        self._js = self._nc.jetstream(timeout=5)
        self._checkpoints, self._leases = await layout.ensure(
            self._js, options.prefix, options.partitions, options.replicas, options.lease_s
        )
        server = (
            await self.metrics.serve(options.metrics_port, self.evaluated, self.refused)
            if options.metrics_port
            else None
        )
        loop = asyncio.get_running_loop()
        self._keeper = LeaseKeeper(
            options.servers,
            options.worker_id,
            options.index,
            options.lease_s,
            lambda partition: self._drop_from_thread(loop, partition),
        )
        self._keeper.start()
        if self._verdicts is not None:
            self._verdicts.start()
        self._started = time.monotonic()
        _LOGGER.info("Worker %s up, home partitions %s", options.worker_id, sorted(self.home))
        try:
            while not stop.is_set():
                await self._leases_round()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), options.lease_s / 3)
        finally:
            # Each partition's loop checkpoints what it applied and ends; one that does not
            # within the time (a cluster gone) is cancelled, its successor replays a little.
            self._handing_back.update(self._tasks)
            if self._tasks:
                await asyncio.wait(self._tasks.values(), timeout=STOP_WITHIN_S)
            for task in self._tasks.values():
                task.cancel()
            for partition, task in list(self._tasks.items()):
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
                await self._release(partition)
            self._keeper.stop()
            if self._verdicts is not None:
                await self._verdicts.stop()
            if server is not None:
                server.close()
            await self._nc.drain()

    @property
    def home(self) -> frozenset[int]:
        """The partitions this worker holds when every worker is up."""
        options = self.options
        return home_partitions(options.index, options.workers, options.partitions)

    def refused(self) -> int:
        """Readings of nodes with a key not believed, in the partitions held now."""
        return sum(state.refused for state in self.states.values())

    def evaluated(self) -> int:
        """Pair evaluations of the partitions held now."""
        return sum(state.evaluated for state in self.states.values())

    # --- leases -------------------------------------------------------------------------------

    async def _leases_round(self) -> None:
        """Forget partitions whose loop ended and claim free partitions (the keeper renews)."""
        assert self._leases is not None
        assert self._keeper is not None
        for partition, task in list(self._tasks.items()):
            if task.done():
                del self._tasks[partition]
                if not task.cancelled() and task.exception() is not None:
                    # Its loop failed (logged): the partition is claimed afresh from its
                    # checkpoint, by this worker or another.
                    await self._release(partition)
                if partition in self._handing_back:
                    self._handing_back.discard(partition)
                    await self._release(partition)  # checkpointed: its home worker goes on
                    self._handed_back[partition] = time.monotonic()
                    _LOGGER.info("Partition %d handed back to its home worker", partition)
                self._keeper.forget(partition)
                self.states.pop(partition, None)
                self.metrics.forget(partition)
        await self._hand_back()
        grace = time.monotonic() - self._started > 2 * self.options.lease_s
        for partition in range(self.options.partitions):
            if partition in self._tasks:
                continue
            if partition not in self.home and not grace:
                continue
            if time.monotonic() - self._handed_back.get(partition, -1e9) < 2 * self.options.lease_s:
                continue  # its home worker claims it; if it cannot, this one takes it again
            try:
                revision = await self._leases.create(
                    lease_key(partition), self.options.worker_id.encode()
                )
            except KeyWrongLastSequenceError:
                continue  # held by another worker
            except (TimeoutError, JetStreamError) as err:
                _LOGGER.debug("Partition %d: not claimed this round: %s", partition, err)
                continue
            self._keeper.hold(partition, revision)
            self._tasks[partition] = asyncio.create_task(self._hold(partition))

    async def _hand_back(self) -> None:
        """Partitions taken over from a worker that is up again go back to it."""
        assert self._leases is not None
        for partition in self._tasks:
            if partition in self.home or partition in self._handing_back:
                continue
            owner = partition % self.options.workers
            try:
                await self._leases.get(presence_key(owner))
            except KeyNotFoundError:
                continue
            except TimeoutError, JetStreamError:
                return
            self._handing_back.add(partition)

    def _drop_from_thread(self, loop: asyncio.AbstractEventLoop, partition: int) -> None:
        loop.call_soon_threadsafe(self._drop, partition)

    def _drop(self, partition: int) -> None:
        """Another worker holds the partition: stop its loop."""
        if (task := self._tasks.get(partition)) is not None:
            task.cancel()

    async def _release(self, partition: int) -> None:
        """Give a lease back at a clean stop, so a successor need not wait for it to expire."""
        assert self._leases is not None
        assert self._keeper is not None
        if (revision := self._keeper.forget(partition)) is None:
            return
        with contextlib.suppress(JetStreamError, TimeoutError):
            await self._leases.delete(lease_key(partition), last=revision)

    # --- one partition ------------------------------------------------------------------------

    async def _hold(self, partition: int) -> None:
        try:
            await self._consume(partition)
        except LostPartitionError:
            _LOGGER.warning("Partition %d: checkpoint written by another worker; let go", partition)
            if self._keeper is not None:
                self._keeper.forget(partition)
        except asyncio.CancelledError:
            raise
        except Exception:
            _LOGGER.exception("Partition %d stopped", partition)
            raise

    async def _consume(self, partition: int) -> None:
        options = self.options
        claimed = time.monotonic()
        key = _checkpoint_key(partition)
        state, revision = await self._restore(partition, key)
        self.states[partition] = state
        sub = await self._subscribe(partition, state.seq + 1)
        _LOGGER.info(
            "Partition %d held by %s from stream sequence %d (%d pairs)",
            partition,
            options.worker_id,
            state.seq + 1,
            len(state.pairs),
        )
        next_tick = time.monotonic() + TICK_S
        # Partitions held together checkpoint at different moments: one pause at a time.
        spread = options.checkpoint_s * partition / options.partitions
        next_checkpoint = time.monotonic() + options.checkpoint_s + spread
        caught_up = False
        idle = 0
        delivered = 0  # the consumer's sequence of the last message taken from it
        metrics = self.metrics
        try:
            while True:
                try:
                    msgs = await sub.fetch(FETCH_BATCH, timeout=TICK_S)
                except TimeoutError:
                    msgs = []
                except JetStreamError as err:
                    # The consumer went with its server, or the stream's leader is moving:
                    # a new consumer goes on from the state's sequence.
                    _LOGGER.info(
                        "Partition %d: consumer lost (%s), making a new one", partition, err
                    )
                    await asyncio.sleep(0.5)
                    sub = await self._resubscribe(sub, partition, state.seq + 1)
                    delivered = 0
                    continue
                pending = 0
                for msg in msgs:
                    meta = msg.metadata
                    if meta.sequence.consumer != delivered + 1:
                        # A message the consumer counts as delivered never reached this loop
                        # (a pull answered after it expired): go on from the state instead.
                        _LOGGER.warning(
                            "Partition %d: consumer skipped from %d to %d; reading again from "
                            "stream sequence %d",
                            partition,
                            delivered,
                            meta.sequence.consumer,
                            state.seq + 1,
                        )
                        sub = await self._resubscribe(sub, partition, state.seq + 1)
                        delivered = 0
                        break
                    delivered += 1
                    pending = meta.num_pending
                    arrival = meta.timestamp.timestamp()
                    events = state.apply(meta.sequence.stream, _topic(msg), msg.data, arrival)
                    metrics.message(partition, pending)
                    if state.readings % SAMPLE_EVERY == 0:
                        metrics.latency(msg.data)
                    if events:
                        await self._publish(events)
                if msgs:
                    idle = 0
                else:
                    metrics.message(partition, 0, count=0)
                    idle += 1
                    if idle >= IDLE_FETCHES:
                        # Nothing for a while: make sure the consumer is not one that went
                        # with a lost server (the new one costs one request).
                        idle = 0
                        sub = await self._resubscribe(sub, partition, state.seq + 1)
                        delivered = 0
                if not caught_up and pending == 0:
                    caught_up = True
                    next_checkpoint = 0.0  # what the replay rebuilt, checkpointed now
                    metrics.took_over(partition, time.monotonic() - claimed)
                    _LOGGER.info(
                        "Partition %d caught up in %.2f s (stream sequence %d)",
                        partition,
                        time.monotonic() - claimed,
                        state.seq,
                    )
                now = time.monotonic()
                if now >= next_tick:
                    next_tick = now + TICK_S
                    if pending == 0:
                        # Caught up: the wall clock is the stream's time; while replaying,
                        # the stream's own times close the windows.
                        events = state.tick(max(state.now, time.time()))
                        if events:
                            await self._publish(events)
                if now >= next_checkpoint or partition in self._handing_back:
                    next_checkpoint = now + options.checkpoint_s
                    revision = await self._checkpoint(key, state, revision)
                    if partition in self._handing_back:
                        return  # everything applied is checkpointed and published
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()

    async def _subscribe(self, partition: int, start: int) -> JetStreamContext.PullSubscription:
        """A pull consumer of the partition from stream sequence `start` on: no acks (the
        checkpoint is the position), removed by the server once nobody pulls from it."""
        while True:
            try:
                return await self.js.pull_subscribe(
                    layout.partition_filter(partition),
                    stream=layout.READINGS,
                    config=ConsumerConfig(
                        deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                        opt_start_seq=start,
                        ack_policy=AckPolicy.NONE,
                        inactive_threshold=CONSUMER_INACTIVE_S,
                        mem_storage=True,
                    ),
                )
            except (TimeoutError, JetStreamError) as err:
                _LOGGER.info("Partition %d: no consumer yet (%s), trying again", partition, err)
                await asyncio.sleep(0.5)

    async def _resubscribe(
        self, sub: JetStreamContext.PullSubscription, partition: int, start: int
    ) -> JetStreamContext.PullSubscription:
        with contextlib.suppress(Exception):
            await sub.unsubscribe()
        return await self._subscribe(partition, start)

    async def _restore(self, partition: int, key: str) -> tuple[PartitionState, int | None]:
        assert self._checkpoints is not None
        options = self.options
        while True:
            try:
                entry = await self._checkpoints.get(key)
                break
            except KeyNotFoundError:
                return PartitionState(partition, options.prefix, options.overrides), None
            except (TimeoutError, JetStreamError) as err:
                # The cluster is starting or electing: the checkpoint is there, a little later.
                _LOGGER.info("Partition %d: checkpoint not read yet (%s)", partition, err)
                await asyncio.sleep(0.5)
        if entry.value is None:
            return PartitionState(partition, options.prefix, options.overrides), entry.revision
        try:
            state = PartitionState.restore(
                entry.value, partition, options.prefix, options.overrides
            )
        except (ValueError, KeyError, TypeError) as err:
            _LOGGER.warning(
                "Partition %d: checkpoint not usable, starting afresh: %s", partition, err
            )
            state = PartitionState(partition, options.prefix, options.overrides)
        return state, entry.revision

    async def _checkpoint(self, key: str, state: PartitionState, revision: int | None) -> int:
        assert self._checkpoints is not None
        data = state.checkpoint()
        started = time.monotonic()
        while True:
            try:
                if revision is None:
                    new = await self._checkpoints.create(key, data)
                else:
                    new = await self._checkpoints.update(key, data, last=revision)
            except KeyWrongLastSequenceError as err:
                raise LostPartitionError from err
            except (TimeoutError, JetStreamError) as err:
                # A server lost or a leader being elected: the same state, a little later.
                _LOGGER.debug("Checkpoint of %s delayed: %s", key, err)
                await asyncio.sleep(0.2)
                continue
            self.metrics.checkpointed(state.partition, len(data), time.monotonic() - started)
            return new

    async def _publish(self, events: list[Event]) -> None:
        """Each event into the events stream (deduplicated by id) and, the first time, onto the
        pair's verdict topic. Retried until the stream has it: no verdict is dropped."""
        assert self._nc is not None
        for event in events:
            payload = event.as_json()
            node, label = event.pair.split("/", 1)
            if await self._published_before(event):
                _LOGGER.info("Event %s was published before this worker took over", event.id)
                continue
            while True:
                try:
                    ack = await self.js.publish(
                        layout.event_subject(node, label),
                        payload,
                        stream=layout.EVENTS,
                        headers={"Nats-Msg-Id": event.id},
                    )
                    break
                except (TimeoutError, JetStreamError) as err:
                    _LOGGER.debug("Event %s not stored yet: %s", event.id, err)
                    await asyncio.sleep(0.2)
            if ack.duplicate:
                _LOGGER.info("Event %s was published before this worker took over", event.id)
                continue
            self.metrics.event(event)
            _LOGGER.warning("Pair %s (%s): theft %s", event.pair, event.name, event.event)
            subject = layout.verdict_subject(self.options.prefix, node, label)
            if self._verdicts is not None:
                self._verdicts.publish(layout.to_topic(subject), payload)
            else:
                await self._nc.publish(subject, payload)

    async def _published_before(self, event: Event) -> bool:
        """Whether the pair's events stream already has this event or a later one (a replay
        long after the stream's duplicate window re-derives an old alarm)."""
        node, label = event.pair.split("/", 1)
        while True:
            try:
                last = await self.js.get_last_msg(layout.EVENTS, layout.event_subject(node, label))
                break
            except NotFoundError:
                return False
            except (TimeoutError, JetStreamError) as err:
                _LOGGER.debug("Events of %s not read yet: %s", event.pair, err)
                await asyncio.sleep(0.2)
        try:
            published = event_order(json.loads(last.data or b"{}")["id"])
        except ValueError, KeyError, TypeError:
            return False
        return published >= event.order


def _checkpoint_key(partition: int) -> str:
    return f"p{partition}"


def _topic(msg: Msg) -> str:
    return layout.stored_topic(msg.subject)[1]


def home_partitions(index: int, workers: int, partitions: int) -> frozenset[int]:
    """Worker `index`'s share of the partitions, out of `workers`."""
    return frozenset(range(index, partitions, workers))
