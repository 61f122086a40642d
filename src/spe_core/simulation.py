"""A discrete-event simulation of a month of SPE (SimPy), to check a capacity plan.

Promotions produces its daily quota into the backlog; every morning the queue
is topped up to its target; inside salespeople pull one opportunity at a
time (conversations take a jittered share of the day, and nobody pulls more
than the plan's daily share: the rope of drum-buffer-rope); a share of
conversations set a field appointment; field salespeople hold up to their
meetings per day. The steady state (after a warm-up week) must agree with
:func:`spe_core.planner.plan_capacity`.

Needs SimPy (``pip install simpy``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Generator
from typing import Any

import attrs

from spe_core.errors import ConfigError
from spe_core.planner import CapacityPlan, TeamRates

__all__ = ["SimulationResult", "simulate"]

DAY = 24 * 60  # minutes
WORKDAY = 8 * 60


@attrs.frozen
class SimulationResult:
    """Steady-state daily figures of one simulated month."""

    days: int
    pulls_per_day: float
    appointments_per_day: float
    meetings_per_day: float
    wins_per_day: float
    average_queue_level: float


def simulate(
    rates: TeamRates, plan: CapacityPlan, *, days: int = 30, warmup: int = 5, seed: int = 1
) -> SimulationResult:
    """Simulate ``days`` working days; figures are averaged after ``warmup`` days."""
    try:
        import simpy
    except ImportError:  # pragma: no cover - simpy is a dev dependency
        raise ConfigError("the simulation needs SimPy.", "pip install simpy") from None
    rng = random.Random(seed)
    env = simpy.Environment()
    state: dict[str, Any] = {"backlog": 0.0, "queue": 0, "appointments": 0, "levels": []}
    counts = {"pulls": 0, "appts": 0, "meetings": 0, "wins": 0.0}
    per_rep = plan.pulls_per_day / rates.inside_reps
    appt_carry = [0.0]

    def counting() -> bool:
        return env.now >= warmup * DAY

    def promotions() -> Generator[Any, Any, None]:
        while True:
            state["backlog"] += plan.promotions_per_day * (1 - rates.waste_share)
            move = min(int(state["backlog"]), max(0, plan.queue_target - state["queue"]))
            state["backlog"] -= move
            state["queue"] += move
            state["levels"].append(state["queue"])
            yield env.timeout(DAY)

    def inside(rep: int) -> Generator[Any, Any, None]:
        carry = rep / rates.inside_reps  # stagger the fractional daily shares
        while True:
            day_start = env.now
            carry += per_rep
            quota = int(carry)
            carry -= quota
            slot = WORKDAY / max(1.0, rates.conversations_per_day)
            for _ in range(quota):
                if env.now - day_start >= WORKDAY or state["queue"] <= 0:
                    break
                state["queue"] -= 1
                yield env.timeout(slot * rng.uniform(0.8, 1.2))
                if counting():
                    counts["pulls"] += 1
                appt_carry[0] += rates.appointment_rate
                if appt_carry[0] >= 1.0:
                    appt_carry[0] -= 1.0
                    state["appointments"] += 1
                    if counting():
                        counts["appts"] += 1
            yield env.timeout(max(0.0, day_start + DAY - env.now))

    def field(rep: int) -> Generator[Any, Any, None]:
        carry = rep / rates.field_reps
        while True:
            day_start = env.now
            carry += rates.meetings_per_day
            today = int(carry)
            carry -= today
            for _ in range(today):
                if state["appointments"] <= 0:
                    break
                state["appointments"] -= 1
                yield env.timeout(WORKDAY / max(1.0, rates.meetings_per_day))
                if counting():
                    counts["meetings"] += 1
                    counts["wins"] += rates.hit_rate
            yield env.timeout(max(0.0, day_start + DAY - env.now))

    env.process(promotions())
    for i in range(rates.inside_reps):
        env.process(inside(i))
    for i in range(rates.field_reps):
        env.process(field(i))
    env.run(until=days * DAY)
    measured = days - warmup
    levels = state["levels"][warmup:]
    return SimulationResult(
        days=measured,
        pulls_per_day=counts["pulls"] / measured,
        appointments_per_day=counts["appts"] / measured,
        meetings_per_day=counts["meetings"] / measured,
        wins_per_day=counts["wins"] / measured,
        average_queue_level=sum(levels) / len(levels) if levels else math.nan,
    )
