"""The boot counter of a signing node: stored before it is used, one more at every boot, never
lower after a power cut, and sent as `boot` in every `state`."""

import json
import os

from semfw.boots import BootCounter
from semfw.node import Node

from tests.firmware.unit.support import run, scratch_dir
from tests.firmware.unit.test_fw_node import RecordingClient, _node

KEY = "pole 7 node key: 0123456789abcdef"


def _counter(name):
    return BootCounter(scratch_dir(name) + "/boot_count")


def _text(path):
    with open(path) as f:
        return f.read()


def _exists(path):
    try:
        os.stat(path)
    except OSError:
        return False
    return True


def test_each_boot_counts_one_more_and_is_stored_first():
    counter = _counter("count")
    assert counter.current() == -1
    assert counter.advance() == 0
    assert _text(counter.path) == "0"
    assert counter.advance() == 1
    # A new boot reads the file afresh.
    assert BootCounter(counter.path).advance() == 2
    assert _text(counter.path) == "2"
    assert not _exists(counter.path + ".tmp")
    assert counter.error is None


def test_a_power_cut_never_makes_the_count_go_back():
    counter = _counter("cut")
    for _ in range(5):
        counter.advance()
    # Cut while writing the temporary file: the old count stands (4 was published, 5 not yet).
    with open(counter.path + ".tmp", "w") as f:
        f.write("")
    assert BootCounter(counter.path).advance() == 5
    # Cut between FAT's removal of the old file and the rename: the temporary file has it.
    os.rename(counter.path, counter.path + ".tmp")
    assert BootCounter(counter.path).advance() == 6
    # A corrupt or negative file counts as none, the other one still counts.
    with open(counter.path + ".tmp", "w") as f:
        f.write("-3")
    assert BootCounter(counter.path).advance() == 7


def test_a_counter_that_cannot_be_stored_says_so():
    counter = BootCounter("/nonexistent-dir/boot_count")
    assert counter.advance() == 0
    assert isinstance(counter.error, OSError)


def _states(node):
    return [
        json.loads(payload)
        for topic, payload, _ in node.client.published
        if topic.endswith("/state") and "/relay/" not in topic
    ]


def test_a_signing_node_sends_its_boot_in_every_state():
    node, sim, lines = _node(key=KEY)
    node.boot()
    assert "boot 0" in lines
    run(node.poll_meter(node.meters[0]))
    sim.pzems["house1"].forced_offline = True
    run(node.poll_meter(node.meters[1]))
    first, error = _states(node)
    assert (first["boot"], first["seq"]) == (0, 0)
    assert (error["boot"], error["error"]) == (0, "timeout")
    raw = [p for t, p, _ in node.client.published if t == node.meters[0].state_topic][0]
    assert raw.startswith(b'{"seq":0,"boot":0,"ts":')
    # The board resets: the hardware (its flash) stays, the firmware starts again.
    again = Node(node.cfg, sim.hardware, log=lines.append)
    again.client = RecordingClient()
    again.boot()
    run(again.poll_meter(again.meters[0]))
    assert (_states(again)[0]["boot"], _states(again)[0]["seq"]) == (1, 0)


def test_a_node_without_a_key_counts_nothing():
    node, sim, _ = _node()
    node.boot()
    run(node.poll_meter(node.meters[0]))
    assert "boot" not in _states(node)[0]
    assert sim.hardware.boots.current() == -1
