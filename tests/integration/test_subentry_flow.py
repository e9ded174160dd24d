"""Adding a meter pair (announced meters or paper topics), reconfiguring it, entry options."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import (
    SOURCE_RECONFIGURE,
    SOURCE_USER,
    ConfigEntry,
    ConfigSubentry,
)
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, section
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.smart_energy_meter.const import DOMAIN, SUBENTRY_PAIR
from custom_components.smart_energy_meter.issues import pair_name_in_use_id
from tests.integration.common import (
    HOUSE_1,
    HOUSE_2,
    TestNode,
    make_entry,
    setup_entry,
    state_of,
    wait_for,
    wait_state,
)
from tests.mosquitto import Broker


async def _start(hass: HomeAssistant, entry: ConfigEntry, step: str) -> dict[str, Any]:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_PAIR), context={"source": SOURCE_USER}
    )
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == ["pick", "manual"]
    return dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"next_step_id": step}
        )
    )


async def _loaded(hass: HomeAssistant, entry: ConfigEntry) -> None:
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.hub.connected, "the reloaded entry")


async def test_pick_announced_meters(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await wait_for(hass, lambda: "node1" in entry.runtime_data.fleet.nodes, "the announce")
    result = await _start(hass, entry, "pick")
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "pick"
    schema = result["data_schema"].schema
    meters = [o["value"] for o in schema["line"].config["options"]]
    # House 1's meters are taken; the others are offered, sorted by role.
    assert meters == ["node1/house2", "node1/line2"]
    assert [o["value"] for o in schema["relay"].config["options"]] == ["node1/r2"]
    assert schema["line"].config["options"][1]["label"] == "Pole 7: line2 (line, house2)"

    same = {"name": "House 2", "line": "node1/line2", "house": "node1/line2"}
    result = dict(await hass.config_entries.subentries.async_configure(result["flow_id"], same))
    assert result["errors"] == {"base": "same_meter"}
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"],
            {
                "name": "House 2",
                "line": "node1/line2",
                "house": "node1/house2",
                "relay": "node1/r2",
            },
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    subentry = next(s for s in entry.subentries.values() if s.title == "House 2")
    assert subentry.unique_id == "node1/line2+node1/house2"
    assert dict(subentry.data) == {
        "pair": "house_2",
        "name": "House 2",
        "line": {"node": "node1", "meter": "line2"},
        "house": {"node": "node1", "meter": "house2"},
        "relay": {"node": "node1", "relay": "r2"},
    }
    # The entry reloads with the new pair.
    await _loaded(hass, entry)
    await node.snapshot("house2", 42.0)
    await wait_state(hass, "sensor.house_2_power", "42.0")
    assert state_of(hass, "switch.house_2_relay") == "unknown"

    # Every announced meter is in a pair now.
    result = await _start(hass, entry, "pick")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "no_unpaired_meters"


async def test_pick_without_relay_and_gone_nodes_skipped(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    entry = make_entry(hass, mosquitto, prefix, pairs=[])
    await setup_entry(hass, entry)
    await node.announce(relays=())
    async with TestNode(mosquitto, prefix, node="node2") as other:
        await other.announce()
        await wait_for(hass, lambda: "node2" in entry.runtime_data.fleet.nodes, "node2")
        await other.publish(f"{prefix}/node2/announce", b"", retain=True)  # node2 removed
        await wait_for(hass, lambda: entry.runtime_data.fleet.nodes["node2"].gone, "node2 gone")
    result = await _start(hass, entry, "pick")
    schema = result["data_schema"].schema
    assert "relay" not in schema
    assert all(o["value"].startswith("node1/") for o in schema["line"].config["options"])
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], {"name": "Kos 1", "line": "node1/line1", "house": "node1/house2"}
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    subentry = next(iter(entry.subentries.values()))
    assert "relay" not in subentry.data
    assert subentry.data["pair"] == "kos_1"
    await _loaded(hass, entry)


async def test_pick_needs_a_loaded_entry(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto, prefix)
    result = await _start(hass, entry, "pick")
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "entry_not_loaded"


async def test_manual_paper_topics(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    paper = {
        "pair": "house_9",
        "name": "House 9",
        "line": {"topic_base": f"paper/{prefix}/l9"},
        "house": {"topic_base": f"paper/{prefix}/h9"},
        "interval": 10.0,
    }
    entry = make_entry(hass, mosquitto, prefix, pairs=[paper])
    await setup_entry(hass, entry)
    result = await _start(hass, entry, "manual")
    assert result["step_id"] == "manual"

    async def submit(line: str, house: str) -> dict[str, Any]:
        user_input = {
            "name": "House 3",
            "line_topic_base": line,
            "house_topic_base": house,
            "interval": 1,
        }
        return dict(
            await hass.config_entries.subentries.async_configure(result["flow_id"], user_input)
        )

    errors = (await submit("a/+/b", "/lead"))["errors"]
    assert errors == {
        "line_topic_base": "invalid_topic_base",
        "house_topic_base": "invalid_topic_base",
    }
    errors = (await submit(f"paper/{prefix}/l9", "ok/x"))["errors"]
    assert errors == {"line_topic_base": "meter_in_use"}
    assert (await submit("same/x", "same/x"))["errors"] == {"base": "same_meter"}
    created = await submit(f"paper/{prefix}/l3", f"paper/{prefix}/h3")
    assert created["type"] is FlowResultType.CREATE_ENTRY
    subentry = next(s for s in entry.subentries.values() if s.title == "House 3")
    assert subentry.unique_id == f"paper:paper/{prefix}/l3+paper:paper/{prefix}/h3"
    assert dict(subentry.data) == {
        "pair": "house_3",
        "name": "House 3",
        "line": {"topic_base": f"paper/{prefix}/l3"},
        "house": {"topic_base": f"paper/{prefix}/h3"},
        "interval": 1.0,
    }
    await _loaded(hass, entry)
    await node.publish(f"paper/{prefix}/h3/pac", "24.4")
    await wait_state(hass, "sensor.house_3_power", "24.4")


def _suggested(schema: Any) -> dict[str, Any]:
    """Suggested values of a form, sections as nested dicts."""
    values: dict[str, Any] = {}
    for key, field in schema.schema.items():
        if isinstance(field, section):
            values[str(key)] = _suggested(field.schema)
        elif key.description:
            values[str(key)] = key.description["suggested_value"]
    return values


async def test_reconfigure_pair_options(
    hass: HomeAssistant, mosquitto: Broker, prefix: str
) -> None:
    entry = make_entry(hass, mosquitto, prefix, options={"debounce": 30.0})
    await setup_entry(hass, entry)
    subentry = next(iter(entry.subentries.values()))
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_PAIR),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    suggested = _suggested(result["data_schema"])
    assert suggested == {
        "name": "House 1",
        "detection": "balance",
        "threshold_mode": "uncertainty",
        "threshold": 2.0,
        "debounce_mode": "consecutive",
        "cable": {
            "cable_length": 0.0,
            "cable_cross_section": 10.0,
            "cable_material": "aluminium",
            "cable_temperature": 30.0,
        },
        "paper_rule": {"debounce": 30.0, "hysteresis": 0.25, "min_load": 10.0, "max_skew": 2.0},
    }
    bad = suggested | {"paper_rule": suggested["paper_rule"] | {"hysteresis": 2.0}}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], bad)
    assert result["errors"] == {"paper_rule": "hysteresis_too_large"}
    cable = {"cable_length": 40, "cable_cross_section": 16, "cable_material": "aluminium"}
    good = suggested | {
        "name": "Rumah 1",
        "threshold": 5.0,
        "debounce_mode": "cusum",
        "cable": suggested["cable"] | cable | {"cable_temperature": 20},
    }
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], good)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    subentry = entry.subentries[subentry.subentry_id]
    assert subentry.title == "Rumah 1"
    # Only the values that differ from the entry's defaults are stored with the pair.
    assert {key: subentry.data[key] for key in subentry.data if key not in HOUSE_1} == {
        "threshold": 5.0,
        "debounce_mode": "cusum",
        "cable_length": 40.0,
        "cable_cross_section": 16.0,
        "cable_temperature": 20.0,
    }
    await _loaded(hass, entry)
    runtime = entry.runtime_data
    pair = runtime.pairs[subentry.subentry_id]
    assert pair.detector.options.threshold == 5.0
    assert pair.detector.options.debounce == 30.0
    # Aluminium 2x16 mm², 40 m at 20 °C: 0.141 ohm; the fixed-mode share is the threshold.
    config = pair.engine.config
    assert config.effective_resistance_ohm == pytest.approx(0.141)
    assert config.debounce.mode == "cusum"
    assert config.uncertainty.mode == "uncertainty"
    assert config.uncertainty.fixed_pct == 5.0
    # The entity ids stay; the device takes the new name.
    assert state_of(hass, "sensor.house_1_power") == "unavailable"
    device = dr.async_get(hass).async_get(pair.device_id or "")
    assert device is not None
    assert device.name == "Rumah 1"

    # A measured resistance is taken at once, without restarting the detection.
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_PAIR),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    form = _suggested(result["data_schema"])
    assert form["cable"]["cable_length"] == 40.0
    assert "resistance" not in form["cable"]
    measured = form | {"cable": form["cable"] | {"resistance": 0.2}}
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], measured)
    assert result["type"] is FlowResultType.ABORT
    await hass.async_block_till_done()
    assert entry.runtime_data is runtime
    assert runtime.pairs[subentry.subentry_id] is pair
    assert pair.engine.config.effective_resistance_ohm == 0.2
    assert entry.subentries[subentry.subentry_id].data["resistance"] == 0.2

    # Emptying the field goes back to the cable data.
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_PAIR),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    form = _suggested(result["data_schema"])
    assert form["cable"]["resistance"] == 0.2
    del form["cable"]["resistance"]
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], form)
    await hass.async_block_till_done()
    assert "resistance" not in entry.subentries[subentry.subentry_id].data
    assert pair.engine.config.effective_resistance_ohm == pytest.approx(0.141)
    assert entry.runtime_data is runtime


async def test_entry_options(hass: HomeAssistant, mosquitto: Broker, prefix: str) -> None:
    entry = make_entry(hass, mosquitto, prefix)
    await setup_entry(hass, entry)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.FORM
    suggested = _suggested(result["data_schema"])
    assert suggested["detection"] == "balance"
    assert suggested["paper_rule"]["debounce"] == 10.0
    assert suggested["recording"] == {"state_writes": "significant"}
    paper = {"debounce": 20, "hysteresis": 3.0, "min_load": 50, "max_skew": 1}
    values = suggested | {"detection": "paper", "threshold": 3.0, "paper_rule": paper}
    result = await hass.config_entries.options.async_configure(result["flow_id"], values)
    assert result["errors"] == {"paper_rule": "hysteresis_too_large"}
    values["paper_rule"]["hysteresis"] = 0.5
    values["threshold_mode"] = "fixed"
    values["cable"] = suggested["cable"] | {"cable_material": "copper", "cable_length": 15}
    values["recording"] = {"state_writes": "every_reading"}
    result = await hass.config_entries.options.async_configure(result["flow_id"], values)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert dict(entry.options) == {
        "threshold": 3.0,
        "debounce": 20.0,
        "hysteresis": 0.5,
        "min_load": 50.0,
        "max_skew": 1.0,
        "detection": "paper",
        "threshold_mode": "fixed",
        "debounce_mode": "consecutive",
        "cable_length": 15.0,
        "cable_cross_section": 10.0,
        "cable_material": "copper",
        "cable_temperature": 30.0,
        "state_writes": "every_reading",
    }
    await _loaded(hass, entry)
    assert entry.runtime_data.recording.policy == "every_reading"
    pair = next(iter(entry.runtime_data.pairs.values()))
    options = pair.detector.options
    assert (options.threshold, options.debounce, options.min_load) == (3.0, 20.0, 50.0)
    assert pair.detection == "paper"
    assert pair.engine.config.uncertainty.mode == "fixed"
    assert pair.engine.config.uncertainty.fixed_pct == 3.0
    assert pair.engine.config.cable is not None
    assert pair.engine.config.cable.conductor == "copper"


async def _rename(
    hass: HomeAssistant, client: Any, entry: ConfigEntry, subentry: ConfigSubentry, title: str
) -> None:
    """What ⋮ → Rename on the integration page does: set the subentry's title alone."""
    await client.send_json_auto_id(
        {
            "type": "config_entries/subentries/update",
            "entry_id": entry.entry_id,
            "subentry_id": subentry.subentry_id,
            "title": title,
        }
    )
    assert (await client.receive_json())["success"]
    await hass.async_block_till_done()


