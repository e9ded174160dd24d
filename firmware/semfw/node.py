"""The node: polls its PZEMs, publishes protocol v1, obeys relay and reset commands.

It is built from a validated Config and a hardware bundle (see `hw.py` for the ESP32 and
`semsim.hw` for the host), which provides:

    clock       ticks_ms/ticks_diff/sleep_ms/unix_ms for polling and timestamps
    net_clock   the same for MQTT timing (real time even when the simulation runs faster)
    open_uart(spec) -> UART adapter;  open_pin(relay_spec) -> pin adapter
    store       load()/save(dict) of the remembered relay states
    boots       the boot counter (semfw.boots): advance() -> this boot's number, error
    wdt         feed(), or None;  mac (6 bytes);  ip() -> str or None;  random() -> [0, 1)
"""

import asyncio

from semfw import MODEL, VERSION, protocol
from semfw.backoff import Backoff
from semfw.modbus import ModbusError
from semfw.mqtt import Client
from semfw.pzem import Bus, Pzem
from semfw.queues import LatestQueue, RingQueue
from semfw.relay import Relay, RelayBank
from semfw.watchdog import Progress, feeder

# QoS-1 publishes of readings in flight at once: at a 100 ms broker round trip, 4 carry 40
# readings a second, more than 16 PZEMs at the shortest interval produce.
PUBLISH_WINDOW = 4
# Readings waiting for the broker: at least two whole poll cycles, and 32 however few meters,
# so that a node rides out a broker that takes seconds to fail over (a NATS cluster's 5 s;
# 458 bytes a queued reading on the 64-bit unix port, less on the ESP32's 32 bits).
QUEUED_READINGS = 32
QUEUED_CYCLES = 2
# Refused command subscriptions are tried again after this, doubling up to the maximum.
RESUBSCRIBE_MS = 2000
RESUBSCRIBE_MAX_MS = 60000


def _ticket(entry):
    return entry[3]


class Meter:
    __slots__ = ("spec", "pzem", "seq", "last_error", "state_topic", "dropped")

    def __init__(self, spec, pzem, state_topic):
        self.spec = spec
        self.pzem = pzem
        self.seq = 0
        self.last_error = None
        self.state_topic = state_topic
        self.dropped = 0  # readings given a seq that never reached the broker, since boot


