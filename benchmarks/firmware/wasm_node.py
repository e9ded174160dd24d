"""MicroPython side of the 32-bit heap figure: the simulated node on the WebAssembly port.

The port has no sockets, so the node's MQTT client talks to an in-memory broker that answers
like mosquitto (CONNACK, PUBACK, SUBACK, PINGRESP); everything else is the node as it runs in
the simulator (semsim.run.Runner). Prints the same `heap_code_*` and `stats:` lines as the unix
port's figures. Driven by wasm_heap.mjs: `await wasm_node.main(root, meters, minutes, speed)`.
"""

import asyncio
import gc
import json
import sys


class _Reader:
    def __init__(self):
        self.buf = b""
        self.ready = asyncio.Event()
        self.closed = False

    def feed(self, data):
        self.buf += data
        self.ready.set()

    async def readexactly(self, count):
        while len(self.buf) < count:
            if self.closed:
                raise EOFError
            self.ready.clear()
            await self.ready.wait()
        data = self.buf[:count]
        self.buf = self.buf[count:]
        return data


class _Writer:
    """The node's side of the connection: every complete packet it writes gets its answer."""

    def __init__(self, broker, reader):
        self.broker = broker
        self.reader = reader
        self.buf = b""

    def write(self, data):
        self.buf += bytes(data)
        while self._packet():
            pass

    def _packet(self):
        buf = self.buf
        length = 0
        shift = 0
        index = 1
        while True:
            if index >= len(buf):
                return False
            byte = buf[index]
            length |= (byte & 0x7F) << shift
            shift += 7
            index += 1
            if not byte & 0x80:
                break
        if len(buf) < index + length:
            return False
        first, body = buf[0], buf[index : index + length]
        self.buf = buf[index + length :]
        kind = first & 0xF0
        if kind == 0x10:  # CONNECT
            self.reader.feed(b"\x20\x02\x00\x00")
        elif kind == 0x30:  # PUBLISH
            self.broker.published += 1
            if (first >> 1) & 3:
                at = 2 + ((body[0] << 8) | body[1])
                self.reader.feed(b"\x40\x02" + body[at : at + 2])
        elif kind == 0x80:  # SUBSCRIBE: grant QoS 1 to every filter
            count = 0
            at = 2
            while at < len(body):
                at += 2 + ((body[at] << 8) | body[at + 1]) + 1
                count += 1
            self.reader.feed(bytes((0x90, 2 + count)) + body[:2] + b"\x01" * count)
        elif kind == 0xC0:  # PINGREQ
            self.reader.feed(b"\xd0\x00")
        return True

    async def drain(self):
        await asyncio.sleep(0)

    def close(self):
        self.reader.closed = True
        self.reader.ready.set()

    async def wait_closed(self):
        pass


class MemoryBroker:
    def __init__(self):
        self.published = 0

    async def open_connection(self, host, port):
        reader = _Reader()
        return reader, _Writer(self, reader)


def _scenario(scenario, root, meters):
    """The paper node with its first `meters` PZEMs (whole houses), as a file."""
    spec = scenario.load_file(root + "/firmware/scenarios/paper.json")
    houses = spec["nodes"][0]["houses"]
    spec["nodes"][0]["houses"] = houses[: max(1, meters // 2)]
    path = "/tmp/heap-scenario.json"
    with open(path, "w") as f:
        f.write(json.dumps(spec))
    return path


async def main(root, meters, minutes, speed):
    sys.path.insert(0, root + "/firmware")
    sys.path.insert(0, root + "/benchmarks/firmware")
    import mp_probe

    mp_probe.imports(root)

    gc.collect()
    before = gc.mem_alloc()
    from semsim import run, scenario

    gc.collect()
    print(f"heap_code_runner={gc.mem_alloc() - before}")

    path = _scenario(scenario, root, meters)
    broker = MemoryBroker()
    asyncio.open_connection = broker.open_connection
    args = run.parse_args(
        [path, "paper-node", "--speed", str(speed), "--duration", str(minutes * 60)]
    )
    runner = run.Runner(args)

    async def every_minute():
        while True:
            await asyncio.sleep(60 / speed)
            runner.stats()

    sampler = asyncio.create_task(every_minute())
    # In a task of its own: the port's top-level coroutine cannot be cancelled, and wait_for
    # (the MQTT client's acknowledgement timeout) cancels the task that waits.
    await asyncio.create_task(runner.main())
    sampler.cancel()
    gc.collect()
    print(f"published={broker.published}")
