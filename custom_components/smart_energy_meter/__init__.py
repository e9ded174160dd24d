"""The Smart Energy Meter integration: PZEM-004T line/house pairs over MQTT, theft detection."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .broker import (
    BrokerError,
    BrokerSettings,
    async_check_connection,
    async_tls_context,
    error_placeholders,
)
from .const import DOMAIN
from .issues import async_clear, async_clear_entry
from .runtime import SemRuntime
from .services import async_setup_services
from .state_store import StateStore

PLATFORMS = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.SENSOR,
    Platform.SWITCH,
    Platform.UPDATE,
]

type SemConfigEntry = ConfigEntry[SemRuntime]

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the actions (calibration, commissioning) once for all entries."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: SemConfigEntry) -> bool:
    """Connect to the broker in the background and set up the pairs' entities."""
    settings = BrokerSettings.from_data(entry.data)
    try:
        tls_context = await async_tls_context(hass, settings)
        # One connection first: a refused login asks for new credentials (reauth), a broker
        # that is not there yet makes Home Assistant retry the setup.
        await async_check_connection(hass, settings, tls_context)
    except BrokerError as err:
        placeholders = error_placeholders(settings, err)
        if err.key == "invalid_auth":
            raise ConfigEntryAuthFailed(
                translation_domain=DOMAIN,
                translation_key=err.key,
                translation_placeholders=placeholders,
            ) from err
        if err.key == "invalid_ca":
            raise ConfigEntryError(translation_domain=DOMAIN, translation_key=err.key) from err
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key=err.key,
            translation_placeholders=placeholders,
        ) from err
    store = StateStore(hass, entry.entry_id)
    await store.async_load()
    runtime = SemRuntime(hass, entry, settings, tls_context, store)
    entry.runtime_data = runtime
    runtime.async_setup_devices()
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    runtime.async_start()
    entry.async_on_unload(runtime.async_stop)
    entry.async_on_unload(entry.add_update_listener(_async_update))
    return True


async def _async_update(hass: HomeAssistant, entry: SemConfigEntry) -> None:
    # Pairs added, renamed, reconfigured or removed, options, calibration and commissioning are
    # applied in place: the other pairs' detection goes on. Only a new broker connection or a
    # changed signing key reloads the entry (see SemRuntime.async_apply_update).
    if entry.state is ConfigEntryState.LOADED and await entry.runtime_data.async_apply_update(
        entry
    ):
        return
    hass.config_entries.async_schedule_reload(entry.entry_id)


async def async_unload_entry(hass: HomeAssistant, entry: SemConfigEntry) -> bool:
    """Unload the platforms; the connection stops through async_on_unload."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: SemConfigEntry) -> None:
    """A deleted broker entry takes its repair issues and stored state along."""
    await StateStore(hass, entry.entry_id).async_remove()
    async_clear_entry(hass, entry.entry_id)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: SemConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow deleting a node's device once the node is unused, gone or silent; a pair goes
    with its subentry."""
    prefix = f"{entry.entry_id}_node_"
    for domain, identifier in device.identifiers:
        if domain == DOMAIN and identifier.startswith(prefix):
            node = identifier.removeprefix(prefix)
            # Not loaded: nothing says the node is alive; a still-used node comes back on setup.
            if entry.state is not ConfigEntryState.LOADED or entry.runtime_data.node_removable(
                node
            ):
                # Every issue of the node goes with it: removed, silent, another protocol.
                async_clear(hass, entry.entry_id, node)
                return True
    return False
