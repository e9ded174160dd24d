"""Modbus-RTU frames as the PZEM-004T v3 speaks them: CRC-16/MODBUS, builders and reply checks."""

# Function codes the PZEM-004T v3 understands.
READ_HOLDING = 0x03
READ_INPUT = 0x04
WRITE_SINGLE = 0x06
CALIBRATE = 0x41  # factory calibration: this firmware never sends it
RESET_ENERGY = 0x42

GENERAL_ADDRESS = 0xF8  # answered by any PZEM; only safe with a single device on the bus
MIN_ADDRESS = 0x01
MAX_ADDRESS = 0xF7

# Exception codes of an error reply (function | 0x80).
EXCEPTIONS = {
    0x01: "illegal function",
    0x02: "illegal address",
    0x03: "illegal data",
    0x04: "slave error",
}


def crc16(data):
    """CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF) of a byte string."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            if crc & 1:
                crc = (crc >> 1) ^ 0xA001
            else:
                crc >>= 1
    return crc


def with_crc(body):
    """Append the CRC, low byte first as Modbus-RTU sends it."""
    crc = crc16(body)
    return bytes(body) + bytes((crc & 0xFF, crc >> 8))


def crc_ok(frame):
    """True when the last two bytes are the frame's CRC (low byte first)."""
    if len(frame) < 4:
        return False
    crc = crc16(frame[:-2])
    return frame[-2] == crc & 0xFF and frame[-1] == crc >> 8


def _check_address(address, allow_general=True):
    if allow_general and address == GENERAL_ADDRESS:
        return
    if not MIN_ADDRESS <= address <= MAX_ADDRESS:
        raise ValueError("Modbus address %r is outside 1..247" % (address,))


def request(address, function, payload=b""):
    """Build a request frame; the calibration function is refused outright."""
    if function == CALIBRATE:
        raise ValueError("the calibration function 0x41 is never sent")
    _check_address(address)
    return with_crc(bytes((address, function)) + bytes(payload))


def _u16(value):
    return bytes(((value >> 8) & 0xFF, value & 0xFF))


def read_input_registers(address, start=0, count=10):
    """Function 0x04: the PZEM's ten measurement registers by default."""
    return request(address, READ_INPUT, _u16(start) + _u16(count))


def read_holding_registers(address, start, count):
    """Function 0x03: alarm threshold (0x0001) and Modbus address (0x0002)."""
    return request(address, READ_HOLDING, _u16(start) + _u16(count))


def write_single_register(address, register, value):
    """Function 0x06; the reply echoes the request."""
    return request(address, WRITE_SINGLE, _u16(register) + _u16(value))


def reset_energy(address):
    """Function 0x42: clear the PZEM's energy counter."""
    return request(address, RESET_ENERGY)


class ModbusError(Exception):
    """A reply that is not the expected answer; `kind` is the protocol's error word."""

    def __init__(self, kind, detail=""):
        super().__init__(kind, detail)
        self.kind = kind
        self.detail = detail

    def __str__(self):
        if self.detail:
            return "%s: %s" % (self.kind, self.detail)
        return self.kind


def expected_length(address, function, first_bytes):
    """How long the reply to `function` will be, from the bytes received so far (None: unknown).

    An error reply is always 5 bytes; a register read tells its byte count in its third byte.
    """
    if len(first_bytes) < 2:
        return None
    if first_bytes[1] & 0x80:
        return 5
    if function in (READ_INPUT, READ_HOLDING):
        if len(first_bytes) < 3:
            return None
        return 5 + first_bytes[2]
    if function == WRITE_SINGLE:
        return 8
    if function == RESET_ENERGY:
        return 4
    return None


def find_reply(buf, address, function):
    """The first complete frame in `buf` that answers `function` from `address` with a good CRC,
    after any leading bytes (line noise on a long RS-485/TTL run); None while there is none yet.

    Each position where such a reply could start is tried in turn, so a noise byte that happens
    to look like a frame start only costs a CRC check.
    """
    size = len(buf)
    for start in range(size - 1):
        first = buf[start]
        if first != address and not (
            address == GENERAL_ADDRESS and MIN_ADDRESS <= first <= MAX_ADDRESS
        ):
            continue
        if buf[start + 1] not in (function, function | 0x80):
            continue
        want = expected_length(address, function, buf[start : start + 3])
        if want is None or size - start < want:
            continue
        frame = buf[start : start + want]
        if crc_ok(frame):
            return frame
    return None


def check_reply(reply, address, function):
    """Validate a complete reply frame and return its data bytes; raise ModbusError otherwise.

    `address` is the address the request went to; a reply to the general address 0xF8 comes back
    from the device's own address, so any valid address is accepted then.
    """
    if not reply:
        raise ModbusError("timeout", "no reply")
    if len(reply) < 4 or not crc_ok(reply):
        raise ModbusError("crc", "bad CRC or truncated frame of %d bytes" % len(reply))
    if address != GENERAL_ADDRESS and reply[0] != address:
        raise ModbusError("crc", "reply from address %d, expected %d" % (reply[0], address))
    if reply[1] == function | 0x80:
        code = reply[2]
        raise ModbusError("exception", EXCEPTIONS.get(code, "code 0x%02x" % code))
    if reply[1] != function:
        raise ModbusError("crc", "reply to function 0x%02x, expected 0x%02x" % (reply[1], function))
    if function in (READ_INPUT, READ_HOLDING):
        if reply[2] != len(reply) - 5:
            raise ModbusError("crc", "byte count %d does not match the frame" % reply[2])
        return bytes(reply[3:-2])
    return bytes(reply[2:-2])
