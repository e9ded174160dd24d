"""Helpers for the integration tests: a scripted meter node on a real broker, waiting, entries."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable, Iterable
from dataclasses import replace
from types import MappingProxyType, TracebackType
from typing import Any, Final, Self

import aiomqtt
from homeassistant.config_entries import ConfigSubentry, ConfigSubentryData
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.smart_energy_meter.const import (
    CONF_STATE_WRITES,
    DOMAIN,
    SUBENTRY_NODE_KEY,
    SUBENTRY_PAIR,
)
from custom_components.smart_energy_meter.semcore.protocol import (
    Announce,
    MeterInfo,
    RelayInfo,
    Role,
    ServiceVerdict,
    Snapshot,
    VerdictEvent,
    announce_topic,
    encode_announce,
    encode_state,
    encode_verdict,
    relay_state_topic,
    state_topic,
    status_topic,
    verdict_topic,
)
from tests.mosquitto import Broker

PAPER_ANNOUNCE = Announce(
    node="node1",
    version="1.0",
    name="Pole 7",
    model="ESP32 + PZEM-004T v3",
    firmware="1.0.0",
    mac="24:6f:28:a1:b2:c3",
    interval=1.0,
    meters=(
        MeterInfo("line1", Role.LINE, "house1", 1),
        MeterInfo("house1", Role.HOUSE, "house1", 2),
        MeterInfo("line2", Role.LINE, "house2", 3),
        MeterInfo("house2", Role.HOUSE, "house2", 4),
    ),
    relays=(RelayInfo("r1", "house1"), RelayInfo("r2", "house2")),
    pair_names={"house1": "House 1", "house2": "House 2"},
    ip="192.168.1.50",
)

HOUSE_1 = {
    "pair": "house1",
    "name": "House 1",
    "line": {"node": "node1", "meter": "line1"},
    "house": {"node": "node1", "meter": "house1"},
    "relay": {"node": "node1", "relay": "r1"},
}
HOUSE_2 = {
    "pair": "house2",
    "name": "House 2",
    "line": {"node": "node1", "meter": "line2"},
    "house": {"node": "node1", "meter": "house2"},
    "relay": {"node": "node1", "relay": "r2"},
}


def entry_data(broker: Broker, prefix: str, **overrides: Any) -> dict[str, Any]:
    """Config entry data for a broker fixture."""
    return {
        "host": broker.host,
        "port": broker.port,
        "username": broker.username,
        "password": broker.password,
        "tls": False,
        "ca_cert": None,
        "prefix": prefix,
    } | overrides


# For tests that follow a value reading by reading, whatever its size: every change written.
EVERY_READING: Final[dict[str, Any]] = {CONF_STATE_WRITES: "every_reading"}


def make_entry(
    hass: HomeAssistant,
    broker: Broker,
    prefix: str,
    pairs: Iterable[dict[str, Any]] = (HOUSE_1,),
    options: dict[str, Any] | None = None,
) -> MockConfigEntry:
    """A config entry with one subentry per pair, added to hass (not set up)."""
    entry = MockConfigEntry(
        domain=DOMAIN,
        title=f"{prefix} @ {broker.host}:{broker.port}",
        data=entry_data(broker, prefix),
        unique_id=f"{broker.host}:{broker.port}/{prefix}",
        options=options or {},
        subentries_data=[
            ConfigSubentryData(
                data=pair,
                subentry_type=SUBENTRY_PAIR,
                title=pair["name"],
                unique_id=f"{pair['line'].get('node', 'paper')}/{pair['pair']}",
            )
            for pair in pairs
        ],
    )
    entry.add_to_hass(hass)
    return entry


def add_node_key(hass: HomeAssistant, entry: MockConfigEntry, node: str, key: str) -> None:
    """Give the entry a node's signing key, as its node-key subentry does."""
    hass.config_entries.async_add_subentry(
        entry,
        ConfigSubentry(
            data=MappingProxyType({"node": node, "key": key}),
            subentry_type=SUBENTRY_NODE_KEY,
            title=node,
            unique_id=node,
        ),
    )


