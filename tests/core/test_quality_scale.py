"""The Integration Quality Scale self-audit, checked the way hassfest checks a core integration.

quality_scale.yaml must name exactly the current rules, each `done` or `exempt` with a reason,
and every `done` names the tests that back it. The rules hassfest verifies from the source
(config flow, unique entry, test before setup, runtime data, reauth, reconfigure, discovery,
parallel updates, unloading, diagnostics, has_entity_name, action setup, strict typing) are
verified the same way here, plus what hassfest checks in strings.json, icons.json and
services.yaml.
"""

from __future__ import annotations

import ast
import json
import re
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from homeassistant.const import Platform

from custom_components.smart_energy_meter.issues import NodeIssue

ROOT = Path(__file__).parents[2]
INTEGRATION = ROOT / "custom_components" / "smart_energy_meter"
MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text())
STRINGS = json.loads((INTEGRATION / "strings.json").read_text())
TRANSLATIONS = {
    path.stem: json.loads(path.read_text())
    for path in (INTEGRATION / "translations").glob("*.json")
}
ICONS = json.loads((INTEGRATION / "icons.json").read_text())
QUALITY = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())

# The current rules, by tier: ALL_RULES of HA core's script/hassfest/quality_scale.py.
RULES = {
    "bronze": [
        "action-setup", "appropriate-polling", "brands", "common-modules", "config-flow",
        "config-flow-test-coverage", "dependency-transparency", "docs-actions", "docs-conditions",
        "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "docs-triggers", "entity-event-setup", "entity-unique-id",
        "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    ],
    "gold": [
        "devices", "diagnostics", "discovery", "discovery-update-info", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
        "entity-category", "entity-device-class", "entity-disabled-by-default",
        "entity-translations", "exception-translations", "icon-translations",
        "reconfiguration-flow", "repair-issues", "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}  # fmt: skip
ALL_RULES = [rule for tier in RULES.values() for rule in tier]

HA_EXCEPTIONS = {
    "HomeAssistantError",
    "ServiceValidationError",
    "ServiceNotSupported",
    "ConfigEntryError",
    "ConfigEntryNotReady",
    "ConfigEntryAuthFailed",
    "IntegrationError",
}
SETUP_EXCEPTIONS = {"ConfigEntryNotReady", "ConfigEntryAuthFailed", "ConfigEntryError"}
PLATFORMS = [p.value for p in Platform if (INTEGRATION / f"{p.value}.py").exists()]


@cache
def _module(name: str) -> ast.Module:
    return ast.parse((INTEGRATION / f"{name}.py").read_text())


def _modules() -> dict[str, ast.Module]:
    """Every module of the integration except the pure core, which never touches HA."""
    return {path.stem: _module(path.stem) for path in sorted(INTEGRATION.glob("*.py"))}


def _function(module: ast.Module, name: str) -> ast.AsyncFunctionDef | ast.FunctionDef | None:
    for node in ast.walk(module):
        if isinstance(node, ast.AsyncFunctionDef | ast.FunctionDef) and node.name == name:
            return node
    return None


def _top_function(module: ast.Module, name: str) -> ast.AsyncFunctionDef | None:
    return next(
        (n for n in module.body if isinstance(n, ast.AsyncFunctionDef) and n.name == name), None
    )


def _calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)]


def _callee(call: ast.Call) -> str:
    func = call.func
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return ""


def _keyword(call: ast.Call, name: str) -> ast.expr | None:
    return next((k.value for k in call.keywords if k.arg == name), None)


def _text(tree: dict[str, Any], *path: str) -> Any:
    for key in path:
        tree = tree[key]
    return tree


# --- quality_scale.yaml -----------------------------------------------------------------------


def test_rule_names_are_the_current_rules() -> None:
    assert len(ALL_RULES) == 54
    assert list(QUALITY) == ["rules"]
    assert set(QUALITY["rules"]) == set(ALL_RULES)


@pytest.mark.parametrize("rule", ALL_RULES)
def test_every_rule_has_a_status_and_a_reason(rule: str) -> None:
    value = QUALITY["rules"][rule]
    # hassfest takes a bare "done" too; here every rule says why, and with which tests. A rule
    # that is not met is "todo", and says what is missing.
    assert isinstance(value, dict), rule
    assert set(value) == {"status", "comment"}, rule
    assert value["status"] in {"done", "exempt", "todo"}, rule
    assert isinstance(value["comment"], str)
    assert len(value["comment"].split()) >= 5, rule


@pytest.mark.parametrize("rule", [r for r in ALL_RULES if QUALITY["rules"][r]["status"] == "done"])
def test_every_done_rule_names_existing_tests(rule: str) -> None:
    """Each done rule names the tests (file::function) that prove it, and they exist."""
    comment = QUALITY["rules"][rule]["comment"]
    tests = re.findall(r"(tests/[\w/]+\.py)::(\w+)", comment)
    assert tests, f"{rule}: the comment names no test"
    for path, name in tests:
        source = ROOT / path
        assert source.exists(), f"{rule}: {path} does not exist"
        defined = re.search(rf"^(?:async )?def {name}\(", source.read_text(), re.MULTILINE)
        assert defined, f"{rule}: {path} has no {name}"


def test_coverage_gates_are_enforced() -> None:
    """test-coverage and config-flow-test-coverage: scripts/check fails under the gates."""
    check = (ROOT / "scripts" / "check").read_text()
    assert "--fail-under=95 " in check
    assert re.search(r"--fail-under=100 --include=\"\$flow\"", check)
    assert re.search(r"--fail-under=100 --include=\"\$codec\"", check)


# --- rules hassfest verifies from the source ---------------------------------------------------


def test_config_flow() -> None:
    assert MANIFEST["config_flow"] is True
    assert (INTEGRATION / "config_flow.py").exists()


def test_unique_config_entry() -> None:
    callees = {_callee(call) for call in _calls(_module("config_flow"))}
    assert {"async_set_unique_id", "_abort_if_unique_id_configured"} <= callees


def test_test_before_setup_raises_setup_exceptions() -> None:
    setup = _top_function(_module("__init__"), "async_setup_entry")
    assert setup is not None
    raised = {
        _callee(node.exc)
        for node in ast.walk(setup)
        if isinstance(node, ast.Raise) and isinstance(node.exc, ast.Call)
    }
    assert raised == SETUP_EXCEPTIONS


def _config_flow_class(name: str) -> ast.ClassDef:
    return next(
        node
        for node in _module("config_flow").body
        if isinstance(node, ast.ClassDef)
        and any(isinstance(base, ast.Name) and base.id == name for base in node.bases)
    )


def test_reauthentication_and_reconfiguration_flows() -> None:
    flow = _config_flow_class("ConfigFlow")
    steps = {node.name for node in flow.body if isinstance(node, ast.AsyncFunctionDef)}
    # On the entry's own flow, not only the meter pairs' subentry flow.
    assert {"async_step_reauth", "async_step_reauth_confirm", "async_step_reconfigure"} <= steps


def test_discovery() -> None:
    flow = _config_flow_class("ConfigFlow")
    steps = {node.name for node in flow.body if isinstance(node, ast.AsyncFunctionDef)}
    assert MANIFEST["mqtt"] == ["sem/+/announce"]
    assert "async_step_mqtt" in steps


def test_runtime_data_with_a_typed_config_entry() -> None:
    init = _module("__init__")
    setup = _top_function(init, "async_setup_entry")
    assert setup is not None
    entry_arg = setup.args.args[1].arg
    assert any(
        isinstance(node, ast.Attribute)
        and isinstance(node.value, ast.Name)
        and node.value.id == entry_arg
        and node.attr == "runtime_data"
        and isinstance(node.ctx, ast.Store)
        for node in ast.walk(setup)
    )
    # With strict-typing done, hassfest wants <Name>ConfigEntry wherever an entry is passed.
    functions = {
        "__init__": [
            "async_migrate_entry",
            "async_remove_config_entry_device",
            "async_remove_entry",
            "async_setup_entry",
            "async_unload_entry",
        ],
        "diagnostics": ["async_get_config_entry_diagnostics", "async_get_device_diagnostics"],
        **{platform: ["async_setup_entry"] for platform in PLATFORMS},
    }
    checked = 0
    for module, names in functions.items():
        for name in names:
            if (function := _top_function(_module(module), name)) is None:
                continue
            annotation = function.args.args[1].annotation
            assert isinstance(annotation, ast.Name), f"{module}.{name}"
            assert re.fullmatch(r"[A-Za-z]+ConfigEntry", annotation.id), f"{module}.{name}"
            checked += 1
    assert checked >= 5 + len(PLATFORMS)
    options_flow = _function(_module("config_flow"), "async_get_options_flow")
    assert options_flow is not None
    annotation = options_flow.args.args[0].annotation
    assert isinstance(annotation, ast.Name)
    assert re.fullmatch(r"[A-Za-z]+ConfigEntry", annotation.id)


def test_parallel_updates_on_every_platform() -> None:
    assert set(PLATFORMS) >= {"sensor", "binary_sensor", "switch", "button", "event"}
    for platform in PLATFORMS:
        assigned = [
            node
            for node in _module(platform).body
            if isinstance(node, ast.Assign)
            and isinstance(node.targets[0], ast.Name)
            and node.targets[0].id == "PARALLEL_UPDATES"
        ]
        assert len(assigned) == 1, platform


def test_config_entry_unloading() -> None:
    assert _top_function(_module("__init__"), "async_unload_entry") is not None


def test_diagnostics() -> None:
    module = _module("diagnostics")
    for name in ("async_get_config_entry_diagnostics", "async_get_device_diagnostics"):
        assert _top_function(module, name) is not None, name


def test_has_entity_name() -> None:
    classes: dict[str, tuple[list[str], bool]] = {}
    for module in _modules().values():
        for node in ast.walk(module):
            if not isinstance(node, ast.ClassDef):
                continue
            bases = [b.id if isinstance(b, ast.Name) else ast.unparse(b) for b in node.bases]
            found = any(
                isinstance(stmt, ast.Assign)
                and isinstance(stmt.targets[0], ast.Name)
                and stmt.targets[0].id == "_attr_has_entity_name"
                and isinstance(stmt.value, ast.Constant)
                and stmt.value.value is True
                for stmt in node.body
            )
            classes[node.name] = (bases, found)

    def has_it(name: str) -> bool:
        if name not in classes:
            return False
        bases, found = classes[name]
        return found or any(has_it(base) for base in bases)

    entities = [
        name
        for name, (bases, _) in classes.items()
        if name.endswith("Entity") or any(b.endswith("Entity") for b in bases)
    ]
    assert len(entities) >= 8
    assert [name for name in entities if not has_it(name)] == []


def test_actions_are_not_registered_per_entry() -> None:
    for name in ("__init__", *PLATFORMS):
        setup = _top_function(_module(name), "async_setup_entry")
        assert setup is not None, name
        for call in _calls(setup):
            assert _callee(call) not in {"async_register", "register"}, name
            assert _callee(call) != "async_register_entity_service", name
    setup = _top_function(_module("__init__"), "async_setup")
    assert setup is not None
    assert "async_setup_services" in {_callee(call) for call in _calls(setup)}


def test_strict_typing() -> None:
    mypy = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert mypy["strict"] is True
    assert "custom_components/smart_energy_meter" in mypy["files"]
    check = (ROOT / "scripts" / "check").read_text()
    assert re.search(r"^mypy$", check, re.MULTILINE)


def test_entity_events_are_set_up_when_added() -> None:
    """Entities subscribe in async_added_to_hass and hand the unsubscribe to async_on_remove."""
    subscribed = 0
    for module in _modules().values():
        for cls in (n for n in ast.walk(module) if isinstance(n, ast.ClassDef)):
            for function in cls.body:
                if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                    continue
                for call in _calls(function):
                    name = _callee(call)
                    if not (name.startswith("async_add_") and name.endswith("listener")) and (
                        name not in {"async_listen", "async_track_state_change_event"}
                    ):
                        continue
                    if not any(isinstance(b, ast.Name) and "Entity" in b.id for b in cls.bases):
                        continue
                    assert function.name == "async_added_to_hass", (cls.name, function.name)
                    wrapped = any(
                        _callee(outer) == "async_on_remove" and call in outer.args
                        for outer in _calls(function)
                    )
                    assert wrapped, (cls.name, name)
                    subscribed += 1
    assert subscribed >= 3


def test_common_modules() -> None:
    for name in ("entity", "runtime", "hub", "broker", "fleet", "diagnostics"):
        assert (INTEGRATION / f"{name}.py").exists(), name
    entity = _module("entity")
    bases = {node.name for node in entity.body if isinstance(node, ast.ClassDef)}
    assert {"PairEntity", "NodeEntity"} <= bases


# --- exception translations ---------------------------------------------------------------------


def _exception_helpers() -> dict[str, str]:
    """Functions that build a HA exception from their first argument as translation key."""
    helpers: dict[str, str] = {}
    for module in _modules().values():
        for function in ast.walk(module):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            if not function.args.args:
                continue
            params = [a.arg for a in function.args.args if a.arg != "self"]
            for call in _calls(function):
                key = _keyword(call, "translation_key")
                if (
                    _callee(call) in HA_EXCEPTIONS
                    and isinstance(key, ast.Name)
                    and params
                    and key.id == params[0]
                ):
                    helpers[function.name] = _callee(call)
    return helpers


def _exception_keys() -> set[str]:
    """Every translation key an exception of the integration can carry."""
    helpers = _exception_helpers()
    keys: set[str] = set()
    for module in _modules().values():
        for call in _calls(module):
            name = _callee(call)
            key = _keyword(call, "translation_key")
            if name in HA_EXCEPTIONS and isinstance(key, ast.Constant):
                keys.add(key.value)
            if name in helpers and call.args and isinstance(call.args[0], ast.Constant):
                keys.add(call.args[0].value)
    # async_setup_entry raises with a BrokerError's key: every key broker.py can give.
    keys |= {
        call.args[0].value
        for call in _calls(_module("broker"))
        if _callee(call) == "BrokerError" and call.args and isinstance(call.args[0], ast.Constant)
    }
    return keys


def test_every_raised_exception_is_translated() -> None:
    raised = 0
    for name, module in _modules().items():
        for call in _calls(module):
            if _callee(call) not in HA_EXCEPTIONS:
                continue
            raised += 1
            domain = _keyword(call, "translation_domain")
            assert domain is not None, f"{name}.py:{call.lineno} has no translation_domain"
            assert ast.unparse(domain) == "DOMAIN", f"{name}.py:{call.lineno}"
            assert _keyword(call, "translation_key") is not None, f"{name}.py:{call.lineno}"
    assert raised >= 5


def test_exception_keys_have_messages() -> None:
    keys = _exception_keys()
    assert {"invalid_auth", "cannot_connect", "tls_error", "invalid_ca", "not_connected"} <= keys
    for language, tree in {"strings": STRINGS, **TRANSLATIONS}.items():
        assert keys <= set(tree["exceptions"]), (language, keys - set(tree["exceptions"]))


def test_setup_exception_placeholders_are_given() -> None:
    """async_setup_entry raises with broker.error_placeholders: every placeholder of every
    broker error's text is among them, in the setup's messages and the flows' errors alike."""
    setup = _top_function(_module("__init__"), "async_setup_entry")
    assert setup is not None
    assert "error_placeholders" in {_callee(call) for call in _calls(setup)}
    function = next(
        node
        for node in _module("broker").body
        if isinstance(node, ast.FunctionDef) and node.name == "error_placeholders"
    )
    given: set[str] = set()
    for node in ast.walk(function):
        if isinstance(node, ast.Dict):
            given |= {k.value for k in node.keys if isinstance(k, ast.Constant)}
    keys = {
        call.args[0].value
        for call in _calls(_module("broker"))
        if _callee(call) == "BrokerError" and call.args and isinstance(call.args[0], ast.Constant)
    }
    assert {"connection_refused", "timeout", "not_mqtt", "tls_error", "invalid_auth"} <= keys
    for key in keys:
        texts = [STRINGS["exceptions"][key]["message"], STRINGS["config"]["error"][key]]
        for text in texts:
            assert set(re.findall(r"\{(\w+)\}", text)) <= given, (key, text)


# --- translation keys used in code ------------------------------------------------------------


def _literal_keys() -> dict[str, set[tuple[str, str]]]:
    """translation_key="..." literals in the code, by where Home Assistant looks them up."""
    found: dict[str, set[tuple[str, str]]] = {
        "entity": set(),
        "issues": set(),
        "selector": set(),
    }
    for name, module in _modules().items():
        for call in _calls(module):
            key = _keyword(call, "translation_key")
            if not isinstance(key, ast.Constant):
                continue
            callee = _callee(call)
            if callee.endswith("Description"):
                found["entity"].add((name, key.value))
            elif callee == "async_create_issue":
                found["issues"].add((name, key.value))
            elif callee.endswith("SelectorConfig"):
                found["selector"].add((name, key.value))
        for node in ast.walk(module):
            if (
                isinstance(node, ast.Assign)
                and isinstance(node.targets[0], ast.Name)
                and node.targets[0].id == "_attr_translation_key"
                and isinstance(node.value, ast.Constant)
            ):
                found["entity"].add((name, node.value.value))
    # Helpers such as _select(key, ...) pass their first argument on as the key.
    for name, module in _modules().items():
        for function in ast.walk(module):
            if not isinstance(function, ast.FunctionDef) or not function.args.args:
                continue
            first = function.args.args[0].arg
            for call in _calls(function):
                key = _keyword(call, "translation_key")
                if (
                    isinstance(key, ast.Name)
                    and key.id == first
                    and _callee(call).endswith("SelectorConfig")
                ):
                    for use in _calls(module):
                        if _callee(use) == function.name and use.args:
                            arg = use.args[0]
                            value = _constant(module, arg)
                            if value is not None:
                                found["selector"].add((name, value))
    return found


def _constant(module: ast.Module, node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.Name):
        const = _module("const")
        for tree in (module, const):
            for stmt in tree.body:
                target = stmt.target if isinstance(stmt, ast.AnnAssign) else None
                if isinstance(stmt, ast.Assign):
                    target = stmt.targets[0]
                if (
                    isinstance(target, ast.Name)
                    and target.id == node.id
                    and isinstance(stmt, ast.Assign | ast.AnnAssign)
                    and isinstance(stmt.value, ast.Constant)
                ):
                    return str(stmt.value.value)
    return None


@pytest.mark.parametrize("language", ["strings", "en", "id"])
def test_translation_keys_used_in_code_exist(language: str) -> None:
    tree = STRINGS if language == "strings" else TRANSLATIONS[language]
    found = _literal_keys()
    assert found["entity"]
    # Repair issues are raised in one place (issues.py), by NodeIssue: its values are the keys.
    assert not found["issues"], "raise repair issues through issues.async_raise"
    found["issues"] = {("issues", issue.value) for issue in NodeIssue}
    assert {key for _, key in found["issues"]} >= {"node_removed", "node_silent"}
    for module, key in found["entity"]:
        platforms = [module] if module in PLATFORMS else list(tree["entity"])
        assert any(key in tree["entity"].get(p, {}) for p in platforms), (module, key)
    for _, key in found["issues"]:
        assert {"title", "description"} <= set(tree["issues"][key]), key
    for _, key in found["selector"]:
        assert tree["selector"][key]["options"], key


def test_english_is_strings_json_and_languages_match() -> None:
    assert TRANSLATIONS["en"] == STRINGS

    def leaves(tree: dict[str, Any], path: str = "") -> set[str]:
        keys: set[str] = set()
        for key, value in tree.items():
            keys |= leaves(value, f"{path}{key}.") if isinstance(value, dict) else {path + key}
        return keys

    for language, tree in TRANSLATIONS.items():
        assert leaves(tree) == leaves(STRINGS), language


def test_config_flow_steps_have_texts() -> None:
    module = _module("config_flow")
    flow_steps = {"user", "pairs", "no_nodes", "confirm_pair", "reconfigure", "reauth_confirm"}
    for call in _calls(module):
        if _callee(call) == "async_show_form":
            step = _keyword(call, "step_id")
            assert isinstance(step, ast.Constant)
            in_flow = step.value in STRINGS["config"]["step"]
            in_sub = step.value in STRINGS["config_subentries"]["meter_pair"]["step"]
            in_options = step.value in STRINGS["options"]["step"]
            assert in_flow or in_sub or in_options, step.value
    assert flow_steps <= set(STRINGS["config"]["step"])
    aborts = STRINGS["config"]["abort"]
    assert {"reconfigure_successful", "reauth_successful", "invalid_discovery_info"} <= set(aborts)


# --- icons.json -----------------------------------------------------------------------------


def _mdi(value: Any) -> bool:
    return isinstance(value, str) and re.fullmatch(r"mdi:[a-z0-9-]+", value) is not None


def test_icons_schema() -> None:
    assert set(ICONS) <= {"entity", "services", "config", "options", "issues"}
    entity_keys = {(platform, key) for platform, keys in STRINGS["entity"].items() for key in keys}
    for platform, keys in ICONS["entity"].items():
        assert platform in {p.value for p in Platform}, platform
        for key, icons in keys.items():
            assert (platform, key) in entity_keys, (platform, key)
            assert set(icons) <= {"default", "state", "state_attributes", "range"}, key
            assert _mdi(icons["default"]), key
            for state, icon in icons.get("state", {}).items():
                assert _mdi(icon), (key, state)
                assert icon != icons["default"], f"{key}.{state} repeats the default icon"
            for attribute in icons.get("state_attributes", {}).values():
                assert all(_mdi(icon) for icon in attribute.get("state", {}).values())
            if "range" in icons:
                bounds = [float(bound) for bound in icons["range"]]
                assert bounds == sorted(bounds), f"{key}: ranges must ascend"
                assert len(set(bounds)) == len(bounds)
                assert all(_mdi(icon) for icon in icons["range"].values())


def test_theft_percentage_icon_follows_the_mismatch() -> None:
    ranges = ICONS["entity"]["sensor"]["theft_percentage"]["range"]

    def icon(value: float) -> str:
        chosen = ICONS["entity"]["sensor"]["theft_percentage"]["default"]
        for bound, name in ranges.items():
            if value >= float(bound):
                chosen = name
        return str(chosen)

    # Within the paper's 2 % a pair looks fine; above it, worse the larger the gap.
    assert icon(-3.0) == icon(0.0) == icon(1.99)
    assert len({icon(0.0), icon(2.0), icon(5.0), icon(50.0)}) == 4


# --- services.yaml ----------------------------------------------------------------------------


def test_services_yaml_fields_are_translated_and_have_icons() -> None:
    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
    assert services, "services.yaml declares the actions"
    assert set(STRINGS["services"]) == set(services)
    assert set(ICONS.get("services", {})) == set(services)
    for service, spec in services.items():
        texts = STRINGS["services"][service]
        assert texts["name"]
        assert texts["description"]
        icon = ICONS["services"][service]
        # A plain icon, or the newer form with the action's icon under "service".
        assert _mdi(icon["service"] if isinstance(icon, dict) else icon), service
        fields = spec.get("fields") or {}
        assert set(texts.get("fields", {})) == set(fields), service
        for field in fields:
            assert texts["fields"][field]["name"], (service, field)
            assert texts["fields"][field]["description"], (service, field)
            selector = fields[field].get("selector", {}).get("select", {})
            if "translation_key" in selector:
                options = STRINGS["selector"][selector["translation_key"]]["options"]
                assert set(selector["options"]) <= set(options), (service, field)


# --- documentation ------------------------------------------------------------------------------

DOC_SECTIONS = {
    "docs-installation-instructions": "Installation",
    "docs-removal-instructions": "Removal",
    "docs-configuration-parameters": "Configuration parameters",
    "docs-data-update": "How data updates",
    "docs-examples": "Examples",
    "docs-known-limitations": "Known limitations",
    "docs-supported-devices": "Supported devices",
    "docs-supported-functions": "Supported functions",
    "docs-troubleshooting": "Troubleshooting",
    "docs-use-cases": "Use cases",
    "docs-actions": "Actions",
}


def _documentation() -> str:
    """The user documentation: README.md."""
    return (ROOT / "README.md").read_text()


@pytest.mark.parametrize(("rule", "heading"), DOC_SECTIONS.items())
def test_documentation_has_the_section(rule: str, heading: str) -> None:
    headings = re.findall(r"^#{2,4} (.+)$", _documentation(), re.MULTILINE)
    assert any(h.strip().startswith(heading) for h in headings), (rule, heading)


def test_documentation_names_every_action_trigger_and_option() -> None:
    docs = _documentation()
    services = yaml.safe_load((INTEGRATION / "services.yaml").read_text())
    for service in services:
        assert f"smart_energy_meter.{service}" in docs, service
    for trigger in STRINGS["device_automation"]["trigger_type"]:
        assert trigger in docs, trigger
    for event in ("smart_energy_meter_theft_detected", "smart_energy_meter_theft_cleared"):
        assert event in docs, event
    for field in STRINGS["config"]["step"]["user"]["data"].values():
        assert field in docs, field


def test_strings_keys_and_texts_follow_hassfest() -> None:
    """Keys are lower-case slugs; texts carry no HTML and no empty value."""

    def walk(tree: dict[str, Any], path: str) -> None:
        for key, value in tree.items():
            assert re.fullmatch(r"[a-z0-9_-]+", key), f"{path}{key}"
            if isinstance(value, dict):
                walk(value, f"{path}{key}.")
            else:
                assert isinstance(value, str), f"{path}{key}"
                assert value.strip(), f"{path}{key}"
                assert not re.search(r"<[a-z/][^>]*>", value), f"{path}{key}"

    for language, tree in {"strings": STRINGS, **TRANSLATIONS}.items():
        walk(tree, f"{language}:")
