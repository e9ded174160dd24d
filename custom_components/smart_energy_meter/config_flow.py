"""Config flow: a broker, the meter pairs found on it, and the pairs added later; the two
subentry flows (a meter pair, a node's signing key) and the options flow."""

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
from homeassistant.const import (
    CONF_HOST,
    CONF_NAME,
    CONF_PASSWORD,
    CONF_PORT,
    CONF_USERNAME,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import section
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
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from homeassistant.helpers.typing import DiscoveryInfoType

from . import SemConfigEntry
from .broker import (
    BrokerError,
    BrokerSettings,
    async_check_connection,
    async_collect_announces,
    error_placeholders,
)
from .const import (
    CONF_CA_CERT,
    CONF_CABLE_CROSS_SECTION,
    CONF_CABLE_LENGTH,
    CONF_CABLE_MATERIAL,
    CONF_CABLE_TEMPERATURE,
    CONF_DEBOUNCE,
    CONF_DEBOUNCE_MODE,
    CONF_DETECTION,
    CONF_HOUSE,
    CONF_HYSTERESIS,
    CONF_INTERVAL,
    CONF_KEY,
    CONF_LINE,
    CONF_MAX_SKEW,
    CONF_MIN_LOAD,
    CONF_NODE,
    CONF_PREFIX,
    CONF_RELAY,
    CONF_RESISTANCE,
    CONF_STATE_WRITES,
    CONF_THRESHOLD,
    CONF_THRESHOLD_MODE,
    CONF_TLS,
    DEFAULT_PORT,
    DEFAULT_VALUE_TOPICS_INTERVAL,
    DETECTION_BALANCE,
    DETECTION_DEFAULTS,
    DETECTION_INSTANT_RULE,
    DOMAIN,
    SUBENTRY_NODE_KEY,
    SUBENTRY_PAIR,
)
from .pair_config import (
    PairConfig,
    ProposedPair,
    ProtocolSource,
    ValueTopicsSource,
    option_values,
    pair_label,
    pair_names,
    propose_pairs,
)
from .semcore.cable_loss import Conductor
from .semcore.debounce import DebounceMode
from .semcore.instant_rule import DetectionOptions
from .semcore.protocol import (
    DEFAULT_PREFIX,
    Announce,
    decode,
    valid_id,
    valid_prefix,
    valid_topic_base,
)
from .semcore.signing import MIN_KEY_BYTES
from .semcore.state_writes import Policy
from .semcore.uncertainty import ThresholdMode

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


REAUTH_SCHEMA = probatio.Schema(
    {
        probatio.Optional(CONF_USERNAME): _TEXT,
        probatio.Optional(CONF_PASSWORD): TextSelector(
            TextSelectorConfig(type=TextSelectorType.PASSWORD)
        ),
    }
)

# Stands for the stored password in the reconfigure form: the password never goes to the browser.
PASSWORD_UNCHANGED: Final = "\u2022\u2022\u2022\u2022\u2022\u2022\u2022\u2022"


def _number(low: float, high: float, step: float, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(min=low, max=high, step=step, unit_of_measurement=unit, mode=_BOX)
    )


def _select(key: str, options: list[str]) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(options=options, translation_key=key, mode=SelectSelectorMode.DROPDOWN)
    )


# The detection options, in the form's order: the choices on top, then two sections.
SECTION_CABLE: Final = "cable"
SECTION_INSTANT_RULE: Final = "paper_rule"  # the stored and translated key
DETECTION_FIELDS: Final = {
    CONF_DETECTION: _select(CONF_DETECTION, [DETECTION_BALANCE, DETECTION_INSTANT_RULE]),
    CONF_THRESHOLD_MODE: _select(CONF_THRESHOLD_MODE, [mode.value for mode in ThresholdMode]),
    CONF_THRESHOLD: _number(0.1, 100, 0.01, "%"),
    CONF_DEBOUNCE_MODE: _select(CONF_DEBOUNCE_MODE, [mode.value for mode in DebounceMode]),
}
SECTION_FIELDS: Final[dict[str, dict[str, NumberSelector | SelectSelector]]] = {
    SECTION_CABLE: {
        CONF_CABLE_LENGTH: _number(0, 5000, 0.1, "m"),
        CONF_CABLE_CROSS_SECTION: _number(0.5, 400, 0.5, "mm²"),
        CONF_CABLE_MATERIAL: _select(CONF_CABLE_MATERIAL, [c.value for c in Conductor]),
        CONF_CABLE_TEMPERATURE: _number(-40, 120, 1, "°C"),
    },
    SECTION_INSTANT_RULE: {
        CONF_DEBOUNCE: _number(0, 3600, 1, "s"),
        CONF_HYSTERESIS: _number(0, 50, 0.01, "%"),
        CONF_MIN_LOAD: _number(0.1, 25000, 0.1, "W"),
        CONF_MAX_SKEW: _number(0, 60, 0.1, "s"),
    },
}
# Milliohms matter here (a short copper cable has a few): any precision.
RESISTANCE_FIELD: Final = NumberSelector(
    NumberSelectorConfig(min=0, max=10, step="any", unit_of_measurement="Ω", mode=_BOX)
)


