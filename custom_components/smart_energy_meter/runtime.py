"""Everything one config entry runs: the broker connection, the fleet state and the pairs."""

from __future__ import annotations

import logging
import ssl
from collections.abc import Callable

from homeassistant.config_entries import SOURCE_INTEGRATION_DISCOVERY, ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import discovery_flow
from homeassistant.helpers import issue_registry as ir

from .broker import BrokerSettings
from .const import DOMAIN
from .fleet import Fleet
from .hub import Hub
from .pair import PairRuntime
from .pairing import PairConfig, ProtocolSource, propose_pairs
from .semcore.protocol import Announce, subscriptions

_LOGGER = logging.getLogger(__name__)

MANUFACTURER = "Smart Energy Meter"


def node_identifier(entry_id: str, node: str) -> tuple[str, str]:
    """Device registry identifier of a node (the ESP32)."""
    return (DOMAIN, f"{entry_id}_node_{node}")


def gone_issue_id(entry_id: str, node: str) -> str:
    """Repair issue raised when a node announced its removal."""
    return f"node_removed_{entry_id}_{node}"


def protocol_issue_id(entry_id: str, node: str) -> str:
    """Repair issue raised when a node speaks another major protocol version."""
    return f"unsupported_protocol_{entry_id}_{node}"


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
    ) -> None:
        self._hass = hass
        self._entry = entry
        self.settings = settings
        self.fleet = Fleet(hass, settings.prefix, lambda: self.hub.connected)
        self.pairs: dict[str, PairRuntime] = {}
        self.hub = Hub(hass, settings, tls_context, self.fleet.async_handle_message)
        # Meter pairs are the only subentry type.
        for subentry in entry.subentries.values():
            config = PairConfig.from_data(subentry.data)
            self.pairs[subentry.subentry_id] = PairRuntime(
                hass,
                subentry.subentry_id,
                config,
                config.detection_options(entry.options),
                self.fleet,
                self.hub,
                settings.prefix,
            )
        self.node_devices: dict[str, str] = {}
        self.node_entity_adders: list[Callable[[str], None]] = []
        self._nodes_with_entities: set[str] = set()
        self._offered: set[str] = set()

    @property
    def entry_id(self) -> str:
        """The config entry's id."""
        return self._entry.entry_id

    @property
    def used_meters(self) -> set[str]:
        """Fleet keys of every meter a pair of this entry uses."""
        return {key for pair in self.pairs.values() for key in pair.config.meter_keys}

    # --- lifecycle ----------------------------------------------------------------------------

    @callback
    def async_setup_devices(self) -> None:
        """Register a device per referenced node, then one per pair linked to its node."""
        registry = dr.async_get(self._hass)
        entry_id = self._entry.entry_id
        for pair in self.pairs.values():
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
                model="Line and house meter pair",
                name=pair.name,
                via_device_id=via,
            )
            pair.device_id = device.id

    @callback
    def async_start(self) -> None:
        """Start the pairs and the broker connection."""
        self.fleet.on_announce = self._on_announce
        self.fleet.on_node_gone = self._on_node_gone
        self.fleet.on_foreign_protocol = self._on_foreign_protocol
        for pair in self.pairs.values():
            pair.async_start()
        # The pairs registered their paper-topics meters with the fleet when they were built.
        topics = (*subscriptions(self.settings.prefix), *self.fleet.paper_topics)
        self.hub.async_start(self._entry, topics)

    async def async_stop(self) -> None:
        """Stop everything the entry runs."""
        await self.hub.async_stop()
        for pair in self.pairs.values():
            pair.async_stop()
        self.fleet.async_shutdown()

    # --- announces ----------------------------------------------------------------------------

    @callback
    def _on_announce(self, announce: Announce) -> None:
        for issue_id in (gone_issue_id, protocol_issue_id):
            ir.async_delete_issue(self._hass, DOMAIN, issue_id(self._entry.entry_id, announce.node))
        if announce.node in self.node_devices:
            registry = dr.async_get(self._hass)
            registry.async_update_device(
                self.node_devices[announce.node],
                name=announce.name,
                model=announce.model or None,
                sw_version=announce.firmware or None,
                new_connections=(
                    {(dr.CONNECTION_NETWORK_MAC, announce.mac)} if announce.mac else set()
                ),
            )
            if announce.node not in self._nodes_with_entities:
                self._nodes_with_entities.add(announce.node)
                for add in self.node_entity_adders:
                    add(announce.node)
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
        if node not in self.node_devices:
            return
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            gone_issue_id(self._entry.entry_id, node),
            is_fixable=False,
            severity=ir.IssueSeverity.WARNING,
            translation_key="node_removed",
            translation_placeholders={"node": node},
        )

    @callback
    def _on_foreign_protocol(self, node: str, proto: str) -> None:
        ir.async_create_issue(
            self._hass,
            DOMAIN,
            protocol_issue_id(self._entry.entry_id, node),
            is_fixable=False,
            severity=ir.IssueSeverity.ERROR,
            translation_key="unsupported_protocol",
            translation_placeholders={"node": node, "version": proto},
        )

    def node_removable(self, node: str) -> bool:
        """A node device may be deleted once its node is gone or no longer announced."""
        state = self.fleet.nodes.get(node)
        return state is None or state.gone or state.announce is None
