"""The repair issues of an entry's nodes and pairs: one id scheme, created and deleted here only.

Each issue concerns one node (or pair) of one entry, so its id carries both; deleting an entry
or a node's device takes the node's issues along.
"""

from __future__ import annotations

from enum import StrEnum

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN


class NodeIssue(StrEnum):
    """What a user is told about a node; the value is the translation key."""

    REMOVED = "node_removed"  # it announced its removal
    SILENT = "node_silent"  # nothing heard for a day
    UNSUPPORTED_PROTOCOL = "unsupported_protocol"  # another major protocol version
    SIGNATURE_REFUSED = "signature_refused"  # signed readings refused: tamper suspected
    UNHEARD = "node_unheard"  # nothing at all arrived from it since the entry started


# An entry without meter pairs that has heard no node at all: not about one node.
NOTHING_HEARD = "nothing_heard"


_SEVERITY = {
    NodeIssue.REMOVED: ir.IssueSeverity.WARNING,
    NodeIssue.SILENT: ir.IssueSeverity.WARNING,
    NodeIssue.UNSUPPORTED_PROTOCOL: ir.IssueSeverity.ERROR,
    NodeIssue.SIGNATURE_REFUSED: ir.IssueSeverity.ERROR,
    NodeIssue.UNHEARD: ir.IssueSeverity.WARNING,
}


def issue_id(issue: NodeIssue, entry_id: str, node: str) -> str:
    """The registry id of a node's issue."""
    return f"{issue.value}_{entry_id}_{node}"


@callback
def async_raise(
    hass: HomeAssistant, issue: NodeIssue, entry_id: str, node: str, **placeholders: str
) -> None:
    """Raise (or refresh) a node's issue."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id(issue, entry_id, node),
        is_fixable=False,
        severity=_SEVERITY[issue],
        translation_key=issue.value,
        translation_placeholders={"node": node, **placeholders},
    )


@callback
def async_is_raised(hass: HomeAssistant, issue: NodeIssue, entry_id: str, node: str) -> bool:
    """True while the node's issue is open (it may be left from the entry's previous run)."""
    registry = ir.async_get(hass)
    return registry.async_get_issue(DOMAIN, issue_id(issue, entry_id, node)) is not None


@callback
def async_clear(hass: HomeAssistant, entry_id: str, node: str, *issues: NodeIssue) -> None:
    """Delete these issues of a node; with none named, all of them."""
    for issue in issues or tuple(NodeIssue):
        ir.async_delete_issue(hass, DOMAIN, issue_id(issue, entry_id, node))


def nothing_heard_id(entry_id: str) -> str:
    """The registry id of an entry's issue that no node was heard at all."""
    return f"{NOTHING_HEARD}_{entry_id}"


@callback
def async_raise_nothing_heard(hass: HomeAssistant, entry_id: str, **placeholders: str) -> None:
    """Raise the entry's issue that no node was heard at all."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        nothing_heard_id(entry_id),
        is_fixable=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=NOTHING_HEARD,
        translation_placeholders=placeholders,
    )


@callback
def async_nothing_heard_raised(hass: HomeAssistant, entry_id: str) -> bool:
    """True while the entry's issue that no node was heard is open."""
    return ir.async_get(hass).async_get_issue(DOMAIN, nothing_heard_id(entry_id)) is not None


@callback
def async_clear_nothing_heard(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the entry's issue that no node was heard at all."""
    ir.async_delete_issue(hass, DOMAIN, nothing_heard_id(entry_id))


# A pair renamed on the integration page (⋮ → Rename, which skips the flow's checks) to a name
# another pair has: the rename is taken back, and this says why.
PAIR_NAME_IN_USE = "pair_name_in_use"


def pair_name_in_use_id(entry_id: str, subentry_id: str) -> str:
    """The registry id of a pair's issue that its new name was taken."""
    return f"{PAIR_NAME_IN_USE}_{entry_id}_{subentry_id}"


@callback
def async_raise_pair_name_in_use(
    hass: HomeAssistant, entry_id: str, subentry_id: str, *, name: str, kept: str
) -> None:
    """Say that the pair `kept` was not renamed to `name` (another pair has it)."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        pair_name_in_use_id(entry_id, subentry_id),
        is_fixable=False,
        is_persistent=False,
        severity=ir.IssueSeverity.WARNING,
        translation_key=PAIR_NAME_IN_USE,
        translation_placeholders={"name": name, "kept": kept},
    )


@callback
def async_clear_pair_name_in_use(hass: HomeAssistant, entry_id: str, subentry_id: str) -> None:
    """The pair was renamed or removed since."""
    ir.async_delete_issue(hass, DOMAIN, pair_name_in_use_id(entry_id, subentry_id))


@callback
def async_clear_entry(hass: HomeAssistant, entry_id: str) -> None:
    """Delete every issue of an entry, its nodes and its pairs (the entry was deleted)."""
    async_clear_nothing_heard(hass, entry_id)
    prefixes = tuple(f"{kind}_{entry_id}_" for kind in (*NodeIssue, PAIR_NAME_IN_USE))
    for domain, existing in list(ir.async_get(hass).issues):
        if domain == DOMAIN and existing.startswith(prefixes):
            ir.async_delete_issue(hass, DOMAIN, existing)
