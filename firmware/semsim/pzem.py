"""An emulated PZEM-004T v3: answers Modbus-RTU frames byte for byte like the real device."""

from semfw import modbus


def _u16(value):
    return bytes(((value >> 8) & 0xFF, value & 0xFF))


def _u32(value):
    # Low word first, as the PZEM sends 32-bit values.
    return _u16(value & 0xFFFF) + _u16((value >> 16) & 0xFFFF)


# The input registers in order, with their width in 16-bit words.
REGISTERS = (
    ("voltage", 1),
    ("current", 2),
    ("power", 2),
    ("energy", 2),
    ("frequency", 1),
    ("pf", 1),
    ("alarm", 1),
)


class EmulatedPzem:
    """One device. `load(t)` gives the true (watts, power factor) flowing through it at time t (s),
    optionally with the voltage at the meter as a third value (else `voltage`).

    gain: the meter's own error (0.99 reads 1 % low); noise: the bound of the random error of
    each reading (0.005 = ±0.5 %). Energy accumulates from what the meter measures.
    """

    def __init__(self, address, load, random, voltage=226.6, frequency=50.0, gain=1.0, noise=0.005):
        self.address = address
        self.load = load
        self.random = random
        self.voltage = voltage
        self.frequency = frequency
        self.gain = gain
        self.noise = noise
        self.energy_wh = 0.0
        self.alarm_threshold_w = 23000
        self._last_t = None
        self.offline = []  # (from_s, until_s) windows without any answer
        self.forced_offline = False
        self.crc_rate = 0.0
        self.timeout_rate = 0.0
        self.garbage = b""  # line noise before every reply
        self.refuse_reset = False  # answer reset_energy with an exception reply (0xC2)
        self.forced = {}  # register values that replace the measured ones, by REGISTERS name
        self.functions_seen = []
        self.requests = 0

    def force(self, name, value):
        """Report `value` in register `name` instead of the measured one (None: measure again);
        False for a name that is not one of REGISTERS."""
        if name not in [register for register, _ in REGISTERS]:
            return False
        if value is None:
            self.forced.pop(name, None)
        else:
            self.forced[name] = value
        return True

    def _jitter(self):
        # Triangular distribution within ±noise: most readings are close, none is beyond.
        return (self.random() + self.random() - 1.0) * self.noise

    def advance(self, t):
        """Accumulate energy up to time t (s)."""
        if self._last_t is not None and t > self._last_t:
            watts = self.load(t)[0] * self.gain
            self.energy_wh += watts * (t - self._last_t) / 3600
        self._last_t = t

    def is_offline(self, t):
        if self.forced_offline:
            return True
        for start, until in self.offline:
            if start <= t and (until is None or t < until):
                return True
        return False

    def measurements(self, t):
        flow = self.load(t)
        watts, pf = flow[0], flow[1]
        volts = (flow[2] if len(flow) > 2 else self.voltage) * (1 + self._jitter())
        power = watts * self.gain * (1 + self._jitter()) if watts > 0 else 0.0
        current = power / (volts * pf) if power > 0 and pf > 0 else 0.0
        freq = self.frequency * (1 + self._jitter() / 10)
        alarm = 0xFFFF if power > self.alarm_threshold_w else 0
        raw = {
            "voltage": int(volts * 10 + 0.5),
            "current": int(current * 1000 + 0.5),
            "power": int(power * 10 + 0.5),
            "energy": int(self.energy_wh),
            "frequency": int(freq * 10 + 0.5),
            "pf": int(pf * 100 + 0.5) if power > 0 else 0,
            "alarm": alarm,
        }
        for name in self.forced:
            raw[name] = self.forced[name]
        return b"".join((_u32 if width == 2 else _u16)(raw[name]) for name, width in REGISTERS)

    def _exception(self, function, code):
        return modbus.with_crc(bytes((self.address, function | 0x80, code)))

    def handle(self, frame, t):
        """The reply to a request frame at time t, or None when the device stays silent."""
        if len(frame) < 4 or not modbus.crc_ok(frame):
            return None  # a Modbus slave ignores corrupt frames
        address, function = frame[0], frame[1]
        if address not in (self.address, modbus.GENERAL_ADDRESS):
            return None
        self.advance(t)
        self.requests += 1
        if function not in self.functions_seen:
            self.functions_seen.append(function)
        if self.is_offline(t) or (self.timeout_rate and self.random() < self.timeout_rate):
            return None
        if function == modbus.RESET_ENERGY and self.refuse_reset:
            reply = self._exception(function, 0x04)
        else:
            reply = self._reply(function, frame, t)
        if reply is not None and self.crc_rate and self.random() < self.crc_rate:
            index = int(self.random() * len(reply))
            reply = reply[:index] + bytes((reply[index] ^ 0x5A,)) + reply[index + 1 :]
        if reply is not None and self.garbage:
            reply = self.garbage + reply
        return reply

    def _reply(self, function, frame, t):
        me = self.address
        if function == modbus.READ_INPUT:
            start = (frame[2] << 8) | frame[3]
            count = (frame[4] << 8) | frame[5]
            if len(frame) != 8 or count < 1 or start + count > 10:
                return self._exception(function, 0x02)
            data = self.measurements(t)[start * 2 : (start + count) * 2]
            return modbus.with_crc(bytes((me, function, len(data))) + data)
        if function == modbus.READ_HOLDING:
            start = (frame[2] << 8) | frame[3]
            count = (frame[4] << 8) | frame[5]
            if len(frame) != 8 or count < 1 or start < 1 or start + count > 3:
                return self._exception(function, 0x02)
            regs = {1: self.alarm_threshold_w, 2: self.address}
            data = b"".join(_u16(regs[r]) for r in range(start, start + count))
            return modbus.with_crc(bytes((me, function, len(data))) + data)
        if function == modbus.WRITE_SINGLE:
            register = (frame[2] << 8) | frame[3]
            value = (frame[4] << 8) | frame[5]
            if register == 1:
                self.alarm_threshold_w = value
            elif register == 2 and modbus.MIN_ADDRESS <= value <= modbus.MAX_ADDRESS:
                self.address = value
            else:
                return self._exception(function, 0x03)
            return modbus.with_crc(bytes((me, function)) + bytes(frame[2:6]))
        if function == modbus.RESET_ENERGY:
            if len(frame) != 4:
                return self._exception(function, 0x03)
            self.energy_wh = 0.0
            return modbus.with_crc(bytes((me, function)))
        return self._exception(function, 0x01)
