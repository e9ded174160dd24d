"""One meter pair at runtime: its two meters, its relay, both detectors and the theft events.

Every reading goes to the paper's instantaneous rule (the theft percentage) and to the windowed
energy balance (status, unaccounted energy, windowed mismatch). A per-pair option says which of
the two the theft binary sensor and the theft events follow. Neither ever switches the relay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr

from .const import (
    ATTR_DETECTION,
    ATTR_HOUSE_POWER,
    ATTR_LINE_POWER,
    ATTR_MISMATCH,
    ATTR_NAME,
    ATTR_PAIR,
    ATTR_STATUS,
    DETECTION_BALANCE,
    DETECTION_PAPER,
    DOMAIN,
    EVENT_THEFT_CLEARED,
    EVENT_THEFT_DETECTED,
)
from .fleet import Fleet, NodeKey, PaperMeter, ProtocolMeter, Quantity, Relay
from .hub import Hub, NotConnectedError
from .pairing import PairConfig, PaperSource
from .semcore.detection import PairDetector, TheftEvent
from .semcore.detection import Transition as PaperTransition
from .semcore.protocol import (
    RelayState,
    Role,
    encode_relay,
    relay_set_topic,
    reset_energy_topic,
)
from .semcore.theft_engine import Evaluation, MeterReading, Status, TheftEngine, Transition

__all__ = ["RELAY_TIMEOUT", "PairRuntime", "TheftChange"]

_LOGGER = logging.getLogger(__name__)

# Seconds a relay command waits for the node's read-back confirmation.
RELAY_TIMEOUT: Final = 5.0
# How far after a meter's last reading its unavailability is marked for the balance (node clock).
UNAVAILABLE_AFTER_S: Final = 0.001


@dataclass(frozen=True, slots=True)
class TheftChange:
    """The theft verdict changed, by whichever detector the pair follows.

    mismatch is the paper's instantaneous mismatch, or the balance window's unexplained share
    (after cable loss); the powers are instantaneous or the window's means. status is the
    balance's new status ("theft", "ok", ...) or, for the paper's rule, "theft" or "ok".
    """

    event: TheftEvent
    mismatch: float | None
    line_power: float | None
    house_power: float | None
    status: str


class PairRuntime:
    """State of one pair for its entities; fires the theft events."""

    def __init__(
        self,
        hass: HomeAssistant,
        subentry_id: str,
        config: PairConfig,
        defaults: Mapping[str, Any],
        fleet: Fleet,
        hub: Hub,
        prefix: str,
    ) -> None:
        self._hass = hass
        self.subentry_id = subentry_id
        self.config = config
        self._fleet = fleet
        self._hub = hub
        self._prefix = prefix
        self.detector = PairDetector(config.detection_options(defaults))
        self.detection = DETECTION_PAPER if config.paper_rule(defaults) else DETECTION_BALANCE
        self.engine = TheftEngine(config.theft_config(defaults))
        self.evaluation: Evaluation = self.engine.evaluation()
        self.device_id: str | None = None
        self.meters: dict[Role, ProtocolMeter | PaperMeter] = {
            role: (
                fleet.track_paper_meter(source.base, config.interval)
                if isinstance(source, PaperSource)
                else fleet.track_protocol_meter(source.node, source.meter)
            )
            for role, source in ((Role.LINE, config.line), (Role.HOUSE, config.house))
        }
        self.relay: Relay | None = fleet.track_relay(*config.relay) if config.relay else None
        self._seen: dict[Role, int] = dict.fromkeys(Role, 0)
        self._fed: dict[Role, bool] = dict.fromkeys(Role, False)
        # Balance: the last node timestamp fed per meter, and whether it is live.
        self._engine_ts: dict[Role, float | None] = dict.fromkeys(Role)
        self._engine_live: dict[Role, bool] = dict.fromkeys(Role, False)
        self._restored = False
        # The newest reading's node timestamp and when it arrived (Unix time here): the node's
        # clock as the balance's tick sees it, whatever the offset between the two clocks.
        self._node_clock: tuple[float, float] | None = None
        # Listeners by the meter whose readings they show; `None`: all of them, for the rest.
        self._listeners: dict[Role | None, list[Callable[[], None]]] = {
            key: [] for key in (None, *Role)
        }
        self._transition_listeners: list[Callable[[TheftChange], None]] = []
        self._change_context: Context | None = None
        self._unsubs: list[CALLBACK_TYPE] = []

    @property
    def name(self) -> str:
        """Display name, e.g. "House 1"."""
        return self.config.name

    @property
    def display_name(self) -> str:
        """The name the user sees: the device's, as renamed in Home Assistant."""
        if self.device_id is not None and (
            device := dr.async_get(self._hass).async_get(self.device_id)
        ):
            return device.name_by_user or device.name or self.name
        return self.name

    # --- wiring -----------------------------------------------------------------------------

    @callback
    def async_start(self) -> None:
        """Follow the meters, their nodes, the relay and the broker connection."""
        subscribe = self._fleet.async_subscribe
        for role, meter in self.meters.items():
            self._unsubs.append(subscribe(meter.change_key, self._updater(role)))
            if isinstance(meter, ProtocolMeter):
                self._unsubs.append(subscribe(NodeKey(meter.node), self._on_availability))
        if self.relay is not None:
            self._unsubs.append(subscribe(self.relay.key, self._notify))
            self._unsubs.append(subscribe(NodeKey(self.relay.node), self._notify))
        self._unsubs.append(self._hub.async_add_listener(self._on_availability))

    @callback
    def async_stop(self) -> None:
        """Stop following."""
        while self._unsubs:
            self._unsubs.pop()()

    @callback
    def async_add_listener(
        self, listener: Callable[[], None], roles: Iterable[Role] = tuple(Role)
    ) -> CALLBACK_TYPE:
        """Call `listener` on a reading of a meter of `roles`, and on any other change of the
        pair (availability, verdict, relay, settings)."""
        lists = [self._listeners[None], *(self._listeners[role] for role in set(roles))]
        for listeners in lists:
            listeners.append(listener)

        def remove() -> None:
            for listeners in lists:
                listeners.remove(listener)

        return remove

    @callback
    def async_add_transition_listener(
        self, listener: Callable[[TheftChange], None]
    ) -> CALLBACK_TYPE:
        """Call `listener` when theft is detected or cleared."""
        self._transition_listeners.append(listener)
        return lambda: self._transition_listeners.remove(listener)

    # --- values for entities ---------------------------------------------------------------

    def provides(self, role: Role, quantity: Quantity) -> bool:
        """Whether the meter can ever report the quantity (paper topics have no frequency)."""
        return not (isinstance(self.meters[role], PaperMeter) and quantity is Quantity.FREQUENCY)

    def available(self, role: Role, quantity: Quantity) -> bool:
        """True when the meter has a current value of the quantity."""
        return self._fleet.available(self.meters[role], quantity)

    def value(self, role: Role, quantity: Quantity) -> float | None:
        """The current value, None when unavailable."""
        if not self.available(role, quantity):
            return None
        return self.meters[role].value(quantity)

    @property
    def theft_available(self) -> bool:
        """The verdict needs both powers."""
        return self.available(Role.LINE, Quantity.POWER) and self.available(
            Role.HOUSE, Quantity.POWER
        )

    @property
    def mismatch(self) -> float | None:
        """The paper's theft percentage, None when not evaluable."""
        return self.detector.mismatch if self.theft_available else None

    @property
    def follows_balance(self) -> bool:
        """True when the theft sensor and events follow the energy balance."""
        return self.detection == DETECTION_BALANCE

    @property
    def theft_verdict_available(self) -> bool:
        """The paper's verdict needs both powers; the balance's holds through missing data
        (an alarm never clears because a meter went silent), so it needs only the broker."""
        return self.hub_connected if self.follows_balance else self.theft_available

    @property
    def theft(self) -> bool | None:
        """The verdict the pair follows; None while the balance is not evaluable."""
        if not self.follows_balance:
            return self.detector.theft
        status = self.engine.status
        return None if status is Status.NOT_EVALUABLE else status is Status.THEFT

    @property
    def window_mismatch(self) -> float | None:
        """Unexplained share of the last window, None unless that window was balanced."""
        window = self.evaluation.window
        if window is None or window.unexplained_wh is None:
            return None
        return self.evaluation.window_mismatch_pct

    @property
    def supports_reset(self) -> bool:
        """Only protocol meters take a reset_energy command."""
        return any(isinstance(meter, ProtocolMeter) for meter in self.meters.values())

    @property
    def hub_connected(self) -> bool:
        """True while the broker connection is up."""
        return self._hub.connected

    @property
    def signature_refused(self) -> bool:
        """True while signed readings of a node of this pair are refused (tamper suspected)."""
        return any(
            self._fleet.signature_refused(meter.node)
            for meter in self.meters.values()
            if isinstance(meter, ProtocolMeter)
        )

    @property
    def status(self) -> Status:
        """The balance's status; tamper suspected while signed readings are refused."""
        return Status.TAMPER_SUSPECTED if self.signature_refused else self.engine.status

    @property
    def commands_available(self) -> bool:
        """True when a reset_energy command could reach the nodes of the pair's meters."""
        return self.hub_connected and all(
            self._fleet.node_reachable(meter.node)
            for meter in self.meters.values()
            if isinstance(meter, ProtocolMeter)
        )

    @property
    def relay_available(self) -> bool:
        """True when a relay command could reach the node."""
        return self.relay is not None and self._fleet.node_reachable(self.relay.node)

    # --- commands ---------------------------------------------------------------------------

    async def async_set_relay(self, on: bool) -> None:
        """Switch the relay and wait for the node's confirmation."""
        relay = self.relay
        assert relay is not None
        if not self.relay_available:
            raise self._error("node_unavailable")
        wanted = RelayState.ON if on else RelayState.OFF
        confirmed = self._fleet.relay_waiter(relay, wanted)
        try:
            await self._hub.async_publish(
                relay_set_topic(self._prefix, relay.node, relay.relay),
                encode_relay(wanted),
                retain=False,  # a command must never replay on reconnect
            )
            async with asyncio.timeout(RELAY_TIMEOUT):
                await confirmed
        except NotConnectedError as err:
            raise self._error("not_connected") from err
        except TimeoutError as err:
            raise self._error(
                "relay_timeout", state=wanted.value, timeout=f"{RELAY_TIMEOUT:g}"
            ) from err
        finally:
            confirmed.cancel()
            self._fleet.drop_waiter(relay, confirmed)

    async def async_reset_energy(self) -> None:
        """Reset the energy counters of the pair's protocol meters."""
        if not self.commands_available:
            raise self._error("node_unavailable")
        meters = [m for m in self.meters.values() if isinstance(m, ProtocolMeter)]
        try:
            for meter in meters:
                # Announce the drop before it can arrive, so it is taken as the reset.
                meter.energy.expect_reset(self._fleet.clock())
                await self._hub.async_publish(
                    reset_energy_topic(self._prefix, meter.node, meter.meter), b"", retain=False
                )
        except NotConnectedError as err:
            raise self._error("not_connected") from err

    def _error(self, key: str, **placeholders: str) -> HomeAssistantError:
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={"name": self.name, **placeholders},
        )

    # --- balance tuning ----------------------------------------------------------------------

    @callback
    def async_restore_unaccounted(self, wh: float | None) -> None:
        """Continue the unaccounted-energy total of an earlier run (None: there was none).

        Only the first call counts: an entity added again (renamed back, say) finds the total
        it saved when it went, which this runtime already holds.
        """
        if self._restored:
            return
        self._restored = True
        if wh is None:
            return
        # The engine takes the total only when built; nothing has been fed at this point.
        self.engine = TheftEngine(
            self.engine.config, unaccounted_wh=self.engine.unaccounted_wh + wh
        )
        self.evaluation = self.engine.evaluation()
        self._notify()

    @callback
    def async_apply(self, config: PairConfig, defaults: Mapping[str, Any]) -> None:
        """Take new calibration or commissioning values without losing the balance's state."""
        self.config = config
        theft_config = config.theft_config(defaults)
        if theft_config != self.engine.config:
            self.engine.reconfigure(theft_config)
        self._notify()

    # --- updates ----------------------------------------------------------------------------

    def _updater(self, role: Role) -> Callable[[], None]:
        @callback
        def update() -> None:
            balance = self._balance_shown()
            self._feed(role)
            # Most readings only move the readings' entities; the balance's change when a
            # window closes or the status moves, and then every entity hears of it.
            self._notify(role if self._balance_shown() == balance else None)

        return update

    def _balance_shown(self) -> tuple[object, ...]:
        """What the balance's entities show besides availability: status, unaccounted energy,
        the last window and its mismatch."""
        evaluation = self.evaluation
        return (
            evaluation.status,
            evaluation.unaccounted_wh,
            evaluation.window,
            evaluation.window_mismatch_pct,
        )

    @callback
    def _on_availability(self) -> None:
        for role in Role:
            self._feed(role)
        self._notify()

    @callback
    def async_tick(self, now: float) -> None:
        """Let the balance close windows while both meters are silent (`now`: Unix time)."""
        if self._node_clock is None:
            return  # nothing fed yet: nothing to close
        node_ts, received = self._node_clock
        before = self.evaluation
        self._balance(self.engine.tick(node_ts + (now - received)))
        if self.evaluation != before:
            self._notify()

    def _feed(self, role: Role) -> None:
        meter = self.meters[role]
        if not self.available(role, Quantity.POWER):
            if self._fed[role]:
                # A gap in the data: the debounce must start over once both are back.
                self._fed = dict.fromkeys(Role, False)
                self.detector.interrupt()
            self._mark_unavailable(role)
            return
        if meter.samples == self._seen[role]:
            return
        self._seen[role] = meter.samples
        self._fed[role] = True
        power = meter.value(Quantity.POWER)
        assert power is not None
        assert meter.power_ts is not None
        update = self.detector.update_line if role is Role.LINE else self.detector.update_house
        if (transition := update(power, meter.power_ts)) is not None and not self.follows_balance:
            self._fire(_paper_change(transition))
        # The balance applies the calibration gains itself: it gets the raw readings.
        reading = MeterReading(
            ts=meter.power_ts,
            power_w=power,
            voltage_v=meter.value(Quantity.VOLTAGE),
            current_a=meter.value(Quantity.CURRENT),
            energy_wh=meter.value(Quantity.ENERGY),
        )
        self._engine_live[role] = True
        self._engine_ts[role] = meter.power_ts
        if self._node_clock is None or meter.power_ts >= self._node_clock[0]:
            self._node_clock = (meter.power_ts, time.time())
        self._balance(self.engine.feed(role, reading), role)

    def _mark_unavailable(self, role: Role) -> None:
        """Tell the balance the meter stopped, just after its last reading (its own clock)."""
        last = self._engine_ts[role]
        if not self._engine_live[role] or last is None:
            return
        self._engine_live[role] = False
        ts = last + UNAVAILABLE_AFTER_S
        self._engine_ts[role] = ts
        self._balance(self.engine.feed(role, MeterReading(ts, available=False)), role)

    def _balance(self, evaluation: Evaluation, role: Role | None = None) -> None:
        if evaluation.rejected is not None:
            _LOGGER.debug(
                "%s: %s reading not used by the balance: %s", self.name, role, evaluation.rejected
            )
        self.evaluation = evaluation
        for transition in evaluation.transitions:
            window = transition.window
            _LOGGER.info(
                "%s: energy balance %s -> %s (%s, window mismatch %s %%)",
                self.name,
                transition.previous,
                transition.status,
                transition.reason,
                None if window.unexplained_pct is None else round(window.unexplained_pct, 2),
            )
            if self.follows_balance and Status.THEFT in (transition.previous, transition.status):
                self._fire(_balance_change(transition))

    def _fire(self, change: TheftChange) -> None:
        detected = change.event is TheftEvent.DETECTED
        data: dict[str, Any] = {
            ATTR_DEVICE_ID: self.device_id,
            ATTR_PAIR: self.config.pair,
            ATTR_NAME: self.display_name,
            ATTR_DETECTION: self.detection,
            ATTR_STATUS: change.status,
            ATTR_MISMATCH: _round(change.mismatch, 2),
            ATTR_LINE_POWER: change.line_power,
            ATTR_HOUSE_POWER: change.house_power,
        }
        _LOGGER.info(
            "%s: theft %s (mismatch %s %%, line %s W, house %s W)",
            self.name,
            "detected" if detected else "cleared",
            data[ATTR_MISMATCH],
            change.line_power,
            change.house_power,
        )
        self._hass.bus.async_fire(EVENT_THEFT_DETECTED if detected else EVENT_THEFT_CLEARED, data)
        for listener in list(self._transition_listeners):
            listener(change)

    def _notify(self, role: Role | None = None) -> None:
        """Tell the listeners of a reading of `role`'s meter, or (None) every listener."""
        self._change_context = None
        for listener in list(self._listeners[role]):
            listener()

    def change_context(self) -> Context:
        """The context of the change being told: the states that one reading (or one change of
        availability) writes share it, as the states an action changes share the action's."""
        if self._change_context is None:
            self._change_context = Context()
        return self._change_context


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)


def _paper_change(transition: PaperTransition) -> TheftChange:
    detected = transition.event is TheftEvent.DETECTED
    return TheftChange(
        transition.event,
        transition.mismatch,
        transition.line_power,
        transition.house_power,
        Status.THEFT.value if detected else Status.OK.value,
    )


def _balance_change(transition: Transition) -> TheftChange:
    """Into theft is "detected"; out of it, whatever the new status, "cleared"."""
    window = transition.window
    hours = (window.end - window.start) / 3600.0

    def mean_power(wh: float | None) -> float | None:
        return None if wh is None else round(wh / hours, 1)

    return TheftChange(
        TheftEvent.DETECTED if transition.status is Status.THEFT else TheftEvent.CLEARED,
        window.unexplained_pct,
        mean_power(window.line_wh),
        mean_power(window.house_wh),
        transition.status.value,
    )