# The entry's options also say what the recorder keeps; a pair's do not.
SECTION_RECORDING: Final = "recording"
STATE_WRITES_FIELD: Final = _select(CONF_STATE_WRITES, [policy.value for policy in Policy])


def _options_schema(
    extra: Mapping[Any, Any] | None = None, *, resistance: bool = False, recording: bool = False
) -> probatio.Schema:
    """The detection options; a pair's form also has its name and a fitted resistance, the
    entry's the recorder's write policy."""
    schema: dict[Any, Any] = {
        **(extra or {}),
        **{probatio.Required(key): field for key, field in DETECTION_FIELDS.items()},
    }
    for name, fields in SECTION_FIELDS.items():
        inner: dict[Any, Any] = {probatio.Required(key): field for key, field in fields.items()}
        if resistance and name == SECTION_CABLE:
            inner[probatio.Optional(CONF_RESISTANCE)] = RESISTANCE_FIELD
        schema[probatio.Required(name)] = section(
            probatio.Schema(inner), {"collapsed": name == SECTION_INSTANT_RULE}
        )
    if recording:
        schema[probatio.Required(SECTION_RECORDING)] = section(
            probatio.Schema({probatio.Required(CONF_STATE_WRITES): STATE_WRITES_FIELD}),
            {"collapsed": True},
        )
    return probatio.Schema(schema)