async def setup_entry(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Set the entry up and wait until its broker connection is subscribed."""
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the broker connection")


async def setup_with_node_online(
    hass: HomeAssistant,
    broker: Broker,
    prefix: str,
    node: TestNode,
    options: dict[str, Any] | None = None,
) -> MockConfigEntry:
    """The default entry set up, and its scripted node announced and online."""
    entry = make_entry(hass, broker, prefix, options=options)
    await setup_entry(hass, entry)
    await node.announce()
    await node.status("online")
    return entry


def script_clock(entry: MockConfigEntry, *nodes: TestNode) -> None:
    """Let the entry see readings arrive at the newest time the nodes stamped, so that a test
    can publish minutes of node time in a second. Such a test waits for each reading to arrive
    before it publishes the next: then every reading arrives at its own time."""
    entry.runtime_data.fleet.clock = lambda: max(node.arrival for node in nodes)


async def wait_for(
    hass: HomeAssistant, predicate: Callable[[], bool], what: str, within: float = 5.0
) -> None:
    """Let real broker traffic flow until `predicate` holds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while True:
        await hass.async_block_till_done()
        if predicate():
            return
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


async def wait_state(
    hass: HomeAssistant, entity_id: str, expected: str, within: float = 5.0
) -> None:
    """Wait until an entity has a state."""

    def check() -> bool:
        state = hass.states.get(entity_id)
        return state is not None and state.state == expected

    try:
        await wait_for(hass, check, f"{entity_id} == {expected}", within)
    except AssertionError:
        state = hass.states.get(entity_id)
        raise AssertionError(
            f"{entity_id} is {state.state if state else None!r}, expected {expected!r}"
        ) from None


async def wait_number(hass: HomeAssistant, entity_id: str, within: float = 5.0) -> float:
    """Wait until an entity shows a number, and return it."""

    def number() -> float | None:
        try:
            return float(state_of(hass, entity_id))
        except ValueError:
            return None

    await wait_for(hass, lambda: number() is not None, f"a number from {entity_id}", within)
    value = number()
    assert value is not None
    return value


def state_of(hass: HomeAssistant, entity_id: str) -> str:
    """The state string of an entity (which must exist)."""
    state = hass.states.get(entity_id)
    assert state is not None, f"{entity_id} does not exist"
    return state.state


class TestNode:
    """A meter node scripted by a test: publishes what the test says, answers relay commands."""

    __test__ = False  # not a pytest test class

    def __init__(self, broker: Broker, prefix: str, node: str = "node1") -> None:
        self.broker = broker
        self.prefix = prefix
        self.node = node
        self.confirm_relays = True
        self.relay_commands: list[tuple[str, bytes]] = []
        self.reset_commands: list[str] = []
        # What the node replies to a meter's reset_energy (protocol 1.2); no entry: no reply.
        self.reset_replies: dict[str, bytes] = {}
        self._seq: dict[str, int] = {}
        self.boot: int | None = None  # the boot counter sent in `state` (protocol 1.1)
        # Tests that script node time: how far the node's clock is ahead of the arrival clock,
        # and the arrival time of the newest reading published (see `script_clock`).
        self.clock_skew = 0.0
        self.arrival = 0.0
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Self:
        self._client = aiomqtt.Client(
            self.broker.host,
            self.broker.port,
            username=self.broker.username,
            password=self.broker.password,
            will=aiomqtt.Will(status_topic(self.prefix, self.node), b"offline", 1, True),
        )
        await self._client.__aenter__()
        await self._client.subscribe(f"{self.prefix}/{self.node}/relay/+/set", qos=1)
        await self._client.subscribe(f"{self.prefix}/{self.node}/+/reset_energy", qos=1)
        self._task = asyncio.get_running_loop().create_task(self._respond())
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._task is not None
        assert self._client is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _respond(self) -> None:
        assert self._client is not None
        with contextlib.suppress(aiomqtt.MqttError):
            async for message in self._client.messages:
                levels = message.topic.value.split("/")
                if levels[-1] == "reset_energy":
                    meter = levels[-2]
                    self.reset_commands.append(meter)
                    if (reply := self.reset_replies.get(meter)) is not None:
                        await self.publish(f"{message.topic.value}/result", reply)
                    continue
                relay = levels[-2]
                self.relay_commands.append((relay, message.payload))
                if self.confirm_relays and message.payload in (b"ON", b"OFF"):
                    await self.relay_state(relay, message.payload.decode())

    async def publish(self, topic: str, payload: bytes | str, *, retain: bool = False) -> None:
        """Publish anything at QoS 1."""
        assert self._client is not None
        await self._client.publish(topic, payload, qos=1, retain=retain)

    async def announce(self, announce: Announce = PAPER_ANNOUNCE, **changes: Any) -> None:
        """Publish the retained announce."""
        announce = replace(announce, node=self.node, **changes)
        await self.publish(
            announce_topic(self.prefix, self.node), encode_announce(announce), retain=True
        )

    async def status(self, status: str) -> None:
        """Publish the retained status."""
        await self.publish(status_topic(self.prefix, self.node), status, retain=True)

    async def snapshot(
        self,
        meter: str,
        power: float,
        *,
        energy: float = 38.0,
        voltage: float = 225.7,
        current: float = 0.108,
        frequency: float = 50.0,
        power_factor: float = 1.0,
        ts: float | None = None,
        dropped: int | None = None,
    ) -> None:
        """Publish one retained state snapshot of a meter."""
        seq = self._seq.get(meter, -1) + 1
        self._seq[meter] = seq
        ts = time.time() if ts is None else ts
        self.arrival = max(self.arrival, ts - self.clock_skew)
        snapshot = Snapshot(
            self.node,
            meter,
            seq,
            ts,
            voltage,
            current,
            power,
            energy,
            frequency,
            power_factor,
            False,
            boot=self.boot,
            dropped=dropped,
        )
        await self.publish(
            state_topic(self.prefix, self.node, meter), encode_state(snapshot), retain=True
        )

    async def relay_state(self, relay: str, state: str) -> None:
        """Publish the relay's retained read-back state."""
        await self.publish(relay_state_topic(self.prefix, self.node, relay), state, retain=True)


def service_verdict(
    pair: str = "house1", n: int = 1, *, detected: bool = True, at: float = 1_764_072_027.05
) -> ServiceVerdict:
    """The fleet service's verdict on `node1/<pair>`: its n-th theft, or that theft's end."""
    return ServiceVerdict(
        node="node1",
        pair=pair,
        id=f"node1/{pair}/{'theft' if detected else 'clear'}/{n}",
        name=pair,
        event=VerdictEvent.DETECTED if detected else VerdictEvent.CLEARED,
        status="theft" if detected else "ok",
        at=at,
        since=1_764_072_027.05,  # the service sends the theft's start with its clear too
        mismatch_pct=20.81 if detected else 0.35,
        line_power_w=173.1,
        house_power_w=137.1 if detected else 172.5,
        unaccounted_wh=0.2 if detected else 1.75,
    )


async def publish_verdict(
    node: TestNode, verdict: ServiceVerdict | bytes, pair: str = "house1", *, retain: bool = True
) -> None:
    """Publish as the fleet service does: retained, on `<prefix>/node1/<pair>/verdict`."""
    payload = verdict if isinstance(verdict, bytes) else encode_verdict(verdict)
    await node.publish(verdict_topic(node.prefix, "node1", pair), payload, retain=retain)


async def capture_device_triggers(hass: HomeAssistant, device_id: str) -> list[Any]:
    """An automation on each of the pair device's triggers (theft detected and cleared); returns
    the events they fire, each with its trigger's `kind`."""
    fired: list[Any] = async_capture_events(hass, "sem_test_trigger")
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "triggers": {
                        "trigger": "device",
                        "domain": DOMAIN,
                        "device_id": device_id,
                        "type": kind,
                    },
                    "actions": {"event": "sem_test_trigger", "event_data": {"kind": kind}},
                }
                for kind in ("theft_detected", "theft_cleared")
            ]
        },
    )
    return fired
