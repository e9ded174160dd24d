"""Answers a Home Assistant config flow form the way a user accepting the proposals would.

The REST API describes each form as a serialized schema (a list of fields). The demo knows the
broker fields; for anything else it takes what the form proposes: a field's default, or every
option of a required multiple choice (accept all discovered pairs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class UnansweredField(ValueError):
    """A required field has neither an answer, a default, nor options to accept."""


def _option_values(field: Mapping[str, Any]) -> list[Any] | None:
    options: Any = field.get("options")
    selector = field.get("selector")
    if options is None and isinstance(selector, Mapping):
        select = selector.get("select")
        if isinstance(select, Mapping):
            options = select.get("options")
    if isinstance(options, Mapping):
        return list(options)
    if isinstance(options, Sequence) and not isinstance(options, str):
        values = []
        for option in options:
            if isinstance(option, Mapping):
                values.append(option.get("value"))
            elif isinstance(option, Sequence) and not isinstance(option, str):
                values.append(option[0])
            else:
                values.append(option)
        return values
    return None


def _is_multiple(field: Mapping[str, Any]) -> bool:
    if field.get("type") == "multi_select":
        return True
    selector = field.get("selector")
    if isinstance(selector, Mapping):
        for config in selector.values():
            if isinstance(config, Mapping) and config.get("multiple"):
                return True
    return False


def answer_form(schema: Sequence[Mapping[str, Any]], answers: Mapping[str, Any]) -> dict[str, Any]:
    """Build the user input for one form step."""
    data: dict[str, Any] = {}
    for field in schema:
        name = field["name"]
        if field.get("type") == "expandable":  # a collapsible section: its own sub-schema
            data[name] = answer_form(field.get("schema", []), answers.get(name, answers))
            continue
        if name in answers and answers[name] is not None:
            data[name] = answers[name]
        elif "default" in field:
            data[name] = field["default"]
        elif field.get("required"):
            options = _option_values(field)
            if options and _is_multiple(field):
                data[name] = options
            elif options and len(options) == 1:
                data[name] = options[0]
            else:
                raise UnansweredField(name)
        # An optional field without answer or default is left out, as the UI does.
    return data
