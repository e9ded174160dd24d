"""The node's firmware update entity: installed and shipped version, release notes, Install."""

from __future__ import annotations

import logging
import secrets
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any, Final

from homeassistant.components.update import (
    UpdateDeviceClass,
    UpdateEntity,
    UpdateEntityDescription,
    UpdateEntityFeature,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.dispatcher import async_dispatcher_connect
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.translation import async_get_translations

from . import SemConfigEntry
from .const import DOMAIN
from .entity import NodeEntity
from .runtime import signal_new_node
from .semcore.firmware import UPDATE_PROTOCOL, Transfer, UpdateFailed, version_key
from .semcore.protocol import Announce

_LOGGER = logging.getLogger(__name__)

# The reasons a node or the sender gives for an update that did not install, each with its own
# translated message (`update_failed_<reason>`).
FAILURE_REASONS: Final = frozenset(
    {
        "crashed",
        "not_confirmed",
        "bad_manifest",
        "bad_signature",
        "interpreter",
        "downgrade",
        "no_space",
        "busy",
        "hash",
        "bad_chunk",
        "write",
        "timeout",
        "no_answer",
        "interrupted",
        "bad_state",
    }
)

# One install per node at a time (checked by the entry's NodeUpdates); nodes update in parallel.
PARALLEL_UPDATES = 0

FIRMWARE = UpdateEntityDescription(
    key="firmware",
    translation_key="firmware",
    device_class=UpdateDeviceClass.FIRMWARE,
    entity_category=EntityCategory.CONFIG,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SemConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the update entity to every node that announces itself."""
    runtime = entry.runtime_data
    await runtime.updates.async_load_bundle()

    @callback
    def add_node(node: str) -> None:
        async_add_entities([NodeFirmwareUpdate(runtime, node, FIRMWARE)])

    entry.async_on_unload(async_dispatcher_connect(hass, signal_new_node(entry.entry_id), add_node))


class NodeFirmwareUpdate(NodeEntity, UpdateEntity):
    """Installs the node firmware shipped with the integration on a MicroPython node.

    A node that cannot take it (ESPHome, firmware before updates, another interpreter) shows
    its installed version as the latest and offers no Install.
    """

    _attr_in_progress = False
    _attr_update_percentage: int | None = None

    # Why a node is offered no Install, in the installation's language (the update entity's
    # release summary is a plain text attribute, not a translation key).
    _refusals: Mapping[str, str] = MappingProxyType({})

    async def async_added_to_hass(self) -> None:
        """Follow the node, the broker and the node's update state."""
        self._refusals = await async_get_translations(
            self.hass, self.hass.config.language, "exceptions", {DOMAIN}
        )
        await super().async_added_to_hass()
        self.async_on_remove(self._runtime.updates.async_subscribe(self._node, self._handle_update))

    @property
    def _announce(self) -> Announce | None:
        state = self._runtime.fleet.nodes.get(self._node)
        return state.announce if state is not None else None

    def _refusal(self) -> str | None:
        """Why the shipped firmware cannot go to this node (a translation key), or None."""
        announce = self._announce
        bundle = self._runtime.updates.bundle
        if bundle is None or announce is None or announce.update != UPDATE_PROTOCOL:
            return "update_unsupported"
        if not bundle.loads_on(announce.interpreter, announce.mpy):
            return "update_interpreter"
        return None

    @property
    def available(self) -> bool:
        """Known while the broker is connected (the node restarts during an install)."""
        return self._runtime.hub.connected and self._announce is not None

    @property
    def installed_version(self) -> str | None:
        """The version the node announces."""
        announce = self._announce
        return announce.firmware or None if announce is not None else None

    @property
    def latest_version(self) -> str | None:
        """The shipped firmware, for nodes that can take it."""
        bundle = self._runtime.updates.bundle
        if bundle is None or self._refusal() is not None:
            return self.installed_version
        return bundle.version

    @property
    def release_summary(self) -> str | None:
        """For a node offered no Install, why not and what to do instead."""
        refusal = self._refusal()
        if refusal is None or self._announce is None:
            return None
        text = self._refusals.get(f"component.{DOMAIN}.exceptions.{refusal}.message")
        return text.replace("{name}", self._node_name()) if text else None

    @property
    def supported_features(self) -> UpdateEntityFeature:
        """Install only where it can work."""
        if self._refusal() is not None:
            return UpdateEntityFeature(0)
        return (
            UpdateEntityFeature.INSTALL
            | UpdateEntityFeature.PROGRESS
            | UpdateEntityFeature.RELEASE_NOTES
            | UpdateEntityFeature.SPECIFIC_VERSION
        )

    async def async_release_notes(self) -> str | None:
        """The node firmware's section of the changelog."""
        bundle = self._runtime.updates.bundle
        return bundle.notes if bundle is not None else None

    def _error(self, key: str, **placeholders: str) -> HomeAssistantError:
        return HomeAssistantError(
            translation_domain=DOMAIN,
            translation_key=key,
            translation_placeholders={"name": self._node_name(), **placeholders},
        )

    def _node_name(self) -> str:
        announce = self._announce
        return announce.name if announce is not None else self._node

    def _set_progress(self, percentage: int) -> None:
        if percentage != self._attr_update_percentage:
            self._attr_update_percentage = percentage
            self.async_write_ha_state()

    async def async_install(self, version: str | None, backup: bool, **kwargs: Any) -> None:
        """Send the shipped firmware; return once the node runs it, raise when it does not.

        A downgrade (the node runs a newer version than the shipped one) is installed only when
        `version` asks for it explicitly.
        """
        runtime = self._runtime
        bundle = runtime.updates.bundle
        if (refusal := self._refusal()) is not None or bundle is None:
            raise self._error(refusal or "update_unsupported")
        if version is not None and version != bundle.version:
            raise self._error("update_version", version=version, shipped=bundle.version)
        installed = version_key(self.installed_version)
        shipped = version_key(bundle.version)
        downgrade = installed is not None and shipped is not None and shipped < installed
        if downgrade and version is None:
            raise self._error(
                "update_downgrade", version=bundle.version, installed=self.installed_version or ""
            )
        if not runtime.hub.connected:
            raise self._error("not_connected")
        if not runtime.fleet.node_reachable(self._node):
            raise self._error("node_unavailable")
        if runtime.updates.busy(self._node):
            raise self._error("update_busy")
        transfer = Transfer(
            bundle,
            runtime.settings.prefix,
            self._node,
            secrets.token_hex(6),
            key=runtime.node_keys.get(self._node),
            downgrade=downgrade,
        )
        _LOGGER.info(
            "Node %s: installing firmware %s (%d bytes)", self._node, bundle.version, bundle.size
        )
        self._attr_in_progress = True
        self._attr_update_percentage = 0
        self.async_write_ha_state()
        try:
            await runtime.updates.async_send(transfer, self._set_progress)
        except UpdateFailed as err:
            _LOGGER.warning(
                "Node %s: firmware %s not installed (%s); it keeps its previous firmware",
                self._node,
                bundle.version,
                err,
            )
            detail = f": {err.detail}" if err.detail else ""
            if err.error in FAILURE_REASONS:
                raise self._error(
                    f"update_failed_{err.error}", version=bundle.version, detail=detail
                ) from err
            # A reason of a newer node: its code, as the node gave it.
            raise self._error(
                "update_failed", version=bundle.version, reason=err.error, detail=detail
            ) from err
        finally:
            self._attr_in_progress = False
            self._attr_update_percentage = None
            self.async_write_ha_state()
        _LOGGER.info("Node %s: firmware %s installed", self._node, bundle.version)
