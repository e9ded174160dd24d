"""The scenario sets: what happens at the pair, and what the detector is told about the cable."""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

from custom_components.smart_energy_meter.semcore.cable_loss import CableSpec, Conductor
from custom_components.smart_energy_meter.semcore.energy_balance import TheftConfig

from .simulation import (
    DAY,
    HOUSEHOLD,
    Appliance,
    MeterModel,
    Steps,
    World,
    add,
    appliance_load,
    cable_resistance,
    constant,
    level_steps,
    slow_walk,
)

# The installations: what is really there, and what the installer enters (a typical
# temperature, since the real one follows the weather and the load).
SHORT_CABLE = CableSpec(15.0, 10.0, Conductor.COPPER)
SHORT_CABLE_ENTERED = CableSpec(15.0, 10.0, Conductor.COPPER, temperature_c=25.0)
LONG_CABLE = CableSpec(40.0, 16.0, Conductor.ALUMINIUM)
LONG_CABLE_ENTERED = CableSpec(40.0, 16.0, Conductor.ALUMINIUM, temperature_c=30.0)

# Heavy evening loads on the long cable: EV charging and cooking together reach 40-50 A.
HEAVY: tuple[Appliance, ...] = (
    *HOUSEHOLD,
    Appliance(7000.0, 14400.0, 5400.0, 0.98),  # a second EV charge
    Appliance(3000.0, 7200.0, 1800.0),  # water heater
)
SMALL: tuple[Appliance, ...] = HOUSEHOLD[:2] + HOUSEHOLD[-1:]


@dataclass(frozen=True)
class Built:
    world: World
    thefts: list[tuple[float, float]] = field(default_factory=list)  # theft episodes (s)
    offline: list[tuple[float, float]] = field(default_factory=list)  # house meter offline


@dataclass(frozen=True)
class Scenario:
    name: str
    group: str  # "no theft", "theft", "meter offline"
    days: float
    build: Callable[[random.Random, float, float], Built]
    config: TheftConfig
    commission: bool = False  # also run a detector commissioned on the first hours
    seed: int = 1
    fast_goal: bool = False  # the >= 99 % within 2 minutes goal applies


COMMISSION_S = 3 * 3600.0  # theft-free lead-in, used to commission the commissioned detector


def _meters(rng: random.Random, noise: float = 0.002) -> tuple[MeterModel, MeterModel]:
    # PZEM-004T: 0.5 % class; a fraction of a watt of zero error.
    return (
        MeterModel.drawn(rng, 0.005, 0.3, noise),
        MeterModel.drawn(rng, 0.005, 0.3, noise),
    )


def make_world(
    rng: random.Random,
    duration: float,
    load: Steps,
    va: Steps | None = None,
    cable: CableSpec = SHORT_CABLE,
    theft: Steps | None = None,
    meters: tuple[MeterModel, MeterModel] | None = None,
) -> World:
    line, house = meters or _meters(rng)
    return World(
        duration_s=duration,
        house_load=load,
        house_va=va or load,
        voltage=slow_walk(rng, duration, 230.0, 1.0, 215.0, 245.0),
        resistance=cable_resistance(cable, slow_walk(rng, duration, 25.0, 2.0, 5.0, 55.0)),
        theft_share=theft or constant(0.0),
        line_meter=line,
        house_meter=house,
    )


def steady(watts: float) -> Callable[[random.Random, float, float], Built]:
    def build(rng: random.Random, duration: float, lead_in: float) -> Built:
        # A steady load still wanders by a percent or so.
        return Built(
            make_world(rng, duration, level_steps(rng, duration, watts * 0.99, watts, 30, 90))
        )

    return build


def household(rng: random.Random, duration: float, lead_in: float) -> Built:
    load, va = appliance_load(rng, duration, 60.0)
    return Built(make_world(rng, duration, load, va))


def load_steps(rng: random.Random, duration: float, lead_in: float) -> Built:
    return Built(make_world(rng, duration, level_steps(rng, duration, 10.0, 10_000.0, 2.0, 30.0)))


def skewed(rng: random.Random, duration: float, lead_in: float) -> Built:
    load = level_steps(rng, duration, 10.0, 10_000.0, 5.0, 60.0)
    world = make_world(rng, duration, load)
    # House clock 1 s ahead for half the time, 1 s behind for the other half.
    world.skew = lambda t: 1.0 if t < duration / 2 else -1.0
    return Built(world)


def noisy(rng: random.Random, duration: float, lead_in: float) -> Built:
    load, va = appliance_load(rng, duration, 60.0)
    # Worst case of a 0.5 % class pair: the errors in opposite directions, plus 0.5 % noise.
    line = MeterModel(0.005, 0.005, 0.005, 0.3, 0.005)
    house = MeterModel(-0.005, -0.005, -0.005, -0.3, 0.005)
    return Built(make_world(rng, duration, load, va, meters=(line, house)))


def long_cable(rng: random.Random, duration: float, lead_in: float) -> Built:
    load, va = appliance_load(rng, duration, 60.0, HEAVY, cap_w=11_000.0)
    return Built(make_world(rng, duration, load, va, cable=LONG_CABLE))


def _episodes(
    rng: random.Random,
    duration: float,
    lead_in: float,
    on: tuple[float, float],
    off: tuple[float, float],
) -> list[tuple[float, float]]:
    """Episodes of `on` seconds separated by `off`, after a quiet lead-in."""
    episodes: list[tuple[float, float]] = []
    t = lead_in + rng.uniform(*off)
    while True:
        length = rng.uniform(*on)
        if t + length + 120.0 > duration:
            return episodes
        episodes.append((t, t + length))
        t += length + rng.uniform(*off)