def _flatten(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values with the sections' fields lifted to the top (the stored form)."""
    flat = {key: value for key, value in user_input.items() if key not in SECTION_FIELDS}
    for name in SECTION_FIELDS:
        flat.update(user_input.get(name, {}))
    return flat


def _nest(values: Mapping[str, Any]) -> dict[str, Any]:
    """Stored values arranged like the form, for its suggested values."""
    nested: dict[str, Any] = dict(values)
    for name, fields in SECTION_FIELDS.items():
        keys = (*fields, CONF_RESISTANCE) if name == SECTION_CABLE else tuple(fields)
        nested[name] = {key: nested.pop(key) for key in keys if key in nested}
    return nested


def _options_errors(values: Mapping[str, Any]) -> dict[str, str]:
    """Return form errors for detection options (ranges are checked by the selectors)."""
    try:
        DetectionOptions(**{key: float(values[key]) for key in DETECTION_DEFAULTS})
    except ValueError:
        return {SECTION_INSTANT_RULE: "hysteresis_too_large"}
    return {}


def _entry_defaults(entry: ConfigEntry) -> dict[str, float | str]:
    return option_values(entry.options)


def _pairs_of(entry: ConfigEntry) -> list[PairConfig]:
    return [
        PairConfig.from_data(subentry.data)
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_PAIR
    ]


def _used_meters(entry: ConfigEntry) -> set[str]:
    return {key for config in _pairs_of(entry) for key in config.meter_keys}


def _name_errors(name: str, taken: set[str]) -> dict[str, str]:
    """A pair's name is what the user tells houses apart by: never empty, never another's."""
    if not name:
        return {CONF_NAME: "name_empty"}
    if name.casefold() in taken:
        return {CONF_NAME: "name_in_use"}
    return {}


def _distinct_name(config: PairConfig, node: str, taken: set[str]) -> PairConfig:
    """A discovered pair, named apart from the `taken` names (its node's id added), which
    then include it."""
    name = config.name
    suffix = 1
    while name.casefold() in taken:
        suffix += 1
        name = f"{config.name} ({node})" if suffix == 2 else f"{config.name} ({node} {suffix})"
    taken.add(name.casefold())
    return replace(config, name=name)


def _title(settings: BrokerSettings) -> str:
    """The entry title generated for a broker."""
    return f"{settings.prefix} @ {settings.address}"


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
    def async_get_options_flow(config_entry: SemConfigEntry) -> OptionsFlow:
        """Entry-wide detection defaults."""
        return DetectionOptionsFlow()

    @classmethod
    @callback
    @override
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """A meter pair per house; a signing key per node that signs its readings."""
        return {SUBENTRY_PAIR: MeterPairSubentryFlow, SUBENTRY_NODE_KEY: NodeKeySubentryFlow}

    # --- broker -------------------------------------------------------------------------------

    @override
    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Ask for the broker and test the connection."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            settings = BrokerSettings.from_data(
                {**user_input, CONF_PORT: int(user_input[CONF_PORT])}
            )
            if not valid_prefix(settings.prefix):
                errors[CONF_PREFIX] = "invalid_prefix"
            else:
                # A flow left open (a closed browser tab) never blocks a new one for the same
                # broker: whichever finishes first wins, and Home Assistant aborts the other.
                await self.async_set_unique_id(settings.unique_id, raise_on_progress=False)
                self._abort_if_unique_id_configured()
                errors, placeholders = await _async_connection_errors(self.hass, settings)
                if not errors:
                    self._settings = settings
                    return await self.async_step_discover()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                BROKER_SCHEMA, user_input or self._mqtt_defaults()
            ),
            errors=errors,
            description_placeholders=placeholders,
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
        taken: set[str] = set()
        subentries: list[ConfigSubentryData] = []
        for proposal in self._proposals:
            if proposal.unique_id in chosen:
                config = _distinct_name(proposal.config, proposal.node, taken)
                subentries.append(
                    ConfigSubentryData(
                        data=config.as_data(),
                        subentry_type=SUBENTRY_PAIR,
                        title=config.name,
                        unique_id=proposal.unique_id,
                    )
                )
        return self.async_create_entry(
            title=_title(self._settings),
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
        node = config.line.node
        config = _distinct_name(config, node, pair_names(entry))
        self.hass.config_entries.async_add_subentry(
            entry,
            ConfigSubentry(
                data=MappingProxyType(config.as_data()),
                subentry_type=SUBENTRY_PAIR,
                title=config.name,
                unique_id=f"{node}/{config.pair}",
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

    # --- discovery through Home Assistant's MQTT integration ----------------------------------

    @override
    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> ConfigFlowResult:
        """A node announced itself under the default prefix on Home Assistant's broker."""
        payload = discovery_info.payload
        raw = payload.encode() if isinstance(payload, str) else bytes(payload)
        announce = decode(DEFAULT_PREFIX, discovery_info.topic, raw, retained=True)
        defaults = self._mqtt_defaults()
        if not isinstance(announce, Announce) or CONF_HOST not in defaults:
            return self.async_abort(reason="invalid_discovery_info")
        port = int(defaults.get(CONF_PORT, DEFAULT_PORT))
        await self.async_set_unique_id(f"{defaults[CONF_HOST]}:{port}/{DEFAULT_PREFIX}")
        self._abort_if_unique_id_configured()
        self.context["title_placeholders"] = {"name": announce.name}
        # The broker form, filled in from Home Assistant's MQTT settings.
        return await self.async_step_user()

    # --- the broker of an existing entry ------------------------------------------------------

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change the broker: address, login, TLS or topic prefix; the meter pairs stay."""
        entry = self._get_reconfigure_entry()
        current = BrokerSettings.from_data(entry.data)
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            data = {**user_input, CONF_PORT: int(user_input[CONF_PORT])}
            if data.get(CONF_PASSWORD) == PASSWORD_UNCHANGED:
                data[CONF_PASSWORD] = current.password
            settings = BrokerSettings.from_data(data)
            errors, placeholders = await self._async_broker_errors(settings, entry)
            if not errors:
                # A title the user chose stays; the generated one follows the broker.
                title = _title(settings) if entry.title == _title(current) else entry.title
                return self._async_update_entry(
                    entry, unique_id=settings.unique_id, title=title, data=settings.as_data()
                )
        suggested = {
            key: value
            for key, value in current.as_data().items()
            if value is not None and key != CONF_PASSWORD
        }
        if current.password:
            suggested[CONF_PASSWORD] = PASSWORD_UNCHANGED
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(BROKER_SCHEMA, user_input or suggested),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The broker refused the stored username or password."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for the broker login again and test it."""
        entry = self._get_reauth_entry()
        current = BrokerSettings.from_data(entry.data)
        errors: dict[str, str] = {}
        placeholders = {"address": current.address}
        if user_input is not None:
            settings = replace(
                current,
                username=user_input.get(CONF_USERNAME) or None,
                password=user_input.get(CONF_PASSWORD) or None,
            )
            errors, placeholders = await _async_connection_errors(
                self.hass, settings, ca_field=False
            )
            if not errors:
                return self._async_update_entry(
                    entry,
                    data_updates={
                        CONF_USERNAME: settings.username,
                        CONF_PASSWORD: settings.password,
                    },
                )
        username = (user_input or {}).get(CONF_USERNAME, current.username)
        return self.async_show_form(
            step_id="reauth_confirm",
            data_schema=self.add_suggested_values_to_schema(
                REAUTH_SCHEMA, {CONF_USERNAME: username} if username else {}
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def _async_broker_errors(
        self, settings: BrokerSettings, entry: ConfigEntry
    ) -> tuple[dict[str, str], dict[str, str]]:
        """Form errors of changed broker settings (empty when they work) and what their texts
        name."""
        if not valid_prefix(settings.prefix):
            return {CONF_PREFIX: "invalid_prefix"}, {}
        # Broker + prefix identify an entry: another entry must not have them.
        other = self.hass.config_entries.async_entry_for_domain_unique_id(
            DOMAIN, settings.unique_id
        )
        if other is not None and other.entry_id != entry.entry_id:
            return {"base": "already_configured"}, {}
        return await _async_connection_errors(self.hass, settings)

    def _async_update_entry(self, entry: ConfigEntry, **changes: Any) -> ConfigFlowResult:
        """Store the change; a loaded entry reloads through its update listener."""
        if entry.state is ConfigEntryState.LOADED:
            return self.async_update_and_abort(entry, **changes)
        return self.async_update_reload_and_abort(entry, **changes)


async def _async_connection_errors(
    hass: HomeAssistant, settings: BrokerSettings, *, ca_field: bool = True
) -> tuple[dict[str, str], dict[str, str]]:
    """Connect once with these settings: the form errors (empty when it works) and the
    placeholders of their texts (host, port, what happened). A bad CA certificate is the CA
    field's error where the form has one; everything else the form's."""
    try:
        await async_check_connection(hass, settings)
    except BrokerError as err:
        _LOGGER.debug("Connection test to %s failed: %s: %s", settings.address, err.key, err)
        field = CONF_CA_CERT if ca_field and err.key == "invalid_ca" else "base"
        return {field: err.key}, error_placeholders(settings, err)
    return {}, {}


class DetectionOptionsFlow(OptionsFlow):
    """Entry-wide defaults of the detection options; each pair may override them."""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """One form with every detection option."""
        errors: dict[str, str] = {}
        if user_input is not None:
            recording = user_input.get(SECTION_RECORDING, {})
            values = _flatten({k: v for k, v in user_input.items() if k != SECTION_RECORDING})
            errors = _options_errors(values)
            if not errors:
                policy = recording.get(CONF_STATE_WRITES, Policy.SIGNIFICANT)
                return self.async_create_entry(
                    data={**option_values(values), CONF_STATE_WRITES: str(policy)}
                )
        suggested = {
            **_nest(_entry_defaults(self.config_entry)),
            SECTION_RECORDING: {
                CONF_STATE_WRITES: self.config_entry.options.get(
                    CONF_STATE_WRITES, Policy.SIGNIFICANT.value
                )
            },
        }
        return self.async_show_form(
            step_id="init",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema(recording=True), user_input or suggested
            ),
            errors=errors,
        )


class MeterPairSubentryFlow(ConfigSubentryFlow):
    """Add a meter pair (a house), or change a pair's name and detection options."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """Discovered meters, or a value-topics device by hand."""
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
            name = user_input[CONF_NAME].strip()
            if user_input[CONF_LINE] == user_input[CONF_HOUSE]:
                errors["base"] = "same_meter"
            elif not (errors := _name_errors(name, pair_names(entry))):
                relay: tuple[str, str] | None = None
                if relay_key := user_input.get(CONF_RELAY):
                    relay_node, relay_id = relay_key.split("/", 1)
                    relay = (relay_node, relay_id)
                config = PairConfig(
                    pair=pair_label(name),
                    name=name,
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
        """A value-topics device: only vac/iac/pac/energy/pf topics, as the paper's."""
        errors: dict[str, str] = {}
        if user_input is not None:
            entry = self._get_entry()
            name = user_input[CONF_NAME].strip()
            errors = _name_errors(name, pair_names(entry))
            used = _used_meters(entry)
            for field in (CONF_LINE_BASE, CONF_HOUSE_BASE):
                if not valid_topic_base(user_input[field]):
                    errors[field] = "invalid_topic_base"
                elif ValueTopicsSource(user_input[field]).key in used:
                    errors[field] = "meter_in_use"
            if not errors and user_input[CONF_LINE_BASE] == user_input[CONF_HOUSE_BASE]:
                errors["base"] = "same_meter"
            if not errors:
                config = PairConfig(
                    pair=pair_label(name),
                    name=name,
                    line=ValueTopicsSource(user_input[CONF_LINE_BASE]),
                    house=ValueTopicsSource(user_input[CONF_HOUSE_BASE]),
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
                probatio.Required(CONF_INTERVAL, default=DEFAULT_VALUE_TOPICS_INTERVAL): _number(
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
        """Rename the pair, override the entry-wide detection options, set its resistance."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        # The title is the name: Home Assistant's own Rename changes only the title.
        config = replace(PairConfig.from_data(subentry.data), name=subentry.title)
        errors: dict[str, str] = {}
        if user_input is not None:
            values = _flatten(user_input)
            name = values[CONF_NAME].strip()
            taken = pair_names(entry, besides=subentry.subentry_id)
            errors = _name_errors(name, taken) or _options_errors(values)
            if not errors:
                defaults = _entry_defaults(entry)
                chosen = option_values(values)
                # Only values that differ from the entry's defaults stick to the pair.
                overrides = {key: value for key, value in chosen.items() if value != defaults[key]}
                resistance = values.get(CONF_RESISTANCE)
                config = replace(
                    config,
                    name=name,
                    overrides=overrides,
                    tuning=replace(
                        config.tuning,
                        resistance_ohm=None if resistance is None else float(resistance),
                    ),
                )
                return self.async_update_and_abort(
                    entry, subentry, title=config.name, data=config.as_data()
                )
        current: dict[str, Any] = {CONF_NAME: config.name, **config.options(entry.options)}
        if config.tuning.resistance_ohm is not None:
            current[CONF_RESISTANCE] = config.tuning.resistance_ohm
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self.add_suggested_values_to_schema(
                _options_schema({probatio.Required(CONF_NAME): _TEXT}, resistance=True),
                user_input or _nest(current),
            ),
            errors=errors,
        )


# A node's signing key: the same text as "key" in the node's config.json (at least 16 bytes).
# Entered once and never shown again; once a node has one, only its signed readings count.
_KEY_FIELD = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def _key_error(key: str) -> dict[str, str]:
    return {} if len(key.encode()) >= MIN_KEY_BYTES else {CONF_KEY: "key_too_short"}


class NodeKeySubentryFlow(ConfigSubentryFlow):
    """Add a node's signing key, or replace it."""

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        """The node (announced ones are offered) and its key."""
        entry = self._get_entry()
        with_key = {
            subentry.data[CONF_NODE]
            for subentry in entry.subentries.values()
            if subentry.subentry_type == SUBENTRY_NODE_KEY
        }
        errors: dict[str, str] = {}
        if user_input is not None:
            node = str(user_input[CONF_NODE]).strip()
            if not valid_id(node):
                errors[CONF_NODE] = "invalid_node"
            elif node in with_key:
                errors[CONF_NODE] = "node_has_key"
            else:
                errors = _key_error(user_input[CONF_KEY])
            if not errors:
                return self.async_create_entry(
                    title=node,
                    data={CONF_NODE: node, CONF_KEY: user_input[CONF_KEY]},
                    unique_id=node,
                )
        announced: list[str] = []
        if entry.state is ConfigEntryState.LOADED:
            announced = sorted(
                node
                for node, state in entry.runtime_data.fleet.nodes.items()
                if state.announce is not None and node not in with_key
            )
        schema = probatio.Schema(
            {
                probatio.Required(CONF_NODE): SelectSelector(
                    SelectSelectorConfig(
                        options=announced, custom_value=True, mode=SelectSelectorMode.DROPDOWN
                    )
                ),
                probatio.Required(CONF_KEY): _KEY_FIELD,
            }
        )
        # The key typed in is never sent back to the form, not even after an error.
        suggested = {CONF_NODE: user_input[CONF_NODE]} if user_input else None
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(schema, suggested),
            errors=errors,
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        """Replace the key (the stored one is not shown)."""
        entry = self._get_entry()
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        if user_input is not None:
            errors = _key_error(user_input[CONF_KEY])
            if not errors:
                return self.async_update_and_abort(
                    entry, subentry, data={**subentry.data, CONF_KEY: user_input[CONF_KEY]}
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=probatio.Schema({probatio.Required(CONF_KEY): _KEY_FIELD}),
            errors=errors,
            description_placeholders={"node": subentry.data[CONF_NODE]},
        )
