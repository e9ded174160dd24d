"""A small asyncio MQTT 3.1.1 client for the node.

What the node needs and nothing more: QoS 0/1 publish, subscribe, a retained last will, keepalive,
TLS with a CA certificate from the node's files (the server name checked), and a reconnect loop
with capped, jittered exponential backoff that calls `on_connect` after every (re)connection so
the node re-publishes its retained topics and re-subscribes (the session is clean). Incoming
messages go to `on_message(topic, payload, retained)`, which must not block.

MQTT 3.1.1 acknowledges a publish that the broker's ACL drops like any other, so after every
connection the client subscribes to a topic the node has just published retained (`check_topic`,
its status) and says in the log when the message does not come back: the broker accepted the
login and silently drops what this node publishes. Runs on MicroPython's asyncio and CPython's.
"""

import asyncio

from semfw.backoff import Backoff

CONNECT = 0x10
CONNACK = 0x20
PUBLISH = 0x30
PUBACK = 0x40
SUBSCRIBE = 0x82
SUBACK = 0x90
PINGREQ = b"\xc0\x00"
PINGRESP = 0xD0
DISCONNECT = b"\xe0\x00"
MAX_INCOMING = 4096 + 512  # a protocol payload plus its topic; larger packets are skipped

SUBACK_FAILURE = 0x80
CHECK_MS = 5000  # how long the published status may take to come back from the broker

CONNACK_CODES = {
    1: "unacceptable protocol version",
    2: "client id rejected",
    3: "server unavailable",
    4: "bad user name or password",
    5: "not authorised",
}


class MQTTError(Exception):
    pass


def reason(err):
    """Why a connection attempt failed, never empty (a timeout's text is)."""
    text = str(err)
    if text:
        return text
    if isinstance(err, asyncio.TimeoutError):
        return "timed out"
    return type(err).__name__


def ca_certificates(data):
    """The DER certificates of a PEM file's text (or the file itself when it is DER): mbedTLS
    builds of MicroPython do not all parse PEM."""
    if b"-----BEGIN" not in data:
        return [bytes(data)]
    import binascii

    found = []
    body = None
    for line in data.split(b"\n"):
        line = line.strip()
        if line.startswith(b"-----BEGIN CERTIFICATE"):
            body = []
        elif line.startswith(b"-----END CERTIFICATE") and body is not None:
            found.append(binascii.a2b_base64(b"".join(body)))
            body = None
        elif body is not None and line:
            body.append(line)
    if not found:
        raise ValueError("no certificate in the file")
    return found


def tls_context(ca_path):
    """A client context that accepts only servers whose certificate `ca_path` (PEM or DER)
    signed."""
    import ssl

    with open(ca_path, "rb") as f:
        data = f.read()
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.verify_mode = ssl.CERT_REQUIRED
    for certificate in ca_certificates(data):
        context.load_verify_locations(cadata=certificate)
    return context


def encode_length(length):
    """The remaining-length field: 7 bits a byte, least significant first."""
    out = bytearray()
    while True:
        byte = length & 0x7F
        length >>= 7
        if length:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _str(text):
    raw = text.encode() if isinstance(text, str) else bytes(text)
    return bytes((len(raw) >> 8, len(raw) & 0xFF)) + raw


def _packet(first, body):
    return bytes((first,)) + encode_length(len(body)) + body


def connect_packet(client_id, keepalive_s, user=None, password=None, will=None, clean=True):
    """CONNECT; will is (topic, payload, retain, qos) or None."""
    flags = 0x02 if clean else 0
    payload = _str(client_id)
    if will is not None:
        topic, message, retain, qos = will
        flags |= 0x04 | (qos << 3) | (0x20 if retain else 0)
        payload += _str(topic) + _str(message)
    if user is not None:
        flags |= 0x80
        payload += _str(user)
        if password is not None:
            flags |= 0x40
            payload += _str(password)
    header = _str("MQTT") + bytes((4, flags, keepalive_s >> 8, keepalive_s & 0xFF))
    return _packet(CONNECT, header + payload)


def publish_packet(topic, payload, qos=0, retain=False, packet_id=0, dup=False):
    first = PUBLISH | (0x08 if dup else 0) | (qos << 1) | (1 if retain else 0)
    body = _str(topic)
    if qos:
        body += bytes((packet_id >> 8, packet_id & 0xFF))
    return _packet(first, body + bytes(payload))


