"""The PZEM-004T driver against emulated devices on an emulated UART."""

from semfw import modbus, pzem
from semsim.clock import SimClock
from semsim.pzem import EmulatedPzem
from semsim.uart import EmulatedUart

from tests.firmware.unit.support import araises, raises, run

KNOWN_REPLY = bytes(
    (
        0x01,
        0x04,
        0x14,
        0x08,
        0xD1,
        0x00,
        0x6C,
        0x00,
        0x00,
        0x00,
        0xF4,
        0x00,
        0x00,
        0x00,
        0x26,
        0x00,
        0x00,
        0x01,
        0xF4,
        0x00,
        0x64,
        0x00,
        0x00,
        0x51,
        0x34,
    )
)


def _steady(watts, pf=1.0):
    return lambda t: (watts, pf)


def _counter():
    state = [0]

    def random():
        state[0] = (state[0] * 1103515245 + 12345) % 2147483648
        return state[0] / 2147483648

    return random


def _bus(devices, speed=50.0, wire_timing=False, retries=1, timeout_ms=200):
    clock = SimClock(speed)
    uart = EmulatedUart(clock, devices, wire_timing=wire_timing)
    return pzem.Bus(uart, clock, timeout_ms=timeout_ms, retries=retries), uart


def test_known_reply_decodes_to_the_documented_values():
    data = modbus.check_reply(KNOWN_REPLY, 1, modbus.READ_INPUT)
    reading = pzem.parse_measurements(data)
    assert reading.voltage_dv == 2257
    assert reading.current_ma == 108
    assert reading.power_dw == 244
    assert reading.energy_wh == 38
    assert reading.frequency_dhz == 500
    assert reading.pf_c == 100
    assert reading.alarm is False
    assert abs(reading.voltage - 225.7) < 1e-9
    assert abs(reading.current - 0.108) < 1e-9
    assert abs(reading.power - 24.4) < 1e-9
    assert abs(reading.frequency - 50.0) < 1e-9
    assert abs(reading.power_factor - 1.0) < 1e-9
    assert reading.problem() is None


def test_32_bit_values_are_low_word_first():
    data = bytes(
        (0, 0, 0x00, 0x01, 0x00, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, 0xF4, 0, 0, 0xFF, 0xFF)
    )
    reading = pzem.parse_measurements(data)
    assert reading.current_ma == 0x00020001
    assert reading.alarm is True


def test_wrong_data_length_is_refused():
    err = raises(modbus.ModbusError, pzem.parse_measurements, b"\x00" * 18)
    assert err.kind == "crc"


def test_implausible_readings_are_named():
    data = modbus.check_reply(KNOWN_REPLY, 1, modbus.READ_INPUT)
    reading = pzem.parse_measurements(data)
    reading.frequency_dhz = 0
    assert "frequency" in reading.problem()
    reading.frequency_dhz = 500
    reading.voltage_dv = 3001
    assert "voltage" in reading.problem()
    reading.voltage_dv = 2300
    reading.energy_wh = 0xFFFFFFFF  # a CRC-valid corrupt register
    assert "energy" in reading.problem()
    reading.energy_wh = pzem.ENERGY_MAX_WH
    assert reading.problem() is None


def test_wire_time_of_a_poll_is_about_34_ms():
    assert 34 < pzem.wire_time_ms(8 + 25) < 35


def test_reads_an_emulated_device():
    device = EmulatedPzem(1, _steady(100.0, 0.9), _counter(), voltage=230.0)
    bus, _ = _bus([device])
    meter = pzem.Pzem(bus, 1, min_gap_ms=0)
    reading = run(meter.read())
    assert abs(reading.power - 100.0) <= 0.5 + 0.1
    assert abs(reading.voltage - 230.0) <= 230 * 0.005 + 0.1
    assert reading.pf_c == 90
    assert abs(reading.current - reading.power / (reading.voltage * 0.9)) < 0.002


def test_noise_stays_within_half_a_percent():
    device = EmulatedPzem(1, _steady(1000.0), _counter(), voltage=230.0)
    bus, _ = _bus([device])
    meter = pzem.Pzem(bus, 1, min_gap_ms=0)

    async def many():
        readings = []
        for _ in range(50):
            readings.append(await meter.read())
        return readings

    readings = run(many())
    powers = [r.power for r in readings]
    assert max(powers) <= 1005.1
    assert min(powers) >= 994.9
    assert max(powers) != min(powers)  # it is noise, not a constant


