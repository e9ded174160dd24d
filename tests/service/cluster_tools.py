"""What the service's tests read from a running cluster: events, stream counts, metrics."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import nats

from semservice import layout
from semservice.stack import Stack


async def _events(urls: list[str]) -> list[dict[str, Any]]:
    nc = await nats.connect(servers=urls)
    try:
        js = nc.jetstream()
        info = await js.stream_info(layout.EVENTS)
        events: list[dict[str, Any]] = []
        if info.state.messages == 0:
            return events
        sub = await js.subscribe(f"{layout.EVENT_SUBJECT}.>", ordered_consumer=True)
        while len(events) < info.state.messages:
            try:
                msg = await sub.next_msg(timeout=5)
            except TimeoutError:
                break
            events.append(json.loads(msg.data))
        await sub.unsubscribe()
        return events
    finally:
        await nc.close()


def events(stack: Stack) -> list[dict[str, Any]]:
    """Every event in the events stream, in order."""
    return asyncio.run(_events(stack.cluster.running_urls))


def detected(stack: Stack) -> dict[str, int]:
    """How many `detected` events each pair has in the events stream."""
    counts: dict[str, int] = {}
    for event in events(stack):
        if event["event"] == "detected":
            counts[event["pair"]] = counts.get(event["pair"], 0) + 1
    return counts


async def _stream(urls: list[str], name: str) -> tuple[int, str | None]:
    nc = await nats.connect(servers=urls)
    try:
        info = await nc.jetstream().stream_info(name)
        leader = info.cluster.leader if info.cluster is not None else None
        return info.state.messages, leader
    finally:
        await nc.close()


def readings_stream(stack: Stack) -> tuple[int, str | None]:
    """Messages in the readings stream, and the server that leads it."""
    return stream(stack, layout.READINGS)


def stream(stack: Stack, name: str) -> tuple[int, str | None]:
    """Messages in a stream, and the server that leads it."""
    return asyncio.run(_stream(stack.cluster.running_urls, name))


async def _stored(urls: list[str], topic: str) -> list[bytes]:
    nc = await nats.connect(servers=urls)
    try:
        js = nc.jetstream()
        subject = f"{layout.PARTITION_PREFIX}.*.{layout.to_subject(topic)}"
        sub = await js.subscribe(subject, stream=layout.READINGS, ordered_consumer=True)
        payloads: list[bytes] = []
        while True:
            try:
                msg = await sub.next_msg(timeout=2)
            except TimeoutError:
                break
            payloads.append(msg.data)
        await sub.unsubscribe()
        return payloads
    finally:
        await nc.close()


def stored(stack: Stack, topic: str) -> list[bytes]:
    """The payloads the readings stream holds for one MQTT topic, in stream order."""
    return asyncio.run(_stored(stack.cluster.running_urls, topic))


async def _state_seqs(urls: list[str], prefix: str) -> dict[str, set[int]]:
    nc = await nats.connect(servers=urls)
    try:
        js = nc.jetstream()
        subject = f"{layout.PARTITION_PREFIX}.*.{layout.to_subject(prefix)}.*.*.state"
        sub = await js.subscribe(subject, stream=layout.READINGS, ordered_consumer=True)
        seqs: dict[str, set[int]] = {}
        while True:
            try:
                msg = await sub.next_msg(timeout=2)
            except TimeoutError:
                break
            meter = msg.subject.split(".", 2)[2]
            seqs.setdefault(meter, set()).add(json.loads(msg.data)["seq"])
        await sub.unsubscribe()
        return seqs
    finally:
        await nc.close()


def state_seqs(stack: Stack) -> dict[str, set[int]]:
    """The reading numbers the readings stream holds of each meter (its state subject)."""
    return asyncio.run(_state_seqs(stack.cluster.running_urls, stack.prefix))


async def _step_down(urls: list[str], name: str, to: str) -> None:
    nc = await nats.connect(servers=urls)
    try:
        request = json.dumps({"placement": {"preferred": to}}).encode()
        reply = await nc.request(f"$JS.API.STREAM.LEADER.STEPDOWN.{name}", request, timeout=5)
        if not json.loads(reply.data).get("success"):
            raise RuntimeError(f"{name} did not step down to {to}: {reply.data!r}")
    finally:
        await nc.close()


def step_down(stack: Stack, name: str, to: str) -> None:
    """Hand a stream's leadership to the server named `to`."""
    asyncio.run(_step_down(stack.cluster.running_urls, name, to))


def metric(text: str, name: str) -> dict[str, float]:
    """One metric's values by partition label ("" when it has none)."""
    values: dict[str, float] = {}
    for match in re.finditer(rf"^{name}{{([^}}]*)}} (\S+)$", text, re.MULTILINE):
        part = re.search(r'partition="(\d+)"', match.group(1))
        values[part.group(1) if part else ""] = float(match.group(2))
    return values