def _share(episodes: list[tuple[float, float]], share: float) -> Steps:
    times, values = [0.0], [0.0]
    for a, b in episodes:
        times += [a, b]
        values += [share, 0.0]
    return Steps(times, values)


def _theft_load(
    rng: random.Random, duration: float, low: float, high: float
) -> tuple[Steps, Steps]:
    # A load level that moves every 5-20 min, with the small appliances switching on top.
    small, small_va = appliance_load(rng, duration, 0.0, SMALL)
    level = level_steps(rng, duration, low, high, 300.0, 1200.0)
    return add(level, small), add(level, small_va)


def theft(
    share: float, cable: CableSpec = SHORT_CABLE
) -> Callable[[random.Random, float, float], Built]:
    def build(rng: random.Random, duration: float, lead_in: float) -> Built:
        load, va = _theft_load(rng, duration, 200.0, 10_000.0)
        episodes = _episodes(rng, duration, lead_in, (300.0, 300.0), (240.0, 480.0))
        world = make_world(rng, duration, load, va, cable=cable, theft=_share(episodes, share))
        return Built(world, thefts=episodes)

    return build


def intermittent(share: float) -> Callable[[random.Random, float, float], Built]:
    """Campaigns of 15 min in which a bypass is switched on for 20-90 s at a time."""

    def build(rng: random.Random, duration: float, lead_in: float) -> Built:
        load, va = _theft_load(rng, duration, 200.0, 10_000.0)
        campaigns = _episodes(rng, duration, lead_in, (900.0, 900.0), (600.0, 1200.0))
        bursts: list[tuple[float, float]] = []
        for a, b in campaigns:
            t = a
            while t < b:
                length = rng.uniform(20.0, 90.0)
                bursts.append((t, min(t + length, b)))
                t += length + rng.uniform(30.0, 180.0)
        world = make_world(rng, duration, load, va, theft=_share(bursts, share))
        return Built(world, thefts=campaigns)

    return build


def house_offline(rng: random.Random, duration: float, lead_in: float) -> Built:
    load, va = appliance_load(rng, duration, 60.0)
    # Someone is home: the line draws above the floor.
    load, va = add(load, constant(150.0)), add(va, constant(150.0))
    outages = _episodes(rng, duration, lead_in, (300.0, 1800.0), (1800.0, 7200.0))
    world = make_world(rng, duration, load, va)
    world.house_offline = outages
    return Built(world, offline=outages)


def line_offline(rng: random.Random, duration: float, lead_in: float) -> Built:
    load, va = appliance_load(rng, duration, 60.0)
    world = make_world(rng, duration, load, va)
    world.line_offline = _episodes(rng, duration, lead_in, (300.0, 1800.0), (1800.0, 7200.0))
    return Built(world)


SHORT = TheftConfig(cable=SHORT_CABLE_ENTERED)
LONG = TheftConfig(cable=LONG_CABLE_ENTERED)


def scenarios() -> list[Scenario]:
    """Every scenario, in table order. Days are for the full run; --scale shrinks them."""
    return [
        Scenario("steady 10 W", "no theft", 2, steady(10.0), SHORT, seed=11),
        Scenario("steady 100 W", "no theft", 2, steady(100.0), SHORT, seed=12),
        Scenario("steady 1 kW", "no theft", 2, steady(1000.0), SHORT, seed=13),
        Scenario("steady 10 kW", "no theft", 2, steady(10_000.0), SHORT, seed=14),
        Scenario("household 60 W-12 kW", "no theft", 3, household, SHORT, True, seed=15),
        Scenario("load steps 10 W-10 kW, 2-30 s", "no theft", 2, load_steps, SHORT, True, 16),
        Scenario("time skew +/-1 s", "no theft", 2, skewed, SHORT, True, seed=17),
        Scenario("noise 0.5 %, opposite gains", "no theft", 2, noisy, SHORT, True, seed=18),
        Scenario("Al 2x16 mm2 40 m cable", "no theft", 3, long_cable, LONG, True, seed=19),
        Scenario("line meter offline", "no theft", 1, line_offline, SHORT, seed=20),
        Scenario("house meter offline", "meter offline", 2, house_offline, SHORT, seed=21),
        Scenario("theft 1 %", "theft", 1, theft(0.01), SHORT, True, seed=31),
        Scenario("theft 2 %", "theft", 1, theft(0.02), SHORT, True, seed=32),
        Scenario("theft 5 %", "theft", 2, theft(0.05), SHORT, True, seed=33, fast_goal=True),
        Scenario("theft 10 %", "theft", 1, theft(0.10), SHORT, True, seed=34, fast_goal=True),
        Scenario("theft 20 %", "theft", 1, theft(0.20), SHORT, True, seed=35, fast_goal=True),
        Scenario("theft 50 %", "theft", 1, theft(0.50), SHORT, True, seed=36, fast_goal=True),
        Scenario(
            "theft 5 %, Al 40 m cable", "theft", 1, theft(0.05, LONG_CABLE), LONG, True, 37, True
        ),
        Scenario("intermittent theft 10 %", "theft", 1, intermittent(0.10), SHORT, True, 38),
    ]


__all__ = ["DAY", "Built", "Scenario", "scenarios"]
