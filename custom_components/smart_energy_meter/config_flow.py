"""Config flow: a broker, the meter pairs found on it, and the pairs added later."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any, Final, override

import probatio
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentry,
    ConfigSubentryData,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
from homeassistant.helpers.typing import DiscoveryInfoType

from .broker import BrokerError, BrokerSettings, async_check_connection, async_collect_announces
from .const import (
    CONF_CA_CERT,
    CONF_DEBOUNCE,
    CONF_HOST,
    CONF_HOUSE,
    CONF_HYSTERESIS,
    CONF_INTERVAL,
    CONF_LINE,
    CONF_MAX_SKEW,
    CONF_MIN_LOAD,
    CONF_NAME,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_PREFIX,
    CONF_RELAY,
    CONF_THRESHOLD,
    CONF_TLS,
    CONF_USERNAME,
    DEFAULT_PAPER_INTERVAL,
    DEFAULT_PORT,
    DETECTION_DEFAULTS,
    DOMAIN,
    SUBENTRY_PAIR,
)
from .pairing import (
    PairConfig,
    PaperSource,
    ProposedPair,
    ProtocolSource,
    pair_label,
    propose_pairs,
)
from .semcore.detection import DetectionOptions
from .semcore.protocol import DEFAULT_PREFIX, Announce, valid_prefix, valid_topic_base

_LOGGER = logging.getLogger(__name__)

# How long the discovery step listens for retained announces.
DISCOVERY_SECONDS: Final = 5.0

CONF_PAIRS: Final = "pairs"
CONF_LINE_BASE: Final = "line_topic_base"
CONF_HOUSE_BASE: Final = "house_topic_base"
MQTT_DOMAIN: Final = "mqtt"

_TEXT = TextSelector()
_BOX = NumberSelectorMode.BOX

BROKER_SCHEMA = probatio.Schema(
    {
        probatio.Required(CONF_HOST): _TEXT,
        probatio.Required(CONF_PORT, default=DEFAULT_PORT): NumberSelector(
            NumberSelectorConfig(min=1, max=65535, step=1, mode=_BOX)
        ),
        probatio.Optional(CONF_USERNAME): _TEXT,
        probatio.Optional(CONF_PASSWORD): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
        probatio.Required(CONF_TLS, default=False): BooleanSelector(),
        probatio.Optional(CONF_CA_CERT): TextSelector(TextSelectorConfig(multiline=True)),
        probatio.Required(CONF_PREFIX, default=DEFAULT_PREFIX): _TEXT,
    }
)


def _number(low: float, high: float, step: float, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(min=low, max=high, step=step, unit_of_measurement=unit, mode=_BOX)
    )


OPTIONS_FIELDS: Final = {
    CONF_THRESHOLD: _number(0.1, 100, 0.01, "%"),
    CONF_DEBOUNCE: _number(0, 3600, 1, "s"),
    CONF_HYSTERESIS: _number(0, 50, 0.01, "%"),
    CONF_MIN_LOAD: _number(0.1, 25000, 0.1, "W"),
    CONF_MAX_SKEW: _number(0, 60, 0.1, "s"),
}


def _options_schema(extra: Mapping[Any, Any] | None = None) -> probatio.Schema:
    return probatio.Schema(
        {
            **(extra or {}),
            **{probatio.Required(key): field for key, field in OPTIONS_FIELDS.items()},
        }
    )


def _options_errors(user_input: Mapping[str, Any]) -> dict[str, str]:
    """Return form errors for detection options (ranges are checked by the selectors)."""
    try:
        DetectionOptions(**{key: float(user_input[key]) for key in DETECTION_DEFAULTS})
    except ValueError:
        return {CONF_HYSTERESIS: "hysteresis_too_large"}
    return {}


def _entry_defaults(entry: ConfigEntry) -> dict[str, float]:
    return {key: float(entry.options.get(key, value)) for key, value in DETECTION_DEFAULTS.items()}


def _pairs_of(entry: ConfigEntry) -> list[PairConfig]:
    return [
        PairConfig.from_data(subentry.data)
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_PAIR
    ]


def _used_meters(entry: ConfigEntry) -> set[str]:
    return {key for config in _pairs_of(entry) for key in config.meter_keys}


def _describe_nodes(announces: Mapping[str, Announce]) -> str:
    lines = []
    for announce in announces.values():
        meters = ", ".join(f"{m.id} ({m.role.value}, {m.pair})" for m in announce.meters)
        firmware = f", {announce.firmware}" if announce.firmware else ""
        lines.append(f"- **{announce.name}** (`{announce.node}`{firmware}): {meters}")
    return "\n".join(lines)


class SmartEnergyMeterConfigFlow(ConfigFlow, domain=DOMAIN):
    """A broker connection with one subentry per meter pair."""

    VERSION = 1

    def __init__(self) -> None:
        """Start with nothing known."""
        self._settings: BrokerSettings | None = None
        self._discovery: asyncio.Task[dict[str, Announce]] | None = None
        self._announces: dict[str, Announce] = {}
        self._proposals: list[ProposedPair] = []
        self._new_pair: tuple[str, PairConfig] | None = None

    @staticmethod
    @callback
    @override
    def async_get_options_flow(config_entry: ConfigEntry) -> OptionsFlow:
        """Entry-wide detection defaults."""
        return DetectionOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """A meter pair per house."""
        return {SUBENTRY_PAIR: MeterPairSubentryFlow}

    # --- broker -------------------------------------------------------------------------------

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the broker and test the connection."""
        errors: dict[str, str] = {}
        if user_input is not None:
            settings = BrokerSettings.from_data(
                {**user_input, CONF_PORT: int(user_input[CONF_PORT])}
            )
            if not valid_prefix(settings.prefix):
                errors[CONF_PREFIX] = "invalid_prefix"
            else:
                await self.async_set_unique_id(settings.unique_id)
                self._abort_if_unique_id_configured()
                try:
                    await async_check_connection(self.hass, settings)
                except BrokerError as err:
                    _LOGGER.debug("Connection test to %s failed: %s", settings.address, err)
                    errors[CONF_CA_CERT if err.key == "invalid_ca" else "base"] = err.key
                else:
                    self._settings = settings
                    return await self.async_step_discover()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                BROKER_SCHEMA, user_input or self._mqtt_defaults()
            ),
            errors=errors,
        )

    def _mqtt_defaults(self) -> dict[str, Any]:
        """Home Assistant's own MQTT broker, when that integration is set up."""
        for entry in self.hass.config_entries.async_entries(MQTT_DOMAIN):
            data = entry.data
            return {
                key: value
                for key, value in (
                    (CONF_HOST, data.get("broker")),
                    (CONF_PORT, data.get(CONF_PORT)),
                    (CONF_USERNAME, data.get(CONF_USERNAME)),
                    (CONF_PASSWORD, data.get(CONF_PASSWORD)),
                )
                if value is not None
            }
        return {}

    # --- discovery of nodes -------------------------------------------------------------------

    async def async_step_discover(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Listen for retained announces for a few seconds."""
        if self._discovery is None:
            self._discovery = self.hass.async_create_task(self._async_discover())
        if not self._discovery.done():
            return self.async_show_progress(
                step_id="discover",
                progress_action="discover",
                progress_task=self._discovery,
                description_placeholders={"seconds": f"{DISCOVERY_SECONDS:g}"},
            )
        self._announces = self._discovery.result()
        self._proposals = propose_pairs(self._announces.values())
        return self.async_show_progress_done(
            next_step_id="pairs" if self._announces else "no_nodes"
        )

    async def _async_discover(self) -> dict[str, Announce]:
        assert self._settings is not None
        try:
            return await async_collect_announces(self.hass, self._settings, DISCOVERY_SECONDS)
        except BrokerError as err:
            _LOGGER.warning("Listening for nodes on %s failed: %s", self._settings.address, err)
            return {}

    async def async_step_pairs(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Show the nodes found and let the user accept the proposed pairs."""
        if user_input is not None:
            return self._create_entry(set(user_input.get(CONF_PAIRS, [])))
        schema: dict[Any, Any] = {}
        if self._proposals:
            options = [
                SelectOptionDict(
                    value=proposal.unique_id,
                    label=f"{proposal.config.name} ({proposal.node}: "
                    f"{proposal.config.line.key} → {proposal.config.house.key})",
                )
                for proposal in self._proposals
            ]
            schema[
                probatio.Optional(CONF_PAIRS, default=[p.unique_id for p in self._proposals])
            ] = SelectSelector(SelectSelectorConfig(options=options, multiple=True))
        return self.async_show_form(
            step_id="pairs",
            data_schema=probatio.Schema(schema),
            description_placeholders={
                "nodes": _describe_nodes(self._announces),
                "count": str(len(self._proposals)),
            },
        )

    async def async_step_no_nodes(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """No node answered: create the broker entry; pairs can be added later."""
        if user_input is not None:
            return self._create_entry(set())
        assert self._settings is not None
        return self.async_show_form(
            step_id="no_nodes", description_placeholders={"prefix": self._settings.prefix}
        )

    def _create_entry(self, chosen: set[str]) -> ConfigFlowResult:
        assert self._settings is not None
        subentries = [
            ConfigSubentryData(
                data=proposal.config.as_data(),
                subentry_type=SUBENTRY_PAIR,
                title=proposal.config.name,
                unique_id=proposal.unique_id,
            )
            for proposal in self._proposals
            if proposal.unique_id in chosen
        ]
        return self.async_create_entry(
            title=f"{self._settings.prefix} @ {self._settings.address}",
            data=self._settings.as_data(),
            subentries=subentries,
        )

    # --- a new pair announced after setup -----------------------------------------------------

    @override
    async def async_step_integration_discovery(
        self, discovery_info: DiscoveryInfoType
    ) -> ConfigFlowResult:
        """A node announced a pair label that no pair of the entry uses yet."""
        entry_id: str = discovery_info["entry_id"]
        config = PairConfig.from_data(discovery_info)
        assert isinstance(config.line, ProtocolSource)
        await self.async_set_unique_id(f"{entry_id}:{config.line.node}/{config.pair}")
        self._abort_if_unique_id_configured()
        if reason := self._new_pair_conflict(entry_id, config):
            return self.async_abort(reason=reason)
        self._new_pair = (entry_id, config)
        self.context["title_placeholders"] = {"name": config.name}
        return await self.async_step_confirm_pair()

    async def async_step_confirm_pair(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """New meter pair found: add it to the broker's entry?"""
        assert self._new_pair is not None
        entry_id, config = self._new_pair
        if user_input is None:
            self._set_confirm_only()
            return self.async_show_form(
                step_id="confirm_pair",
                description_placeholders={
                    "name": config.name,
                    "line": config.line.key,
                    "house": config.house.key,
                },
            )
        if reason := self._new_pair_conflict(entry_id, config):
            return self.async_abort(reason=reason)
        entry = self.hass.config_entries.async_get_known_entry(entry_id)
        assert isinstance(config.line, ProtocolSource)
        self.hass.config_entries.async_add_subentry(
            entry,
            ConfigSubentry(
                data=MappingProxyType(config.as_data()),
                subentry_type=SUBENTRY_PAIR,
                title=config.name,
                unique_id=f"{config.line.node}/{config.pair}",
            ),
        )
        return self.async_abort(reason="pair_added")

    def _new_pair_conflict(self, entry_id: str, config: PairConfig) -> str | None:
        entry = self.hass.config_entries.async_get_entry(entry_id)
        if entry is None:
            return "entry_not_found"
        if config.meter_keys & _used_meters(entry):
            return "already_configured"
        return None


class DetectionOptionsFlow(OptionsFlow):
    """Entry-wide defaults of the detection options; each pair may override them."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form with the five options."""
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _options_errors(user_input)
            if not errors:
                return self.async_create_entry(
                    data={key: float(user_input[key]) for key in DETECTION_DEFAULTS}
                )
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema(), user_input or _entry_defaults(self.config_entry)
            ),
            errors=errors,
        )


class MeterPairSubentryFlow(ConfigSubentryFlow):
    """Add a meter pair (a house), or change a pair's name and detection options."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Discovered meters, or a paper-topics device by hand."""
        return self.async_show_menu(step_id="user", menu_options=["pick", "manual"])

    async def async_step_pick(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Pick the line and house meters among the announced meters no pair uses."""
        entry = self._get_entry()
        if entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="entry_not_loaded")
        fleet = entry.runtime_data.fleet
        used = _used_meters(entry)
        used_relays = {config.relay for config in _pairs_of(entry) if config.relay}
        meters: list[SelectOptionDict] = []
        relays: list[SelectOptionDict] = []
        for state in fleet.nodes.values():
            if state.announce is None or state.gone:
                continue
            announce = state.announce
            for meter in sorted(announce.meters, key=lambda m: (m.role.value, m.id)):
                source = ProtocolSource(announce.node, meter.id)
                if source.key not in used:
                    label = f"{announce.name}: {meter.id} ({meter.role.value}, {meter.pair})"
                    meters.append(SelectOptionDict(value=source.key, label=label))
            for info in announce.relays:
                if (announce.node, info.id) not in used_relays:
                    label = f"{announce.name}: {info.id} ({info.pair})"
                    relays.append(SelectOptionDict(value=f"{announce.node}/{info.id}", label=label))
        if len(meters) < 2:
            return self.async_abort(reason="no_unpaired_meters")
        errors: dict[str, str] = {}
        if user_input is not None:
            if user_input[CONF_LINE] == user_input[CONF_HOUSE]:
                errors["base"] = "same_meter"
            else:
                relay: tuple[str, str] | None = None
                if relay_key := user_input.get(CONF_RELAY):
                    relay_node, relay_id = relay_key.split("/", 1)
                    relay = (relay_node, relay_id)
                config = PairConfig(
                    pair=pair_label(user_input[CONF_NAME]),
                    name=user_input[CONF_NAME],
                    line=ProtocolSource(*user_input[CONF_LINE].split("/", 1)),
                    house=ProtocolSource(*user_input[CONF_HOUSE].split("/", 1)),
                    relay=relay,
                )
                return self.async_create_entry(
                    title=config.name,
                    data=config.as_data(),
                    unique_id=f"{config.line.key}+{config.house.key}",
                )
        dropdown = SelectSelectorMode.DROPDOWN
        schema: dict[Any, Any] = {
            probatio.Required(CONF_NAME): _TEXT,
            probatio.Required(CONF_LINE): SelectSelector(
                SelectSelectorConfig(options=meters, mode=dropdown)
            ),
            probatio.Required(CONF_HOUSE): SelectSelector(
                SelectSelectorConfig(options=meters, mode=dropdown)
            ),
        }
        if relays:
            schema[probatio.Optional(CONF_RELAY)] = SelectSelector(
                SelectSelectorConfig(options=relays, mode=dropdown)
            )
        return self.async_show_form(
            step_id="pick",
            data_schema=self.add_suggested_values_to_schema(probatio.Schema(schema), user_input),
            errors=errors,
        )

    async def async_step_manual(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """A device that publishes only the paper's vac/iac/pac/energy/pf topics."""
        errors: dict[str, str] = {}
        if user_input is not None:
            used = _used_meters(self._get_entry())
            for field in (CONF_LINE_BASE, CONF_HOUSE_BASE):
                if not valid_topic_base(user_input[field]):
                    errors[field] = "invalid_topic_base"
                elif PaperSource(user_input[field]).key in used:
                    errors[field] = "meter_in_use"
            if not errors and user_input[CONF_LINE_BASE] == user_input[CONF_HOUSE_BASE]:
                errors["base"] = "same_meter"
            if not errors:
                config = PairConfig(
                    pair=pair_label(user_input[CONF_NAME]),
                    name=user_input[CONF_NAME],
                    line=PaperSource(user_input[CONF_LINE_BASE]),
                    house=PaperSource(user_input[CONF_HOUSE_BASE]),
                    interval=float(user_input[CONF_INTERVAL]),
                )
                return self.async_create_entry(
                    title=config.name,
                    data=config.as_data(),
                    unique_id=f"{config.line.key}+{config.house.key}",
                )
        schema = probatio.Schema(
            {
                probatio.Required(CONF_NAME): _TEXT,
                probatio.Required(CONF_LINE_BASE): _TEXT,
                probatio.Required(CONF_HOUSE_BASE): _TEXT,
                probatio.Required(CONF_INTERVAL, default=DEFAULT_PAPER_INTERVAL): _number(
                    0.2, 3600, 0.1, "s"
                ),
            }
        )
        return self.async_show_form(
            step_id="manual",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Rename the pair or override the entry-wide detection options for it."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        config = PairConfig.from_data(subentry.data)
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _options_errors(user_input)
            if not errors:
                defaults = _entry_defaults(entry)
                # Only values that differ from the entry's defaults stick to the pair.
                overrides = {
                    key: float(user_input[key])
                    for key in DETECTION_DEFAULTS
                    if float(user_input[key]) != defaults[key]
                }
                config = replace(config, name=user_input[CONF_NAME], overrides=overrides)
                return self.async_update_and_abort(
                    entry, subentry, title=config.name, data=config.as_data()
                )
        options = config.detection_options(entry.options)
        current = {
            CONF_NAME: config.name,
            CONF_THRESHOLD: options.threshold,
            CONF_DEBOUNCE: options.debounce,
            CONF_HYSTERESIS: options.hysteresis,
            CONF_MIN_LOAD: options.min_load,
            CONF_MAX_SKEW: options.max_skew,
        }
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema({probatio.Required(CONF_NAME): _TEXT}), user_input or current
            ),
            errors=errors,
        )
