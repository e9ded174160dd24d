"""The signing key of a node, as a config subentry: entered once, never shown again.

The same text goes into the node's `config.json` as `"key"` (at least 16 bytes). Once a node has
a key, only its signed readings are believed (see signed.py).
"""

from __future__ import annotations

from typing import Any

import probatio
from homeassistant.config_entries import ConfigEntryState, ConfigSubentryFlow, SubentryFlowResult
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)

from .const import CONF_KEY, CONF_NODE, SUBENTRY_NODE_KEY
from .semcore.protocol import valid_id
from .semcore.signing import MIN_KEY_BYTES

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
