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
from semfw.relay import Relay, RelayBank
from semfw.watchdog import Progress, feeder


class Meter:
    __slots__ = ("spec", "pzem", "seq", "last_error", "state_topic")

    def __init__(self, spec, pzem, state_topic):
        self.spec = spec
        self.pzem = pzem
        self.seq = 0
        self.last_error = None
        self.state_topic = state_topic


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
        for spec in cfg.meters:
            pzem = Pzem(buses[spec.uart], spec.addr, cfg.pzem_min_gap_ms)
            self.meters.append(Meter(spec, pzem, protocol.state_topic(prefix, node, spec.id)))
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
        self._commands = []
        self._command_event = asyncio.Event()
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

    async def _publish(self, topic, payload, retain):
        if self.cfg.key is not None and (topic.endswith("/state") or topic.endswith("/announce")):
            if payload[:1] == b"{":
                payload = protocol.sign(self.cfg.key, topic, payload)
        return await self.client.publish(topic, payload, retain)

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
        await self.client.subscribe(topics)
        if self.update is not None and announced:
            await self.update.connected()

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
            self._commands.append(("relay", self._set_topics[topic], on))
        elif topic in self._reset_topics:
            self._commands.append(("reset", self._reset_topics[topic], None))
        else:
            self.log("message ignored on unexpected topic %s" % topic)
            return
        self._command_event.set()

    async def _command_loop(self):
        while True:
            await self._command_event.wait()
            self._command_event.clear()
            while self._commands:
                kind, target, arg = self._commands.pop(0)
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
                    try:
                        await target.pzem.reset_energy()
                        self.log("meter %s: energy counter reset" % target.spec.id)
                    except ModbusError as err:
                        self.log("meter %s: energy reset failed (%s)" % (target.spec.id, err))

    # --- polling ---------------------------------------------------------------------------

    async def poll_meter(self, meter):
        """Read one PZEM and publish its snapshot, or the error form when it did not answer."""
        try:
            reading = await meter.pzem.read()
        except ModbusError as err:
            reading = None
            error = err.kind
            if meter.last_error != error:
                self.log("meter %s: %s" % (meter.spec.id, err))
            meter.last_error = error
        else:
            problem = reading.problem()
            if problem is not None:
                # Not a reading a PZEM can produce: publish nothing rather than a wrong value.
                self.log("meter %s: implausible reading dropped (%s)" % (meter.spec.id, problem))
                return
            if meter.last_error is not None:
                self.log("meter %s: answering again" % meter.spec.id)
            meter.last_error = None
        unix_ms = self.clock.unix_ms()
        if not self.client.connected:
            return
        if reading is None:
            payload = protocol.error_payload(meter.seq, unix_ms, error, self.boot_count)
        else:
            payload = protocol.state_payload(meter.seq, unix_ms, reading, self.boot_count)
        meter.seq += 1
        await self._publish(meter.state_topic, payload, True)
        if reading is not None and self.cfg.paper_topics:
            for quantity, text in protocol.paper_values(reading):
                topic = protocol.paper_topic(
                    self.cfg.prefix, self.cfg.node, meter.spec.id, quantity
                )
                await self.client.publish(topic, text.encode(), False)

    async def _poll_loop(self):
        clock = self.clock
        interval = self.cfg.interval_ms
        due = clock.ticks_ms()
        while True:
            for meter in self.meters:
                await self.poll_meter(meter)
                self.progress.mark("poll")
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
        if self.client.connected:
            await self.client.publish(self.status_topic, b"offline", True)
        await self.client.disconnect()
        self._tasks[0].cancel()
        self._tasks = []
