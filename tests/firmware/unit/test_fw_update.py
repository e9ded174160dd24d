"""The boot-time selector (semboot) and the update's pure checks (semfw.update)."""

import hashlib
import os

import semboot
from semfw import protocol, update_transfer

from tests.firmware.unit.support import scratch_dir

KEY = b"pole 7 node key: 0123456789abcdef"


def _state_path(name):
    return scratch_dir(name) + "/fw/boot.json"


def _manifest(**changes):
    data = b"print('hello')\n"
    manifest = {
        "id": "t1",
        "version": "1.2.0",
        "mpy": "6",
        "downgrade": False,
        "chunk": 3584,
        "confirm_s": 60,
        "files": [
            {
                "path": "semfw/__init__.mpy",
                "size": len(data),
                "sha256": protocol.hex_text(hashlib.sha256(data).digest()),
            }
        ],
    }
    manifest.update(changes)
    return manifest


def test_a_missing_or_damaged_state_runs_the_copy_by_hand():
    path = _state_path("boot-missing")
    state = semboot.read_state(path)
    assert semboot.choose(state) == ("", False)
    semboot.write_state({"active": "fw/z", "trial": "../x", "tried": "yes"}, path)
    state = semboot.read_state(path)
    assert (state["active"], state["trial"], state["tried"]) == ("", None, False)
    with open(path, "w") as f:
        f.write('{"active": "fw/a", "tri')  # cut short by a power loss
    assert semboot.read_state(path)["active"] == ""


def test_a_trial_gets_one_boot_then_is_confirmed_or_rolled_back():
    path = _state_path("boot-trial")
    state = semboot.read_state(path)
    semboot.offer(state, "fw/a", "u1", "1.2.0", 60)
    semboot.write_state(state, path)

    # first boot: the trial runs, and that is recorded before it does
    state = semboot.read_state(path)
    assert semboot.choose(state) == ("fw/a", True)
    semboot.write_state(state, path)
    assert semboot.confirm(state, "1.2.0")
    assert state["active"] == "fw/a"
    assert state["trial"] is None
    assert state["last"] == {"id": "u1", "state": "installed", "version": "1.2.0"}
    assert not semboot.confirm(state, "1.2.0")  # nothing left to confirm

    # the next update goes to the other slot; it crashes at its first boot
    semboot.offer(state, "fw/b", "u2", "1.3.0", 60)
    semboot.write_state(state, path)
    state = semboot.read_state(path)
    assert semboot.choose(state) == ("fw/b", True)
    semboot.write_state(state, path)
    assert semboot.fail("crashed", path)
    state = semboot.read_state(path)
    assert semboot.choose(state) == ("fw/a", False)
    assert state["last"] == {
        "id": "u2",
        "state": "rolled_back",
        "version": "1.3.0",
        "error": "crashed",
    }
    assert state["trial"] is None
    semboot.write_state(state, path)
    assert not semboot.fail("crashed", path)  # not on trial: nothing to roll back


def test_a_trial_that_never_confirmed_is_rolled_back_as_not_confirmed():
    path = _state_path("boot-silent")
    state = semboot.read_state(path)
    semboot.offer(state, "fw/a", "u3", "1.2.0", 60)
    semboot.choose(state)  # its boot: the power goes before it confirms
    semboot.write_state(state, path)
    state = semboot.read_state(path)
    assert semboot.choose(state) == ("", False)
    assert state["last"]["error"] == "not_confirmed"


def test_state_is_written_through_a_rename():
    path = _state_path("boot-rename")
    semboot.write_state({"active": "fw/b"}, path)
    names = os.listdir(path.rsplit("/", 1)[0])
    assert names == ["boot.json"]


def test_manifest_checks():
    assert update_transfer.check_manifest(_manifest(), "1.1.0", "6") is None
    assert update_transfer.check_manifest(_manifest(mpy="5"), "1.1.0", "6")[0] == "interpreter"
    assert update_transfer.check_manifest(_manifest(), "1.3.0", "6")[0] == "downgrade"
    assert update_transfer.check_manifest(_manifest(downgrade=True), "1.3.0", "6") is None
    assert update_transfer.check_manifest(_manifest(), "1.2.0", "6") is None  # the same again
    for bad in (
        _manifest(id="A B"),
        _manifest(version="one"),
        _manifest(chunk=9000),
        _manifest(confirm_s=1),
        _manifest(files=[]),
        _manifest(files=[{"path": "main.py", "size": 1, "sha256": "0" * 64}]),
        _manifest(files=[{"path": "semfw/../boot.py", "size": 1, "sha256": "0" * 64}]),
        _manifest(files=[{"path": "semfw/node.mpy", "size": 1, "sha256": "0" * 64}]),
        _manifest(files=[{"path": "semfw/__init__.mpy", "size": -1, "sha256": "0" * 64}]),
        _manifest(files=[{"path": "semfw/__init__.mpy", "size": 1, "sha256": "xyz"}]),
    ):
        problem = update_transfer.check_manifest(bad, "1.1.0", "6")
        assert problem is not None and problem[0] == "bad_manifest", bad


def test_versions_compare_as_numbers():
    assert update_transfer.version_key("1.10.0") > update_transfer.version_key("1.9.3")
    assert update_transfer.version_key("1.2.0-rc1") == (1, 2, 0)
    assert update_transfer.version_key("") is None
    assert update_transfer.version_key("1..2") is None
    assert update_transfer.version_key("v1") is None


def test_a_signed_manifest_is_recognised():
    topic = "sem/pole-7/update/begin"
    payload = b'{"id":"t1","version":"1.2.0"}'
    signed = protocol.sign(KEY, topic, payload)
    assert update_transfer.unsigned(signed) == payload
    assert protocol.sign(KEY, topic, update_transfer.unsigned(signed)) == signed
    assert update_transfer.unsigned(payload) is None
    assert update_transfer.same(b"abc", b"abc")
    assert not update_transfer.same(b"abc", b"abd")
    assert not update_transfer.same(b"abc", b"ab")
