"""Everything one config entry runs: the broker connection, the fleet state and the pairs."""

from __future__ import annotations

import logging
import ssl
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from homeassistant.config_entries import (
    SOURCE_INTEGRATION_DISCOVERY,
    ConfigEntry,
    ConfigSubentry,
)
from homeassistant.const import CONF_NAME
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import discovery_flow
from homeassistant.helpers.dispatcher import (
    async_dispatcher_connect,
    async_dispatcher_send_internal,
)
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.util.signal_type import SignalType

from .broker import BrokerSettings
from .const import (
    CONF_CALIBRATION,
    CONF_COMMISSIONING,
    CONF_KEY,
    CONF_NODE,
    CONF_RESISTANCE,
    CONF_STATE_WRITES,
    DOMAIN,
    SUBENTRY_NODE_KEY,
    TICK_INTERVAL,
)
from .fleet import (
    Fleet,
    signal_announce,
    signal_foreign_protocol,
    signal_node_removed,
    signal_service_verdict,
)
from .hub import Hub
from .issues import (
    NodeIssue,
    async_clear,
    async_clear_pair_name_in_use,
    async_raise,
    async_raise_pair_name_in_use,
)
from .node_update import STATE_SUFFIX, NodeUpdates
from .node_watch import NodeWatch
from .pair import PairRuntime
from .pair_config import PairConfig, ProtocolSource, pair_names, propose_pairs
from .recording import Recording
from .semcore.meters import TrackedVerdict
from .semcore.protocol import Announce, subscriptions
from .semcore.state_writes import Policy
from .state_store import PairStates, StateStore
from .tuning import PairTuning

_LOGGER = logging.getLogger(__name__)

MANUFACTURER = "Smart Energy Meter"
PAIR_MODEL = "Line and house meter pair"
# Subentry keys the actions write, replaced as a whole when they store new values.
TUNING_KEYS = frozenset({CONF_RESISTANCE, CONF_CALIBRATION, CONF_COMMISSIONING})


def node_identifier(entry_id: str, node: str) -> tuple[str, str]:
    """Device registry identifier of a node (the ESP32)."""
    return (DOMAIN, f"{entry_id}_node_{node}")


def signal_new_pair(entry_id: str) -> SignalType[str]:
    """A pair was added while the entry runs, or its entities are made again: each platform
    adds the entities of the pair (its subentry id)."""
    return SignalType(f"{DOMAIN}_{entry_id}_new_pair")


def signal_new_node(entry_id: str) -> SignalType[str]:
    """A node of the entry announced itself for the first time: its entities are added."""
    return SignalType(f"{DOMAIN}_{entry_id}_new_node")


def signal_new_service_verdict(entry_id: str) -> SignalType[str]:
    """The first service verdict on a pair was heard: its entity is added (the subentry id)."""
    return SignalType(f"{DOMAIN}_{entry_id}_new_service_verdict")


def signal_pair_verdict(entry_id: str, subentry_id: str) -> SignalType[()]:
    """The service's verdict on one pair changed: its entity looks again."""
    return SignalType(f"{DOMAIN}_{entry_id}_{subentry_id}_service_verdict")


def pair_identifier(entry_id: str, subentry_id: str) -> tuple[str, str]:
    """Device registry identifier of a pair (one house)."""
    return (DOMAIN, f"{entry_id}_pair_{subentry_id}")