def test_several_devices_by_address_on_one_bus():
    devices = [EmulatedPzem(addr, _steady(10.0 * addr), _counter()) for addr in (1, 2, 3, 4)]
    bus, _ = _bus(devices)

    async def read_all():
        readings = []
        for addr in (1, 2, 3, 4):
            readings.append(await pzem.Pzem(bus, addr, 0).read())
        return readings

    readings = run(read_all())
    for addr, reading in zip((1, 2, 3, 4), readings):
        assert abs(reading.power - 10.0 * addr) <= 0.3


def test_silent_device_times_out_after_retries():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    device.forced_offline = True
    bus, uart = _bus([device], retries=2)
    err = run(araises(modbus.ModbusError, pzem.Pzem(bus, 1, 0).read()))
    assert err.kind == "timeout"
    assert len(uart.frames) == 3  # the first try and two retries


def test_missing_address_times_out():
    bus, _ = _bus([EmulatedPzem(1, _steady(50.0), _counter())])
    err = run(araises(modbus.ModbusError, pzem.Pzem(bus, 9, 0).read()))
    assert err.kind == "timeout"


def test_corrupt_replies_give_a_crc_error():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    device.crc_rate = 1.0
    bus, _ = _bus([device])
    err = run(araises(modbus.ModbusError, pzem.Pzem(bus, 1, 0).read()))
    assert err.kind == "crc"


def test_a_retry_recovers_from_one_lost_reply():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    bus, uart = _bus([device], retries=1)
    sequence = [None, "answer"]
    original = device.handle

    def flaky(frame, t):
        reply = original(frame, t)
        return reply if sequence.pop(0) else None

    device.handle = flaky
    reading = run(pzem.Pzem(bus, 1, 0).read())
    assert abs(reading.power - 50.0) < 0.5
    assert len(uart.frames) == 2


def test_exception_reply_is_not_retried():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    bus, uart = _bus([device], retries=3)
    err = run(araises(modbus.ModbusError, bus.transact(modbus.read_input_registers(1, 0, 11))))
    assert err.kind == "exception"
    assert len(uart.frames) == 1


def test_reset_energy_clears_the_counter():
    device = EmulatedPzem(1, _steady(3600.0), _counter())
    device.energy_wh = 1234.0
    bus, uart = _bus([device])
    meter = pzem.Pzem(bus, 1, 0)
    run(meter.reset_energy())
    assert uart.frames[-1] == modbus.reset_energy(1)
    reading = run(meter.read())
    assert reading.energy_wh < 5


def test_energy_accumulates_over_time():
    device = EmulatedPzem(1, _steady(3600.0), _counter())
    device.advance(0.0)
    device.advance(10.0)  # 3600 W for 10 s = 10 Wh
    assert abs(device.energy_wh - 10.0) < 1e-6


def test_set_address_through_the_general_address():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    bus, uart = _bus([device])
    run(pzem.set_address(bus, 7))
    assert uart.frames[-1][:6] == bytes((0xF8, 0x06, 0x00, 0x02, 0x00, 0x07))
    assert device.address == 7
    assert run(pzem.Pzem(bus, 7, 0).read()).power > 0


def test_set_address_with_two_devices_on_the_bus_fails():
    devices = [
        EmulatedPzem(1, _steady(50.0), _counter()),
        EmulatedPzem(2, _steady(80.0), _counter()),
    ]
    bus, _ = _bus(devices, retries=0)
    run(araises(modbus.ModbusError, pzem.set_address(bus, 7)))


def test_set_address_refuses_bad_addresses():
    bus, _ = _bus([])
    run(araises(ValueError, pzem.set_address(bus, 0)))
    run(araises(ValueError, pzem.set_address(bus, 0xF8)))


