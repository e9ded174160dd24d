"""One meter pair at runtime: its two meters, its relay, the detector and its events."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from enum import StrEnum
from typing import Any, Final

from homeassistant.const import ATTR_DEVICE_ID
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError

from .const import (
    ATTR_HOUSE_POWER,
    ATTR_LINE_POWER,
    ATTR_MISMATCH,
    ATTR_PAIR,
    DOMAIN,
    EVENT_THEFT_CLEARED,
    EVENT_THEFT_DETECTED,
)
from .fleet import Fleet, PaperMeter, ProtocolMeter, Quantity, Relay
from .hub import Hub, NotConnectedError
from .pairing import PairConfig, PaperSource
from .semcore.detection import DetectionOptions, PairDetector, TheftEvent, Transition
from .semcore.protocol import RelayState, encode_relay, relay_set_topic, reset_energy_topic

_LOGGER = logging.getLogger(__name__)

# Seconds a relay command waits for the node's read-back confirmation.
RELAY_TIMEOUT: Final = 5.0


class Role(StrEnum):
    """Which meter of the pair."""

    LINE = "line"
    HOUSE = "house"


class PairRuntime:
    """State of one pair for its entities; fires the theft events."""

    def __init__(
        self,
        hass: HomeAssistant,
        subentry_id: str,
        config: PairConfig,
        options: DetectionOptions,
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
        self.detector = PairDetector(options)
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
        self._listeners: list[Callable[[], None]] = []
        self._transition_listeners: list[Callable[[Transition], None]] = []
        self._unsubs: list[CALLBACK_TYPE] = []

    @property
    def name(self) -> str:
        """Display name, e.g. "House 1"."""
        return self.config.name

    # --- wiring -----------------------------------------------------------------------------

    @callback
    def async_start(self) -> None:
        """Follow the meters, their nodes, the relay and the broker connection."""
        for role, meter in self.meters.items():
            self._unsubs.append(self._fleet.async_listen(meter.key, self._updater(role)))
            if isinstance(meter, ProtocolMeter):
                self._unsubs.append(
                    self._fleet.async_listen(f"node:{meter.node}", self._on_availability)
                )
        if self.relay is not None:
            key = f"relay:{self.relay.node}/{self.relay.relay}"
            self._unsubs.append(self._fleet.async_listen(key, self._notify))
            self._unsubs.append(self._fleet.async_listen(f"node:{self.relay.node}", self._notify))
        self._unsubs.append(self._hub.async_add_listener(self._on_availability))

    @callback
    def async_stop(self) -> None:
        """Stop following."""
        while self._unsubs:
            self._unsubs.pop()()

    @callback
    def async_add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        """Call `listener` on any change of the pair's values or availability."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    @callback
    def async_add_transition_listener(
        self, listener: Callable[[Transition], None]
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
    def supports_reset(self) -> bool:
        """Only protocol meters take a reset_energy command."""
        return any(isinstance(meter, ProtocolMeter) for meter in self.meters.values())

    @property
    def hub_connected(self) -> bool:
        """True while the broker connection is up."""
        return self._hub.connected

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
                meter.energy.expect_reset(time.monotonic())
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

    # --- updates ----------------------------------------------------------------------------

    def _updater(self, role: Role) -> Callable[[], None]:
        @callback
        def update() -> None:
            self._feed(role)
            self._notify()

        return update

    @callback
    def _on_availability(self) -> None:
        for role in Role:
            self._feed(role)
        self._notify()

    def _feed(self, role: Role) -> None:
        meter = self.meters[role]
        if not self.available(role, Quantity.POWER):
            if self._fed[role]:
                # A gap in the data: the debounce must start over once both are back.
                self._fed = dict.fromkeys(Role, False)
                self.detector.interrupt()
            return
        if meter.samples == self._seen[role]:
            return
        self._seen[role] = meter.samples
        self._fed[role] = True
        power = meter.value(Quantity.POWER)
        assert power is not None
        assert meter.power_ts is not None
        update = self.detector.update_line if role is Role.LINE else self.detector.update_house
        if (transition := update(power, meter.power_ts)) is not None:
            self._fire(transition)

    def _fire(self, transition: Transition) -> None:
        detected = transition.event is TheftEvent.DETECTED
        data: dict[str, Any] = {
            ATTR_DEVICE_ID: self.device_id,
            ATTR_PAIR: self.config.pair,
            ATTR_MISMATCH: round(transition.mismatch, 2),
            ATTR_LINE_POWER: transition.line_power,
            ATTR_HOUSE_POWER: transition.house_power,
        }
        _LOGGER.info(
            "%s: theft %s (mismatch %.2f %%, line %s W, house %s W)",
            self.name,
            "detected" if detected else "cleared",
            transition.mismatch,
            transition.line_power,
            transition.house_power,
        )
        self._hass.bus.async_fire(EVENT_THEFT_DETECTED if detected else EVENT_THEFT_CLEARED, data)
        for listener in list(self._transition_listeners):
            listener(transition)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()
