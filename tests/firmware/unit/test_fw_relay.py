"""Relays: pin read-back, power-on policies, remembered state, no writes but commands."""

from semfw.relay import Relay, RelayBank
from semsim.hw import MemoryStore, SimPin


def _bank(policies, saved=None, active_high=True):
    store = MemoryStore()
    if saved is not None:
        store.save(saved)
    pins = {}
    relays = []
    for index, (relay_id, policy) in enumerate(policies):
        pins[relay_id] = SimPin(20 + index)
        relays.append(Relay(relay_id, "house%d" % index, pins[relay_id], active_high, policy))
    return RelayBank(relays, store), pins, store


def test_command_drives_the_pin_and_reads_it_back():
    bank, pins, _ = _bank([("r1", "off")])
    assert bank.command("r1", True) is True
    assert pins["r1"].level == 1
    assert bank.command("r1", False) is False
    assert pins["r1"].level == 0


def test_active_low_relay():
    bank, pins, _ = _bank([("r1", "off")], active_high=False)
    bank.power_on()
    assert pins["r1"].level == 1  # off means a high pin on an active-low board
    assert bank.command("r1", True) is True
    assert pins["r1"].level == 0
    assert bank.states() == [("r1", True)]


def test_a_stuck_pin_reports_what_it_really_is():
    bank, pins, _ = _bank([("r1", "off")])
    bank.power_on()
    pins["r1"].stuck = True
    assert bank.command("r1", True) is False


def test_power_on_policies_without_memory():
    bank, pins, _ = _bank([("a", "off"), ("b", "on"), ("c", "restore")])
    bank.power_on()
    assert (pins["a"].level, pins["b"].level, pins["c"].level) == (0, 1, 0)


def test_restore_uses_the_last_commanded_state():
    bank, pins, _ = _bank(
        [("a", "off"), ("b", "on"), ("c", "restore")], saved={"a": True, "b": False, "c": True}
    )
    bank.power_on()
    assert (pins["a"].level, pins["b"].level, pins["c"].level) == (0, 1, 1)


def test_remembered_state_survives_a_reboot():
    bank, _, store = _bank([("c", "restore")])
    bank.power_on()
    bank.command("c", True)
    rebooted = RelayBank([Relay("c", "house0", SimPin(20), True, "restore")], store)
    rebooted.power_on()
    assert rebooted.states() == [("c", True)]


def test_state_is_saved_only_when_it_changes():
    bank, _, store = _bank([("c", "restore")])
    saves = []
    original = store.save

    def counting(states):
        saves.append(dict(states))
        original(states)

    store.save = counting
    bank.command("c", True)
    bank.command("c", True)
    bank.command("c", True)
    bank.command("c", False)
    assert saves == [{"c": True}, {"c": False}]


def test_a_corrupt_memory_is_ignored():
    bank, pins, _ = _bank([("c", "restore")], saved={"c": "yes"})
    bank.power_on()
    assert pins["c"].level == 0


def test_unknown_relay():
    bank, _, _ = _bank([("r1", "off")])
    assert bank.command("r9", True) is None


def test_reading_states_never_writes_a_pin():
    bank, pins, _ = _bank([("r1", "on"), ("r2", "off")])
    bank.power_on()
    writes = (pins["r1"].writes, pins["r2"].writes)
    for _ in range(5):
        bank.states()
    assert (pins["r1"].writes, pins["r2"].writes) == writes
