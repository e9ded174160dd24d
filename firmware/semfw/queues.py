"""Bounded queues between the node's tasks, so that polling never waits for the network.

Both are preallocated and never grow: a broker that stops answering costs no heap.
"""

import asyncio


class RingQueue:
    """First in, first out, at most `capacity` items; when full, `put` drops the oldest.

    The newest readings are the ones worth sending, so a full queue gives up the oldest one and
    hands it back to the caller, which counts and reports it (docs/protocol.md).
    """

    def __init__(self, capacity):
        if capacity < 1:
            raise ValueError("capacity must be at least 1")
        self._items = [None] * capacity
        self._read = 0
        self._count = 0
        self._ready = asyncio.Event()

    def __len__(self):
        return self._count

    @property
    def capacity(self):
        return len(self._items)

    def put(self, item):
        """Queue `item`; return the item dropped to make room, or None."""
        size = len(self._items)
        dropped = None
        if self._count == size:
            dropped = self._items[self._read]
            self._read = (self._read + 1) % size
            self._count -= 1
        self._items[(self._read + self._count) % size] = item
        self._count += 1
        self._ready.set()
        return dropped

    def requeue(self, item, key):
        """Put back an item taken out (a send that failed) before every queued item whose
        `key` is greater, so items taken out together go back in their order. When full, the
        oldest of them all (the smallest key) is dropped and returned, else None."""
        size = len(self._items)
        position = 0
        while position < self._count and key(self._items[(self._read + position) % size]) < key(
            item
        ):
            position += 1
        dropped = None
        if self._count == size:
            if not position:
                return item
            dropped = self.get_nowait()
            position -= 1
        # Move the `position` items before it one slot towards the front.
        self._read = (self._read - 1) % size
        for k in range(position):
            self._items[(self._read + k) % size] = self._items[(self._read + k + 1) % size]
        self._items[(self._read + position) % size] = item
        self._count += 1
        self._ready.set()
        return dropped

    def get_nowait(self):
        """The oldest item; IndexError when empty."""
        if not self._count:
            raise IndexError("queue empty")
        item = self._items[self._read]
        self._items[self._read] = None  # let the payload go at once
        self._read = (self._read + 1) % len(self._items)
        self._count -= 1
        return item

    async def get(self):
        """Wait for the oldest item. Several tasks may wait; each item goes to one of them."""
        while not self._count:
            self._ready.clear()
            await self._ready.wait()
        return self.get_nowait()

    def clear(self):
        """Drop everything queued; return how many items that was."""
        count = self._count
        while self._count:
            self.get_nowait()
        return count


class LatestQueue:
    """At most one pending value per key, served in the order the keys were first queued.

    A second value for a key that is still pending replaces the first (a newer relay command
    supersedes an older one), so the queue can never hold more than its number of keys.
    """

    def __init__(self, capacity):
        self._pending = {}
        self._order = []
        self._capacity = capacity
        self._ready = asyncio.Event()

    def __len__(self):
        return len(self._order)

    def put(self, key, value):
        """Queue `value` for `key`. Return "replaced" when it superseded a pending value,
        "full" when the queue is full and refused it, else None."""
        if key in self._pending:
            self._pending[key] = value
            return "replaced"
        if len(self._order) >= self._capacity:
            return "full"
        self._pending[key] = value
        self._order.append(key)
        self._ready.set()
        return None

    def pop(self):
        """(key, value) of the oldest pending key; IndexError when empty."""
        key = self._order.pop(0)
        return key, self._pending.pop(key)

    async def wait(self):
        """Until something is pending."""
        while not self._order:
            self._ready.clear()
            await self._ready.wait()
