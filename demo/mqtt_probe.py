"""Reads the retained node announcements from the broker, to know the simulator is up."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion


def wait_for_announces(
    port: int,
    prefix: str,
    timeout: float,
    settle: float = 1.0,
    give_up: Callable[[], bool] = lambda: False,
) -> dict[str, dict[str, Any]]:
    """Return {node id: announce payload} once at least one node announced (or {} on timeout).

    After the first announcement it keeps listening for `settle` seconds to collect the rest.
    `give_up` is polled meanwhile, for example to stop when the announcing process died.
    """
    found: dict[str, dict[str, Any]] = {}
    first = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if not msg.payload:
            return
        try:
            payload = json.loads(msg.payload)
        except ValueError:
            return
        if isinstance(payload, dict):
            found[msg.topic.split("/")[-2]] = payload
            first.set()

    def on_connect(
        client: mqtt.Client, _u: object, _f: object, _rc: object, _p: object = None
    ) -> None:
        client.subscribe(f"{prefix}/+/announce", qos=1)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sem-demo-probe-{port}")
    client.on_message = on_message
    client.on_connect = on_connect
    deadline = time.monotonic() + timeout
    while True:
        try:
            client.connect("127.0.0.1", port, keepalive=30)
            break
        except OSError:
            if time.monotonic() > deadline:
                return {}
            time.sleep(0.2)
    client.loop_start()
    try:
        while not first.wait(0.2):
            if give_up() or time.monotonic() > deadline:
                return {}
        time.sleep(settle)
        return dict(found)
    finally:
        client.disconnect()
        client.loop_stop()


def read_retained(port: int, topic: str, timeout: float = 5.0) -> bytes | None:
    """The retained payload of one topic, or None when nothing is retained there."""
    got: list[bytes] = []
    done = threading.Event()

    def on_message(_c: mqtt.Client, _u: object, msg: mqtt.MQTTMessage) -> None:
        if msg.retain:
            got.append(msg.payload)
        done.set()

    def on_connect(
        client: mqtt.Client, _u: object, _f: object, _rc: object, _p: object = None
    ) -> None:
        client.subscribe(topic, qos=1)

    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"sem-demo-read-{port}")
    client.on_message = on_message
    client.on_connect = on_connect
    client.connect("127.0.0.1", port, keepalive=30)
    client.loop_start()
    try:
        done.wait(timeout)
        return got[-1] if got else None
    finally:
        client.disconnect()
        client.loop_stop()
