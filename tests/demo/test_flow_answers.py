"""How the demo answers config flow forms (pure: serialized schemas in, user input out)."""

from __future__ import annotations

import pytest

from demo.flow import UnansweredField, answer_form

BROKER = {"host": "127.0.0.1", "port": 1883, "tls": False, "prefix": "sem"}


def test_broker_fields_answered_and_optional_empty_fields_left_out() -> None:
    schema = [
        {"name": "host", "required": True, "type": "string"},
        {"name": "port", "required": True, "type": "integer", "default": 1883},
        {"name": "username", "required": False, "type": "string"},
        {"name": "password", "required": False, "type": "string"},
        {"name": "tls", "required": False, "type": "boolean", "default": True},
        {"name": "ca_cert", "required": False, "type": "string"},
        {"name": "prefix", "required": True, "type": "string", "default": "x"},
    ]
    answer = answer_form(schema, {**BROKER, "port": 18830})
    assert answer == {"host": "127.0.0.1", "port": 18830, "tls": False, "prefix": "sem"}


def test_defaults_taken_for_unknown_fields() -> None:
    schema = [{"name": "listen_seconds", "required": True, "default": 3}]
    assert answer_form(schema, BROKER) == {"listen_seconds": 3}


@pytest.mark.parametrize(
    "field",
    [
        {
            "name": "pairs",
            "required": True,
            "type": "multi_select",
            "options": {"a": "A", "b": "B"},
        },
        {
            "name": "pairs",
            "required": True,
            "selector": {
                "select": {
                    "multiple": True,
                    "options": [{"value": "a", "label": "A"}, {"value": "b", "label": "B"}],
                }
            },
        },
        {
            "name": "pairs",
            "required": True,
            "type": "multi_select",
            "options": [["a", "A"], ["b", "B"]],
        },
    ],
)
def test_every_proposed_pair_accepted(field: dict[str, object]) -> None:
    assert answer_form([field], BROKER) == {"pairs": ["a", "b"]}


def test_single_required_choice_taken() -> None:
    field = {"name": "node", "required": True, "type": "select", "options": [["n1", "Node 1"]]}
    assert answer_form([field], BROKER) == {"node": "n1"}


def test_sections_answered_inside() -> None:
    schema = [
        {"name": "host", "required": True},
        {
            "name": "advanced",
            "type": "expandable",
            "schema": [{"name": "prefix", "required": True}, {"name": "keepalive", "default": 30}],
        },
    ]
    assert answer_form(schema, BROKER) == {
        "host": "127.0.0.1",
        "advanced": {"prefix": "sem", "keepalive": 30},
    }


def test_required_field_nobody_can_answer_is_an_error() -> None:
    schema = [
        {"name": "pick", "required": True, "type": "select", "options": [["a", "A"], ["b", "B"]]}
    ]
    with pytest.raises(UnansweredField, match="pick"):
        answer_form(schema, BROKER)