class SemRuntime:
    """The runtime data of a config entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        settings: BrokerSettings,
        tls_context: ssl.SSLContext | None,
        store: StateStore,
    ) -> None:
        self._hass = hass
        self._entry = entry
        self.settings = settings
        self._store = store
        self.recording = Recording(
            hass, Policy(entry.options.get(CONF_STATE_WRITES, Policy.SIGNIFICANT))
        )
        self.hub = Hub(hass, settings, tls_context, self._handle_message)
        self.fleet = Fleet(hass, entry.entry_id, settings.prefix, lambda: self.hub.connected, store)
        self.pairs: dict[str, PairRuntime] = {}
        keys: dict[str, bytes] = {}
        for subentry in entry.subentries.values():
            if subentry.subentry_type == SUBENTRY_NODE_KEY:
                keys[subentry.data[CONF_NODE]] = subentry.data[CONF_KEY].encode()
                continue
            self.pairs[subentry.subentry_id] = self._build_pair(subentry)
        if keys:
            self.fleet.use_keys(keys)
        self.node_keys = keys  # a node with a key takes only firmware signed with it
        self.updates = NodeUpdates(hass, settings.prefix, self.hub)
        store.bind(self.fleet.energy_counters, self._pair_states)
        # Asked on each announce; follows the pairs as they are added and removed.
        self._used_meters = self._meters_in_use()
        # What the runtime was built from, to tell what an update of the entry changed.
        self._built_from = _snapshot(entry)
        self._cancel_tick: CALLBACK_TYPE | None = None
        self.node_devices: dict[str, str] = {}
        self._unsubs: list[CALLBACK_TYPE] = []
        self._nodes_with_entities: set[str] = set()
        self._offered: set[str] = set()
        self._watch: NodeWatch | None = None
        self._started = False

    def _build_pair(self, subentry: ConfigSubentry) -> PairRuntime:
        """A pair's runtime, continuing from its stored state (if any)."""
        return PairRuntime(
            self._hass,
            subentry.subentry_id,
            _config_of(subentry),
            self._entry.options,
            self.fleet,
            self.hub,
            self.settings.prefix,
            self._store,
        )

    def _pair_states(self) -> PairStates:
        return {subentry_id: pair.monitor.as_dict() for subentry_id, pair in self.pairs.items()}

    def _meters_in_use(self) -> frozenset[str]:
        return frozenset(key for pair in self.pairs.values() for key in pair.config.meter_keys)

    @property
    def entry_id(self) -> str:
        """The config entry's id."""
        return self._entry.entry_id

    @property
    def used_meters(self) -> frozenset[str]:
        """Fleet keys of every meter a pair of this entry uses."""
        return self._used_meters

    # --- lifecycle ----------------------------------------------------------------------------

    @callback
    def async_setup_devices(self) -> None:
        """Register a device per referenced node, then one per pair linked to its node."""
        registry = dr.async_get(self._hass)
        self._register_devices(registry, self.pairs.values())
        self._remove_unused_node_devices(registry)

    def _register_devices(
        self, registry: dr.DeviceRegistry, pairs: Iterable[PairRuntime]
    ) -> list[str]:
        """Register the pairs' devices and their nodes'; returns the nodes new to the entry."""
        entry_id = self._entry.entry_id
        new_nodes: list[str] = []
        for pair in pairs:
            for source in (pair.config.house, pair.config.line):
                if isinstance(source, ProtocolSource) and source.node not in self.node_devices:
                    existing = registry.async_get_device_by_identifier(
                        node_identifier(entry_id, source.node), entry_id
                    )
                    device = registry.async_get_or_create(
                        config_entry_id=entry_id,
                        identifiers={node_identifier(entry_id, source.node)},
                        manufacturer=MANUFACTURER,
                        # Keep the announced name of an earlier run until the announce comes.
                        name=existing.name if existing else source.node,
                    )
                    self.node_devices[source.node] = device.id
                    new_nodes.append(source.node)
            via = next(
                (
                    self.node_devices[source.node]
                    for source in (pair.config.house, pair.config.line)
                    if isinstance(source, ProtocolSource)
                ),
                None,
            )
            device = registry.async_get_or_create(
                config_entry_id=entry_id,
                config_subentry_id=pair.subentry_id,
                identifiers={pair_identifier(entry_id, pair.subentry_id)},
                manufacturer=MANUFACTURER,
                model=PAIR_MODEL,
                name=pair.name,
                via_device_id=via,
            )
            pair.device_id = device.id
        return new_nodes

    def _remove_unused_node_devices(self, registry: dr.DeviceRegistry) -> None:
        """A node's device goes once no pair uses the node (its last pair was deleted)."""
        entry_id = self._entry.entry_id
        prefix = node_identifier(entry_id, "")[1]
        for device in dr.async_entries_for_config_entry(registry, entry_id):
            nodes = [
                identifier.removeprefix(prefix)
                for domain, identifier in device.identifiers
                if domain == DOMAIN and identifier.startswith(prefix)
            ]
            if nodes and not any(node in self.node_devices for node in nodes):
                _LOGGER.info("Removing the device of node %s: no meter pair uses it", nodes[0])
                registry.async_update_device(device.id, remove_config_entry_id=entry_id)
                for node in nodes:
                    async_clear(self._hass, entry_id, node)

    @callback
    def _handle_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic.endswith(STATE_SUFFIX):
            self.updates.async_handle_message(topic, payload)
            return
        self.fleet.async_handle_message(topic, payload, retained)

    @callback
    def async_start(self) -> None:
        """Start the pairs and the broker connection."""
        entry_id = self._entry.entry_id
        hass = self._hass
        self._unsubs += [
            async_dispatcher_connect(hass, signal_announce(entry_id), self._on_announce),
            async_dispatcher_connect(hass, signal_node_removed(entry_id), self._on_node_gone),
            async_dispatcher_connect(
                hass, signal_foreign_protocol(entry_id), self._on_foreign_protocol
            ),
            async_dispatcher_connect(
                hass, signal_service_verdict(entry_id), self._on_service_verdict
            ),
            self.hub.async_add_listener(
                lambda: self.fleet.async_connection_changed(self.hub.connected)
            ),
        ]
        for pair in self.pairs.values():
            pair.async_start()
        # The pairs registered their value-topics meters with the fleet when they were built.
        # `<prefix>/+/+/state` also brings the nodes' update/state (see _handle_message).
        topics = (*subscriptions(self.settings.prefix), *self.fleet.value_topics)
        self._watch = NodeWatch(
            self._hass, self.entry_id, self.settings.prefix, self.fleet, self.hub, self.node_devices
        )
        self._watch.async_start()
        self.recording.async_start()
        self.hub.async_start(self._entry, topics)
        self._cancel_tick = async_track_time_interval(
            self._hass, self._tick, timedelta(seconds=TICK_INTERVAL), name=f"{DOMAIN} balance"
        )
        self._started = True

    @callback
    def _tick(self, _now: datetime) -> None:
        # Each pair maps this onto its node's clock: a node's offset does not matter.
        now = time.time()
        for pair in self.pairs.values():
            pair.async_tick(now)

    async def async_stop(self) -> None:
        """Stop everything the entry runs."""
        if self._cancel_tick is not None:
            self._cancel_tick()
            self._cancel_tick = None
        while self._unsubs:
            self._unsubs.pop()()
        self.recording.async_stop()
        if self._watch is not None:
            self._watch.async_stop()
        await self.hub.async_stop()
        for pair in self.pairs.values():
            pair.async_stop()
        self.fleet.async_shutdown()
        # The next run (a reload) continues the totals and the pairs' detection from here.
        await self._store.async_flush()

    # --- updates of the entry -----------------------------------------------------------------

    async def async_apply_update(self, entry: ConfigEntry) -> bool:
        """Apply an update of the entry in place: pairs added, renamed, reconfigured or
        removed, options, calibration and commissioning values. The other pairs' entities and
        detection go on untouched.

        Returns False when the entry must be reloaded: the broker connection changed (the
        runtime holds one connection, made when it is built), a signing key did (keys are
        read only when the runtime is built), or the write policy did (each entity took it
        when added).
        """
        current = _snapshot(entry)
        before = self._built_from
        policy = Policy(entry.options.get(CONF_STATE_WRITES, Policy.SIGNIFICANT))
        if (
            current["data"] != before["data"]
            or current["keys"] != before["keys"]
            or policy is not self.recording.policy
        ):
            return False
        self._built_from = current
        options_changed = current["options"] != before["options"]
        registry = dr.async_get(self._hass)
        for subentry_id in [key for key in self.pairs if key not in current["pairs"]]:
            self._remove_pair(subentry_id)
        remade: list[PairRuntime] = []
        for subentry_id, data in current["pairs"].items():
            subentry = entry.subentries[subentry_id]
            pair = self.pairs.get(subentry_id)
            if pair is None:
                await self._async_add_pair(registry, subentry)
            elif options_changed or data != before["pairs"].get(subentry_id):
                config = self._apply_rename(entry, subentry, _config_of(subentry))
                if config.name != pair.config.name:
                    async_clear_pair_name_in_use(self._hass, self.entry_id, subentry_id)
                    if pair.device_id is not None:
                        # Entity ids stay; the names shown follow the device's.
                        registry.async_update_device(pair.device_id, name=config.name)
                if pair.async_apply(config, entry.options):
                    remade.append(pair)
        for pair in remade:
            await pair.async_remove_entities()
            async_dispatcher_send_internal(
                self._hass, signal_new_pair(self.entry_id), pair.subentry_id
            )
        self._used_meters = self._meters_in_use()
        self._remove_unused_node_devices(registry)
        self._built_from = _snapshot(entry)  # with the names written above
        return True

    def _apply_rename(
        self, entry: ConfigEntry, subentry: ConfigSubentry, config: PairConfig
    ) -> PairConfig:
        """A pair renamed on the integration page (⋮ → Rename) sets only the title, without
        the flow's checks: the stored name follows, so every reader sees the new one, unless
        another pair has that name; then the title goes back and a repair issue says why."""
        stored = subentry.data[CONF_NAME]
        if config.name == stored:
            return config
        if config.name.strip().casefold() in pair_names(entry, besides=subentry.subentry_id):
            _LOGGER.warning(
                "Meter pair %s not renamed to %s: another meter pair has that name",
                stored,
                config.name,
            )
            async_raise_pair_name_in_use(
                self._hass, self.entry_id, subentry.subentry_id, name=config.name, kept=stored
            )
            self._hass.config_entries.async_update_subentry(entry, subentry, title=stored)
            return replace(config, name=stored)
        self._hass.config_entries.async_update_subentry(
            entry, subentry, data={**subentry.data, CONF_NAME: config.name}
        )
        return config

    async def _async_add_pair(self, registry: dr.DeviceRegistry, subentry: ConfigSubentry) -> None:
        """A pair added while the entry runs: its devices, its runtime, then its entities."""
        pair = self.pairs[subentry.subentry_id] = self._build_pair(subentry)
        new_nodes = self._register_devices(registry, [pair])
        _LOGGER.info("Meter pair %s added", pair.name)
        if self._started:
            pair.async_start()
            await self.hub.async_add_topics(self.fleet.value_topics)
        async_dispatcher_send_internal(self._hass, signal_new_pair(self.entry_id), pair.subentry_id)
        for node in new_nodes:
            state = self.fleet.nodes.get(node)
            if state is not None and state.announce is not None:
                # Announced before any pair used it: its device takes the announce now.
                self._on_announce(state.announce)

    def _remove_pair(self, subentry_id: str) -> None:
        """A deleted pair: Home Assistant removed its device and entities; its runtime stops
        and its nodes go once no other pair uses them."""
        pair = self.pairs.pop(subentry_id)
        pair.async_stop()
        async_clear_pair_name_in_use(self._hass, self.entry_id, subentry_id)
        _LOGGER.info("Meter pair %s removed", pair.name)
        used = {
            source.node
            for other in self.pairs.values()
            for source in (other.config.house, other.config.line)
            if isinstance(source, ProtocolSource)
        }
        for node in [node for node in self.node_devices if node not in used]:
            del self.node_devices[node]
            self._nodes_with_entities.discard(node)

    @callback
    def async_update_tuning(self, subentry_id: str, tuning: PairTuning) -> PairConfig:
        """Store a pair's new calibration or commissioning values and apply them now."""
        subentry = self._entry.subentries[subentry_id]
        data = {**_without_tuning(subentry.data), **tuning.as_data()}
        config = replace(PairConfig.from_data(data), name=subentry.title)
        self.pairs[subentry_id].async_apply(config, self._entry.options)
        self._hass.config_entries.async_update_subentry(self._entry, subentry, data=data)
        self._built_from = _snapshot(self._entry)  # applied: nothing left for the update
        return config

    # --- announces ----------------------------------------------------------------------------

    @callback
    def _on_announce(self, announce: Announce) -> None:
        async_clear(
            self._hass,
            self._entry.entry_id,
            announce.node,
            NodeIssue.REMOVED,
            NodeIssue.UNSUPPORTED_PROTOCOL,
        )
        if announce.node in self.node_devices:
            registry = dr.async_get(self._hass)
            device_id = self.node_devices[announce.node]
            connection = (dr.CONNECTION_NETWORK_MAC, announce.mac) if announce.mac else None
            connections = {connection} if connection else set()
            holder = (
                registry.async_get_device_by_connection(connection, self._entry.entry_id)
                if connection
                else None
            )
            if holder is not None and holder.id != device_id:
                # One MAC on two devices: a copied configuration, or a node speaking in another's
                # name. The registry refuses it; the announce is still used.
                _LOGGER.warning(
                    "Node %s announces MAC %s, which the device %s already has; not recorded",
                    announce.node,
                    announce.mac,
                    holder.name,
                )
                connections = set()
            registry.async_update_device(
                device_id,
                name=announce.name,
                model=announce.model or None,
                sw_version=announce.firmware or None,
                new_connections=connections,
            )
            if announce.node not in self._nodes_with_entities:
                self._nodes_with_entities.add(announce.node)
                async_dispatcher_send_internal(
                    self._hass, signal_new_node(self._entry.entry_id), announce.node
                )
        self._offer_new_pairs(announce)

    def _offer_new_pairs(self, announce: Announce) -> None:
        used = self.used_meters
        for proposal in propose_pairs([announce]):
            if proposal.config.meter_keys & used or proposal.unique_id in self._offered:
                continue
            self._offered.add(proposal.unique_id)
            _LOGGER.debug("New meter pair %s on node %s", proposal.config.pair, announce.node)
            discovery_flow.async_create_flow(
                self._hass,
                DOMAIN,
                {"source": SOURCE_INTEGRATION_DISCOVERY},
                {"entry_id": self._entry.entry_id, **proposal.config.as_data()},
            )

    @callback
    def _on_node_gone(self, node: str) -> None:
        _LOGGER.info("Node %s was removed (empty announce)", node)
        self._withdraw_offers(node)
        if node not in self.node_devices:
            return
        async_raise(self._hass, NodeIssue.REMOVED, self._entry.entry_id, node)

    def _withdraw_offers(self, node: str) -> None:
        """A node that removed itself takes back the pairs it offered and nobody added yet."""
        self._offered = {offer for offer in self._offered if not offer.startswith(f"{node}/")}
        flows = self._hass.config_entries.flow
        prefix = f"{self._entry.entry_id}:{node}/"
        for flow in flows.async_progress_by_handler(DOMAIN, include_uninitialized=True):
            unique_id = flow["context"].get("unique_id")
            if isinstance(unique_id, str) and unique_id.startswith(prefix):
                flows.async_abort(flow["flow_id"])

    @callback
    def _on_foreign_protocol(self, node: str, proto: str) -> None:
        async_raise(
            self._hass, NodeIssue.UNSUPPORTED_PROTOCOL, self._entry.entry_id, node, version=proto
        )

    @callback
    def _on_service_verdict(self, tracked: TrackedVerdict) -> None:
        pair = next((p for p in self.pairs.values() if p.service_verdict is tracked), None)
        if pair is None:
            return  # the pair was deleted while the entry runs
        if not pair.service_verdict_entity:
            # Created on the first verdict: installations without the service see no entity.
            pair.service_verdict_entity = True
            async_dispatcher_send_internal(
                self._hass, signal_new_service_verdict(self.entry_id), pair.subentry_id
            )
            return
        async_dispatcher_send_internal(
            self._hass, signal_pair_verdict(self.entry_id, pair.subentry_id)
        )

    def node_removable(self, node: str) -> bool:
        """A node device may be deleted once no pair uses the node, or the node is gone, no
        longer announced, or silent for a day."""
        state = self.fleet.nodes.get(node)
        return (
            node not in self.node_devices
            or state is None
            or state.gone
            or state.announce is None
            or (self._watch is not None and self._watch.is_silent(node))
        )


def _config_of(subentry: ConfigSubentry) -> PairConfig:
    """A pair's configuration; its name is the subentry's title, which Home Assistant's own
    Rename changes alone."""
    return replace(PairConfig.from_data(subentry.data), name=subentry.title)


def _snapshot(entry: ConfigEntry) -> dict[str, Any]:
    """Entry data and options, each pair's title and data, and the signing keys."""
    snapshot: dict[str, Any] = {
        "data": dict(entry.data),
        "options": dict(entry.options),
        "pairs": {},
        "keys": {},
    }
    for subentry_id, subentry in entry.subentries.items():
        kind = "keys" if subentry.subentry_type == SUBENTRY_NODE_KEY else "pairs"
        snapshot[kind][subentry_id] = {"title": subentry.title, **subentry.data}
    return snapshot


def _without_tuning(data: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in data.items() if key not in TUNING_KEYS}
