"""Where the service keeps what: stream, subjects, buckets, and how node ids map to partitions.

The readings stream sources what nodes publish at QoS 1 under the topic prefix from the stream
where NATS stored it before acknowledging it (MQTT `/` becomes NATS `.`), and stores every
message under `part.<n>.<original subject>`, with `n` NATS's own partition function of the node
id: every message of a node lands in one partition, in order, once. A new leader of the
readings stream goes on from the last message it holds, so losing its leader loses nothing.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Final

from nats.js import JetStreamContext
from nats.js.api import (
    KeyValueConfig,
    RetentionPolicy,
    StorageType,
    StreamConfig,
    StreamSource,
    SubjectTransform,
)
from nats.js.errors import BadRequestError, ServiceUnavailableError
from nats.js.kv import KeyValue

READINGS: Final = "SEM_READINGS"
# Where NATS stores every QoS 1/2 message an MQTT client publishes, under this subject prefix
# and before it sends the PUBACK (server/mqtt.go: mqttStreamName, mqttStreamSubjectPrefix).
MQTT_MESSAGES: Final = "$MQTT_msgs"
MQTT_MESSAGES_PREFIX: Final = "$MQTT.msgs"
EVENTS: Final = "SEM_EVENTS"
CHECKPOINTS: Final = "sem_checkpoints"
LEASES: Final = "sem_leases"
PARTITION_PREFIX: Final = "part"
EVENT_SUBJECT: Final = "semsvc.events"
# How long readings are kept: a worker replays at most from its last checkpoint, a new one
# from the start (pairs are configured from the announces in the stream).
READINGS_MAX_AGE: Final = timedelta(days=1)
# How long NATS's store of MQTT messages keeps them: the readings stream sources from it and
# needs it only to cover the time it cannot (an election, a restart of its servers).
MQTT_MESSAGES_MAX_AGE: Final = timedelta(hours=1)
# A restored worker re-derives the events since its last checkpoint: the stream drops them as
# duplicates (same id) within this window.
DUPLICATE_WINDOW: Final = timedelta(minutes=30)


def to_subject(topic: str) -> str:
    """The NATS subject of an MQTT topic (ids never contain `.`: protocol identifiers)."""
    return topic.replace("/", ".")


def to_topic(subject: str) -> str:
    """The MQTT topic of a NATS subject."""
    return subject.replace(".", "/")


def partition_filter(partition: int) -> str:
    """The stream subjects of one partition."""
    return f"{PARTITION_PREFIX}.{partition}.>"


def stored_topic(subject: str) -> tuple[int, str]:
    """The partition and the original MQTT topic of a stored reading's subject."""
    _, partition, rest = subject.split(".", 2)
    return int(partition), to_topic(rest)


def event_subject(node: str, label: str) -> str:
    """Subject of a pair's theft events in the events stream."""
    return f"{EVENT_SUBJECT}.{node}.{label}"


def verdict_subject(prefix: str, node: str, label: str) -> str:
    """Subject of a pair's service verdict, which MQTT clients see as
    `<prefix>/<node>/<pair>/verdict`."""
    return to_subject(f"{prefix}/{node}/{label}/verdict")


def readings_config(prefix: str, partitions: int, replicas: int) -> StreamConfig:
    """The readings stream: announces, statuses and snapshots of every node under `prefix`,
    sourced from the copies NATS stores of QoS 1 MQTT messages before it acknowledges them."""
    base = to_subject(prefix)
    part = f"{PARTITION_PREFIX}.{{{{partition({partitions},1)}}}}.{base}.{{{{wildcard(1)}}}}"
    transforms = [
        SubjectTransform(src=f"{MQTT_MESSAGES_PREFIX}.{base}.*.{kind}", dest=f"{part}.{kind}")
        for kind in ("announce", "status")
    ]
    transforms.append(
        SubjectTransform(
            src=f"{MQTT_MESSAGES_PREFIX}.{base}.*.*.state",
            dest=f"{part}.{{{{wildcard(2)}}}}.state",
        )
    )
    return StreamConfig(
        name=READINGS,
        sources=[StreamSource(name=MQTT_MESSAGES, subject_transforms=transforms)],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_age=READINGS_MAX_AGE.total_seconds(),
        description=f"node messages under {prefix} in {partitions} partitions by node id",
    )


def mqtt_messages_config(replicas: int) -> StreamConfig:
    """NATS's own store of QoS 1/2 MQTT messages, made before any MQTT client connects so that
    it keeps what it stores: NATS would create it with interest retention, which drops a
    message at once while nothing consumes it, so whatever nodes publish while the readings
    stream elects a new leader would be gone before the stream could source it."""
    return StreamConfig(
        name=MQTT_MESSAGES,
        subjects=[f"{MQTT_MESSAGES_PREFIX}.>"],
        retention=RetentionPolicy.LIMITS,
        storage=StorageType.FILE,
        num_replicas=replicas,
        max_age=MQTT_MESSAGES_MAX_AGE.total_seconds(),
    )


def events_config(replicas: int) -> StreamConfig:
    """The theft and clear events, deduplicated by their stable id."""
    return StreamConfig(
        name=EVENTS,
        subjects=[f"{EVENT_SUBJECT}.>"],
        storage=StorageType.FILE,
        num_replicas=replicas,
        duplicate_window=DUPLICATE_WINDOW.total_seconds(),
    )


# A cluster that has just started, or just lost a server, may leave an admin request
# unanswered while it elects its leaders: it is asked again until it answers, for this long.
ADMIN_PATIENCE_S: Final = 60.0


async def _patiently[T](call: Callable[[], Awaitable[T]]) -> T:
    deadline = time.monotonic() + ADMIN_PATIENCE_S
    while True:
        try:
            return await call()
        except TimeoutError, ServiceUnavailableError:  # nats-py's timeout is a TimeoutError
            if time.monotonic() >= deadline:
                raise
            await asyncio.sleep(0.5)


async def _add_or_update(js: JetStreamContext, config: StreamConfig) -> None:
    try:
        await js.add_stream(config)
    except BadRequestError:  # it exists (also when an unanswered request created it)
        await js.update_stream(config)


async def ensure(
    js: JetStreamContext, prefix: str, partitions: int, replicas: int, lease_s: float
) -> tuple[KeyValue, KeyValue]:
    """Create (or find) the streams and buckets; answer the checkpoint and lease buckets."""
    for config in (
        mqtt_messages_config(replicas),
        readings_config(prefix, partitions, replicas),
        events_config(replicas),
    ):
        await _patiently(partial(_add_or_update, js, config))
    checkpoints = await _patiently(
        partial(
            js.create_key_value,
            KeyValueConfig(bucket=CHECKPOINTS, history=1, replicas=replicas, max_value_size=-1),
        )
    )
    leases = await _patiently(
        partial(
            js.create_key_value,
            KeyValueConfig(bucket=LEASES, history=1, replicas=replicas, ttl=lease_s),
        )
    )
    return checkpoints, leases
