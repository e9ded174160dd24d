"""Relays: drive the pin, read it back, and apply the power-on policy after a reboot.

The pin adapter has `value()` (read back the driven level) and `value(level)`. The store adapter
keeps the last commanded state for the `restore` policy: `load()` -> dict, `save(dict)`.
Nothing here ever changes a pin because of a (re)connection: only `command()` and
`apply_power_on()` write pins.
"""


class Relay:
    def __init__(self, relay_id, pair, pin, active_high=True, power_on="off"):
        self.id = relay_id
        self.pair = pair
        self.pin = pin
        self.active_high = active_high
        self.power_on = power_on
        self.writes = 0  # pin writes since boot, for diagnostics and tests

    def _write(self, on):
        self.writes += 1
        self.pin.value(1 if on == self.active_high else 0)

    def is_on(self):
        """The relay state read back from the pin."""
        return bool(self.pin.value()) == self.active_high

    def command(self, on):
        """Switch the relay; return the state read back from the pin afterwards."""
        self._write(on)
        return self.is_on()

    def apply_power_on(self, remembered):
        """Put the relay in its power-on state; `remembered` is the last commanded state or None."""
        if self.power_on == "on":
            on = True
        elif self.power_on == "restore" and remembered is not None:
            on = remembered
        else:
            on = False
        self._write(on)
        return self.is_on()


class RelayBank:
    """The node's relays by id, with the remembered states for `restore`."""

    def __init__(self, relays, store):
        self.relays = {}
        for relay in relays:
            self.relays[relay.id] = relay
        self.store = store
        try:
            saved = store.load()
        except (OSError, ValueError):
            saved = {}
        self.remembered = saved if isinstance(saved, dict) else {}

    def power_on(self):
        """Apply every relay's power-on policy; called once after boot."""
        for relay in self.relays.values():
            remembered = self.remembered.get(relay.id)
            relay.apply_power_on(remembered if isinstance(remembered, bool) else None)

    def command(self, relay_id, on):
        """Switch one relay; return its read-back state (None for an unknown relay)."""
        relay = self.relays.get(relay_id)
        if relay is None:
            return None
        state = relay.command(on)
        if self.remembered.get(relay_id) != on:
            # Written only on change: flash has a limited number of erase cycles.
            self.remembered[relay_id] = on
            try:
                self.store.save(self.remembered)
            except OSError as err:
                print("relay: could not save the state of", relay_id, err)
        return state

    def states(self):
        """(relay id, read-back state) of every relay."""
        return [(relay_id, relay.is_on()) for relay_id, relay in self.relays.items()]
