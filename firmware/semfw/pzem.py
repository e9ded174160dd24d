"""PZEM-004T v3 driver: Modbus-RTU over a UART adapter, with timeouts and retries.

The UART adapter has `write(bytes)` and `read()` (the bytes received so far, or None), like
machine.UART with timeout=0. Several PZEMs share one UART by Modbus address; a `Bus` serialises
their transactions. Nothing here blocks: waiting is `await clock.sleep_ms()`.
"""

import asyncio

from semfw import modbus

BAUDRATE = 9600
ADDRESS_REGISTER = 0x0002
ALARM_REGISTER = 0x0001

# Units of the input registers: 0.1 V, 0.001 A, 0.1 W, 1 Wh, 0.1 Hz, 0.01.
VOLTAGE_MAX_DV = 3000
CURRENT_MAX_MA = 100000
POWER_MAX_DW = 250000
FREQUENCY_MIN_DHZ = 450
FREQUENCY_MAX_DHZ = 650
PF_MAX_C = 100
# The energy register counts up to 9,999.99 kWh and wraps to 0 (docs/protocol.md).
ENERGY_MAX_WH = 10000000
# Bytes kept while waiting for a reply: the longest reply (25 bytes) behind plenty of noise.
MAX_RECEIVE = 128


def wire_time_ms(nbytes, baudrate=BAUDRATE):
    """Time `nbytes` take on the wire at 8N1 (10 bits a byte)."""
    return nbytes * 10 * 1000 / baudrate