def test_calibration_is_never_sent():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    bus, uart = _bus([device])
    frame = modbus.with_crc(bytes((0xF8, 0x41, 0x37, 0x21)))
    run(araises(ValueError, bus.transact(frame)))
    meter = pzem.Pzem(bus, 1, 0)
    run(meter.read())
    run(meter.reset_energy())
    run(meter.read_alarm_threshold())
    run(pzem.set_address(bus, 3))
    assert 0x41 not in device.functions_seen
    assert all(f[1] != 0x41 for f in uart.frames)
    assert sorted(device.functions_seen) == [0x03, 0x04, 0x06, 0x42]


def test_wire_timing_makes_a_poll_take_the_wire_time():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    bus, _ = _bus([device], speed=1.0, wire_timing=True, timeout_ms=900)
    clock = bus.clock
    meter = pzem.Pzem(bus, 1, 0)
    start = clock.ticks_ms()
    run(meter.read())
    elapsed = clock.ticks_diff(clock.ticks_ms(), start)
    assert elapsed >= 34  # 33 bytes at 9600 baud, plus the device's latency
    assert elapsed < 1000


def test_reads_are_paced_to_the_minimum_gap():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    bus, _ = _bus([device], speed=20.0)
    clock = bus.clock
    meter = pzem.Pzem(bus, 1, min_gap_ms=1000)

    async def twice():
        start = clock.ticks_ms()
        await meter.read()
        await meter.read()
        return clock.ticks_diff(clock.ticks_ms(), start)

    # The gap runs from the start of one read to the start of the next.
    assert run(twice()) >= 1000


def test_stale_bytes_are_drained_before_a_request():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    bus, uart = _bus([device])
    uart._reply = b"\x99\x98\x97"  # leftovers of an earlier, late reply
    uart._delivered = 0
    reading = run(pzem.Pzem(bus, 1, 0).read())
    assert abs(reading.power - 50.0) < 0.5


def test_line_noise_before_the_reply_is_skipped():
    for noise in (
        b"\x00",
        b"\xff\xfe",
        b"\x01",
        b"\x01\x01\x04",
        b"\x04\x01\x04\x14" + b"\x55" * 30,
    ):
        device = EmulatedPzem(1, _steady(50.0), _counter())
        device.garbage = noise
        bus, uart = _bus([device], retries=0)
        reading = run(pzem.Pzem(bus, 1, 0).read())
        assert abs(reading.power - 50.0) < 0.5, noise
        assert len(uart.frames) == 1  # found in the first reply, not by a retry


def test_line_noise_is_skipped_when_the_reply_arrives_byte_by_byte():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    device.garbage = b"\x01\xaa"
    bus, _ = _bus([device], speed=1.0, wire_timing=True, retries=0, timeout_ms=900)
    assert abs(run(pzem.Pzem(bus, 1, 0).read()).power - 50.0) < 0.5


def test_noise_before_an_exception_reply_is_skipped():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    device.garbage = b"\x00\x00"
    device.refuse_reset = True
    bus, _ = _bus([device], retries=0)
    err = run(araises(modbus.ModbusError, pzem.Pzem(bus, 1, 0).reset_energy()))
    assert (err.kind, err.detail) == ("exception", "slave error")


def test_noise_alone_is_a_crc_error_not_a_reading():
    device = EmulatedPzem(1, _steady(50.0), _counter())
    device.garbage = b"\x01\x04\x14" + b"\x00" * 30
    device.forced_offline = True  # only noise comes back ...
    original = device.handle
    device.handle = lambda frame, t: original(frame, t) or device.garbage
    bus, _ = _bus([device], retries=0)
    err = run(araises(modbus.ModbusError, pzem.Pzem(bus, 1, 0).read()))
    assert err.kind == "crc"


def test_find_reply_takes_the_first_frame_with_a_good_crc():
    reply = KNOWN_REPLY
    assert modbus.find_reply(reply, 1, modbus.READ_INPUT) == reply
    assert modbus.find_reply(b"\x7f" + reply + b"\x00", 1, modbus.READ_INPUT) == reply
    assert modbus.find_reply(b"\x7f" + reply[:-1], 1, modbus.READ_INPUT) is None
    assert modbus.find_reply(reply, 2, modbus.READ_INPUT) is None
    # A reply to the general address comes from the device's own address.
    echo = modbus.with_crc(bytes((0x03, 0x06, 0x00, 0x02, 0x00, 0x03)))
    assert modbus.find_reply(b"\xf8" + echo, 0xF8, modbus.WRITE_SINGLE) == echo
