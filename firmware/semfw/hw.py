"""ESP32 hardware adapters: the only module that touches machine, network and ntptime.

Each adapter is thin on purpose; the logic they serve lives in the pure modules and is tested on
the host with emulated counterparts (semsim.hw).
"""

import asyncio
import json
import sys
import time

import machine
import network

from semfw.boots import BootCounter
from semfw.pzem import BAUDRATE

# MicroPython ports before 1.22 count time from 2000-01-01.
_EPOCH_OFFSET_MS = 946684800000 if time.gmtime(0)[0] == 2000 else 0


class Clock:
    def ticks_ms(self):
        return time.ticks_ms()

    def ticks_diff(self, a, b):
        return time.ticks_diff(a, b)

    async def sleep_ms(self, ms):
        await asyncio.sleep_ms(int(ms))

    def unix_ms(self):
        return time.time_ns() // 1000000 + _EPOCH_OFFSET_MS


class RelayPin:
    """A relay output; high-impedance until the first write so boot never glitches the relay."""

    def __init__(self, number):
        self._pin = machine.Pin(number, machine.Pin.IN)
        self._output = False

    def value(self, *level):
        if not level:
            # Pin.OUT on the ESP32 is input+output, so this reads the driven level back.
            return self._pin.value()
        if self._output:
            self._pin.value(level[0])
        else:
            self._pin.init(machine.Pin.OUT, value=level[0])
            self._output = True
        return None


class FileStore:
    """The remembered relay states, as JSON in flash (written only when they change)."""

    def __init__(self, path="relay_state.json"):
        self.path = path

    def load(self):
        try:
            with open(self.path) as f:
                return json.loads(f.read())
        except OSError:
            return {}

    def save(self, states):
        with open(self.path, "w") as f:
            f.write(json.dumps(states))


def base_mac():
    """The chip's base MAC address (6 bytes), known before any interface is up."""
    return machine.unique_id()


def open_uart(spec):
    # timeout=0: read() returns what has arrived, never blocks the event loop.
    return machine.UART(
        spec.id,
        baudrate=BAUDRATE,
        bits=8,
        parity=None,
        stop=1,
        tx=spec.tx,
        rx=spec.rx,
        timeout=0,
        rxbuf=256,
    )


def _lan(net):
    pin = machine.Pin
    if net["type"] == "w5500":
        spi = machine.SPI(
            net["spi"], sck=pin(net["sck"]), mosi=pin(net["mosi"]), miso=pin(net["miso"])
        )
        kwargs = {
            "spi": spi,
            "cs": pin(net["cs"]),
            "int": pin(net["int"]),
            "phy_type": network.PHY_W5500,
            "phy_addr": net["phy_addr"],
        }
        if net.get("reset") is not None:
            kwargs["reset"] = pin(net["reset"])
        return network.LAN(**kwargs)
    kwargs = {
        "mdc": pin(net["mdc"]),
        "mdio": pin(net["mdio"]),
        "phy_type": network.PHY_LAN8720,
        "phy_addr": net["phy_addr"],
    }
    if net.get("power") is not None:
        kwargs["power"] = pin(net["power"])
    if net.get("ref_clk") is not None:
        kwargs["ref_clk"] = pin(net["ref_clk"])
        kwargs["ref_clk_mode"] = pin.OUT if net["ref_clk_mode"] == "out" else pin.IN
    return network.LAN(**kwargs)


async def bring_up(net, log=print, timeout_ms=30000):
    """Start the configured interface and wait for an address; return the interface."""
    if net.get("hostname"):
        network.hostname(net["hostname"])
    if net["type"] == "wifi":
        nic = network.WLAN(network.STA_IF)
        nic.active(True)
        nic.connect(net["ssid"], net["password"])
    else:
        nic = _lan(net)
        nic.active(True)
    start = time.ticks_ms()
    while not nic.isconnected():
        if time.ticks_diff(time.ticks_ms(), start) > timeout_ms:
            log("network: no link/address after %d s; still trying" % (timeout_ms // 1000))
            start = time.ticks_ms()
        await asyncio.sleep_ms(250)
    log("network: %s up, address %s" % (net["type"], nic.ifconfig()[0]))
    return nic


def set_unix_ms(unix_ms):
    """Set the RTC (what time.time() and Clock.unix_ms read) to a Unix time."""
    seconds = unix_ms // 1000 - _EPOCH_OFFSET_MS // 1000
    tm = time.gmtime(seconds)
    machine.RTC().datetime((tm[0], tm[1], tm[2], tm[6] + 1, tm[3], tm[4], tm[5], 0))


def time_server(server, log=print):
    """The time server's address, looked up now: before the watchdog is armed, since a DNS
    lookup blocks until the resolver gives up (see semfw.ntp)."""
    from semfw.ntp import resolve

    return resolve(server, log)


async def keep_time(server, address, log=print):
    """Set the RTC from NTP now and every hour; a node that cannot reach a server works on."""
    from semfw.ntp import keep_time as keep

    await keep(server, address, set_unix_ms, Clock(), log)


class Flash:
    """What a firmware update needs of the board (semfw.update): free space and a reset."""

    def free_bytes(self):
        import os

        stat = os.statvfs("/")
        return stat[0] * stat[3]

    def reset(self):
        machine.reset()


class Hardware:
    """The bundle the node is built from (see semfw.node)."""

    def __init__(self, nic=None, watchdog_ms=None):
        self.clock = Clock()
        self.net_clock = self.clock
        self.store = FileStore()
        self.boots = BootCounter()
        self.mac = base_mac()
        self.nic = nic
        self.watchdog_ms = watchdog_ms
        self.wdt = None  # armed once the network is up, right before the node starts
        self.open_uart = open_uart
        self.open_pin = lambda spec: RelayPin(spec.pin)
        # Updates only when booted through the selector, which rolls a failed one back.
        self.flash = Flash() if "semboot" in sys.modules else None

    def arm_watchdog(self):
        if self.watchdog_ms:
            self.wdt = machine.WDT(timeout=self.watchdog_ms)

    def ip(self):
        if self.nic is None or not self.nic.isconnected():
            return None
        return self.nic.ifconfig()[0]

    def random(self):
        import random

        return random.random()
