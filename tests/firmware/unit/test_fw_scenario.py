"""The simulator's world: service cable loss, bypass windows and switching, seen by the PZEMs."""

from semfw.pzem import parse_measurements
from semsim import scenario as scen
from semsim.clock import SimClock

from tests.firmware.unit.support import raises

LONG_AL = {"length_m": 40, "mm2": 16, "conductor": "aluminium"}


def _close(a, b, tolerance):
    assert abs(a - b) <= tolerance, "%r is not %r within %r" % (a, b, tolerance)


def _house(**changes):
    spec = {"pair": "h", "load": {"constant": 9200, "pf": 1.0}}
    spec.update(changes)
    return scen.House(spec, voltage=230.0)


def test_cable_resistance_from_its_data():
    # The 2.45 % example: aluminium 2x16 mm2, 40 m, 20 degC.
    _close(scen.cable_ohm(LONG_AL), 2.82e-8 * 80 / 16e-6, 1e-9)
    _close(scen.cable_ohm({"length_m": 15, "mm2": 10}), 1.7241e-8 * 30 / 10e-6, 1e-9)
    warm = dict(LONG_AL, temperature_c=70)
    _close(scen.cable_ohm(warm) / scen.cable_ohm(LONG_AL), 1 + 0.00403 * 50, 1e-9)
    assert scen.cable_ohm({"ohm": 0.2}) == 0.2
    assert scen.cable_ohm(None) == 0.0


def test_bad_cables_are_refused():
    raises(scen.ScenarioError, scen.cable_ohm, {"length_m": 40, "mm2": 16, "conductor": "gold"})
    raises(scen.ScenarioError, scen.cable_ohm, {"length_m": 40})
    raises(scen.ScenarioError, scen.cable_ohm, {"ohm": -1})


def test_the_line_meter_sees_the_cable_loss_the_house_meter_does_not():
    house = _house(cable=LONG_AL)
    ohm = scen.cable_ohm(LONG_AL)
    line_w, line_pf = house.line_load(10)
    house_w, house_pf, house_v = house.house_load(10)
    # 40 A through 0.141 ohm: 225.6 W, 2.45 % of the 9200 W the line delivers.
    _close(line_w - house_w, 40 * 40 * ohm, 1e-6)
    _close((line_w - house_w) / line_w, 0.0245, 0.0001)
    _close(house_v, 230 - 40 * ohm, 1e-9)
    # One current through both meters: I = P / (V pf) at each end.
    _close(line_w / (230 * line_pf), 40, 1e-9)
    _close(house_w / (house_v * house_pf), 40, 1e-9)
    assert line_pf <= 1


def test_without_a_cable_the_loads_are_unchanged():
    house = _house(load={"constant": 500, "pf": 0.8}, bypass={"fraction": 0.2})
    assert house.line_load(0) == (500, 0.8)
    assert house.house_load(0) == (500 * 0.8, 0.8)


def test_a_relay_that_is_off_cuts_the_cable_current_too():
    class Pin:
        level = 0

    house = scen.House({"pair": "h", "load": {"constant": 900}, "cable": LONG_AL}, Pin(), True)
    assert house.line_load(0)[0] == 0
    assert house.house_load(0)[0] == 0


def test_bypass_windows():
    house = _house(bypass={"fraction": 0.05, "windows": [[100, 200], [300, None]]})
    on = [t for t in (0, 99, 100, 199, 200, 299, 300, 10000) if house.bypass_fraction(t)]
    assert on == [100, 199, 300, 10000]
    assert house.bypass_fraction(150) == 0.05


def test_a_switched_bypass_goes_on_and_off_inside_its_windows():
    house = _house(bypass={"fraction": 0.1, "windows": [[100, 400]], "on_s": 40, "off_s": 80})
    on = [t for t in (99, 100, 139, 140, 219, 220, 259, 260, 340, 399, 400) if house.bypass_on(t)]
    assert on == [100, 139, 220, 259, 340]


def test_the_single_bypass_window_still_works():
    house = _house(bypass={"fraction": 0.3, "from_s": 30, "until_s": 60})
    assert [house.bypass_fraction(t) for t in (29, 30, 59, 60)] == [0, 0.3, 0.3, 0]
    assert _house(bypass={"fraction": 0.3}).bypass_fraction(0) == 0.3


def test_bad_bypasses_are_refused():
    for bypass in ({"fraction": 0.1, "windows": [[1, 2, 3]]}, {"fraction": 0.1, "on_s": 10}):
        raises(scen.ScenarioError, scen.House, {"pair": "h", "bypass": bypass})


def test_the_pzems_of_a_pair_on_a_long_cable():
    scenario = {"voltage": 230.0, "noise": 0.0, "seed": 1}
    node = {
        "node": "n1",
        "houses": [
            {
                "pair": "h",
                "line": {"id": "line1", "addr": 1},
                "house": {"id": "house1", "addr": 2},
                "load": {"constant": 9200, "pf": 1.0},
                "cable": LONG_AL,
            }
        ],
    }
    sim = scen.SimNode(scenario, node, SimClock(1.0), SimClock(1.0), wire_timing=False)
    line = parse_measurements(sim.pzems["line1"].measurements(1.0))
    house = parse_measurements(sim.pzems["house1"].measurements(1.0))
    assert (line.voltage_dv, line.current_ma, line.power_dw) == (2300, 40000, 92000)
    assert (house.voltage_dv, house.current_ma) == (2244, 40000)
    _close(house.power_dw, 89744, 1)
