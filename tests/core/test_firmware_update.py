"""The sender's side of a node firmware update (semcore.firmware), without a broker: the
manifest, the chunks, the node's state messages, and the send loop against a scripted node."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from custom_components.smart_energy_meter.semcore import firmware as fw

sys.path.insert(0, str(Path(__file__).parents[2] / "firmware"))
from semfw import protocol as node_protocol
from semfw import update_transfer as node_update

BUNDLE = fw.Bundle(
    version="1.2.0",
    interpreter="1.29.0",
    mpy="6",
    notes="",
    files=(
        fw.BundleFile("semfw/__init__.mpy", b"a" * 10),
        fw.BundleFile("semfw/node.mpy", b"b" * 9000),
    ),
)
KEY = b"pole 7 node key: 0123456789abcdef"


def test_the_shipped_files_go_only_to_the_same_format_on_a_new_enough_micropython() -> None:
    assert BUNDLE.loads_on("1.29.0", "6")
    assert BUNDLE.loads_on("1.30.2", "6")
    assert BUNDLE.loads_on("2.0.0", "6")
    assert not BUNDLE.loads_on("1.28.0", "6")  # format 6, but older than the compiler
    assert not BUNDLE.loads_on("1.29.0", "5")
    assert not BUNDLE.loads_on("1.30.0", None)  # a format it does not announce
    for unknown in (None, "", "1", "preview", "1.29.0-preview", "01.x.3"):
        assert not BUNDLE.loads_on(unknown, "6"), unknown


def test_update_state_decoding_refuses_what_a_node_never_sends() -> None:
    good = fw.decode_update_state(b'{"id":"a1","state":"receiving","file":0,"offset":0}')
    assert isinstance(good, fw.UpdateState)
    for payload in (
        b"not json",
        b"[]",
        b'{"state":"dancing"}',
        b'{"state":"receiving","id":"a1"}',
        b'{"state":"failed","error":5}',
        b'{"state":"receiving","id":"a1","file":-1,"offset":0}',
        b'{"state":"receiving","id":"a1","file":true,"offset":0}',
        b"{" + b" " * 5000 + b"}",
    ):
        assert isinstance(fw.decode_update_state(payload), fw.Rejected), payload


def test_the_manifest_is_what_the_node_checks_and_its_signature_holds_there() -> None:
    topic, payload = fw.Transfer(BUNDLE, "sem", "pole-7", "t1", key=KEY).begin()
    assert topic == "sem/pole-7/update/begin"
    bare = node_update.unsigned(payload)
    assert bare is not None
    assert node_protocol.sign(KEY, topic, bare) == payload  # the node's own HMAC
    manifest = json.loads(bare)
    assert node_update.check_manifest(manifest, "1.1.0", "6") is None
    assert [f["size"] for f in manifest["files"]] == [10, 9000]


def test_chunks_cover_each_file_exactly() -> None:
    transfer = fw.Transfer(BUNDLE, "sem", "pole-7", "t1")
    data = b""
    offset = 0
    while (message := transfer.chunk_at(1, offset)) is not None:
        head, body = message[1].split(b"\n", 1)
        assert head == f"t1 1 {offset}".encode()
        assert len(body) <= fw.CHUNK_BYTES
        data += body
        offset += len(body)
    assert data == BUNDLE.files[1].data
    assert transfer.chunk_at(2, 0) is None
    assert transfer.chunk_at(0, 10) is None


def test_a_manifest_too_large_for_one_message_is_refused() -> None:
    many = tuple(fw.BundleFile(f"semfw/m{i}.mpy", b"x") for i in range(60))
    big = fw.Bundle("1.2.0", "1.29.0", "6", "", many)
    with pytest.raises(ValueError, match="bytes"):
        fw.Transfer(big, "sem", "pole-7", "t1").begin()


class ScriptedNode:
    """Answers each message the way a node does, with a broker that may lose messages."""

    def __init__(self, lose: set[int] | None = None) -> None:
        self.states: asyncio.Queue[fw.UpdateState] = asyncio.Queue()
        self.sent: list[tuple[str, bytes]] = []
        self.lose = lose or set()
        self.position = (0, 0)
        self.done = 0

    async def publish(self, topic: str, payload: bytes, qos: int) -> bool:
        assert qos == (0 if topic.endswith("/chunk") else 1)
        self.sent.append((topic, payload))
        if len(self.sent) in self.lose:
            return False
        if topic.endswith("/begin"):
            self._ask()
            return True
        head, body = payload.split(b"\n", 1)
        _, index, offset = head.decode().split()
        if (int(index), int(offset)) != self.position:
            return True  # a repeat: ignored
        end = int(offset) + len(body)
        self.done += len(body)
        size = len(BUNDLE.files[int(index)].data)
        self.position = (int(index), end) if end < size else (int(index) + 1, 0)
        if self.position[0] == len(BUNDLE.files):
            self.states.put_nowait(fw.UpdateState(fw.RESTARTING, "t1", "1.2.0"))
            self.states.put_nowait(fw.UpdateState(fw.INSTALLED, "t1", "1.2.0"))
        else:
            self._ask()
        return True

    def _ask(self) -> None:
        file, offset = self.position
        self.states.put_nowait(
            fw.UpdateState(fw.RECEIVING, "t1", "1.2.0", file, offset, self.done, BUNDLE.size)
        )


async def test_send_goes_chunk_by_chunk_and_resends_what_was_lost() -> None:
    node = ScriptedNode(lose={3})
    progress: list[int] = []
    final = await fw.send(
        fw.Transfer(BUNDLE, "sem", "pole-7", "t1"),
        node.publish,
        node.states,
        progress.append,
        resend_s=0.05,
    )
    assert final.state == fw.INSTALLED
    chunks = [p for t, p in node.sent if t.endswith("/chunk")]
    # file 0 in one chunk, file 1 in three; the lost third message was sent again
    assert len(chunks) == 5
    assert chunks[1] == chunks[2]
    assert progress[0] == 0
    assert progress[-1] == 100
    assert progress == sorted(progress)


async def test_send_reports_a_node_that_forgot_the_transfer() -> None:
    states: asyncio.Queue[fw.UpdateState] = asyncio.Queue()
    states.put_nowait(fw.UpdateState(fw.IDLE, None, "1.1.0"))  # an earlier state: ignored
    states.put_nowait(fw.UpdateState(fw.RECEIVING, "t1", "1.2.0", 0, 0, 0, BUNDLE.size))
    states.put_nowait(fw.UpdateState(fw.INSTALLED, "old", "1.1.0"))  # restarted meanwhile

    async def publish(topic: str, payload: bytes, qos: int) -> bool:
        return True

    with pytest.raises(fw.UpdateFailed) as failed:
        await fw.send(fw.Transfer(BUNDLE, "sem", "pole-7", "t1"), publish, states)
    assert failed.value.error == "interrupted"


async def test_send_gives_up_on_silence() -> None:
    async def publish(topic: str, payload: bytes, qos: int) -> bool:
        return False  # the broker is gone

    with pytest.raises(fw.UpdateFailed) as failed:
        await fw.send(
            fw.Transfer(BUNDLE, "sem", "pole-7", "t1"),
            publish,
            asyncio.Queue(),
            resend_s=0.01,
            silence_s=0.05,
        )
    assert failed.value.error == "no_answer"


def test_versions_compare_as_the_node_compares_them() -> None:
    for a, b in (("1.10.0", "1.9.9"), ("2.0", "1.99.99"), ("1.2.0-rc1", "1.1.9")):
        assert (fw.version_key(a) or ()) > (fw.version_key(b) or ())
        assert (node_update.version_key(a) or ()) > (node_update.version_key(b) or ())
    assert fw.version_key("esphome") is None
    assert node_update.version_key("esphome") is None
