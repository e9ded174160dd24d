"""The bounded queues between the node's tasks."""

import asyncio

from semfw.queues import LatestQueue, RingQueue

from tests.firmware.unit.support import raises, run


def test_ring_queue_is_first_in_first_out():
    queue = RingQueue(3)
    for item in "abc":
        assert queue.put(item) is None
    assert len(queue) == 3
    assert [queue.get_nowait() for _ in range(3)] == ["a", "b", "c"]
    assert len(queue) == 0
    raises(IndexError, queue.get_nowait)


def test_a_full_ring_queue_drops_and_returns_the_oldest():
    queue = RingQueue(3)
    for item in "abc":
        queue.put(item)
    assert queue.put("d") == "a"
    assert queue.put("e") == "b"
    assert len(queue) == 3
    assert [queue.get_nowait() for _ in range(3)] == ["c", "d", "e"]


def test_items_put_back_go_before_the_newer_ones_in_their_own_order():
    queue = RingQueue(6)
    for item in (3, 4, 5):
        queue.put(item)
    # Taken out 0, 1, 2 earlier; their sends failed in any order.
    for item in (1, 2, 0):
        assert queue.requeue(item, lambda x: x) is None
    assert [queue.get_nowait() for _ in range(6)] == [0, 1, 2, 3, 4, 5]


def test_a_full_ring_queue_drops_the_oldest_of_what_is_put_back_and_queued():
    queue = RingQueue(3)
    for item in (5, 6, 7):
        queue.put(item)
    assert queue.requeue(4, lambda x: x) == 4  # older than all queued: it goes
    queue.get_nowait()  # 5 taken out ...
    assert queue.requeue(5, lambda x: x) is None  # ... and put back
    queue.get_nowait()
    queue.put(8)  # 6, 7, 8
    assert queue.requeue(7.5, lambda x: x) == 6
    assert [queue.get_nowait() for _ in range(3)] == [7, 7.5, 8]


def test_ring_queue_wraps_around_many_times_without_growing():
    queue = RingQueue(4)
    out = []
    for value in range(100):
        queue.put(value)
        if value % 3 == 0:
            out.append(queue.get_nowait())
    while len(queue):
        out.append(queue.get_nowait())
    assert out == sorted(out)  # order kept across every wrap
    assert out[-4:] == [96, 97, 98, 99]
    assert len(queue._items) == 4


def test_ring_queue_releases_what_it_handed_out():
    queue = RingQueue(2)
    queue.put("a")
    queue.get_nowait()
    assert queue._items == [None, None]


def test_ring_queue_rejects_a_capacity_below_one():
    raises(ValueError, RingQueue, 0)


def test_ring_queue_get_waits_for_a_put_and_serves_each_item_once():
    async def go():
        queue = RingQueue(4)
        got = []

        async def worker(name):
            while True:
                got.append((name, await queue.get()))

        tasks = [asyncio.create_task(worker(n)) for n in ("w1", "w2")]
        await asyncio.sleep(0)
        assert got == []
        for value in range(6):
            queue.put(value)
            await asyncio.sleep(0)
            await asyncio.sleep(0)
        for task in tasks:
            task.cancel()
        return got

    got = run(go())
    assert sorted(value for _, value in got) == [0, 1, 2, 3, 4, 5]


def test_ring_queue_clear_counts():
    queue = RingQueue(3)
    queue.put(1)
    queue.put(2)
    assert queue.clear() == 2
    assert len(queue) == 0


def test_latest_queue_keeps_one_value_per_key_in_first_queued_order():
    queue = LatestQueue(3)
    assert not queue
    assert queue.put("r1", True) is None
    assert queue.put("r2", False) is None
    assert queue.put("r1", False) == "replaced"
    assert len(queue) == 2
    assert queue
    assert queue.pop() == ("r1", False)
    assert queue.pop() == ("r2", False)
    raises(IndexError, queue.pop)


def test_latest_queue_refuses_a_new_key_when_full():
    queue = LatestQueue(2)
    queue.put("a", 1)
    queue.put("b", 2)
    assert queue.put("c", 3) == "full"
    assert queue.put("a", 4) == "replaced"  # a pending key still takes its newer value
    assert len(queue) == 2
    assert [queue.pop(), queue.pop()] == [("a", 4), ("b", 2)]


def test_latest_queue_wait_returns_once_something_is_pending():
    async def go():
        queue = LatestQueue(2)
        task = asyncio.create_task(queue.wait())
        await asyncio.sleep(0)
        assert not task.done()
        queue.put("k", "v")
        await task
        return queue.pop()

    assert run(go()) == ("k", "v")
