"""An emulated UART with PZEMs on it: bytes in, the devices' replies out, optionally at 9600 baud.

With `wire_timing` the reply starts after the request has crossed the wire plus the device's
processing latency, and then arrives one byte per 10 bit times, as on the real bus.
"""

from semfw.pzem import BAUDRATE


class EmulatedUart:
    def __init__(self, clock, devices=(), wire_timing=True, latency_ms=10, baudrate=BAUDRATE):
        self.clock = clock
        self.devices = list(devices)
        self.wire_timing = wire_timing
        self.latency_ms = latency_ms
        self.baudrate = baudrate
        self.bytes_written = 0
        self.frames = []  # every request frame, for tests; trimmed to the last 64
        self._reply = b""
        self._reply_start = 0
        self._delivered = 0

    def _byte_ms(self):
        return 10 * 1000 / self.baudrate

    def write(self, data):
        data = bytes(data)
        self.bytes_written += len(data)
        self.frames.append(data)
        if len(self.frames) > 64:
            self.frames.pop(0)
        now = self.clock.ticks_ms()
        t = now / 1000
        replies = [r for r in (d.handle(data, t) for d in self.devices) if r is not None]
        if len(replies) > 1:
            # Two devices talking at once (the general address with several on the bus).
            merged = bytearray(replies[0])
            for other in replies[1:]:
                for index in range(min(len(merged), len(other))):
                    merged[index] &= other[index]  # open-drain-like collision
            replies = [bytes(merged)]
        self._reply = replies[0] if replies else b""
        self._delivered = 0
        if self.wire_timing:
            self._reply_start = now + len(data) * self._byte_ms() + self.latency_ms
        else:
            self._reply_start = now
        return len(data)

    def any(self):
        return len(self._available())

    def _available(self):
        if self._delivered >= len(self._reply):
            return b""
        if not self.wire_timing:
            return self._reply[self._delivered :]
        elapsed = self.clock.ticks_ms() - self._reply_start
        if elapsed < 0:
            return b""
        arrived = min(len(self._reply), int(elapsed / self._byte_ms()))
        return self._reply[self._delivered : arrived]

    def read(self, nbytes=-1):
        data = self._available()
        if nbytes >= 0:
            data = data[:nbytes]
        if not data:
            return None
        self._delivered += len(data)
        return data