def subscribe_packet(packet_id, topics):
    """SUBSCRIBE for (topic filter, qos) pairs."""
    body = bytes((packet_id >> 8, packet_id & 0xFF))
    for topic, qos in topics:
        body += _str(topic) + bytes((qos,))
    return _packet(SUBSCRIBE, body)


def puback_packet(packet_id):
    return bytes((PUBACK, 2, packet_id >> 8, packet_id & 0xFF))


def parse_publish(first, body):
    """(topic, payload, qos, retain, packet_id) of a PUBLISH packet's fixed-header byte and body."""
    qos = (first >> 1) & 0x03
    retain = bool(first & 0x01)
    if len(body) < 2:
        raise MQTTError("PUBLISH too short")
    length = (body[0] << 8) | body[1]
    if len(body) < 2 + length:
        raise MQTTError("PUBLISH topic longer than the packet")
    topic = bytes(body[2 : 2 + length])
    index = 2 + length
    packet_id = 0
    if qos:
        if len(body) < index + 2:
            raise MQTTError("PUBLISH without packet id")
        packet_id = (body[index] << 8) | body[index + 1]
        index += 2
    return topic, bytes(body[index:]), qos, retain, packet_id


class Client:
    def __init__(
        self,
        client_id,
        host,
        port,
        clock,
        user=None,
        password=None,
        keepalive_s=30,
        will=None,
        on_connect=None,
        on_message=None,
        backoff=None,
        progress=None,
        log=print,
        connect_timeout_ms=10000,
        ack_timeout_ms=10000,
        tls=None,
        check_topic=None,
        fallback=(),
    ):
        self.client_id = client_id
        # The broker's addresses, tried in turn when the current one cannot be reached (the
        # servers of a cluster): the one that answered is kept until it fails.
        self.addresses = [(host, port)] + list(fallback)
        self._address = 0
        self.host, self.port = self.addresses[0]
        self.clock = clock
        self.user = user
        self.password = password
        self.keepalive_s = keepalive_s
        self.will = will
        self.on_connect = on_connect
        self.on_message = on_message
        self.backoff = backoff or Backoff()
        self.progress = progress
        self.log = log
        self.connect_timeout_ms = connect_timeout_ms
        self.ack_timeout_ms = ack_timeout_ms
        # (CA certificate path, server name to check or None for the host's) or None for TCP.
        self.tls = tls
        self._context = None
        self.check_topic = check_topic
        self._echo = None  # set when the check topic's `online` came back
        self.delivering = None  # after the check: True, False (dropped), None (unknown)
        self.connected = False
        self._up = asyncio.Event()  # set while connected
        self.connections = 0
        self._reader = None
        self._writer = None
        self._write_lock = asyncio.Lock()
        self._lost = asyncio.Event()
        self._pending = {}
        self._next_id = 0
        self._last_rx = 0
        self._stopping = False
        self._check_bytes = check_topic.encode() if check_topic else None

    # --- low level ---------------------------------------------------------------------------

    def _packet_id(self):
        self._next_id = self._next_id % 65535 + 1
        return self._next_id

    def _mark(self):
        if self.progress is not None:
            self.progress.mark("mqtt")

    async def _send(self, data):
        writer = self._writer
        if writer is None:
            raise OSError("not connected")
        async with self._write_lock:
            writer.write(data)
            await writer.drain()

    async def _read_packet(self):
        reader = self._reader
        head = await reader.readexactly(1)
        length = 0
        shift = 0
        for _ in range(4):
            byte = (await reader.readexactly(1))[0]
            length |= (byte & 0x7F) << shift
            shift += 7
            if not byte & 0x80:
                break
        else:
            raise MQTTError("malformed remaining length")
        if length > MAX_INCOMING:
            # Read it away in pieces so the stream stays in step, and drop it.
            while length:
                chunk = min(length, 512)
                await reader.readexactly(chunk)
                length -= chunk
            self.log("mqtt: dropped an oversized packet")
            return head[0], None
        body = await reader.readexactly(length) if length else b""
        return head[0], body

    def _lose(self, why):
        if not self._lost.is_set():
            self.log("mqtt: connection lost (%s)" % why)
            self._lost.set()
        self.connected = False

    async def _read_loop(self):
        try:
            while True:
                first, body = await self._read_packet()
                self._last_rx = self.clock.ticks_ms()
                self._mark()
                kind = first & 0xF0
                if body is None:
                    continue
                if kind == PUBLISH:
                    topic, payload, qos, retain, packet_id = parse_publish(first, body)
                    if qos == 1:
                        await self._send(puback_packet(packet_id))
                    if topic == self._check_bytes:
                        if payload == b"online" and self._echo is not None:
                            self._echo.set()
                    elif self.on_message is not None:
                        try:
                            self.on_message(topic.decode(), payload, retain)
                        except (UnicodeError, ValueError) as err:
                            self.log("mqtt: dropped a message with a bad topic: %r" % (err,))
                elif kind in (PUBACK, SUBACK):
                    if len(body) >= 2:
                        waiter = self._pending.get((body[0] << 8) | body[1])
                        if waiter is not None:
                            waiter[1] = body
                            waiter[0].set()
        except asyncio.CancelledError:
            raise
        except (OSError, EOFError, MQTTError, IndexError) as err:
            self._lose(repr(err))

    async def _ping_loop(self):
        half = max(1, self.keepalive_s // 2) * 1000
        try:
            while True:
                await self.clock.sleep_ms(half)
                silent = self.clock.ticks_diff(self.clock.ticks_ms(), self._last_rx)
                if silent > self.keepalive_s * 1500:
                    self._lose("no answer from the broker for %d ms" % silent)
                    return
                await self._send(PINGREQ)
        except asyncio.CancelledError:
            raise
        except OSError as err:
            self._lose(repr(err))

    async def _exchange(self, packet_id, packet):
        """Send a packet and wait for its PUBACK/SUBACK; the acknowledgement's body, or None
        when the connection failed."""
        # Registered before sending: the acknowledgement may arrive before drain() returns.
        generation = self.connections
        event = asyncio.Event()
        waiter = [event, None]
        self._pending[packet_id] = waiter
        try:
            await self._send(packet)
            await asyncio.wait_for(event.wait(), self.ack_timeout_ms / 1000)
        except OSError as err:
            self._lose(repr(err))
            return None
        except asyncio.TimeoutError:
            if generation == self.connections:
                self._lose("no acknowledgement for packet %d" % packet_id)
            return None
        finally:
            self._pending.pop(packet_id, None)
        # A closed connection wakes every waiter; the generation tells a stale wake-up apart.
        if self.connected and generation == self.connections:
            return waiter[1]
        return None

    # --- API ---------------------------------------------------------------------------------

    async def wait_connected(self):
        """Until the client is connected (at once when it is)."""
        while not self.connected:
            self._up.clear()
            await self._up.wait()

    async def publish(self, topic, payload, retain=False, qos=1):
        """Publish; True once delivered to the broker (QoS 1: acknowledged), else False."""
        if not self.connected:
            return False
        if not qos:
            try:
                await self._send(publish_packet(topic, payload, 0, retain))
            except OSError as err:
                self._lose(repr(err))
                return False
            return True
        packet_id = self._packet_id()
        ack = await self._exchange(
            packet_id, publish_packet(topic, payload, qos, retain, packet_id)
        )
        return ack is not None

    async def subscribe(self, topics):
        """Subscribe to (topic filter, qos) pairs; True once the broker acknowledged and granted
        them all. Each filter the broker refused is named in the log."""
        if not self.connected or not topics:
            return self.connected
        packet_id = self._packet_id()
        ack = await self._exchange(packet_id, subscribe_packet(packet_id, topics))
        if ack is None:
            return False
        granted = True
        for index in range(len(topics)):
            code = ack[2 + index] if 2 + index < len(ack) else SUBACK_FAILURE
            if code == SUBACK_FAILURE:
                granted = False
                self.log(
                    "mqtt: the broker refused the subscription to %s (not authorised by its "
                    "ACL?)" % topics[index][0]
                )
        return granted

    async def _check_delivery(self):
        """Subscribe to the check topic, which the node has just published `online` to
        (retained): the broker hands it back at once unless it dropped the publish."""
        self._echo = asyncio.Event()
        self.delivering = None
        if not await self.subscribe([(self.check_topic, 1)]):
            if self.connected:
                self.log(
                    "mqtt: cannot check that the broker accepts this node's messages (it "
                    "refused reading %s back)" % self.check_topic
                )
            return
        try:
            await asyncio.wait_for(self._echo.wait(), CHECK_MS / 1000)
        except asyncio.TimeoutError:
            if self.connected:
                self.delivering = False
                login = "user %r" % self.user if self.user else "a login without user name"
                self.log(
                    "mqtt: the broker drops this node's messages: %s did not come back within "
                    "%d s. Its ACL does not let %s publish there (the shipped ACL wants "
                    "the user name to be the node id %r), or, an ACL older than this firmware, "
                    "not read it back (pattern read .../%%u/status)"
                    % (self.check_topic, CHECK_MS // 1000, login, self.client_id)
                )
            return
        self.delivering = True

    async def _open(self):
        if self.tls is None:
            opening = asyncio.open_connection(self.host, self.port)
        else:
            if self._context is None:
                try:
                    self._context = tls_context(self.tls[0])
                except (OSError, ValueError) as err:
                    raise MQTTError(
                        "TLS: cannot use the CA certificate %s (%s)" % (self.tls[0], reason(err))
                    ) from None
            opening = asyncio.open_connection(
                self.host, self.port, ssl=self._context, server_hostname=self.tls[1] or self.host
            )
        reader, writer = await asyncio.wait_for(opening, self.connect_timeout_ms / 1000)
        self._reader, self._writer = reader, writer
        packet = connect_packet(
            self.client_id, self.keepalive_s, self.user, self.password, self.will
        )
        try:
            await self._send(packet)  # MicroPython does the TLS handshake on the first write
        except ValueError as err:  # MicroPython's way of refusing the server's certificate
            raise MQTTError("TLS: %s" % " ".join(str(err).split())) from None
        first, body = await asyncio.wait_for(self._read_packet(), self.connect_timeout_ms / 1000)
        if first != CONNACK or body is None or len(body) != 2:
            raise MQTTError("expected CONNACK, got packet type 0x%02x" % first)
        if body[1] != 0:
            raise MQTTError(
                "broker refused the connection: %s"
                % CONNACK_CODES.get(body[1], "code %d" % body[1])
            )

    def _next_address(self):
        self._address = (self._address + 1) % len(self.addresses)
        self.host, self.port = self.addresses[self._address]

    async def _close(self):
        writer = self._writer
        self._reader = self._writer = None
        self.connected = False
        for waiter in self._pending.values():
            waiter[0].set()
        if writer is not None:
            try:
                writer.close()
                await writer.wait_closed()
            except (OSError, AttributeError):
                pass

    async def run(self):
        """Connect, serve, and reconnect forever (until stop())."""
        while not self._stopping:
            try:
                await self._open()
            except asyncio.CancelledError:
                await self._close()
                raise
            except (OSError, EOFError, MQTTError, asyncio.TimeoutError) as err:
                await self._close()
                self._mark()
                delay = self.backoff.next_ms()
                failed = "%s:%d" % (self.host, self.port)
                self._next_address()
                self.log(
                    "mqtt: cannot connect to %s (%s); %s in %d ms"
                    % (
                        failed,
                        reason(err),
                        "retry"
                        if len(self.addresses) == 1
                        else "trying %s:%d" % (self.host, self.port),
                        delay,
                    )
                )
                await self.clock.sleep_ms(delay)
                continue
            self.connected = True
            self._up.set()
            self.connections += 1
            self._lost = asyncio.Event()
            self._last_rx = self.clock.ticks_ms()
            connected_at = self._last_rx
            self._mark()
            self.log("mqtt: connected to %s:%d" % (self.host, self.port))
            tasks = [asyncio.create_task(self._read_loop()), asyncio.create_task(self._ping_loop())]
            try:
                if self.on_connect is not None:
                    await self.on_connect()
                if self.check_topic is not None:
                    await self._check_delivery()
                await self._lost.wait()
            finally:
                for task in tasks:
                    task.cancel()
                await self._close()
            if self._stopping:
                return
            if self.clock.ticks_diff(self.clock.ticks_ms(), connected_at) > 10000:
                self.backoff.reset()  # a connection that held: retry quickly
            delay = self.backoff.next_ms()
            self.log("mqtt: reconnecting in %d ms" % delay)
            await self.clock.sleep_ms(delay)

    async def disconnect(self):
        """Leave cleanly: DISCONNECT (so the broker drops the will) and stop reconnecting."""
        self._stopping = True
        if self.connected:
            try:
                await self._send(DISCONNECT)
            except OSError:
                pass
        self._lost.set()
        await self._close()
