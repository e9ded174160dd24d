"""Reconnect delays: exponential, capped, with jitter so a fleet does not reconnect in step."""


class Backoff:
    def __init__(self, base_ms=500, cap_ms=30000, random=None):
        self.base_ms = base_ms
        self.cap_ms = cap_ms
        self.random = random  # a function returning a float in [0, 1)
        self.attempts = 0

    def ceiling_ms(self):
        """The largest delay the next attempt may wait."""
        delay = self.base_ms
        for _ in range(self.attempts):
            delay *= 2
            if delay >= self.cap_ms:
                return self.cap_ms
        return min(delay, self.cap_ms)

    def next_ms(self):
        """The delay before the next attempt: between half the ceiling and the ceiling."""
        ceiling = self.ceiling_ms()
        self.attempts += 1
        if self.random is None:
            return ceiling
        return ceiling // 2 + int(self.random() * (ceiling - ceiling // 2))

    def reset(self):
        """Back to the shortest delay, after a successful connection."""
        self.attempts = 0
