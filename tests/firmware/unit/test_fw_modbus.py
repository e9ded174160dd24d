"""Modbus-RTU frames and CRC of the PZEM-004T driver, against the known frames."""

from semfw import modbus

from tests.firmware.unit.support import raises


def _hex(text):
    return bytes(int(byte, 16) for byte in text.split())


def test_crc_of_known_frames():
    assert modbus.crc16(_hex("F8 04 00 00 00 0A")) == 0x6464
    assert modbus.crc16(_hex("01 04 00 00 00 0A")) == 0x0D70
    assert modbus.crc16(_hex("01 42")) == 0x1180


def test_read_input_registers_frames():
    assert modbus.read_input_registers(0xF8) == _hex("F8 04 00 00 00 0A 64 64")
    assert modbus.read_input_registers(1) == _hex("01 04 00 00 00 0A 70 0D")


def test_reset_energy_frame():
    assert modbus.reset_energy(1) == _hex("01 42 80 11")


def test_known_reply_has_valid_crc():
    reply = _hex("01 04 14 08 D1 00 6C 00 00 00 F4 00 00 00 26 00 00 01 F4 00 64 00 00 51 34")
    assert modbus.crc_ok(reply)
    data = modbus.check_reply(reply, 1, modbus.READ_INPUT)
    assert len(data) == 20


def test_write_single_register_frame_round_trips():
    frame = modbus.write_single_register(0xF8, 0x0002, 0x0005)
    assert frame[:6] == _hex("F8 06 00 02 00 05")
    assert modbus.crc_ok(frame)


def test_calibration_function_is_never_built():
    err = raises(ValueError, modbus.request, 0xF8, modbus.CALIBRATE, b"\x37\x21")
    assert "0x41" in str(err)


def test_addresses_outside_modbus_range_are_refused():
    raises(ValueError, modbus.read_input_registers, 0)
    raises(ValueError, modbus.read_input_registers, 249)
    raises(ValueError, modbus.read_input_registers, 256)
    assert modbus.read_input_registers(247)[0] == 247
    assert modbus.read_input_registers(0xF8)[0] == 0xF8  # the general address


def test_exception_reply_is_decoded():
    reply = modbus.with_crc(bytes((0x01, 0x84, 0x02)))
    err = raises(modbus.ModbusError, modbus.check_reply, reply, 1, modbus.READ_INPUT)
    assert err.kind == "exception"
    assert "illegal address" in str(err)


def test_corrupt_reply_is_a_crc_error():
    reply = bytearray(
        _hex("01 04 14 08 D1 00 6C 00 00 00 F4 00 00 00 26 00 00 01 F4 00 64 00 00 51 34")
    )
    reply[5] ^= 0x01
    err = raises(modbus.ModbusError, modbus.check_reply, bytes(reply), 1, modbus.READ_INPUT)
    assert err.kind == "crc"


def test_empty_reply_is_a_timeout():
    err = raises(modbus.ModbusError, modbus.check_reply, b"", 1, modbus.READ_INPUT)
    assert err.kind == "timeout"


def test_truncated_reply_is_a_crc_error():
    err = raises(modbus.ModbusError, modbus.check_reply, b"\x01\x04\x14", 1, modbus.READ_INPUT)
    assert err.kind == "crc"


def test_reply_from_another_address_is_refused():
    reply = modbus.with_crc(bytes((0x02, 0x42)))
    err = raises(modbus.ModbusError, modbus.check_reply, reply, 1, modbus.RESET_ENERGY)
    assert err.kind == "crc"
    # A request to the general address is answered from the device's own address.
    assert modbus.check_reply(reply, 0xF8, modbus.RESET_ENERGY) == b""


def test_reply_to_another_function_is_refused():
    reply = modbus.with_crc(bytes((0x01, 0x03, 0x02, 0x00, 0x01)))
    err = raises(modbus.ModbusError, modbus.check_reply, reply, 1, modbus.READ_INPUT)
    assert err.kind == "crc"


def test_byte_count_must_match_the_frame():
    reply = modbus.with_crc(bytes((0x01, 0x04, 0x04, 0x00, 0x01)))
    err = raises(modbus.ModbusError, modbus.check_reply, reply, 1, modbus.READ_INPUT)
    assert "byte count" in str(err)


def test_expected_length_from_the_first_bytes():
    assert modbus.expected_length(1, modbus.READ_INPUT, b"\x01") is None
    assert modbus.expected_length(1, modbus.READ_INPUT, b"\x01\x04") is None
    assert modbus.expected_length(1, modbus.READ_INPUT, b"\x01\x04\x14") == 25
    assert modbus.expected_length(1, modbus.READ_INPUT, b"\x01\x84") == 5
    assert modbus.expected_length(1, modbus.RESET_ENERGY, b"\x01\x42") == 4
    assert modbus.expected_length(1, modbus.WRITE_SINGLE, b"\x01\x06") == 8