class Node:
    def __init__(self, cfg, hw, log=print, backoff_cap_ms=30000, announce_interval_ms=None):
        self.cfg = cfg
        self.hw = hw
        self.log = log
        self.clock = hw.clock
        prefix, node = cfg.prefix, cfg.node
        self.status_topic = protocol.status_topic(prefix, node)
        self.announce_topic = protocol.announce_topic(prefix, node)
        # The interval announced to receivers, in their (real) time.
        self.announce_interval_ms = announce_interval_ms or cfg.interval_ms

        buses = {}
        for uart in cfg.uarts:
            buses[uart.id] = Bus(
                hw.open_uart(uart), hw.clock, cfg.pzem_timeout_ms, cfg.pzem_retries
            )
        self.buses = buses
        self.meters = []
        by_bus = {}
        for spec in cfg.meters:
            pzem = Pzem(buses[spec.uart], spec.addr, cfg.pzem_min_gap_ms)
            meter = Meter(spec, pzem, protocol.state_topic(prefix, node, spec.id))
            self.meters.append(meter)
            by_bus.setdefault(spec.uart, []).append(meter)
        # Each UART is polled by its own coroutine, its meters in configuration order.
        self.bus_meters = [by_bus[uart.id] for uart in cfg.uarts if uart.id in by_bus]
        relays = [
            Relay(spec.id, spec.pair, hw.open_pin(spec), spec.active_high, spec.power_on)
            for spec in cfg.relays
        ]
        self.relays = RelayBank(relays, hw.store)

        self._set_topics = {}
        for spec in cfg.relays:
            self._set_topics[protocol.relay_set_topic(prefix, node, spec.id)] = spec.id
        self._reset_topics = {}
        for meter in self.meters:
            topic = protocol.reset_energy_topic(prefix, node, meter.spec.id)
            self._reset_topics[topic] = meter
        # One pending command per relay and per meter: the queue cannot outgrow the node.
        self._commands = LatestQueue(len(self._set_topics) + len(self._reset_topics))
        self.outbox = RingQueue(max(QUEUED_READINGS, QUEUED_CYCLES * len(self.meters)))
        self._episode_drops = 0  # readings dropped since the last time the outbox ran empty
        self._episode_resends = 0  # readings put back for a second send since then
        self.resent = 0  # readings sent again after the broker did not acknowledge them
        self._tickets = 0
        self._resubscribing = None  # the task that subscribes again after a refusal
        self.progress = Progress(hw.net_clock, stall_ms=max(90000, backoff_cap_ms * 3))
        self.client = Client(
            node,
            cfg.broker_host,
            cfg.broker_port,
            hw.net_clock,
            user=cfg.broker_user,
            password=cfg.broker_password,
            keepalive_s=cfg.keepalive_s,
            will=(self.status_topic, b"offline", True, 1),
            on_connect=self._on_connect,
            on_message=self._on_message,
            backoff=Backoff(500, backoff_cap_ms, hw.random),
            progress=self.progress,
            log=log,
            tls=cfg.broker_tls,
            check_topic=self.status_topic,
            fallback=cfg.broker_fallback,
        )
        self._tasks = []
        self.polls = 0
        self.boot_count = None  # sent in every `state` once boot() counted this boot
        # Firmware updates (semfw.update), on hardware booted through the selector (semboot).
        self.update = None
        if getattr(hw, "flash", None) is not None:
            from semfw.update import Updater

            self.update = Updater(self, hw.flash, log=log)

    # --- publishing ------------------------------------------------------------------------

    def _signed(self, topic, payload):
        if self.cfg.key is not None and (topic.endswith("/state") or topic.endswith("/announce")):
            if payload[:1] == b"{":
                return protocol.sign(self.cfg.key, topic, payload)
        return payload

    async def _publish(self, topic, payload, retain):
        return await self.client.publish(topic, self._signed(topic, payload), retain)

    def announce_payload(self):
        cfg = self.cfg
        return protocol.announce_payload(
            cfg.node,
            cfg.name,
            MODEL,
            VERSION,
            protocol.mac_text(self.hw.mac),
            self.hw.ip(),
            max(200, self.announce_interval_ms),
            [(m.spec.id, m.spec.role, m.spec.pair, m.spec.addr) for m in self.meters],
            [(spec.id, spec.pair) for spec in cfg.relays],
            cfg.pairs,
            cfg.paper_topics,
            self.update.announce_fields() if self.update is not None else (),
        )

    async def _on_connect(self):
        """After every (re)connection: status, announce, relay states (read from the pins),
        then the command subscriptions. Pins are only read here, never written."""
        await self.client.publish(self.status_topic, b"online", True)
        announced = await self._publish(self.announce_topic, self.announce_payload(), True)
        for relay_id, on in self.relays.states():
            await self.client.publish(
                protocol.relay_state_topic(self.cfg.prefix, self.cfg.node, relay_id),
                protocol.relay_payload(on),
                True,
            )
        topics = [(topic, 1) for topic in self._set_topics]
        topics += [(topic, 1) for topic in self._reset_topics]
        if self.update is not None:
            topics += self.update.topics()
        if not await self.client.subscribe(topics) and self.client.connected:
            # A cluster's server refuses subscriptions while it elects (NATS); an ACL would
            # for ever. Either way commands must not stay unheard: try again, less often.
            if self._resubscribing is not None:
                self._resubscribing.cancel()
            self._resubscribing = asyncio.create_task(
                self._subscribe_later(topics, self.client.connections)
            )
        if self.update is not None and announced:
            await self.update.connected()

    async def _subscribe_later(self, topics, connection):
        delay = RESUBSCRIBE_MS
        while True:
            await self.hw.net_clock.sleep_ms(delay)
            if not self.client.connected or self.client.connections != connection:
                return  # the next connection subscribes anew
            if await self.client.subscribe(topics):
                self.log("mqtt: subscribed to the commands")
                return
            delay = min(delay * 2, RESUBSCRIBE_MAX_MS)

    # --- commands --------------------------------------------------------------------------

    def _on_message(self, topic, payload, retained):
        if retained:
            # A retained command would replay on every reconnect: never act on one.
            self.log("command ignored: retained message on %s" % topic)
            return
        if len(payload) > protocol.MAX_PAYLOAD:
            self.log("command ignored: %d-byte payload on %s" % (len(payload), topic))
            return
        if self.update is not None and self.update.owns(topic):
            self.update.receive(topic, payload)
            return
        if topic in self._set_topics:
            on = protocol.parse_relay_command(payload)
            if on is None:
                self.log("command ignored: relay payload %r is not ON/OFF" % (payload[:20],))
                return
            self._queue_command("relay", self._set_topics[topic], on, topic)
        elif topic in self._reset_topics:
            self._queue_command("reset", self._reset_topics[topic], None, topic)
        else:
            self.log("message ignored on unexpected topic %s" % topic)

    def _queue_command(self, kind, target, arg, topic):
        outcome = self._commands.put((kind, target), arg)
        if outcome == "replaced":
            # Still waiting its turn: the newer command is the one the sender means now.
            self.log("command on %s replaces the one still pending" % topic)
        elif outcome == "full":
            self.log("command ignored: command queue full (%s)" % topic)

    async def _command_loop(self):
        while True:
            await self._commands.wait()
            while self._commands:
                (kind, target), arg = self._commands.pop()
                if kind == "relay":
                    state = self.relays.command(target, arg)
                    self.log(
                        "relay %s: commanded %s, reads back %s"
                        % (target, "ON" if arg else "OFF", "ON" if state else "OFF")
                    )
                    await self.client.publish(
                        protocol.relay_state_topic(self.cfg.prefix, self.cfg.node, target),
                        protocol.relay_payload(state),
                        True,
                    )
                else:
                    await self._reset_energy(target)

    async def _reset_energy(self, meter):
        """Reset the PZEM's counter and say how it went (never retained: it is no state)."""
        error = detail = None
        try:
            await meter.pzem.reset_energy()
            self.log("meter %s: energy counter reset" % meter.spec.id)
        except ModbusError as err:
            error, detail = err.kind, err.detail
            self.log("meter %s: energy reset failed (%s)" % (meter.spec.id, err))
        await self.client.publish(
            protocol.reset_result_topic(self.cfg.prefix, self.cfg.node, meter.spec.id),
            protocol.reset_result_payload(error, detail),
            False,
        )

    # --- polling ---------------------------------------------------------------------------

    async def poll_meter(self, meter):
        """Read one PZEM and publish the result at once, waiting for the broker (the poll loop
        queues it instead)."""
        entry = await self.read_meter(meter)
        if entry is not None:
            await self._deliver(self._ticketed(entry))

    async def read_meter(self, meter):
        """Read one PZEM: (meter, its snapshot or the error form when it did not answer or
        answered with a value no PZEM can measure, the reading or None) to publish, or None
        when there is nothing to publish."""
        error = None
        try:
            reading = await meter.pzem.read()
        except ModbusError as err:
            reading = None
            error, detail = err.kind, err.detail
            if meter.last_error != error:
                self.log("meter %s: %s" % (meter.spec.id, err))
        else:
            detail = reading.problem()
            if detail is not None:
                # Never a wrong value, nor silence that leaves the last good one showing: the
                # error form, and the receiver shows the meter unavailable with the reason.
                error, reading = protocol.OUT_OF_RANGE, None
                if meter.last_error != error:
                    self.log("meter %s: %s: %s" % (meter.spec.id, error, detail))
            elif meter.last_error is not None:
                self.log("meter %s: answering again" % meter.spec.id)
        meter.last_error = error
        unix_ms = self.clock.unix_ms()
        if not self.client.connected:
            return None
        if reading is None:
            payload = protocol.error_payload(meter.seq, unix_ms, error, self.boot_count, detail)
        else:
            payload = protocol.state_payload(meter.seq, unix_ms, reading, self.boot_count)
        meter.seq += 1
        return meter, payload, reading

    # --- publishing readings: the outbox ---------------------------------------------------

    def _ticketed(self, entry):
        # (meter, payload, reading, ticket, sent): the ticket orders readings put back after
        # a failed send; `sent` is True once the payload is the exact bytes that went out.
        self._tickets += 1
        return entry + (self._tickets, False)

    def _queue(self, entry):
        dropped = self.outbox.put(self._ticketed(entry))
        if dropped is not None:
            self._count_drop(dropped[0], "publish queue full")

    def _count_drop(self, meter, why):
        meter.dropped += 1
        if not self._episode_drops:
            self.log("readings dropped: %s (meter %s, seq %d)" % (why, meter.spec.id, meter.seq))
        self._episode_drops += 1

    async def _deliver(self, entry):
        meter, payload, reading, ticket, sent = entry
        if not sent:
            if meter.dropped:
                payload = protocol.with_dropped(payload, meter.dropped)
            payload = self._signed(meter.state_topic, payload)
        if not await self.client.publish(meter.state_topic, payload, True):
            # QoS 1 is at least once: the broker may have stored it, so the very same bytes
            # go again after the reconnect and receivers drop the copy (docs/protocol.md).
            dropped = self.outbox.requeue((meter, payload, reading, ticket, True), _ticket)
            if dropped is not None:
                self._count_drop(dropped[0], "publish queue full")
            if dropped is None or dropped[3] != ticket:
                if not self._episode_resends:
                    self.log(
                        "readings not acknowledged by the broker: sent again once connected "
                        "(meter %s)" % meter.spec.id
                    )
                self._episode_resends += 1
                self.resent += 1
            return
        if reading is not None and self.cfg.paper_topics:
            # Five QoS-1 publishes in flight together: one round trip, not five.
            await asyncio.gather(
                *[
                    self.client.publish(
                        protocol.paper_topic(
                            self.cfg.prefix, self.cfg.node, meter.spec.id, quantity
                        ),
                        text.encode(),
                        False,
                    )
                    for quantity, text in protocol.paper_values(reading)
                ]
            )
        if (self._episode_drops or self._episode_resends) and not len(self.outbox):
            self.log(
                "publishing caught up; %d readings were dropped, %d sent again"
                % (self._episode_drops, self._episode_resends)
            )
            self._episode_drops = self._episode_resends = 0

    async def _publisher(self):
        while True:
            # Not while disconnected: a reading put back would come round again at once.
            await self.client.wait_connected()
            await self._deliver(await self.outbox.get())

    # --- the poll loop ---------------------------------------------------------------------

    async def _poll_bus(self, meters):
        for meter in meters:
            entry = await self.read_meter(meter)
            if entry is not None:
                self._queue(entry)
            self.progress.mark("poll")

    async def poll_cycle(self):
        """Read every meter once and queue the readings; the UARTs are read concurrently."""
        if len(self.bus_meters) == 1:
            await self._poll_bus(self.bus_meters[0])
        else:
            await asyncio.gather(*[self._poll_bus(meters) for meters in self.bus_meters])

    async def _poll_loop(self):
        clock = self.clock
        interval = self.cfg.interval_ms
        due = clock.ticks_ms()
        while True:
            await self.poll_cycle()
            self.polls += 1
            due += interval
            wait = clock.ticks_diff(due, clock.ticks_ms())
            if wait < 0:
                due = clock.ticks_ms()  # overran: skip the missed cycles
                wait = 0
            await clock.sleep_ms(wait)

    # --- life cycle ------------------------------------------------------------------------

    def boot(self):
        """Apply the relays' power-on policy and, when the node signs, count this boot; done
        once, before any network activity."""
        self.relays.power_on()
        for relay_id, on in self.relays.states():
            self.log("relay %s: power-on state %s" % (relay_id, "ON" if on else "OFF"))
        if self.cfg.key is not None:
            # Signed readings are ordered by (boot, seq): a reboot is believed at once.
            boots = self.hw.boots
            self.boot_count = boots.advance()
            if boots.error is not None:
                self.log(
                    "boot counter: boot %d not stored (%s); the next boot may repeat it and "
                    "have its readings refused" % (self.boot_count, boots.error)
                )
            else:
                self.log("boot %d" % self.boot_count)

    def start(self):
        self._tasks = [
            asyncio.create_task(self.client.run()),
            asyncio.create_task(self._poll_loop()),
            asyncio.create_task(self._command_loop()),
        ]
        self._tasks += [asyncio.create_task(self._publisher()) for _ in range(PUBLISH_WINDOW)]
        if self.update is not None:
            self._tasks.append(asyncio.create_task(self.update.run()))
        if self.hw.wdt is not None:
            self._tasks.append(
                asyncio.create_task(
                    feeder(self.progress, self.hw.wdt, self.hw.net_clock, log=self.log)
                )
            )

    async def stop(self):
        """Leave cleanly: `offline` (retained) on status, then DISCONNECT."""
        for task in self._tasks[1:]:
            task.cancel()
        if self._resubscribing is not None:
            self._resubscribing.cancel()
        if self.client.connected:
            await self.client.publish(self.status_topic, b"offline", True)
        await self.client.disconnect()
        self._tasks[0].cancel()
        self._tasks = []