async def test_rename_on_the_integration_page_renames_the_device(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
) -> None:
    """Home Assistant's ⋮ → Rename of a pair changes only the subentry's title: the device,
    and with it every entity's name, follow; the entity ids stay; no reload."""
    assert await async_setup_component(hass, "config", {})
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    runtime = entry.runtime_data
    await node.snapshot("house1", 42.0)
    await wait_state(hass, "sensor.house_1_power", "42.0")
    subentry = next(s for s in entry.subentries.values() if s.title == "House 1")
    await _rename(hass, await hass_ws_client(hass), entry, subentry, "Warung Bu Sri")
    pair = runtime.pairs[subentry.subentry_id]
    device = dr.async_get(hass).async_get(pair.device_id or "")
    assert device is not None
    assert device.name == "Warung Bu Sri"
    state = hass.states.get("sensor.house_1_power")
    assert state is not None
    assert state.attributes["friendly_name"] == "Warung Bu Sri Power"
    assert state.state == "42.0"
    assert entry.runtime_data is runtime
    # The stored name follows the title, and the pair's form shows it.
    assert entry.subentries[subentry.subentry_id].data["name"] == "Warung Bu Sri"
    assert pair.config.name == "Warung Bu Sri"
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_PAIR),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    assert _suggested(result["data_schema"])["name"] == "Warung Bu Sri"
    hass.config_entries.subentries.async_abort(result["flow_id"])


