"""Watchdog feeding: the hardware watchdog is fed only while polling and MQTT both progress.

MQTT makes progress while it exchanges packets with the broker and also while it keeps trying to
reconnect: a broker that is down is no reason to reset the node (a reset would re-apply the relay
power-on policy), a hung task is.
"""

ACTIVITIES = ("poll", "mqtt")


class Progress:
    def __init__(self, clock, stall_ms=90000):
        self.clock = clock
        self.stall_ms = stall_ms
        now = clock.ticks_ms()
        self.last = {}
        for name in ACTIVITIES:
            self.last[name] = now

    def mark(self, activity):
        self.last[activity] = self.clock.ticks_ms()

    def stalled(self):
        """The activities that made no progress within stall_ms."""
        now = self.clock.ticks_ms()
        return [
            name
            for name in ACTIVITIES
            if self.clock.ticks_diff(now, self.last[name]) > self.stall_ms
        ]

    def healthy(self):
        return not self.stalled()


async def feeder(progress, wdt, clock, period_ms=1000, log=print):
    """Feed `wdt` every period while healthy; stop feeding (and say why) once something stalls."""
    reported = False
    while True:
        stalled = progress.stalled()
        if not stalled:
            wdt.feed()
            reported = False
        elif not reported:
            log("watchdog: no progress in %s; not feeding" % ", ".join(stalled))
            reported = True
        await clock.sleep_ms(period_ms)
