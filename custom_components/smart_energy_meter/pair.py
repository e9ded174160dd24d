"""One meter pair inside Home Assistant: its two meters, its relay, commands and theft events.

What each reading means for the detectors is `semcore.pair_monitor.PairMonitor`'s to decide;
this runtime feeds it the meters' changes, fires the verdict changes it answers with as events,
and tells the pair's entities. Neither detector ever switches the relay.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import CALLBACK_TYPE, Context, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.entity import Entity

from .const import (
    ATTR_DETECTION,
    ATTR_HOUSE_POWER,
    ATTR_LINE_POWER,
    ATTR_MISMATCH,
    ATTR_NAME,
    ATTR_PAIR,
    ATTR_STATUS,
    DETECTION_BALANCE,
    DETECTION_INSTANT_RULE,
    DOMAIN,
    EVENT_THEFT_CLEARED,
    EVENT_THEFT_DETECTED,
)
from .fleet import Fleet, NodeKey, ProtocolMeter, Quantity, Relay, ValueTopicsMeter
from .hub import Hub, NotConnectedError
from .pair_config import PairConfig, ProtocolSource, ValueTopicsSource
from .semcore.calibration import MeterGains
from .semcore.energy_balance import UNDECIDED, Evaluation, Status, TheftEngine
from .semcore.instant_rule import PairDetector, TheftEvent
from .semcore.meters import TrackedVerdict
from .semcore.pair_monitor import PairMonitor, TheftChange
from .semcore.protocol import (
    SENSOR_ERRORS,
    RelayState,
    ResetResult,
    Role,
    encode_relay,
    relay_set_topic,
    reset_energy_topic,
)
from .state_store import StateStore

__all__ = ["METER_STATUSES", "RELAY_TIMEOUT", "RESET_TIMEOUT", "PairRuntime"]

_LOGGER = logging.getLogger(__name__)

# A meter's status besides the errors its node reports (SENSOR_ERRORS).
METER_OK: Final = "ok"
METER_NODE_OFFLINE: Final = "node_offline"
METER_NO_READING: Final = "no_reading"
METER_STATUSES: Final = (METER_OK, METER_NO_READING, METER_NODE_OFFLINE, *sorted(SENSOR_ERRORS))

# Seconds a relay command waits for the node's read-back confirmation.
RELAY_TIMEOUT: Final = 5.0
# Seconds an energy reset waits for the reply of a node that gives one (protocol 1.2).
RESET_TIMEOUT: Final = 5.0
# Statuses of an earlier run the balance continues from.
RESTORABLE_STATUSES: Final = frozenset({Status.OK, Status.THEFT, Status.METER_FAULT})


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
        store: StateStore | None = None,
    ) -> None:
        self._hass = hass
        self.subentry_id = subentry_id
        self.config = config
        self._fleet = fleet
        self._hub = hub
        self._prefix = prefix
        self._store = store
        self.detection = (
            DETECTION_INSTANT_RULE if config.follows_instant_rule(defaults) else DETECTION_BALANCE
        )
        self.monitor = PairMonitor(
            config.name,
            PairDetector(config.detection_options(defaults)),
            TheftEngine(config.theft_config(defaults)),
            follows_balance=self.detection == DETECTION_BALANCE,
        )
        self.device_id: str | None = None
        self.meters: dict[Role, ProtocolMeter | ValueTopicsMeter] = {
            role: (
                fleet.track_value_topics_meter(source.base, config.interval)
                if isinstance(source, ValueTopicsSource)
                else fleet.track_protocol_meter(source.node, source.meter)
            )
            for role, source in ((Role.LINE, config.line), (Role.HOUSE, config.house))
        }
        self.relay: Relay | None = fleet.track_relay(*config.relay) if config.relay else None
        # The fleet service judges the pairs its nodes announce: `<node>/<label>` of the house
        # meter's node. Shown beside the local detection, never driving it.
        self.service_verdict: TrackedVerdict | None = (
            fleet.track_verdict(config.house.node, config.pair)
            if isinstance(config.house, ProtocolSource)
            else None
        )
        # Its entity was asked for (it exists only once a verdict was heard).
        self.service_verdict_entity = False
        # The stored state of the last run, if usable, is where the balance goes on from; the
        # entities' last states (total, status) are read only when there is none (a store of
        # an earlier version, a corrupt one).
        saved = store.saved_pairs.get(subentry_id) if store is not None else None
        continued = self.monitor.restore(saved, time.time())
        self._restored = continued
        self._status_restored = continued
        self._entities: set[Entity] = set()
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
    def detector(self) -> PairDetector:
        """The paper's instantaneous rule."""
        return self.monitor.detector

    @property
    def engine(self) -> TheftEngine:
        """The windowed energy balance."""
        return self.monitor.engine

    @property
    def evaluation(self) -> Evaluation:
        """The balance as it stands."""
        return self.monitor.evaluation

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
    def async_add_entity(self, entity: Entity) -> CALLBACK_TYPE:
        """Know `entity` as one of the pair's, until it is removed."""
        self._entities.add(entity)
        return lambda: self._entities.discard(entity)

    async def async_remove_entities(self) -> None:
        """Remove the pair's entities from Home Assistant (they are made again)."""
        await asyncio.gather(*(entity.async_remove() for entity in list(self._entities)))

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
        """Whether the meter can ever report the quantity (value topics have no frequency)."""
        return not (
            isinstance(self.meters[role], ValueTopicsMeter) and quantity is Quantity.FREQUENCY
        )

    def available(self, role: Role, quantity: Quantity) -> bool:
        """True when the meter has a current value of the quantity."""
        return self._fleet.available(self.meters[role], quantity)

    def raw_value(self, role: Role, quantity: Quantity) -> float | None:
        """The meter's own current value, None when unavailable."""
        if not self.available(role, quantity):
            return None
        return self.meters[role].value(quantity)

    def value(self, role: Role, quantity: Quantity) -> float | None:
        """The current value as shown: voltage, current and power with the meter's calibration
        gains (the energy total is the meter's own, so that the statistics never jump)."""
        raw = self.raw_value(role, quantity)
        if raw is None or (shown := _CALIBRATED.get(quantity)) is None:
            return raw
        gain, digits = shown
        factor = gain(self.config.tuning.gains[role])
        return raw if factor == 1.0 else round(raw * factor, digits)

    def meter_status(self, role: Role) -> str:
        """Why the meter has no current reading, or `ok`: the error its node reports (the
        protocol's word), `node_offline`, or `no_reading` (nothing heard lately)."""
        meter = self.meters[role]
        if self.available(role, Quantity.POWER):
            return METER_OK
        if isinstance(meter, ProtocolMeter):
            if not self._fleet.model.node_online(meter.node):
                return METER_NODE_OFFLINE
            if meter.fresh and meter.error is not None:
                return meter.error
        return METER_NO_READING

    def meter_detail(self, role: Role) -> str | None:
        """The node's words for the meter's error (protocol 1.2), while that error stands."""
        meter = self.meters[role]
        if isinstance(meter, ProtocolMeter) and self.meter_status(role) == meter.error:
            return meter.error_detail
        return None

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
        """The verdict the pair follows; None while the balance has none (evaluating, not
        evaluable)."""
        if not self.follows_balance:
            return self.detector.theft
        status = self.engine.status
        return None if status in UNDECIDED else status is Status.THEFT

    @property
    def window_mismatch(self) -> float | None:
        """Unexplained share of the last window, None unless that window was balanced."""
        window = self.evaluation.window
        if window is None or window.unexplained_wh is None:
            return None
        return self.evaluation.window_mismatch_pct

    @property
    def service_verdict_current(self) -> bool:
        """The service's verdict is known as it stands: heard on the connection as it is."""
        tracked = self.service_verdict
        return self.hub_connected and tracked is not None and tracked.current

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
        """Reset the energy counters of the pair's protocol meters; with nodes that reply
        (protocol 1.2), fail unless each of them says the reset was done."""
        if not self.commands_available:
            raise self._error("node_unavailable")
        meters = [m for m in self.meters.values() if isinstance(m, ProtocolMeter)]
        replies: dict[asyncio.Future[ResetResult], ProtocolMeter] = {}
        try:
            for meter in meters:
                # Announce the drop before it can arrive, so it is taken as the reset.
                meter.energy.expect_reset(self._fleet.clock())
                if self._fleet.replies_to_reset(meter.node):
                    replies[self._fleet.reset_waiter(meter.node, meter.meter)] = meter
                await self._hub.async_publish(
                    reset_energy_topic(self._prefix, meter.node, meter.meter), b"", retain=False
                )
            if replies:
                await asyncio.wait(replies, timeout=RESET_TIMEOUT)
        except NotConnectedError as err:
            raise self._error("not_connected") from err
        finally:
            for future, meter in replies.items():
                future.cancel()
                self._fleet.drop_reset_waiter(meter.node, meter.meter, future)
        failures = [self._reset_failure(meter, future) for future, meter in replies.items()]
        if errors := [error for error in failures if error is not None]:
            raise errors[0]

    def _reset_failure(
        self, meter: ProtocolMeter, future: asyncio.Future[ResetResult]
    ) -> HomeAssistantError | None:
        """Why the node did not reset `meter` (None: it did); its drop is no reset then."""
        if future.cancelled():
            error = self._error("reset_no_reply", meter=meter.key, timeout=f"{RESET_TIMEOUT:g}")
            reason = f"no reply within {RESET_TIMEOUT:g} s"
        elif (result := future.result()).ok:
            return None
        else:
            reason = f"{result.error} ({result.detail})" if result.detail else str(result.error)
            error = self._error("reset_failed", meter=meter.key, reason=reason)
        meter.energy.cancel_reset()
        _LOGGER.warning("%s: energy counter of %s not reset: %s", self.name, meter.key, reason)
        return error

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
        self.monitor.restore_unaccounted(wh)
        self._notify()

    @callback
    def async_restore_status(self, value: str | None) -> None:
        """Continue from the detection status shown at the end of an earlier run.

        A verdict (ok, theft, meter fault) is shown again at once and its events are not
        repeated; tamper may have come from refused signatures, which this run judges anew.
        Only the first call counts, and only before the balance was fed.
        """
        if self._status_restored:
            return
        self._status_restored = True
        if value in RESTORABLE_STATUSES:
            self.monitor.restore_status(Status(value))
            self._notify()

    @callback
    def async_apply(self, config: PairConfig, defaults: Mapping[str, Any]) -> bool:
        """Take a changed name, options, calibration or commissioning values without losing
        either detector's state (a verdict goes on; no event for it).

        True when the pair's entities must be made again: the detector the verdict follows
        changed, and with it which readings move the theft sensor.
        """
        self.config = config
        self.monitor.name = config.name
        theft_config = config.theft_config(defaults)
        if theft_config != self.engine.config:
            self.engine.reconfigure(theft_config)
        options = config.detection_options(defaults)
        if options != self.detector.options:
            self.detector.reconfigure(options)
        detection = (
            DETECTION_INSTANT_RULE if config.follows_instant_rule(defaults) else DETECTION_BALANCE
        )
        switched = detection != self.detection
        self.detection = detection
        self.monitor.follows_balance = detection == DETECTION_BALANCE
        self._notify()
        return switched

    # --- updates ----------------------------------------------------------------------------

    def _updater(self, role: Role) -> Callable[[], None]:
        @callback
        def update() -> None:
            balance = self.monitor.balance_shown()
            self._feed(role)
            # Most readings only move the readings' entities; the balance's change when a
            # window closes or the status moves, and then every entity hears of it.
            self._notify(role if self.monitor.balance_shown() == balance else None)

        return update

    @callback
    def _on_availability(self) -> None:
        for role in Role:
            self._feed(role)
        self._notify()

    @callback
    def async_tick(self, now: float) -> None:
        """Let the balance close windows while both meters are silent (`now`: Unix time)."""
        before = self.evaluation
        for change in self.monitor.tick(now):
            self._fire(change)
        if self.evaluation != before:
            self._notify()
            self._schedule_save()

    def _feed(self, role: Role) -> None:
        live = self.available(role, Quantity.POWER)
        for change in self.monitor.update(role, self.meters[role], live, time.time()):
            self._fire(change)
        self._schedule_save()

    def _schedule_save(self) -> None:
        if self._store is not None:
            self._store.async_schedule()

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


# The quantities a meter's calibration changes as shown: their gain, and the digits kept (one
# more than the PZEM reports).
_CALIBRATED: Final[dict[Quantity, tuple[Callable[[MeterGains], float], int]]] = {
    Quantity.VOLTAGE: (lambda gains: gains.voltage, 2),
    Quantity.CURRENT: (lambda gains: gains.current, 4),
    Quantity.POWER: (lambda gains: gains.power, 2),
}


def _round(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