async def test_a_rename_to_another_pairs_name_is_taken_back(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    mosquitto: Broker,
    prefix: str,
    node: TestNode,
) -> None:
    """⋮ → Rename skips the flow's name checks: a name another pair has (in any case) is
    taken back, with a repair issue that says why; a later good rename clears it."""
    assert await async_setup_component(hass, "config", {})
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1, HOUSE_2])
    await setup_entry(hass, entry)
    runtime = entry.runtime_data
    subentry = next(s for s in entry.subentries.values() if s.title == "House 1")
    pair = runtime.pairs[subentry.subentry_id]
    client = await hass_ws_client(hass)

    async def rename(title: str) -> None:
        await _rename(hass, client, entry, subentry, title)

    issue_id = pair_name_in_use_id(entry.entry_id, subentry.subentry_id)
    await rename(" house 2")
    assert entry.subentries[subentry.subentry_id].title == "House 1"
    assert entry.subentries[subentry.subentry_id].data["name"] == "House 1"
    assert pair.config.name == "House 1"
    device = dr.async_get(hass).async_get(pair.device_id or "")
    assert device is not None
    assert device.name == "House 1"
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_key == "pair_name_in_use"
    assert issue.translation_placeholders == {"name": " house 2", "kept": "House 1"}
    assert entry.runtime_data is runtime  # no reload

    await rename("Warung Bu Sri")
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert entry.subentries[subentry.subentry_id].data["name"] == "Warung Bu Sri"
    device = dr.async_get(hass).async_get(pair.device_id or "")
    assert device is not None
    assert device.name == "Warung Bu Sri"
    # Raised again, then renamed in the pair's form: the issue goes.
    await rename("HOUSE 2")
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_PAIR),
        context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry.subentry_id},
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**_suggested(result["data_schema"]), "name": "Rumah Pak Budi"}
    )
    assert result["type"] is FlowResultType.ABORT, result
    await hass.async_block_till_done()
    assert pair.config.name == "Rumah Pak Budi"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    # Raised again, then the pair is deleted: its issue goes with it.
    await rename("HOUSE 2")
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    assert hass.config_entries.async_remove_subentry(entry, subentry.subentry_id)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_pair_names_are_distinct(
    hass: HomeAssistant, mosquitto: Broker, prefix: str, node: TestNode
) -> None:
    """Two houses are told apart by their names: a name another pair has (in any case) or
    an empty one is refused, in every form that sets one."""
    entry = make_entry(hass, mosquitto, prefix, pairs=[HOUSE_1])
    await setup_entry(hass, entry)
    await node.announce()
    await wait_for(hass, lambda: "node1" in entry.runtime_data.fleet.nodes, "the announce")
    meters = {"line": "node1/line2", "house": "node1/house2"}

    result = await _start(hass, entry, "pick")
    flow_id = result["flow_id"]
    for name, error in (("house 1", "name_in_use"), ("  ", "name_empty")):
        result = dict(
            await hass.config_entries.subentries.async_configure(flow_id, meters | {"name": name})
        )
        assert result["errors"] == {"name": error}, name
    result = await _start(hass, entry, "manual")
    topics = {"line_topic_base": f"{prefix}/l9", "house_topic_base": f"{prefix}/h9", "interval": 10}
    result = dict(
        await hass.config_entries.subentries.async_configure(
            result["flow_id"], topics | {"name": " HOUSE 1 "}
        )
    )
    assert result["errors"] == {"name": "name_in_use"}
    # A name is stored without the spaces around it.
    result = dict(
        await hass.config_entries.subentries.async_configure(
            flow_id, meters | {"name": " House 2 "}
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    house_2 = next(s for s in entry.subentries.values() if s.title == "House 2")
    assert house_2.data["name"] == "House 2"
    await hass.async_block_till_done()

    async def reconfigure(subentry_id: str, name: str) -> dict[str, Any]:
        started = await hass.config_entries.subentries.async_init(
            (entry.entry_id, SUBENTRY_PAIR),
            context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
        )
        form = _suggested(started["data_schema"]) | {"name": name}
        return dict(await hass.config_entries.subentries.async_configure(started["flow_id"], form))

    result = await reconfigure(house_2.subentry_id, "House 1")
    assert result["errors"] == {"name": "name_in_use"}
    hass.config_entries.subentries.async_abort(result["flow_id"])
    # Its own name, in another case, is no conflict.
    result = await reconfigure(house_2.subentry_id, "house 2")
    assert result["reason"] == "reconfigure_successful"
    assert entry.subentries[house_2.subentry_id].title == "house 2"
    await hass.async_block_till_done()