class Reading:
    """One measurement, kept in the PZEM's integer units so no precision is lost on the way."""

    __slots__ = (
        "voltage_dv",
        "current_ma",
        "power_dw",
        "energy_wh",
        "frequency_dhz",
        "pf_c",
        "alarm",
    )

    def __init__(self, voltage_dv, current_ma, power_dw, energy_wh, frequency_dhz, pf_c, alarm):
        self.voltage_dv = voltage_dv
        self.current_ma = current_ma
        self.power_dw = power_dw
        self.energy_wh = energy_wh
        self.frequency_dhz = frequency_dhz
        self.pf_c = pf_c
        self.alarm = alarm

    @property
    def voltage(self):
        return self.voltage_dv / 10

    @property
    def current(self):
        return self.current_ma / 1000

    @property
    def power(self):
        return self.power_dw / 10

    @property
    def frequency(self):
        return self.frequency_dhz / 10

    @property
    def power_factor(self):
        return self.pf_c / 100

    def problem(self):
        """Why this reading cannot be a real one, in the protocol's units (None when it is
        plausible): it becomes the `detail` of the `out_of_range` error form."""
        if self.voltage_dv > VOLTAGE_MAX_DV:
            return "voltage %s V above %s V" % (_fixed(self.voltage_dv, 10), VOLTAGE_MAX_DV // 10)
        if self.current_ma > CURRENT_MAX_MA:
            return "current %s A above %s A" % (
                _fixed(self.current_ma, 1000),
                CURRENT_MAX_MA // 1000,
            )
        if self.power_dw > POWER_MAX_DW:
            return "power %s W above %s W" % (_fixed(self.power_dw, 10), POWER_MAX_DW // 10)
        if not FREQUENCY_MIN_DHZ <= self.frequency_dhz <= FREQUENCY_MAX_DHZ:
            return "frequency %s Hz outside %d-%d Hz" % (
                _fixed(self.frequency_dhz, 10),
                FREQUENCY_MIN_DHZ // 10,
                FREQUENCY_MAX_DHZ // 10,
            )
        if self.pf_c > PF_MAX_C:
            return "power factor %s above 1" % _fixed(self.pf_c, 100)
        if self.energy_wh > ENERGY_MAX_WH:
            return "energy %d Wh above %d Wh" % (self.energy_wh, ENERGY_MAX_WH)
        return None

    def __repr__(self):
        return "Reading(%sV %sA %sW %dWh %sHz pf %s%s)" % (
            self.voltage,
            self.current,
            self.power,
            self.energy_wh,
            self.frequency,
            self.power_factor,
            " ALARM" if self.alarm else "",
        )


def _fixed(value, scale):
    """An integer count of 1/scale units as text: _fixed(65535, 10) == "6553.5"."""
    fraction = str(scale + value % scale)[1:].rstrip("0")
    return str(value // scale) + ("." + fraction if fraction else "")


def _u16(data, index):
    return (data[index] << 8) | data[index + 1]


def _u32(data, index):
    # 32-bit values come low word first, each word big-endian.
    return _u16(data, index) | (_u16(data, index + 2) << 16)


def parse_measurements(data):
    """Decode the 20 data bytes of the ten input registers."""
    if len(data) != 20:
        raise modbus.ModbusError("crc", "expected 20 data bytes, got %d" % len(data))
    return Reading(
        voltage_dv=_u16(data, 0),
        current_ma=_u32(data, 2),
        power_dw=_u32(data, 6),
        energy_wh=_u32(data, 10),
        frequency_dhz=_u16(data, 14),
        pf_c=_u16(data, 16),
        alarm=_u16(data, 18) != 0,
    )


class Bus:
    """One UART with the PZEMs on it; one transaction at a time."""

    def __init__(self, uart, clock, timeout_ms=200, retries=1, poll_ms=2):
        self.uart = uart
        self.clock = clock
        self.timeout_ms = timeout_ms
        self.retries = retries
        self.poll_ms = poll_ms
        self.lock = asyncio.Lock()
        self.transactions = 0

    def _drain(self):
        # Late bytes of an earlier, timed-out reply would corrupt the next one.
        for _ in range(64):
            if not self.uart.read():
                return

    async def _receive(self, address, function):
        """The reply frame, found behind any leading noise; on timeout whatever arrived (nothing:
        a timeout, something: a corrupt reply)."""
        clock = self.clock
        start = clock.ticks_ms()
        buf = b""
        while True:
            chunk = self.uart.read()
            if chunk:
                # Bounded: a bus that only ever sends noise cannot grow the heap.
                buf = (buf + chunk)[-MAX_RECEIVE:]
                frame = modbus.find_reply(buf, address, function)
                if frame is not None:
                    return frame
            if clock.ticks_diff(clock.ticks_ms(), start) >= self.timeout_ms:
                return buf
            await clock.sleep_ms(self.poll_ms)

    async def transact(self, frame):
        """Send a request and return the reply's data bytes; raise ModbusError after retries.

        An exception reply is an answer, so it is not retried.
        """
        address, function = frame[0], frame[1]
        if function == modbus.CALIBRATE:
            raise ValueError("the calibration function 0x41 is never sent")
        async with self.lock:
            error = None
            for _ in range(self.retries + 1):
                self._drain()
                self.transactions += 1
                self.uart.write(frame)
                reply = await self._receive(address, function)
                try:
                    return modbus.check_reply(reply, address, function)
                except modbus.ModbusError as err:
                    if err.kind == "exception":
                        raise
                    error = err
            raise error


class Pzem:
    """One PZEM-004T v3 at a Modbus address on a bus."""

    def __init__(self, bus, address, min_gap_ms=1000):
        if not modbus.MIN_ADDRESS <= address <= modbus.MAX_ADDRESS:
            raise ValueError("PZEM address %r is outside 1..247" % (address,))
        self.bus = bus
        self.address = address
        self.min_gap_ms = min_gap_ms
        self._last = None

    async def _pace(self):
        # The PZEM refreshes its registers about once a second: reading faster buys nothing.
        clock = self.bus.clock
        while self._last is not None:
            # A loop, because a timer may wake a little early.
            wait = self.min_gap_ms - clock.ticks_diff(clock.ticks_ms(), self._last)
            if wait <= 0:
                break
            await clock.sleep_ms(wait)
        self._last = clock.ticks_ms()

    async def read(self):
        """Read the ten measurement registers; raise ModbusError on timeout/CRC/exception."""
        await self._pace()
        data = await self.bus.transact(modbus.read_input_registers(self.address))
        return parse_measurements(data)

    async def reset_energy(self):
        """Clear the energy counter (function 0x42)."""
        await self.bus.transact(modbus.reset_energy(self.address))

    async def read_alarm_threshold(self):
        """The power alarm threshold in W."""
        data = await self.bus.transact(
            modbus.read_holding_registers(self.address, ALARM_REGISTER, 1)
        )
        return _u16(data, 0)


async def set_address(bus, new_address):
    """Give the only PZEM on `bus` a new Modbus address, through the general address 0xF8."""
    if not modbus.MIN_ADDRESS <= new_address <= modbus.MAX_ADDRESS:
        raise ValueError("PZEM address %r is outside 1..247" % (new_address,))
    data = await bus.transact(
        modbus.write_single_register(modbus.GENERAL_ADDRESS, ADDRESS_REGISTER, new_address)
    )
    if data != bytes((0x00, ADDRESS_REGISTER, 0x00, new_address)):
        raise modbus.ModbusError("crc", "address write was not echoed")
