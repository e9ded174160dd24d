"""Meter pairs: their stored form (subentry data) and the pairs proposed from announces."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.const import (
    CONF_NAME,
)

from .const import (
    CONF_DEBOUNCE,
    CONF_DETECTION,
    CONF_HOUSE,
    CONF_HYSTERESIS,
    CONF_INTERVAL,
    CONF_LINE,
    CONF_MAX_SKEW,
    CONF_METER,
    CONF_MIN_LOAD,
    CONF_NODE,
    CONF_PAIR,
    CONF_RELAY,
    CONF_THRESHOLD,
    CONF_TOPIC_BASE,
    DEFAULT_VALUE_TOPICS_INTERVAL,
    DETECTION_INSTANT_RULE,
    OPTION_DEFAULTS,
    SUBENTRY_PAIR,
)
from .semcore.energy_balance import TheftConfig
from .semcore.instant_rule import DetectionOptions
from .semcore.meters import announced_pairs, protocol_meter_key, value_topics_meter_key
from .semcore.protocol import Announce, valid_id
from .tuning import PairTuning, theft_config


@dataclass(frozen=True, slots=True)
class ProtocolSource:
    """A protocol v1 meter, by node and meter id."""

    node: str
    meter: str

    @property
    def key(self) -> str:
        """Fleet key of the meter."""
        return protocol_meter_key(self.node, self.meter)

    def as_data(self) -> dict[str, str]:
        """Subentry form."""
        return {CONF_NODE: self.node, CONF_METER: self.meter}


@dataclass(frozen=True, slots=True)
class ValueTopicsSource:
    """A value-topics device: it publishes only one plain number per topic under a base, as the
    paper's did."""

    base: str

    @property
    def key(self) -> str:
        """Fleet key of the meter."""
        return value_topics_meter_key(self.base)

    def as_data(self) -> dict[str, str]:
        """Subentry form."""
        return {CONF_TOPIC_BASE: self.base}


type MeterSource = ProtocolSource | ValueTopicsSource


def meter_source(data: Mapping[str, Any]) -> MeterSource:
    """Read a meter reference from subentry data."""
    if CONF_TOPIC_BASE in data:
        return ValueTopicsSource(data[CONF_TOPIC_BASE])
    return ProtocolSource(data[CONF_NODE], data[CONF_METER])


@dataclass(frozen=True, slots=True)
class PairConfig:
    """One meter pair as stored in its config subentry."""

    pair: str
    name: str
    line: MeterSource
    house: MeterSource
    relay: tuple[str, str] | None = None
    interval: float = DEFAULT_VALUE_TOPICS_INTERVAL
    overrides: Mapping[str, float | str] | None = None
    tuning: PairTuning = field(default_factory=PairTuning)

    @classmethod
    def from_data(cls, data: Mapping[str, Any]) -> PairConfig:
        """Read a pair from subentry data."""
        relay = data.get(CONF_RELAY)
        return cls(
            pair=data[CONF_PAIR],
            name=data[CONF_NAME],
            line=meter_source(data[CONF_LINE]),
            house=meter_source(data[CONF_HOUSE]),
            relay=(relay[CONF_NODE], relay[CONF_RELAY]) if relay else None,
            interval=float(data.get(CONF_INTERVAL, DEFAULT_VALUE_TOPICS_INTERVAL)),
            overrides={
                key: _option(data[key], default)
                for key, default in OPTION_DEFAULTS.items()
                if key in data
            },
            tuning=PairTuning.from_data(data),
        )

    def as_data(self) -> dict[str, Any]:
        """Subentry data of the pair."""
        data: dict[str, Any] = {
            CONF_PAIR: self.pair,
            CONF_NAME: self.name,
            CONF_LINE: self.line.as_data(),
            CONF_HOUSE: self.house.as_data(),
        }
        if self.relay is not None:
            data[CONF_RELAY] = {CONF_NODE: self.relay[0], CONF_RELAY: self.relay[1]}
        if isinstance(self.line, ValueTopicsSource) or isinstance(self.house, ValueTopicsSource):
            data[CONF_INTERVAL] = self.interval
        data.update(self.overrides or {})
        data.update(self.tuning.as_data())
        return data

    @property
    def meter_keys(self) -> set[str]:
        """Fleet keys of both meters."""
        return {self.line.key, self.house.key}

    def options(self, defaults: Mapping[str, Any]) -> dict[str, float | str]:
        """The pair's options: its overrides over the entry-wide defaults over the built-ins."""
        values = option_values(defaults)
        values.update(self.overrides or {})
        return values

    def detection_options(self, defaults: Mapping[str, Any]) -> DetectionOptions:
        """Options of the paper's instantaneous rule."""
        values = self.options(defaults)
        return DetectionOptions(
            threshold=float(values[CONF_THRESHOLD]),
            debounce=float(values[CONF_DEBOUNCE]),
            hysteresis=float(values[CONF_HYSTERESIS]),
            min_load=float(values[CONF_MIN_LOAD]),
            max_skew=float(values[CONF_MAX_SKEW]),
        )

    def follows_instant_rule(self, defaults: Mapping[str, Any]) -> bool:
        """True when the theft sensor and events follow the paper's rule, not the balance."""
        return self.options(defaults)[CONF_DETECTION] == DETECTION_INSTANT_RULE

    def theft_config(self, defaults: Mapping[str, Any]) -> TheftConfig:
        """Configuration of the energy-balance engine."""
        return theft_config(self.options(defaults), self.tuning)


def option_values(values: Mapping[str, Any]) -> dict[str, float | str]:
    """Every detection option: the given values (typed) over the built-in defaults."""
    return {key: _option(values.get(key, value), value) for key, value in OPTION_DEFAULTS.items()}


def _option(value: Any, default: float | str) -> float | str:
    """An option value in the type of its default (numbers may be stored as int)."""
    return float(value) if isinstance(default, float) else str(value)


@dataclass(frozen=True, slots=True)
class ProposedPair:
    """A pair built from one node's announced `pair` label."""

    config: PairConfig
    node: str

    @property
    def unique_id(self) -> str:
        """Subentry unique id of a discovered pair: node and label."""
        return f"{self.node}/{self.config.pair}"


def propose_pairs(announces: Iterable[Announce]) -> list[ProposedPair]:
    """Every pair the nodes announce (`semcore.meters.announced_pairs`), as a configuration."""
    return [
        ProposedPair(
            PairConfig(
                pair=pair.label,
                name=pair.name,
                line=ProtocolSource(pair.node, pair.line),
                house=ProtocolSource(pair.node, pair.house),
                relay=(pair.node, pair.relay) if pair.relay else None,
            ),
            pair.node,
        )
        for announce in announces
        for pair in announced_pairs(announce)
    ]


def pair_label(name: str) -> str:
    """A pair label (an id: `[a-z0-9_-]{1,32}`) made from a display name."""
    label = re.sub(r"[^a-z0-9_-]+", "_", name.lower()).strip("_")[:32]
    return label if valid_id(label) else "pair"


def pair_names(entry: ConfigEntry, *, besides: str | None = None) -> set[str]:
    """The names (titles) of the entry's pairs other than `besides`, case-folded: a house is
    told apart by its name, so no two pairs share one."""
    return {
        subentry.title.strip().casefold()
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_PAIR and subentry.subentry_id != besides
    }
